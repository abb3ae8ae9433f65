use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use crate::stack::{Stack, StackShape};
use crate::weights::InitSpec;
use crate::{CellKind, LayerInfo, ModelError, Recurrence};

/// The nonlinearity of an Elman RNN (`nonlinearity=` in PyTorch).
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `relu`.
    Relu,
}

impl Nonlinearity {
    pub(crate) fn kind(self) -> CellKind {
        match self {
            Nonlinearity::Tanh => CellKind::RnnTanh,
            Nonlinearity::Relu => CellKind::RnnRelu,
        }
    }
}

/// Configuration of an [`Rnn`], with `torch.nn.RNN`'s option names and defaults.
#[derive(Config, Debug)]
pub struct RnnConfig {
    /// Features per time step of the input.
    pub input_size: usize,
    /// Features of the hidden state.
    pub hidden_size: usize,
    /// Stacked layers. Default 1.
    #[config(default = 1)]
    pub num_layers: usize,
    /// `tanh` (default) or `relu`.
    #[config(default = "Nonlinearity::Tanh")]
    pub nonlinearity: Nonlinearity,
    /// Whether the cells have `bias_ih` and `bias_hh`. Default `true`.
    #[config(default = true)]
    pub bias: bool,
    /// `true`: `[batch, seq, feature]` input and output; `false` (default): `[seq, batch, feature]`.
    #[config(default = false)]
    pub batch_first: bool,
    /// Dropout on each layer's output except the last, in training only. Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Add a reverse-time direction per layer. Default `false`.
    #[config(default = false)]
    pub bidirectional: bool,
    /// Weight initializer; `None` (default) is PyTorch's uniform `±1/√hidden_size`.
    pub initializer: Option<Initializer>,
    /// Bias initializer; `None` (the default) draws the biases like the weights, as PyTorch
    /// does. TensorFlow starts them at zero: `Some(Initializer::Zeros)`.
    pub bias_initializer: Option<Initializer>,
}

impl RnnConfig {
    /// Validates the configuration and draws the weights.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for zero sizes, `num_layers = 0` or dropout outside `[0, 1)`.
    pub fn init(&self, device: &Device) -> Result<Rnn, ModelError> {
        let shape = StackShape {
            kind: self.nonlinearity.kind(),
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            proj_size: 0,
            num_layers: self.num_layers,
            bias: self.bias,
            batch_first: self.batch_first,
            dropout: self.dropout,
            bidirectional: self.bidirectional,
        };
        let spec = InitSpec {
            initializer: self.initializer.clone(),
            bias_initializer: self.bias_initializer.clone(),
            forget_bias: None,
        };
        Ok(Rnn {
            stack: Stack::init(shape, &spec, device)?,
        })
    }
}

/// A multi-layer Elman RNN with `torch.nn.RNN`'s semantics:
/// `h' = act(W_ih x + b_ih + W_hh h + b_hh)` with `act` tanh or ReLU.
#[derive(Module, Debug)]
pub struct Rnn {
    pub(crate) stack: Stack,
}

impl Rnn {
    /// Runs the RNN over whole sequences.
    ///
    /// # Shapes
    /// - `input`: `[batch, seq, input_size]` if `batch_first`, else `[seq, batch, input_size]`
    /// - `h0`: `[layers·dirs, batch, hidden_size]`; zeros when `None`
    ///
    /// # Returns
    /// `(output, h_n)`: `output` `[batch, seq, dirs·hidden_size]` (or seq-first), `h_n`
    /// `[layers·dirs, batch, hidden_size]`.
    ///
    /// # Errors
    /// [`ModelError`] when the input's feature size, an empty axis or `h0`'s shape is wrong.
    pub fn forward(
        &self,
        input: Tensor<3>,
        h0: Option<Tensor<3>>,
    ) -> Result<(Tensor<3>, Tensor<3>), ModelError> {
        self.stack.run_h(input, None, h0)
    }

    /// Runs over a padded batch of variable-length sequences (PyTorch packed semantics; see
    /// [`Lstm::forward_with_lengths`](crate::Lstm::forward_with_lengths)).
    ///
    /// # Errors
    /// As [`Rnn::forward`], plus bad `lengths`.
    pub fn forward_with_lengths(
        &self,
        input: Tensor<3>,
        lengths: &[usize],
        h0: Option<Tensor<3>>,
    ) -> Result<(Tensor<3>, Tensor<3>), ModelError> {
        self.stack.run_h(input, Some(lengths), h0)
    }

    /// The layer's configuration facts, as PyTorch names them.
    pub fn info(&self) -> LayerInfo {
        self.stack.info()
    }

    /// Chooses how the recurrence runs (default [`Recurrence::Auto`]: the fused kernel where
    /// available). [`Recurrence::Reference`] forces the composed path, e.g. to cross-check.
    pub fn with_recurrence(mut self, recurrence: Recurrence) -> Self {
        self.stack.recurrence = recurrence;
        self
    }

    /// How the recurrence runs; see [`Self::with_recurrence`].
    pub fn recurrence(&self) -> Recurrence {
        self.stack.recurrence
    }

    /// Whether a call with f32 tensors on `device` takes the fused kernels.
    pub fn is_fused_on(&self, device: &Device) -> bool {
        self.stack.uses_fused(device, burn::tensor::DType::F32)
    }
}
