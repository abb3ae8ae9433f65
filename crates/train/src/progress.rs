//! A progress bar with ETA and live loss, or one quiet line per epoch.

use indicatif::{ProgressBar, ProgressStyle};

use crate::EpochRecord;

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    recent: f64,
}

impl Progress {
    pub(crate) fn new(quiet: bool, epoch: usize, epochs: usize, steps: usize) -> Self {
        let bar = (!quiet).then(|| {
            let bar = ProgressBar::new(steps as u64);
            let style = ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar
        });
        Self {
            bar,
            quiet,
            recent: f64::NAN,
        }
    }

    pub(crate) fn step(&mut self, loss: f64) {
        // An exponential average keeps the displayed loss readable on noisy batches.
        self.recent = if self.recent.is_nan() {
            loss
        } else {
            0.9 * self.recent + 0.1 * loss
        };
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {:.4}", self.recent));
            bar.inc(1);
        }
    }

    /// Clears the bar and prints the epoch's summary when `show`.
    pub(crate) fn finish(self, record: &EpochRecord, show: bool) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if !show {
            return;
        }
        let valid = record
            .valid
            .as_ref()
            .map(|v| format!(" | valid {}", v.summary()))
            .unwrap_or_default();
        let line = format!(
            "epoch {}: train {}{valid} (lr {:.3e}, {:.1} s)",
            record.epoch,
            record.train.summary(),
            record.lr,
            record.seconds
        );
        if self.quiet {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}
