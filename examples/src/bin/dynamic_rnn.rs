//! TensorFlow's dynamic-RNN tutorial: classify toy variable-length sequences as linear
//! (consecutive integers) or random, with an LSTM that stops at each sequence's own length and
//! a linear layer on its last relevant output.
//!
//! `cargo run --release -p examples --bin dynamic_rnn` — 97.8–99.2 % test accuracy with the
//! defaults, depending on the seed; `--train-samples 2000` reaches 99 % (examples/README.md).

use anyhow::Result;
use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::Device;
use clap::{Parser, ValueEnum};
use examples::{CommonArgs, TrainArgs};
use rnn_datasets::{SequenceBatcher, ToySequence, ToySequencesConfig};
use rnn_models::{Lstm, LstmConfig};
use rnn_train::{Objective, Optimizer, StepOutput, TrainError, evaluate, fit, tasks};

/// Linear vs random sequences of length 3..=20, as in the TensorFlow tutorial.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Hidden units of the LSTM.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Weight initialization: TensorFlow's (Glorot weights, zero biases, forget-gate bias 1),
    /// which plain SGD needs here, or PyTorch's (uniform ±1/√hidden), with which SGD stays at
    /// chance.
    #[arg(long, value_enum, default_value_t = Init::Tf)]
    init: Init,
    /// Training sequences to generate (the tutorial's 1,000; the test set stays at 500).
    #[arg(long, default_value_t = 1000)]
    train_samples: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Init {
    Tf,
    Pytorch,
}

#[derive(Module, Debug)]
struct Model {
    lstm: Lstm,
    out: Linear,
}

impl Model {
    fn new(hidden: usize, init: Init, device: &Device) -> Result<Self> {
        let mut lstm = LstmConfig::new(1, hidden).with_batch_first(true);
        if let Init::Tf = init {
            // BasicLSTMCell: Glorot-uniform kernel, zero biases, forget_bias = 1.0.
            lstm = lstm
                .with_initializer(Some(Initializer::XavierUniform { gain: 1.0 }))
                .with_bias_initializer(Some(Initializer::Zeros))
                .with_forget_bias(Some(1.0));
        }
        Ok(Self {
            lstm: lstm.init(device)?,
            // The tutorial draws the output layer from a standard normal.
            out: LinearConfig::new(hidden, 2)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 1.0,
                })
                .init(device),
        })
    }
}

struct Classify;

impl Objective<Model> for Classify {
    type Item = ToySequence;

    fn step(
        &mut self,
        model: &Model,
        batch: Vec<ToySequence>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let batch = SequenceBatcher.batch(batch, device);
        let (output, _) = model
            .lstm
            .forward_with_lengths(batch.input, &batch.lengths, None)
            .map_err(TrainError::step)?;
        let last = tasks::last_relevant(output, &batch.lengths)?;
        tasks::classification(model.out.forward(last), &batch.labels)
    }
}

fn main() -> std::process::ExitCode {
    examples::finish(run())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let selected = cli.common.select()?;
    let seed = cli.common.seed;
    let train = ToySequencesConfig {
        samples: cli.train_samples,
        seed,
        ..Default::default()
    }
    .generate()?;
    let test = ToySequencesConfig {
        samples: 500,
        seed: seed + 1,
        ..Default::default()
    }
    .generate()?;

    let device = selected.training_device();
    let model = Model::new(cli.hidden, cli.init, &device)?;
    // The tutorial runs plain SGD (lr 0.01) for 1,000,000 samples ≈ 8k steps; with its init that
    // reaches 89 % test accuracy after 1000 epochs and 98 % after 1250 (≈ 10k steps) here. Adam
    // at the same rate gets to 98–99 % in 200 epochs, so it is the default.
    let mut config = cli.train.config(seed, 200, 128, Optimizer::adam(0.01));
    config.log_every = 20;
    let fitted = fit(&config, model, &mut Classify, &train, None, &device)?;

    let test_metrics = evaluate(&fitted.model, &mut Classify, &test, 500, selected.device())?;
    println!(
        "Testing accuracy: {:.2}% (loss {:.4})",
        test_metrics.accuracy.unwrap_or(0.0) * 100.0,
        test_metrics.loss
    );
    Ok(())
}
