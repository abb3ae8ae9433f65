//! The loop: epochs of shuffled batches, backward, clipped optimizer steps, validation,
//! metrics log, checkpoints, early stopping, exact resume.
//!
//! Burn's `Learner` (burn-train) is not used: its batches are independent, while truncated BPTT
//! carries the hidden state from one batch to the next, and exact resume needs the shuffling,
//! the dropout RNG and the learning-rate state to be functions of (seed, epoch) that a
//! checkpoint can restore. The pieces below are Burn's: burn-optim's optimizers and gradient
//! clipping, Burn's module records for the weights.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::checkpoint::{self, LoopState};
use crate::progress::Progress;
use crate::tasks::scalar;
use crate::{BatchStats, EpochRecord, History, Metrics, Objective, TrainConfig, TrainError};

/// The result of [`fit`].
#[derive(Debug)]
pub struct Fitted<M> {
    /// The trained model (on the training device; call `valid()` for inference).
    pub model: M,
    /// Every finished epoch, including those restored from a checkpoint.
    pub history: History,
    /// The checkpoint the run resumed from, if any.
    pub resumed_from: Option<PathBuf>,
}

/// Trains `model` on `train`, validating on `valid` after every epoch.
///
/// `device` is the training device; it is given autodiff if it lacks it. With a `run_dir`,
/// `metrics.jsonl`, `learning_curve.png` and `checkpoints/` are written there, and with
/// `resume` the newest valid checkpoint is continued so that the run ends exactly as an
/// uninterrupted one would (on deterministic CPU backends).
///
/// # Errors
/// [`TrainError`] for a bad config, an empty training set, a failing step, a NaN/Inf loss
/// (the last good checkpoint stays) or a checkpoint that cannot be written or read.
pub fn fit<M, O>(
    config: &TrainConfig,
    model: M,
    objective: &mut O,
    train: &dyn Dataset<O::Item>,
    valid: Option<&dyn Dataset<O::Item>>,
    device: &Device,
) -> Result<Fitted<M>, TrainError>
where
    M: Module + Clone,
    O: Objective<M>,
{
    config.check()?;
    if train.is_empty() {
        return Err(TrainError::EmptyDataset);
    }
    let device = if device.is_autodiff() {
        device.clone()
    } else {
        device.clone().autodiff()
    };
    let valid_device = device.clone().inner();
    let mut optimizer = config.optimizer.build(config.clip);
    let mut model = model;
    let mut state = LoopState {
        epoch: 0,
        global_step: 0,
        halvings: 0,
        best: None,
        bad_validations: 0,
        history: History::default(),
    };
    let mut resumed_from = None;
    if let Some(run_dir) = &config.run_dir {
        fs::create_dir_all(run_dir).map_err(TrainError::io(run_dir))?;
        if config.resume
            && let Some(restored) =
                checkpoint::load_latest(run_dir, config, model.clone(), optimizer.clone())?
        {
            model = restored.model;
            optimizer = restored.optimizer;
            state = restored.state;
            if !config.quiet {
                eprintln!(
                    "resuming from {} (epoch {})",
                    restored.path.display(),
                    state.epoch
                );
            }
            resumed_from = Some(restored.path);
        }
        write_log(run_dir, &state.history)?;
    }

    let batches = train.len().div_ceil(config.batch_size);
    while state.epoch < config.epochs && !state.history.stopped_early {
        let epoch = state.epoch; // 0-based
        // Dropout and shuffling depend only on (seed, epoch): a resumed run draws the same.
        device.seed(
            config
                .seed
                .wrapping_add(epoch as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        if config.shuffle {
            order.shuffle(&mut StdRng::seed_from_u64(
                config.seed ^ ((epoch as u64 + 1) << 32),
            ));
        }
        let lr = config.lr_at(epoch, state.halvings);
        let mut progress = Progress::new(config.quiet, epoch + 1, config.epochs, batches);
        let mut stats = BatchStats::default();
        let mut loss_sum = 0.0;
        let mut step_losses = Vec::with_capacity(batches);
        let mut mid_epoch_valid = Vec::new();
        objective.start_pass(true);
        for (i, chunk) in order.chunks(config.batch_size).enumerate() {
            let out = objective.step(&model, items(train, chunk)?, &device)?;
            let loss = scalar(&out.loss)?;
            state.global_step += 1;
            if !loss.is_finite() {
                // Fetch the batch again (only now, so the happy path never copies it).
                let items = items(train, chunk)?;
                let cause = match objective.diagnose(&items) {
                    Some(bad) => format!("the batch's input is not finite ({bad})"),
                    None => "the inputs are finite, so the model diverged (lower the learning rate or clip gradients)".into(),
                };
                return Err(TrainError::NonFiniteLoss {
                    cause,
                    epoch: epoch + 1,
                    step: i + 1,
                    global_step: state.global_step,
                    value: loss,
                });
            }
            let grads = GradientsParams::from_grads(out.loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
            loss_sum += loss * out.stats.items as f64;
            stats.merge(&out.stats);
            step_losses.push(loss);
            progress.step(loss);
            if let (Some(every), Some(valid)) = (config.eval_every, valid)
                && state.global_step.is_multiple_of(every)
                && i + 1 < batches
            {
                let m = evaluate(&model, objective, valid, config.batch_size, &valid_device)?;
                mid_epoch_valid.push((state.global_step, m));
                objective.start_pass(true);
            }
        }
        let train_metrics = Metrics::from_sums(loss_sum, &stats);
        let valid_metrics = match valid {
            Some(v) => Some(evaluate(
                &model,
                objective,
                v,
                config.batch_size,
                &valid_device,
            )?),
            None => None,
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            global_step: state.global_step,
            lr,
            train: train_metrics,
            valid: valid_metrics,
            step_losses,
            mid_epoch_valid,
            seconds: started.elapsed().as_secs_f64(),
        };
        let show = (epoch + 1).is_multiple_of(config.log_every) || epoch + 1 == config.epochs;
        progress.finish(&record, show);

        if let Some(prev) = state.history.last()
            && record.train.loss > prev.train.loss
        {
            state.halvings += 1;
        }
        update_early_stopping(config, &mut state, &record);
        state.history.epochs.push(record);
        state.epoch += 1;
        if let Some(last) = state.history.last() {
            objective.end_epoch(&model.valid(), last);
        }
        if let Some(run_dir) = &config.run_dir {
            write_log(run_dir, &state.history)?;
            checkpoint::save(run_dir, config, &model, &optimizer, &state)?;
        }
    }
    if let Some(run_dir) = &config.run_dir {
        crate::plot::learning_curve(&run_dir.join("learning_curve.png"), &state.history)?;
    }
    Ok(Fitted {
        model,
        history: state.history,
        resumed_from,
    })
}

/// Runs the objective over a dataset in order, without gradients.
///
/// # Errors
/// What the objective reports.
pub fn evaluate<M, O>(
    model: &M,
    objective: &mut O,
    data: &dyn Dataset<O::Item>,
    batch_size: usize,
    device: &Device,
) -> Result<Metrics, TrainError>
where
    M: Module + Clone,
    O: Objective<M>,
{
    let model = model.valid();
    objective.start_pass(false);
    let mut stats = BatchStats::default();
    let mut loss_sum = 0.0;
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let out = objective.step(&model, items(data, chunk)?, device)?;
        loss_sum += scalar(&out.loss)? * out.stats.items as f64;
        stats.merge(&out.stats);
    }
    Ok(Metrics::from_sums(loss_sum, &stats))
}

/// The items at `indices`, in that order.
fn items<I>(data: &dyn Dataset<I>, indices: &[usize]) -> Result<Vec<I>, TrainError> {
    indices
        .iter()
        .map(|&index| {
            data.get(index).map_err(|e| TrainError::Dataset {
                index,
                reason: e.to_string(),
            })
        })
        .collect()
}

fn update_early_stopping(config: &TrainConfig, state: &mut LoopState, record: &EpochRecord) {
    let Some(rule) = config.early_stopping else {
        return;
    };
    let metrics = record.valid.as_ref().unwrap_or(&record.train);
    let Some(value) = metrics.get(rule.metric) else {
        return;
    };
    let better = match state.best {
        None => true,
        Some(best) if rule.metric.higher_is_better() => value > best,
        Some(best) => value < best,
    };
    if better {
        state.best = Some(value);
        state.bad_validations = 0;
    } else {
        state.bad_validations += 1;
        if state.bad_validations >= rule.patience {
            state.history.stopped_early = true;
        }
    }
}

/// Rewrites `metrics.jsonl` (one JSON object per epoch) atomically from the history, so a
/// resumed run's log is exactly an uninterrupted run's.
fn write_log(run_dir: &Path, history: &History) -> Result<(), TrainError> {
    let path = run_dir.join("metrics.jsonl");
    let mut text = Vec::new();
    for e in &history.epochs {
        serde_json::to_writer(&mut text, e).map_err(|e| TrainError::io(&path)(e.into()))?;
        text.push(b'\n');
    }
    rnn_atomic::write(&path, &text).map_err(TrainError::io(&path))
}
