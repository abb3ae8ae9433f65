//! The toy variable-length sequences of the TensorFlow dynamic-RNN tutorial: linear sequences
//! (consecutive integers) against random ones.

use burn::data::dataset::Dataset;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::DatasetError;

/// One padded sequence with its true length and class.
#[derive(Debug, Clone, PartialEq)]
pub struct ToySequence {
    /// `[max_len]` values in `[0, 1)` (one feature per step), zero past `len`.
    pub values: Vec<f32>,
    /// True length, in `min_len..=max_len`.
    pub len: usize,
    /// 0: linear (consecutive integers), 1: random integers. The tutorial's one-hot `[1, 0]` /
    /// `[0, 1]`.
    pub label: usize,
}

/// Parameters of [`ToySequences`], with the tutorial's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ToySequencesConfig {
    /// Number of sequences.
    pub samples: usize,
    /// Shortest length (default 3).
    pub min_len: usize,
    /// Longest length and padded length (default 20).
    pub max_len: usize,
    /// Values are integers below this, divided by it (default 1000).
    pub max_value: usize,
    /// RNG seed.
    pub seed: u64,
}

impl Default for ToySequencesConfig {
    fn default() -> Self {
        Self {
            samples: 1000,
            min_len: 3,
            max_len: 20,
            max_value: 1000,
            seed: 0,
        }
    }
}

/// The generated sequences. Classes are balanced: even indices are linear, odd ones random
/// (a data loader shuffles them).
#[derive(Debug, Clone)]
pub struct ToySequences {
    items: Vec<ToySequence>,
    max_len: usize,
}

impl ToySequencesConfig {
    /// Generates the sequences.
    ///
    /// # Errors
    /// [`DatasetError::InvalidParameter`] for `samples = 0`, `min_len = 0`, `min_len > max_len`
    /// or `max_value <= max_len` (a linear sequence must fit below `max_value`).
    pub fn generate(&self) -> Result<ToySequences, DatasetError> {
        if self.samples == 0 {
            return Err(DatasetError::invalid("samples", 0, "at least 1"));
        }
        if self.min_len == 0 || self.min_len > self.max_len {
            return Err(DatasetError::invalid(
                "min_len",
                self.min_len,
                format!("in 1..=max_len ({})", self.max_len),
            ));
        }
        if self.max_value <= self.max_len {
            return Err(DatasetError::invalid(
                "max_value",
                self.max_value,
                format!("greater than max_len ({})", self.max_len),
            ));
        }
        let mut rng = StdRng::seed_from_u64(self.seed);
        let scale = self.max_value as f32;
        let items = (0..self.samples)
            .map(|i| {
                let len = rng.random_range(self.min_len..=self.max_len);
                let label = i % 2;
                let mut values: Vec<f32> = if label == 0 {
                    let start = rng.random_range(0..=self.max_value - len);
                    (start..start + len).map(|v| v as f32 / scale).collect()
                } else {
                    (0..len)
                        .map(|_| rng.random_range(0..self.max_value) as f32 / scale)
                        .collect()
                };
                values.resize(self.max_len, 0.0);
                ToySequence { values, len, label }
            })
            .collect();
        Ok(ToySequences {
            items,
            max_len: self.max_len,
        })
    }
}

impl ToySequences {
    /// The padded length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Dataset<ToySequence> for ToySequences {
    fn get(&self, index: usize) -> Result<ToySequence, burn::data::dataset::DatasetError> {
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
    fn sequences_follow_their_class() {
        let data = ToySequencesConfig::default().generate().unwrap();
        assert_eq!(data.len(), 1000);
        let items: Vec<ToySequence> = data.iter().map(Result::unwrap).collect();
        let linear = items.iter().filter(|s| s.label == 0).count();
        assert_eq!(linear, 500);
        for s in &items {
            assert!((3..=20).contains(&s.len));
            assert_eq!(s.values.len(), 20);
            assert!(s.values[s.len..].iter().all(|&v| v == 0.0));
            assert!(s.values[..s.len].iter().all(|&v| (0.0..1.0).contains(&v)));
            if s.label == 0 {
                for w in s.values[..s.len].windows(2) {
                    assert!((w[1] - w[0] - 0.001).abs() < 1e-6);
                }
            }
        }
        let again = ToySequencesConfig::default().generate().unwrap();
        assert_eq!(again.get(7).unwrap(), data.get(7).unwrap());
    }

    #[test]
    fn bad_parameters_are_errors() {
        let bad = |c: ToySequencesConfig| c.generate().is_err();
        assert!(bad(ToySequencesConfig {
            min_len: 0,
            ..Default::default()
        }));
        assert!(bad(ToySequencesConfig {
            min_len: 30,
            ..Default::default()
        }));
        assert!(bad(ToySequencesConfig {
            max_value: 20,
            ..Default::default()
        }));
        assert!(bad(ToySequencesConfig {
            samples: 0,
            ..Default::default()
        }));
    }
}
