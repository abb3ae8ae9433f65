//! Which recurrence a layer or cell runs: [`CellKind`] at run time, and the marker types that
//! give each layer type its state type at compile time.

use std::fmt;

/// Which recurrence a layer or cell runs — the one name for it across the toolkit (layers,
/// kernels, the examples' `--cell` flag, the benchmark). It drives the shared gate math in
/// `weights.rs`, so the layer types cannot drift apart.
///
/// With the `clap` feature it is a `clap::ValueEnum` (`--cell rnn|rnn-relu|lstm|gru`); with
/// `serde` it serializes by the same lowercase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CellKind {
    /// Elman RNN, `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    #[cfg_attr(feature = "clap", value(name = "rnn", alias = "rnn-tanh"))]
    #[cfg_attr(feature = "serde", serde(rename = "rnn", alias = "rnn-tanh"))]
    RnnTanh,
    /// Elman RNN with ReLU instead of tanh.
    #[cfg_attr(feature = "clap", value(name = "rnn-relu"))]
    #[cfg_attr(feature = "serde", serde(rename = "rnn-relu"))]
    RnnRelu,
    /// LSTM with PyTorch's gate order i, f, g, o.
    #[cfg_attr(feature = "serde", serde(rename = "lstm"))]
    Lstm,
    /// GRU with PyTorch's gate order r, z, n.
    #[cfg_attr(feature = "serde", serde(rename = "gru"))]
    Gru,
}

impl CellKind {
    /// Every kind, in a fixed order.
    pub const ALL: [CellKind; 4] = [
        CellKind::RnnTanh,
        CellKind::RnnRelu,
        CellKind::Lstm,
        CellKind::Gru,
    ];

    /// How many hidden-sized gate blocks the weight matrices stack (`G`): 1, 4 or 3.
    pub fn gate_count(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// Whether the cell carries a cell state `c` besides `h` (LSTM).
    pub fn has_cell_state(self) -> bool {
        self == CellKind::Lstm
    }

    /// Whether this is an Elman RNN (tanh or ReLU).
    pub fn is_elman(self) -> bool {
        matches!(self, CellKind::RnnTanh | CellKind::RnnRelu)
    }

    /// The name used on command lines and in reports: `rnn`, `rnn-relu`, `lstm`, `gru`.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::RnnTanh => "rnn",
            CellKind::RnnRelu => "rnn-relu",
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
        }
    }
}

impl fmt::Display for CellKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The compile-time side of a layer's kind: which state type its `forward` takes and returns.
/// Implemented by [`LstmKind`], [`GruKind`], [`RnnKind`] and [`AnyKind`] only.
pub trait LayerKind: sealed::Sealed + Clone + Copy + fmt::Debug + Send + Sync + 'static {
    /// The state of a whole layer: `[layers·dirs, batch, ·]` tensors.
    type State: crate::state::StateParts<3>;
    /// The state of a single-step cell: `[batch, ·]` tensors.
    type CellState: crate::state::StateParts<2>;
}

/// [`Lstm`](crate::Lstm) and [`LstmCell`](crate::LstmCell): the state is `(h, c)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LstmKind;

/// [`Gru`](crate::Gru) and [`GruCell`](crate::GruCell): the state is `h`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GruKind;

/// [`Rnn`](crate::Rnn) and [`RnnCell`](crate::RnnCell) (tanh or ReLU): the state is `h`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RnnKind;

/// [`Recurrent`](crate::Recurrent): a layer whose kind is chosen at run time; its state says
/// which it is ([`RecurrentState`](crate::RecurrentState)).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyKind;

impl sealed::Sealed for LstmKind {}
impl sealed::Sealed for GruKind {}
impl sealed::Sealed for RnnKind {}
impl sealed::Sealed for AnyKind {}

impl LayerKind for LstmKind {
    type State = crate::LstmState;
    type CellState = crate::LstmCellState;
}

impl LayerKind for GruKind {
    type State = burn::tensor::Tensor<3>;
    type CellState = burn::tensor::Tensor<2>;
}

impl LayerKind for RnnKind {
    type State = burn::tensor::Tensor<3>;
    type CellState = burn::tensor::Tensor<2>;
}

impl LayerKind for AnyKind {
    type State = crate::RecurrentState<3>;
    type CellState = crate::RecurrentState<2>;
}
