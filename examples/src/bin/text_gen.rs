//! Keras' LSTM text generation: learn to predict the next character from the 40 before it,
//! then write new text by sampling at temperatures 0.2, 0.5, 1.0 and 1.2 (`--cell gru|rnn` for
//! the other cells).
//!
//! `cargo run --release -p examples --bin text_gen -- --corpus my_book.txt`
//! (any UTF-8 text; the default is the built-in Gettysburg Address)

use std::path::PathBuf;

use anyhow::Result;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use clap::Parser;
use examples::{CommonArgs, TrainArgs};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rnn_datasets::{CharCorpus, NextCharItem};
use rnn_models::{CellKind, Recurrent, last_layer};
use rnn_train::{EpochRecord, Objective, Optimizer, StepOutput, TrainError, fit, tasks};

/// Character-level LSTM language model and sampler.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// UTF-8 text to learn from [default: the built-in Gettysburg Address, public domain].
    #[arg(long, value_parser = examples::existing_file)]
    corpus: Option<PathBuf>,
    /// Characters of context.
    #[arg(long, default_value_t = 40)]
    maxlen: usize,
    /// Stride between training windows.
    #[arg(long, default_value_t = 3)]
    step: usize,
    /// Recurrent units.
    #[arg(long, default_value_t = 128, value_parser = examples::at_least_one)]
    hidden: usize,
    /// The recurrent cell (Keras' example uses an LSTM).
    #[arg(long, value_enum, default_value_t = CellKind::Lstm)]
    cell: CellKind,
    /// Characters generated per temperature after each epoch.
    #[arg(long, default_value_t = 200)]
    generate: usize,
}

#[derive(Module, Debug)]
struct CharModel {
    rnn: Recurrent,
    dense: Linear,
}

impl CharModel {
    /// `[batch, maxlen, vocab]` one-hot → next-character logits `[batch, vocab]`.
    fn forward(&self, x: Tensor<3>) -> Result<Tensor<2>, TrainError> {
        let (_, state) = self.rnn.forward(x, None)?;
        Ok(self.dense.forward(last_layer(state.into_h(), 1)))
    }
}

struct NextChar {
    corpus: CharCorpus,
    maxlen: usize,
    generate: usize,
    rng: StdRng,
}

impl NextChar {
    fn one_hot(&self, windows: &[&[u32]], device: &Device) -> Tensor<3> {
        let vocab = self.corpus.vocab().len();
        let mut values = vec![0f32; windows.len() * self.maxlen * vocab];
        for (b, w) in windows.iter().enumerate() {
            for (t, &c) in w.iter().enumerate() {
                values[(b * self.maxlen + t) * vocab + c as usize] = 1.0;
            }
        }
        Tensor::from_data(
            TensorData::new(values, [windows.len(), self.maxlen, vocab]),
            device,
        )
    }

    /// Draws from `softmax(log p / temperature)`.
    fn sample(&mut self, log_probs: &[f32], temperature: f64) -> u32 {
        let scaled: Vec<f64> = log_probs.iter().map(|&l| l as f64 / temperature).collect();
        let max = scaled.iter().copied().fold(f64::MIN, f64::max);
        let weights: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
        let mut pick = self.rng.random::<f64>() * weights.iter().sum::<f64>();
        for (i, w) in weights.iter().enumerate() {
            pick -= w;
            if pick <= 0.0 {
                return i as u32;
            }
        }
        (weights.len() - 1) as u32
    }
}

impl Objective<CharModel> for NextChar {
    type Item = NextCharItem;

    fn step(
        &mut self,
        model: &CharModel,
        batch: Vec<NextCharItem>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let windows: Vec<&[u32]> = batch.iter().map(|i| i.input.as_slice()).collect();
        let logits = model.forward(self.one_hot(&windows, device))?;
        let targets: Vec<usize> = batch.iter().map(|i| i.target as usize).collect();
        tasks::classification(logits, &targets)
    }

    fn end_epoch(&mut self, model: &CharModel, record: &EpochRecord) {
        let device = model.devices().into_iter().next().unwrap_or_default();
        let start = self.rng.random_range(0..self.corpus.len() - self.maxlen);
        let seed: Vec<u32> = self.corpus.ids()[start..start + self.maxlen].to_vec();
        println!(
            "----- epoch {}: generating with seed \"{}\"",
            record.epoch,
            self.corpus.decode(&seed)
        );
        for temperature in [0.2, 0.5, 1.0, 1.2] {
            let mut window = seed.clone();
            let mut generated = Vec::with_capacity(self.generate);
            for _ in 0..self.generate {
                let Ok(logits) = model.forward(self.one_hot(&[&window], &device)) else {
                    return;
                };
                let log_probs = log_softmax(logits, 1)
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
                let next = self.sample(&log_probs, temperature);
                generated.push(next);
                window.remove(0);
                window.push(next);
            }
            println!(
                "----- temperature {temperature}:\n{}",
                self.corpus.decode(&generated)
            );
        }
    }
}

fn main() -> std::process::ExitCode {
    examples::finish(run())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let selected = cli.common.select()?;
    let corpus = match &cli.corpus {
        Some(path) => CharCorpus::from_file(path)?,
        None => CharCorpus::builtin(),
    };
    println!(
        "corpus: {} characters, {} distinct",
        corpus.len(),
        corpus.vocab().len()
    );
    let (train_text, valid_text) = corpus.split(0.1)?;
    let train = train_text.next_char_windows(cli.maxlen, cli.step)?;
    let valid = valid_text.next_char_windows(cli.maxlen, cli.step)?;

    let device = selected.training_device();
    let vocab = corpus.vocab().len();
    let model = CharModel {
        rnn: examples::batch_first_layer(cli.cell, vocab, cli.hidden, false, &device)?,
        dense: LinearConfig::new(cli.hidden, vocab).init(&device),
    };
    let mut task = NextChar {
        corpus,
        maxlen: cli.maxlen,
        generate: cli.generate,
        rng: StdRng::seed_from_u64(cli.common.seed),
    };
    let mut config = cli
        .train
        .config(cli.common.seed, 20, 128, Optimizer::rmsprop(0.01));
    config.run_info = Some(examples::run_info("text_gen", &selected));
    let devices = cli.train.devices(&selected)?;
    let fitted = fit(&config, model, &mut task, &train, Some(&valid), devices)?;
    let losses: Vec<f64> = fitted
        .history
        .epochs
        .iter()
        .filter_map(|e| e.valid.map(|v| v.loss))
        .collect();
    if let (Some(first), Some(last)) = (losses.first(), losses.last()) {
        println!(
            "validation loss: {first:.4} after epoch 1 → {last:.4} after epoch {}",
            losses.len()
        );
    }
    Ok(())
}
