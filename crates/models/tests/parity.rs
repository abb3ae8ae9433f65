//! Every layer and cell against PyTorch's numbers (fixtures from
//! `scripts/gen_model_fixtures.py`): outputs, final states and the gradients of a scalar loss
//! with respect to input, initial states and every parameter, on flex, ndarray and wgpu.

mod common;

use burn::tensor::{Device, Gradients, Tensor};
use common::{Case, FORWARD_TOL, GRAD_TOL, assert_close, device, load_cases};
use rnn_backend::Backend;
use rnn_models::{
    GruCellConfig, GruConfig, LstmCellConfig, LstmCellState, LstmConfig, LstmState, Nonlinearity,
    PytorchWeights, Recurrence, RnnCellConfig, RnnConfig, StateDict,
};

/// Any layer of the grid, run the same way.
enum Layer {
    Rnn(rnn_models::Rnn),
    Lstm(rnn_models::Lstm),
    Gru(rnn_models::Gru),
}

type Outputs = (Tensor<3>, Tensor<3>, Option<Tensor<3>>);

impl Layer {
    fn build(case: &Case, device: &Device, recurrence: Recurrence) -> Layer {
        let dict = case.state_dict();
        let (i, h) = (case.input_size, case.hidden_size);
        match case.kind.as_str() {
            "rnn_tanh" | "rnn_relu" => {
                let nl = if case.kind == "rnn_tanh" {
                    Nonlinearity::Tanh
                } else {
                    Nonlinearity::Relu
                };
                let layer = RnnConfig::new(i, h)
                    .with_nonlinearity(nl)
                    .with_num_layers(case.num_layers)
                    .with_bidirectional(case.bidirectional)
                    .with_batch_first(case.batch_first)
                    .init(device)
                    .unwrap();
                Layer::Rnn(
                    layer
                        .load_state_dict(&dict, "")
                        .unwrap()
                        .with_recurrence(recurrence),
                )
            }
            "lstm" | "lstm_proj" => {
                let layer = LstmConfig::new(i, h)
                    .with_proj_size(case.proj_size)
                    .with_num_layers(case.num_layers)
                    .with_bidirectional(case.bidirectional)
                    .with_batch_first(case.batch_first)
                    .init(device)
                    .unwrap();
                Layer::Lstm(
                    layer
                        .load_state_dict(&dict, "")
                        .unwrap()
                        .with_recurrence(recurrence),
                )
            }
            "gru" => {
                let layer = GruConfig::new(i, h)
                    .with_num_layers(case.num_layers)
                    .with_bidirectional(case.bidirectional)
                    .with_batch_first(case.batch_first)
                    .init(device)
                    .unwrap();
                Layer::Gru(
                    layer
                        .load_state_dict(&dict, "")
                        .unwrap()
                        .with_recurrence(recurrence),
                )
            }
            other => panic!("unknown kind {other}"),
        }
    }

    fn run(
        &self,
        x: Tensor<3>,
        lengths: Option<&[usize]>,
        h0: Tensor<3>,
        c0: Option<Tensor<3>>,
    ) -> Outputs {
        match (self, lengths) {
            (Layer::Rnn(l), None) => l.forward(x, Some(h0)).map(|(o, h)| (o, h, None)),
            (Layer::Rnn(l), Some(len)) => l
                .forward_with_lengths(x, len, Some(h0))
                .map(|(o, h)| (o, h, None)),
            (Layer::Gru(l), None) => l.forward(x, Some(h0)).map(|(o, h)| (o, h, None)),
            (Layer::Gru(l), Some(len)) => l
                .forward_with_lengths(x, len, Some(h0))
                .map(|(o, h)| (o, h, None)),
            (Layer::Lstm(l), lengths) => {
                let state = LstmState::new(h0, c0.expect("LSTM fixture has c0"));
                let r = match lengths {
                    None => l.forward(x, Some(state)),
                    Some(len) => l.forward_with_lengths(x, len, Some(state)),
                };
                r.map(|(o, s)| (o, s.h, Some(s.c)))
            }
        }
        .expect("forward")
    }

    fn grads(&self, grads: &Gradients) -> StateDict {
        match self {
            Layer::Rnn(l) => l.grads_state_dict(grads),
            Layer::Lstm(l) => l.grads_state_dict(grads),
            Layer::Gru(l) => l.grads_state_dict(grads),
        }
    }
}

fn assert_param_grads(name: &str, case: &Case, got: &StateDict) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        case.params.keys().map(String::as_str).collect::<Vec<_>>(),
        "{name}: parameter names"
    );
    for key in case.params.keys() {
        let (shape, values) = got.get(key).unwrap();
        common::assert_close_values(
            &format!("{name}: grad {key}"),
            values,
            shape,
            &case.grads[key],
            GRAD_TOL,
        );
    }
}

/// Forward only on the plain (non-autodiff) device: the inference path.
fn run_inference_case(name: &str, case: &Case, device: &Device, recurrence: Recurrence) {
    let layer = Layer::build(case, device, recurrence);
    let x = case.t("input").tensor::<3>(device);
    let h0 = case.t("h0").tensor::<3>(device);
    let c0 = case.tensors.get("c0").map(|c| c.tensor::<3>(device));
    let (out, h, c) = layer.run(x, case.lengths.as_deref(), h0, c0);
    assert_close(
        &format!("{name}: output"),
        out,
        case.t("output"),
        FORWARD_TOL,
    );
    assert_close(&format!("{name}: h_n"), h, case.t("h_n"), FORWARD_TOL);
    if let Some(c) = c {
        assert_close(&format!("{name}: c_n"), c, case.t("c_n"), FORWARD_TOL);
    }
}

fn run_layer_case(name: &str, case: &Case, device: &Device, recurrence: Recurrence) {
    let ad = device.clone().autodiff();
    let layer = Layer::build(case, &ad, recurrence);
    let x = case.t("input").tensor::<3>(&ad).require_grad();
    let h0 = case.t("h0").tensor::<3>(&ad).require_grad();
    let c0 = case
        .tensors
        .get("c0")
        .map(|c| c.tensor::<3>(&ad).require_grad());
    let (out, h, c) = layer.run(x.clone(), case.lengths.as_deref(), h0.clone(), c0.clone());

    assert_close(
        &format!("{name}: output"),
        out.clone(),
        case.t("output"),
        FORWARD_TOL,
    );
    assert_close(
        &format!("{name}: h_n"),
        h.clone(),
        case.t("h_n"),
        FORWARD_TOL,
    );
    let mut loss =
        (out * case.t("w_out").tensor::<3>(&ad)).sum() + (h * case.t("w_h").tensor::<3>(&ad)).sum();
    if let Some(c) = c {
        assert_close(
            &format!("{name}: c_n"),
            c.clone(),
            case.t("c_n"),
            FORWARD_TOL,
        );
        loss = loss + (c * case.t("w_c").tensor::<3>(&ad)).sum();
    }

    let grads = loss.backward();
    assert_close(
        &format!("{name}: grad input"),
        x.grad(&grads).unwrap(),
        &case.grads["input"],
        GRAD_TOL,
    );
    assert_close(
        &format!("{name}: grad h0"),
        h0.grad(&grads).unwrap(),
        &case.grads["h0"],
        GRAD_TOL,
    );
    if let Some(c0) = c0 {
        assert_close(
            &format!("{name}: grad c0"),
            c0.grad(&grads).unwrap(),
            &case.grads["c0"],
            GRAD_TOL,
        );
    }
    assert_param_grads(name, case, &layer.grads(&grads));
}

fn run_layer_file(file: &str, backend: Backend, recurrence: Recurrence) {
    let Some(device) = device(backend) else {
        return;
    };
    let cases = load_cases(file);
    assert_eq!(cases.len(), 16, "{file}: the grid has 16 cases per kind");
    for (name, case) in &cases {
        let name = format!("{backend}/{recurrence:?}/{name}");
        run_layer_case(&name, case, &device, recurrence);
        run_inference_case(&format!("{name} (inference)"), case, &device, recurrence);
    }
}

fn run_cells(backend: Backend) {
    let Some(device) = device(backend) else {
        return;
    };
    let ad = device.autodiff();
    let cases = load_cases("parity_cell.json");
    assert_eq!(cases.len(), 3);
    for (name, case) in &cases {
        let name = format!("{backend}/{name}");
        let dict = case.state_dict();
        let (i, h) = (case.input_size, case.hidden_size);
        let x = case.t("input").tensor::<2>(&ad).require_grad();
        let h0 = case.t("h0").tensor::<2>(&ad).require_grad();
        let w_h = case.t("w_h").tensor::<2>(&ad);
        let (loss, c0, params) = match case.kind.as_str() {
            "rnn_cell" => {
                let cell = RnnCellConfig::new(i, h)
                    .init(&ad)
                    .unwrap()
                    .load_state_dict(&dict, "")
                    .unwrap();
                let h1 = cell.step(x.clone(), Some(h0.clone())).unwrap();
                assert_close(
                    &format!("{name}: h'"),
                    h1.clone(),
                    case.t("h_n"),
                    FORWARD_TOL,
                );
                let loss = (h1 * w_h).sum();
                let g = loss.backward();
                (
                    g,
                    None,
                    Box::new(move |g: &Gradients| cell.grads_state_dict(g))
                        as Box<dyn Fn(&Gradients) -> StateDict>,
                )
            }
            "gru_cell" => {
                let cell = GruCellConfig::new(i, h)
                    .init(&ad)
                    .unwrap()
                    .load_state_dict(&dict, "")
                    .unwrap();
                let h1 = cell.step(x.clone(), Some(h0.clone())).unwrap();
                assert_close(
                    &format!("{name}: h'"),
                    h1.clone(),
                    case.t("h_n"),
                    FORWARD_TOL,
                );
                let g = (h1 * w_h).sum().backward();
                (
                    g,
                    None,
                    Box::new(move |g: &Gradients| cell.grads_state_dict(g))
                        as Box<dyn Fn(&Gradients) -> StateDict>,
                )
            }
            "lstm_cell" => {
                let cell = LstmCellConfig::new(i, h)
                    .init(&ad)
                    .unwrap()
                    .load_state_dict(&dict, "")
                    .unwrap();
                let c0 = case.t("c0").tensor::<2>(&ad).require_grad();
                let s = cell
                    .step(x.clone(), Some(LstmCellState::new(h0.clone(), c0.clone())))
                    .unwrap();
                assert_close(
                    &format!("{name}: h'"),
                    s.h.clone(),
                    case.t("h_n"),
                    FORWARD_TOL,
                );
                assert_close(
                    &format!("{name}: c'"),
                    s.c.clone(),
                    case.t("c_n"),
                    FORWARD_TOL,
                );
                let loss = (s.h * w_h).sum() + (s.c * case.t("w_c").tensor::<2>(&ad)).sum();
                let g = loss.backward();
                (
                    g,
                    Some(c0),
                    Box::new(move |g: &Gradients| cell.grads_state_dict(g))
                        as Box<dyn Fn(&Gradients) -> StateDict>,
                )
            }
            other => panic!("unknown cell {other}"),
        };
        assert_close(
            &format!("{name}: grad input"),
            x.grad(&loss).unwrap(),
            &case.grads["input"],
            GRAD_TOL,
        );
        assert_close(
            &format!("{name}: grad hx"),
            h0.grad(&loss).unwrap(),
            &case.grads["h0"],
            GRAD_TOL,
        );
        if let Some(c0) = c0 {
            assert_close(
                &format!("{name}: grad cx"),
                c0.grad(&loss).unwrap(),
                &case.grads["c0"],
                GRAD_TOL,
            );
        }
        assert_param_grads(&name, case, &params(&loss));
    }
}

macro_rules! parity_tests {
    ($($test:ident => $file:expr, $backend:expr, $recurrence:expr;)*) => {$(
        #[test]
        fn $test() {
            run_layer_file($file, $backend, $recurrence);
        }
    )*};
}

parity_tests! {
    rnn_tanh_flex => "parity_rnn_tanh.json", Backend::Flex, Recurrence::Auto;
    rnn_tanh_ndarray => "parity_rnn_tanh.json", Backend::NdArray, Recurrence::Auto;
    rnn_tanh_wgpu => "parity_rnn_tanh.json", Backend::Wgpu, Recurrence::Auto;
    rnn_relu_flex => "parity_rnn_relu.json", Backend::Flex, Recurrence::Auto;
    rnn_relu_ndarray => "parity_rnn_relu.json", Backend::NdArray, Recurrence::Auto;
    rnn_relu_wgpu => "parity_rnn_relu.json", Backend::Wgpu, Recurrence::Auto;
    lstm_flex => "parity_lstm.json", Backend::Flex, Recurrence::Auto;
    lstm_ndarray => "parity_lstm.json", Backend::NdArray, Recurrence::Auto;
    lstm_wgpu => "parity_lstm.json", Backend::Wgpu, Recurrence::Auto;
    lstm_proj_flex => "parity_lstm_proj.json", Backend::Flex, Recurrence::Auto;
    lstm_proj_ndarray => "parity_lstm_proj.json", Backend::NdArray, Recurrence::Auto;
    lstm_proj_wgpu => "parity_lstm_proj.json", Backend::Wgpu, Recurrence::Auto;
    gru_flex => "parity_gru.json", Backend::Flex, Recurrence::Auto;
    gru_ndarray => "parity_gru.json", Backend::NdArray, Recurrence::Auto;
    gru_wgpu => "parity_gru.json", Backend::Wgpu, Recurrence::Auto;
    // The reference path on the CPU too (Auto takes the fused kernels there).
    rnn_tanh_flex_reference => "parity_rnn_tanh.json", Backend::Flex, Recurrence::Reference;
    rnn_relu_flex_reference => "parity_rnn_relu.json", Backend::Flex, Recurrence::Reference;
    lstm_flex_reference => "parity_lstm.json", Backend::Flex, Recurrence::Reference;
    gru_flex_reference => "parity_gru.json", Backend::Flex, Recurrence::Reference;
}

/// The same grid on an NVIDIA GPU (reference path): `cargo test -p rnn-models --features
/// cuda-tests` on a machine with CUDA.
#[cfg(feature = "cuda-tests")]
mod cuda {
    use super::*;

    parity_tests! {
        rnn_tanh_cuda => "parity_rnn_tanh.json", Backend::Cuda, Recurrence::Auto;
        rnn_relu_cuda => "parity_rnn_relu.json", Backend::Cuda, Recurrence::Auto;
        lstm_cuda => "parity_lstm.json", Backend::Cuda, Recurrence::Auto;
        lstm_proj_cuda => "parity_lstm_proj.json", Backend::Cuda, Recurrence::Auto;
        gru_cuda => "parity_gru.json", Backend::Cuda, Recurrence::Auto;
    }

    #[test]
    fn cells_cuda() {
        run_cells(Backend::Cuda);
    }

    #[test]
    fn auto_takes_the_reference_path_on_cuda() {
        let device = device(Backend::Cuda).expect("cuda device");
        let lstm = LstmConfig::new(3, 4).init(&device).unwrap();
        assert!(!lstm.is_fused_on(&device));
        assert!(!lstm.is_fused_on(&device.clone().autodiff()));
    }
}

/// The grid above only proves the fused kernels if `Auto` really takes them on the CPU.
#[test]
fn auto_takes_the_fused_kernels_on_cpu_backends_only() {
    for (backend, expected) in [
        (Backend::Flex, true),
        (Backend::NdArray, true),
        (Backend::Wgpu, false),
    ] {
        let Some(device) = device(backend) else {
            continue;
        };
        let lstm = LstmConfig::new(3, 4).init(&device).unwrap();
        assert_eq!(lstm.is_fused_on(&device), expected, "{backend}");
        assert_eq!(
            lstm.is_fused_on(&device.clone().autodiff()),
            expected,
            "{backend}"
        );
        let reference = lstm.with_recurrence(Recurrence::Reference);
        assert!(!reference.is_fused_on(&device));
        let proj = LstmConfig::new(3, 4)
            .with_proj_size(2)
            .init(&device)
            .unwrap();
        assert!(
            !proj.is_fused_on(&device),
            "projection runs the reference path"
        );
        let gru = GruConfig::new(3, 4).init(&device).unwrap();
        assert_eq!(gru.is_fused_on(&device), expected);
        let rnn = RnnConfig::new(3, 4).init(&device).unwrap();
        assert_eq!(rnn.is_fused_on(&device), expected);
    }
}

#[test]
fn cells_flex() {
    run_cells(Backend::Flex);
}

#[test]
fn cells_ndarray() {
    run_cells(Backend::NdArray);
}

#[test]
fn cells_wgpu() {
    run_cells(Backend::Wgpu);
}
