//! Shared helpers of the rnn-models integration tests: fixtures, backends, comparisons.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use rnn_backend::Backend;
use rnn_models::StateDict;
use serde::Deserialize;

/// A tensor as the fixture generator writes it.
#[derive(Debug, Deserialize, Clone)]
pub struct Fx {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Fx {
    pub fn values(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }

    pub fn tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(self.values(), self.shape.clone()), device)
    }
}

/// One parity case written by `scripts/gen_model_fixtures.py`.
#[derive(Debug, Deserialize)]
pub struct Case {
    pub kind: String,
    pub input_size: usize,
    pub hidden_size: usize,
    pub proj_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
    pub batch_first: bool,
    pub lengths: Option<Vec<usize>>,
    pub tensors: BTreeMap<String, Fx>,
    pub params: BTreeMap<String, Fx>,
    pub grads: BTreeMap<String, Fx>,
}

impl Case {
    pub fn t(&self, name: &str) -> &Fx {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture lacks tensor {name}"))
    }

    /// The PyTorch parameters as a [`StateDict`].
    pub fn state_dict(&self) -> StateDict {
        let mut dict = StateDict::new();
        for (k, v) in &self.params {
            dict.insert(k.clone(), v.shape.clone(), v.values()).unwrap();
        }
        dict
    }
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

pub fn load_cases(file: &str) -> BTreeMap<String, Case> {
    let text = std::fs::read_to_string(fixture_path(file)).expect("fixture file");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Opens a backend. wgpu must be present (CI installs lavapipe); set `RNN_TEST_SKIP_WGPU=1`
/// to skip it knowingly on a machine without Vulkan.
pub fn device(backend: Backend) -> Option<Device> {
    match backend.select() {
        Ok(selected) => Some(selected.device().clone()),
        Err(e) if backend == Backend::Wgpu && std::env::var_os("RNN_TEST_SKIP_WGPU").is_some() => {
            eprintln!("skipping wgpu: {e}");
            None
        }
        Err(e) => panic!(
            "{backend} unavailable: {e} (install mesa-vulkan-drivers for wgpu, or set RNN_TEST_SKIP_WGPU=1)"
        ),
    }
}

/// `max|a − b| / max|b|`: the error relative to the reference tensor's scale.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want
        .iter()
        .fold(0f64, |m, &v| m.max((v as f64).abs()))
        .max(1e-6);
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    if got.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    diff / scale
}

/// Asserts shape and values of `got` against the fixture tensor within `tol` (relative).
pub fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: &Fx, tol: f64) {
    assert_eq!(got.dims().to_vec(), want.shape, "{what}: shape");
    let got = got
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    assert_close_values(what, &got, &want.shape, want, tol);
}

pub fn assert_close_values(what: &str, got: &[f32], shape: &[usize], want: &Fx, tol: f64) {
    assert_eq!(shape, want.shape.as_slice(), "{what}: shape");
    let err = rel_err(got, &want.values());
    assert!(err <= tol, "{what}: relative error {err:.3e} > {tol:.0e}");
}

pub const FORWARD_TOL: f64 = 1e-5;
pub const GRAD_TOL: f64 = 1e-4;
