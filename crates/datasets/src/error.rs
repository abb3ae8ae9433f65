use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong generating or loading a dataset.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// A generator parameter is out of range.
    #[error("invalid parameter: {name} = {value} ({expected})")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// More unique items were asked for than exist.
    #[error(
        "asked for {requested} unique addition questions with {digits} digits, but only {available} exist"
    )]
    NotEnoughUnique {
        /// Items asked for.
        requested: usize,
        /// Digits per operand.
        digits: usize,
        /// How many unique questions exist.
        available: usize,
    },
    /// A character outside the table's alphabet.
    #[error("character {ch:?} is not in the table's alphabet {alphabet:?}")]
    UnknownChar {
        /// The character.
        ch: char,
        /// The alphabet.
        alphabet: String,
    },
    /// A string longer than the requested encoding length.
    #[error("text {text:?} has {len} characters, more than the encoding length {max}")]
    TooLong {
        /// The text.
        text: String,
        /// Its length in characters.
        len: usize,
        /// The encoding length.
        max: usize,
    },
    /// An IDX file is malformed.
    #[error("{path}: invalid IDX file: {reason}")]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Images and labels disagree.
    #[error("{images} images but {labels} labels in {dir}")]
    CountMismatch {
        /// Image count.
        images: usize,
        /// Label count.
        labels: usize,
        /// The directory.
        dir: PathBuf,
    },
    /// No data found in any of the places looked at.
    #[error("no {dataset} data found; looked in: {}. {hint}", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// Which dataset.
        dataset: &'static str,
        /// Every directory tried.
        searched: Vec<PathBuf>,
        /// How to get the data.
        hint: &'static str,
    },
    /// A downloaded or cached file does not have the expected SHA-256.
    #[error("{path}: SHA-256 mismatch (expected {expected}, got {got})")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Expected hex digest.
        expected: String,
        /// Actual hex digest.
        got: String,
    },
    /// No mirror served a correct copy of a file.
    #[error("could not download {file}: {}", .attempts.join("; "))]
    Download {
        /// The file (or URL).
        file: String,
        /// What each mirror answered.
        attempts: Vec<String>,
    },
    /// A text corpus is unusable.
    #[error("{path}: {reason}")]
    Corpus {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An item index past the end of a dataset.
    #[error("index {index} is out of range for a dataset of {len} items")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// An I/O error with the file it happened on; the cause is the error's source (shown
    /// once by `{:#}` or an error report, not repeated in this message).
    #[error("I/O error on {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl DatasetError {
    /// The message followed by its causes, each said once: for one-line notes that go on
    /// without the error (a mirror that failed, a download given up for a fallback).
    pub fn with_causes(&self) -> String {
        let mut line = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            line.push_str(": ");
            line.push_str(&cause.to_string());
            source = cause.source();
        }
        line
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DatasetError {
        let path = path.into();
        move |source| DatasetError::Io { path, source }
    }

    /// The error Burn's `Dataset::get` returns for an index past the end.
    pub(crate) fn out_of_range(index: usize, len: usize) -> burn::data::dataset::DatasetError {
        burn::data::dataset::DatasetError::new(DatasetError::IndexOutOfRange { index, len })
    }

    pub(crate) fn invalid(
        name: &'static str,
        value: impl ToString,
        expected: impl ToString,
    ) -> Self {
        DatasetError::InvalidParameter {
            name,
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}

#[cfg(test)]
mod io_message_tests {
    use super::*;

    #[test]
    fn an_io_error_says_its_cause_once() {
        let source = std::io::Error::other("Is a directory (os error 21)");
        let err = DatasetError::io("/tmp/book")(source);
        assert_eq!(err.to_string(), "I/O error on /tmp/book");
        let line = err.with_causes();
        assert_eq!(line, "I/O error on /tmp/book: Is a directory (os error 21)");
        assert_eq!(line.matches("Is a directory").count(), 1);
    }
}
