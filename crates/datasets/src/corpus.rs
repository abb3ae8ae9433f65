//! Character corpora for character-level language models: a vocabulary and windows of
//! (input, next character) pairs.

use std::path::Path;

use burn::data::dataset::Dataset;

use crate::DatasetError;

/// Lincoln's Gettysburg Address (public domain), the built-in default corpus.
pub const BUILTIN_TEXT: &str = include_str!("../data/gettysburg.txt");

/// Largest corpus file read (a guard against reading a disk image by mistake).
pub const MAX_CORPUS_BYTES: u64 = 512 << 20;

/// A text as character ids over its own sorted vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharCorpus {
    vocab: Vec<char>,
    ids: Vec<u32>,
}

impl CharCorpus {
    /// Reads a UTF-8 text file.
    ///
    /// # Errors
    /// [`DatasetError::Io`] when unreadable, [`DatasetError::Corpus`] when not UTF-8, larger
    /// than [`MAX_CORPUS_BYTES`] or shorter than two characters.
    pub fn from_file(path: &Path) -> Result<Self, DatasetError> {
        let corpus_error = |reason: String| DatasetError::Corpus {
            path: path.to_path_buf(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(DatasetError::io(path))?
            .len();
        if size > MAX_CORPUS_BYTES {
            return Err(corpus_error(format!(
                "{size} bytes is over the {MAX_CORPUS_BYTES}-byte limit"
            )));
        }
        let bytes = std::fs::read(path).map_err(DatasetError::io(path))?;
        Self::from_bytes(bytes, path)
    }

    /// Builds the corpus from a file's bytes; `path` only labels errors.
    ///
    /// # Errors
    /// [`DatasetError::Corpus`] when not UTF-8, larger than [`MAX_CORPUS_BYTES`] or shorter
    /// than two characters.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self, DatasetError> {
        let corpus_error = |reason: String| DatasetError::Corpus {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() as u64 > MAX_CORPUS_BYTES {
            return Err(corpus_error(format!(
                "{} bytes is over the {MAX_CORPUS_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            corpus_error(format!(
                "not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Self::from_text(&text).map_err(|e| match e {
            DatasetError::Corpus { reason, .. } => corpus_error(reason),
            other => other,
        })
    }

    /// The built-in public-domain text (Lincoln's Gettysburg Address, ≈ 1,500 characters): a
    /// default that works offline. Pass a file of your own for anything serious.
    pub fn builtin() -> Self {
        // The embedded text has far more than two characters, so this cannot fail; the fallback
        // only keeps the signature infallible.
        Self::from_text(BUILTIN_TEXT).unwrap_or_else(|_| Self {
            vocab: vec![' ', '.'],
            ids: vec![0, 1],
        })
    }

    /// Builds the corpus from a string.
    ///
    /// # Errors
    /// [`DatasetError::Corpus`] when the text has fewer than two characters.
    pub fn from_text(text: &str) -> Result<Self, DatasetError> {
        let mut vocab: Vec<char> = text.chars().collect();
        if vocab.len() < 2 {
            return Err(DatasetError::Corpus {
                path: "<text>".into(),
                reason: format!("{} characters; need at least 2", vocab.len()),
            });
        }
        vocab.sort_unstable();
        vocab.dedup();
        let ids = text
            .chars()
            .map(|c| vocab.binary_search(&c).map(|i| i as u32).unwrap_or(0))
            .collect();
        Ok(Self { vocab, ids })
    }

    /// The sorted distinct characters.
    pub fn vocab(&self) -> &[char] {
        &self.vocab
    }

    /// The text as ids into [`CharCorpus::vocab`].
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Number of characters in the text.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the text is empty (never, for a constructed corpus).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Id of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<u32> {
        self.vocab.binary_search(&c).ok().map(|i| i as u32)
    }

    /// Text of the given ids (unknown ids become `'?'`).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&i| self.vocab.get(i as usize).copied().unwrap_or('?'))
            .collect()
    }

    /// Splits the text at `1 − fraction` of its length: (training, validation). Both keep the
    /// full vocabulary so ids agree.
    ///
    /// # Errors
    /// [`DatasetError::InvalidParameter`] unless both parts have at least two characters.
    pub fn split(&self, fraction: f64) -> Result<(CharCorpus, CharCorpus), DatasetError> {
        let cut = ((self.len() as f64) * (1.0 - fraction)).round() as usize;
        if !(fraction > 0.0 && fraction < 1.0) || cut < 2 || self.len() - cut < 2 {
            return Err(DatasetError::invalid(
                "fraction",
                fraction,
                "in (0, 1), leaving 2+ characters each side",
            ));
        }
        let part = |ids: &[u32]| CharCorpus {
            vocab: self.vocab.clone(),
            ids: ids.to_vec(),
        };
        Ok((part(&self.ids[..cut]), part(&self.ids[cut..])))
    }

    /// Keras text-generation windows: `seq_len` characters, then the next one, every `step`
    /// characters.
    ///
    /// # Errors
    /// [`DatasetError::InvalidParameter`] for zero sizes or a text not longer than `seq_len`.
    pub fn next_char_windows(
        &self,
        seq_len: usize,
        step: usize,
    ) -> Result<NextCharWindows, DatasetError> {
        if seq_len == 0 || step == 0 {
            return Err(DatasetError::invalid(
                "seq_len/step",
                format!("{seq_len}/{step}"),
                "both at least 1",
            ));
        }
        if self.len() <= seq_len {
            return Err(DatasetError::invalid(
                "seq_len",
                seq_len,
                format!("below the text length {}", self.len()),
            ));
        }
        Ok(NextCharWindows {
            ids: self.ids.clone(),
            seq_len,
            step,
        })
    }

    /// Language-model windows for truncated BPTT: consecutive, non-overlapping `seq_len`
    /// characters with the same characters shifted by one as targets. Window `k + 1` continues
    /// window `k`, so a hidden state can be carried across.
    ///
    /// # Errors
    /// [`DatasetError::InvalidParameter`] for `seq_len = 0` or a text too short for one window.
    pub fn stream(&self, seq_len: usize) -> Result<LmStream, DatasetError> {
        if seq_len == 0 || self.len() <= seq_len {
            return Err(DatasetError::invalid(
                "seq_len",
                seq_len,
                format!("in 1..{}", self.len()),
            ));
        }
        Ok(LmStream {
            ids: self.ids.clone(),
            seq_len,
        })
    }
}

/// One (characters, next character) example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextCharItem {
    /// `[seq_len]` ids.
    pub input: Vec<u32>,
    /// The id that follows.
    pub target: u32,
}

/// See [`CharCorpus::next_char_windows`].
#[derive(Debug, Clone)]
pub struct NextCharWindows {
    ids: Vec<u32>,
    seq_len: usize,
    step: usize,
}

impl Dataset<NextCharItem> for NextCharWindows {
    fn get(&self, index: usize) -> Result<NextCharItem, burn::data::dataset::DatasetError> {
        if index >= self.len() {
            return Err(DatasetError::out_of_range(index, self.len()));
        }
        let start = index * self.step;
        let input = self.ids[start..start + self.seq_len].to_vec();
        let target = self.ids[start + self.seq_len];
        Ok(NextCharItem { input, target })
    }

    fn len(&self) -> usize {
        (self.ids.len() - self.seq_len).div_ceil(self.step)
    }
}

/// One language-model window: `target[i]` is the character after `input[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmItem {
    /// `[seq_len]` ids.
    pub input: Vec<u32>,
    /// `[seq_len]` ids, shifted by one.
    pub target: Vec<u32>,
}

/// See [`CharCorpus::stream`].
#[derive(Debug, Clone)]
pub struct LmStream {
    ids: Vec<u32>,
    seq_len: usize,
}

impl Dataset<LmItem> for LmStream {
    fn get(&self, index: usize) -> Result<LmItem, burn::data::dataset::DatasetError> {
        if index >= self.len() {
            return Err(DatasetError::out_of_range(index, self.len()));
        }
        let start = index * self.seq_len;
        let input = self.ids[start..start + self.seq_len].to_vec();
        let target = self.ids[start + 1..start + self.seq_len + 1].to_vec();
        Ok(LmItem { input, target })
    }

    fn len(&self) -> usize {
        (self.ids.len() - 1) / self.seq_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_stream_line_up() {
        let c = CharCorpus::from_text("hello world").unwrap();
        assert_eq!(c.vocab(), &[' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        assert_eq!(c.decode(c.ids()), "hello world");
        let w = c.next_char_windows(4, 3).unwrap();
        assert_eq!(w.len(), 3);
        let item = w.get(1).unwrap();
        assert_eq!(c.decode(&item.input), "lo w");
        assert_eq!(c.decode(&[item.target]), "o");
        assert!(w.get(3).is_err());
        let s = c.stream(3).unwrap();
        assert_eq!(s.len(), 3);
        let second = s.get(1).unwrap();
        assert_eq!(
            (c.decode(&second.input), c.decode(&second.target)),
            ("lo ".into(), "o w".into())
        );
    }

    #[test]
    fn builtin_text_is_the_gettysburg_address() {
        let c = CharCorpus::builtin();
        assert!(c.len() > 1400, "{}", c.len());
        assert!(c.decode(&c.ids()[..20]).starts_with("Four score"));
        assert!(c.next_char_windows(40, 3).unwrap().len() > 400);
    }

    #[test]
    fn bad_corpora_are_errors() {
        assert!(CharCorpus::from_text("a").is_err());
        let dir = std::env::temp_dir().join(format!("rnn-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("latin1.txt");
        std::fs::write(&bad, b"caf\xe9").unwrap();
        let err = CharCorpus::from_file(&bad).unwrap_err().to_string();
        assert!(err.contains("not UTF-8"), "{err}");
        assert!(matches!(
            CharCorpus::from_file(&dir.join("missing.txt")),
            Err(DatasetError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
