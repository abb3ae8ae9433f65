//! The PyTorch course's first sequence model: learn to turn "hello" into "ohlol", with an
//! `RNNCell` loop, an `RNN`, an `Embedding` + `RNN` + `Linear`, an LSTM or a GRU.
//!
//! `cargo run --release -p examples --bin hello_rnn -- --model embedding`

use anyhow::Result;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use examples::{CommonArgs, TrainArgs};
use rnn_datasets::{HELLO_VOCAB, hello_ohlol};
use rnn_models::{Gru, GruConfig, Lstm, LstmConfig, Rnn, RnnCell, RnnCellConfig, RnnConfig};
use rnn_train::{EpochRecord, Objective, Optimizer, StepOutput, TrainError, fit, tasks};

/// "hello" → "ohlol" in 15 epochs.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Which of the course's models to train.
    #[arg(long, value_enum, default_value_t = Variant::Cell)]
    model: Variant,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum Variant {
    /// `RNNCell(4, 4)` stepped by hand; its hidden state is the prediction.
    Cell,
    /// `RNN(4, 4)` over the whole sequence.
    Rnn,
    /// `Embedding(4, 10)` → `RNN(10, 8, num_layers=2)` → `Linear(8, 4)`.
    Embedding,
    /// `LSTM(4, 8)` → `Linear(8, 4)`.
    Lstm,
    /// `GRU(4, 8)` → `Linear(8, 4)`.
    Gru,
}

/// Whichever variant was asked for; the other parts are `None`.
#[derive(Module, Debug)]
struct Model {
    cell: Option<RnnCell>,
    rnn: Option<Rnn>,
    emb: Option<Embedding>,
    lstm: Option<Lstm>,
    gru: Option<Gru>,
    fc: Option<Linear>,
}

impl Model {
    fn new(variant: Variant, device: &Device) -> Result<Self> {
        let mut m = Model {
            cell: None,
            rnn: None,
            emb: None,
            lstm: None,
            gru: None,
            fc: None,
        };
        match variant {
            Variant::Cell => m.cell = Some(RnnCellConfig::new(4, 4).init(device)?),
            Variant::Rnn => m.rnn = Some(RnnConfig::new(4, 4).with_batch_first(true).init(device)?),
            Variant::Embedding => {
                m.emb = Some(EmbeddingConfig::new(4, 10).init(device));
                m.rnn = Some(
                    RnnConfig::new(10, 8)
                        .with_num_layers(2)
                        .with_batch_first(true)
                        .init(device)?,
                );
                m.fc = Some(LinearConfig::new(8, 4).init(device));
            }
            Variant::Lstm => {
                m.lstm = Some(LstmConfig::new(4, 8).with_batch_first(true).init(device)?);
                m.fc = Some(LinearConfig::new(8, 4).init(device));
            }
            Variant::Gru => {
                m.gru = Some(GruConfig::new(4, 8).with_batch_first(true).init(device)?);
                m.fc = Some(LinearConfig::new(8, 4).init(device));
            }
        }
        Ok(m)
    }

    /// Logits `[1, 5, 4]` for one sequence of character indices.
    fn forward(&self, chars: &[usize], device: &Device) -> Result<Tensor<3>, TrainError> {
        let one_hot: Vec<f32> = chars
            .iter()
            .flat_map(|&c| (0..4).map(move |k| f32::from(k == c)))
            .collect();
        let x = Tensor::<3>::from_data(TensorData::new(one_hot, [1, chars.len(), 4]), device);
        let out = if let Some(cell) = &self.cell {
            // The course's loop: one RNNCell step per character, the hidden state is the output.
            let mut h = None;
            let mut outs = Vec::new();
            for t in 0..chars.len() {
                let x_t = x.clone().narrow(1, t, 1).reshape([1, 4]);
                let next = cell.step(x_t, h)?;
                outs.push(next.clone());
                h = Some(next);
            }
            Tensor::stack(outs, 1)
        } else if let Some(emb) = &self.emb {
            let ids: Vec<i64> = chars.iter().map(|&c| c as i64).collect();
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, chars.len()]), device);
            let rnn = self
                .rnn
                .as_ref()
                .ok_or_else(|| TrainError::step("embedding model without RNN"))?;
            rnn.forward(emb.forward(ids), None)?.0
        } else if let Some(rnn) = &self.rnn {
            rnn.forward(x, None)?.0
        } else if let Some(lstm) = &self.lstm {
            lstm.forward(x, None)?.0
        } else if let Some(gru) = &self.gru {
            gru.forward(x, None)?.0
        } else {
            return Err(TrainError::step("empty model"));
        };
        Ok(match &self.fc {
            Some(fc) => fc.forward(out),
            None => out,
        })
    }
}

struct HelloToOhlol;

impl Objective<Model> for HelloToOhlol {
    type Item = (Vec<usize>, Vec<usize>);

    fn step(
        &mut self,
        model: &Model,
        batch: Vec<Self::Item>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let (input, target) = &batch[0];
        tasks::sequence_classification(model.forward(input, device)?, std::slice::from_ref(target))
    }

    fn end_epoch(&mut self, model: &Model, record: &EpochRecord) {
        let device = model.devices().into_iter().next().unwrap_or_default();
        if let Ok(predicted) = model.predict(&device) {
            println!(
                "Predicted: {predicted}, Epoch [{}/15] loss = {:.3}",
                record.epoch, record.train.loss
            );
        }
    }
}

impl Model {
    /// What the model now makes of "hello", decoded greedily.
    fn predict(&self, device: &Device) -> Result<String, TrainError> {
        let logits = self.forward(&hello_ohlol().0, device)?;
        let ids = logits
            .argmax(2)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .map_err(|e| TrainError::step(format!("{e:?}")))?;
        Ok(ids
            .iter()
            .map(|&i| HELLO_VOCAB.get(i as usize).copied().unwrap_or('?'))
            .collect())
    }
}

fn main() -> std::process::ExitCode {
    examples::finish(run())
}

/// The default `--seed`: the first seed at which all five variants learn "ohlol" (seed 0 does
/// for `embedding`, `lstm` and `gru` but not for `cell` and `rnn`). Learning from one
/// five-letter sequence in 15 steps succeeds for 70–100 % of seeds depending on the variant,
/// in PyTorch as here (examples/README.md has the rates), so the demo, like the course's
/// printed run, starts from a seed that works; `--seed N` shows the others.
const DEFAULT_SEED: &str = "4";

fn run() -> Result<()> {
    let command = Cli::command().mut_arg("seed", |arg| arg.default_value(DEFAULT_SEED));
    let cli = Cli::from_arg_matches(&command.get_matches())?;
    let selected = cli.common.select()?;
    let device = selected.training_device();
    let model = Model::new(cli.model, &device)?;
    let data = InMemDataset::new(vec![hello_ohlol()]);
    // The course's rates: 0.1 where the tanh state itself is the prediction, 0.05 elsewhere.
    let lr = if matches!(cli.model, Variant::Cell | Variant::Rnn) {
        0.1
    } else {
        0.05
    };
    let mut config = cli
        .train
        .config(cli.common.seed, 15, 1, Optimizer::adam(lr));
    config.quiet = true;
    config.log_every = usize::MAX;
    config.run_info = Some(examples::run_info("hello_rnn", &selected));
    let devices = cli.train.devices(&selected)?;
    let fitted = fit(&config, model, &mut HelloToOhlol, &data, None, devices)?;
    // Judged on the trained model (the last epoch's training statistics predate its update).
    let target: String = hello_ohlol()
        .1
        .iter()
        .map(|&i| HELLO_VOCAB.get(i).copied().unwrap_or('?'))
        .collect();
    let predicted = fitted.model.predict(&device)?;
    println!(
        "{}",
        if predicted == target {
            format!("learned: {target}")
        } else {
            "not learned yet".to_string()
        }
    );
    Ok(())
}
