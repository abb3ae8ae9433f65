//! # rnn-models
//!
//! PyTorch-complete recurrent layers for Burn: [`Rnn`] (tanh or ReLU), [`Lstm`] (with
//! `proj_size`) and [`Gru`], plus the single-step cells [`RnnCell`], [`LstmCell`] and
//! [`GruCell`]. Options, shapes, gate math, initialization and parameter names are PyTorch's,
//! so `torch.nn.LSTM` code translates line by line and trained PyTorch weights load through
//! [`StateDict`] and [`PytorchWeights`].
//!
//! Layers take `[seq, batch, feature]` input (or `[batch, seq, feature]` with
//! `batch_first = true`), an optional initial state shaped `[num_layers · num_directions,
//! batch, hidden]`, and return the output sequence and the final state. Variable-length
//! batches go through `forward_with_lengths` with PyTorch's packed-sequence semantics. Bad
//! sizes and shapes are [`ModelError`]s, checked once per call.
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use rnn_models::LstmConfig;
//!
//! let device = Device::flex();
//! // torch.nn.LSTM(50, 100, 2)
//! let lstm = LstmConfig::new(50, 100).with_num_layers(2).init(&device)?;
//! let input = Tensor::<3>::random([10, 3, 50], Distribution::Default, &device); // [seq, batch, input]
//! let (output, state) = lstm.forward(input, None)?;
//! assert_eq!(output.dims(), [10, 3, 100]);
//! assert_eq!(state.h.dims(), [2, 3, 100]);
//! assert_eq!(state.c.dims(), [2, 3, 100]);
//! # Ok::<(), rnn_models::ModelError>(())
//! ```

mod cell;
mod config;
mod engine;
mod error;
#[cfg(feature = "fused")]
mod fused;
mod kind;
mod layer;
mod seq2seq;
mod stack;
mod state;
mod state_dict;
mod weights;

pub use cell::{Cell, GruCell, GruCellConfig, LstmCell, LstmCellConfig, RnnCell, RnnCellConfig};
pub use config::{GruConfig, LstmConfig, Nonlinearity, RecurrentConfig, RnnConfig};
pub use engine::{Engine, packed_gemm_gflops, release_scratch_memory};
pub use error::ModelError;
pub use kind::{AnyKind, CellKind, GruKind, LayerKind, LstmKind, RnnKind};
pub use layer::{Gru, Layer, LayerInfo, Lstm, Recurrent, Rnn};
pub use seq2seq::repeat_vector;
pub use state::{LstmCellState, LstmState, RecurrentState, StateParts, last_layer};
pub use state_dict::{PytorchWeights, StateDict};
pub use weights::CellWeights;
