//! The crates together, as a user wires them: data from rnn-datasets, a model from rnn-models,
//! the loop from rnn-train, devices from rnn-backend. The same training run on flex and on
//! ndarray, started from the same weights, must produce the same losses.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rnn_backend::Backend;
use rnn_datasets::{ToySequence, ToySequencesConfig};
use rnn_models::{Gru, GruConfig, PytorchWeights, last_layer};
use rnn_train::{Objective, Optimizer, StepOutput, TrainConfig, TrainError, fit, tasks};

#[derive(Module, Debug)]
struct Model {
    gru: Gru,
    out: Linear,
}

struct Classify;

impl Objective<Model> for Classify {
    type Item = ToySequence;

    fn step(
        &mut self,
        model: &Model,
        batch: Vec<ToySequence>,
        device: &Device,
    ) -> Result<StepOutput, TrainError> {
        let (n, t) = (batch.len(), batch[0].values.len());
        let values: Vec<f32> = batch
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .collect();
        let x = Tensor::<3>::from_data(TensorData::new(values, [n, t, 1]), device);
        let lengths: Vec<usize> = batch.iter().map(|s| s.len).collect();
        let (_, h) = model.gru.forward_with_lengths(x, &lengths, None)?;
        let labels: Vec<usize> = batch.iter().map(|s| s.label).collect();
        tasks::classification(model.out.forward(last_layer(h, 1)), &labels)
    }
}

/// Builds the model on `device` with the weights of `template` (GRU via its PyTorch state
/// dict, the linear layer via its record), so every backend starts identically.
fn model_on(device: &Device, template: &Model) -> Model {
    let gru = GruConfig::new(1, 8)
        .with_batch_first(true)
        .init(device)
        .unwrap()
        .load_state_dict(&template.gru.state_dict(), "")
        .unwrap();
    let w = Tensor::<2>::from_data(template.out.weight.val().to_data(), device);
    let b = template
        .out
        .bias
        .as_ref()
        .map(|b| Tensor::<1>::from_data(b.val().to_data(), device));
    let mut out = LinearConfig::new(8, 2).init(device);
    out.weight = burn::module::Param::from_tensor(w);
    out.bias = b.map(burn::module::Param::from_tensor);
    Model { gru, out }
}

/// Training steps (one batch of all sequences per epoch).
const STEPS: usize = 80;
/// Leading steps whose losses must agree across the backends to 1e-4.
const AGREE: usize = 15;

#[test]
fn flex_and_ndarray_train_to_the_same_losses() {
    // Few sequences and many steps: the model can fit them, so the loss visibly falls.
    let data = ToySequencesConfig {
        samples: 16,
        seed: 5,
        ..Default::default()
    }
    .generate()
    .unwrap();
    let template_device = Device::flex();
    // A fixed start: unseeded, the learning check below would depend on the draw (from seeds
    // 1–12, one ends this run at 0.43; seed 7 at 0.15).
    template_device.seed(7);
    let template = Model {
        gru: GruConfig::new(1, 8)
            .with_batch_first(true)
            .init(&template_device)
            .unwrap(),
        out: LinearConfig::new(8, 2).init(&template_device),
    };
    let config = TrainConfig {
        optimizer: Optimizer::adam(0.02),
        shuffle: true,
        quiet: true,
        ..TrainConfig::new(STEPS, 16)
    };
    let run = |backend: Backend| {
        let selected = backend.select().unwrap();
        let device = selected.training_device();
        let fitted = fit(
            &config,
            model_on(&device, &template),
            &mut Classify,
            &data,
            None,
            &device,
        )
        .unwrap();
        fitted.history.step_losses()
    };
    let (flex, ndarray) = (run(Backend::Flex), run(Backend::NdArray));
    assert_eq!((flex.len(), ndarray.len()), (STEPS, STEPS));
    // Step for step the same losses while rounding differences are still small (more steps
    // than the 9 this test used to compare); over a long run they grow — at another seed the
    // 80th step differed by 4e-4 relative — so the later steps are held to the learning check.
    for (a, b) in flex.iter().zip(&ndarray).take(AGREE) {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "flex {a} vs ndarray {b}"
        );
    }
    // Both backends really trained (equal losses of an idle model would prove nothing): each
    // run ends well below chance (ln 2 ≈ 0.693).
    for losses in [&flex, &ndarray] {
        let tail = &losses[STEPS - 5..];
        let tail_mean = tail.iter().sum::<f64>() / tail.len() as f64;
        assert!(tail_mean < 0.4, "the loss falls: {losses:?}");
    }
}
