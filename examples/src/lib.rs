//! Plumbing shared by the tutorial binaries in `src/bin/`: the command-line flags every example
//! has (backend, seed, training knobs) and how they become a device and a [`TrainConfig`].
//! Each binary is a short story of its own: parse args → data → model → train → report.

pub mod mnist;

use std::path::PathBuf;

use clap::Args;
use rnn_backend::{Backend, BackendError, Selected};
use rnn_train::{Optimizer, TrainConfig};

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
    /// Opens the chosen backend, seeds it and tells the user what runs where.
    ///
    /// # Errors
    /// When the backend cannot be opened (e.g. wgpu without an adapter).
    pub fn select(&self) -> Result<Selected, BackendError> {
        let selected = Backend::resolve(self.backend)?.select()?;
        selected.device().seed(self.seed);
        selected.training_device().seed(self.seed);
        eprintln!("backend: {}", selected.describe());
        Ok(selected)
    }
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
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Items per batch [default: the tutorial's].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate [default: the tutorial's].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Optimizer [default: the tutorial's], with PyTorch's default hyper-parameters.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerChoice>,
    /// Directory for metrics.jsonl, checkpoints and learning_curve.png.
    #[arg(long)]
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
