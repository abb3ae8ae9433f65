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
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::checkpoint::{self, LoopState};
use crate::devices::{Devices, shards};
use crate::progress::Progress;
use crate::tasks::scalar;
use crate::{
    BatchStats, EpochRecord, History, Metrics, Objective, Schedule, TrainConfig, TrainError,
};

/// The result of [`fit`].
#[derive(Debug)]
pub struct Fitted<M> {
    /// The trained model (on the training device; call `valid()` for inference).
    pub model: M,
    /// Every finished epoch, including those restored from a checkpoint.
    pub history: History,
    /// The checkpoint the run resumed from, if any.
    pub resumed_from: Option<PathBuf>,
    /// With `keep_best`: the 1-based epoch whose weights `model` holds, and its metric value.
    pub best_epoch: Option<(usize, f64)>,
}

/// Trains `model` on `train`, validating on `valid` after every epoch.
///
/// `devices` is the training device (`&device`; it is given autodiff if it lacks it) or
/// several ([`Devices`]) for data parallelism: each batch is then split across them and their
/// gradients summed on the first before one optimizer step (see [`Devices`]; the objective's
/// loss must be the mean over the batch's items, as the losses in [`crate::tasks`] are). The
/// model, optimizer state and validation stay on the first device. With a `run_dir`,
/// `metrics.jsonl`, `learning_curve.png`, `report.html` and `checkpoints/` are written there, and with
/// `resume` the newest valid checkpoint is continued so that the run ends exactly as an
/// uninterrupted one would (on deterministic CPU backends).
///
/// The loop reads as `start_or_resume` → per epoch `train_epoch` then `close_epoch`.
///
/// # Errors
/// [`TrainError`] for a bad config, an empty training set, a failing step, a NaN/Inf loss
/// (the last good checkpoint stays), a checkpoint that cannot be written or read, or several
/// devices for an objective that carries state from batch to batch.
pub fn fit<M, O>(
    config: &TrainConfig,
    model: M,
    objective: &mut O,
    train: &dyn Dataset<O::Item>,
    valid: Option<&dyn Dataset<O::Item>>,
    devices: impl Into<Devices>,
) -> Result<Fitted<M>, TrainError>
where
    M: Module + Clone,
    O: Objective<M>,
{
    config.check()?;
    if train.is_empty() {
        return Err(TrainError::EmptyDataset);
    }
    if config.keep_best.is_some() && valid.is_none() {
        return Err(TrainError::InvalidConfig {
            field: "keep_best",
            value: "set".into(),
            expected: "a validation set to choose the best epoch on",
        });
    }
    let devices = devices.into();
    if devices.len() > 1 && objective.carries_state() {
        return Err(TrainError::InvalidConfig {
            field: "devices",
            value: devices.len().to_string(),
            expected: "one device for an objective that carries state from batch to batch \
                       (truncated BPTT): data parallelism splits every batch",
        });
    }
    let setup = Setup {
        config,
        train,
        valid,
        valid_device: devices.main().clone().inner(),
        devices,
    };
    let (mut run, resumed_from) = start_or_resume(config, model)?;
    while run.state.epoch < config.epochs && !run.state.history.stopped_early {
        let pass;
        (run, pass) = train_epoch(&setup, run, objective)?;
        close_epoch(&setup, &mut run, objective, pass)?;
    }
    if let Some(run_dir) = &config.run_dir {
        let info = config.run_info.clone().unwrap_or_default();
        crate::plot::learning_curve(
            &run_dir.join("learning_curve.png"),
            &run.state.history,
            &info,
        )?;
        crate::Report::new(config, &run.state.history).write(run_dir)?;
    }
    let best_epoch = run.state.best_epoch;
    if let (Some(metric), Some((epoch, value))) = (config.keep_best, best_epoch) {
        eprintln!(
            "kept the weights of epoch {epoch} (validation {} {value:.4})",
            metric.name()
        );
    }
    Ok(Fitted {
        model: run.best.unwrap_or(run.model),
        history: run.state.history,
        resumed_from,
        best_epoch,
    })
}

/// What every epoch of one [`fit`] reads and none changes.
struct Setup<'a, I> {
    config: &'a TrainConfig,
    train: &'a dyn Dataset<I>,
    valid: Option<&'a dyn Dataset<I>>,
    /// The training devices (with autodiff); the first holds the model.
    devices: Devices,
    /// The first device without autodiff, for validation.
    valid_device: Device,
}

impl<I> Setup<'_, I> {
    /// [`evaluate`]s `model` on `data` with the run's batch size on the validation device.
    fn validate<M, O>(
        &self,
        model: &M,
        objective: &mut O,
        data: &dyn Dataset<I>,
    ) -> Result<Metrics, TrainError>
    where
        M: Module + Clone,
        O: Objective<M, Item = I>,
    {
        evaluate(
            model,
            objective,
            data,
            self.config.batch_size,
            &self.valid_device,
        )
    }
}

/// What the loop carries from epoch to epoch: exactly what a checkpoint saves.
struct Run<M> {
    model: M,
    /// With `keep_best`: the best epoch's weights so far.
    best: Option<M>,
    optimizer: ModuleOptimizer,
    state: LoopState,
}

/// What one pass over the training set produced, before the epoch is closed.
struct Pass {
    lr: f64,
    train: Metrics,
    step_losses: Vec<f64>,
    mid_epoch_valid: Vec<(usize, Metrics)>,
    started: Instant,
    progress: Progress,
}

/// Starts a run: a fresh optimizer and loop state, or — with `resume` and a checkpoint that
/// verifies in the run directory — the model, optimizer and loop state restored from it
/// (returned with its path). The metrics log is then rewritten to match the history.
fn start_or_resume<M: Module + Clone>(
    config: &TrainConfig,
    model: M,
) -> Result<(Run<M>, Option<PathBuf>), TrainError> {
    let mut run = Run {
        model,
        best: None,
        optimizer: config.optimizer.build(config.clip),
        state: LoopState::default(),
    };
    let Some(run_dir) = &config.run_dir else {
        return Ok((run, None));
    };
    fs::create_dir_all(run_dir).map_err(TrainError::io(run_dir))?;
    let mut resumed_from = None;
    if config.resume
        && let Some(restored) =
            checkpoint::load_latest(run_dir, config, run.model.clone(), run.optimizer.clone())?
    {
        if !config.quiet {
            eprintln!(
                "resuming from {} (epoch {})",
                restored.path.display(),
                restored.state.epoch
            );
        }
        run = Run {
            model: restored.model,
            best: restored.best,
            optimizer: restored.optimizer,
            state: restored.state,
        };
        resumed_from = Some(restored.path);
    }
    write_log(run_dir, &run.state.history)?;
    Ok((run, resumed_from))
}

/// Trains epoch `run.state.epoch` (0-based): one pass over the shuffled training set, a
/// clipped optimizer step per batch, and a validation every `eval_every` steps.
///
/// The model moves through the optimizer by value, so `run` does too.
///
/// # Errors
/// What the objective or the dataset reports, or [`TrainError::NonFiniteLoss`] with the
/// objective's diagnosis of the batch.
fn train_epoch<M, O>(
    setup: &Setup<'_, O::Item>,
    mut run: Run<M>,
    objective: &mut O,
) -> Result<(Run<M>, Pass), TrainError>
where
    M: Module + Clone,
    O: Objective<M>,
{
    let config = setup.config;
    let epoch = run.state.epoch;
    let started = Instant::now();
    let order = seed_epoch(config, setup.devices.as_slice(), epoch, setup.train.len());
    let batches = order.len().div_ceil(config.batch_size);
    let lr = config.lr_at(epoch, run.state.halvings);
    let mut progress = Progress::new(config.quiet, epoch + 1, config.epochs, batches);
    let mut stats = BatchStats::default();
    let mut loss_sum = 0.0;
    let mut step_losses = Vec::with_capacity(batches);
    let mut mid_epoch_valid = Vec::new();
    objective.start_epoch(epoch);
    objective.start_pass(true);
    for (i, chunk) in order.chunks(config.batch_size).enumerate() {
        let batch = batch_gradients(setup, &run.model, objective, chunk)?;
        let loss = batch.loss;
        run.state.global_step += 1;
        let Some(grads) = batch.grads else {
            return Err(TrainError::NonFiniteLoss {
                cause: diagnose(objective, setup.train, chunk)?,
                epoch: epoch + 1,
                step: i + 1,
                global_step: run.state.global_step,
                value: loss,
            });
        };
        run.model = run.optimizer.step(lr, run.model, grads);
        loss_sum += loss * batch.stats.items as f64;
        stats.merge(&batch.stats);
        step_losses.push(loss);
        progress.step(loss);
        if let (Some(every), Some(valid)) = (config.eval_every, setup.valid)
            && run.state.global_step.is_multiple_of(every)
            && i + 1 < batches
        {
            let m = setup.validate(&run.model, objective, valid)?;
            mid_epoch_valid.push((run.state.global_step, m));
            objective.start_pass(true);
        }
    }
    let pass = Pass {
        lr,
        train: Metrics::from_sums(loss_sum, &stats),
        step_losses,
        mid_epoch_valid,
        started,
        progress,
    };
    Ok((run, pass))
}

/// One batch's mean loss, its counts and — when the loss is finite — the gradient of the
/// loss, on one device or split across several.
struct BatchGradients {
    loss: f64,
    stats: BatchStats,
    grads: Option<GradientsParams>,
}

/// Runs `objective` on the batch `chunk` (indices into the training set): on the one device,
/// or shard by shard on each device with the shards' gradients weighted by their share of the
/// batch and summed on the first device (burn-optim's `GradientsAccumulator`).
fn batch_gradients<M, O>(
    setup: &Setup<'_, O::Item>,
    model: &M,
    objective: &mut O,
    chunk: &[usize],
) -> Result<BatchGradients, TrainError>
where
    M: Module + Clone,
    O: Objective<M>,
{
    let devices = setup.devices.as_slice();
    if devices.len() == 1 {
        let out = objective.step(model, items(setup.train, chunk)?, &devices[0])?;
        let loss = scalar(&out.loss)?;
        let grads = loss
            .is_finite()
            .then(|| GradientsParams::from_grads(out.loss.backward(), model));
        return Ok(BatchGradients {
            loss,
            stats: out.stats,
            grads,
        });
    }
    let mut sum = GradientsAccumulator::<M>::new();
    let mut batch = BatchGradients {
        loss: 0.0,
        stats: BatchStats::default(),
        grads: None,
    };
    let mut finite = true;
    for (shard, device) in shards(chunk, devices.len()).into_iter().zip(devices) {
        let replica = model.clone().fork(device);
        let out = objective.step(&replica, items(setup.train, shard)?, device)?;
        let weight = shard.len() as f64 / chunk.len() as f64;
        let loss = scalar(&out.loss)?;
        batch.loss += weight * loss;
        batch.stats.merge(&out.stats);
        finite &= loss.is_finite();
        if finite {
            let grads =
                GradientsParams::from_grads(out.loss.mul_scalar(weight).backward(), &replica)
                    .to_device(setup.devices.main(), &replica);
            sum.accumulate(&replica, grads);
        }
    }
    batch.grads = finite.then(|| sum.grads());
    Ok(batch)
}

/// Seeds the devices' dropout and returns the order of the training items for `epoch`
/// (0-based). Both depend only on (seed, epoch): a resumed run draws the same.
fn seed_epoch(config: &TrainConfig, devices: &[Device], epoch: usize, len: usize) -> Vec<usize> {
    let seed = config
        .seed
        .wrapping_add(epoch as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for (i, device) in devices.iter().enumerate() {
        device.seed(seed.wrapping_add(i as u64));
    }
    let mut order: Vec<usize> = (0..len).collect();
    if config.shuffle {
        order.shuffle(&mut StdRng::seed_from_u64(
            config.seed ^ ((epoch as u64 + 1) << 32),
        ));
    }
    order
}

/// Why a batch's loss is not finite: bad input, as the objective finds it, or divergence.
/// The batch is fetched again only now, so the happy path never copies it.
fn diagnose<M, O: Objective<M>>(
    objective: &O,
    train: &dyn Dataset<O::Item>,
    chunk: &[usize],
) -> Result<String, TrainError> {
    Ok(match objective.diagnose(&items(train, chunk)?) {
        Some(bad) => format!("the batch's input is not finite ({bad})"),
        None => "the inputs are finite, so the model diverged (lower the learning rate or clip gradients)".into(),
    })
}

/// Closes the epoch just trained: validates, records it, updates the learning-rate schedule
/// and early stopping, shows the model to the objective, and writes the metrics log and a
/// checkpoint.
///
/// # Errors
/// What validation reports, or a log or checkpoint that cannot be written.
fn close_epoch<M, O>(
    setup: &Setup<'_, O::Item>,
    run: &mut Run<M>,
    objective: &mut O,
    pass: Pass,
) -> Result<(), TrainError>
where
    M: Module + Clone,
    O: Objective<M>,
{
    let config = setup.config;
    let epoch = run.state.epoch + 1; // 1-based
    let valid = setup
        .valid
        .map(|v| setup.validate(&run.model, objective, v))
        .transpose()?;
    let record = EpochRecord {
        epoch,
        global_step: run.state.global_step,
        lr: pass.lr,
        train: pass.train,
        valid,
        step_losses: pass.step_losses,
        mid_epoch_valid: pass.mid_epoch_valid,
        seconds: pass.started.elapsed().as_secs_f64(),
    };
    let show = epoch.is_multiple_of(config.log_every) || epoch == config.epochs;
    pass.progress.finish(&record, show);
    update_schedule(config, &mut run.state, &record);
    update_early_stopping(config, &mut run.state, &record);
    keep_if_best(config, run, &record);
    objective.end_epoch(&run.model.valid(), &record);
    run.state.history.epochs.push(record);
    run.state.epoch = epoch;
    if let Some(run_dir) = &config.run_dir {
        write_log(run_dir, &run.state.history)?;
        let best = run.best.as_ref();
        checkpoint::save(
            run_dir,
            config,
            &run.model,
            best,
            &run.optimizer,
            &run.state,
        )?;
    }
    Ok(())
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

/// Counts a rise of the training loss over the previous epoch as one halving of the learning
/// rate, under the one schedule that reads the count.
fn update_schedule(config: &TrainConfig, state: &mut LoopState, record: &EpochRecord) {
    if config.schedule == Schedule::HalveOnRise
        && let Some(prev) = state.history.last()
        && record.train.loss > prev.train.loss
    {
        state.halvings += 1;
    }
}

/// Counts validations without improvement of the watched metric; stops after `patience`.
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

/// `keep_best`: keeps the model's weights when this epoch's validation metric beats the best
/// so far (the first validated epoch always does).
fn keep_if_best<M: Clone>(config: &TrainConfig, run: &mut Run<M>, record: &EpochRecord) {
    let Some(metric) = config.keep_best else {
        return;
    };
    let Some(value) = record.valid.as_ref().and_then(|v| v.get(metric)) else {
        return;
    };
    let better = match run.state.best_epoch {
        None => true,
        Some((_, best)) if metric.higher_is_better() => value > best,
        Some((_, best)) => value < best,
    };
    if better {
        run.state.best_epoch = Some((record.epoch, value));
        run.best = Some(run.model.clone());
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
