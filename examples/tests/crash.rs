//! Crash safety, as a user would meet it: a training process is SIGKILLed at random moments —
//! mid-step, mid-checkpoint — and restarted with `--resume` until it finishes. The final model
//! must equal an uninterrupted run's, and no half-written checkpoint may ever be loaded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EPOCHS: &str = "8";

fn command(out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dynamic_rnn"));
    cmd.args([
        "--backend",
        "flex",
        "--seed",
        "3",
        "--epochs",
        EPOCHS,
        "--train-samples",
        "1000",
        "--quiet",
        "--resume",
    ])
    .arg("--out")
    .arg(out)
    .env_remove("RNN_BACKEND")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

/// Burn's record stores each parameter's id, drawn anew in every process; zero those (CBOR
/// `"param_id"` then a `0x1b` u64) so the comparison is of names, shapes and weights.
fn without_param_ids(mut bytes: Vec<u8>) -> Vec<u8> {
    let key = b"param_id\x1b";
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(key.len()).position(|w| w == key) {
        let start = i + at + key.len();
        let end = (start + 8).min(bytes.len());
        bytes[start..end].fill(0);
        i = end;
    }
    bytes
}

/// The newest epoch's saved model.
fn final_model(out: &Path) -> Vec<u8> {
    let dir = out.join("checkpoints");
    let mut epochs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("epoch-"))
        })
        .collect();
    epochs.sort();
    let last = epochs.last().expect("a checkpoint");
    assert!(last.ends_with(format!("epoch-{:06}", EPOCHS.parse::<usize>().unwrap())));
    without_param_ids(std::fs::read(last.join("model.bpk")).expect("model file"))
}

/// A tiny deterministic generator for kill times (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn sigkilled_training_resumes_to_the_uninterrupted_result() {
    let root = std::env::temp_dir().join(format!("rnn-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (clean, crashed) = (root.join("clean"), root.join("crashed"));

    let start = Instant::now();
    let out = command(&clean).output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = start.elapsed();
    let reference = final_model(&clean);

    // Kill at random points spread over a whole run's duration until a run completes.
    let mut rng = Lcg(42);
    let mut kills = 0;
    for attempt in 0.. {
        assert!(attempt < 60, "the resumed run never finished");
        let mut child = command(&crashed).spawn().expect("spawns");
        let wait = Duration::from_millis(rng.below(full.as_millis().max(10) as u64));
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if child.try_wait().expect("waits").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().expect("waits").is_none() {
            child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
            child.wait().expect("reaped");
            kills += 1;
            continue;
        }
        let out = child.wait_with_output().expect("finished");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr.clone())
        );
        if kills >= 3 {
            break;
        }
        // Finished too early to prove anything: start over with a fresh directory.
        let _ = std::fs::remove_dir_all(&crashed);
        kills = 0;
    }
    // Bitwise equal weights (a plain `assert_eq!` would print megabytes).
    assert!(final_model(&crashed) == reference, "resumed model differs");
    assert!(kills >= 3, "only {kills} kills landed");
    // No temporary checkpoint directory is left looking like a real one.
    for entry in std::fs::read_dir(crashed.join("checkpoints"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("epoch-") {
            assert!(
                entry.path().join("state.json").is_file(),
                "{name} is incomplete"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
