//! PyTorch as a peer: runs `scripts/bench_torch.py` with the same cases, thread count and
//! budget, once with glibc's stock malloc settings and once with the thresholds that make
//! PyTorch's CPU path 1.3–1.8× faster, and keeps both. On the CPU by default; on CUDA (cuDNN)
//! for comparing a GPU backend.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    /// The better (lower median) of stock and tuned for a case and mode.
    pub fn best(&self, case: &str, mode: Mode) -> Option<Stats> {
        let find = |v: &[TorchTiming]| {
            v.iter()
                .find(|t| t.case == case && t.mode == mode)
                .map(|t| t.stats)
        };
        match (find(&self.stock), find(&self.tuned)) {
            (Some(a), Some(b)) => Some(if a.median_ms <= b.median_ms { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The stock-malloc timing for a case and mode.
    pub fn stock(&self, case: &str, mode: Mode) -> Option<Stats> {
        self.stock
            .iter()
            .find(|t| t.case == case && t.mode == mode)
            .map(|t| t.stats)
    }
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

/// Runs the script at `script` with `python` for `cases` on PyTorch's `device` (`cpu` or
/// `cuda`), stock then tuned.
///
/// # Errors
/// [`BenchError::Torch`] when the script fails or prints something unreadable.
pub fn run(
    python: &Path,
    script: &Path,
    cases: &[Case],
    threads: usize,
    budget: Budget,
    device: &str,
    scratch: &Path,
) -> Result<TorchRun, BenchError> {
    let spec = serde_json::json!({
        "cases": cases,
        "threads": threads,
        "device": device,
        "warmup": budget.warmup,
        "min_iters": budget.min_iters,
        "max_iters": budget.max_iters,
        "budget_s": budget.budget.as_secs_f64(),
    });
    let spec_path: PathBuf = scratch.join("torch-spec.json");
    std::fs::write(&spec_path, spec.to_string())
        .map_err(|e| BenchError::Io(spec_path.clone(), e))?;
    let once = |tuned: bool| -> Result<ScriptOutput, BenchError> {
        let mut cmd = Command::new(python);
        cmd.arg(script).arg(&spec_path);
        for (key, value) in TUNED_MALLOC {
            if tuned {
                cmd.env(key, value);
            } else {
                cmd.env_remove(key);
            }
        }
        let out = cmd
            .output()
            .map_err(|e| BenchError::Torch(format!("cannot run {}: {e}", python.display())))?;
        if !out.status.success() {
            return Err(BenchError::Torch(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| BenchError::Torch(format!("unreadable output: {e}")))
    };
    let stock = once(false)?;
    let tuned = once(true)?;
    Ok(TorchRun {
        version: stock.torch,
        device: device.to_string(),
        stock: stock.results,
        tuned: tuned.results,
    })
}
