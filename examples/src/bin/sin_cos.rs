//! The PyTorch RNN regression tutorial: from a stream of sin values predict cos, one window of
//! 10 points at a time, carrying the hidden state (detached) from window to window.
//!
//! `cargo run --release -p examples --bin sin_cos -- --out runs/sin_cos`
//! (MSE over the last 50 windows ≈ 0.01 or below; writes prediction.png: the trained model on
//! a fresh test stream, cos target against prediction, and report.html)

use std::path::Path;

use anyhow::Result;
use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use clap::Parser;
use examples::{CommonArgs, TrainArgs};
use rnn_datasets::{RegressionBatch, SinCos, SinCosBatcher, SinCosWindow};
use rnn_models::{Rnn, RnnConfig};
use rnn_train::{
    Carried, History, LineChart, Objective, Optimizer, Report, Series, StepOutput, TrainConfig,
    TrainError, evaluate, fit, line_chart, tasks,
};

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
    /// Windows of the test stream (a fresh stream from t = 0, the hidden state carried across
    /// windows) whose prediction --out draws into prediction.png.
    #[arg(long, default_value_t = 20, value_parser = examples::at_least_one)]
    test_windows: usize,
}

#[derive(Module, Debug)]
struct Model {
    rnn: Rnn,
    out: Linear,
}

/// Regression with the hidden state carried across windows; an evaluation pass also keeps
/// every point's `(t, target, prediction)` in `trace`.
#[derive(Default)]
struct SinToCos {
    state: Carried<Tensor<3>>,
    evaluating: bool,
    trace: Vec<(f64, f64, f64)>,
}

impl Objective<Model> for SinToCos {
    type Item = SinCosWindow;

    fn step(
        &mut self,
        model: &Model,
        batch: Vec<SinCosWindow>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let times: Vec<f32> = batch.iter().flat_map(|w| w.t.iter().copied()).collect();
        let RegressionBatch {
            input: x,
            target: y,
        } = SinCosBatcher.batch(batch, device);
        let (out, h) = model.rnn.forward(x, self.state.take())?;
        self.state.keep(h);
        let prediction = model.out.forward(out); // Linear maps the last axis: [n, t, 32] → [n, t, 1]
        if self.evaluating {
            let values = |p: &Tensor<3>| {
                p.to_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .map_err(|e| TrainError::step(format!("reading the prediction: {e:?}")))
            };
            let (p, target) = (values(&prediction)?, values(&y)?);
            self.trace.extend(
                times
                    .iter()
                    .zip(target.iter().zip(&p))
                    .map(|(&t, (&y, &p))| (f64::from(t), f64::from(y), f64::from(p))),
            );
        }
        tasks::regression(prediction, y)
    }

    fn start_pass(&mut self, training: bool) {
        self.state.reset();
        self.evaluating = !training;
        self.trace.clear();
    }

    fn carries_state(&self) -> bool {
        true
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
    config.run_info = Some(examples::run_info("sin_cos", &selected));
    let mut task = SinToCos::default();
    let devices = cli.train.devices(&selected)?;
    let fitted = fit(&config, model, &mut task, &stream, None, devices)?;

    let losses = fitted.history.step_losses();
    let tail = &losses[losses.len().saturating_sub(50)..];
    let mse = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    println!("MSE over the last {} windows: {mse:.5}", tail.len());
    if let Some(dir) = &cli.train.out {
        // A fresh stream, in order, one window per batch, the state carried as in training.
        let test = SinCos::new(cli.test_windows, cli.time_steps)?;
        let metrics = evaluate(&fitted.model, &mut task, &test, 1, selected.device())?;
        println!(
            "test stream ({} points): MSE {:.5}",
            task.trace.len(),
            metrics.loss
        );
        write_prediction(dir, &config, &fitted.history, &task.trace, metrics.loss)?;
    }
    Ok(())
}

/// Draws the test stream's cos target and prediction into `dir/prediction.png` and adds it,
/// with the test MSE, to `dir/report.html`.
fn write_prediction(
    dir: &Path,
    config: &TrainConfig,
    history: &History,
    trace: &[(f64, f64, f64)],
    mse: f64,
) -> Result<()> {
    let target: Vec<(f64, f64)> = trace.iter().map(|&(t, y, _)| (t, y)).collect();
    let prediction: Vec<(f64, f64)> = trace.iter().map(|&(t, _, p)| (t, p)).collect();
    let file = "prediction.png";
    let info = config.run_info.clone().unwrap_or_default();
    line_chart(
        &dir.join(file),
        &LineChart {
            title: "cos(t) predicted from sin(t) on the test stream",
            x_label: "t (radians)",
            y_label: "value",
            series: &[
                Series {
                    name: "target cos(t)",
                    points: &target,
                },
                Series {
                    name: "prediction",
                    points: &prediction,
                },
            ],
        },
        &info,
    )?;
    let report = Report::new(config, history)
        .result("test stream MSE", format!("{mse:.6}"))
        .result("test stream points", trace.len().to_string())
        .picture("cos target and prediction on the test stream", file)
        .write(dir)?;
    println!(
        "wrote {} (blue: cos target, red: prediction) and {}",
        dir.join(file).display(),
        report.display()
    );
    Ok(())
}
