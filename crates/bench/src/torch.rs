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
    /// Why PyTorch stopped before the end of the run, if it did: the timings above are those
    /// it gave before (ours went on without it).
    #[serde(default)]
    pub failure: Option<String>,
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
        let mut stock = Worker::start(python, script, false, &scratch.join("torch-stock.log"))?;
        let mut tuned = Worker::start(python, script, true, &scratch.join("torch-tuned.log"))?;
        // Both import torch at once; nothing is timed until both have.
        stock.wait_ready()?;
        tuned.wait_ready()?;
        Ok(Self {
            stock,
            tuned,
            settings,
            run: TorchRun {
                version: String::new(),
                device: device.to_string(),
                stock: Vec::new(),
                tuned: Vec::new(),
                failure: None,
            },
        })
    }

    /// Times `case` (training and inference) with stock malloc, then tuned, as `round`; returns
    /// the new timings (stock, then tuned). After a failure of either process (recorded in
    /// [`TorchRun::failure`]) it times nothing more, so that a PyTorch that crashes or runs out
    /// of memory on one case costs the run its peer, not its own timings.
    pub fn time(&mut self, case: &Case, round: usize) -> Vec<(bool, TorchTiming)> {
        if self.run.failure.is_some() {
            return Vec::new();
        }
        match self.try_time(case, round) {
            Ok(timed) => timed,
            Err(e) => {
                self.run.failure = Some(format!("at case {}: {e}", case.name));
                Vec::new()
            }
        }
    }

    fn try_time(
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
            timed.extend(
                answer
                    .results
                    .into_iter()
                    .map(|t| (tuned, TorchTiming { round, ..t })),
            );
        }
        // Kept only when both answered, so that stock and tuned cover the same cases.
        for (tuned, t) in &timed {
            if *tuned {
                self.run.tuned.push(t.clone());
            } else {
                self.run.stock.push(t.clone());
            }
        }
        Ok(timed)
    }

    /// Why PyTorch stopped, if it did (see [`TorchPeer::time`]).
    pub fn failure(&self) -> Option<&str> {
        self.run.failure.as_deref()
    }

    /// Closes both processes and returns every timing, with the failure if one stopped early
    /// or exited with an error.
    pub fn finish(mut self) -> TorchRun {
        let stock = self.stock.finish();
        let tuned = self.tuned.finish();
        if self.run.failure.is_none() {
            self.run.failure = stock.and(tuned).err().map(|e| e.to_string());
        }
        self.run
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

    /// Waits for the script's `{"ready": …}` line: importing torch takes seconds of CPU, which
    /// must not overlap the timing of our first case.
    fn wait_ready(&mut self) -> Result<(), BenchError> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 => match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(v) if v.get("ready").is_some() => Ok(()),
                _ => Err(BenchError::Torch(format!(
                    "expected a ready line, got: {}",
                    line.trim()
                ))),
            },
            _ => Err(self.failure()),
        }
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
        let script = r#"echo '{"ready": "stand-in"}'
while read -r spec; do
  if [ -n "$MALLOC_MMAP_THRESHOLD_" ]; then ms=1; else ms=2; fi
  echo "{\"torch\": \"stand-in\", \"results\": [{\"case\": \"A\", \"mode\": \"train\", \"median_ms\": $ms, \"min_ms\": $ms, \"max_ms\": $ms, \"iters\": 1}]}"
done
"#;
        let mut peer = peer(dir.path(), script).unwrap();
        let case = crate::suite(true).remove(0);
        let first = peer.time(&case, 0);
        assert_eq!(first.len(), 2);
        assert!(!first[0].0 && first[1].0, "stock first, then tuned");
        peer.time(&case, 1);
        let run = peer.finish();
        assert_eq!(run.failure, None);
        assert_eq!(run.version, "stand-in");
        for round in [0, 1] {
            assert_eq!(run.stock("A", Mode::Train, round).unwrap().median_ms, 2.0);
            assert_eq!(run.tuned("A", Mode::Train, round).unwrap().median_ms, 1.0);
            assert_eq!(run.best("A", Mode::Train, round).unwrap().median_ms, 1.0);
        }
        assert!(run.best("A", Mode::Train, 2).is_none());
    }

    #[test]
    fn a_failing_script_stops_the_peer_and_its_stderr_is_the_failure() {
        let dir = tempfile::tempdir().unwrap();
        // Answers the first spec, then fails as a PyTorch out of memory would.
        let script = r#"echo '{"ready": "stand-in"}'
read -r spec
echo '{"torch": "stand-in", "results": [{"case": "A", "mode": "train", "median_ms": 1, "min_ms": 1, "max_ms": 1, "iters": 1}]}'
read -r spec
echo 'CUDA out of memory' >&2
exit 1
"#;
        let mut peer = peer(dir.path(), script).unwrap();
        let mut cases = crate::suite(true).into_iter();
        let (a, b) = (cases.next().unwrap(), cases.next().unwrap());
        assert_eq!(peer.time(&a, 0).len(), 2);
        assert!(peer.time(&b, 0).is_empty());
        assert!(peer.time(&a, 1).is_empty(), "nothing more after a failure");
        let run = peer.finish();
        let why = run.failure.as_deref().unwrap_or_default();
        assert!(
            why.contains("CUDA out of memory") && why.contains(&b.name),
            "{why}"
        );
        // What came before the failure is kept.
        assert!(run.best("A", Mode::Train, 0).is_some());
    }

    #[test]
    fn an_unreadable_answer_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let script = "echo '{\"ready\": 1}'; while read -r spec; do echo 'not json'; done\n";
        let mut peer = peer(dir.path(), script).unwrap();
        let case = crate::suite(true).remove(0);
        assert!(peer.time(&case, 0).is_empty());
        let run = peer.finish();
        assert!(
            run.failure
                .as_deref()
                .unwrap_or_default()
                .contains("unreadable")
        );
        assert!(run.stock.is_empty() && run.tuned.is_empty());
    }

    #[test]
    fn a_script_that_never_gets_ready_is_an_error_quoting_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let script = "echo 'No module named torch' >&2; exit 1\n";
        match peer(dir.path(), script) {
            Err(BenchError::Torch(why)) => assert!(why.contains("No module named torch"), "{why}"),
            Err(other) => panic!("expected a PyTorch error, got {other}"),
            Ok(_) => panic!("a script that exits is not ready"),
        }
    }
}
