//! The implementations under test, each turned into a closure that runs one step.

use burn::nn::{BiLstmConfig, GruConfig as BurnGruConfig, LstmConfig as BurnLstmConfig};
use burn::tensor::{Device, Distribution, Tensor};
use rnn_models::{CellKind, Engine, RecurrentConfig};
use serde::{Deserialize, Serialize};

use crate::{BenchError, Case};

/// Whose layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Implementation {
    /// rnn-models with [`Engine::Auto`]: the fused kernels where available.
    Ours,
    /// rnn-models with [`Engine::Reference`]: composed Burn ops.
    OursReference,
    /// burn-nn's built-in `Lstm` / `BiLstm` / `Gru` (it has no plain RNN).
    BurnNn,
}

impl Implementation {
    /// The column name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Implementation::Ours => "ours",
            Implementation::OursReference => "ours-reference",
            Implementation::BurnNn => "burn-nn",
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward, scalar loss (`output.sum()`), backward through every parameter.
    Train,
    /// Forward only, no autodiff.
    Infer,
}

/// One step of a case, ready to be timed.
pub type Step = Box<dyn FnMut() -> Result<(), BenchError>>;

/// Builds the layer of `case` for `implementation` on `device` and returns its step, or `None`
/// when the implementation has no such layer.
///
/// # Errors
/// [`BenchError::Model`] when the layer cannot be built.
pub fn prepare(
    implementation: Implementation,
    case: &Case,
    mode: Mode,
    device: &Device,
) -> Result<Option<Step>, BenchError> {
    let device = match mode {
        Mode::Train => device.clone().autodiff(),
        Mode::Infer => device.clone(),
    };
    let input = Tensor::<3>::random(
        [case.batch, case.seq, case.input],
        Distribution::Uniform(-1.0, 1.0),
        &device,
    );
    let forward: Box<dyn Fn(Tensor<3>) -> Result<Tensor<3>, BenchError>> = match implementation {
        Implementation::Ours | Implementation::OursReference => {
            let engine = if implementation == Implementation::Ours {
                Engine::Auto
            } else {
                Engine::Reference
            };
            ours(case, engine, &device)?
        }
        Implementation::BurnNn => match burn_nn(case, &device) {
            Some(f) => f,
            None => return Ok(None),
        },
    };
    let step_device = device.clone();
    Ok(Some(Box::new(move || {
        let loss = forward(input.clone())?.sum();
        if mode == Mode::Train {
            let _grads = loss.backward();
        } else {
            drop(loss);
        }
        step_device
            .sync()
            .map_err(|e| BenchError::Backend(e.to_string()))
    })))
}

type Forward = Box<dyn Fn(Tensor<3>) -> Result<Tensor<3>, BenchError>>;

fn ours(case: &Case, engine: Engine, device: &Device) -> Result<Forward, BenchError> {
    let layer = RecurrentConfig::new(case.cell, case.input, case.hidden)
        .with_num_layers(case.layers)
        .with_bidirectional(case.bidirectional)
        .with_batch_first(true)
        .with_engine(engine)
        .init(device)?;
    Ok(Box::new(move |x| Ok(layer.forward(x, None)?.0)))
}

/// burn-nn's layers, stacked by hand for several layers; `None` where burn-nn has no
/// equivalent (plain RNN, bidirectional GRU stacks are not in the suite).
fn burn_nn(case: &Case, device: &Device) -> Option<Forward> {
    let (i, h) = (case.input, case.hidden);
    match (case.cell, case.bidirectional) {
        (CellKind::Lstm, false) => {
            let layers: Vec<_> = (0..case.layers)
                .map(|l| BurnLstmConfig::new(if l == 0 { i } else { h }, h, true).init(device))
                .collect();
            Some(Box::new(move |mut x| {
                for layer in &layers {
                    x = layer.forward(x, None).0;
                }
                Ok(x)
            }))
        }
        (CellKind::Lstm, true) => {
            let layers: Vec<_> = (0..case.layers)
                .map(|l| BiLstmConfig::new(if l == 0 { i } else { 2 * h }, h, true).init(device))
                .collect();
            Some(Box::new(move |mut x| {
                for layer in &layers {
                    x = layer.forward(x, None).0;
                }
                Ok(x)
            }))
        }
        (CellKind::Gru, false) => {
            let layers: Vec<_> = (0..case.layers)
                .map(|l| BurnGruConfig::new(if l == 0 { i } else { h }, h, true).init(device))
                .collect();
            Some(Box::new(move |mut x| {
                for layer in &layers {
                    x = layer.forward(x, None);
                }
                Ok(x)
            }))
        }
        _ => None,
    }
}
