//! The same small computation — `tanh(x · W)`, forward and backward — gives the same numbers
//! on every compiled-in backend, and the errors for bad choices are the documented ones.

use burn::tensor::{Device, Tensor, TensorData};
use rnn_backend::{Backend, BackendError};

/// Deterministic inputs without any RNG: both backends start from identical bits.
fn data(rows: usize, cols: usize, phase: f32) -> TensorData {
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| ((i as f32) * 0.37 + phase).sin())
        .collect();
    TensorData::new(v, [rows, cols])
}

/// Returns `(y, dL/dx, dL/dW)` for `L = Σ tanh(x·W) ⊙ g`.
fn run(device: &Device) -> [Vec<f32>; 3] {
    let ad = device.clone().autodiff();
    let x = Tensor::<2>::from_data(data(4, 5, 0.1), &ad).require_grad();
    let w = Tensor::<2>::from_data(data(5, 3, 0.7), &ad).require_grad();
    let g = Tensor::<2>::from_data(data(4, 3, 1.3), &ad);
    let y = x.clone().matmul(w.clone()).tanh();
    let grads = (y.clone() * g).sum().backward();
    let host = |t: Tensor<2>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    [
        host(y),
        host(x.grad(&grads).unwrap()),
        host(w.grad(&grads).unwrap()),
    ]
}

/// Plain f64 reference on the host.
fn reference() -> [Vec<f32>; 3] {
    let x = data(4, 5, 0.1).try_to_vec::<f32>().unwrap();
    let w = data(5, 3, 0.7).try_to_vec::<f32>().unwrap();
    let g = data(4, 3, 1.3).try_to_vec::<f32>().unwrap();
    let mut y = [0f64; 12];
    let mut dz = [0f64; 12];
    for i in 0..4 {
        for j in 0..3 {
            let z: f64 = (0..5)
                .map(|k| x[i * 5 + k] as f64 * w[k * 3 + j] as f64)
                .sum();
            y[i * 3 + j] = z.tanh();
            dz[i * 3 + j] = g[i * 3 + j] as f64 * (1.0 - z.tanh().powi(2));
        }
    }
    let dx: Vec<f32> = (0..20)
        .map(|ik| {
            let (i, k) = (ik / 5, ik % 5);
            (0..3)
                .map(|j| dz[i * 3 + j] * w[k * 3 + j] as f64)
                .sum::<f64>() as f32
        })
        .collect();
    let dw: Vec<f32> = (0..15)
        .map(|kj| {
            let (k, j) = (kj / 3, kj % 3);
            (0..4)
                .map(|i| dz[i * 3 + j] * x[i * 5 + k] as f64)
                .sum::<f64>() as f32
        })
        .collect();
    [y.iter().map(|&v| v as f32).collect(), dx, dw]
}

fn assert_agree(backend: Backend, got: &[Vec<f32>; 3], want: &[Vec<f32>; 3]) {
    for (name, (g, w)) in ["y", "dx", "dW"].iter().zip(got.iter().zip(want)) {
        assert_eq!(g.len(), w.len());
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() <= 1e-5, "{backend} {name}: {a} vs {b}");
        }
    }
}

fn check(backend: Backend) {
    let selected = match backend.select() {
        Ok(s) => s,
        Err(e) if backend == Backend::Wgpu && std::env::var_os("RNN_TEST_SKIP_WGPU").is_some() => {
            eprintln!("skipping wgpu: {e}");
            return;
        }
        Err(e) => panic!("{backend}: {e}"),
    };
    assert_eq!(selected.backend(), backend);
    assert!(!selected.device().is_autodiff());
    assert!(selected.training_device().is_autodiff());
    assert!(selected.describe().starts_with(backend.name()));
    assert_agree(backend, &run(selected.device()), &reference());
}

#[test]
fn flex_matches_reference() {
    check(Backend::Flex);
}

#[test]
fn ndarray_matches_reference() {
    check(Backend::NdArray);
}

/// Runs on lavapipe in CI (`mesa-vulkan-drivers`); `RNN_TEST_SKIP_WGPU=1` skips it knowingly.
#[test]
fn wgpu_matches_reference() {
    check(Backend::Wgpu);
}

/// Compiled only with `--features cuda`; needs an NVIDIA GPU and driver.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_reference() {
    check(Backend::Cuda);
}

#[test]
fn wgpu_names_its_adapter() {
    if let Ok(selected) = Backend::Wgpu.select() {
        let adapter = selected.adapter().expect("wgpu reports its adapter");
        assert!(!adapter.is_empty());
        assert!(selected.describe().contains(adapter));
    }
}

#[test]
fn selecting_twice_gives_the_same_device() {
    for backend in Backend::compiled() {
        if let (Ok(a), Ok(b)) = (backend.select(), backend.select()) {
            assert_eq!(a.device(), b.device(), "{backend}");
        }
    }
}

#[test]
fn uncompiled_backends_are_errors_not_panics() {
    for backend in Backend::ALL.into_iter().filter(|b| !b.is_compiled()) {
        assert!(matches!(
            backend.select(),
            Err(BackendError::NotCompiled { .. })
        ));
    }
}
