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
    /// How many times the suite was timed ([`crate::Options::rounds`]).
    #[serde(default = "one")]
    pub rounds: usize,
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

fn one() -> usize {
    1
}

/// One cell over the rounds: the median of the rounds' medians, and the fastest and slowest
/// step of any round; `None` when no round timed it.
fn over_rounds(per_round: impl Iterator<Item = Option<Stats>>) -> Option<Stats> {
    let rounds: Vec<Stats> = per_round.flatten().collect();
    let medians = Stats::from_samples(rounds.iter().map(|s| s.median_ms).collect())?;
    Some(Stats {
        median_ms: medians.median_ms,
        min_ms: rounds
            .iter()
            .map(|s| s.min_ms)
            .fold(f64::INFINITY, f64::min),
        max_ms: rounds.iter().map(|s| s.max_ms).fold(0.0, f64::max),
        iters: rounds.iter().map(|s| s.iters).sum(),
    })
}

/// Peer time / our time, round by round: `1.21×` for one round, the median and range of the
/// rounds' ratios (`1.21× (1.04–1.30)`) for several; each ratio pairs timings of one round.
fn fmt_ratio(
    rounds: usize,
    peer: impl Fn(usize) -> Option<Stats>,
    ours: impl Fn(usize) -> Option<Stats>,
) -> String {
    let ratios = (0..rounds)
        .filter_map(|r| match (peer(r), ours(r)) {
            (Some(p), Some(o)) if o.median_ms > 0.0 => Some(p.median_ms / o.median_ms),
            _ => None,
        })
        .collect();
    match Stats::from_samples(ratios) {
        None => "—".into(),
        Some(s) if s.iters == 1 => format!("{:.2}×", s.median_ms),
        Some(s) => format!("{:.2}× ({:.2}–{:.2})", s.median_ms, s.min_ms, s.max_ms),
    }
}

impl Report {
    /// A cell's timing in one round.
    fn find_in(
        &self,
        round: usize,
        case: &str,
        mode: Mode,
        backend: &str,
        imp: Implementation,
    ) -> Option<Stats> {
        self.measurements
            .iter()
            .find(|m| {
                m.round == round
                    && m.case == case
                    && m.mode == mode
                    && m.backend == backend
                    && m.implementation == imp
            })
            .map(|m| m.stats)
    }

    /// A cell's timing over every round ([`over_rounds`]).
    fn find(&self, case: &str, mode: Mode, backend: &str, imp: Implementation) -> Option<Stats> {
        over_rounds((0..self.rounds).map(|r| self.find_in(r, case, mode, backend, imp)))
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

    /// PyTorch's faster timing (stock or tuned malloc) in one round.
    fn torch_best_in(&self, round: usize, case: &str, mode: Mode) -> Option<Stats> {
        match &self.torch {
            TorchStatus::Ran(run) => run.best(case, mode, round),
            _ => None,
        }
    }

    /// PyTorch's faster timing over every round.
    fn torch_best(&self, case: &str, mode: Mode) -> Option<Stats> {
        over_rounds((0..self.rounds).map(|r| self.torch_best_in(r, case, mode)))
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
        let find_in = |implementation| {
            move |r| self.find_in(r, &case.name, mode, &backend.name, implementation)
        };
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
        let (torch_cell, torch_ratio) = match (&self.torch, peer) {
            (TorchStatus::Ran(run), true) => {
                let over = |pick: &dyn Fn(usize) -> Option<Stats>| {
                    fmt_ms(over_rounds((0..self.rounds).map(pick)))
                };
                (
                    format!(
                        "{} / {}",
                        over(&|r| run.stock(&case.name, mode, r)),
                        over(&|r| run.tuned(&case.name, mode, r))
                    ),
                    fmt_ratio(
                        self.rounds,
                        |r| self.torch_best_in(r, &case.name, mode),
                        find_in(Implementation::Ours),
                    ),
                )
            }
            _ => ("—".into(), "—".into()),
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
            fmt_ratio(
                self.rounds,
                find_in(Implementation::BurnNn),
                find_in(Implementation::Ours)
            ),
            torch_cell,
            torch_ratio
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
                if let Some(why) = &run.failure {
                    let _ = writeln!(
                        h,
                        "PyTorch stopped before the end of the run ({why}): its columns cover what it timed before."
                    );
                }
            }
            TorchStatus::NotInstalled(why) => {
                let _ = writeln!(h, "PyTorch: not installed — {why}");
            }
            TorchStatus::Skipped => h.push_str("PyTorch: skipped (--no-torch)\n"),
        }
        h.push_str(
            "Ratios are peer time / our time (> 1 means we are faster). GFLOP/s count the GEMMs: train ≈ 3 × 2·B·T·G·H·(I+H) per layer and direction.\n",
        );
        if self.rounds > 1 {
            let _ = writeln!(
                h,
                "{} rounds; in each, every case was timed on each implementation and on PyTorch (last in even rounds, first in odd ones) before the next case. Times: the median of the rounds' medians (fastest–slowest step of any round); ratios: the median of the rounds' ratios (their range).",
                self.rounds
            );
        }
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
            round: 0,
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
            rounds: 1,
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

    #[test]
    fn ratios_pair_the_timings_of_one_round_and_give_their_range() {
        let timed = |implementation, round, ms| Measurement {
            round,
            stats: Stats::from_samples(vec![ms]).unwrap(),
            ..measured("flex", implementation, None)
        };
        let torch = |round, ms| crate::torch::TorchTiming {
            case: "A".into(),
            mode: Mode::Train,
            round,
            stats: Stats::from_samples(vec![ms]).unwrap(),
        };
        let mut r = report(vec![
            timed(Implementation::Ours, 0, 1.0),
            timed(Implementation::BurnNn, 0, 3.0),
            timed(Implementation::Ours, 1, 2.0),
            timed(Implementation::BurnNn, 1, 8.0),
        ]);
        r.torch = TorchStatus::Ran(TorchRun {
            version: "test".into(),
            device: "cpu".into(),
            stock: vec![torch(0, 2.0), torch(1, 6.0)],
            tuned: vec![torch(0, 3.0), torch(1, 5.0)],
            failure: None,
        });
        r.rounds = 2;
        let table = r.table();
        let row = table
            .lines()
            .find(|l| l.starts_with("| A | train | flex |"))
            .unwrap();
        // Ours: the median of the rounds' medians, the fastest and slowest of any round.
        assert!(row.contains("| 1.50 (1.00–2.00) |"), "{row}");
        // burn-nn: the rounds' ratios are 3 and 4 (not the ratio of the medians, 5.5 / 1.5).
        assert!(row.contains("| 3.50× (3.00–4.00) |"), "{row}");
        // PyTorch: the faster malloc per round (2 then 5), against that round's 1 and 2.
        assert!(row.contains("| 4.00 / 4.00 | 2.25× (2.00–2.50) |"), "{row}");
        assert!(r.markdown().contains("2 rounds;"));

        assert!(!r.markdown().contains("PyTorch stopped"));
        if let TorchStatus::Ran(run) = &mut r.torch {
            run.failure = Some("at case B: out of memory".into());
        }
        assert!(
            r.markdown()
                .contains("PyTorch stopped before the end of the run (at case B: out of memory)")
        );

        r.rounds = 1;
        let row = r.table();
        assert!(row.contains("| 1.00 (1.00–1.00) |"), "{row}");
        assert!(
            row.contains("| 3.00 | 3.00× | 2.00 / 3.00 | 2.00× |"),
            "{row}"
        );
        assert!(!r.markdown().contains("rounds;"));
    }
}
