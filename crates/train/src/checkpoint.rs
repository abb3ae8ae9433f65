//! Checkpoints: model, optimizer and loop state, written atomically and verified on load.
//!
//! Layout: `run_dir/checkpoints/epoch-000007/{model.bpk, optim.bin, state.json}`, plus
//! `best.bpk` (the best epoch's weights) when the run keeps the best. A checkpoint
//! is written into a staging directory beside it (`rnn_atomic::Staging`), every file fsynced,
//! then renamed into place, so a crash leaves either the whole checkpoint or none of it.
//! `state.json` records the SHA-256 of the other two files; a checkpoint whose files do not
//! match is skipped on load.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use rnn_atomic::Staging;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{History, TrainConfig, TrainError};

/// Where the loop stands after an epoch: everything besides model and optimizer needed to
/// continue exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoopState {
    /// Finished epochs.
    pub epoch: usize,
    /// Steps taken.
    pub global_step: usize,
    /// Learning-rate halvings so far; counted only under [`crate::Schedule::HalveOnRise`].
    pub halvings: u32,
    /// Best watched metric and validations since it improved (early stopping).
    pub best: Option<f64>,
    /// Validations without improvement.
    pub bad_validations: usize,
    /// `keep_best`: the 1-based epoch whose weights are kept, and its metric value.
    #[serde(default)]
    pub best_epoch: Option<(usize, f64)>,
    /// The history up to here.
    pub history: History,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: u32,
    /// The parts of the config that must not change across a resume.
    fingerprint: String,
    model_sha256: String,
    optim_sha256: String,
    /// Of `best.bpk`, when the run keeps the best weights.
    #[serde(default)]
    best_sha256: Option<String>,
    state: LoopState,
}

const FORMAT: u32 = 1;

/// The settings that decide the numbers: changing them makes a resume meaningless.
pub(crate) fn fingerprint(config: &TrainConfig) -> String {
    let mut fingerprint = serde_json::json!({
        "batch_size": config.batch_size,
        "seed": config.seed,
        "shuffle": config.shuffle,
        "optimizer": config.optimizer,
        "clip": config.clip,
        "schedule": config.schedule,
        "eval_every": config.eval_every,
    });
    // Only when set, so that runs from before `keep_best` existed still resume.
    if let Some(metric) = config.keep_best {
        fingerprint["keep_best"] = serde_json::json!(metric);
    }
    fingerprint.to_string()
}

fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ck_error(path: &Path, reason: impl ToString) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes a checkpoint for `state.epoch` and prunes old ones down to `keep`.
pub(crate) fn save<M: Module + Clone>(
    run_dir: &Path,
    config: &TrainConfig,
    model: &M,
    best: Option<&M>,
    optimizer: &ModuleOptimizer,
    state: &LoopState,
) -> Result<PathBuf, TrainError> {
    let dir = checkpoints_dir(run_dir);
    fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
    let final_dir = dir.join(format!("epoch-{:06}", state.epoch));
    let to_bytes = |m: &M| {
        m.clone()
            .into_record()
            .into_bytes()
            .map_err(|e| ck_error(&final_dir, e))
    };
    let model_bytes = to_bytes(model)?;
    let best_bytes = best.map(to_bytes).transpose()?;
    let optim_bytes = optimizer
        .into_bytes()
        .map_err(|e| ck_error(&final_dir, e))?;
    let file = StateFile {
        format: FORMAT,
        fingerprint: fingerprint(config),
        model_sha256: hex(&model_bytes),
        optim_sha256: hex(&optim_bytes),
        best_sha256: best_bytes.as_deref().map(hex),
        state: state.clone(),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| ck_error(&final_dir, e))?;

    // Dropped uncommitted on an error below, which removes the half-written directory.
    let staging = Staging::new(&final_dir).map_err(TrainError::io(&final_dir))?;
    fs::create_dir(staging.path()).map_err(TrainError::io(staging.path()))?;
    let mut files: Vec<(&str, &[u8])> = vec![
        ("model.bpk", &model_bytes),
        ("optim.bin", &optim_bytes),
        ("state.json", &json),
    ];
    if let Some(best) = &best_bytes {
        files.push(("best.bpk", best));
    }
    for (name, bytes) in files {
        let path = staging.path().join(name);
        fs::write(&path, bytes).map_err(TrainError::io(&path))?;
    }
    staging.commit().map_err(TrainError::io(&final_dir))?;
    prune(&dir, config.keep_checkpoints);
    Ok(final_dir)
}

/// Deletes all but the newest `keep` checkpoints and any staging directory a crashed run left.
fn prune(dir: &Path, keep: usize) {
    let mut found = list(dir);
    found.sort();
    let excess = found.len().saturating_sub(keep);
    for (_, path) in found.into_iter().take(excess) {
        // Moved aside first: a run killed while deleting never leaves a partial `epoch-N`.
        let _ = rnn_atomic::remove_dir(path);
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if rnn_atomic::is_stale(&e.file_name().to_string_lossy()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// `(epoch, path)` of every finished checkpoint directory.
fn list(dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let epoch = name.strip_prefix("epoch-")?.parse().ok()?;
            Some((epoch, e.path()))
        })
        .collect()
}

/// What a resume starts from.
pub(crate) struct Restored<M> {
    pub model: M,
    /// The kept best weights, when the run keeps them.
    pub best: Option<M>,
    pub optimizer: ModuleOptimizer,
    pub state: LoopState,
    pub path: PathBuf,
}

/// Loads the newest checkpoint that verifies, skipping (and reporting) corrupt ones.
///
/// `Ok(None)` when there is no checkpoint at all.
pub(crate) fn load_latest<M: Module + Clone>(
    run_dir: &Path,
    config: &TrainConfig,
    model: M,
    optimizer: ModuleOptimizer,
) -> Result<Option<Restored<M>>, TrainError> {
    let mut found = list(&checkpoints_dir(run_dir));
    found.sort();
    for (_, path) in found.into_iter().rev() {
        match verify(&path) {
            Ok(read) => {
                if read.file.fingerprint != fingerprint(config) {
                    return Err(TrainError::ConfigMismatch { path });
                }
                let load = |bytes: Vec<u8>| {
                    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
                        .map_err(|e| ck_error(&path, e))?;
                    model
                        .clone()
                        .try_load_record(record)
                        .map_err(|e| ck_error(&path, e))
                };
                let best = read.best.map(load).transpose()?;
                let model = load(read.model)?;
                let optimizer = optimizer
                    .from_bytes(Bytes::from_bytes_vec(read.optim))
                    .map_err(|e| ck_error(&path, e))?;
                return Ok(Some(Restored {
                    model,
                    best,
                    optimizer,
                    state: read.file.state,
                    path,
                }));
            }
            Err(reason) => eprintln!("warning: skipping checkpoint {}: {reason}", path.display()),
        }
    }
    Ok(None)
}

/// A checkpoint's files, read and checked against their hashes.
struct Verified {
    file: StateFile,
    model: Vec<u8>,
    optim: Vec<u8>,
    best: Option<Vec<u8>>,
}

/// Reads a checkpoint and checks its hashes.
fn verify(path: &Path) -> Result<Verified, String> {
    let read = |name: &str| fs::read(path.join(name)).map_err(|e| format!("{name}: {e}"));
    let file: StateFile =
        serde_json::from_slice(&read("state.json")?).map_err(|e| format!("state.json: {e}"))?;
    if file.format != FORMAT {
        return Err(format!("format {} (expected {FORMAT})", file.format));
    }
    let checked = |name: &str, sha: &str| {
        let bytes = read(name)?;
        if hex(&bytes) == sha {
            Ok(bytes)
        } else {
            Err(format!("{name} does not match its SHA-256"))
        }
    };
    let model = checked("model.bpk", &file.model_sha256)?;
    let optim = checked("optim.bin", &file.optim_sha256)?;
    let best = file
        .best_sha256
        .as_deref()
        .map(|sha| checked("best.bpk", sha))
        .transpose()?;
    Ok(Verified {
        file,
        model,
        optim,
        best,
    })
}
