use burn::config::Config;
use burn::module::Module;
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use crate::stack::{Stack, StackShape};
use crate::weights::InitSpec;
use crate::{CellKind, LayerInfo, LstmState, ModelError, Recurrence};

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
        let shape = StackShape {
            kind: CellKind::Lstm,
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            proj_size: self.proj_size,
            num_layers: self.num_layers,
            bias: self.bias,
            batch_first: self.batch_first,
            dropout: self.dropout,
            bidirectional: self.bidirectional,
        };
        let spec = InitSpec {
            initializer: self.initializer.clone(),
            bias_initializer: self.bias_initializer.clone(),
            forget_bias: self.forget_bias,
        };
        Ok(Lstm {
            stack: Stack::init(shape, &spec, device)?,
        })
    }
}

/// A multi-layer LSTM with `torch.nn.LSTM`'s semantics.
///
/// For each layer and direction, with PyTorch's gate order i, f, g, o:
///
/// ```text
/// i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
/// g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
/// c' = f ⊙ c + i ⊙ g                         h' = o ⊙ tanh(c')   (then h' = W_hr h' if proj_size > 0)
/// ```
#[derive(Module, Debug)]
pub struct Lstm {
    pub(crate) stack: Stack,
}

impl Lstm {
    /// Runs the LSTM over whole sequences.
    ///
    /// # Shapes
    /// - `input`: `[batch, seq, input_size]` if `batch_first`, else `[seq, batch, input_size]`
    /// - `state`: `h0` `[layers·dirs, batch, out]`, `c0` `[layers·dirs, batch, hidden_size]`;
    ///   zeros when `None`
    ///
    /// # Returns
    /// `(output, state)`: `output` is `[batch, seq, dirs·out]` (or seq-first), `state` holds
    /// `h_n` and `c_n` at the last step, in the shapes above. `out` is `proj_size` when
    /// projecting, else `hidden_size`.
    ///
    /// # Errors
    /// [`ModelError`] when the input's feature size, an empty axis or a state shape is wrong.
    pub fn forward(
        &self,
        input: Tensor<3>,
        state: Option<LstmState>,
    ) -> Result<(Tensor<3>, LstmState), ModelError> {
        self.run(input, None, state)
    }

    /// Runs the LSTM over a padded batch of variable-length sequences, like PyTorch's
    /// `pack_padded_sequence` → `LSTM` → `pad_packed_sequence`.
    ///
    /// `lengths[b]` is sequence `b`'s true length (`1..=seq`, any order). Outputs past a
    /// sequence's end are zero; final states are taken at each sequence's own last step; the
    /// reverse direction starts at each sequence's last real step.
    ///
    /// # Errors
    /// As [`Lstm::forward`], plus [`ModelError::LengthsCount`] and
    /// [`ModelError::LengthOutOfRange`].
    pub fn forward_with_lengths(
        &self,
        input: Tensor<3>,
        lengths: &[usize],
        state: Option<LstmState>,
    ) -> Result<(Tensor<3>, LstmState), ModelError> {
        self.run(input, Some(lengths), state)
    }

    fn run(
        &self,
        input: Tensor<3>,
        lengths: Option<&[usize]>,
        state: Option<LstmState>,
    ) -> Result<(Tensor<3>, LstmState), ModelError> {
        let (h0, c0) = match state {
            Some(LstmState { h, c }) => (Some(h), Some(c)),
            None => (None, None),
        };
        let (output, h, c) = self.stack.run(input, lengths, h0, c0)?;
        // The stack returns `c` for every LSTM; the fallback only keeps this path panic-free.
        let c = c.unwrap_or_else(|| {
            let [rows, batch, _] = h.dims();
            Tensor::zeros([rows, batch, self.stack.shape.hidden_size], &h.device())
        });
        Ok((output, LstmState { h, c }))
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
