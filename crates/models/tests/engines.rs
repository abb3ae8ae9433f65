//! The fused and reference engines against each other where the PyTorch fixtures do not reach:
//! layers without biases (the fused op then takes no bias inputs at all), and hidden sizes
//! whose rows the GPU kernels read in vectors of 2 and 4, with and without biases. The
//! reference path is itself checked against PyTorch in `parity.rs`, so agreement here ties
//! the fused one to it.

mod common;

use burn::tensor::{Device, Distribution, Tensor};
use common::{FORWARD_TOL, GRAD_TOL, rel_err};
use rnn_models::{CellKind, Engine, PytorchWeights, RecurrentConfig, RecurrentState};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Output, final `h` (and `c`) and every gradient of one engine.
struct Run {
    tensors: Vec<(String, Vec<f32>)>,
}

/// The inputs both engines see: one layer (cloned) and the same tensors.
struct Setup {
    kind: CellKind,
    layer: rnn_models::Recurrent,
    x: Tensor<3>,
    h0: Tensor<3>,
    c0: Tensor<3>,
    bias: bool,
    device: Device,
}

fn setup(kind: CellKind, hidden: usize, bias: bool, device: &Device) -> Setup {
    let device = device.clone().autodiff();
    device.seed(11);
    let (batch, seq, input) = (3, 5, 4);
    let layer = RecurrentConfig::new(kind, input, hidden)
        .with_bias(bias)
        .with_num_layers(2)
        .with_bidirectional(true)
        .with_batch_first(true)
        .init(&device)
        .unwrap();
    let random =
        |dims: [usize; 3]| Tensor::<3>::random(dims, Distribution::Default, &device).require_grad();
    Setup {
        kind,
        layer,
        x: random([batch, seq, input]),
        h0: random([4, batch, hidden]),
        c0: random([4, batch, hidden]),
        bias,
        device: device.clone(),
    }
}

fn run(s: &Setup, engine: Engine, lengths: Option<&[usize]>) -> Run {
    let (kind, device) = (s.kind, &s.device);
    let layer = s.layer.clone().with_engine(engine);
    assert_eq!(
        layer.is_fused_on(device),
        engine == Engine::Auto,
        "{kind}: the engine asked for runs"
    );
    let (x, h0, c0) = (s.x.clone(), s.h0.clone(), s.c0.clone());
    let state = if kind.has_cell_state() {
        RecurrentState::Lstm {
            h: h0.clone(),
            c: c0.clone(),
        }
    } else {
        RecurrentState::Hidden(h0.clone())
    };
    let (out, state) = match lengths {
        Some(lengths) => layer.forward_with_lengths(x.clone(), lengths, Some(state)),
        None => layer.forward(x.clone(), Some(state)),
    }
    .unwrap();
    // Weights on every output so that no gradient is a plain sum.
    let w_out = Tensor::<3>::from_data(
        burn::tensor::TensorData::new(
            (0..out.dims().iter().product::<usize>())
                .map(|i| ((i * 7) % 11) as f32 / 11.0)
                .collect::<Vec<_>>(),
            out.dims(),
        ),
        device,
    );
    let mut loss = (out.clone() * w_out).sum() + (state.h().clone() * 0.5).sum();
    let mut tensors = vec![
        ("output".to_string(), values(out)),
        ("h_n".to_string(), values(state.h().clone())),
    ];
    if let RecurrentState::Lstm { c, .. } = state {
        loss = loss + (c.clone() * 0.25).sum();
        tensors.push(("c_n".to_string(), values(c)));
    }
    let grads = loss.backward();
    tensors.push(("grad input".into(), values(x.grad(&grads).unwrap())));
    tensors.push(("grad h0".into(), values(h0.grad(&grads).unwrap())));
    if kind.has_cell_state() {
        tensors.push(("grad c0".into(), values(c0.grad(&grads).unwrap())));
    }
    let params = layer.grads_state_dict(&grads);
    assert_eq!(
        params.keys().any(|k| k.starts_with("bias")),
        s.bias,
        "{kind}: bias parameters as configured"
    );
    for key in params.keys() {
        let (_, grad) = params.get(key).unwrap();
        tensors.push((format!("grad {key}"), grad.to_vec()));
    }
    Run { tensors }
}

/// Hidden sizes 6 and 8: the GPU op's persistent loop reads `W_hh` in vectors of 2 and 4;
/// 64: 16 vectors a row, which it splits over several units of several vectors each (on
/// lavapipe's 8-lane plane 8 units of 2; under `RNN_GPU_LOOP=persistent:R:4`, 4 of 4). The
/// second layers' inputs (`2H`: 3, 2 and 32 vectors) leave the weight-gradient kernel's last
/// block of 4 source vectors part empty at `H = 6`.
fn agree(device: &Device, bias: bool) {
    let sizes = |k| [(k, 6), (k, 8), (k, 64)];
    for (kind, hidden) in CellKind::ALL.into_iter().flat_map(sizes) {
        let setup = setup(kind, hidden, bias, device);
        engines_agree(&setup, &format!("{kind} H={hidden} bias={bias}"));
    }
}

/// Both engines on `setup`, full length and with lengths: every output and gradient within
/// tolerance (`label` names the case in a failure).
fn engines_agree(setup: &Setup, label: &str) {
    for lengths in [None, Some(&[5, 2, 4][..])] {
        let fused = run(setup, Engine::Auto, lengths);
        let reference = run(setup, Engine::Reference, lengths);
        assert_eq!(fused.tensors.len(), reference.tensors.len(), "{label}");
        for ((name, got), (_, want)) in fused.tensors.iter().zip(&reference.tensors) {
            let tol = if name.starts_with("grad") {
                GRAD_TOL
            } else {
                FORWARD_TOL
            };
            let err = rel_err(got, want);
            assert!(
                err <= tol,
                "{label} {lengths:?} {name}: relative error {err:.3e} > {tol:.0e}"
            );
        }
    }
}

/// A seq2seq decoder's input, one vector repeated at every step (`repeat_vector`): the fused
/// CPU op projects it once and takes `W_ih`'s gradient from the steps' summed gate gradients.
#[test]
fn fused_and_reference_agree_on_a_repeated_input_flex() {
    let device = Device::flex();
    for kind in CellKind::ALL {
        let mut setup = setup(kind, 8, true, &device);
        let [batch, seq, input] = setup.x.dims();
        let vector = Tensor::<2>::random([batch, input], Distribution::Default, &setup.device);
        // A leaf holding repeated values, so that its own gradient is compared too.
        let repeated = rnn_models::repeat_vector(vector, seq).into_data();
        setup.x = Tensor::<3>::from_data(repeated, &setup.device).require_grad();
        engines_agree(&setup, &format!("{kind} repeated input"));
    }
}

#[test]
fn fused_and_reference_agree_without_biases_flex() {
    agree(&Device::flex(), false);
}

#[test]
fn fused_and_reference_agree_without_biases_wgpu() {
    if let Some(device) = common::device(rnn_backend::Backend::Wgpu) {
        agree(&device, false);
    }
}

#[test]
fn fused_and_reference_agree_with_biases_flex() {
    agree(&Device::flex(), true);
}

#[test]
fn fused_and_reference_agree_with_biases_wgpu() {
    if let Some(device) = common::device(rnn_backend::Backend::Wgpu) {
        agree(&device, true);
    }
}
