//! Loading a PyTorch `nn.LSTM(4, 3, num_layers=2, bidirectional=True, batch_first=True)`
//! state dict saved by PyTorch as `.safetensors` and as `.pt`, and checking that the layer
//! then reproduces PyTorch's output (fixtures from `scripts/gen_model_fixtures.py`).

mod common;

use std::collections::BTreeMap;

use burn::tensor::Device;
use common::{FORWARD_TOL, Fx, assert_close, fixture_path};
use rnn_models::{Lstm, LstmConfig, ModelError, PytorchWeights, StateDict};

fn io() -> BTreeMap<String, Fx> {
    let text = std::fs::read_to_string(fixture_path("lstm_l2_bi_io.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn fresh(device: &Device) -> Lstm {
    LstmConfig::new(4, 3)
        .with_num_layers(2)
        .with_bidirectional(true)
        .with_batch_first(true)
        .init(device)
        .unwrap()
}

fn check_reproduces(dict: &StateDict) {
    let device = Device::flex();
    let io = io();
    let lstm = fresh(&device).load_state_dict(dict, "").unwrap();
    let (out, state) = lstm.forward(io["input"].tensor(&device), None).unwrap();
    assert_close("output", out, &io["output"], FORWARD_TOL);
    assert_close("h_n", state.h, &io["h_n"], FORWARD_TOL);
    assert_close("c_n", state.c, &io["c_n"], FORWARD_TOL);
}

#[test]
fn safetensors_state_dict_reproduces_pytorch() {
    let dict = StateDict::from_safetensors(fixture_path("lstm_l2_bi.safetensors")).unwrap();
    assert_eq!(dict.len(), 16, "2 layers × 2 directions × 4 tensors");
    check_reproduces(&dict);
}

#[test]
fn pt_state_dict_reproduces_pytorch() {
    let dict = StateDict::from_pytorch(fixture_path("lstm_l2_bi.pt")).unwrap();
    assert_eq!(dict.len(), 16);
    check_reproduces(&dict);
}

#[test]
fn export_round_trips_through_safetensors() {
    let device = Device::flex();
    let original = fresh(&device);
    let dict = original.state_dict();
    let dir = std::env::temp_dir().join(format!("rnn-models-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lstm.safetensors");
    dict.save_safetensors(&path).unwrap();
    let read = StateDict::from_safetensors(&path).unwrap();
    assert_eq!(read, dict);
    let reloaded = fresh(&device).load_state_dict(&read, "").unwrap();
    assert_eq!(reloaded.state_dict(), dict);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn prefixed_keys_load_and_others_are_ignored() {
    let dict = StateDict::from_safetensors(fixture_path("lstm_l2_bi.safetensors")).unwrap();
    let mut dict = dict.with_prefix("encoder.");
    dict.insert("decoder.weight", vec![2, 2], vec![0.0; 4])
        .unwrap();
    let device = Device::flex();
    assert!(fresh(&device).load_state_dict(&dict, "encoder.").is_ok());
}

#[test]
fn shape_mismatch_names_the_key() {
    let mut dict = StateDict::from_safetensors(fixture_path("lstm_l2_bi.safetensors")).unwrap();
    dict.insert("weight_hh_l1_reverse", vec![12, 4], vec![0.0; 48])
        .unwrap();
    let err = fresh(&Device::flex())
        .load_state_dict(&dict, "")
        .unwrap_err();
    assert_eq!(
        err,
        ModelError::KeyShape {
            key: "weight_hh_l1_reverse".into(),
            expected: vec![12, 3],
            got: vec![12, 4]
        }
    );
    assert!(err.to_string().contains("weight_hh_l1_reverse"));
}

#[test]
fn missing_and_unexpected_keys_are_errors() {
    let full = StateDict::from_safetensors(fixture_path("lstm_l2_bi.safetensors")).unwrap();
    let device = Device::flex();
    // A one-layer LSTM given a two-layer dict: the second layer's keys are unexpected.
    let one_layer = LstmConfig::new(4, 3)
        .with_bidirectional(true)
        .init(&device)
        .unwrap();
    match one_layer.load_state_dict(&full, "") {
        Err(ModelError::UnexpectedKeys { keys }) => {
            assert_eq!(keys.len(), 8);
            assert!(keys.iter().all(|k| k.contains("_l1")));
        }
        other => panic!("expected UnexpectedKeys, got {other:?}"),
    }
    // A three-layer LSTM: the third layer's keys are missing.
    let three = LstmConfig::new(4, 3)
        .with_num_layers(3)
        .with_bidirectional(true)
        .init(&device)
        .unwrap();
    assert_eq!(
        three.load_state_dict(&full, "").unwrap_err(),
        ModelError::MissingKey {
            key: "weight_ih_l2".into()
        }
    );
}

#[test]
fn unreadable_files_are_errors_not_panics() {
    let dir = std::env::temp_dir().join(format!("rnn-models-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"\xff\xff\xff\xff not safetensors").unwrap();
    assert!(matches!(
        StateDict::from_safetensors(&garbage),
        Err(ModelError::StateDictFile { .. })
    ));
    let garbage_pt = dir.join("garbage.pt");
    std::fs::write(&garbage_pt, b"PK\x03\x04 truncated zip").unwrap();
    assert!(matches!(
        StateDict::from_pytorch(&garbage_pt),
        Err(ModelError::StateDictFile { .. })
    ));
    assert!(matches!(
        StateDict::from_safetensors(dir.join("does-not-exist.safetensors")),
        Err(ModelError::StateDictFile { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
