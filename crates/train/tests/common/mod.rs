//! What the rnn-train test binaries share: a tiny LSTM classifier and its data.

#![allow(dead_code)] // each test binary uses its own part

use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Device;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rnn_models::{Lstm, LstmConfig};

/// An LSTM and a linear read-out of its last step.
#[derive(Module, Debug)]
pub struct Classifier {
    pub lstm: Lstm,
    pub head: Linear,
}

impl Classifier {
    pub fn new(device: &Device) -> Self {
        Self {
            lstm: LstmConfig::new(1, 8)
                .with_batch_first(true)
                .init(device)
                .unwrap(),
            head: LinearConfig::new(8, 2).init(device),
        }
    }
}

/// Sequences of 6 values in [-1, 1]; class 1 when their sum is positive.
#[derive(Clone, Debug)]
pub struct Item {
    pub values: Vec<f32>,
    pub label: usize,
}

/// `n` items drawn with `seed`.
pub fn data(n: usize, seed: u64) -> InMemDataset<Item> {
    let mut rng = StdRng::seed_from_u64(seed);
    InMemDataset::new(
        (0..n)
            .map(|_| {
                let values: Vec<f32> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
                let label = usize::from(values.iter().sum::<f32>() > 0.0);
                Item { values, label }
            })
            .collect(),
    )
}
