//! Plumbing shared by the tutorial binaries in `src/bin/`: the command-line flags every example
//! has (backend, seed, training knobs) and how they become a device and a [`TrainConfig`].
//! Each binary is a short story of its own: parse args → data → model → train → report.

pub mod mnist;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use rnn_backend::{Backend, BackendError, Selected};
use rnn_train::{
    ConfusionMatrix, History, Metrics, Optimizer, Report, RunInfo, TrainConfig, TrainError,
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
    /// Adam.
    Adam,
    /// RMSprop.
    Rmsprop,
}

/// Training flags; each example supplies its tutorial's defaults.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Passes over the training data [default: the tutorial's].
    #[arg(long, value_parser = at_least_one)]
    pub epochs: Option<usize>,
    /// Items per batch [default: the tutorial's].
    #[arg(long, value_parser = at_least_one)]
    pub batch_size: Option<usize>,
    /// Learning rate, a finite number > 0 [default: the tutorial's].
    #[arg(long, value_parser = positive_rate)]
    pub lr: Option<f64>,
    /// Optimizer [default: the tutorial's], with PyTorch's default hyper-parameters.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerChoice>,
    /// Directory for metrics.jsonl, checkpoints, learning_curve.png, the example's own pictures
    /// and report.html (created if missing).
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
            Some(OptimizerChoice::Rmsprop) => Optimizer::rmsprop(optimizer.lr()),
            None => optimizer,
        };
        let optimizer = match self.lr {
            Some(lr) => optimizer.with_lr(lr),
            None => optimizer,
        };
        TrainConfig {
            seed,
            optimizer,
            run_dir: self.out.clone(),
            resume: self.resume,
            quiet: self.quiet,
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
