//! Data parallelism in `fit`: a batch split across devices takes the same optimizer step as
//! the whole batch on one device, over several steps and across a resume. Two flex "devices"
//! (the same CPU) exercise the splitting, the per-shard gradients and their sum exactly; two
//! wgpu devices on lavapipe do so across distinct devices where Burn opens them.

mod common;

use burn::tensor::DeviceKind;
use burn::tensor::{Device, Tensor, TensorData};
use common::{Classifier, Item, data};
use rnn_models::PytorchWeights;
use rnn_train::{
    Devices, Fitted, Objective, Optimizer, StepOutput, TrainConfig, TrainError, fit, tasks,
};

/// Every parameter's values, by name, on the host.
fn weights(m: &Classifier) -> Vec<(String, Vec<f32>)> {
    let dict = m.lstm.state_dict();
    let mut all: Vec<(String, Vec<f32>)> = dict
        .keys()
        .map(|k| (k.to_string(), dict.get(k).unwrap().1.to_vec()))
        .collect();
    for (name, t) in [
        ("head.weight", m.head.weight.val().reshape([-1])),
        ("head.bias", m.head.bias.as_ref().unwrap().val()),
    ] {
        all.push((
            name.into(),
            t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap(),
        ));
    }
    all
}

/// The sign of a sequence's sum, from the LSTM's last step; mean cross-entropy.
struct SumSign;

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
        tasks::classification(model.head.forward(last), &labels)
    }
}

fn config(epochs: usize, batch: usize) -> TrainConfig {
    TrainConfig {
        optimizer: Optimizer::adam(0.02),
        quiet: true,
        ..TrainConfig::new(epochs, batch)
    }
}

/// `max|a − b| / max|b|` over every parameter.
fn max_rel_err(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    a.iter()
        .zip(b)
        .map(|((name, x), (other, y))| {
            assert_eq!(name, other);
            let scale = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6) as f64;
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs() as f64 / scale)
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max)
}

fn train(
    devices: impl Into<Devices>,
    initial: &Classifier,
    cfg: &TrainConfig,
    n: usize,
) -> Fitted<Classifier> {
    fit(
        cfg,
        initial.clone(),
        &mut SumSign,
        &data(n, 7),
        None,
        devices,
    )
    .unwrap()
}

fn two_flex() -> Devices {
    Devices::new(vec![Device::flex(), Device::flex()]).unwrap()
}

#[test]
fn one_step_on_two_devices_equals_one_step_on_one() {
    let device = Device::flex().autodiff();
    let initial = Classifier::new(&device);
    // One batch of 2B = 16 items: one optimizer step.
    let cfg = config(1, 16);
    let single = train(&device, &initial, &cfg, 16);
    let split = train(two_flex(), &initial, &cfg, 16);
    assert_eq!(single.history.step_losses().len(), 1);
    let err = max_rel_err(&weights(&split.model), &weights(&single.model));
    assert!(err <= 1e-5, "updated weights differ: {err:.3e}");
    // And the step did something.
    let moved = max_rel_err(&weights(&single.model), &weights(&initial));
    assert!(moved > 1e-3, "the step left the weights at {moved:.3e}");
}

#[test]
fn several_steps_on_two_devices_follow_the_single_device_losses() {
    let device = Device::flex().autodiff();
    let initial = Classifier::new(&device);
    // 3 epochs of 4 uneven batches (the last one has 6 items: shards of 3 and 3).
    let cfg = config(3, 14);
    let single = train(&device, &initial, &cfg, 48);
    let split = train(two_flex(), &initial, &cfg, 48);
    let (a, b) = (single.history.step_losses(), split.history.step_losses());
    assert_eq!(a.len(), 12);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(1.0),
            "step {i}: {x} vs {y}"
        );
    }
    let err = max_rel_err(&weights(&split.model), &weights(&single.model));
    assert!(err <= 1e-4, "final weights differ: {err:.3e}");
}

#[test]
fn a_resumed_two_device_run_ends_as_an_uninterrupted_one() {
    let device = Device::flex().autodiff();
    let initial = Classifier::new(&device);
    let dir = std::env::temp_dir().join(format!("rnn-train-dp-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = |epochs: usize, resume: bool| TrainConfig {
        run_dir: Some(dir.clone()),
        resume,
        ..config(epochs, 16)
    };
    let whole = train(two_flex(), &initial, &config(3, 16), 64);
    // "Killed" after one epoch, then resumed to three.
    train(two_flex(), &initial, &run(1, false), 64);
    let resumed = train(two_flex(), &initial, &run(3, true), 64);
    assert!(resumed.resumed_from.is_some(), "the second run resumed");
    let err = max_rel_err(&weights(&resumed.model), &weights(&whole.model));
    assert!(err <= 1e-6, "resumed weights differ: {err:.3e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn distinct_wgpu_devices_split_a_batch_like_one_device() {
    // Two devices of lavapipe: the default adapter and the CPU one.
    let first = Device::wgpu(DeviceKind::DefaultDevice);
    let second = Device::wgpu(DeviceKind::Cpu);
    let opens = |d: &Device| {
        std::panic::catch_unwind(|| Tensor::<1>::from_floats([1.0], d).into_scalar::<f32>()).is_ok()
    };
    // wgpu must be present, as for every wgpu test (CI installs lavapipe).
    if std::env::var_os("RNN_TEST_SKIP_WGPU").is_some() {
        return;
    }
    assert!(
        opens(&first) && opens(&second),
        "two wgpu devices (the default and the CPU adapter) open on lavapipe"
    );
    assert_ne!(first, second, "two devices, not one named twice");
    let initial = Classifier::new(&first.clone().autodiff());
    let cfg = config(1, 16);
    let single = train(&first, &initial, &cfg, 16);
    let split = train(
        Devices::new(vec![first, second]).unwrap(),
        &initial,
        &cfg,
        16,
    );
    let err = max_rel_err(&weights(&split.model), &weights(&single.model));
    assert!(err <= 1e-5, "updated weights differ: {err:.3e}");
}

/// Says it carries state from batch to batch (as truncated BPTT with `Carried` does).
struct Carrying;

impl Objective<Classifier> for Carrying {
    type Item = Item;

    fn step(&mut self, m: &Classifier, b: Vec<Item>, d: &Device) -> Result<StepOutput, TrainError> {
        SumSign.step(m, b, d)
    }

    fn carries_state(&self) -> bool {
        true
    }
}

#[test]
fn an_objective_that_carries_state_trains_on_one_device_only() {
    let device = Device::flex().autodiff();
    let err = fit(
        &config(1, 8),
        Classifier::new(&device),
        &mut Carrying,
        &data(16, 1),
        None,
        two_flex(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::InvalidConfig {
                field: "devices",
                ..
            }
        ),
        "{err}"
    );
}
