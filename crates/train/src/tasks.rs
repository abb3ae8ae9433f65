//! Losses and metrics of the task kinds the tutorials need: classification of whole sequences,
//! per-step classification (seq2seq, character language models), per-step regression.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::{BatchStats, StepOutput, TrainError};

/// Cross-entropy over classes of whole sequences, with accuracy.
///
/// `logits: [batch, classes]`, `targets[b]` in `0..classes`.
///
/// # Errors
/// [`TrainError::Step`] when `targets` does not have one class per row or a class is out of range.
pub fn classification(logits: Tensor<2>, targets: &[usize]) -> Result<StepOutput, TrainError> {
    classification_with_predictions(logits, targets).map(|(output, _)| output)
}

/// [`classification`], also returning the predicted class of every row (the argmax the
/// accuracy is counted from), e.g. for a [`ConfusionMatrix`](crate::ConfusionMatrix).
///
/// # Errors
/// As [`classification`].
pub fn classification_with_predictions(
    logits: Tensor<2>,
    targets: &[usize],
) -> Result<(StepOutput, Vec<usize>), TrainError> {
    let [batch, classes] = logits.dims();
    check_targets(targets, batch, classes)?;
    let (loss, predictions) = cross_entropy(logits, targets)?;
    let correct = predictions
        .iter()
        .zip(targets)
        .filter(|(p, t)| p == t)
        .count();
    let output = StepOutput {
        loss,
        stats: BatchStats {
            items: batch,
            correct: Some((correct, batch)),
            ..BatchStats::default()
        },
    };
    Ok((output, predictions))
}

/// Cross-entropy at every step of every sequence, with per-step accuracy and exact-sequence
/// accuracy (the addition task's measure, and a character language model's loss).
///
/// `logits: [batch, steps, classes]`, `targets: [batch][steps]`.
///
/// # Errors
/// [`TrainError::Step`] for target shapes that do not match or classes out of range.
pub fn sequence_classification(
    logits: Tensor<3>,
    targets: &[Vec<usize>],
) -> Result<StepOutput, TrainError> {
    let [batch, steps, classes] = logits.dims();
    if targets.len() != batch || targets.iter().any(|t| t.len() != steps) {
        return Err(TrainError::Step(format!(
            "targets must be [{batch}][{steps}], got {} sequences",
            targets.len()
        )));
    }
    let flat: Vec<usize> = targets.iter().flatten().copied().collect();
    check_targets(&flat, batch * steps, classes)?;
    let (loss, predictions) = cross_entropy(logits.reshape([batch * steps, classes]), &flat)?;
    let correct = predictions
        .iter()
        .zip(&flat)
        .filter(|(p, t)| p == t)
        .count();
    let exact = predictions
        .chunks(steps)
        .zip(targets)
        .filter(|(p, t)| p.iter().zip(t.iter()).all(|(a, b)| a == b))
        .count();
    Ok(StepOutput {
        loss,
        stats: BatchStats {
            items: batch,
            correct: Some((correct, batch * steps)),
            exact: Some((exact, batch)),
            ..BatchStats::default()
        },
    })
}

/// Mean squared error of a prediction against a target of the same shape.
///
/// # Errors
/// [`TrainError::Step`] when the shapes differ.
pub fn regression<const D: usize>(
    prediction: Tensor<D>,
    target: Tensor<D>,
) -> Result<StepOutput, TrainError> {
    let dims = prediction.dims();
    if dims != target.dims() {
        return Err(TrainError::Step(format!(
            "prediction {:?} and target {:?} differ in shape",
            dims,
            target.dims()
        )));
    }
    let count: usize = dims.iter().product();
    let loss = (prediction - target).powi_scalar(2).mean();
    let mse = scalar(&loss)?;
    Ok(StepOutput {
        loss,
        stats: BatchStats {
            items: dims[0],
            squared_error: Some((mse * count as f64, count)),
            ..BatchStats::default()
        },
    })
}

/// The output at each sequence's last real step: what the TensorFlow dynamic-RNN tutorial
/// classifies. `output: [batch, seq, features]` → `[batch, features]`.
///
/// # Errors
/// [`TrainError::Step`] when `lengths` has the wrong count or a length outside `1..=seq`.
pub fn last_relevant(output: Tensor<3>, lengths: &[usize]) -> Result<Tensor<2>, TrainError> {
    let [batch, seq, features] = output.dims();
    if lengths.len() != batch || lengths.iter().any(|&l| l == 0 || l > seq) {
        return Err(TrainError::Step(format!(
            "lengths {lengths:?} must be {batch} values in 1..={seq}"
        )));
    }
    let index: Vec<i64> = lengths
        .iter()
        .flat_map(|&l| std::iter::repeat_n(l as i64 - 1, features))
        .collect();
    let index = Tensor::<3, Int>::from_data(
        TensorData::new(index, [batch, 1, features]),
        &output.device(),
    );
    Ok(output.gather(1, index).reshape([batch, features]))
}

/// Mean of `-log softmax(logits)[target]` and the argmax predictions.
fn cross_entropy(
    logits: Tensor<2>,
    targets: &[usize],
) -> Result<(Tensor<1>, Vec<usize>), TrainError> {
    let [rows, _] = logits.dims();
    let device = logits.device();
    let predictions = logits
        .clone()
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| TrainError::Step(format!("reading predictions: {e:?}")))?
        .into_iter()
        .map(|p| p as usize)
        .collect();
    let index: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    let index = Tensor::<2, Int>::from_data(TensorData::new(index, [rows, 1]), &device);
    let picked = log_softmax(logits, 1).gather(1, index);
    Ok((picked.mean().neg(), predictions))
}

fn check_targets(targets: &[usize], rows: usize, classes: usize) -> Result<(), TrainError> {
    if targets.len() != rows {
        return Err(TrainError::Step(format!(
            "{} targets for {rows} rows",
            targets.len()
        )));
    }
    if let Some(bad) = targets.iter().find(|&&t| t >= classes) {
        return Err(TrainError::Step(format!(
            "target class {bad} is not below {classes}"
        )));
    }
    Ok(())
}

/// Reads a one-element tensor.
pub(crate) fn scalar(t: &Tensor<1>) -> Result<f64, TrainError> {
    t.clone()
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .ok_or_else(|| TrainError::Step("the loss is not a one-element tensor".into()))
}
