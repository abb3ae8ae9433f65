//! One type for "some recurrent layer", for programs that let the user pick the cell.

use burn::module::Module;
use burn::tensor::Tensor;

use burn::tensor::Device;

use crate::{
    CellKind, Gru, GruConfig, LayerInfo, Lstm, LstmConfig, ModelError, Nonlinearity, Recurrence,
    Rnn, RnnConfig,
};

/// The options every recurrent layer shares, for a layer whose kind is picked at run time;
/// [`RecurrentConfig::init`] builds the matching [`Rnn`], [`Lstm`] or [`Gru`]. Kind-specific
/// options (LSTM projection, forget bias, initializers) stay on the layers' own configs.
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
    /// `[batch, seq, feature]` input and output (default `false`: `[seq, batch, feature]`).
    pub batch_first: bool,
    /// Dropout between layers in training (default 0).
    pub dropout: f64,
    /// How the recurrence runs (default [`Recurrence::Auto`]).
    pub recurrence: Recurrence,
}

impl RecurrentConfig {
    /// A one-layer, unidirectional, seq-first layer of `kind`.
    pub fn new(kind: CellKind, input_size: usize, hidden_size: usize) -> Self {
        Self {
            kind,
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            batch_first: false,
            dropout: 0.0,
            recurrence: Recurrence::Auto,
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

    /// Sets `recurrence`.
    pub fn with_recurrence(mut self, recurrence: Recurrence) -> Self {
        self.recurrence = recurrence;
        self
    }

    /// Validates the options (as the layer's own config does) and draws the weights.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] as the chosen layer's `init`.
    pub fn init(&self, device: &Device) -> Result<Recurrent, ModelError> {
        let c = self;
        Ok(match c.kind {
            CellKind::Lstm => LstmConfig::new(c.input_size, c.hidden_size)
                .with_num_layers(c.num_layers)
                .with_bidirectional(c.bidirectional)
                .with_batch_first(c.batch_first)
                .with_dropout(c.dropout)
                .init(device)?
                .with_recurrence(c.recurrence)
                .into(),
            CellKind::Gru => GruConfig::new(c.input_size, c.hidden_size)
                .with_num_layers(c.num_layers)
                .with_bidirectional(c.bidirectional)
                .with_batch_first(c.batch_first)
                .with_dropout(c.dropout)
                .init(device)?
                .with_recurrence(c.recurrence)
                .into(),
            CellKind::RnnTanh | CellKind::RnnRelu => RnnConfig::new(c.input_size, c.hidden_size)
                .with_nonlinearity(if c.kind == CellKind::RnnRelu {
                    Nonlinearity::Relu
                } else {
                    Nonlinearity::Tanh
                })
                .with_num_layers(c.num_layers)
                .with_bidirectional(c.bidirectional)
                .with_batch_first(c.batch_first)
                .with_dropout(c.dropout)
                .init(device)?
                .with_recurrence(c.recurrence)
                .into(),
        })
    }
}

/// An [`Rnn`], [`Lstm`] or [`Gru`] behind one interface (e.g. a `--cell lstm|gru|rnn` flag).
/// Build it with `Recurrent::from(layer)`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use rnn_models::{GruConfig, Recurrent};
///
/// let device = Device::flex();
/// let layer = Recurrent::from(GruConfig::new(3, 8).with_batch_first(true).init(&device)?);
/// let (out, h_n) = layer.forward(Tensor::<3>::zeros([2, 5, 3], &device))?; // [batch, seq, input]
/// assert_eq!((out.dims(), h_n.dims()), ([2, 5, 8], [1, 2, 8]));
/// # Ok::<(), rnn_models::ModelError>(())
/// ```
#[derive(Module, Debug)]
pub enum Recurrent {
    /// An Elman RNN.
    Rnn(Rnn),
    /// An LSTM.
    Lstm(Lstm),
    /// A GRU.
    Gru(Gru),
}

impl From<Rnn> for Recurrent {
    fn from(layer: Rnn) -> Self {
        Recurrent::Rnn(layer)
    }
}

impl From<Lstm> for Recurrent {
    fn from(layer: Lstm) -> Self {
        Recurrent::Lstm(layer)
    }
}

impl From<Gru> for Recurrent {
    fn from(layer: Gru) -> Self {
        Recurrent::Gru(layer)
    }
}

impl Recurrent {
    /// Runs the layer from a zero state.
    ///
    /// Returns the output sequence (as the layer's `forward`) and the final hidden state
    /// `h_n: [layers·dirs, batch, out]` (an LSTM's `c_n` is dropped).
    ///
    /// # Errors
    /// As the layer's `forward`.
    pub fn forward(&self, input: Tensor<3>) -> Result<(Tensor<3>, Tensor<3>), ModelError> {
        match self {
            Recurrent::Rnn(l) => l.forward(input, None),
            Recurrent::Lstm(l) => l.forward(input, None).map(|(out, s)| (out, s.h)),
            Recurrent::Gru(l) => l.forward(input, None),
        }
    }

    /// The layer's configuration facts.
    pub fn info(&self) -> LayerInfo {
        match self {
            Recurrent::Rnn(l) => l.info(),
            Recurrent::Lstm(l) => l.info(),
            Recurrent::Gru(l) => l.info(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_builds_its_layer_with_the_shared_options() {
        let device = Device::flex();
        device.seed(7);
        for kind in [
            CellKind::RnnTanh,
            CellKind::RnnRelu,
            CellKind::Lstm,
            CellKind::Gru,
        ] {
            let layer = RecurrentConfig::new(kind, 3, 4)
                .with_num_layers(2)
                .with_bidirectional(true)
                .with_batch_first(true)
                .with_recurrence(Recurrence::Reference)
                .init(&device)
                .unwrap();
            let matches = matches!(
                (&layer, kind),
                (Recurrent::Rnn(_), CellKind::RnnTanh | CellKind::RnnRelu)
                    | (Recurrent::Lstm(_), CellKind::Lstm)
                    | (Recurrent::Gru(_), CellKind::Gru)
            );
            assert!(matches, "{kind:?}");
            let info = layer.info();
            assert_eq!((info.num_layers, info.output_size), (2, 8), "{kind:?}");
            assert!(info.batch_first && info.bidirectional);
            // ReLU and tanh differ on negative pre-activations: the nonlinearity was passed on.
            if matches!(kind, CellKind::RnnTanh | CellKind::RnnRelu) {
                let x = Tensor::<3>::full([1, 2, 3], -5.0, &device);
                let out = layer
                    .forward(x)
                    .unwrap()
                    .0
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                let min = out.iter().copied().fold(f32::INFINITY, f32::min);
                assert_eq!(min >= 0.0, kind == CellKind::RnnRelu, "{kind:?}: min {min}");
            }
        }
        assert!(
            RecurrentConfig::new(CellKind::Lstm, 0, 4)
                .init(&device)
                .is_err()
        );
    }
}
