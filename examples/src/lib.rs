//! Plumbing shared by the tutorial binaries in `src/bin/`: the command-line flags every example
//! has (backend, seed, training knobs) and how they become a device and a [`TrainConfig`].
//! Each binary is a short story of its own: parse args → data → model → train → report.

pub mod mnist;

/// Every example program allocates through mimalloc. Why: glibc's malloc hands the freed top of
/// its heap back to the OS and serves multi-megabyte blocks with fresh `mmap`s, so each training
/// step faulted in and zeroed the same pages again — `addition_rnn` epochs took 3.3–3.6 s with
/// it, 2.2–2.7 s with mimalloc, 2.3–2.9 s with glibc tuned the way PyTorch's peers are measured
/// (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`). A program of your own using these
/// crates gains the same from these two lines.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::data::dataset::Dataset;
use clap::Args;
use rnn_backend::{Backend, BackendError, Selected};
use rnn_train::{
    ConfusionMatrix, Devices, History, Metrics, Optimizer, Report, RunInfo, Schedule, Subset,
    TrainConfig, TrainError, holdout,
};

/// Flags common to every example.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Backend to run on (flex, ndarray, wgpu, …). Defaults to $RNN_BACKEND, then flex.
    #[arg(long, env = "RNN_BACKEND")]
    pub backend: Option<Backend>,
    /// Seed for data generation and weight initialization.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl CommonArgs {
    /// Opens the chosen backend, makes it Burn's default device for this process, seeds it
    /// and tells the user what runs where. Call it first thing in `main`.
    ///
    /// # Errors
    /// When the backend cannot be opened (e.g. wgpu without an adapter).
    pub fn select(&self) -> Result<Selected, BackendError> {
        let backend = Backend::resolve(self.backend)?;
        // SAFETY: the examples call this at the top of `main`, before any other thread exists
        // (no device is open yet; the thread pools start lazily, at the first tensor operation).
        unsafe { backend.make_process_default() };
        let selected = backend.select()?;
        selected.device().seed(self.seed);
        selected.training_device().seed(self.seed);
        eprintln!("backend: {}", selected.describe());
        Ok(selected)
    }
}

/// What ran where, for the titles of the pictures and `report.html`: `program` (the binary's
/// name) on the backend `selected` describes, dated now, with this command line. Set it as the
/// [`TrainConfig::run_info`].
pub fn run_info(program: &str, selected: &Selected) -> RunInfo {
    RunInfo::new(program, selected.describe())
}

/// Multiplies `config`'s rate by 0.1 for the last quarter of its epochs, unless it runs plain
/// SGD. Why: Adam at a tutorial's constant rate now and then blows up in the last epochs
/// (`dynamic_rnn` seeds ending at 62–92 % on validation after ≥ 99 % before; an `addition_rnn`
/// seed falling from 99.6 % to 84 % exact answers at its last epoch), and a run keeps its last
/// epoch's model; the smaller rate settles it. The tutorials' plain SGD keeps its constant rate.
/// Call it after [`TrainArgs::config`], so that `--epochs` and `--optimizer` count.
pub fn settle_last_quarter(config: &mut TrainConfig) {
    if !matches!(config.optimizer, Optimizer::Sgd { .. }) {
        // ⌊3E/4⌋ ≥ E/2 for E ≥ 2: the second decay would fall past the last epoch.
        config.schedule = Schedule::Step {
            every: (config.epochs * 3 / 4).max(1),
            gamma: 0.1,
        };
    }
}

/// After testing a classifier: draws `confusion` into `dir/confusion_matrix.png` and rewrites
/// `dir/report.html` with the test `metrics` and that picture (the run's learning curve is
/// already there).
///
/// # Errors
/// When the picture or the report cannot be written.
pub fn report_classifier(
    dir: &Path,
    config: &TrainConfig,
    history: &History,
    metrics: &Metrics,
    confusion: &ConfusionMatrix,
) -> Result<(), TrainError> {
    let info = config.run_info.clone().unwrap_or_default();
    let file = "confusion_matrix.png";
    rnn_train::confusion_matrix(
        &dir.join(file),
        confusion,
        "confusion matrix on the test set",
        &info,
    )?;
    let path = Report::new(config, history)
        .result(
            "test accuracy",
            format!("{:.2}%", metrics.accuracy.unwrap_or(0.0) * 100.0),
        )
        .result("test loss", format!("{:.4}", metrics.loss))
        .picture("Confusion matrix on the test set", file)
        .write(dir)?;
    println!("wrote {} and {}", dir.join(file).display(), path.display());
    Ok(())
}

/// A batch-first layer of `kind` (the examples' `--cell`, a [`rnn_models::CellKind`]):
/// `input` features in, `hidden` per direction.
///
/// # Errors
/// For impossible sizes.
pub fn batch_first_layer(
    kind: rnn_models::CellKind,
    input: usize,
    hidden: usize,
    bidirectional: bool,
    device: &burn::tensor::Device,
) -> Result<rnn_models::Recurrent, rnn_models::ModelError> {
    rnn_models::RecurrentConfig::new(kind, input, hidden)
        .with_batch_first(true)
        .with_bidirectional(bidirectional)
        .init(device)
}

/// The `--optimizer` choices.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OptimizerChoice {
    /// Plain stochastic gradient descent.
    Sgd,
    /// Adam (L2 weight decay inside the gradient, as `torch.optim.Adam`).
    Adam,
    /// AdamW (decoupled weight decay, 0.01 unless `--weight-decay` says otherwise).
    Adamw,
    /// RMSprop.
    Rmsprop,
}

/// Training flags; each example supplies its tutorial's defaults.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Train data-parallel on this many devices of the backend (GPU backends): each batch is
    /// split across them and their gradients summed before one optimizer step.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub devices: usize,
    /// Passes over the training data [default: the program's, examples/README.md].
    #[arg(long, value_parser = at_least_one)]
    pub epochs: Option<usize>,
    /// Items per batch [default: the program's, examples/README.md].
    #[arg(long, value_parser = at_least_one)]
    pub batch_size: Option<usize>,
    /// Learning rate, a finite number > 0 [default: the tutorial's].
    #[arg(long, value_parser = positive_rate)]
    pub lr: Option<f64>,
    /// Weight decay λ ≥ 0: decoupled for AdamW, an L2 penalty for SGD, Adam and RMSprop
    /// [default: 0, AdamW's 0.01].
    #[arg(long, value_parser = non_negative)]
    pub weight_decay: Option<f32>,
    /// Hold out this fraction of the training data, chosen at random with --seed, as the
    /// validation set reported each epoch; the test set is then used once, at the end
    /// [default: no validation].
    #[arg(long, value_parser = open_fraction)]
    pub valid_fraction: Option<f64>,
    /// Return the weights of the epoch with the lowest validation loss instead of the last
    /// epoch's (needs validation data, e.g. --valid-fraction).
    #[arg(long)]
    pub keep_best: bool,
    /// Optimizer [default: the tutorial's], with PyTorch's default hyper-parameters.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerChoice>,
    /// Directory for metrics.jsonl, checkpoints, learning_curve.png, the example's own pictures,
    /// report.html and, with --valid-fraction, valid_indices.json (created if missing).
    #[arg(long, value_parser = writable_dir)]
    pub out: Option<PathBuf>,
    /// Continue from the newest checkpoint in --out.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// One line per epoch instead of a progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// The devices to train on: `selected`'s training device, or `--devices` of them.
    ///
    /// # Errors
    /// When the backend has fewer devices than asked for (a CPU backend has one).
    pub fn devices(&self, selected: &Selected) -> anyhow::Result<Devices> {
        if self.devices == 1 {
            return Ok(Devices::from(selected.training_device()));
        }
        let devices = selected.devices(self.devices)?;
        eprintln!("data parallel on {} devices", devices.len());
        Ok(Devices::new(devices)?)
    }

    /// The data to train on and the validation set `--valid-fraction` carves out of it
    /// (`None` without the flag); with `--out`, the held-out items' indices are written to
    /// `valid_indices.json` there (a JSON array, ascending).
    ///
    /// # Errors
    /// When the fraction leaves either side empty, or the indices cannot be written.
    pub fn split<'a, I>(
        &self,
        train: &'a dyn Dataset<I>,
        seed: u64,
    ) -> Result<(Subset<'a, I>, Option<Subset<'a, I>>), TrainError> {
        match self.valid_fraction {
            Some(fraction) => {
                let (train, valid) = holdout(train, fraction, seed)?;
                eprintln!(
                    "validation: {} of {} training items held out",
                    valid.len(),
                    train.len() + valid.len()
                );
                if let Some(dir) = &self.out {
                    valid.save_indices(&dir.join("valid_indices.json"))?;
                }
                Ok((train, Some(valid)))
            }
            None => Ok((Subset::all(train), None)),
        }
    }

    /// The run's config: these flags over the tutorial's `epochs`, `batch_size` and optimizer
    /// (whose learning rate `--lr` replaces).
    pub fn config(
        &self,
        seed: u64,
        epochs: usize,
        batch_size: usize,
        optimizer: Optimizer,
    ) -> TrainConfig {
        let optimizer = match self.optimizer {
            Some(OptimizerChoice::Sgd) => Optimizer::sgd(optimizer.lr()),
            Some(OptimizerChoice::Adam) => Optimizer::adam(optimizer.lr()),
            Some(OptimizerChoice::Adamw) => Optimizer::adamw(optimizer.lr()),
            Some(OptimizerChoice::Rmsprop) => Optimizer::rmsprop(optimizer.lr()),
            None => optimizer,
        };
        let optimizer = match self.lr {
            Some(lr) => optimizer.with_lr(lr),
            None => optimizer,
        };
        let optimizer = match self.weight_decay {
            Some(decay) => optimizer.with_weight_decay(decay),
            None => optimizer,
        };
        TrainConfig {
            seed,
            optimizer,
            run_dir: self.out.clone(),
            resume: self.resume,
            quiet: self.quiet,
            keep_best: self.keep_best.then_some(rnn_train::Metric::Loss),
            ..TrainConfig::new(
                self.epochs.unwrap_or(epochs),
                self.batch_size.unwrap_or(batch_size),
            )
        }
    }
}

/// `--out`: creates the directory if needed and proves it writable before any work starts, so
/// a bad path fails at once (clap's usage error, exit code 2) instead of after an epoch.
///
/// # Errors
/// The reason, as clap shows it: cannot create, or cannot write.
pub fn writable_dir(value: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(value);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create directory: {e}"))?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("directory is not writable: {e}"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir)
}

/// `--data-dir`: must be an existing directory (exit code 2 otherwise).
///
/// # Errors
/// When the path does not exist or is not a directory.
pub fn existing_dir(value: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(value);
    if Path::new(&dir).is_dir() {
        Ok(dir)
    } else {
        Err("no such directory".into())
    }
}

/// `--corpus` and other input files: must be an existing regular file (exit code 2 otherwise).
///
/// # Errors
/// When the path does not exist or is a directory.
pub fn existing_file(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Err("is a directory, not a file".into()),
        Ok(_) => Ok(path),
        Err(e) => Err(e.to_string()),
    }
}

/// Clap value parser for a count that must be at least 1 (epochs, batch size, layer sizes).
///
/// # Errors
/// When the value is not a whole number or is 0.
pub fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Clap value parser for a learning rate: a finite number greater than 0.
///
/// # Errors
/// When the value is not a number, not finite (`nan`, `inf`), or not positive.
pub fn positive_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err("must be a finite number greater than 0".into())
    }
}

/// Clap value parser for a fraction strictly between 0 and 1.
///
/// # Errors
/// When the value is not a number or lies outside `(0, 1)`.
pub fn open_fraction(value: &str) -> Result<f64, String> {
    let v: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err("must be in (0, 1)".into())
    }
}

/// Clap value parser for a weight decay: a finite number ≥ 0.
///
/// # Errors
/// When the value is not a number, not finite, or negative.
pub fn non_negative(value: &str) -> Result<f32, String> {
    let v: f32 = value.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err("must be a finite number ≥ 0".into())
    }
}

/// Whether `p` can be a dropout probability: in `[0, 1)` (Burn's `DropoutConfig::init`
/// panics otherwise).
pub fn is_dropout_probability(p: f64) -> bool {
    (0.0..1.0).contains(&p)
}

/// Clap value parser for a dropout probability (see [`is_dropout_probability`]).
///
/// # Errors
/// When the value is not a number or lies outside `[0, 1)`.
pub fn probability(value: &str) -> Result<f64, String> {
    let p: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if is_dropout_probability(p) {
        Ok(p)
    } else {
        Err("must be in [0, 1)".into())
    }
}

/// Whether standard output may carry colour: a terminal, and `NO_COLOR` unset or empty
/// (<https://no-color.org>).
pub fn stdout_has_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A right/wrong mark (☑ / ☒), green or red where [`stdout_has_colour`].
pub fn verdict(right: bool) -> &'static str {
    match (right, stdout_has_colour()) {
        (true, true) => "\x1b[92m☑\x1b[0m",
        (false, true) => "\x1b[91m☒\x1b[0m",
        (true, false) => "☑",
        (false, false) => "☒",
    }
}

/// Ends an example: on error, one line on stderr (the error and its causes, no backtrace)
/// and exit code 1.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        train: TrainArgs,
    }

    fn optimizer(args: &[&str]) -> Optimizer {
        let flags = Flags::try_parse_from(std::iter::once("example").chain(args.iter().copied()))
            .expect("flags parse");
        flags.train.config(0, 3, 8, Optimizer::sgd(0.5)).optimizer
    }

    fn settled(args: &[&str], optimizer: Optimizer) -> Schedule {
        let flags = Flags::try_parse_from(std::iter::once("example").chain(args.iter().copied()))
            .expect("flags parse");
        let mut config = flags.train.config(0, 200, 8, optimizer);
        settle_last_quarter(&mut config);
        config.schedule
    }

    #[test]
    fn the_rate_drops_once_for_the_last_quarter_except_under_plain_sgd() {
        let step = |every| Schedule::Step { every, gamma: 0.1 };
        assert_eq!(settled(&[], Optimizer::adam(0.01)), step(150));
        assert_eq!(
            settled(&["--epochs", "40"], Optimizer::adam(1e-3)),
            step(30)
        );
        assert_eq!(settled(&["--epochs", "2"], Optimizer::adam(1e-3)), step(1));
        assert_eq!(settled(&["--epochs", "1"], Optimizer::adam(1e-3)), step(1));
        assert_eq!(
            settled(&["--optimizer", "rmsprop"], Optimizer::adam(1e-3)),
            step(150)
        );
        assert_eq!(settled(&[], Optimizer::sgd(0.01)), Schedule::Constant);
        assert_eq!(
            settled(&["--optimizer", "sgd"], Optimizer::adam(0.01)),
            Schedule::Constant
        );
        // One drop, inside the run: the second would fall past the last epoch (0-based E − 1).
        for epochs in 2..=1000 {
            let mut config = TrainConfig::new(epochs, 8);
            config.optimizer = Optimizer::adam(1e-3);
            settle_last_quarter(&mut config);
            let Schedule::Step { every, .. } = config.schedule else {
                panic!("{epochs} epochs: {:?}", config.schedule);
            };
            assert!(
                every < epochs && 2 * every >= epochs,
                "{epochs} epochs: every {every}"
            );
        }
    }

    #[test]
    fn optimizer_flags_override_the_tutorials_choice() {
        assert_eq!(optimizer(&[]), Optimizer::sgd(0.5));
        assert_eq!(
            optimizer(&["--weight-decay", "0.2"]),
            Optimizer::sgd(0.5).with_weight_decay(0.2)
        );
        assert_eq!(
            optimizer(&["--optimizer", "adamw", "--lr", "0.003"]),
            Optimizer::adamw(0.003)
        );
        assert_eq!(
            optimizer(&["--optimizer", "adamw", "--weight-decay", "0"]),
            Optimizer::adamw(0.5).with_weight_decay(0.0)
        );
        for bad in ["-0.1", "nan", "inf"] {
            let arg = format!("--weight-decay={bad}");
            assert!(
                Flags::try_parse_from(["example", arg.as_str()]).is_err(),
                "{bad}"
            );
        }
    }
}
