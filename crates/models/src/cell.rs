//! Single-step cells, like `torch.nn.RNNCell`, `LSTMCell` and `GRUCell`: the caller owns the
//! time loop. They share their weights type and gate math with the layers.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use crate::stack::check_state;
use crate::weights::{CellWeights, InitSpec};
use crate::{CellKind, LstmCellState, ModelError, Nonlinearity};

/// What the three cells share: weights, kind and sizes.
#[derive(Module, Debug)]
pub struct CellCore {
    pub(crate) weights: CellWeights,
    pub(crate) input_size: usize,
    pub(crate) hidden_size: usize,
    #[module(skip)]
    pub(crate) kind: CellKind,
}

impl CellCore {
    fn init(
        kind: CellKind,
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        spec: InitSpec,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let bad = |field, value: String, expected| ModelError::InvalidConfig {
            field,
            value,
            expected,
        };
        if input_size == 0 {
            return Err(bad("input_size", "0".into(), "at least 1"));
        }
        if hidden_size == 0 {
            return Err(bad("hidden_size", "0".into(), "at least 1"));
        }
        if let Some(v) = spec.forget_bias
            && (!v.is_finite() || !bias)
        {
            return Err(bad(
                "forget_bias",
                v.to_string(),
                "finite, and only with bias = true",
            ));
        }
        Ok(Self {
            weights: CellWeights::init(kind, input_size, hidden_size, 0, bias, &spec, device),
            input_size,
            hidden_size,
            kind,
        })
    }

    /// One step with shape checks: `input [batch, input]`, `h`, `c` `[batch, hidden]`.
    fn step(
        &self,
        input: Tensor<2>,
        h: Option<Tensor<2>>,
        c: Option<Tensor<2>>,
    ) -> Result<(Tensor<2>, Option<Tensor<2>>), ModelError> {
        let [batch, features] = input.dims();
        if features != self.input_size {
            return Err(ModelError::InputSize {
                expected: self.input_size,
                got: features,
                shape: input.dims().to_vec(),
            });
        }
        if batch == 0 {
            return Err(ModelError::EmptyInput { batch, seq: 1 });
        }
        check_state("hx", h.as_ref(), [batch, self.hidden_size])?;
        check_state("cx", c.as_ref(), [batch, self.hidden_size])?;
        let device = input.device();
        let h = h.unwrap_or_else(|| Tensor::zeros([batch, self.hidden_size], &device));
        let xp = self.weights.project_input(input);
        Ok(self
            .weights
            .stepper(self.kind, self.hidden_size)
            .step(xp, h, c))
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
        let spec = InitSpec {
            initializer: self.initializer.clone(),
            bias_initializer: self.bias_initializer.clone(),
            forget_bias: None,
        };
        let kind = self.nonlinearity.kind();
        CellCore::init(
            kind,
            self.input_size,
            self.hidden_size,
            self.bias,
            spec,
            device,
        )
        .map(|core| RnnCell { core })
    }
}

/// One Elman RNN step: `h' = act(W_ih x + b_ih + W_hh h + b_hh)`.
#[derive(Module, Debug)]
pub struct RnnCell {
    pub(crate) core: CellCore,
}

impl RnnCell {
    /// One step.
    ///
    /// # Shapes
    /// `input: [batch, input_size]`, `hx: [batch, hidden_size]` (zeros when `None`) →
    /// `h': [batch, hidden_size]`.
    ///
    /// # Errors
    /// [`ModelError`] for a wrong feature size, an empty batch or a wrong `hx` shape.
    pub fn step(&self, input: Tensor<2>, hx: Option<Tensor<2>>) -> Result<Tensor<2>, ModelError> {
        self.core.step(input, hx, None).map(|(h, _)| h)
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
        let spec = InitSpec {
            initializer: self.initializer.clone(),
            bias_initializer: self.bias_initializer.clone(),
            forget_bias: self.forget_bias,
        };
        CellCore::init(
            CellKind::Lstm,
            self.input_size,
            self.hidden_size,
            self.bias,
            spec,
            device,
        )
        .map(|core| LstmCell { core })
    }
}

/// One LSTM step, gate order i, f, g, o as in PyTorch.
#[derive(Module, Debug)]
pub struct LstmCell {
    pub(crate) core: CellCore,
}

impl LstmCell {
    /// One step.
    ///
    /// # Shapes
    /// `input: [batch, input_size]`, `state.h`, `state.c`: `[batch, hidden_size]` (zeros when
    /// `None`) → the new state, same shapes.
    ///
    /// # Errors
    /// [`ModelError`] for a wrong feature size, an empty batch or wrong state shapes.
    pub fn step(
        &self,
        input: Tensor<2>,
        state: Option<LstmCellState>,
    ) -> Result<LstmCellState, ModelError> {
        let (h, c) = match state {
            Some(LstmCellState { h, c }) => (Some(h), Some(c)),
            None => (None, None),
        };
        let (h, c) = self.core.step(input, h, c)?;
        let c = c.unwrap_or_else(|| h.zeros_like()); // always Some for LSTM; no panic path
        Ok(LstmCellState { h, c })
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
        let spec = InitSpec {
            initializer: self.initializer.clone(),
            bias_initializer: self.bias_initializer.clone(),
            forget_bias: None,
        };
        CellCore::init(
            CellKind::Gru,
            self.input_size,
            self.hidden_size,
            self.bias,
            spec,
            device,
        )
        .map(|core| GruCell { core })
    }
}

/// One GRU step, gate order r, z, n as in PyTorch.
#[derive(Module, Debug)]
pub struct GruCell {
    pub(crate) core: CellCore,
}

impl GruCell {
    /// One step.
    ///
    /// # Shapes
    /// `input: [batch, input_size]`, `hx: [batch, hidden_size]` (zeros when `None`) →
    /// `h': [batch, hidden_size]`.
    ///
    /// # Errors
    /// [`ModelError`] for a wrong feature size, an empty batch or a wrong `hx` shape.
    pub fn step(&self, input: Tensor<2>, hx: Option<Tensor<2>>) -> Result<Tensor<2>, ModelError> {
        self.core.step(input, hx, None).map(|(h, _)| h)
    }
}
