//! TensorFlow's MNIST-as-sequences tutorial with a LSTM: each 28×28 image is read row by
//! row (28 steps of 28 pixels), the final hidden state is classified. `--dataset pixel` and
//! `permuted` give the harder 784-step variants.
//!
//! `cargo run --release -p examples --bin mnist_rnn`  (Fashion-MNIST test accuracy ≥ 89 %)

use anyhow::Result;
use clap::Parser;
use examples::mnist::{Classify, DataArgs, RowClassifier, take};
use examples::{CommonArgs, TrainArgs};
use rnn_train::{Optimizer, evaluate, fit};

/// Classify MNIST-family images read as sequences with a LSTM.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Hidden units per direction.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let selected = cli.common.select()?;
    let (train, test) = cli.data.load()?;
    let (steps, features) = train.item_shape();
    eprintln!("sequences: {steps} steps of {features} features");
    let train = take(train, cli.data.limit);

    let device = selected.training_device();
    let model = RowClassifier::new(features, cli.hidden, false, &device)?;
    let config = cli
        .train
        .config(cli.common.seed, 5, 128, Optimizer::adam(1e-3));
    let fitted = fit(&config, model, &mut Classify, &train, Some(&test), &device)?;

    let metrics = evaluate(&fitted.model, &mut Classify, &test, 500, selected.device())?;
    println!(
        "Testing Accuracy: {:.2}%",
        metrics.accuracy.unwrap_or(0.0) * 100.0
    );
    Ok(())
}
