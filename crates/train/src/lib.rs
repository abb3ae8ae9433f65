//! # rnn-train
//!
//! One training loop for the toolkit's recurrent models: implement [`Objective`] for your
//! task (how a batch of items becomes a loss, usually one call into [`tasks`]), pick a
//! [`TrainConfig`], and call [`fit`]. You get shuffled batches, burn-optim's optimizers with
//! gradient clipping, learning-rate schedules, per-epoch validation, a progress bar,
//! `metrics.jsonl`, a learning-curve PNG and a self-contained `report.html` (titled with the
//! config's [`RunInfo`]), atomic checkpoints and exact `resume`, early stopping, and a clear
//! error when the loss turns NaN. [`line_chart`], [`confusion_matrix`] and [`bar_chart`] draw a
//! program's own pictures, which [`Report`] adds to the page. Several [`Devices`] train data
//! parallel: each batch split across them, one optimizer step on the summed gradient.
//!
//! Truncated BPTT: an objective keeps its hidden state between consecutive batches and
//! detaches it after each step (see [`Objective`]); set `shuffle = false` for streams.

mod carry;
mod checkpoint;
mod config;
mod confusion;
mod devices;
mod error;
mod holdout;
mod metrics;
mod objective;
mod plot;
mod progress;
mod report;
pub mod tasks;
mod trainer;

pub use carry::{Carried, Detach};
pub use config::{Clip, EarlyStopping, Optimizer, Schedule, TrainConfig};
pub use confusion::ConfusionMatrix;
pub use devices::Devices;
pub use error::TrainError;
pub use holdout::{Subset, holdout};
pub use metrics::{BatchStats, EpochRecord, History, Metric, Metrics};
pub use objective::{Objective, StepOutput, non_finite};
pub use plot::{
    BarChart, LineChart, Series, bar_chart, confusion_matrix, learning_curve, line_chart,
};
pub use report::{Report, RunInfo};
pub use trainer::{Fitted, evaluate, fit};
