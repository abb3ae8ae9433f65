//! Burn [`Batcher`]s that turn the items of this crate into tensors on a device, for Burn's
//! `DataLoader` or for a training objective's `step`.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Tensor, TensorData};

use crate::{
    AdditionItem, CharTable, LmItem, NextCharItem, SequenceItem, SinCosWindow, ToySequence,
};

/// Sequences with one class each.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    /// `[batch, steps, features]`, zero-padded to the longest item.
    pub input: Tensor<3>,
    /// True lengths (all equal to `steps` for fixed-length data).
    pub lengths: Vec<usize>,
    /// Class of each sequence.
    pub labels: Vec<usize>,
}

/// Batches [`SequenceItem`]s (MNIST rows or pixels) and [`ToySequence`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct SequenceBatcher;

/// `[batch, steps, features]` from per-item row-major values, zero-padded to `steps`.
fn padded(rows: &[&[f32]], steps: usize, features: usize, device: &Device) -> Tensor<3> {
    let mut values = vec![0.0f32; rows.len() * steps * features];
    for (b, row) in rows.iter().enumerate() {
        let n = row.len().min(steps * features);
        values[b * steps * features..b * steps * features + n].copy_from_slice(&row[..n]);
    }
    Tensor::from_data(
        TensorData::new(values, [rows.len(), steps, features]),
        device,
    )
}

impl Batcher<SequenceItem, SequenceBatch> for SequenceBatcher {
    fn batch(&self, items: Vec<SequenceItem>, device: &Device) -> SequenceBatch {
        let steps = items.iter().map(|i| i.steps).max().unwrap_or(0);
        let features = items.iter().map(|i| i.features).max().unwrap_or(0);
        let rows: Vec<&[f32]> = items.iter().map(|i| i.values.as_slice()).collect();
        SequenceBatch {
            input: padded(&rows, steps, features, device),
            lengths: items.iter().map(|i| i.steps).collect(),
            labels: items.iter().map(|i| i.label).collect(),
        }
    }
}

impl Batcher<ToySequence, SequenceBatch> for SequenceBatcher {
    fn batch(&self, items: Vec<ToySequence>, device: &Device) -> SequenceBatch {
        let steps = items.iter().map(|i| i.values.len()).max().unwrap_or(0);
        let rows: Vec<&[f32]> = items.iter().map(|i| i.values.as_slice()).collect();
        SequenceBatch {
            input: padded(&rows, steps, 1, device),
            lengths: items.iter().map(|i| i.len).collect(),
            labels: items.iter().map(|i| i.label).collect(),
        }
    }
}

/// Inputs and per-step regression targets.
#[derive(Debug, Clone)]
pub struct RegressionBatch {
    /// `[batch, steps, 1]`.
    pub input: Tensor<3>,
    /// `[batch, steps, 1]`.
    pub target: Tensor<3>,
}

/// Batches [`SinCosWindow`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinCosBatcher;

impl Batcher<SinCosWindow, RegressionBatch> for SinCosBatcher {
    fn batch(&self, items: Vec<SinCosWindow>, device: &Device) -> RegressionBatch {
        let steps = items.iter().map(|w| w.input.len()).max().unwrap_or(0);
        let inputs: Vec<&[f32]> = items.iter().map(|w| w.input.as_slice()).collect();
        let targets: Vec<&[f32]> = items.iter().map(|w| w.target.as_slice()).collect();
        RegressionBatch {
            input: padded(&inputs, steps, 1, device),
            target: padded(&targets, steps, 1, device),
        }
    }
}

/// One-hot questions and answer indices.
#[derive(Debug, Clone)]
pub struct Seq2SeqBatch {
    /// `[batch, question_len, chars]` one-hot.
    pub input: Tensor<3>,
    /// `[batch][answer_len]` character indices.
    pub targets: Vec<Vec<usize>>,
}

/// Batches [`AdditionItem`]s through a [`CharTable`]. Characters outside the table encode as
/// the padding character (the generator never produces any).
#[derive(Debug, Clone)]
pub struct AdditionBatcher {
    /// The alphabet.
    pub table: CharTable,
    /// `2·digits + 1`.
    pub question_len: usize,
    /// `digits + 1`.
    pub answer_len: usize,
}

impl Batcher<AdditionItem, Seq2SeqBatch> for AdditionBatcher {
    fn batch(&self, items: Vec<AdditionItem>, device: &Device) -> Seq2SeqBatch {
        let width = self.table.len();
        let pad = self.table.index(' ').unwrap_or(0);
        let indices = |text: &str, len: usize| {
            self.table
                .indices(text, len)
                .unwrap_or_else(|_| vec![pad; len])
        };
        let mut values = vec![0.0f32; items.len() * self.question_len * width];
        for (b, item) in items.iter().enumerate() {
            for (t, c) in indices(&item.question, self.question_len)
                .into_iter()
                .enumerate()
            {
                values[(b * self.question_len + t) * width + c] = 1.0;
            }
        }
        Seq2SeqBatch {
            input: Tensor::from_data(
                TensorData::new(values, [items.len(), self.question_len, width]),
                device,
            ),
            targets: items
                .iter()
                .map(|i| indices(&i.answer, self.answer_len))
                .collect(),
        }
    }
}

/// One-hot character windows and their targets.
#[derive(Debug, Clone)]
pub struct CharBatch {
    /// `[batch, steps, vocab]` one-hot.
    pub input: Tensor<3>,
    /// `[batch][1]` (next character) or `[batch][steps]` (language model) target ids.
    pub targets: Vec<Vec<usize>>,
}

/// Batches [`NextCharItem`]s and [`LmItem`]s of a corpus with `vocab` characters. Ids at or
/// above `vocab` are left all-zero rather than panicking.
#[derive(Debug, Clone, Copy)]
pub struct CharBatcher {
    /// Vocabulary size: the one-hot width.
    pub vocab: usize,
}

impl CharBatcher {
    fn one_hot(&self, windows: &[&[u32]], device: &Device) -> Tensor<3> {
        let steps = windows.iter().map(|w| w.len()).max().unwrap_or(0);
        let mut values = vec![0.0f32; windows.len() * steps * self.vocab];
        for (b, w) in windows.iter().enumerate() {
            for (t, &c) in w.iter().enumerate() {
                if (c as usize) < self.vocab {
                    values[(b * steps + t) * self.vocab + c as usize] = 1.0;
                }
            }
        }
        Tensor::from_data(
            TensorData::new(values, [windows.len(), steps, self.vocab]),
            device,
        )
    }
}

impl Batcher<NextCharItem, CharBatch> for CharBatcher {
    fn batch(&self, items: Vec<NextCharItem>, device: &Device) -> CharBatch {
        let windows: Vec<&[u32]> = items.iter().map(|i| i.input.as_slice()).collect();
        CharBatch {
            input: self.one_hot(&windows, device),
            targets: items.iter().map(|i| vec![i.target as usize]).collect(),
        }
    }
}

impl Batcher<LmItem, CharBatch> for CharBatcher {
    fn batch(&self, items: Vec<LmItem>, device: &Device) -> CharBatch {
        let windows: Vec<&[u32]> = items.iter().map(|i| i.input.as_slice()).collect();
        CharBatch {
            input: self.one_hot(&windows, device),
            targets: items
                .iter()
                .map(|i| i.target.iter().map(|&t| t as usize).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::data::dataset::Dataset;

    use super::*;
    use crate::{ADDITION_CHARS, AdditionConfig, SinCos, ToySequencesConfig};

    #[test]
    fn batches_have_the_documented_shapes_and_values() {
        let device = Device::flex();
        let toy = ToySequencesConfig {
            samples: 4,
            ..Default::default()
        }
        .generate()
        .unwrap();
        let items: Vec<ToySequence> = (0..4).map(|i| toy.get(i).unwrap()).collect();
        let b = SequenceBatcher.batch(items.clone(), &device);
        assert_eq!(b.input.dims(), [4, 20, 1]);
        assert_eq!(b.lengths, items.iter().map(|i| i.len).collect::<Vec<_>>());
        let first: Vec<f32> = b.input.narrow(0, 0, 1).into_data().try_to_vec().unwrap();
        assert_eq!(first, items[0].values);

        let sc = SinCos::new(2, 10).unwrap();
        let r = SinCosBatcher.batch(vec![sc.get(0).unwrap(), sc.get(1).unwrap()], &device);
        assert_eq!((r.input.dims(), r.target.dims()), ([2, 10, 1], [2, 10, 1]));

        let add = AdditionConfig {
            size: 3,
            ..Default::default()
        }
        .generate()
        .unwrap();
        let batcher = AdditionBatcher {
            table: CharTable::new(ADDITION_CHARS),
            question_len: 7,
            answer_len: 4,
        };
        let s = batcher.batch(add.items().to_vec(), &device);
        assert_eq!(s.input.dims(), [3, 7, 12]);
        let ones: f32 = s.input.sum().into_scalar();
        assert_eq!(ones, 21.0, "one hot per character");
        assert_eq!(
            batcher.table.decode_indices(&s.targets[0]),
            add.items()[0].answer
        );
    }
}
