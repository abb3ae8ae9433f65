//! One layer type for every recurrence: [`Layer`], and its kinds [`Lstm`], [`Gru`], [`Rnn`]
//! and [`Recurrent`] (kind chosen at run time). They differ only in their state type.

use std::marker::PhantomData;

use burn::module::Module;
use burn::tensor::{DType, Device, Tensor};

use crate::kind::{AnyKind, GruKind, LayerKind, LstmKind, RnnKind};
use crate::stack::Stack;
use crate::{CellKind, Engine, ModelError};

/// A multi-layer recurrent network with PyTorch's semantics — stacked, optionally
/// bidirectional, with inter-layer dropout, initial and final states and variable lengths.
///
/// Use it through its kinds: [`Lstm`], [`Gru`], [`Rnn`] (built by their configs) and
/// [`Recurrent`] (built by [`RecurrentConfig`](crate::RecurrentConfig) or converted from any of
/// the three with `Recurrent::from`). `K` fixes the state type: [`LstmState`](crate::LstmState)
/// for LSTM, a `Tensor<3>` `h` for GRU and RNN, [`RecurrentState`](crate::RecurrentState) for
/// `Recurrent`.
#[derive(Module, Debug)]
pub struct Layer<K: LayerKind> {
    pub(crate) stack: Stack,
    #[module(skip)]
    kind: PhantomData<K>,
}

/// A multi-layer LSTM with `torch.nn.LSTM`'s semantics; built by
/// [`LstmConfig`](crate::LstmConfig).
///
/// For each layer and direction, with PyTorch's gate order i, f, g, o:
///
/// ```text
/// i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
/// g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
/// c' = f ⊙ c + i ⊙ g                         h' = o ⊙ tanh(c')   (then h' = W_hr h' if proj_size > 0)
/// ```
///
/// Its state is an [`LstmState`](crate::LstmState): `h: [layers·dirs, batch, out]` (`out` is
/// `proj_size` when projecting, else `hidden_size`) and `c: [layers·dirs, batch, hidden_size]`.
pub type Lstm = Layer<LstmKind>;

/// A multi-layer GRU with `torch.nn.GRU`'s semantics (gate order r, z, n); built by
/// [`GruConfig`](crate::GruConfig):
///
/// ```text
/// r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
/// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
/// h' = (1 − z) ⊙ n + z ⊙ h
/// ```
///
/// Its state is `h: [layers·dirs, batch, hidden_size]`.
pub type Gru = Layer<GruKind>;

/// A multi-layer Elman RNN with `torch.nn.RNN`'s semantics, built by
/// [`RnnConfig`](crate::RnnConfig): `h' = act(W_ih x + b_ih + W_hh h + b_hh)` with `act` tanh
/// or ReLU. Its state is `h: [layers·dirs, batch, hidden_size]`.
pub type Rnn = Layer<RnnKind>;

/// An RNN, LSTM or GRU whose kind is chosen at run time (e.g. a `--cell lstm|gru|rnn` flag);
/// its state is a [`RecurrentState`](crate::RecurrentState) that says which.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use rnn_models::{GruConfig, Recurrent};
///
/// let device = Device::flex();
/// let layer = Recurrent::from(GruConfig::new(3, 8).with_batch_first(true).init(&device)?);
/// let (out, state) = layer.forward(Tensor::<3>::zeros([2, 5, 3], &device), None)?; // [batch, seq, input]
/// assert_eq!((out.dims(), state.h().dims()), ([2, 5, 8], [1, 2, 8]));
/// # Ok::<(), rnn_models::ModelError>(())
/// ```
pub type Recurrent = Layer<AnyKind>;

/// What a layer is, in PyTorch's terms; returned by [`Layer::info`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Which recurrence.
    pub kind: CellKind,
    /// Features per input step.
    pub input_size: usize,
    /// Hidden features per direction.
    pub hidden_size: usize,
    /// LSTM projection size, 0 when not projecting.
    pub proj_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// Whether each layer also runs in reverse.
    pub bidirectional: bool,
    /// Whether input and output are `[batch, seq, feature]`.
    pub batch_first: bool,
    /// Features per output step: `directions · (proj_size or hidden_size)`.
    pub output_size: usize,
}

impl LayerInfo {
    /// 2 when bidirectional, else 1: the `num_directions` of PyTorch's state shapes.
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }
}

impl<K: LayerKind> Layer<K> {
    pub(crate) fn new(stack: Stack) -> Self {
        Self {
            stack,
            kind: PhantomData,
        }
    }

    /// Runs the layer over whole sequences.
    ///
    /// # Shapes
    /// - `input`: `[batch, seq, input_size]` if `batch_first`, else `[seq, batch, input_size]`
    /// - `state`: `h0: [layers·dirs, batch, out]` (and for LSTM `c0: [layers·dirs, batch,
    ///   hidden_size]`); zeros when `None`. `out` is `proj_size` when projecting, else
    ///   `hidden_size`.
    ///
    /// # Returns
    /// `(output, state)`: `output` is `[batch, seq, dirs·out]` (or seq-first), `state` holds
    /// the final `h_n` (and `c_n`) in the shapes above.
    ///
    /// # Errors
    /// [`ModelError`] when the input's feature size, an empty axis or a state's shape is
    /// wrong, or (for [`Recurrent`]) the state is of another kind.
    pub fn forward(
        &self,
        input: Tensor<3>,
        state: Option<K::State>,
    ) -> Result<(Tensor<3>, K::State), ModelError> {
        self.stack.run(input, None, state)
    }

    /// Runs over a padded batch of variable-length sequences, like PyTorch's
    /// `pack_padded_sequence` → layer → `pad_packed_sequence`.
    ///
    /// `lengths[b]` is sequence `b`'s true length (`1..=seq`, any order). Outputs past a
    /// sequence's end are zero; final states are taken at each sequence's own last step; the
    /// reverse direction starts at each sequence's last real step.
    ///
    /// # Errors
    /// As [`Layer::forward`], plus [`ModelError::LengthsCount`] and
    /// [`ModelError::LengthOutOfRange`].
    pub fn forward_with_lengths(
        &self,
        input: Tensor<3>,
        lengths: &[usize],
        state: Option<K::State>,
    ) -> Result<(Tensor<3>, K::State), ModelError> {
        self.stack.run(input, Some(lengths), state)
    }

    /// The layer's configuration facts, as PyTorch names them.
    pub fn info(&self) -> LayerInfo {
        let s = self.stack.shape;
        LayerInfo {
            kind: s.kind,
            input_size: s.input_size,
            hidden_size: s.hidden_size,
            proj_size: s.proj_size,
            num_layers: s.num_layers,
            bidirectional: s.bidirectional,
            batch_first: self.stack.batch_first,
            output_size: s.directions() * s.out_size(),
        }
    }

    /// Chooses the engine that runs the recurrence (default [`Engine::Auto`]: the fused
    /// kernels where available). [`Engine::Reference`] forces the composed path, e.g. to
    /// cross-check.
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.stack.engine = engine;
        self
    }

    /// The engine that runs the recurrence; see [`Self::with_engine`].
    pub fn engine(&self) -> Engine {
        self.stack.engine
    }

    /// Whether a call with f32 tensors on `device` takes the fused kernels.
    pub fn is_fused_on(&self, device: &Device) -> bool {
        self.stack.uses_fused(device, DType::F32)
    }
}

/// `Recurrent::from(layer)` for each typed layer (the generic form would overlap with
/// `From<T> for T`).
macro_rules! into_recurrent {
    ($($kind:ty),*) => {$(
        impl From<Layer<$kind>> for Recurrent {
            fn from(layer: Layer<$kind>) -> Self {
                Recurrent::new(layer.stack)
            }
        }
    )*};
}

into_recurrent!(LstmKind, GruKind, RnnKind);

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::{RecurrentConfig, RecurrentState};

    #[test]
    fn every_kind_builds_its_layer_with_the_shared_options() {
        let device = Device::flex();
        device.seed(7);
        for kind in CellKind::ALL {
            let layer = RecurrentConfig::new(kind, 3, 4)
                .with_num_layers(2)
                .with_bidirectional(true)
                .with_batch_first(true)
                .with_engine(Engine::Reference)
                .init(&device)
                .unwrap();
            let info = layer.info();
            assert_eq!(info.kind, kind);
            assert_eq!((info.num_layers, info.output_size), (2, 8), "{kind:?}");
            assert!(info.batch_first && info.bidirectional);
            assert_eq!(layer.engine(), Engine::Reference);
            let x = Tensor::<3>::full([1, 2, 3], -5.0, &device);
            let (out, state) = layer.forward(x, None).unwrap();
            // The state's parts follow the kind: (h, c) for LSTM, h alone otherwise.
            assert_eq!(
                matches!(state, RecurrentState::Lstm { .. }),
                kind == CellKind::Lstm
            );
            assert_eq!(state.h().dims(), [4, 1, 4]);
            // ReLU and tanh differ on negative pre-activations: the nonlinearity was passed on.
            if kind.is_elman() {
                let out = out.into_data().try_to_vec::<f32>().unwrap();
                let min = out.iter().copied().fold(f32::INFINITY, f32::min);
                assert_eq!(min >= 0.0, kind == CellKind::RnnRelu, "{kind:?}: min {min}");
            }
        }
        let err = RecurrentConfig::new(CellKind::Lstm, 0, 4)
            .init(&device)
            .unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::InvalidConfig {
                    field: "input_size",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_state_of_another_kind_is_a_typed_error() {
        let device = Device::flex();
        let x = Tensor::<3>::zeros([2, 1, 3], &device);
        let h = Tensor::<3>::zeros([1, 1, 4], &device);
        let gru = RecurrentConfig::new(CellKind::Gru, 3, 4)
            .init(&device)
            .unwrap();
        let lstm_state = RecurrentState::Lstm {
            h: h.clone(),
            c: h.clone(),
        };
        let err = gru.forward(x.clone(), Some(lstm_state)).unwrap_err();
        assert_eq!(
            err,
            ModelError::StateKind {
                kind: CellKind::Gru,
                expected: "h alone",
                got: "(h, c)"
            }
        );
        let lstm = RecurrentConfig::new(CellKind::Lstm, 3, 4)
            .init(&device)
            .unwrap();
        let err = lstm
            .forward(x, Some(RecurrentState::Hidden(h)))
            .unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::StateKind {
                    kind: CellKind::Lstm,
                    got: "h alone",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_typed_layer_converts_to_recurrent_with_the_same_numbers() {
        let device = Device::flex();
        device.seed(3);
        let lstm = crate::LstmConfig::new(3, 4).init(&device).unwrap();
        let x = Tensor::<3>::random([5, 2, 3], burn::tensor::Distribution::Default, &device);
        let (typed, typed_state) = lstm.forward(x.clone(), None).unwrap();
        let (dynamic, state) = Recurrent::from(lstm).forward(x, None).unwrap();
        let RecurrentState::Lstm { h, c } = state else {
            panic!("an LSTM's state has c");
        };
        typed.into_data().assert_eq(&dynamic.into_data(), true);
        typed_state.h.into_data().assert_eq(&h.into_data(), true);
        typed_state.c.into_data().assert_eq(&c.into_data(), true);
    }
}
