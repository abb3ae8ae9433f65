use std::path::PathBuf;

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A layer could not be built or run.
    #[error(transparent)]
    Model(#[from] rnn_models::ModelError),
    /// A backend could not be selected or failed while running.
    #[error("backend: {0}")]
    Backend(String),
    /// The PyTorch peer failed.
    #[error("PyTorch: {0}")]
    Torch(String),
    /// A report file could not be written.
    #[error("I/O error on {}", .0.display())]
    Io(PathBuf, #[source] std::io::Error),
    /// The chart could not be drawn.
    #[error("chart: {0}")]
    Chart(String),
    /// The options ask for nothing that exists.
    #[error("{0}")]
    Usage(String),
}
