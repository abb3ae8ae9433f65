//! # rnn-datasets
//!
//! The data of the classic RNN tutorials, reproducible from a seed and served through Burn's
//! [`Dataset`](burn::data::dataset::Dataset) trait:
//!
//! - [`AdditionConfig`] / [`CharTable`]: the Keras addition RNN's unique `a+b` questions;
//! - [`SinCos`]: the sin → cos regression stream for truncated BPTT;
//! - [`ToySequencesConfig`]: TensorFlow's toy variable-length linear-vs-random sequences;
//! - [`Mnist`]: MNIST and Fashion-MNIST as row or pixel sequences, from IDX files ([`read_idx`])
//!   found on disk, in Debian's package, or the embedded real-MNIST sample;
//! - [`CharCorpus`]: character vocabularies and windows for language models;
//! - [`hello_ohlol`]: the PyTorch course's "hello" → "ohlol" task;
//! - a Burn `Batcher` for each ([`SequenceBatcher`], [`SinCosBatcher`], [`AdditionBatcher`],
//!   [`CharBatcher`]) with the shapes in its docs.
//!
//! ```
//! use burn::data::dataset::Dataset;
//! use rnn_datasets::{AdditionConfig, CharTable, ADDITION_CHARS};
//!
//! let data = AdditionConfig { size: 1000, ..AdditionConfig::default() }.generate()?;
//! let (train, valid) = data.split(0.1)?;
//! assert_eq!((train.len(), valid.len()), (900, 100));
//! let table = CharTable::new(ADDITION_CHARS);
//! let one_hot = table.encode(&train.get(0).unwrap().question, 7)?; // [7, 12]
//! assert_eq!(one_hot.len(), 7 * 12);
//! # Ok::<(), rnn_datasets::DatasetError>(())
//! ```

mod addition;
mod batch;
mod corpus;
mod download;
mod error;
mod hello;
mod idx;
mod mnist;
mod sin_cos;
mod toy;

pub use addition::{ADDITION_CHARS, AdditionConfig, AdditionDataset, AdditionItem, CharTable};
pub use batch::{
    AdditionBatcher, CharBatch, CharBatcher, RegressionBatch, Seq2SeqBatch, SequenceBatch,
    SequenceBatcher, SinCosBatcher,
};
pub use corpus::{
    BUILTIN_TEXT, CharCorpus, LmItem, LmStream, MAX_CORPUS_BYTES, NextCharItem, NextCharWindows,
};
pub use download::{
    Digest, FASHION_FILES, MNIST_FILES, RemoteFile, default_mirrors, fetch, files, verify,
};
pub use error::DatasetError;
pub use hello::{HELLO_VOCAB, hello_ohlol};
pub use idx::{IdxArray, MAX_IDX_BYTES, decode_idx, parse_idx, read_idx};
pub use mnist::{
    DATA_DIR_VAR, DEBIAN_FASHION_DIR, DataSource, Mnist, MnistKind, MnistOptions, SequenceItem,
    SequenceLayout, Split, cache_dir,
};
pub use sin_cos::{SinCos, SinCosWindow};
pub use toy::{ToySequence, ToySequences, ToySequencesConfig};
