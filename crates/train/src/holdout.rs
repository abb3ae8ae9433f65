//! Honest model selection: a validation split carved from the training data, so that the
//! test set is touched once, at the end.

use std::path::Path;

use burn::data::dataset::{Dataset, DatasetError};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::TrainError;

/// Some items of another dataset, by index.
pub struct Subset<'a, I> {
    data: &'a dyn Dataset<I>,
    indices: Vec<usize>,
}

impl<'a, I> Subset<'a, I> {
    /// All of `data`, in order.
    pub fn all(data: &'a dyn Dataset<I>) -> Self {
        Self {
            data,
            indices: (0..data.len()).collect(),
        }
    }

    /// The indices into the underlying dataset, ascending.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Writes [`Subset::indices`] to `path` as one JSON array, atomically: what a peer in
    /// another framework needs to train on exactly the same split.
    ///
    /// # Errors
    /// [`TrainError::Io`] when the file cannot be written.
    pub fn save_indices(&self, path: &Path) -> Result<(), TrainError> {
        let text = serde_json::to_vec(&self.indices).map_err(|e| TrainError::io(path)(e.into()))?;
        rnn_atomic::write(path, &text).map_err(TrainError::io(path))
    }
}

impl<I> Dataset<I> for Subset<'_, I> {
    fn get(&self, index: usize) -> Result<I, DatasetError> {
        match self.indices.get(index) {
            Some(&i) => self.data.get(i),
            None => Err(DatasetError::new(OutOfRange {
                index,
                len: self.indices.len(),
            })),
        }
    }

    fn len(&self) -> usize {
        self.indices.len()
    }
}

/// An index past a [`Subset`]'s end.
#[derive(Debug, thiserror::Error)]
#[error("index {index} is out of range for a subset of {len} items")]
struct OutOfRange {
    index: usize,
    len: usize,
}

/// Splits `data` into `(train, valid)`: a seeded random `fraction` of the items (at least one)
/// is held out for validation, the rest trains. The two never share an item and together
/// hold every item once.
///
/// # Errors
/// [`TrainError::InvalidConfig`] when `fraction` is not in `(0, 1)` or leaves either side
/// empty.
pub fn holdout<I>(
    data: &dyn Dataset<I>,
    fraction: f64,
    seed: u64,
) -> Result<(Subset<'_, I>, Subset<'_, I>), TrainError> {
    let len = data.len();
    let valid_len = (len as f64 * fraction).round() as usize;
    if !(fraction > 0.0 && fraction < 1.0) || valid_len == 0 || valid_len >= len {
        return Err(TrainError::InvalidConfig {
            field: "valid_fraction",
            value: format!("{fraction} of {len} items"),
            expected: "a fraction in (0, 1) that leaves both sides at least one item",
        });
    }
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let (valid, train) = order.split_at(valid_len);
    let subset = |part: &[usize]| {
        let mut indices = part.to_vec();
        indices.sort_unstable();
        Subset { data, indices }
    };
    Ok((subset(train), subset(valid)))
}

#[cfg(test)]
mod tests {
    use burn::data::dataset::InMemDataset;

    use super::*;

    #[test]
    fn the_validation_split_never_overlaps_training() {
        let data = InMemDataset::new((0..1000u32).collect::<Vec<_>>());
        for seed in 0..5 {
            let (train, valid) = holdout(&data, 0.1, seed).unwrap();
            assert_eq!((train.len(), valid.len()), (900, 100));
            let mut seen: Vec<u32> = (0..train.len())
                .map(|i| train.get(i).unwrap())
                .chain((0..valid.len()).map(|i| valid.get(i).unwrap()))
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..1000).collect::<Vec<_>>(), "every item once");
        }
        let a = holdout(&data, 0.1, 1).unwrap().1.indices().to_vec();
        let b = holdout(&data, 0.1, 1).unwrap().1.indices().to_vec();
        let c = holdout(&data, 0.1, 2).unwrap().1.indices().to_vec();
        assert_eq!(a, b, "same seed, same split");
        assert_ne!(a, c, "another seed, another split");
    }

    #[test]
    fn saved_indices_read_back_as_the_split() {
        let data = InMemDataset::new((0..50u32).collect::<Vec<_>>());
        let (_, valid) = holdout(&data, 0.2, 7).unwrap();
        let dir = std::env::temp_dir().join(format!("rnn-holdout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("valid_indices.json");
        valid.save_indices(&path).unwrap();
        let read: Vec<usize> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, valid.indices());
        assert_eq!(read.len(), 10);
        let missing = dir.join("no/such/dir/valid_indices.json");
        assert!(matches!(
            valid.save_indices(&missing),
            Err(TrainError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn impossible_fractions_are_errors() {
        let data = InMemDataset::new(vec![1u8, 2, 3]);
        for fraction in [0.0, 1.0, -0.5, f64::NAN, 0.01, 0.99] {
            assert!(
                matches!(
                    holdout(&data, fraction, 0),
                    Err(TrainError::InvalidConfig {
                        field: "valid_fraction",
                        ..
                    })
                ),
                "{fraction}"
            );
        }
        let (train, valid) = holdout(&data, 0.34, 0).unwrap();
        assert_eq!((train.len(), valid.len()), (2, 1));
        let err = valid.get(5).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
    }
}
