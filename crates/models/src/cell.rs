//! Single-step cells, like `torch.nn.RNNCell`, `LSTMCell` and `GRUCell`: the caller owns the
//! time loop. One type, [`Cell`], for all three; they share their weights type and gate math
//! with the layers.

use std::marker::PhantomData;

use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use crate::kind::{AnyKind, GruKind, LayerKind, LstmKind, RnnKind};
use crate::stack::{StackShape, check_state, check_state_kind};
use crate::state::StateParts;
use crate::weights::{CellWeights, InitSpec};
use crate::{CellKind, ModelError, Nonlinearity};

/// One recurrent step with PyTorch's semantics. Use it through its kinds: [`RnnCell`],
/// [`LstmCell`], [`GruCell`] (built by their configs) or [`Cell<AnyKind>`] (converted with
/// `Cell::<AnyKind>::from`); `K` fixes the state type as for [`Layer`](crate::Layer).
#[derive(Module, Debug)]
pub struct Cell<K: LayerKind> {
    pub(crate) weights: CellWeights,
    #[module(skip)]
    pub(crate) shape: StackShape,
    #[module(skip)]
    kind: PhantomData<K>,
}

/// One Elman RNN step (`torch.nn.RNNCell`): `h' = act(W_ih x + b_ih + W_hh h + b_hh)`.
/// State: `h: [batch, hidden_size]`.
pub type RnnCell = Cell<RnnKind>;

/// One LSTM step (`torch.nn.LSTMCell`), gate order i, f, g, o as in PyTorch. State:
/// [`LstmCellState`](crate::LstmCellState), `h` and `c` `[batch, hidden_size]`.
pub type LstmCell = Cell<LstmKind>;

/// One GRU step (`torch.nn.GRUCell`), gate order r, z, n as in PyTorch. State:
/// `h: [batch, hidden_size]`.
pub type GruCell = Cell<GruKind>;

impl<K: LayerKind> Cell<K> {
    fn init(shape: StackShape, spec: &InitSpec, device: &Device) -> Result<Self, ModelError> {
        shape.check(spec.forget_bias)?;
        Ok(Self {
            weights: CellWeights::init(shape, shape.input_size, spec, device),
            shape,
            kind: PhantomData,
        })
    }

    /// Which recurrence the cell runs.
    pub fn kind(&self) -> CellKind {
        self.shape.kind
    }

    /// One step.
    ///
    /// # Shapes
    /// `input: [batch, input_size]`, `state`: `h` (and for LSTM `c`) `[batch, hidden_size]`,
    /// zeros when `None` → the new state, same shapes.
    ///
    /// # Errors
    /// [`ModelError`] for a wrong feature size, an empty batch, wrong state shapes, or (for
    /// `Cell<AnyKind>`) a state of another kind.
    pub fn step(
        &self,
        input: Tensor<2>,
        state: Option<K::CellState>,
    ) -> Result<K::CellState, ModelError> {
        let [batch, features] = input.dims();
        let hidden = self.shape.hidden_size;
        if features != self.shape.input_size {
            return Err(ModelError::InputSize {
                expected: self.shape.input_size,
                got: features,
                shape: input.dims().to_vec(),
            });
        }
        if batch == 0 {
            return Err(ModelError::EmptyInput { batch, seq: 1 });
        }
        let (h, c) = match state.map(StateParts::into_parts) {
            Some((h, c)) => {
                check_state_kind(self.shape.kind, c.is_some())?;
                check_state("hx", Some(&h), [batch, hidden])?;
                check_state("cx", c.as_ref(), [batch, hidden])?;
                (h, c)
            }
            None => (Tensor::zeros([batch, hidden], &input.device()), None),
        };
        let xp = self.weights.project_input(input);
        let (h, c) = self
            .weights
            .stepper(self.shape.kind, hidden, None)
            .step(xp, h, c);
        Ok(K::CellState::from_rows(vec![h], c.into_iter().collect()))
    }
}

/// `Cell::<AnyKind>::from(cell)` for each typed cell.
macro_rules! into_any_cell {
    ($($kind:ty),*) => {$(
        impl From<Cell<$kind>> for Cell<AnyKind> {
            fn from(cell: Cell<$kind>) -> Self {
                Cell {
                    weights: cell.weights,
                    shape: cell.shape,
                    kind: PhantomData,
                }
            }
        }
    )*};
}

into_any_cell!(LstmKind, GruKind, RnnKind);

/// How a cell config's weights are drawn.
fn init_spec(
    initializer: &Option<Initializer>,
    bias_initializer: &Option<Initializer>,
    forget_bias: Option<f64>,
) -> InitSpec {
    InitSpec {
        initializer: initializer.clone(),
        bias_initializer: bias_initializer.clone(),
        forget_bias,
    }
}

/// Configuration of an [`RnnCell`] (`torch.nn.RNNCell`).
#[derive(Config, Debug)]
pub struct RnnCellConfig {
    /// Features of the input.
    pub input_size: usize,
    /// Features of the hidden state.
    pub hidden_size: usize,
    /// Whether the cell has biases. Default `true`.
    #[config(default = true)]
    pub bias: bool,
    /// `tanh` (default) or `relu`.
    #[config(default = "Nonlinearity::Tanh")]
    pub nonlinearity: Nonlinearity,
    /// Weight initializer; `None` (default) is PyTorch's uniform `±1/√hidden_size`.
    pub initializer: Option<Initializer>,
    /// Bias initializer; `None` (the default) draws the biases like the weights, as PyTorch
    /// does. TensorFlow starts them at zero: `Some(Initializer::Zeros)`.
    pub bias_initializer: Option<Initializer>,
}

impl RnnCellConfig {
    /// Validates and draws the weights.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for zero sizes.
    pub fn init(&self, device: &Device) -> Result<RnnCell, ModelError> {
        let kind = self.nonlinearity.kind();
        let shape = StackShape::cell(kind, self.input_size, self.hidden_size, self.bias);
        let spec = init_spec(&self.initializer, &self.bias_initializer, None);
        Cell::init(shape, &spec, device)
    }
}

/// Configuration of an [`LstmCell`] (`torch.nn.LSTMCell`).
#[derive(Config, Debug)]
pub struct LstmCellConfig {
    /// Features of the input.
    pub input_size: usize,
    /// Features of `h` and `c`.
    pub hidden_size: usize,
    /// Whether the cell has biases. Default `true`.
    #[config(default = true)]
    pub bias: bool,
    /// Weight initializer; `None` (default) is PyTorch's uniform `±1/√hidden_size`.
    pub initializer: Option<Initializer>,
    /// Bias initializer; `None` (the default) draws the biases like the weights, as PyTorch
    /// does. TensorFlow starts them at zero: `Some(Initializer::Zeros)`.
    pub bias_initializer: Option<Initializer>,
    /// Start the forget-gate bias at this value (TensorFlow's habit); requires `bias`.
    pub forget_bias: Option<f64>,
}

impl LstmCellConfig {
    /// Validates and draws the weights.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for zero sizes or a `forget_bias` without `bias`.
    pub fn init(&self, device: &Device) -> Result<LstmCell, ModelError> {
        let shape = StackShape::cell(CellKind::Lstm, self.input_size, self.hidden_size, self.bias);
        let spec = init_spec(&self.initializer, &self.bias_initializer, self.forget_bias);
        Cell::init(shape, &spec, device)
    }
}

/// Configuration of a [`GruCell`] (`torch.nn.GRUCell`).
#[derive(Config, Debug)]
pub struct GruCellConfig {
    /// Features of the input.
    pub input_size: usize,
    /// Features of the hidden state.
    pub hidden_size: usize,
    /// Whether the cell has biases. Default `true`.
    #[config(default = true)]
    pub bias: bool,
    /// Weight initializer; `None` (default) is PyTorch's uniform `±1/√hidden_size`.
    pub initializer: Option<Initializer>,
    /// Bias initializer; `None` (the default) draws the biases like the weights, as PyTorch
    /// does. TensorFlow starts them at zero: `Some(Initializer::Zeros)`.
    pub bias_initializer: Option<Initializer>,
}

impl GruCellConfig {
    /// Validates and draws the weights.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for zero sizes.
    pub fn init(&self, device: &Device) -> Result<GruCell, ModelError> {
        let shape = StackShape::cell(CellKind::Gru, self.input_size, self.hidden_size, self.bias);
        let spec = init_spec(&self.initializer, &self.bias_initializer, None);
        Cell::init(shape, &spec, device)
    }
}
