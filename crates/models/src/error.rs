use thiserror::Error;

/// Everything that can go wrong building, running or loading a recurrent layer.
///
/// Each message says what was expected and what was got.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    /// A configuration value is out of range.
    #[error("invalid config: {field} = {value} ({expected})")]
    InvalidConfig {
        /// The config field, by its PyTorch name.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The input's last axis does not match `input_size`.
    #[error(
        "input feature size mismatch: expected input_size = {expected}, got {got} (input shape {shape:?})"
    )]
    InputSize {
        /// The layer's `input_size`.
        expected: usize,
        /// The size found on the input's feature axis.
        got: usize,
        /// The whole input shape.
        shape: Vec<usize>,
    },
    /// The input has a zero-sized batch or time axis.
    #[error("empty input: batch = {batch}, seq = {seq} (both must be at least 1)")]
    EmptyInput {
        /// Batch size found.
        batch: usize,
        /// Sequence length found.
        seq: usize,
    },
    /// The lengths slice does not have one entry per batch element.
    #[error("lengths has {got} entries, expected one per batch element ({expected})")]
    LengthsCount {
        /// The batch size.
        expected: usize,
        /// Entries given.
        got: usize,
    },
    /// A sequence length is zero or longer than the padded sequence.
    #[error("lengths[{index}] = {length} is outside 1..={seq_len} (the padded sequence length)")]
    LengthOutOfRange {
        /// Position in the batch.
        index: usize,
        /// The offending length.
        length: usize,
        /// The padded sequence length.
        seq_len: usize,
    },
    /// An initial or recurrent state has the wrong shape.
    #[error("{which} shape mismatch: expected {expected:?}, got {got:?}")]
    StateShape {
        /// Which state (`"h0"`, `"c0"`, `"hx"`, `"cx"`).
        which: &'static str,
        /// The shape the layer needs.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A state dict lacks a parameter the layer needs.
    #[error("state dict has no key '{key}'")]
    MissingKey {
        /// The full key, prefix included.
        key: String,
    },
    /// A state dict entry has the wrong shape.
    #[error("state dict key '{key}': expected shape {expected:?}, got {got:?}")]
    KeyShape {
        /// The full key, prefix included.
        key: String,
        /// The shape the layer needs.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A state dict has keys under the prefix that the layer does not know.
    #[error("state dict has unexpected keys for this layer: {keys:?}")]
    UnexpectedKeys {
        /// The keys that matched no parameter.
        keys: Vec<String>,
    },
    /// A state dict file could not be read or parsed.
    #[error("cannot read state dict {path}: {reason}")]
    StateDictFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A run-time-kind layer or cell got a state of another kind: `(h, c)` for a layer
    /// without a cell state, or `h` alone for an LSTM.
    #[error("state mismatch: a {kind} layer takes {expected}, got {got}")]
    StateKind {
        /// The layer's kind.
        kind: crate::CellKind,
        /// The state parts it takes.
        expected: &'static str,
        /// The state parts given.
        got: &'static str,
    },
}
