//! The fused recurrence as one Burn operation: a backend extension whose CPU implementations
//! run [`parallel::forward`] on host buffers, and whose autodiff implementation records a single
//! graph node with [`parallel::backward`] as its hand-written backward.
//!
//! The op returns one packed 1-D tensor laid out by [`PackedLayout`]: an autodiff node has one
//! output, and slicing the three parts back out costs little next to the recurrence.

// burn-ndarray is deprecated in Burn 0.22 but still a supported backend of this toolkit.
#![allow(deprecated)]

use std::sync::Arc;

#[cfg(feature = "flex")]
use burn::backend::Flex;
#[cfg(feature = "ndarray")]
use burn::backend::NdArray;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, ExtensionType, TensorData, TensorMetadata, backend_extension};
use burn::tensor::DType;

use super::kernel::{Dims, Params, Saved};
use super::layout::PackedLayout;
use super::parallel::{self, Layer};

/// Everything about a call that is not a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec {
    /// Sizes of one direction.
    pub dims: Dims,
    /// Per-sequence lengths, or `None` when all run the full length.
    pub lengths: Option<Vec<usize>>,
    /// 1, or 2 for a bidirectional layer.
    pub directions: usize,
    /// Whether `b_ih` and `b_hh` are real parameters (otherwise they are ignored).
    pub bias: bool,
}

impl Spec {
    /// How the op's output (and the gradient flowing back) is packed.
    pub fn layout(&self) -> PackedLayout {
        PackedLayout::new(&self.dims, self.directions)
    }

    fn layer(&self) -> Layer<'_> {
        Layer {
            d: self.dims,
            lengths: self.lengths.as_deref(),
            directions: self.directions,
        }
    }
}

/// The op's tensors: batch-major input, PyTorch's weight layout with the `D` directions'
/// weights stacked along the first axis.
#[derive(ExtensionType)]
pub(crate) struct RecurrentInputs<B: Backend> {
    /// `[batch, seq, input]`.
    pub x: FloatTensor<B>,
    /// `[D·G·H, input]`.
    pub w_ih: FloatTensor<B>,
    /// `[D·G·H, hidden]`.
    pub w_hh: FloatTensor<B>,
    /// `[D·G·H]`.
    pub b_ih: FloatTensor<B>,
    /// `[D·G·H]`.
    pub b_hh: FloatTensor<B>,
    /// `[D, batch, hidden]`.
    pub h0: FloatTensor<B>,
    /// `[D, batch, hidden]`, read for LSTM only.
    pub c0: FloatTensor<B>,
}

/// Backends that run the fused recurrence.
#[backend_extension(Autodiff, Flex: cfg(feature = "flex"), NdArray: cfg(feature = "ndarray"))]
pub(crate) trait FusedRecurrence: Backend {
    /// One layer, both directions if bidirectional; returns the packed `out ++ h_n (++ c_n)`.
    fn fused_recurrence(
        #[extension_type] inputs: RecurrentInputs<Self>,
        spec: Spec,
    ) -> FloatTensor<Self>;
}

/// Reads a tensor of a CPU backend into host memory as `f32`.
fn host<B: Backend>(tensor: FloatTensor<B>) -> Vec<f32> {
    // Reading a CPU backend's buffer completes synchronously and cannot fail for a live tensor;
    // a failure here is a broken backend, not a user error.
    let data = burn::backend::try_read_sync(B::float_into_data(tensor))
        .expect("a CPU tensor reads synchronously")
        .expect("a CPU tensor reads without error");
    let data = if data.dtype() == DType::F32 {
        data
    } else {
        data.convert::<f32>()
    };
    data.try_into_vec::<f32>()
        .expect("converted to f32 just above")
}

fn to_backend<B: Backend>(values: Vec<f32>, shape: &[usize], device: &B::Device) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(values, shape.to_vec()), device)
}

/// Host copies of the op's inputs.
#[derive(Debug)]
struct HostInputs {
    x: Vec<f32>,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
    h0: Vec<f32>,
    c0: Vec<f32>,
}

impl HostInputs {
    fn read<B: Backend>(inputs: [FloatTensor<B>; 7]) -> Self {
        let [x, w_ih, w_hh, b_ih, b_hh, h0, c0] = inputs.map(host::<B>);
        Self {
            x,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            h0,
            c0,
        }
    }

    fn params(&self, bias: bool) -> Params<'_> {
        Params {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: bias.then_some(&self.b_ih[..]),
            b_hh: bias.then_some(&self.b_hh[..]),
        }
    }

    fn forward(&self, spec: &Spec, save: bool) -> (Vec<f32>, Option<Vec<Saved>>) {
        let layer = spec.layer();
        parallel::forward(
            layer.default_chunks(),
            layer,
            &self.params(spec.bias),
            &self.x,
            &self.h0,
            &self.c0,
            save,
        )
    }
}

impl<B: Backend> RecurrentInputs<B> {
    fn into_array(self) -> [FloatTensor<B>; 7] {
        [
            self.x, self.w_ih, self.w_hh, self.b_ih, self.b_hh, self.h0, self.c0,
        ]
    }
}

/// The inference path of a CPU backend: forward only, nothing saved.
fn run_untracked<B: Backend>(inputs: RecurrentInputs<B>, spec: &Spec) -> FloatTensor<B> {
    let device = inputs.x.device();
    let host = HostInputs::read::<B>(inputs.into_array());
    let (packed, _) = host.forward(spec, false);
    to_backend::<B>(packed, &[spec.layout().len()], &device)
}

#[cfg(feature = "flex")]
impl FusedRecurrence for Flex {
    fn fused_recurrence(inputs: RecurrentInputs<Self>, spec: Spec) -> FloatTensor<Self> {
        run_untracked::<Self>(inputs, &spec)
    }
}

#[cfg(feature = "ndarray")]
impl FusedRecurrence for NdArray {
    fn fused_recurrence(inputs: RecurrentInputs<Self>, spec: Spec) -> FloatTensor<Self> {
        run_untracked::<Self>(inputs, &spec)
    }
}

/// What the autodiff node keeps between forward and backward.
#[derive(Debug)]
struct NodeState<D> {
    spec: Spec,
    inputs: HostInputs,
    /// Per direction.
    saved: Vec<Saved>,
    device: D,
}

#[derive(Debug)]
struct FusedBackward;

impl<B: Backend> Backward<B, 7> for FusedBackward {
    type State = Arc<NodeState<B::Device>>;

    fn backward(self, ops: Ops<Self::State, 7>, grads: &mut Gradients, _: &mut Checkpointer) {
        let state = ops.state;
        let (d, dirs) = (state.spec.dims, state.spec.directions);
        let packed = host::<B>(grads.consume::<B>(&ops.node));
        let (d_out, d_hn, d_cn) = state.spec.layout().split(&packed);
        // The input's gradient is one GEMM over all rows; skip it when nothing wants it (a
        // first layer fed data).
        let need_x = ops.parents[0].is_some();
        let layer = state.spec.layer();
        let g = parallel::backward(
            layer.default_chunks(),
            layer,
            need_x,
            &state.inputs.params(state.spec.bias),
            &state.inputs.x,
            &state.saved,
            d_out,
            d_hn,
            d_cn,
        );
        let gh = dirs * d.gate_width();
        let shaped: [(Vec<f32>, Vec<usize>); 7] = [
            (g.x, vec![d.batch, d.seq, d.input]),
            (g.w_ih, vec![gh, d.input]),
            (g.w_hh, vec![gh, d.hidden]),
            (g.b_ih, vec![gh]),
            (g.b_hh, vec![gh]),
            (g.h0, vec![dirs, d.batch, d.hidden]),
            (g.c0, vec![dirs, d.batch, d.hidden]),
        ];
        for (parent, (grad, shape)) in ops.parents.into_iter().zip(shaped) {
            // A parent without a node needs no gradient (a constant, or c0 of a non-LSTM,
            // whose gradient buffer is empty and is never registered).
            if let Some(node) = parent
                && !grad.is_empty()
            {
                grads.register::<B>(node.id, to_backend::<B>(grad, &shape, &state.device));
            }
        }
    }
}

impl<B: Backend, C: CheckpointStrategy> FusedRecurrence for Autodiff<B, C> {
    fn fused_recurrence(inputs: RecurrentInputs<Self>, spec: Spec) -> FloatTensor<Self> {
        let nodes = [
            inputs.x.node(),
            inputs.w_ih.node(),
            inputs.w_hh.node(),
            inputs.b_ih.node(),
            inputs.b_hh.node(),
            inputs.h0.node(),
            inputs.c0.node(),
        ];
        let device = inputs.x.primitive().device();
        match FusedBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let primitives = inputs.into_array().map(|t| t.into_primitive());
                let host_inputs = HostInputs::read::<B>(primitives);
                let (packed, saved) = host_inputs.forward(&spec, true);
                let len = spec.layout().len();
                let state = Arc::new(NodeState {
                    spec,
                    inputs: host_inputs,
                    saved: saved.unwrap_or_default(),
                    device: device.clone(),
                });
                prep.finish(state, to_backend::<B>(packed, &[len], &device))
            }
            OpsKind::UnTracked(prep) => {
                let primitives = inputs.into_array().map(|t| t.into_primitive());
                let host_inputs = HostInputs::read::<B>(primitives);
                let (packed, _) = host_inputs.forward(&spec, false);
                let len = spec.layout().len();
                prep.finish(to_backend::<B>(packed, &[len], &device))
            }
        }
    }
}
