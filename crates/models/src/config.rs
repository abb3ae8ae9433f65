//! The layers' configurations, with PyTorch's option names and defaults: [`LstmConfig`],
//! [`GruConfig`], [`RnnConfig`] and, for a kind chosen at run time, [`RecurrentConfig`].

use burn::config::Config;
use burn::nn::Initializer;
use burn::tensor::Device;

use crate::layer::Layer;
use crate::stack::{Stack, StackConfig, StackShape};
use crate::weights::InitSpec;
use crate::{CellKind, Engine, Gru, Lstm, ModelError, Recurrent, Rnn};

/// The [`StackConfig`] of a layer config: every layer config names these options alike.
macro_rules! stack_config {
    ($config:expr, $kind:expr, proj_size: $proj:expr, forget_bias: $forget:expr) => {{
        let c = $config;
        StackConfig {
            shape: StackShape {
                kind: $kind,
                input_size: c.input_size,
                hidden_size: c.hidden_size,
                proj_size: $proj,
                num_layers: c.num_layers,
                bidirectional: c.bidirectional,
                bias: c.bias,
            },
            init: InitSpec {
                initializer: c.initializer.clone(),
                bias_initializer: c.bias_initializer.clone(),
                forget_bias: $forget,
            },
            batch_first: c.batch_first,
            dropout: c.dropout,
            input_dropout: c.input_dropout,
            recurrent_dropout: c.recurrent_dropout,
        }
    }};
}

/// Configuration of an [`Lstm`], with `torch.nn.LSTM`'s option names and defaults.
#[derive(Config, Debug)]
pub struct LstmConfig {
    /// Features per time step of the input.
    pub input_size: usize,
    /// Features of the hidden state `h` (and of `c`).
    pub hidden_size: usize,
    /// Stacked layers. Default 1.
    #[config(default = 1)]
    pub num_layers: usize,
    /// Whether the cells have `bias_ih` and `bias_hh`. Default `true`.
    #[config(default = true)]
    pub bias: bool,
    /// `true`: input and output are `[batch, seq, feature]`; `false` (PyTorch's default):
    /// `[seq, batch, feature]`. States are `[layers·dirs, batch, hidden]` either way.
    #[config(default = false)]
    pub batch_first: bool,
    /// Dropout on each layer's output except the last, in training only. Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Dropout on each layer's input, in training: one mask per sequence, the same at every
    /// step (Keras' `dropout`). Default 0.
    #[config(default = 0.0)]
    pub input_dropout: f64,
    /// Dropout on the hidden state where it enters the recurrent weights, in training: one
    /// mask per sequence, the same at every step (Gal & Ghahramani 2016; Keras'
    /// `recurrent_dropout`; PyTorch has none). Training then takes the reference engine.
    /// Default 0.
    #[config(default = 0.0)]
    pub recurrent_dropout: f64,
    /// Run a second, reverse-time LSTM per layer and concatenate. Default `false`.
    #[config(default = false)]
    pub bidirectional: bool,
    /// If > 0, project `h` to this size with `weight_hr` (LSTMP). Default 0.
    #[config(default = 0)]
    pub proj_size: usize,
    /// Weight initializer; `None` (the default) is PyTorch's uniform `±1/√hidden_size`.
    pub initializer: Option<Initializer>,
    /// Bias initializer; `None` (the default) draws the biases like the weights, as PyTorch
    /// does. TensorFlow starts them at zero: `Some(Initializer::Zeros)`.
    pub bias_initializer: Option<Initializer>,
    /// Start the forget-gate bias at this value (TensorFlow's `forget_bias = 1.0`); `None`
    /// keeps the initializer's draw. Requires `bias`.
    pub forget_bias: Option<f64>,
}

impl LstmConfig {
    /// Validates the configuration and draws the weights.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for zero sizes, `num_layers = 0`, dropout outside
    /// `[0, 1)`, `proj_size >= hidden_size`, or a `forget_bias` without `bias`.
    pub fn init(&self, device: &Device) -> Result<Lstm, ModelError> {
        let config = stack_config!(self, CellKind::Lstm, proj_size: self.proj_size, forget_bias: self.forget_bias);
        Stack::init(&config, device).map(Layer::new)
    }
}

/// Configuration of a [`Gru`], with `torch.nn.GRU`'s option names and defaults.
#[derive(Config, Debug)]
pub struct GruConfig {
    /// Features per time step of the input.
    pub input_size: usize,
    /// Features of the hidden state.
    pub hidden_size: usize,
    /// Stacked layers. Default 1.
    #[config(default = 1)]
    pub num_layers: usize,
    /// Whether the cells have `bias_ih` and `bias_hh`. Default `true`.
    #[config(default = true)]
    pub bias: bool,
    /// `true`: `[batch, seq, feature]` input and output; `false` (default): `[seq, batch, feature]`.
    #[config(default = false)]
    pub batch_first: bool,
    /// Dropout on each layer's output except the last, in training only. Default 0.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Dropout on each layer's input, in training: one mask per sequence, the same at every
    /// step (Keras' `dropout`). Default 0.
    #[config(default = 0.0)]
    pub input_dropout: f64,
    /// Dropout on the hidden state where it enters the recurrent weights, in training: one
    /// mask per sequence, the same at every step (Gal & Ghahramani 2016; Keras'
    /// `recurrent_dropout`; PyTorch has none). Training then takes the reference engine.
    /// Default 0.
    #[config(default = 0.0)]
    pub recurrent_dropout: f64,
    /// Add a reverse-time direction per layer. Default `false`.
    #[config(default = false)]
    pub bidirectional: bool,
    /// Weight initializer; `None` (default) is PyTorch's uniform `±1/√hidden_size`.
    pub initializer: Option<Initializer>,
    /// Bias initializer; `None` (the default) draws the biases like the weights, as PyTorch
    /// does. TensorFlow starts them at zero: `Some(Initializer::Zeros)`.
    pub bias_initializer: Option<Initializer>,
}

impl GruConfig {
    /// Validates the configuration and draws the weights.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for zero sizes, `num_layers = 0` or dropout outside `[0, 1)`.
    pub fn init(&self, device: &Device) -> Result<Gru, ModelError> {
        let config = stack_config!(self, CellKind::Gru, proj_size: 0, forget_bias: None);
        Stack::init(&config, device).map(Layer::new)
    }
}

/// The nonlinearity of an Elman RNN (`nonlinearity=` in PyTorch).
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `relu`.
    Relu,
}

impl Nonlinearity {
    /// The cell kind an RNN with this nonlinearity runs.
    pub fn kind(self) -> CellKind {
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
    /// Dropout on each layer's input, in training: one mask per sequence, the same at every
    /// step (Keras' `dropout`). Default 0.
    #[config(default = 0.0)]
    pub input_dropout: f64,
    /// Dropout on the hidden state where it enters the recurrent weights, in training: one
    /// mask per sequence, the same at every step (Gal & Ghahramani 2016; Keras'
    /// `recurrent_dropout`; PyTorch has none). Training then takes the reference engine.
    /// Default 0.
    #[config(default = 0.0)]
    pub recurrent_dropout: f64,
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
        let kind = self.nonlinearity.kind();
        let config = stack_config!(self, kind, proj_size: 0, forget_bias: None);
        Stack::init(&config, device).map(Layer::new)
    }
}

/// The options every recurrent layer shares, for a layer whose kind is picked at run time;
/// [`RecurrentConfig::init`] builds a [`Recurrent`]. Kind-specific options (LSTM projection,
/// forget bias) stay on the layers' own configs; convert such a layer with `Recurrent::from`.
///
/// ```
/// use burn::tensor::Device;
/// use rnn_models::{CellKind, RecurrentConfig};
///
/// let layer = RecurrentConfig::new(CellKind::Gru, 3, 8)
///     .with_num_layers(2)
///     .with_batch_first(true)
///     .init(&Device::flex())?;
/// assert_eq!(layer.info().num_layers, 2);
/// # Ok::<(), rnn_models::ModelError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentConfig {
    /// Which layer: `RnnTanh`, `RnnRelu`, `Lstm` or `Gru`.
    pub kind: CellKind,
    /// Features per time step of the input.
    pub input_size: usize,
    /// Features of the hidden state.
    pub hidden_size: usize,
    /// Stacked layers (default 1).
    pub num_layers: usize,
    /// Run a reverse-time layer too (default `false`).
    pub bidirectional: bool,
    /// Whether the cells have `bias_ih` and `bias_hh` (default `true`).
    pub bias: bool,
    /// `[batch, seq, feature]` input and output (default `false`: `[seq, batch, feature]`).
    pub batch_first: bool,
    /// Dropout between layers in training (default 0).
    pub dropout: f64,
    /// Input dropout, one mask per sequence for all steps, in training (default 0).
    pub input_dropout: f64,
    /// Recurrent dropout, one mask per sequence for all steps, in training (default 0).
    pub recurrent_dropout: f64,
    /// Weight initializer; `None` (default) is PyTorch's uniform `±1/√hidden_size`.
    pub initializer: Option<Initializer>,
    /// Bias initializer; `None` (default) draws the biases like the weights.
    pub bias_initializer: Option<Initializer>,
    /// The engine that runs the recurrence (default [`Engine::Auto`]).
    pub engine: Engine,
}

impl RecurrentConfig {
    /// A one-layer, unidirectional, seq-first layer of `kind`, with biases.
    pub fn new(kind: CellKind, input_size: usize, hidden_size: usize) -> Self {
        Self {
            kind,
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            input_dropout: 0.0,
            recurrent_dropout: 0.0,
            initializer: None,
            bias_initializer: None,
            engine: Engine::Auto,
        }
    }

    /// Sets `num_layers`.
    pub fn with_num_layers(mut self, num_layers: usize) -> Self {
        self.num_layers = num_layers;
        self
    }

    /// Sets `bidirectional`.
    pub fn with_bidirectional(mut self, bidirectional: bool) -> Self {
        self.bidirectional = bidirectional;
        self
    }

    /// Sets `bias`.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Sets `batch_first`.
    pub fn with_batch_first(mut self, batch_first: bool) -> Self {
        self.batch_first = batch_first;
        self
    }

    /// Sets `dropout`.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }

    /// Sets `input_dropout`.
    pub fn with_input_dropout(mut self, input_dropout: f64) -> Self {
        self.input_dropout = input_dropout;
        self
    }

    /// Sets `recurrent_dropout`.
    pub fn with_recurrent_dropout(mut self, recurrent_dropout: f64) -> Self {
        self.recurrent_dropout = recurrent_dropout;
        self
    }

    /// Sets `initializer`.
    pub fn with_initializer(mut self, initializer: Option<Initializer>) -> Self {
        self.initializer = initializer;
        self
    }

    /// Sets `bias_initializer`.
    pub fn with_bias_initializer(mut self, bias_initializer: Option<Initializer>) -> Self {
        self.bias_initializer = bias_initializer;
        self
    }

    /// Sets `engine`.
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// Validates the options (as the layers' own configs do) and draws the weights.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] for zero sizes, `num_layers = 0` or dropout outside `[0, 1)`.
    pub fn init(&self, device: &Device) -> Result<Recurrent, ModelError> {
        let config = stack_config!(self, self.kind, proj_size: 0, forget_bias: None);
        Ok(Layer::new(Stack::init(&config, device)?).with_engine(self.engine))
    }
}
