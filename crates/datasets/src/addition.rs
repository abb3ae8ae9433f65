//! The Keras addition-RNN data: unique questions `"a+b"` with their answers, one-hot encoded
//! through a [`CharTable`].

use std::collections::HashSet;

use burn::data::dataset::Dataset;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::DatasetError;

/// The alphabet of the addition task: digits, plus and space (padding).
pub const ADDITION_CHARS: &str = "0123456789+ ";

/// Maps characters to indices and one-hot rows and back (Keras' `CharacterTable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharTable {
    chars: Vec<char>,
}

impl CharTable {
    /// A table over the distinct characters of `alphabet`, sorted (as the tutorial's
    /// `sorted(set(chars))`).
    pub fn new(alphabet: &str) -> Self {
        let mut chars: Vec<char> = alphabet.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self { chars }
    }

    /// Number of characters: the width of a one-hot row.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether the alphabet is empty.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters, in index order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The index of `ch`.
    ///
    /// # Errors
    /// [`DatasetError::UnknownChar`] when `ch` is not in the alphabet.
    pub fn index(&self, ch: char) -> Result<usize, DatasetError> {
        self.chars
            .binary_search(&ch)
            .map_err(|_| DatasetError::UnknownChar {
                ch,
                alphabet: self.chars.iter().collect(),
            })
    }

    /// Indices of `text`'s characters, right-padded with the index of `' '` to exactly `len`.
    ///
    /// # Errors
    /// [`DatasetError::TooLong`] or [`DatasetError::UnknownChar`].
    pub fn indices(&self, text: &str, len: usize) -> Result<Vec<usize>, DatasetError> {
        let count = text.chars().count();
        if count > len {
            return Err(DatasetError::TooLong {
                text: text.to_string(),
                len: count,
                max: len,
            });
        }
        let mut out = text
            .chars()
            .map(|c| self.index(c))
            .collect::<Result<Vec<_>, _>>()?;
        if count < len {
            let pad = self.index(' ')?;
            out.resize(len, pad);
        }
        Ok(out)
    }

    /// One-hot encoding of `text` padded to `len` rows: `[len, self.len()]`, row-major.
    ///
    /// # Errors
    /// As [`CharTable::indices`].
    pub fn encode(&self, text: &str, len: usize) -> Result<Vec<f32>, DatasetError> {
        let mut out = vec![0.0; len * self.len()];
        for (row, idx) in self.indices(text, len)?.into_iter().enumerate() {
            out[row * self.len() + idx] = 1.0;
        }
        Ok(out)
    }

    /// Characters of the given indices; indices past the alphabet decode as `'?'`.
    pub fn decode_indices(&self, indices: &[usize]) -> String {
        indices
            .iter()
            .map(|&i| self.chars.get(i).copied().unwrap_or('?'))
            .collect()
    }

    /// Decodes rows of probabilities or one-hot vectors (`[rows, self.len()]`, row-major) by
    /// taking each row's argmax.
    pub fn decode(&self, rows: &[f32]) -> String {
        let width = self.len().max(1);
        let indices: Vec<usize> = rows
            .chunks(width)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                        if v > best.1 { (i, v) } else { best }
                    })
                    .0
            })
            .collect();
        self.decode_indices(&indices)
    }
}

/// One addition question and its answer, already padded (and the question reversed if asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdditionItem {
    /// `"a+b"` padded with spaces to `2·digits + 1` characters (reversed when `reverse`).
    pub question: String,
    /// The sum padded with spaces to `digits + 1` characters.
    pub answer: String,
}

/// Parameters of the addition data (the tutorial: 50,000 questions, 3 digits, reversed).
#[derive(Debug, Clone, PartialEq)]
pub struct AdditionConfig {
    /// Number of unique questions.
    pub size: usize,
    /// Maximum digits per operand.
    pub digits: usize,
    /// Reverse the question string (it helps the LSTM: the digits it adds first come last).
    pub reverse: bool,
    /// RNG seed.
    pub seed: u64,
}

impl Default for AdditionConfig {
    fn default() -> Self {
        Self {
            size: 50_000,
            digits: 3,
            reverse: true,
            seed: 0,
        }
    }
}

/// The generated questions, in random order; split off a validation set with
/// [`AdditionDataset::split`].
#[derive(Debug, Clone)]
pub struct AdditionDataset {
    items: Vec<AdditionItem>,
    digits: usize,
}

impl AdditionConfig {
    /// Number of unique questions with operands below `10^digits`, counting `a+b` and `b+a` once.
    pub fn available(&self) -> usize {
        let n = 10usize.saturating_pow(self.digits as u32);
        n.saturating_mul(n + 1) / 2
    }

    /// Question length: `2·digits + 1`.
    pub fn question_len(&self) -> usize {
        2 * self.digits + 1
    }

    /// Answer length: `digits + 1`.
    pub fn answer_len(&self) -> usize {
        self.digits + 1
    }

    /// Generates the questions.
    ///
    /// Operands are drawn as the tutorial does (a random number of digits in `1..=digits`,
    /// then random digits); duplicates, including swapped ones, are skipped. When more than
    /// half of all possible questions are asked for, rejection sampling would crawl, so the
    /// whole space is enumerated and shuffled instead.
    ///
    /// # Errors
    /// [`DatasetError::InvalidParameter`] for `digits` outside `1..=9` or `size = 0`, and
    /// [`DatasetError::NotEnoughUnique`] when `size` exceeds [`AdditionConfig::available`].
    pub fn generate(&self) -> Result<AdditionDataset, DatasetError> {
        if !(1..=9).contains(&self.digits) {
            return Err(DatasetError::invalid("digits", self.digits, "1..=9"));
        }
        if self.size == 0 {
            return Err(DatasetError::invalid("size", 0, "at least 1"));
        }
        let available = self.available();
        if self.size > available {
            return Err(DatasetError::NotEnoughUnique {
                requested: self.size,
                digits: self.digits,
                available,
            });
        }
        let mut rng = StdRng::seed_from_u64(self.seed);
        let pairs: Vec<(u64, u64)> = if self.size > available / 2 {
            let n = 10u64.pow(self.digits as u32);
            let mut all: Vec<(u64, u64)> =
                (0..n).flat_map(|a| (a..n).map(move |b| (a, b))).collect();
            all.shuffle(&mut rng);
            all.truncate(self.size);
            all
        } else {
            let mut seen = HashSet::with_capacity(self.size);
            let mut pairs = Vec::with_capacity(self.size);
            while pairs.len() < self.size {
                let (a, b) = (self.operand(&mut rng), self.operand(&mut rng));
                if seen.insert((a.min(b), a.max(b))) {
                    pairs.push((a, b));
                }
            }
            pairs
        };
        let items = pairs.into_iter().map(|(a, b)| self.item(a, b)).collect();
        Ok(AdditionDataset {
            items,
            digits: self.digits,
        })
    }

    fn operand(&self, rng: &mut StdRng) -> u64 {
        let len = rng.random_range(1..=self.digits);
        (0..len).fold(0, |acc, _| acc * 10 + rng.random_range(0..10u64))
    }

    fn item(&self, a: u64, b: u64) -> AdditionItem {
        let question = format!("{a}+{b}");
        let mut question = format!("{question:<width$}", width = self.question_len());
        if self.reverse {
            question = question.chars().rev().collect();
        }
        let answer = format!("{:<width$}", a + b, width = self.answer_len());
        AdditionItem { question, answer }
    }
}

impl AdditionDataset {
    /// Splits off the last `fraction` of the items for validation (the tutorial keeps 10 %).
    ///
    /// # Errors
    /// [`DatasetError::InvalidParameter`] unless `0 < fraction < 1` leaves both parts non-empty.
    pub fn split(
        mut self,
        fraction: f64,
    ) -> Result<(AdditionDataset, AdditionDataset), DatasetError> {
        let n = self.items.len();
        let valid = (n as f64 * fraction).floor() as usize;
        if !(fraction > 0.0 && fraction < 1.0) || valid == 0 || valid == n {
            return Err(DatasetError::invalid(
                "fraction",
                fraction,
                "in (0, 1), leaving both parts non-empty",
            ));
        }
        let tail = self.items.split_off(n - valid);
        let digits = self.digits;
        Ok((
            self,
            AdditionDataset {
                items: tail,
                digits,
            },
        ))
    }

    /// The items.
    pub fn items(&self) -> &[AdditionItem] {
        &self.items
    }

    /// Maximum digits per operand.
    pub fn digits(&self) -> usize {
        self.digits
    }
}

impl Dataset<AdditionItem> for AdditionDataset {
    fn get(&self, index: usize) -> Result<AdditionItem, burn::data::dataset::DatasetError> {
        self.items
            .get(index)
            .cloned()
            .ok_or_else(|| DatasetError::out_of_range(index, self.items.len()))
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_and_pads() {
        let t = CharTable::new(ADDITION_CHARS);
        assert_eq!(t.len(), 12);
        let one_hot = t.encode("12+3", 7).unwrap();
        assert_eq!(one_hot.len(), 7 * 12);
        assert_eq!(t.decode(&one_hot), "12+3   ");
        assert!(matches!(
            t.encode("12345678", 7),
            Err(DatasetError::TooLong { .. })
        ));
        assert!(matches!(
            t.encode("1-2", 7),
            Err(DatasetError::UnknownChar { ch: '-', .. })
        ));
    }

    #[test]
    fn questions_are_unique_padded_correct_and_seeded() {
        let cfg = AdditionConfig {
            size: 2_000,
            ..AdditionConfig::default()
        };
        let data = cfg.generate().unwrap();
        assert_eq!(data.len(), 2_000);
        let mut seen = HashSet::new();
        for item in data.items() {
            assert_eq!(item.question.len(), 7);
            assert_eq!(item.answer.len(), 4);
            let q: String = item.question.chars().rev().collect();
            let (a, b) = q.trim().split_once('+').unwrap();
            let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(item.answer.trim().parse::<u64>().unwrap(), a + b);
            assert!(seen.insert((a.min(b), a.max(b))), "duplicate {a}+{b}");
        }
        assert_eq!(cfg.generate().unwrap().items(), data.items());
        let other = AdditionConfig {
            seed: 1,
            ..cfg.clone()
        }
        .generate()
        .unwrap();
        assert_ne!(other.items(), data.items());
    }

    #[test]
    fn too_many_questions_is_an_error_and_the_maximum_terminates() {
        let cfg = AdditionConfig {
            size: 56,
            digits: 1,
            ..AdditionConfig::default()
        };
        assert!(matches!(
            cfg.generate(),
            Err(DatasetError::NotEnoughUnique { available: 55, .. })
        ));
        let all = AdditionConfig { size: 55, ..cfg }.generate().unwrap();
        assert_eq!(all.len(), 55);
    }

    #[test]
    fn split_keeps_ten_percent() {
        let data = AdditionConfig {
            size: 1_000,
            ..AdditionConfig::default()
        }
        .generate()
        .unwrap();
        let (train, valid) = data.split(0.1).unwrap();
        assert_eq!((train.len(), valid.len()), (900, 100));
        let data = AdditionConfig {
            size: 5,
            ..AdditionConfig::default()
        }
        .generate()
        .unwrap();
        assert!(data.split(0.1).is_err());
    }
}
