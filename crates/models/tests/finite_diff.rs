//! Autodiff gradients of tiny LSTM, GRU and RNN layers against central finite differences of
//! the same loss: an independent check of the fused backward passes — the CPU kernels on flex,
//! the CubeCL kernels on wgpu — that needs no PyTorch.

mod common;

use burn::tensor::{Device, Distribution, Tensor};
use rnn_backend::Backend;
use rnn_models::{GruConfig, LstmConfig, PytorchWeights, RnnConfig};

/// `Σ out ⊙ w`, accumulated in f64 on the host so the finite differences are not swamped by
/// f32 rounding in the reduction.
fn loss_f64(out: Tensor<3>, w: &[f32]) -> f64 {
    let out = out.into_data().try_to_vec::<f32>().unwrap();
    out.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Checks every parameter element: `|fd − ad| ≤ 1e-3 + 1e-2·|ad|` with step 1e-2 in f32.
fn check<L: PytorchWeights + Clone>(
    device: Device,
    build: impl Fn(&Device) -> L,
    forward: impl Fn(&L, Tensor<3>) -> Tensor<3>,
    input: [usize; 3],
) {
    let ad = device.clone().autodiff();
    let layer = build(&device);
    assert!(fused_on(&device), "the fused path is under test");
    device.seed(3);
    let x = Tensor::<3>::random(input, Distribution::Normal(0.0, 1.0), &device);
    let probe = forward(&layer, x.clone());
    let w = Tensor::<3>::random(probe.dims(), Distribution::Normal(0.0, 1.0), &device);
    let w_host = w.to_data().try_to_vec::<f32>().unwrap();

    // Autodiff on the training device.
    let dict = layer.state_dict();
    // The same values in parameters on the autodiff device.
    let ad_layer = build(&ad).load_state_dict(&dict, "").unwrap();
    let out = forward(&ad_layer, Tensor::from_data(x.to_data(), &ad));
    let grads = (out * Tensor::from_data(w.to_data(), &ad)).sum().backward();
    let analytic = ad_layer.grads_state_dict(&grads);

    let eps = 1e-2f32;
    let mut checked = 0;
    for key in dict.keys() {
        let (shape, values) = dict.get(key).unwrap();
        let (_, ad_values) = analytic.get(key).unwrap();
        for i in 0..values.len() {
            let eval = |delta: f32| {
                let mut d = dict.clone();
                let mut v = values.to_vec();
                v[i] += delta;
                d.insert(key, shape.to_vec(), v).unwrap();
                let l = layer.clone().load_state_dict(&d, "").unwrap();
                loss_f64(forward(&l, x.clone()), &w_host)
            };
            let fd = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
            let a = ad_values[i] as f64;
            assert!(
                (fd - a).abs() <= 1e-3 + 1e-2 * a.abs(),
                "{key}[{i}]: finite difference {fd:.6} vs autodiff {a:.6}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "checked {checked} parameters");
}

/// Whether layers run fused on `device`, with and without autodiff.
fn fused_on(device: &Device) -> bool {
    // Every layer kind takes the same decision; an LSTM of the same sizes stands for all.
    let probe = LstmConfig::new(2, 2).init(device).unwrap();
    probe.is_fused_on(device) && probe.is_fused_on(&device.clone().autodiff())
}

fn lstm(device: Device) {
    let build = |d: &Device| {
        LstmConfig::new(2, 2)
            .with_bidirectional(true)
            .init(d)
            .unwrap()
    };
    check(
        device,
        build,
        |l, x| l.forward(x, None).unwrap().0,
        [3, 2, 2],
    );
}

fn gru(device: Device) {
    let build = |d: &Device| GruConfig::new(2, 2).with_num_layers(2).init(d).unwrap();
    check(
        device,
        build,
        |l, x| l.forward(x, None).unwrap().0,
        [3, 2, 2],
    );
}

/// A bidirectional tanh RNN with variable lengths: the masked steps and the reverse
/// direction's reading order on top of the gate math. (Tanh: finite differences across a
/// ReLU's kink disagree with any correct derivative; PyTorch's fixtures cover ReLU.)
fn rnn_tanh(device: Device) {
    let build = |d: &Device| {
        RnnConfig::new(2, 3)
            .with_bidirectional(true)
            .with_batch_first(true)
            .init(d)
            .unwrap()
    };
    let forward =
        |l: &rnn_models::Rnn, x: Tensor<3>| l.forward_with_lengths(x, &[3, 1], None).unwrap().0;
    check(device, build, forward, [2, 3, 2]);
}

#[test]
fn lstm_gradients_match_finite_differences_flex() {
    lstm(Device::flex());
}

#[test]
fn gru_gradients_match_finite_differences_flex() {
    gru(Device::flex());
}

#[test]
fn rnn_gradients_match_finite_differences_flex() {
    rnn_tanh(Device::flex());
}

#[test]
fn lstm_gradients_match_finite_differences_wgpu() {
    if let Some(device) = common::device(Backend::Wgpu) {
        lstm(device);
    }
}

#[test]
fn gru_gradients_match_finite_differences_wgpu() {
    if let Some(device) = common::device(Backend::Wgpu) {
        gru(device);
    }
}

#[test]
fn rnn_gradients_match_finite_differences_wgpu() {
    if let Some(device) = common::device(Backend::Wgpu) {
        rnn_tanh(device);
    }
}
