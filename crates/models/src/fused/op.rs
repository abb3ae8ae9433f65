//! The fused recurrence as one Burn operation: a backend extension ([`FusedRecurrence`]) whose
//! autodiff implementation records a single graph node with a hand-written backward.
//!
//! Each backend brings its kernels through [`FusedKernels`] — a forward that may keep what its
//! backward needs, and that backward: the CPU backends on host buffers ([`super::host`]), the
//! CubeCL backend on the device ([`super::gpu`]). The op returns one packed 1-D tensor laid out
//! by [`PackedLayout`]: an autodiff node has one output. [`FusedRecurrence::packed_part`] slices
//! the parts back out; its backward builds the packed gradient in one pass where the backend
//! allows ([`FusedKernels::packed_grad`]).

// burn-ndarray is deprecated in Burn 0.22 but still a supported backend of this toolkit.
#![allow(deprecated)]

use std::sync::Arc;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, ExtensionType, TensorMetadata, backend_extension};
use burn::tensor::{Shape, Slice};

use super::kernel::Dims;
use super::layout::PackedLayout;
use super::parallel::Layer;

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

    /// The CPU kernels' view of the call.
    pub fn layer(&self) -> Layer<'_> {
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
pub(crate) enum Role {
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
    pub fn into_parts(self) -> Vec<(Role, FloatTensor<B>)> {
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

    /// The same inputs on backend `C`, each tensor through `f` (in [`Self::into_parts`]' order).
    #[cfg(feature = "fusion")]
    pub fn map<C: Backend>(
        self,
        mut f: impl FnMut(FloatTensor<B>) -> FloatTensor<C>,
    ) -> RecurrentInputs<C> {
        RecurrentInputs::from_parts(
            self.into_parts()
                .into_iter()
                .map(|(role, t)| (role, f(t)))
                .collect(),
        )
    }

    /// The inverse of [`Self::into_parts`].
    fn from_parts(parts: Vec<(Role, FloatTensor<B>)>) -> Self {
        let mut parts = parts.into_iter();
        let mut next = |role: Role| match parts.next() {
            Some((r, t)) if r == role => t,
            _ => unreachable!("into_parts lists x, w_ih, w_hh first"),
        };
        let (x, w_ih, w_hh) = (next(Role::X), next(Role::WIh), next(Role::WHh));
        let (mut b_ih, mut b_hh, mut h0, mut c0) = (None, None, None, None);
        for (role, tensor) in parts {
            match role {
                Role::BIh => b_ih = Some(tensor),
                Role::BHh => b_hh = Some(tensor),
                Role::H0 => h0 = Some(tensor),
                Role::C0 => c0 = Some(tensor),
                Role::X | Role::WIh | Role::WHh => unreachable!("listed once, first"),
            }
        }
        Self {
            x,
            w_ih,
            w_hh,
            biases: match (b_ih, b_hh) {
                (Some(b_ih), Some(b_hh)) => Biases::Both(b_ih, b_hh),
                _ => Biases::Absent,
            },
            h0: h0.unwrap_or_else(|| unreachable!("h0 is always present")),
            c0: c0.map_or(InitialCell::Absent, InitialCell::Lstm),
        }
    }
}

/// The gradients of the op's inputs. Absent inputs have none; `x` has none when not asked for.
pub(crate) struct InputGrads<B: Backend> {
    /// `[batch, seq, input]`.
    pub x: Option<FloatTensor<B>>,
    /// `[D·G·H, input]`.
    pub w_ih: FloatTensor<B>,
    /// `[D·G·H, hidden]`.
    pub w_hh: FloatTensor<B>,
    /// `b_ih`, `b_hh`: `[D·G·H]` each.
    pub biases: Option<(FloatTensor<B>, FloatTensor<B>)>,
    /// `[D, batch, hidden]`.
    pub h0: FloatTensor<B>,
    /// `[D, batch, hidden]`, LSTM only.
    pub c0: Option<FloatTensor<B>>,
}

impl<B: Backend> InputGrads<B> {
    /// The same gradients on backend `C`, each tensor through `f`.
    #[cfg(feature = "fusion")]
    pub fn map<C: Backend>(
        self,
        mut f: impl FnMut(FloatTensor<B>) -> FloatTensor<C>,
    ) -> InputGrads<C> {
        InputGrads {
            x: self.x.map(&mut f),
            w_ih: f(self.w_ih),
            w_hh: f(self.w_hh),
            biases: self.biases.map(|(b_ih, b_hh)| (f(b_ih), f(b_hh))),
            h0: f(self.h0),
            c0: self.c0.map(&mut f),
        }
    }

    /// The gradient of the input with `role`.
    fn take(&mut self, role: Role) -> Option<FloatTensor<B>> {
        match role {
            Role::X => self.x.take(),
            Role::WIh => Some(self.w_ih.clone()),
            Role::WHh => Some(self.w_hh.clone()),
            Role::BIh => self.biases.as_ref().map(|(b, _)| b.clone()),
            Role::BHh => self.biases.as_ref().map(|(_, b)| b.clone()),
            Role::H0 => Some(self.h0.clone()),
            Role::C0 => self.c0.take(),
        }
    }
}

/// A backend's implementation of the op: what both the plain and the autodiff backend call.
pub(crate) trait FusedKernels: Backend {
    /// What forward keeps for backward.
    type Saved: Send + Sync + std::fmt::Debug + 'static;

    /// Runs the layer; returns the packed output ([`Spec::layout`]) and, when `save`, what
    /// [`Self::backward`] needs.
    fn forward(
        inputs: RecurrentInputs<Self>,
        spec: &Spec,
        save: bool,
    ) -> (FloatTensor<Self>, Option<Self::Saved>);

    /// BPTT from the packed output's gradient `grad`; `x`'s gradient only when `need_x`.
    fn backward(
        saved: &Self::Saved,
        spec: &Spec,
        grad: FloatTensor<Self>,
        need_x: bool,
    ) -> InputGrads<Self>;

    /// The gradient of a packed tensor of `total` elements from the gradient `grad` of its
    /// part `start..start + grad's length`: `grad` there, zeros elsewhere.
    ///
    /// This default is Burn's own slice backward (zeros, then the part assigned); the CPU
    /// backends build the buffer in one pass instead.
    fn packed_grad(grad: FloatTensor<Self>, start: usize, total: usize) -> FloatTensor<Self> {
        let len = grad.shape().num_elements();
        let zeros = Self::float_zeros(Shape::new([total]), &grad.device(), grad.dtype().into());
        Self::float_slice_assign(zeros, &[Slice::from(start..start + len)], grad)
    }
}

/// Backends that run the fused recurrence.
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
)]
pub(crate) trait FusedRecurrence: Backend {
    /// One layer, both directions if bidirectional; returns the packed output
    /// ([`Spec::layout`]).
    fn fused_recurrence(
        #[extension_type] inputs: RecurrentInputs<Self>,
        spec: Spec,
    ) -> FloatTensor<Self>;

    /// `packed[start..start + len]` of the 1-D packed output: `narrow` with a backward that
    /// writes the packed gradient once ([`FusedKernels::packed_grad`]).
    fn packed_part(packed: FloatTensor<Self>, start: usize, len: usize) -> FloatTensor<Self>;
}

/// The inference path: forward only, nothing saved.
macro_rules! untracked {
    ($backend:ty) => {
        impl FusedRecurrence for $backend {
            fn fused_recurrence(inputs: RecurrentInputs<Self>, spec: Spec) -> FloatTensor<Self> {
                <Self as FusedKernels>::forward(inputs, &spec, false).0
            }

            fn packed_part(
                packed: FloatTensor<Self>,
                start: usize,
                len: usize,
            ) -> FloatTensor<Self> {
                <Self as FloatTensorOps<Self>>::float_slice(
                    packed,
                    &[Slice::from(start..start + len)],
                )
            }
        }
    };
}

#[cfg(feature = "flex")]
untracked!(burn::backend::Flex);
#[cfg(feature = "ndarray")]
untracked!(burn::backend::NdArray);
#[cfg(any(feature = "wgpu", feature = "cuda"))]
untracked!(burn_cubecl::CubeBackend);
#[cfg(feature = "fusion")]
untracked!(burn::backend::fusion::Fusion<burn_cubecl::CubeBackend>);

/// What the autodiff node keeps between forward and backward.
#[derive(Debug)]
struct NodeState<B: FusedKernels> {
    spec: Spec,
    /// The role of each parent, in order.
    roles: Vec<Role>,
    saved: B::Saved,
}

/// The op's backward with its `N` parents (4 to 7: biases and `c0` are optional).
#[derive(Debug)]
struct FusedBackward;

impl<B: FusedKernels, const N: usize> Backward<B, N> for FusedBackward {
    type State = Arc<NodeState<B>>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let state = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        // The input's gradient is one GEMM over all rows; skip it when nothing wants it (a
        // first layer fed data). `x` is always the first parent.
        let need_x = ops.parents[0].is_some();
        let mut input_grads = B::backward(&state.saved, &state.spec, grad, need_x);
        for (parent, role) in ops.parents.into_iter().zip(&state.roles) {
            // A parent without a node needs no gradient (a constant such as the data).
            let Some(node) = parent else { continue };
            if let Some(grad) = input_grads.take(*role) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Runs the op on an autodiff backend with its `N` present inputs as the node's parents.
fn record<B: FusedKernels, C: CheckpointStrategy, const N: usize>(
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
    let inputs = RecurrentInputs::<B>::from_parts(
        parts
            .into_iter()
            .map(|(role, t)| (role, t.into_primitive()))
            .collect(),
    );
    match FusedBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (packed, saved) = B::forward(inputs, &spec, true);
            let saved = saved.unwrap_or_else(|| unreachable!("forward saves when asked"));
            let state = Arc::new(NodeState { spec, roles, saved });
            prep.finish(state, packed)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::forward(inputs, &spec, false).0),
    }
}

/// [`FusedRecurrence::packed_part`]'s backward; its state is `(start, total)`.
#[derive(Debug)]
struct PartBackward;

impl<B: FusedKernels> Backward<B, 1> for PartBackward {
    type State = (usize, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (start, total) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::packed_grad(grad, start, total)
        });
    }
}

impl<B: FusedKernels, C: CheckpointStrategy> FusedRecurrence for Autodiff<B, C> {
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

    fn packed_part(packed: FloatTensor<Self>, start: usize, len: usize) -> FloatTensor<Self> {
        let total = packed.shape().num_elements();
        let slice = [Slice::from(start..start + len)];
        let (packed, node) = packed.into_parts();
        match PartBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((start, total), B::float_slice(packed, &slice)),
            OpsKind::UnTracked(prep) => prep.finish(B::float_slice(packed, &slice)),
        }
    }
}
