//! # rnn-backend
//!
//! The one place in the toolkit that turns a user's choice of backend into a Burn
//! [`Device`](burn::tensor::Device). Every other crate takes a `&Device` and never names a backend.
//!
//! A choice comes from a string (`"flex"`, `"ndarray"`, `"wgpu"`, `"cpu"`, `"cuda"`,
//! case-insensitive), from the `RNN_BACKEND` environment variable, or from a clap `--backend`
//! flag (feature `clap`). Each backend is a cargo feature; asking for one that was not compiled
//! in — or for `wgpu` on a machine without an adapter — is a [`BackendError`] that lists what is
//! available, never a panic.
//!
//! ```
//! use rnn_backend::Backend;
//! use burn::tensor::Tensor;
//!
//! let backend: Backend = "flex".parse()?;
//! let selected = backend.select()?;
//! println!("{}", selected.describe()); // "flex (CPU, pure Rust)"
//!
//! // The same choice gives an inference device and a training (autodiff) device.
//! let x = Tensor::<2>::ones([2, 3], selected.device());
//! assert_eq!(x.dims(), [2, 3]);
//! assert!(selected.training_device().is_autodiff());
//! # Ok::<(), rnn_backend::BackendError>(())
//! ```

mod choice;
#[cfg(feature = "clap")]
mod cli;
mod error;
mod select;

pub use choice::{Backend, ENV_VAR};
#[cfg(feature = "clap")]
pub use cli::BackendParser;
pub use error::BackendError;
pub use select::Selected;
