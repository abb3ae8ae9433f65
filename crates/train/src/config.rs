//! What a training run is: epochs, batches, optimizer, clipping, learning-rate schedule,
//! validation, early stopping, run directory.

use std::path::PathBuf;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, RmsPropConfig, SgdConfig};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The optimizer and its hyper-parameters, with PyTorch's defaults where Burn's differ
/// (Adam's `eps` is 1e-8 as in `torch.optim.Adam`, not Burn's 1e-5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Optimizer {
    /// `torch.optim.Adam`.
    Adam {
        /// Learning rate.
        lr: f64,
        /// `betas[0]`.
        beta1: f32,
        /// `betas[1]`.
        beta2: f32,
        /// `eps`.
        eps: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    },
    /// `torch.optim.AdamW` (decoupled weight decay).
    AdamW {
        /// Learning rate.
        lr: f64,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
    /// `torch.optim.SGD`.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum (0 for plain SGD).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty.
        weight_decay: f32,
    },
    /// `torch.optim.RMSprop` (Keras' default for its text-generation tutorial).
    RmsProp {
        /// Learning rate.
        lr: f64,
        /// Smoothing constant.
        alpha: f32,
        /// `eps`.
        eps: f32,
        /// L2 penalty added to the gradient (0 in configs written before it existed).
        #[serde(default)]
        weight_decay: f32,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults and the given learning rate.
    pub fn adam(lr: f64) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// Plain SGD.
    pub fn sgd(lr: f64) -> Self {
        Optimizer::Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// RMSprop with PyTorch's defaults.
    pub fn rmsprop(lr: f64) -> Self {
        Optimizer::RmsProp {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// AdamW with PyTorch's defaults (`weight_decay = 0.01`, decoupled from the gradient).
    pub fn adamw(lr: f64) -> Self {
        Optimizer::AdamW {
            lr,
            weight_decay: 0.01,
        }
    }

    /// The same optimizer with another weight decay: decoupled for AdamW
    /// (`w ← w − lr·λ·w` beside the Adam step), an L2 penalty added to the gradient
    /// (`g ← g + λ·w`) for Adam, SGD and RMSprop — PyTorch's `weight_decay` in each.
    pub fn with_weight_decay(mut self, new: f32) -> Self {
        match &mut self {
            Optimizer::Adam { weight_decay, .. }
            | Optimizer::AdamW { weight_decay, .. }
            | Optimizer::Sgd { weight_decay, .. }
            | Optimizer::RmsProp { weight_decay, .. } => *weight_decay = new,
        }
        self
    }

    /// The weight decay; see [`Self::with_weight_decay`].
    pub fn weight_decay(&self) -> f32 {
        match self {
            Optimizer::Adam { weight_decay, .. }
            | Optimizer::AdamW { weight_decay, .. }
            | Optimizer::Sgd { weight_decay, .. }
            | Optimizer::RmsProp { weight_decay, .. } => *weight_decay,
        }
    }

    /// The same optimizer with another learning rate.
    pub fn with_lr(mut self, new: f64) -> Self {
        match &mut self {
            Optimizer::Adam { lr, .. }
            | Optimizer::AdamW { lr, .. }
            | Optimizer::Sgd { lr, .. }
            | Optimizer::RmsProp { lr, .. } => *lr = new,
        }
        self
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Adam { lr, .. }
            | Optimizer::AdamW { lr, .. }
            | Optimizer::Sgd { lr, .. }
            | Optimizer::RmsProp { lr, .. } => *lr,
        }
    }

    /// Builds burn-optim's optimizer with the clipping applied before each step.
    pub(crate) fn build(&self, clip: Option<Clip>) -> ModuleOptimizer {
        let clip = clip.map(|c| match c {
            Clip::Norm(v) => GradientClippingConfig::Norm(v),
            Clip::Value(v) => GradientClippingConfig::Value(v),
        });
        let decay = |w: f32| (w > 0.0).then(|| WeightDecayConfig::new(w));
        match self {
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => AdamConfig::new()
                .with_beta_1(*beta1)
                .with_beta_2(*beta2)
                .with_epsilon(*eps)
                .with_weight_decay(decay(*weight_decay))
                .with_grad_clipping(clip)
                .init(),
            Optimizer::AdamW { weight_decay, .. } => AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(*weight_decay)
                .with_grad_clipping(clip)
                .init(),
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
                ..
            } => SgdConfig::new()
                .with_momentum((*momentum > 0.0).then_some(MomentumConfig {
                    momentum: *momentum,
                    dampening: 0.0,
                    nesterov: *nesterov,
                }))
                .with_weight_decay(decay(*weight_decay))
                .with_gradient_clipping(clip)
                .init(),
            Optimizer::RmsProp {
                alpha,
                eps,
                weight_decay,
                ..
            } => RmsPropConfig::new()
                .with_alpha(*alpha)
                .with_epsilon(*eps)
                .with_momentum(0.0)
                .with_weight_decay(decay(*weight_decay))
                .with_grad_clipping(clip)
                .init(),
        }
    }
}

/// Gradient clipping, applied by burn-optim before each update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Clip {
    /// Rescale gradients whose L2 norm exceeds this (`clip_grad_norm_`).
    Norm(f32),
    /// Clamp every gradient element to ±this (`clip_grad_value_`).
    Value(f32),
}

/// How the learning rate changes over epochs.
///
/// Written here rather than taken from burn-optim's schedulers because the "halve when the
/// loss rises" rule of the numpy RNN tutorial depends on the loss, which those schedulers do
/// not see, and because a plain serializable value makes exact resume simple.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// The optimizer's rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` epochs (`StepLR`).
    Step {
        /// Epochs between decays.
        every: usize,
        /// Factor.
        gamma: f64,
    },
    /// Halve the rate after an epoch whose training loss is higher than the previous one's.
    HalveOnRise,
}

/// Stop when a validation metric has not improved for `patience` validations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Which metric to watch.
    pub metric: crate::Metric,
    /// Validations without improvement before stopping.
    pub patience: usize,
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Items per batch.
    pub batch_size: usize,
    /// Seed of the shuffling and of the device RNG (dropout).
    pub seed: u64,
    /// Shuffle the training items each epoch (false for streams trained with carried state).
    pub shuffle: bool,
    /// Optimizer and learning rate.
    pub optimizer: Optimizer,
    /// Gradient clipping.
    pub clip: Option<Clip>,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Also validate every this many steps (validation always runs at the end of an epoch).
    pub eval_every: Option<usize>,
    /// Early stopping on a validation metric.
    pub early_stopping: Option<EarlyStopping>,
    /// Return the weights of the epoch with the best value of this validation metric instead
    /// of the last epoch's (needs a validation set). Checkpoints carry them, so a resumed run
    /// keeps the same best.
    #[serde(default)]
    pub keep_best: Option<crate::Metric>,
    /// Where metrics, checkpoints and the learning-curve plot go. `None`: nothing is written.
    pub run_dir: Option<PathBuf>,
    /// Continue from the newest valid checkpoint in `run_dir`, if there is one.
    pub resume: bool,
    /// No progress bar (for CI and logs); one line per epoch instead.
    pub quiet: bool,
    /// Checkpoints kept on disk (the newest ones).
    pub keep_checkpoints: usize,
    /// Print the epoch summary line every this many epochs (and after the last).
    pub log_every: usize,
    /// Program, backend and date for the pictures' titles and `report.html`; not part of the
    /// run's identity (a resumed run may carry another date). Default: `None` (untitled).
    #[serde(skip)]
    pub run_info: Option<crate::RunInfo>,
}

impl TrainConfig {
    /// A run of `epochs` epochs of `batch_size` items with Adam(1e-3), nothing written.
    pub fn new(epochs: usize, batch_size: usize) -> Self {
        Self {
            epochs,
            batch_size,
            seed: 0,
            shuffle: true,
            optimizer: Optimizer::adam(1e-3),
            clip: None,
            schedule: Schedule::Constant,
            eval_every: None,
            early_stopping: None,
            keep_best: None,
            run_dir: None,
            resume: false,
            quiet: false,
            keep_checkpoints: 2,
            log_every: 1,
            run_info: None,
        }
    }

    /// Rejects impossible values before anything runs.
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`].
    pub fn check(&self) -> Result<(), TrainError> {
        let bad = |field, value: String, expected| {
            Err(TrainError::InvalidConfig {
                field,
                value,
                expected,
            })
        };
        if self.epochs == 0 {
            return bad("epochs", "0".into(), "at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "0".into(), "at least 1");
        }
        let lr = self.optimizer.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return bad("lr", lr.to_string(), "a positive number");
        }
        let decay = self.optimizer.weight_decay();
        if !(decay.is_finite() && decay >= 0.0) {
            return bad("weight_decay", decay.to_string(), "a number ≥ 0");
        }
        match self.clip {
            Some(Clip::Norm(v)) | Some(Clip::Value(v)) if !(v.is_finite() && v > 0.0) => {
                return bad("clip", v.to_string(), "a positive number");
            }
            _ => {}
        }
        if let Schedule::Step { every, gamma } = self.schedule
            && (every == 0 || !(gamma.is_finite() && gamma > 0.0))
        {
            return bad(
                "schedule",
                format!("{every}/{gamma}"),
                "every ≥ 1 and gamma > 0",
            );
        }
        if self.eval_every == Some(0) {
            return bad("eval_every", "0".into(), "at least 1");
        }
        if self.resume && self.run_dir.is_none() {
            return bad("resume", "true".into(), "a run_dir to resume from");
        }
        if self.log_every == 0 {
            return bad("log_every", "0".into(), "at least 1");
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints", "0".into(), "at least 1");
        }
        Ok(())
    }

    /// The learning rate of epoch `epoch` (0-based) after `halvings` loss-rise halvings.
    pub(crate) fn lr_at(&self, epoch: usize, halvings: u32) -> f64 {
        let base = self.optimizer.lr();
        match self.schedule {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::HalveOnRise => base * 0.5f64.powi(halvings as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Initializer, Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Tensor};

    use super::*;

    /// One step of `optimizer` (rate 0.1) on a single weight `w0` whose gradient is `g`.
    fn one_step(optimizer: &Optimizer, w0: f64, g: f32) -> f32 {
        let device = Device::flex().autodiff();
        let linear: Linear = LinearConfig::new(1, 1)
            .with_bias(false)
            .with_initializer(Initializer::Constant { value: w0 })
            .init(&device);
        // loss = g · w, so dloss/dw = g.
        let x = Tensor::<2>::from_floats([[g]], &device);
        let loss = linear.forward(x).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &linear);
        let linear = optimizer.build(None).step(0.1, linear, grads);
        let w = linear.weight.val().into_data().try_to_vec::<f32>().unwrap();
        w[0]
    }

    fn close(got: f32, want: f64) {
        assert!((got as f64 - want).abs() < 1e-4, "got {got}, want {want}");
    }

    #[test]
    fn weight_decay_changes_the_update_as_its_formula_says() {
        let (w0, lambda) = (2.0, 0.5);
        // SGD, L2: w − lr·(g + λw).
        close(one_step(&Optimizer::sgd(0.1), w0, 0.3), 2.0 - 0.1 * 0.3);
        let sgd = Optimizer::sgd(0.1).with_weight_decay(lambda);
        close(one_step(&sgd, w0, 0.3), 2.0 - 0.1 * (0.3 + 0.5 * 2.0));
        // AdamW, decoupled: the first Adam step moves by lr·sign(g), the decay by lr·λ·w.
        let adamw = Optimizer::adamw(0.1).with_weight_decay(lambda);
        close(one_step(&adamw, w0, 0.3), 2.0 - 0.1 - 0.1 * 0.5 * 2.0);
        close(
            one_step(&Optimizer::adamw(0.1).with_weight_decay(0.0), w0, 0.3),
            1.9,
        );
        // Adam, L2 inside the gradient: g + λw = −0.3 + 1.0 flips the step's direction.
        close(one_step(&Optimizer::adam(0.1), w0, -0.3), 2.1);
        let adam = Optimizer::adam(0.1).with_weight_decay(lambda);
        close(one_step(&adam, w0, -0.3), 1.9);
        // RMSprop, L2: the first step is lr·g'/√((1−α)·g'²) = lr·sign(g')/√0.01.
        close(one_step(&Optimizer::rmsprop(0.1), w0, -0.3), 3.0);
        let rmsprop = Optimizer::rmsprop(0.1).with_weight_decay(lambda);
        close(one_step(&rmsprop, w0, -0.3), 1.0);
    }

    #[test]
    fn a_negative_or_non_finite_weight_decay_is_rejected() {
        for bad in [-0.1, f32::NAN, f32::INFINITY] {
            let config = TrainConfig {
                optimizer: Optimizer::adamw(1e-3).with_weight_decay(bad),
                ..TrainConfig::new(1, 1)
            };
            assert!(
                matches!(
                    config.check(),
                    Err(TrainError::InvalidConfig {
                        field: "weight_decay",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
