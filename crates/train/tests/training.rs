//! The loop's promises: a tiny LSTM learns; truncated BPTT cuts gradients at window
//! boundaries; an interrupted-and-resumed run equals an uninterrupted one; a NaN loss stops
//! the run with the documented error and a valid last checkpoint.

mod common;

use common::{Classifier, Item, data};

use burn::data::dataset::{Dataset, InMemDataset};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rnn_models::LstmConfig;
use rnn_train::{Carried, Objective, Optimizer, StepOutput, TrainConfig, TrainError, fit, tasks};

/// Classifies the sign of the sum; `nan_at` poisons the loss at that global step.
#[derive(Default)]
struct SumSign {
    steps: usize,
    nan_at: Option<usize>,
    /// Adds 1, 2, 3, … to successive validation batches' losses: a validation loss that only rises.
    worsen_validation: bool,
    validations: usize,
    /// The epochs `fit` announced through `start_epoch`, in order.
    epochs_started: Vec<usize>,
}

impl Objective<Classifier> for SumSign {
    type Item = Item;

    fn step(
        &mut self,
        model: &Classifier,
        batch: Vec<Item>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let n = batch.len();
        let values: Vec<f32> = batch.iter().flat_map(|i| i.values.clone()).collect();
        let x = Tensor::<3>::from_data(TensorData::new(values, [n, 6, 1]), device);
        let (out, _) = model.lstm.forward(x, None)?;
        let last = out.narrow(1, 5, 1).reshape([n, 8]);
        let labels: Vec<usize> = batch.iter().map(|i| i.label).collect();
        let mut result = tasks::classification(model.head.forward(last), &labels)?;
        if device.is_autodiff() {
            self.steps += 1;
            if self.nan_at == Some(self.steps) {
                result.loss = result.loss * f32::NAN;
            }
        } else if self.worsen_validation {
            self.validations += 1;
            result.loss = result.loss + self.validations as f64;
        }
        Ok(result)
    }

    fn diagnose(&self, batch: &[Item]) -> Option<String> {
        rnn_train::non_finite(batch.iter().map(|i| i.values.as_slice()))
    }

    fn start_epoch(&mut self, epoch: usize) {
        self.epochs_started.push(epoch);
    }
}

/// Burn's device RNG is one per process: a test that seeds it and then draws weights, and
/// `fit` (which reseeds it every epoch for dropout), must not interleave with another test's.
/// Every test holds this lock for its whole run.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        optimizer: Optimizer::adam(0.02),
        quiet: true,
        ..TrainConfig::new(epochs, 32)
    }
}

fn tmp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rnn-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn tiny_lstm_learns_well_beyond_chance() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    device.seed(1);
    let (train, valid) = (data(512, 1), data(256, 2));
    let fitted = fit(
        &config(12),
        Classifier::new(&device),
        &mut SumSign::default(),
        &train,
        Some(&valid),
        &device,
    )
    .unwrap();
    let last = fitted.history.last().unwrap();
    let valid = last.valid.unwrap();
    // Chance is 50 % accuracy and a loss of ln 2 ≈ 0.69.
    assert!(
        valid.accuracy.unwrap() > 0.9,
        "accuracy {:?}",
        valid.accuracy
    );
    assert!(valid.loss < 0.3, "loss {}", valid.loss);
    assert!(last.train.loss < fitted.history.epochs[0].train.loss / 2.0);
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let (train, valid) = (data(128, 3), data(64, 4));
    // One initial model for both runs: Burn's RNG is process-wide and other tests draw from it
    // concurrently, so re-seeding here would not reproduce the same weights.
    let initial = Classifier::new(&device);
    let run = |dir: &std::path::Path, epochs: usize, resume: bool, model: Classifier| {
        let cfg = TrainConfig {
            run_dir: Some(dir.to_path_buf()),
            resume,
            ..config(epochs)
        };
        let mut objective = SumSign::default();
        let fitted = fit(&cfg, model, &mut objective, &train, Some(&valid), &device).unwrap();
        (fitted, objective.epochs_started)
    };
    let (straight, straight_epochs) = run(&tmp_dir("straight"), 4, false, initial.clone());
    let dir = tmp_dir("resumed");
    let (first, first_epochs) = run(&dir, 2, false, initial);
    assert_eq!(first.history.epochs.len(), 2);
    // A freshly drawn model proves the weights come from the checkpoint.
    let (resumed, resumed_epochs) = run(&dir, 4, true, Classifier::new(&device));
    assert!(resumed.resumed_from.is_some());
    // The objective hears each training epoch's number, a resumed run the ones it runs.
    assert_eq!(straight_epochs, [0, 1, 2, 3]);
    assert_eq!((first_epochs, resumed_epochs), (vec![0, 1], vec![2, 3]));
    let (a, b) = (
        straight.history.step_losses(),
        resumed.history.step_losses(),
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "{x} vs {y}");
    }
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4);
    assert!(dir.join("learning_curve.png").is_file());
    // The report covers the whole resumed run, its learning curve inline.
    let report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        report.contains("<h1>training run: run report</h1>"),
        "{report}"
    );
    assert!(report.contains("<tr><th>epochs run</th><td class=\"v\">4</td></tr>"));
    assert!(report.contains("<img src=\"data:image/png;base64,iVBORw0KGgo"));
    // Every epoch records its wall time; the resumed run keeps the first run's.
    for (line, record) in log.lines().zip(&resumed.history.epochs) {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(json["seconds"].as_f64(), Some(record.seconds), "{line}");
        assert!(record.seconds > 0.0, "{line}");
    }
    for (before, after) in first.history.epochs.iter().zip(&resumed.history.epochs) {
        assert_eq!(before.seconds, after.seconds);
    }
}

#[test]
fn nan_loss_stops_with_step_and_keeps_last_checkpoint() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    device.seed(5);
    let (train, valid) = (data(64, 5), data(32, 6));
    let dir = tmp_dir("nan");
    let cfg = TrainConfig {
        run_dir: Some(dir.clone()),
        ..config(3)
    };
    // 2 steps per epoch: global step 4 is epoch 2, step 2.
    let mut objective = SumSign {
        nan_at: Some(4),
        ..SumSign::default()
    };
    let err = fit(
        &cfg,
        Classifier::new(&device),
        &mut objective,
        &train,
        Some(&valid),
        &device,
    )
    .unwrap_err();
    match err {
        TrainError::NonFiniteLoss {
            epoch,
            step,
            global_step,
            value,
            cause,
        } => {
            assert_eq!((epoch, step, global_step), (2, 2, 4));
            assert!(value.is_nan());
            // The inputs were fine: the message says the model diverged.
            assert!(cause.contains("diverged"), "{cause}");
        }
        other => panic!("expected NonFiniteLoss, got {other}"),
    }
    // The epoch-1 checkpoint is intact and a resume picks it up.
    assert!(dir.join("checkpoints/epoch-000001/state.json").is_file());
    let resume = TrainConfig {
        resume: true,
        ..cfg
    };
    let fitted = fit(
        &resume,
        Classifier::new(&device),
        &mut SumSign::default(),
        &train,
        Some(&valid),
        &device,
    )
    .unwrap();
    assert_eq!(fitted.history.epochs.len(), 3);
    assert!(fitted.resumed_from.unwrap().ends_with("epoch-000001"));
}

#[test]
fn corrupt_checkpoint_is_skipped() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    device.seed(8);
    let (train, valid) = (data(64, 7), data(32, 8));
    let dir = tmp_dir("corrupt");
    let cfg = TrainConfig {
        run_dir: Some(dir.clone()),
        ..config(2)
    };
    fit(
        &cfg,
        Classifier::new(&device),
        &mut SumSign::default(),
        &train,
        Some(&valid),
        &device,
    )
    .unwrap();
    // Flip bytes in the newest checkpoint's weights: resume must fall back to epoch 1.
    let model = dir.join("checkpoints/epoch-000002/model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    let resume = TrainConfig {
        resume: true,
        ..cfg
    };
    let fitted = fit(
        &resume,
        Classifier::new(&device),
        &mut SumSign::default(),
        &train,
        Some(&valid),
        &device,
    )
    .unwrap();
    assert!(fitted.resumed_from.unwrap().ends_with("epoch-000001"));
}

#[test]
fn bad_configs_are_rejected() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let train = data(8, 9);
    let bad = [
        TrainConfig::new(0, 4),
        TrainConfig::new(1, 0),
        TrainConfig {
            optimizer: Optimizer::adam(-1.0),
            ..TrainConfig::new(1, 4)
        },
        TrainConfig {
            resume: true,
            ..TrainConfig::new(1, 4)
        },
    ];
    for cfg in bad {
        let err = fit(
            &cfg,
            Classifier::new(&device),
            &mut SumSign::default(),
            &train,
            None,
            &device,
        )
        .unwrap_err();
        assert!(matches!(err, TrainError::InvalidConfig { .. }), "{err}");
    }
    let empty: InMemDataset<Item> = InMemDataset::new(vec![]);
    assert!(matches!(
        fit(
            &TrainConfig::new(1, 4),
            Classifier::new(&device),
            &mut SumSign::default(),
            &empty,
            None,
            &device
        ),
        Err(TrainError::EmptyDataset)
    ));
}

/// Truncated BPTT: the state carried into window 2 is detached, so window 2's loss has no
/// gradient with respect to window 1's input; without the detach it would.
#[test]
fn carried_state_is_detached_between_windows() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let lstm = LstmConfig::new(1, 4).init(&device).unwrap();
    let window = |v: f32| Tensor::<3>::full([3, 1, 1], v, &device).require_grad();

    let x1 = window(0.5);
    let (_, state) = lstm.forward(x1.clone(), None).unwrap();
    let mut carried = Carried::new();
    carried.keep(state.clone());
    let (out2, _) = lstm.forward(window(-0.3), carried.take()).unwrap();
    let grads = out2.sum().backward();
    assert!(
        x1.grad(&grads).is_none(),
        "gradient leaked across the window boundary"
    );

    // Control: without the detach the gradient does reach window 1.
    let (out2, _) = lstm.forward(window(-0.3), Some(state)).unwrap();
    let grads = out2.sum().backward();
    let g = x1.grad(&grads).expect("undetached state carries gradient");
    assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
}

/// Early stopping ends the run once the watched metric has not improved for `patience`
/// validations: with a validation loss that only rises, epoch 1 is the best and the run stops
/// after epochs 2 and 3.
#[test]
fn early_stopping_ends_a_run_that_stops_improving() {
    let _serial = serial();
    use rnn_train::{EarlyStopping, Metric};
    let device = Device::flex().autodiff();
    let (train, valid) = (data(64, 10), data(32, 11));
    let cfg = TrainConfig {
        early_stopping: Some(EarlyStopping {
            metric: Metric::Loss,
            patience: 2,
        }),
        ..config(30)
    };
    let mut objective = SumSign {
        worsen_validation: true,
        ..SumSign::default()
    };
    let fitted = fit(
        &cfg,
        Classifier::new(&device),
        &mut objective,
        &train,
        Some(&valid),
        &device,
    )
    .unwrap();
    assert!(fitted.history.stopped_early);
    assert_eq!(fitted.history.epochs.len(), 3);
}

#[test]
fn nan_in_the_inputs_is_named() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let mut items: Vec<Item> = (0..64).map(|k| data(64, 9).get(k).unwrap()).collect();
    // Batches of 32 without shuffling: item 40 is item 8 of step 2.
    items[40].values[3] = f32::NAN;
    let train = InMemDataset::new(items);
    let cfg = TrainConfig {
        shuffle: false,
        ..config(1)
    };
    let err = fit(
        &cfg,
        Classifier::new(&device),
        &mut SumSign::default(),
        &train,
        None,
        &device,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("step 2") && message.contains("item 8 has NaN at value 3"),
        "{message}"
    );
}

/// A ReLU RNN regressing a large target with plain SGD: its gradients explode.
#[derive(Module, Debug)]
struct Exploding {
    rnn: rnn_models::Rnn,
    head: Linear,
}

struct LargeTarget;

impl Objective<Exploding> for LargeTarget {
    type Item = Item;

    fn step(
        &mut self,
        model: &Exploding,
        batch: Vec<Item>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let n = batch.len();
        let values: Vec<f32> = batch.iter().flat_map(|i| i.values.clone()).collect();
        let targets: Vec<f32> = batch
            .iter()
            .map(|i| 100.0 * i.values.iter().sum::<f32>())
            .collect();
        let x = Tensor::<3>::from_data(TensorData::new(values, [n, 6, 1]), device);
        let (out, _) = model.rnn.forward(x, None)?;
        let last = out.narrow(1, 5, 1).reshape([n, 16]);
        let target = Tensor::<2>::from_data(TensorData::new(targets, [n, 1]), device);
        tasks::regression(model.head.forward(last), target)
    }
}

#[test]
fn gradient_clipping_keeps_an_exploding_rnn_finite() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let model = || {
        device.seed(3);
        Exploding {
            rnn: rnn_models::RnnConfig::new(1, 16)
                .with_nonlinearity(rnn_models::Nonlinearity::Relu)
                .with_batch_first(true)
                .init(&device)
                .unwrap(),
            head: LinearConfig::new(16, 1).init(&device),
        }
    };
    let train = data(256, 4);
    let cfg = TrainConfig {
        optimizer: Optimizer::sgd(0.05),
        quiet: true,
        ..TrainConfig::new(5, 16)
    };
    // Without clipping the loss overflows within a few steps.
    let err = fit(&cfg, model(), &mut LargeTarget, &train, None, &device).unwrap_err();
    assert!(matches!(err, TrainError::NonFiniteLoss { .. }), "{err}");
    // Clipping the gradient norm to 1 keeps every step finite, and it still learns.
    let clipped = TrainConfig {
        clip: Some(rnn_train::Clip::Norm(1.0)),
        ..cfg
    };
    let fitted = fit(&clipped, model(), &mut LargeTarget, &train, None, &device)
        .expect("clipped training stays finite");
    let losses = fitted.history.step_losses();
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(losses.last().unwrap() < &losses[0], "{losses:?}");
}

/// `keep_best` returns the weights of the best validation epoch — here epoch 1, since the
/// validation loss only rises — and a resumed run restores them from its checkpoint.
#[test]
fn keep_best_returns_the_best_epochs_weights_across_a_resume() {
    let _serial = serial();
    use rnn_models::PytorchWeights;
    use rnn_train::Metric;
    let device = Device::flex().autodiff();
    let (train, valid) = (data(64, 12), data(32, 13));
    let initial = Classifier::new(&device);
    let cfg = |epochs: usize, dir: Option<&std::path::Path>, resume: bool| TrainConfig {
        keep_best: Some(Metric::Loss),
        run_dir: dir.map(std::path::Path::to_path_buf),
        resume,
        ..config(epochs)
    };
    // One validation batch per epoch: validation k adds k to the loss.
    let worsening = |validations: usize| SumSign {
        worsen_validation: true,
        validations,
        ..SumSign::default()
    };
    let weights = |m: &Classifier| m.lstm.state_dict();

    let one_epoch = fit(
        &cfg(1, None, false),
        initial.clone(),
        &mut worsening(0),
        &train,
        Some(&valid),
        &device,
    )
    .unwrap();
    let straight = fit(
        &cfg(4, None, false),
        initial.clone(),
        &mut worsening(0),
        &train,
        Some(&valid),
        &device,
    )
    .unwrap();
    assert_eq!(straight.best_epoch.map(|(e, _)| e), Some(1));
    assert_eq!(straight.history.epochs.len(), 4);
    assert_eq!(weights(&straight.model), weights(&one_epoch.model));

    let dir = tmp_dir("keep-best");
    fit(
        &cfg(2, Some(&dir), false),
        initial,
        &mut worsening(0),
        &train,
        Some(&valid),
        &device,
    )
    .unwrap();
    // A fresh model, and the validation count where the first run left it.
    let resumed = fit(
        &cfg(4, Some(&dir), true),
        Classifier::new(&device),
        &mut worsening(2),
        &train,
        Some(&valid),
        &device,
    )
    .unwrap();
    assert!(resumed.resumed_from.is_some());
    assert_eq!(resumed.best_epoch, straight.best_epoch);
    assert_eq!(weights(&resumed.model), weights(&straight.model));

    let no_valid = fit(
        &cfg(1, None, false),
        Classifier::new(&device),
        &mut SumSign::default(),
        &train,
        None,
        &device,
    );
    assert!(matches!(
        no_valid,
        Err(TrainError::InvalidConfig {
            field: "keep_best",
            ..
        })
    ));
}
