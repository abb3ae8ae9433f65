//! PyTorch as a peer: `scripts/bench_torch.py` with the same cases, thread count and budget,
//! once with glibc's stock malloc settings and once with the thresholds that make PyTorch's
//! CPU path 1.3–1.8× faster, both kept; each case right after ours ([`TorchPeer`]). On the
//! CPU by default; on CUDA (cuDNN) for comparing a GPU backend.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::measure::{Budget, Stats};
use crate::runners::Mode;
use crate::{BenchError, Case};

/// The environment that makes PyTorch's CPU allocations cheap (large mmap/trim thresholds).
pub const TUNED_MALLOC: [(&str, &str); 2] = [
    ("MALLOC_MMAP_THRESHOLD_", "268435456"),
    ("MALLOC_TRIM_THRESHOLD_", "268435456"),
];

/// One PyTorch timing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TorchTiming {
    /// Case name.
    pub case: String,
    /// Train or infer.
    pub mode: Mode,
    /// Which round of the run (`--rounds`), from 0.
    #[serde(default)]
    pub round: usize,
    /// The timing.
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Debug, Deserialize)]
struct ScriptOutput {
    torch: String,
    results: Vec<TorchTiming>,
}

/// PyTorch's results in one run: stock and tuned malloc.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TorchRun {
    /// `torch.__version__`.
    pub version: String,
    /// Where PyTorch ran: `cpu` or `cuda`.
    #[serde(default = "cpu")]
    pub device: String,
    /// Timings with the stock allocator settings.
    pub stock: Vec<TorchTiming>,
    /// Timings with [`TUNED_MALLOC`].
    pub tuned: Vec<TorchTiming>,
}

impl TorchRun {
    /// The better (lower median) of stock and tuned for a case and mode in `round`.
    pub fn best(&self, case: &str, mode: Mode, round: usize) -> Option<Stats> {
        match (self.stock(case, mode, round), self.tuned(case, mode, round)) {
            (Some(a), Some(b)) => Some(if a.median_ms <= b.median_ms { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The stock-malloc timing for a case and mode in `round`.
    pub fn stock(&self, case: &str, mode: Mode, round: usize) -> Option<Stats> {
        find(&self.stock, case, mode, round)
    }

    /// The tuned-malloc timing for a case and mode in `round`.
    pub fn tuned(&self, case: &str, mode: Mode, round: usize) -> Option<Stats> {
        find(&self.tuned, case, mode, round)
    }
}

fn find(timings: &[TorchTiming], case: &str, mode: Mode, round: usize) -> Option<Stats> {
    timings
        .iter()
        .find(|t| t.case == case && t.mode == mode && t.round == round)
        .map(|t| t.stats)
}

fn cpu() -> String {
    "cpu".into()
}

/// Whether `python` can import torch; the reason why not otherwise.
pub fn probe(python: &Path) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{} cannot import torch (install: `{} -m pip install torch`)",
            python.display(),
            python.display()
        ))
    }
}

/// The PyTorch peer of one run: two processes of `scripts/bench_torch.py` (stock and tuned
/// malloc) kept open and fed one case at a time, so that each case is timed on PyTorch right
/// after our layers, within seconds: this machine's load changes over minutes, and a ratio of
/// two timings taken a minute apart measured the load as much as the code.
pub struct TorchPeer {
    stock: Worker,
    tuned: Worker,
    settings: serde_json::Value,
    run: TorchRun,
}

impl TorchPeer {
    /// Starts the two processes of `script` with `python`, timing on PyTorch's `device` (`cpu`
    /// or `cuda`) with `threads` threads within `budget`; their stderr goes to files in
    /// `scratch`.
    ///
    /// # Errors
    /// [`BenchError::Torch`] when a process cannot start; [`BenchError::Io`] for the files.
    pub fn start(
        python: &Path,
        script: &Path,
        threads: usize,
        budget: Budget,
        device: &str,
        scratch: &Path,
    ) -> Result<Self, BenchError> {
        let settings = serde_json::json!({
            "threads": threads,
            "device": device,
            "warmup": budget.warmup,
            "min_iters": budget.min_iters,
            "max_iters": budget.max_iters,
            "budget_s": budget.budget.as_secs_f64(),
        });
        let stock = Worker::start(python, script, false, &scratch.join("torch-stock.log"))?;
        let tuned = Worker::start(python, script, true, &scratch.join("torch-tuned.log"))?;
        Ok(Self {
            stock,
            tuned,
            settings,
            run: TorchRun {
                version: String::new(),
                device: device.to_string(),
                stock: Vec::new(),
                tuned: Vec::new(),
            },
        })
    }

    /// Times `case` (training and inference) with stock malloc, then tuned, as `round`; returns
    /// the new timings (stock, then tuned).
    ///
    /// # Errors
    /// [`BenchError::Torch`] when a process fails or answers something unreadable.
    pub fn time(
        &mut self,
        case: &Case,
        round: usize,
    ) -> Result<Vec<(bool, TorchTiming)>, BenchError> {
        let mut spec = self.settings.clone();
        spec["cases"] = serde_json::json!([case]);
        let mut timed = Vec::new();
        for tuned in [false, true] {
            let worker = if tuned {
                &mut self.tuned
            } else {
                &mut self.stock
            };
            let answer = worker.ask(&spec)?;
            self.run.version = answer.torch;
            let results: Vec<TorchTiming> = answer
                .results
                .into_iter()
                .map(|t| TorchTiming { round, ..t })
                .collect();
            timed.extend(results.iter().cloned().map(|t| (tuned, t)));
            if tuned {
                self.run.tuned.extend(results);
            } else {
                self.run.stock.extend(results);
            }
        }
        Ok(timed)
    }

    /// Closes both processes and returns every timing.
    ///
    /// # Errors
    /// [`BenchError::Torch`] when a process exits with an error.
    pub fn finish(self) -> Result<TorchRun, BenchError> {
        self.stock.finish()?;
        self.tuned.finish()?;
        Ok(self.run)
    }
}

/// One `bench_torch.py` process: specs in on stdin, answers out on stdout, one line each.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Where its stderr goes, to quote when it fails.
    log: PathBuf,
}

impl Worker {
    fn start(python: &Path, script: &Path, tuned: bool, log: &Path) -> Result<Self, BenchError> {
        let stderr = File::create(log).map_err(|e| BenchError::Io(log.to_path_buf(), e))?;
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (key, value) in TUNED_MALLOC {
            if tuned {
                cmd.env(key, value);
            } else {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| BenchError::Torch(format!("cannot run {}: {e}", python.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BenchError::Torch("no pipes to the PyTorch process".into()));
        };
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            log: log.to_path_buf(),
        })
    }

    /// Sends one spec and reads its answer.
    fn ask(&mut self, spec: &serde_json::Value) -> Result<ScriptOutput, BenchError> {
        let sent = self
            .stdin
            .as_mut()
            .map(|stdin| writeln!(stdin, "{spec}").and_then(|()| stdin.flush()));
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line);
        match (sent, read) {
            (Some(Ok(())), Ok(n)) if n > 0 => serde_json::from_str(&line)
                .map_err(|e| BenchError::Torch(format!("unreadable output: {e}"))),
            _ => Err(self.failure()),
        }
    }

    /// Closes stdin and waits for a clean exit.
    fn finish(mut self) -> Result<(), BenchError> {
        drop(self.stdin.take());
        match self.child.wait() {
            Ok(status) if status.success() => Ok(()),
            _ => Err(self.failure()),
        }
    }

    /// The error for a process that stopped answering: its stderr's last lines.
    fn failure(&mut self) -> BenchError {
        drop(self.stdin.take());
        let _ = self.child.wait();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        BenchError::Torch(format!(
            "scripts/bench_torch.py failed: {}",
            tail.join("\n").trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    //! The peer's protocol against stand-in scripts run by `sh` (the tests need no Python).
    use super::*;
    use std::time::Duration;

    fn budget() -> Budget {
        Budget {
            warmup: 0,
            min_iters: 1,
            max_iters: 1,
            budget: Duration::ZERO,
        }
    }

    /// A peer whose "PyTorch" is `script`, a shell script.
    fn peer(dir: &Path, script: &str) -> Result<TorchPeer, BenchError> {
        let path = dir.join("peer.sh");
        std::fs::write(&path, script).unwrap();
        TorchPeer::start(Path::new("sh"), &path, 1, budget(), "cpu", dir)
    }

    #[test]
    fn each_case_is_timed_stock_then_tuned_in_its_round() {
        let dir = tempfile::tempdir().unwrap();
        // Answers every spec line; 1 ms under the tuned malloc settings, 2 ms without.
        let script = r#"while read -r spec; do
  if [ -n "$MALLOC_MMAP_THRESHOLD_" ]; then ms=1; else ms=2; fi
  echo "{\"torch\": \"stand-in\", \"results\": [{\"case\": \"A\", \"mode\": \"train\", \"median_ms\": $ms, \"min_ms\": $ms, \"max_ms\": $ms, \"iters\": 1}]}"
done
"#;
        let mut peer = peer(dir.path(), script).unwrap();
        let case = crate::suite(true).remove(0);
        let first = peer.time(&case, 0).unwrap();
        assert_eq!(first.len(), 2);
        assert!(!first[0].0 && first[1].0, "stock first, then tuned");
        peer.time(&case, 1).unwrap();
        let run = peer.finish().unwrap();
        assert_eq!(run.version, "stand-in");
        for round in [0, 1] {
            assert_eq!(run.stock("A", Mode::Train, round).unwrap().median_ms, 2.0);
            assert_eq!(run.tuned("A", Mode::Train, round).unwrap().median_ms, 1.0);
            assert_eq!(run.best("A", Mode::Train, round).unwrap().median_ms, 1.0);
        }
        assert!(run.best("A", Mode::Train, 2).is_none());
    }

    #[test]
    fn a_failing_script_is_an_error_quoting_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let mut peer = peer(dir.path(), "echo 'no CUDA device here' >&2; exit 1\n").unwrap();
        let case = crate::suite(true).remove(0);
        match peer.time(&case, 0) {
            Err(BenchError::Torch(why)) => assert!(why.contains("no CUDA device here"), "{why}"),
            other => panic!("expected a PyTorch error, got {other:?}"),
        }
    }

    #[test]
    fn an_unreadable_answer_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut peer = peer(dir.path(), "while read -r spec; do echo 'not json'; done\n").unwrap();
        let case = crate::suite(true).remove(0);
        assert!(
            matches!(peer.time(&case, 0), Err(BenchError::Torch(why)) if why.contains("unreadable"))
        );
    }
}
