//! The PyTorch RNN regression tutorial: from a stream of sin values predict cos, one window of
//! 10 points at a time, carrying the hidden state (detached) from window to window.
//!
//! `cargo run --release -p examples --bin sin_cos -- --out runs/sin_cos`
//! (MSE over the last 50 windows ≈ 0.01 or below; writes prediction.png)

use anyhow::Result;
use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use clap::Parser;
use examples::{CommonArgs, TrainArgs};
use rnn_datasets::{RegressionBatch, SinCos, SinCosBatcher, SinCosWindow};
use rnn_models::{Rnn, RnnConfig};
use rnn_train::{Carried, Objective, Optimizer, StepOutput, TrainError, fit, series_png, tasks};

/// sin → cos with an RNN(1, 32) and a linear read-out at every step.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Windows in the stream (training steps).
    #[arg(long, default_value_t = 300)]
    windows: usize,
    /// Points per window.
    #[arg(long, default_value_t = 10)]
    time_steps: usize,
}

#[derive(Module, Debug)]
struct Model {
    rnn: Rnn,
    out: Linear,
}

/// Regression with the hidden state carried across windows; keeps the last predictions.
#[derive(Default)]
struct SinToCos {
    state: Carried<Tensor<3>>,
    last: Vec<(f64, f64)>,
}

impl Objective<Model> for SinToCos {
    type Item = SinCosWindow;

    fn step(
        &mut self,
        model: &Model,
        batch: Vec<SinCosWindow>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let RegressionBatch {
            input: x,
            target: y,
        } = SinCosBatcher.batch(batch, device);
        let (out, h) = model.rnn.forward(x, self.state.take())?;
        self.state.keep(h);
        let prediction = model.out.forward(out); // Linear maps the last axis: [n, t, 32] → [n, t, 1]
        let values = |p: &Tensor<3>| {
            p.to_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default()
        };
        let (p, target) = (values(&prediction), values(&y));
        self.last = p
            .iter()
            .zip(&target)
            .map(|(&a, &b)| (a as f64, b as f64))
            .collect();
        tasks::regression(prediction, y)
    }

    fn start_pass(&mut self, _training: bool) {
        self.state.reset();
    }
}

fn main() -> std::process::ExitCode {
    examples::finish(run())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let selected = cli.common.select()?;
    let device = selected.training_device();
    let stream = SinCos::new(cli.windows, cli.time_steps)?;
    let model = Model {
        rnn: RnnConfig::new(1, 32).with_batch_first(true).init(&device)?,
        out: LinearConfig::new(32, 1).init(&device),
    };
    // One pass over the stream, one window per step, in order, as the tutorial does.
    let mut config = cli
        .train
        .config(cli.common.seed, 1, 1, Optimizer::adam(0.02));
    config.shuffle = false;
    let mut task = SinToCos::default();
    let fitted = fit(&config, model, &mut task, &stream, None, &device)?;

    let losses = fitted.history.step_losses();
    let tail = &losses[losses.len().saturating_sub(50)..];
    let mse = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    println!("MSE over the last {} windows: {mse:.5}", tail.len());
    if let Some(dir) = &cli.train.out {
        let (prediction, target): (Vec<f64>, Vec<f64>) = task.last.iter().copied().unzip();
        let path = dir.join("prediction.png");
        series_png(&path, &[&target, &prediction])?;
        println!(
            "wrote {} (red: cos target, blue: prediction, last window)",
            path.display()
        );
    }
    Ok(())
}
