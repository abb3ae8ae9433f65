//! Every layer and cell against PyTorch's numbers (fixtures from
//! `scripts/gen_model_fixtures.py`): outputs, final states and the gradients of a scalar loss
//! with respect to input, initial states and every parameter, on flex, ndarray and wgpu.

mod common;

use burn::tensor::{Device, Tensor};
use common::{Case, FORWARD_TOL, GRAD_TOL, assert_close, device, load_cases};
use rnn_backend::Backend;
use rnn_models::{
    AnyKind, Cell, CellKind, Engine, GruCellConfig, GruConfig, LstmCellConfig, LstmConfig,
    PytorchWeights, Recurrent, RecurrentConfig, RecurrentState, RnnCellConfig, RnnConfig,
    StateDict,
};

/// The fixtures' name for a layer kind, in the library's vocabulary (`lstm_proj` is an LSTM
/// with a projection).
fn kind_of(fixture_kind: &str) -> CellKind {
    match fixture_kind {
        "rnn_tanh" | "rnn_cell" => CellKind::RnnTanh,
        "rnn_relu" => CellKind::RnnRelu,
        "lstm" | "lstm_proj" | "lstm_cell" => CellKind::Lstm,
        "gru" | "gru_cell" => CellKind::Gru,
        other => panic!("unknown fixture kind {other}"),
    }
}

/// The case's layer with PyTorch's weights, whatever its kind.
fn build_layer(case: &Case, device: &Device, engine: Engine) -> Recurrent {
    let dict = case.state_dict();
    let (i, h) = (case.input_size, case.hidden_size);
    let kind = kind_of(&case.kind);
    let layer: Recurrent = if case.proj_size > 0 {
        LstmConfig::new(i, h)
            .with_proj_size(case.proj_size)
            .with_num_layers(case.num_layers)
            .with_bidirectional(case.bidirectional)
            .with_batch_first(case.batch_first)
            .init(device)
            .unwrap()
            .into()
    } else {
        RecurrentConfig::new(kind, i, h)
            .with_num_layers(case.num_layers)
            .with_bidirectional(case.bidirectional)
            .with_batch_first(case.batch_first)
            .init(device)
            .unwrap()
    };
    assert_eq!(layer.info().kind, kind);
    layer
        .load_state_dict(&dict, "")
        .unwrap()
        .with_engine(engine)
}

/// The fixture's initial state: `(h0, c0)` for LSTM, `h0` otherwise.
fn state_of(h0: Tensor<3>, c0: Option<Tensor<3>>) -> RecurrentState<3> {
    match c0 {
        Some(c) => RecurrentState::Lstm { h: h0, c },
        None => RecurrentState::Hidden(h0),
    }
}

/// Output, `h_n` and (LSTM) `c_n`.
type Outputs = (Tensor<3>, Tensor<3>, Option<Tensor<3>>);

fn run_layer(
    layer: &Recurrent,
    x: Tensor<3>,
    lengths: Option<&[usize]>,
    h0: Tensor<3>,
    c0: Option<Tensor<3>>,
) -> Outputs {
    let state = Some(state_of(h0, c0));
    let (out, state) = match lengths {
        None => layer.forward(x, state),
        Some(lengths) => layer.forward_with_lengths(x, lengths, state),
    }
    .expect("forward");
    match state {
        RecurrentState::Hidden(h) => (out, h, None),
        RecurrentState::Lstm { h, c } => (out, h, Some(c)),
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
fn run_inference_case(name: &str, case: &Case, device: &Device, engine: Engine) {
    let layer = build_layer(case, device, engine);
    let x = case.t("input").tensor::<3>(device);
    let h0 = case.t("h0").tensor::<3>(device);
    let c0 = case.tensors.get("c0").map(|c| c.tensor::<3>(device));
    let (out, h, c) = run_layer(&layer, x, case.lengths.as_deref(), h0, c0);
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

fn run_layer_case(name: &str, case: &Case, device: &Device, engine: Engine) {
    let ad = device.clone().autodiff();
    let layer = build_layer(case, &ad, engine);
    let x = case.t("input").tensor::<3>(&ad).require_grad();
    let h0 = case.t("h0").tensor::<3>(&ad).require_grad();
    let c0 = case
        .tensors
        .get("c0")
        .map(|c| c.tensor::<3>(&ad).require_grad());
    let (out, h, c) = run_layer(
        &layer,
        x.clone(),
        case.lengths.as_deref(),
        h0.clone(),
        c0.clone(),
    );

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
    assert_param_grads(name, case, &layer.grads_state_dict(&grads));
}

fn run_layer_file(file: &str, backend: Backend, engine: Engine) {
    let Some(device) = device(backend) else {
        return;
    };
    let cases = load_cases(file);
    assert_eq!(cases.len(), 16, "{file}: the grid has 16 cases per kind");
    for (name, case) in &cases {
        let name = format!("{backend}/{engine:?}/{name}");
        run_layer_case(&name, case, &device, engine);
        run_inference_case(&format!("{name} (inference)"), case, &device, engine);
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
        let kind = kind_of(&case.kind);
        let cell: Cell<AnyKind> = match kind {
            CellKind::RnnTanh => RnnCellConfig::new(i, h).init(&ad).map(Cell::from),
            CellKind::Lstm => LstmCellConfig::new(i, h).init(&ad).map(Cell::from),
            CellKind::Gru => GruCellConfig::new(i, h).init(&ad).map(Cell::from),
            CellKind::RnnRelu => panic!("no ReLU cell fixture"),
        }
        .unwrap()
        .load_state_dict(&dict, "")
        .unwrap();
        assert_eq!(cell.kind(), kind);
        let c0 = case
            .tensors
            .get("c0")
            .map(|c| c.tensor::<2>(&ad).require_grad());
        let state = match &c0 {
            Some(c0) => RecurrentState::Lstm {
                h: h0.clone(),
                c: c0.clone(),
            },
            None => RecurrentState::Hidden(h0.clone()),
        };
        let next = cell.step(x.clone(), Some(state)).unwrap();
        assert_close(
            &format!("{name}: h'"),
            next.h().clone(),
            case.t("h_n"),
            FORWARD_TOL,
        );
        let loss = match next {
            RecurrentState::Hidden(h1) => (h1 * w_h).sum(),
            RecurrentState::Lstm { h: h1, c: c1 } => {
                assert_close(
                    &format!("{name}: c'"),
                    c1.clone(),
                    case.t("c_n"),
                    FORWARD_TOL,
                );
                (h1 * w_h).sum() + (c1 * case.t("w_c").tensor::<2>(&ad)).sum()
            }
        };
        assert_eq!(
            c0.is_some(),
            kind == CellKind::Lstm,
            "{name}: c0 in the fixture"
        );
        let loss = loss.backward();
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
        assert_param_grads(&name, case, &cell.grads_state_dict(&loss));
    }
}

macro_rules! parity_tests {
    ($($test:ident => $file:expr, $backend:expr, $engine:expr;)*) => {$(
        #[test]
        fn $test() {
            run_layer_file($file, $backend, $engine);
        }
    )*};
}

parity_tests! {
    rnn_tanh_flex => "parity_rnn_tanh.json", Backend::Flex, Engine::Auto;
    rnn_tanh_ndarray => "parity_rnn_tanh.json", Backend::NdArray, Engine::Auto;
    rnn_tanh_wgpu => "parity_rnn_tanh.json", Backend::Wgpu, Engine::Auto;
    rnn_relu_flex => "parity_rnn_relu.json", Backend::Flex, Engine::Auto;
    rnn_relu_ndarray => "parity_rnn_relu.json", Backend::NdArray, Engine::Auto;
    rnn_relu_wgpu => "parity_rnn_relu.json", Backend::Wgpu, Engine::Auto;
    lstm_flex => "parity_lstm.json", Backend::Flex, Engine::Auto;
    lstm_ndarray => "parity_lstm.json", Backend::NdArray, Engine::Auto;
    lstm_wgpu => "parity_lstm.json", Backend::Wgpu, Engine::Auto;
    lstm_proj_flex => "parity_lstm_proj.json", Backend::Flex, Engine::Auto;
    lstm_proj_ndarray => "parity_lstm_proj.json", Backend::NdArray, Engine::Auto;
    lstm_proj_wgpu => "parity_lstm_proj.json", Backend::Wgpu, Engine::Auto;
    gru_flex => "parity_gru.json", Backend::Flex, Engine::Auto;
    gru_ndarray => "parity_gru.json", Backend::NdArray, Engine::Auto;
    gru_wgpu => "parity_gru.json", Backend::Wgpu, Engine::Auto;
    // The reference path on the CPU too (Auto takes the fused kernels there).
    rnn_tanh_flex_reference => "parity_rnn_tanh.json", Backend::Flex, Engine::Reference;
    rnn_relu_flex_reference => "parity_rnn_relu.json", Backend::Flex, Engine::Reference;
    lstm_flex_reference => "parity_lstm.json", Backend::Flex, Engine::Reference;
    gru_flex_reference => "parity_gru.json", Backend::Flex, Engine::Reference;
}

/// The same grid on an NVIDIA GPU (reference path): `cargo test -p rnn-models --features
/// cuda-tests` on a machine with CUDA.
#[cfg(feature = "cuda-tests")]
mod cuda {
    use super::*;

    parity_tests! {
        rnn_tanh_cuda => "parity_rnn_tanh.json", Backend::Cuda, Engine::Auto;
        rnn_relu_cuda => "parity_rnn_relu.json", Backend::Cuda, Engine::Auto;
        lstm_cuda => "parity_lstm.json", Backend::Cuda, Engine::Auto;
        lstm_proj_cuda => "parity_lstm_proj.json", Backend::Cuda, Engine::Auto;
        gru_cuda => "parity_gru.json", Backend::Cuda, Engine::Auto;
    }

    #[test]
    fn cells_cuda() {
        run_cells(Backend::Cuda);
    }

    #[test]
    fn auto_takes_the_fused_kernels_on_cuda() {
        let device = device(Backend::Cuda).expect("cuda device");
        let lstm = LstmConfig::new(3, 4).init(&device).unwrap();
        assert!(lstm.is_fused_on(&device));
        assert!(lstm.is_fused_on(&device.clone().autodiff()));
    }
}

/// The grid above only proves the fused kernels if `Auto` really takes them, on the CPU
/// backends and on wgpu.
#[test]
fn auto_takes_the_fused_kernels_on_every_backend() {
    for (backend, expected) in [
        (Backend::Flex, true),
        (Backend::NdArray, true),
        (Backend::Wgpu, true),
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
        let reference = lstm.with_engine(Engine::Reference);
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
