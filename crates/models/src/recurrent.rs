//! One type for "some recurrent layer", for programs that let the user pick the cell.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::{Gru, LayerInfo, Lstm, ModelError, Rnn};

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
