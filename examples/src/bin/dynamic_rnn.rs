//! TensorFlow's dynamic-RNN tutorial: classify toy variable-length sequences as linear
//! (consecutive integers) or random, with an LSTM that stops at each sequence's own length and
//! a linear layer on its last relevant output.
//!
//! `cargo run --release -p examples --bin dynamic_rnn` — 99.6 ± 0.4 % test accuracy with the
//! defaults over seeds 160–179 (examples/README.md). The default trains on 4,000 sequences, four
//! times the tutorial's 1,000: from those (`--train-samples 1000`) the same LSTM ends at
//! 97.6–99.4 %.

use anyhow::Result;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use clap::{Parser, ValueEnum};
use examples::{CommonArgs, TrainArgs};
use rnn_datasets::{SequenceBatcher, ToySequence, ToySequences, ToySequencesConfig};
use rnn_models::{Lstm, LstmConfig};
use rnn_train::{
    ConfusionMatrix, Objective, Optimizer, StepOutput, TrainError, evaluate, fit, tasks,
};

/// Linear vs random sequences of length 3..=20, as in the TensorFlow tutorial.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Hidden units of the LSTM.
    #[arg(long, default_value_t = 64, value_parser = examples::at_least_one)]
    hidden: usize,
    /// Weight initialization: TensorFlow's (Glorot weights, zero biases, forget-gate bias 1),
    /// which plain SGD needs here, or PyTorch's (uniform ±1/√hidden), with which SGD stays at
    /// chance.
    #[arg(long, value_enum, default_value_t = Init::Tf)]
    init: Init,
    /// Training sequences to generate. Four times the tutorial's 1,000 by default: from 1,000
    /// the LSTM fits its training set but reaches 99 % on the test set for only some seeds, from
    /// 2,000 for most. The test set is the tutorial's 500.
    #[arg(long, default_value_t = 4000)]
    train_samples: usize,
    /// After testing, print each misclassified test sequence: its class, its values as the
    /// generated integers, the class predicted and the logit margin.
    #[arg(long)]
    show_errors: bool,
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

    /// Logits `[batch, 2]` from each sequence's last relevant LSTM output;
    /// `input: [batch, seq, 1]`.
    fn logits(&self, input: Tensor<3>, lengths: &[usize]) -> Result<Tensor<2>, TrainError> {
        let (output, _) = self.lstm.forward_with_lengths(input, lengths, None)?;
        let last = tasks::last_relevant(output, lengths)?;
        Ok(self.out.forward(last))
    }
}

/// The two classes, by label.
const NAMES: [&str; 2] = ["linear", "random"];

/// Cross-entropy on the two classes; each evaluation pass also fills `confusion`.
struct Classify {
    confusion: ConfusionMatrix,
    evaluating: bool,
}

impl Objective<Model> for Classify {
    type Item = ToySequence;

    fn step(
        &mut self,
        model: &Model,
        batch: Vec<ToySequence>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let batch = SequenceBatcher.batch(batch, device);
        let logits = model.logits(batch.input, &batch.lengths)?;
        let (output, predicted) = tasks::classification_with_predictions(logits, &batch.labels)?;
        if self.evaluating {
            self.confusion.record(&batch.labels, &predicted);
        }
        Ok(output)
    }

    fn start_pass(&mut self, training: bool) {
        self.evaluating = !training;
        if self.evaluating {
            self.confusion.clear();
        }
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
    let test_config = ToySequencesConfig {
        samples: 500,
        seed: seed + 1,
        ..Default::default()
    };
    let test = test_config.generate()?;

    let device = selected.training_device();
    let model = Model::new(cli.hidden, cli.init, &device)?;
    // The tutorial runs plain SGD (lr 0.01) for 1,000,000 samples ≈ 8k steps; with its init that
    // reaches 89 % test accuracy after 1000 epochs and 98 % after 1250 (≈ 10k steps) here. Adam
    // at the same rate gets to 98–99 % in 200 epochs, so it is the default, with the rate × 0.1
    // for the last quarter (chosen with the data size on a validation split, seeds 300–314;
    // examples/README.md).
    let mut config = cli.train.config(seed, 200, 128, Optimizer::adam(0.01));
    examples::settle_last_quarter(&mut config);
    config.log_every = 20;
    config.run_info = Some(examples::run_info("dynamic_rnn", &selected));
    let mut classify = Classify {
        confusion: ConfusionMatrix::new(NAMES),
        evaluating: false,
    };
    let (fit_train, valid) = cli.train.split(&train, seed)?;
    let valid = valid.as_ref().map(|v| v as &dyn Dataset<_>);
    let devices = cli.train.devices(&selected)?;
    let fitted = fit(&config, model, &mut classify, &fit_train, valid, devices)?;

    let test_metrics = evaluate(&fitted.model, &mut classify, &test, 500, selected.device())?;
    println!(
        "Testing accuracy: {:.2}% (loss {:.4})",
        test_metrics.accuracy.unwrap_or(0.0) * 100.0,
        test_metrics.loss
    );
    if let Some(dir) = &cli.train.out {
        examples::report_classifier(
            dir,
            &config,
            &fitted.history,
            &test_metrics,
            &classify.confusion,
        )?;
    }
    if cli.show_errors {
        show_errors(
            &fitted.model,
            &test,
            test_config.max_value,
            selected.device(),
        )?;
    }
    Ok(())
}

/// Prints the test sequences the model gets wrong, their values back as the generated
/// integers (× `max_value`), e.g. `random [532, 772, 956] taken for linear (margin 2.71)`.
fn show_errors(
    model: &Model,
    test: &ToySequences,
    max_value: usize,
    device: &Device,
) -> Result<()> {
    let model = model.valid();
    let items = test.iter().collect::<Result<Vec<ToySequence>, _>>()?;
    let batch = SequenceBatcher.batch(items.clone(), device);
    let logits = model
        .logits(batch.input, &batch.lengths)?
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    let scale = max_value as f64;
    for (item, pair) in items.iter().zip(logits.chunks_exact(2)) {
        let predicted = usize::from(pair[1] > pair[0]);
        if predicted != item.label {
            let values: Vec<i64> = item.values[..item.len]
                .iter()
                .map(|v| (f64::from(*v) * scale).round() as i64)
                .collect();
            println!(
                "{} {values:?} taken for {} (margin {:.2})",
                NAMES[item.label],
                NAMES[predicted],
                (pair[0] - pair[1]).abs()
            );
        }
    }
    Ok(())
}
