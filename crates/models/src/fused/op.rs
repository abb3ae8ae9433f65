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

/// A layer's biases, when it has them.
#[derive(ExtensionType)]
pub(crate) enum Biases<B: Backend> {
    /// `b_ih` and `b_hh`, each `[D·G·H]`.
    Both(FloatTensor<B>, FloatTensor<B>),
    /// `bias = false`: nothing is added.
    Absent,
}

/// A layer's initial cell state: LSTM only.
#[derive(ExtensionType)]
pub(crate) enum InitialCell<B: Backend> {
    /// `c0: [D, batch, hidden]`.
    Lstm(FloatTensor<B>),
    /// RNN and GRU carry no cell state.
    Absent,
}

/// The op's tensors: batch-major input, PyTorch's weight layout with the `D` directions'
/// weights stacked along the first axis. Optional inputs are absent, not zero-filled.
#[derive(ExtensionType)]
pub(crate) struct RecurrentInputs<B: Backend> {
    /// `[batch, seq, input]`.
    pub x: FloatTensor<B>,
    /// `[D·G·H, input]`.
    pub w_ih: FloatTensor<B>,
    /// `[D·G·H, hidden]`.
    pub w_hh: FloatTensor<B>,
    #[extension_type]
    pub biases: Biases<B>,
    /// `[D, batch, hidden]`.
    pub h0: FloatTensor<B>,
    #[extension_type]
    pub c0: InitialCell<B>,
}

/// Which input a tensor is, in the order the op lists the ones present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    X,
    WIh,
    WHh,
    BIh,
    BHh,
    H0,
    C0,
}

impl<B: Backend> RecurrentInputs<B> {
    /// The tensors present, each with its role; `x` always first.
    fn into_parts(self) -> Vec<(Role, FloatTensor<B>)> {
        let mut parts = vec![
            (Role::X, self.x),
            (Role::WIh, self.w_ih),
            (Role::WHh, self.w_hh),
        ];
        if let Biases::Both(b_ih, b_hh) = self.biases {
            parts.extend([(Role::BIh, b_ih), (Role::BHh, b_hh)]);
        }
        parts.push((Role::H0, self.h0));
        if let InitialCell::Lstm(c0) = self.c0 {
            parts.push((Role::C0, c0));
        }
        parts
    }
}

/// Backends that run the fused recurrence.
#[backend_extension(Autodiff, Flex: cfg(feature = "flex"), NdArray: cfg(feature = "ndarray"))]
pub(crate) trait FusedRecurrence: Backend {
    /// One layer, both directions if bidirectional; returns the packed output
    /// ([`Spec::layout`]).
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

/// Host copies of the op's inputs; absent ones stay empty.
#[derive(Debug, Default)]
struct HostInputs {
    x: Vec<f32>,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Option<Vec<f32>>,
    b_hh: Option<Vec<f32>>,
    h0: Vec<f32>,
    /// LSTM only.
    c0: Vec<f32>,
}

impl HostInputs {
    fn read<B: Backend>(parts: Vec<(Role, FloatTensor<B>)>) -> Self {
        let mut host_inputs = Self::default();
        for (role, tensor) in parts {
            let values = host::<B>(tensor);
            match role {
                Role::X => host_inputs.x = values,
                Role::WIh => host_inputs.w_ih = values,
                Role::WHh => host_inputs.w_hh = values,
                Role::BIh => host_inputs.b_ih = Some(values),
                Role::BHh => host_inputs.b_hh = Some(values),
                Role::H0 => host_inputs.h0 = values,
                Role::C0 => host_inputs.c0 = values,
            }
        }
        host_inputs
    }

    fn params(&self) -> Params<'_> {
        Params {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: self.b_ih.as_deref(),
            b_hh: self.b_hh.as_deref(),
        }
    }

    fn forward(&self, spec: &Spec, save: bool) -> (Vec<f32>, Option<Vec<Saved>>) {
        let layer = spec.layer();
        parallel::forward(
            layer.default_chunks(),
            layer,
            &self.params(),
            &self.x,
            &self.h0,
            &self.c0,
            save,
        )
    }
}

/// The inference path of a CPU backend: forward only, nothing saved.
fn run_untracked<B: Backend>(inputs: RecurrentInputs<B>, spec: &Spec) -> FloatTensor<B> {
    let device = inputs.x.device();
    let host = HostInputs::read::<B>(inputs.into_parts());
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
    /// The role of each parent, in order.
    roles: Vec<Role>,
    /// Per direction.
    saved: Vec<Saved>,
    device: D,
}

/// The op's backward with its `N` parents (4 to 7: biases and `c0` are optional).
#[derive(Debug)]
struct FusedBackward;

impl<B: Backend, const N: usize> Backward<B, N> for FusedBackward {
    type State = Arc<NodeState<B::Device>>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let state = ops.state;
        let (d, dirs) = (state.spec.dims, state.spec.directions);
        let packed = host::<B>(grads.consume::<B>(&ops.node));
        let (d_out, d_hn, d_cn) = state.spec.layout().split(&packed);
        // The input's gradient is one GEMM over all rows; skip it when nothing wants it (a
        // first layer fed data). `x` is always the first parent.
        let need_x = ops.parents[0].is_some();
        let layer = state.spec.layer();
        let mut g = parallel::backward(
            layer.default_chunks(),
            layer,
            need_x,
            &state.inputs.params(),
            &state.inputs.x,
            &state.saved,
            d_out,
            d_hn,
            d_cn,
        );
        let gh = dirs * d.gate_width();
        let state_shape = vec![dirs, d.batch, d.hidden];
        for (parent, role) in ops.parents.into_iter().zip(&state.roles) {
            // A parent without a node needs no gradient (a constant such as the data).
            let Some(node) = parent else { continue };
            let (grad, shape) = match role {
                Role::X => (std::mem::take(&mut g.x), vec![d.batch, d.seq, d.input]),
                Role::WIh => (std::mem::take(&mut g.w_ih), vec![gh, d.input]),
                Role::WHh => (std::mem::take(&mut g.w_hh), vec![gh, d.hidden]),
                Role::BIh => (std::mem::take(&mut g.b_ih), vec![gh]),
                Role::BHh => (std::mem::take(&mut g.b_hh), vec![gh]),
                Role::H0 => (std::mem::take(&mut g.h0), state_shape.clone()),
                Role::C0 => (std::mem::take(&mut g.c0), state_shape.clone()),
            };
            grads.register::<B>(node.id, to_backend::<B>(grad, &shape, &state.device));
        }
    }
}

/// Runs the op on an autodiff backend with its `N` present inputs as the node's parents.
fn record<B: Backend, C: CheckpointStrategy, const N: usize>(
    parts: Vec<(Role, FloatTensor<Autodiff<B, C>>)>,
    spec: Spec,
) -> FloatTensor<Autodiff<B, C>> {
    let roles: Vec<Role> = parts.iter().map(|(role, _)| *role).collect();
    let nodes: [_; N] = match parts
        .iter()
        .map(|(_, t)| t.node())
        .collect::<Vec<_>>()
        .try_into()
    {
        Ok(nodes) => nodes,
        Err(_) => unreachable!("record is called with N = the number of parts"),
    };
    let device = parts[0].1.primitive().device();
    let primitives: Vec<(Role, FloatTensor<B>)> = parts
        .into_iter()
        .map(|(role, t)| (role, t.into_primitive()))
        .collect();
    let host_inputs = HostInputs::read::<B>(primitives);
    let len = spec.layout().len();
    match FusedBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (packed, saved) = host_inputs.forward(&spec, true);
            let state = Arc::new(NodeState {
                spec,
                inputs: host_inputs,
                roles,
                saved: saved.unwrap_or_default(),
                device: device.clone(),
            });
            prep.finish(state, to_backend::<B>(packed, &[len], &device))
        }
        OpsKind::UnTracked(prep) => {
            let (packed, _) = host_inputs.forward(&spec, false);
            prep.finish(to_backend::<B>(packed, &[len], &device))
        }
    }
}

impl<B: Backend, C: CheckpointStrategy> FusedRecurrence for Autodiff<B, C> {
    fn fused_recurrence(inputs: RecurrentInputs<Self>, spec: Spec) -> FloatTensor<Self> {
        let parts = inputs.into_parts();
        // Autodiff nodes have a fixed parent count: one instantiation per set of inputs.
        match parts.len() {
            4 => record::<B, C, 4>(parts, spec),
            5 => record::<B, C, 5>(parts, spec),
            6 => record::<B, C, 6>(parts, spec),
            _ => record::<B, C, 7>(parts, spec),
        }
    }
}
