//! What a step measures and how measurements add up over an epoch.

use serde::{Deserialize, Serialize};

/// A metric that can be watched (early stopping) and is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Mean loss (lower is better).
    Loss,
    /// Fraction of correct predictions (per item, or per step for sequence outputs).
    Accuracy,
    /// Fraction of sequences whose every step is correct.
    ExactMatch,
    /// Mean squared error (lower is better).
    Mse,
}

impl Metric {
    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Accuracy | Metric::ExactMatch)
    }

    /// Its name in logs.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::Accuracy => "accuracy",
            Metric::ExactMatch => "exact_match",
            Metric::Mse => "mse",
        }
    }
}

/// Counts from one batch; they add up over an epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchStats {
    /// Items in the batch (the weight of its loss in the epoch mean).
    pub items: usize,
    /// Correct predictions and predictions made (accuracy).
    pub correct: Option<(usize, usize)>,
    /// Entirely correct sequences and sequences (exact-match accuracy).
    pub exact: Option<(usize, usize)>,
    /// Sum of squared errors and number of values (MSE).
    pub squared_error: Option<(f64, usize)>,
}

impl BatchStats {
    /// Adds another batch's counts.
    pub fn merge(&mut self, other: &BatchStats) {
        fn add_u(a: &mut Option<(usize, usize)>, b: Option<(usize, usize)>) {
            if let Some((x, y)) = b {
                let (p, q) = a.get_or_insert((0, 0));
                *p += x;
                *q += y;
            }
        }
        self.items += other.items;
        add_u(&mut self.correct, other.correct);
        add_u(&mut self.exact, other.exact);
        if let Some((s, n)) = other.squared_error {
            let (p, q) = self.squared_error.get_or_insert((0.0, 0));
            *p += s;
            *q += n;
        }
    }
}

/// Metrics of one pass (training epoch or validation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean loss, weighted by batch size.
    pub loss: f64,
    /// Accuracy, when the task reports it.
    pub accuracy: Option<f64>,
    /// Exact-match accuracy, when the task reports it.
    pub exact_match: Option<f64>,
    /// Mean squared error, when the task reports it.
    pub mse: Option<f64>,
}

impl Metrics {
    /// Metrics from a loss sum (already weighted by items) and the pass's counts.
    pub fn from_sums(loss_sum: f64, stats: &BatchStats) -> Self {
        let ratio =
            |c: Option<(usize, usize)>| c.filter(|&(_, n)| n > 0).map(|(k, n)| k as f64 / n as f64);
        Metrics {
            loss: loss_sum / stats.items.max(1) as f64,
            accuracy: ratio(stats.correct),
            exact_match: ratio(stats.exact),
            mse: stats
                .squared_error
                .filter(|&(_, n)| n > 0)
                .map(|(s, n)| s / n as f64),
        }
    }

    /// The value of `metric`, if measured.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Loss => Some(self.loss),
            Metric::Accuracy => self.accuracy,
            Metric::ExactMatch => self.exact_match,
            Metric::Mse => self.mse,
        }
    }

    /// `loss 0.1234 accuracy 98.50% …` for progress lines.
    pub fn summary(&self) -> String {
        let mut s = format!("loss {:.4}", self.loss);
        if let Some(a) = self.accuracy {
            s += &format!(" acc {:.2}%", a * 100.0);
        }
        if let Some(e) = self.exact_match {
            s += &format!(" exact {:.2}%", e * 100.0);
        }
        if let Some(m) = self.mse {
            s += &format!(" mse {m:.5}");
        }
        s
    }
}

/// One line of the run's history: an epoch's training metrics, its validation metrics and the
/// learning rate it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Steps taken since the start of training, at the end of this epoch.
    pub global_step: usize,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Training metrics.
    pub train: Metrics,
    /// Validation metrics at the end of the epoch.
    pub valid: Option<Metrics>,
    /// Training loss of every step of the epoch, in order.
    pub step_losses: Vec<f64>,
    /// Validations run every `eval_every` steps: `(global_step, metrics)`.
    pub mid_epoch_valid: Vec<(usize, Metrics)>,
    /// Wall-clock seconds of the epoch: its training steps and validations (not the
    /// checkpoint). 0 in histories written before this field existed.
    #[serde(default)]
    pub seconds: f64,
}

/// The whole run so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One record per finished epoch.
    pub epochs: Vec<EpochRecord>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

impl History {
    /// Every training step's loss, across epochs.
    pub fn step_losses(&self) -> Vec<f64> {
        self.epochs
            .iter()
            .flat_map(|e| e.step_losses.iter().copied())
            .collect()
    }

    /// The last epoch's record.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_epoch_times_still_load() {
        let old = r#"{"epoch":1,"global_step":8,"lr":0.01,
            "train":{"loss":0.5,"accuracy":0.75,"exact_match":null,"mse":null},
            "valid":null,"step_losses":[0.5],"mid_epoch_valid":[]}"#;
        let record: EpochRecord = serde_json::from_str(old).unwrap();
        assert_eq!((record.epoch, record.seconds), (1, 0.0));
        let line = serde_json::to_string(&EpochRecord {
            seconds: 2.5,
            ..record
        })
        .unwrap();
        assert!(line.contains(r#""seconds":2.5"#), "{line}");
    }
}
