//! The report: one table (stdout and Markdown), the raw numbers (JSON) and a chart (PNG).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::torch::TorchRun;
use crate::{BenchError, Case, Implementation, Measurement, Mode, Stats};

/// Where the numbers came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model from `/proc/cpuinfo` (or "unknown").
    pub cpu: String,
    /// Logical CPUs the OS offers.
    pub logical_cpus: usize,
    /// Threads every implementation was given.
    pub threads: usize,
}

impl Machine {
    /// Describes this machine.
    pub fn here(threads: usize) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads,
        }
    }
}

/// A measured backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `flex`, `ndarray`, `wgpu`, …
    pub name: String,
    /// The device as the backend crate describes it.
    pub description: String,
    /// A software GPU (lavapipe): timings say nothing about real GPUs.
    pub software: bool,
}

/// Whether PyTorch ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TorchStatus {
    /// Timings, stock and tuned malloc.
    Ran(TorchRun),
    /// Why not, and how to install.
    NotInstalled(String),
    /// Not asked for (`--no-torch`).
    Skipped,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Best square f32 GEMM throughput measured in this run.
    pub gemm_peak_gflops: f64,
    /// The backends measured.
    pub backends: Vec<BackendInfo>,
    /// The cases run.
    pub cases: Vec<Case>,
    /// Our and burn-nn's timings.
    pub measurements: Vec<Measurement>,
    /// PyTorch's timings.
    pub torch: TorchStatus,
}

/// The header and separator rows of [`Report::table`].
fn table_header(has_reference: bool) -> String {
    let mut t =
        String::from("| case | mode | backend | ours ms (min–max) | GFLOP/s | % peak | peak MiB |");
    if has_reference {
        t.push_str(" reference ms |");
    }
    t.push_str(
        " burn-nn ms | vs burn-nn | PyTorch ms (stock / tuned) | vs PyTorch best |\n|---|---|---|---|---|---|---|",
    );
    if has_reference {
        t.push_str("---|");
    }
    t.push_str("---|---|---|---|\n");
    t
}

fn fmt_ms(s: Option<Stats>) -> String {
    s.map_or("—".into(), |s| format!("{:.2}", s.median_ms))
}

fn fmt_ratio(peer: Option<Stats>, ours: Option<Stats>) -> String {
    match (peer, ours) {
        (Some(p), Some(o)) if o.median_ms > 0.0 => format!("{:.2}×", p.median_ms / o.median_ms),
        _ => "—".into(),
    }
}

impl Report {
    fn find(&self, case: &str, mode: Mode, backend: &str, imp: Implementation) -> Option<Stats> {
        self.measurements
            .iter()
            .find(|m| {
                m.case == case && m.mode == mode && m.backend == backend && m.implementation == imp
            })
            .map(|m| m.stats)
    }

    /// Whether PyTorch's timings are the peer of this backend's: PyTorch on the CPU for the
    /// CPU backends, PyTorch on CUDA for the (hardware) GPU backends.
    fn torch_compares_with(&self, backend: &BackendInfo) -> bool {
        let gpu = matches!(backend.name.as_str(), "wgpu" | "cuda");
        match &self.torch {
            TorchStatus::Ran(run) if run.device == "cpu" => !gpu,
            TorchStatus::Ran(_) => gpu && !backend.software,
            _ => false,
        }
    }

    fn torch_best(&self, case: &str, mode: Mode) -> Option<Stats> {
        match &self.torch {
            TorchStatus::Ran(run) => run.best(case, mode),
            _ => None,
        }
    }

    /// The main table as Markdown rows (also printed to stdout).
    pub fn table(&self) -> String {
        let has_reference = self
            .measurements
            .iter()
            .any(|m| m.implementation == Implementation::OursReference);
        let mut t = table_header(has_reference);
        for case in &self.cases {
            for mode in [Mode::Train, Mode::Infer] {
                for backend in &self.backends {
                    if let Some(row) = self.table_row(case, mode, backend, has_reference) {
                        t.push_str(&row);
                    }
                }
            }
        }
        t
    }

    /// One row of [`Report::table`]; `None` when our layer was not timed there.
    fn table_row(
        &self,
        case: &Case,
        mode: Mode,
        backend: &BackendInfo,
        has_reference: bool,
    ) -> Option<String> {
        let find = |implementation| self.find(&case.name, mode, &backend.name, implementation);
        let ours = find(Implementation::Ours);
        let o = ours?;
        let flops = match mode {
            Mode::Train => case.train_flops(),
            Mode::Infer => case.forward_flops(),
        };
        let gflops = flops / (o.median_ms * 1e-3) / 1e9;
        let peak = self
            .measurements
            .iter()
            .find(|m| {
                m.case == case.name
                    && m.mode == mode
                    && m.backend == backend.name
                    && m.implementation == Implementation::Ours
            })
            .and_then(|m| m.peak_bytes)
            .map_or("—".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
        let burn_nn = find(Implementation::BurnNn);
        let peer = self.torch_compares_with(backend);
        let torch_best = self.torch_best(&case.name, mode).filter(|_| peer);
        let torch_cell = match (&self.torch, peer) {
            (TorchStatus::Ran(run), true) => format!(
                "{} / {}",
                fmt_ms(run.stock(&case.name, mode)),
                fmt_ms(
                    run.tuned
                        .iter()
                        .find(|t| t.case == case.name && t.mode == mode)
                        .map(|t| t.stats)
                )
            ),
            _ => "—".into(),
        };
        let mut t = format!(
            "| {} | {} | {}{} | {:.2} ({:.2}–{:.2}) | {:.1} | {:.0} % | {} |",
            case.name,
            format!("{mode:?}").to_lowercase(),
            backend.name,
            if backend.software { " (software)" } else { "" },
            o.median_ms,
            o.min_ms,
            o.max_ms,
            gflops,
            100.0 * gflops / self.gemm_peak_gflops.max(1e-9),
            peak
        );
        if has_reference {
            let _ = write!(t, " {} |", fmt_ms(find(Implementation::OursReference)));
        }
        let _ = writeln!(
            t,
            " {} | {} | {} | {} |",
            fmt_ms(burn_nn),
            fmt_ratio(burn_nn, ours),
            torch_cell,
            fmt_ratio(torch_best, ours)
        );
        Some(t)
    }

    /// Kernel launches per step on the CubeCL backends, one column per implementation; empty
    /// when no CubeCL backend was measured.
    pub fn launches(&self) -> String {
        let counted: Vec<&Measurement> = self
            .measurements
            .iter()
            .filter(|m| m.launches.is_some())
            .collect();
        if counted.is_empty() {
            return String::new();
        }
        let implementations: Vec<Implementation> = [
            Implementation::Ours,
            Implementation::OursReference,
            Implementation::BurnNn,
        ]
        .into_iter()
        .filter(|&imp| counted.iter().any(|m| m.implementation == imp))
        .collect();
        let mut t = String::from("| case | mode | backend |");
        for imp in &implementations {
            let _ = write!(t, " {} |", imp.label());
        }
        t.push_str("\n|---|---|---|");
        t.push_str(&"---|".repeat(implementations.len()));
        t.push('\n');
        for case in &self.cases {
            for mode in [Mode::Train, Mode::Infer] {
                for backend in &self.backends {
                    let count = |imp: Implementation| {
                        counted
                            .iter()
                            .find(|m| {
                                m.case == case.name
                                    && m.mode == mode
                                    && m.backend == backend.name
                                    && m.implementation == imp
                            })
                            .and_then(|m| m.launches)
                    };
                    let cells: Vec<Option<usize>> =
                        implementations.iter().map(|&imp| count(imp)).collect();
                    if cells.iter().all(Option::is_none) {
                        continue;
                    }
                    let _ = write!(
                        t,
                        "| {} | {} | {} |",
                        case.name,
                        format!("{mode:?}").to_lowercase(),
                        backend.name
                    );
                    for cell in cells {
                        let _ = write!(t, " {} |", cell.map_or("—".into(), |n| n.to_string()));
                    }
                    t.push('\n');
                }
            }
        }
        t
    }

    /// The sequence-length sweep: ms per step divided by `seq`, per backend and mode; flat
    /// means linear time.
    pub fn scaling(&self) -> String {
        let sweep: Vec<&Case> = self
            .cases
            .iter()
            .filter(|c| c.name.starts_with("A-T"))
            .collect();
        if sweep.is_empty() {
            return String::new();
        }
        let mut t = String::from("| backend | mode |");
        for c in &sweep {
            let _ = write!(t, " T={} µs/step |", c.seq);
        }
        t.push_str("\n|---|---|");
        t.push_str(&"---|".repeat(sweep.len()));
        t.push('\n');
        for backend in &self.backends {
            for mode in [Mode::Train, Mode::Infer] {
                let _ = write!(
                    t,
                    "| {} | {} |",
                    backend.name,
                    format!("{mode:?}").to_lowercase()
                );
                for c in &sweep {
                    let v = self.find(&c.name, mode, &backend.name, Implementation::Ours);
                    let _ = write!(
                        t,
                        " {} |",
                        v.map_or("—".into(), |s| format!(
                            "{:.1}",
                            1e3 * s.median_ms / c.seq as f64
                        ))
                    );
                }
                t.push('\n');
            }
        }
        t
    }

    fn header(&self) -> String {
        let mut h = format!(
            "Machine: {} ({} logical CPUs), {} threads. fp32 GEMM peak (gemm crate, square): {:.1} GFLOP/s.\n",
            self.machine.cpu,
            self.machine.logical_cpus,
            self.machine.threads,
            self.gemm_peak_gflops
        );
        for b in &self.backends {
            let _ = writeln!(
                h,
                "Backend {}: {}{}",
                b.name,
                b.description,
                if b.software {
                    " — a software GPU: its timings say nothing about real GPUs (cases over 2.5 GFLOP per training step are not timed on it)"
                } else {
                    ""
                }
            );
        }
        match &self.torch {
            TorchStatus::Ran(run) => {
                let _ = writeln!(
                    h,
                    "PyTorch {} on {}: stock malloc / MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=268435456; ratios use the faster.",
                    run.version,
                    if run.device == "cpu" {
                        "the CPU"
                    } else {
                        run.device.as_str()
                    }
                );
            }
            TorchStatus::NotInstalled(why) => {
                let _ = writeln!(h, "PyTorch: not installed — {why}");
            }
            TorchStatus::Skipped => h.push_str("PyTorch: skipped (--no-torch)\n"),
        }
        h.push_str(
            "Ratios are peer time / our time (> 1 means we are faster). GFLOP/s count the GEMMs: train ≈ 3 × 2·B·T·G·H·(I+H) per layer and direction.\n",
        );
        h
    }

    /// The whole report as text (stdout and `bench.md`).
    pub fn markdown(&self) -> String {
        let mut s = String::from("# cargo xtask bench\n\n");
        s.push_str(&self.header());
        s.push('\n');
        s.push_str(&self.table());
        let launches = self.launches();
        if !launches.is_empty() {
            s.push_str(
                "\nKernel launches per step (CubeCL's launch observer; every kernel issued, Burn's included):\n\n",
            );
            s.push_str(&launches);
        }
        let scaling = self.scaling();
        if !scaling.is_empty() {
            s.push_str(
                "\nSequence-length sweep (case A's LSTM), ours, time per step divided by T:\n\n",
            );
            s.push_str(&scaling);
        }
        s.push_str(
            "\nChart (bench.png): per case, the median training-step time of each implementation and backend on a log scale, with a legend.\n",
        );
        s
    }

    /// Writes `bench.json`, `bench.md` and `bench.png` into `dir`, each atomically.
    ///
    /// # Errors
    /// [`BenchError::Io`] or [`BenchError::Chart`].
    pub fn write(&self, dir: &Path) -> Result<(), BenchError> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| BenchError::Chart(format!("serialize: {e}")))?;
        for (name, bytes) in [("bench.json", json), ("bench.md", self.markdown())] {
            let path = dir.join(name);
            rnn_atomic::write(&path, bytes.as_bytes()).map_err(|e| BenchError::Io(path, e))?;
        }
        self.chart(&dir.join("bench.png"))
    }

    /// Training-step time per case on a log scale: one bar per implementation and backend
    /// (ours, our composed path when timed, burn-nn, PyTorch at its best).
    fn chart(&self, path: &Path) -> Result<(), BenchError> {
        let mut series = Vec::new();
        let mut values = Vec::new();
        let per_case = |pick: &dyn Fn(&str) -> Option<Stats>| -> Vec<Option<f64>> {
            self.cases
                .iter()
                .map(|c| pick(&c.name).map(|s| s.median_ms))
                .collect()
        };
        for imp in [
            Implementation::Ours,
            Implementation::OursReference,
            Implementation::BurnNn,
        ] {
            for backend in &self.backends {
                let times = per_case(&|case| self.find(case, Mode::Train, &backend.name, imp));
                if times.iter().any(Option::is_some) {
                    series.push(format!("{} ({})", imp.label(), backend.name));
                    values.push(times);
                }
            }
        }
        let torch = per_case(&|case| self.torch_best(case, Mode::Train));
        if torch.iter().any(Option::is_some) {
            series.push("PyTorch (best of stock / tuned malloc)".to_string());
            values.push(torch);
        }
        let categories: Vec<String> = self.cases.iter().map(|c| c.name.clone()).collect();
        let chart = rnn_train::BarChart {
            title: "training step time per case (lower is faster)",
            y_label: "milliseconds per training step (median)",
            categories: &categories,
            series: &series,
            values: &values,
        };
        let info = rnn_train::RunInfo::new(
            "rnn-bench",
            format!("{} · {} threads", self.machine.cpu, self.machine.threads),
        );
        rnn_train::bar_chart(path, &chart, &info).map_err(|e| match e {
            rnn_train::TrainError::Io { source, .. } => BenchError::Io(path.to_path_buf(), source),
            other => BenchError::Chart(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(
        backend: &str,
        implementation: Implementation,
        launches: Option<usize>,
    ) -> Measurement {
        Measurement {
            case: "A".into(),
            mode: Mode::Train,
            backend: backend.into(),
            implementation,
            stats: Stats::from_samples(vec![1.0]).unwrap(),
            peak_bytes: None,
            launches,
        }
    }

    fn report(measurements: Vec<Measurement>) -> Report {
        let backend = |name: &str| BackendInfo {
            name: name.into(),
            description: String::new(),
            software: false,
        };
        Report {
            machine: Machine::here(1),
            gemm_peak_gflops: 1.0,
            backends: vec![backend("flex"), backend("wgpu")],
            cases: crate::suite(false)
                .into_iter()
                .filter(|c| c.name == "A")
                .collect(),
            measurements,
            torch: TorchStatus::Skipped,
        }
    }

    #[test]
    fn launches_are_tabled_for_the_backends_that_counted_them() {
        let cpu_only = report(vec![measured("flex", Implementation::Ours, None)]);
        assert_eq!(cpu_only.launches(), "");
        assert!(!cpu_only.markdown().contains("Kernel launches"));

        let both = report(vec![
            measured("flex", Implementation::Ours, None),
            measured("wgpu", Implementation::Ours, Some(159)),
            measured("wgpu", Implementation::OursReference, Some(1201)),
        ]);
        let table = both.launches();
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 3, "{table}");
        assert_eq!(rows[0], "| case | mode | backend | ours | ours-reference |");
        assert_eq!(rows[2], "| A | train | wgpu | 159 | 1201 |");
        assert!(both.markdown().contains(&table));
    }
}
