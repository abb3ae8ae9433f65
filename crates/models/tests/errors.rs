//! Every misuse of a layer or cell is a typed error saying what was expected and what was got.

use burn::tensor::{Device, Tensor};
use rnn_models::{
    GruCellConfig, GruConfig, LstmCellConfig, LstmCellState, LstmConfig, LstmState, ModelError,
    RnnCellConfig, RnnConfig,
};

fn zeros3(shape: [usize; 3]) -> Tensor<3> {
    Tensor::zeros(shape, &Device::flex())
}

fn zeros2(shape: [usize; 2]) -> Tensor<2> {
    Tensor::zeros(shape, &Device::flex())
}

fn field(err: ModelError) -> &'static str {
    match err {
        ModelError::InvalidConfig { field, .. } => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn bad_configs_name_the_field() {
    let d = Device::flex();
    let table: Vec<(&str, Result<(), ModelError>)> = vec![
        ("input_size", LstmConfig::new(0, 3).init(&d).map(drop)),
        ("hidden_size", LstmConfig::new(3, 0).init(&d).map(drop)),
        (
            "num_layers",
            LstmConfig::new(3, 3).with_num_layers(0).init(&d).map(drop),
        ),
        (
            "dropout",
            LstmConfig::new(3, 3).with_dropout(1.0).init(&d).map(drop),
        ),
        (
            "dropout",
            GruConfig::new(3, 3).with_dropout(-0.1).init(&d).map(drop),
        ),
        (
            "dropout",
            RnnConfig::new(3, 3)
                .with_dropout(f64::NAN)
                .init(&d)
                .map(drop),
        ),
        (
            "proj_size",
            LstmConfig::new(3, 3).with_proj_size(3).init(&d).map(drop),
        ),
        (
            "forget_bias",
            LstmConfig::new(3, 3)
                .with_bias(false)
                .with_forget_bias(Some(1.0))
                .init(&d)
                .map(drop),
        ),
        ("input_size", GruConfig::new(0, 3).init(&d).map(drop)),
        ("hidden_size", RnnConfig::new(3, 0).init(&d).map(drop)),
        ("input_size", RnnCellConfig::new(0, 3).init(&d).map(drop)),
        ("hidden_size", LstmCellConfig::new(3, 0).init(&d).map(drop)),
        ("hidden_size", GruCellConfig::new(3, 0).init(&d).map(drop)),
    ];
    for (want, result) in table {
        let err = result.expect_err(want);
        assert!(err.to_string().contains(want), "{err}");
        assert_eq!(field(err), want);
    }
}

#[test]
fn bad_inputs_and_states_are_described() {
    let d = Device::flex();
    let lstm = LstmConfig::new(4, 3)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&d)
        .unwrap();
    // [seq, batch, input] = [5, 2, 4]; states are [4, 2, 3].
    let good_state = || LstmState::new(zeros3([4, 2, 3]), zeros3([4, 2, 3]));
    assert!(lstm.forward(zeros3([5, 2, 4]), Some(good_state())).is_ok());

    let err = lstm.forward(zeros3([5, 2, 7]), None).unwrap_err();
    assert_eq!(
        err,
        ModelError::InputSize {
            expected: 4,
            got: 7,
            shape: vec![5, 2, 7]
        }
    );
    assert!(err.to_string().contains("expected input_size = 4, got 7"));

    assert_eq!(
        lstm.forward(zeros3([0, 2, 4]), None).unwrap_err(),
        ModelError::EmptyInput { batch: 2, seq: 0 }
    );
    assert_eq!(
        lstm.forward(zeros3([5, 0, 4]), None).unwrap_err(),
        ModelError::EmptyInput { batch: 0, seq: 5 }
    );

    let bad_h = LstmState::new(zeros3([2, 2, 3]), zeros3([4, 2, 3]));
    assert_eq!(
        lstm.forward(zeros3([5, 2, 4]), Some(bad_h)).unwrap_err(),
        ModelError::StateShape {
            which: "h0",
            expected: vec![4, 2, 3],
            got: vec![2, 2, 3]
        }
    );
    let bad_c = LstmState::new(zeros3([4, 2, 3]), zeros3([4, 3, 3]));
    assert_eq!(
        lstm.forward(zeros3([5, 2, 4]), Some(bad_c)).unwrap_err(),
        ModelError::StateShape {
            which: "c0",
            expected: vec![4, 2, 3],
            got: vec![4, 3, 3]
        }
    );

    let x = || zeros3([5, 2, 4]);
    assert_eq!(
        lstm.forward_with_lengths(x(), &[5], None).unwrap_err(),
        ModelError::LengthsCount {
            expected: 2,
            got: 1
        }
    );
    assert_eq!(
        lstm.forward_with_lengths(x(), &[5, 0], None).unwrap_err(),
        ModelError::LengthOutOfRange {
            index: 1,
            length: 0,
            seq_len: 5
        }
    );
    let err = lstm.forward_with_lengths(x(), &[6, 2], None).unwrap_err();
    assert_eq!(
        err,
        ModelError::LengthOutOfRange {
            index: 0,
            length: 6,
            seq_len: 5
        }
    );
    assert_eq!(
        err.to_string(),
        "lengths[0] = 6 is outside 1..=5 (the padded sequence length)"
    );

    let gru = GruConfig::new(4, 3)
        .with_batch_first(true)
        .init(&d)
        .unwrap();
    assert_eq!(
        gru.forward(zeros3([2, 5, 4]), Some(zeros3([1, 5, 3])))
            .unwrap_err(),
        ModelError::StateShape {
            which: "h0",
            expected: vec![1, 2, 3],
            got: vec![1, 5, 3]
        }
    );
    let rnn = RnnConfig::new(4, 3).init(&d).unwrap();
    assert!(matches!(
        rnn.forward(zeros3([5, 2, 3]), None),
        Err(ModelError::InputSize { .. })
    ));
}

#[test]
fn bad_cell_inputs_are_described() {
    let d = Device::flex();
    let cell = LstmCellConfig::new(4, 3).init(&d).unwrap();
    assert!(matches!(
        cell.step(zeros2([2, 5]), None),
        Err(ModelError::InputSize {
            expected: 4,
            got: 5,
            ..
        })
    ));
    assert!(matches!(
        cell.step(zeros2([0, 4]), None),
        Err(ModelError::EmptyInput { .. })
    ));
    let bad = LstmCellState::new(zeros2([2, 3]), zeros2([2, 4]));
    assert_eq!(
        cell.step(zeros2([2, 4]), Some(bad)).unwrap_err(),
        ModelError::StateShape {
            which: "cx",
            expected: vec![2, 3],
            got: vec![2, 4]
        }
    );
    let gru = GruCellConfig::new(4, 3).init(&d).unwrap();
    assert!(matches!(
        gru.step(zeros2([2, 4]), Some(zeros2([3, 3]))),
        Err(ModelError::StateShape { which: "hx", .. })
    ));
    let rnn = RnnCellConfig::new(4, 3).init(&d).unwrap();
    assert_eq!(rnn.step(zeros2([2, 4]), None).unwrap().dims(), [2, 3]);
}

/// TensorFlow's forget-gate bias: the forget block of `bias_ih` holds the value, `bias_hh`'s
/// holds zero, the other blocks keep their draw — on a plain and on an autodiff device.
#[test]
fn forget_bias_sets_only_the_forget_block() {
    use rnn_models::PytorchWeights;
    for device in [Device::flex(), Device::flex().autodiff()] {
        let lstm = LstmConfig::new(2, 3)
            .with_forget_bias(Some(1.0))
            .init(&device)
            .unwrap();
        let dict = lstm.state_dict();
        let (_, b_ih) = dict.get("bias_ih_l0").unwrap();
        let (_, b_hh) = dict.get("bias_hh_l0").unwrap();
        assert_eq!(&b_ih[3..6], &[1.0, 1.0, 1.0]);
        assert_eq!(&b_hh[3..6], &[0.0, 0.0, 0.0]);
        let k = 1.0 / 3f32.sqrt();
        assert!(
            b_ih[..3]
                .iter()
                .chain(&b_ih[6..])
                .all(|v| v.abs() <= k && *v != 1.0)
        );
        let cell = LstmCellConfig::new(2, 3)
            .with_forget_bias(Some(1.0))
            .init(&device)
            .unwrap();
        assert_eq!(
            &cell.state_dict().get("bias_ih").unwrap().1[3..6],
            &[1.0, 1.0, 1.0]
        );
    }
}

/// TensorFlow's whole LSTM bias init: zeros, plus the forget-gate bias; the weights keep
/// their own initializer.
#[test]
fn a_bias_initializer_replaces_the_biases_draw_only() {
    use burn::nn::Initializer;
    use rnn_models::{GruConfig, PytorchWeights};
    let device = Device::flex();
    let lstm = LstmConfig::new(2, 3)
        .with_bias_initializer(Some(Initializer::Zeros))
        .with_forget_bias(Some(1.0))
        .init(&device)
        .unwrap();
    let dict = lstm.state_dict();
    let b_ih = &dict.get("bias_ih_l0").unwrap().1;
    let b_hh = &dict.get("bias_hh_l0").unwrap().1;
    assert_eq!(b_ih, &[0., 0., 0., 1., 1., 1., 0., 0., 0., 0., 0., 0.]);
    assert!(b_hh.iter().all(|&v| v == 0.0));
    assert!(
        dict.get("weight_hh_l0")
            .unwrap()
            .1
            .iter()
            .any(|&v| v != 0.0)
    );
    let gru = GruConfig::new(2, 3)
        .with_bias_initializer(Some(Initializer::Constant { value: 0.5 }))
        .init(&device)
        .unwrap();
    assert!(
        gru.state_dict()
            .get("bias_hh_l0")
            .unwrap()
            .1
            .iter()
            .all(|&v| v == 0.5)
    );
}

/// Inter-layer dropout acts only while training on an autodiff device, between layers only,
/// and `valid()` turns it off (PyTorch's `model.eval()`).
#[test]
fn dropout_acts_between_layers_in_training_only() {
    use burn::module::Module;
    use burn::tensor::Distribution;
    let device = Device::flex().autodiff();
    device.seed(11);
    let x = Tensor::<3>::random([4, 3, 5], Distribution::Normal(0.0, 1.0), &device);
    let two = LstmConfig::new(5, 6)
        .with_num_layers(2)
        .with_dropout(0.5)
        .init(&device)
        .unwrap();
    let run = |m: &rnn_models::Lstm, x: Tensor<3>| m.forward(x, None).unwrap().0.into_data();
    // Training: two passes draw different masks.
    assert_ne!(run(&two, x.clone()), run(&two, x.clone()));
    // Evaluation: deterministic, on the plain device.
    let eval = two.valid();
    let x_plain = x.clone().inner();
    assert_eq!(run(&eval, x_plain.clone()), run(&eval, x_plain));
    // A single layer has no inter-layer dropout, even in training.
    let one = LstmConfig::new(5, 6)
        .with_dropout(0.5)
        .init(&device)
        .unwrap();
    assert_eq!(run(&one, x.clone()), run(&one, x));
}
