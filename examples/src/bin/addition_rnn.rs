//! The Keras addition RNN: learn to add two numbers of up to three digits from the string
//! "a+b", with an LSTM encoder, the encoding repeated for each answer digit, an LSTM decoder
//! and a per-step softmax. Ten validation questions are shown after every epoch. Keras' example
//! suggests trying a GRU or a SimpleRNN in place of the LSTM: `--cell gru|rnn`.
//!
//! `cargo run --release -p examples --bin addition_rnn`  (≥ 99 % exact answers on validation)

use anyhow::Result;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use clap::Parser;
use examples::{CommonArgs, TrainArgs, batch_first_layer};
use rnn_datasets::{ADDITION_CHARS, AdditionBatcher, AdditionConfig, AdditionItem, CharTable};
use rnn_models::{CellKind, Recurrent, last_layer, repeat_vector};
use rnn_train::{EpochRecord, Objective, Optimizer, StepOutput, TrainError, fit, tasks};

/// Addition as sequence-to-sequence, as in the Keras example.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Unique questions (10 % are held out for validation).
    #[arg(long, default_value_t = 50_000)]
    size: usize,
    /// Maximum digits per operand.
    #[arg(long, default_value_t = 3)]
    digits: usize,
    /// Hidden units of encoder and decoder.
    #[arg(long, default_value_t = 128, value_parser = examples::at_least_one)]
    hidden: usize,
    /// Do not reverse the question string.
    #[arg(long)]
    no_reverse: bool,
    /// The cell of encoder and decoder.
    #[arg(long, value_enum, default_value_t = CellKind::Lstm)]
    cell: CellKind,
}

/// LSTM encoder → RepeatVector → LSTM decoder → TimeDistributed(Dense).
#[derive(Module, Debug)]
struct Seq2Seq {
    encoder: Recurrent,
    decoder: Recurrent,
    dense: Linear,
    answer_len: usize,
}

impl Seq2Seq {
    /// `[batch, question_len, chars]` one-hot → logits `[batch, answer_len, chars]`.
    fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>, TrainError> {
        let (_, state) = self.encoder.forward(x, None)?;
        let encoded = last_layer(state.into_h(), 1);
        let repeated = repeat_vector(encoded, self.answer_len);
        let (decoded, _) = self.decoder.forward(repeated, None)?;
        Ok(self.dense.forward(decoded)) // Linear maps the last axis: TimeDistributed
    }
}

struct Addition {
    batcher: AdditionBatcher,
    reverse: bool,
    samples: Vec<AdditionItem>,
}

impl Objective<Seq2Seq> for Addition {
    type Item = AdditionItem;

    fn step(
        &mut self,
        model: &Seq2Seq,
        batch: Vec<AdditionItem>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let batch = self.batcher.batch(batch, device);
        tasks::sequence_classification(model.forward(batch.input)?, &batch.targets)
    }

    fn end_epoch(&mut self, model: &Seq2Seq, record: &EpochRecord) {
        let device = model.devices().into_iter().next().unwrap_or_default();
        let input = self.batcher.batch(self.samples.clone(), &device).input;
        let Ok(logits) = model.forward(input) else {
            return;
        };
        let guesses = logits
            .argmax(2)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        println!("--- epoch {}: validation samples", record.epoch);
        for (item, guess) in self
            .samples
            .iter()
            .zip(guesses.chunks(self.batcher.answer_len))
        {
            let guess = self
                .batcher
                .table
                .decode_indices(&guess.iter().map(|&g| g as usize).collect::<Vec<_>>());
            let question: String = if self.reverse {
                item.question.chars().rev().collect()
            } else {
                item.question.clone()
            };
            let mark = examples::verdict(guess == item.answer);
            println!("Q {question} T {} {mark} {guess}", item.answer);
        }
    }
}

fn main() -> std::process::ExitCode {
    examples::finish(run())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let selected = cli.common.select()?;
    let data_config = AdditionConfig {
        size: cli.size,
        digits: cli.digits,
        reverse: !cli.no_reverse,
        seed: cli.common.seed,
    };
    let (train, valid) = data_config.generate()?.split(0.1)?;
    println!(
        "{} training and {} validation questions",
        train.len(),
        valid.len()
    );

    let table = CharTable::new(ADDITION_CHARS);
    let device = selected.training_device();
    let (question_len, answer_len) = (data_config.question_len(), data_config.answer_len());
    let model = Seq2Seq {
        encoder: batch_first_layer(cli.cell, table.len(), cli.hidden, false, &device)?,
        decoder: batch_first_layer(cli.cell, cli.hidden, cli.hidden, false, &device)?,
        dense: LinearConfig::new(cli.hidden, table.len()).init(&device),
        answer_len,
    };
    // Ten fixed validation questions, spread over the set.
    let step = (valid.len() / 10).max(1);
    let samples = (0..10).filter_map(|k| valid.get(k * step).ok()).collect();
    let mut task = Addition {
        batcher: AdditionBatcher {
            table,
            question_len,
            answer_len,
        },
        reverse: data_config.reverse,
        samples,
    };
    // Keras' Adam 1e-3, with the rate × 0.1 for the last quarter: at a constant rate a seed's
    // last epoch can land on a spike (examples/README.md).
    let mut config = cli
        .train
        .config(cli.common.seed, 40, 128, Optimizer::adam(1e-3));
    examples::settle_last_quarter(&mut config);
    config.run_info = Some(examples::run_info("addition_rnn", &selected));
    let devices = cli.train.devices(&selected)?;
    let fitted = fit(&config, model, &mut task, &train, Some(&valid), devices)?;
    if let Some(v) = fitted.history.last().and_then(|e| e.valid) {
        println!(
            "validation exact-match accuracy: {:.2}%",
            v.exact_match.unwrap_or(0.0) * 100.0
        );
    }
    Ok(())
}
