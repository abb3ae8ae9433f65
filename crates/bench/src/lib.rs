//! # rnn-bench
//!
//! The benchmark behind `cargo xtask bench`: rnn-models' layers against burn-nn's on every
//! compiled backend and against PyTorch (when `python3 -c "import torch"` works; on the CPU, or
//! on CUDA as the peer of GPU backends), in one run, same shapes and thread count. Each case is timed as a training step (forward, scalar
//! loss, backward) and as inference, reported as median / min / max, GFLOP/s, % of this
//! machine's measured GEMM peak, ratios against the peers and peak heap memory; written to
//! stdout and to JSON, Markdown and a PNG chart.
//!
//! - [`case`]: the fixed suite and its FLOP counts
//! - [`measure`]: timing statistics and the counting allocator
//! - [`launches`]: kernel launches per step on the CubeCL backends
//! - [`runners`]: our layers and burn-nn's as timed steps
//! - [`torch`]: the PyTorch peer (stock and tuned malloc; CPU or CUDA)
//! - [`peak`]: the fp32 GEMM yardstick
//! - [`report`]: table, JSON, Markdown, chart

pub mod case;
mod error;
pub mod launches;
pub mod measure;
pub mod peak;
mod progress;
pub mod report;
pub mod runners;
pub mod torch;

use std::path::PathBuf;
use std::time::Duration;

use progress::Progress;
use rnn_backend::Backend;
use serde::{Deserialize, Serialize};

pub use case::{Case, suite};
pub use error::BenchError;
pub use measure::{Budget, Stats};
pub use report::Report;
pub use runners::{Implementation, Mode};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tiny shapes and one iteration each: a seconds-long smoke run.
    pub quick: bool,
    /// Run only these cases (case-insensitive): a filter equal to a case's name selects that
    /// case, any other the cases whose names contain it; empty: all.
    pub filter: Vec<String>,
    /// Backends to measure on.
    pub backends: Vec<Backend>,
    /// Also time rnn-models' composed reference path.
    pub reference: bool,
    /// Time only these implementations (empty: ours and burn-nn, plus the reference path
    /// with `reference`).
    pub only: Vec<Implementation>,
    /// The Python that runs the PyTorch peer; `None` skips it.
    pub python: Option<PathBuf>,
    /// `scripts/bench_torch.py`.
    pub torch_script: PathBuf,
    /// Threads for every implementation (Rayon's pool and `torch.set_num_threads`).
    pub threads: usize,
    /// Where `bench.json`, `bench.md` and `bench.png` go.
    pub out_dir: PathBuf,
    /// Time only these modes (empty: training and inference).
    pub modes: Vec<Mode>,
    /// Where the PyTorch peer runs: `cpu` (default) or `cuda`.
    pub torch_device: String,
    /// The GEMM peak to report against instead of measuring it (saves seconds and keeps
    /// profiles of a case free of the yardstick's GEMMs).
    pub peak_gflops: Option<f64>,
    /// How many times to time the whole suite (at least 1); the report gives each ratio's
    /// median and range over the rounds.
    pub rounds: usize,
}

/// One timed cell of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Case name.
    pub case: String,
    /// Train or infer.
    pub mode: Mode,
    /// Backend name.
    pub backend: String,
    /// Whose layer.
    pub implementation: Implementation,
    /// Which round of the run ([`Options::rounds`]), from 0.
    #[serde(default)]
    pub round: usize,
    /// The timing.
    #[serde(flatten)]
    pub stats: Stats,
    /// Peak heap bytes above the start of the step (CPU backends; `None` when not counted).
    pub peak_bytes: Option<usize>,
    /// Kernels launched by one step (CubeCL backends; `None` on the CPU backends).
    #[serde(default)]
    pub launches: Option<usize>,
}

impl Options {
    /// The timing budget per measurement.
    pub fn budget(&self, backend: Backend) -> Budget {
        if self.quick {
            return Budget {
                warmup: 1,
                min_iters: 1,
                max_iters: 1,
                budget: Duration::ZERO,
            };
        }
        let software = backend == Backend::Wgpu;
        Budget {
            warmup: if software { 1 } else { 2 },
            min_iters: if software { 2 } else { 5 },
            max_iters: 50,
            budget: Duration::from_secs(if software { 3 } else { 2 }),
        }
    }

    /// The suite after `filter`.
    pub fn cases(&self) -> Vec<Case> {
        let all = suite(self.quick);
        // A filter that names a case exactly selects that case alone (`A` is not `A-bi`);
        // any other filter selects the cases whose names contain it.
        let matches = |f: &str, name: &str| {
            let exact = all.iter().any(|c| c.name.eq_ignore_ascii_case(f));
            if exact {
                name.eq_ignore_ascii_case(f)
            } else {
                name.to_lowercase().contains(&f.to_lowercase())
            }
        };
        all.iter()
            .filter(|c| self.filter.is_empty() || self.filter.iter().any(|f| matches(f, &c.name)))
            .cloned()
            .collect()
    }
}

/// Cases above this many training FLOPs are not timed on a software GPU.
pub const SOFTWARE_GPU_MAX_FLOPS: f64 = 2.5e9;

/// Runs the suite and writes the report files.
///
/// Round by round and case by case: every backend's implementations and PyTorch on the same
/// case one after the other (PyTorch last in even rounds, first in odd ones), so that a ratio
/// compares timings taken seconds apart.
///
/// # Errors
/// [`BenchError`] when a backend cannot start, a layer fails, PyTorch's script fails after
/// `import torch` worked, or a report file cannot be written.
pub fn run(options: &Options) -> Result<Report, BenchError> {
    let cases = options.cases();
    if cases.is_empty() {
        return Err(options.no_case_error());
    }
    if options.rounds == 0 {
        return Err(BenchError::Usage("--rounds must be at least 1".into()));
    }
    std::fs::create_dir_all(&options.out_dir)
        .map_err(|e| BenchError::Io(options.out_dir.clone(), e))?;
    let gemm_peak = options.gemm_peak();
    let opened = options
        .backends
        .iter()
        .map(|&backend| Opened::new(backend))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut peer, status) = start_torch(options)?;
    let measurements = time_rounds(options, &cases, &opened, peer.as_mut())?;
    let torch = match peer {
        Some(peer) => report::TorchStatus::Ran(peer.finish()),
        None => status,
    };
    let report = Report {
        machine: report::Machine::here(options.threads),
        gemm_peak_gflops: gemm_peak,
        rounds: options.rounds,
        backends: opened.into_iter().map(|b| b.info).collect(),
        cases,
        measurements,
        torch,
    };
    report.write(&options.out_dir)?;
    Ok(report)
}

impl Options {
    /// The usage error for a filter that matches no case, listing the cases.
    fn no_case_error(&self) -> BenchError {
        let names: Vec<String> = suite(self.quick).into_iter().map(|c| c.name).collect();
        BenchError::Usage(format!(
            "no case matches --filter {:?}; cases: {}",
            self.filter,
            names.join(", ")
        ))
    }

    /// The GEMM peak the report compares against: given, or measured now.
    fn gemm_peak(&self) -> f64 {
        if let Some(given) = self.peak_gflops {
            return given;
        }
        let measured = peak::gemm_peak_gflops(self.quick);
        eprintln!(
            "fp32 GEMM peak on {} threads: {measured:.1} GFLOP/s",
            self.threads
        );
        measured
    }

    /// The modes to time: those asked for, else training and inference.
    fn modes_to_run(&self) -> Vec<Mode> {
        if self.modes.is_empty() {
            vec![Mode::Train, Mode::Infer]
        } else {
            self.modes.clone()
        }
    }

    /// The implementations to time: `--only`, else ours (and our reference path with
    /// `--reference`) and burn-nn.
    fn implementations(&self) -> Vec<Implementation> {
        if !self.only.is_empty() {
            return self.only.clone();
        }
        let mut implementations = vec![Implementation::Ours, Implementation::BurnNn];
        if self.reference {
            implementations.insert(1, Implementation::OursReference);
        }
        implementations
    }
}

/// Times every round: per case, every backend's implementations and the PyTorch peer, one
/// after the other (PyTorch last in even rounds, first in odd ones, so that neither side
/// always runs after the other).
fn time_rounds(
    options: &Options,
    cases: &[Case],
    opened: &[Opened],
    mut peer: Option<&mut torch::TorchPeer>,
) -> Result<Vec<Measurement>, BenchError> {
    let per_case = options.modes_to_run().len() * options.implementations().len();
    let progress = Progress::new(options.rounds * opened.len() * cases.len() * per_case);
    let mut measurements = Vec::new();
    for round in 0..options.rounds {
        for case in cases {
            if round % 2 == 1 {
                time_torch(peer.as_deref_mut(), case, round, &progress);
            }
            for backend in opened {
                measurements.extend(measure_case(options, backend, case, round, &progress)?);
            }
            if round % 2 == 0 {
                time_torch(peer.as_deref_mut(), case, round, &progress);
            }
        }
    }
    Ok(measurements)
}

/// A backend opened for the run.
struct Opened {
    backend: Backend,
    selected: rnn_backend::Selected,
    info: report::BackendInfo,
}

impl Opened {
    fn new(backend: Backend) -> Result<Self, BenchError> {
        let selected = backend
            .select()
            .map_err(|e| BenchError::Backend(e.to_string()))?;
        let info = report::BackendInfo {
            name: backend.name().to_string(),
            description: selected.describe(),
            software: selected.is_software_gpu(),
        };
        Ok(Self {
            backend,
            selected,
            info,
        })
    }
}

/// Times one case's modes and implementations on one backend, as `round`.
fn measure_case(
    options: &Options,
    opened: &Opened,
    case: &Case,
    round: usize,
    progress: &Progress,
) -> Result<Vec<Measurement>, BenchError> {
    let Opened {
        backend, selected, ..
    } = opened;
    let mut measurements = Vec::new();
    // A software GPU (lavapipe) takes seconds per step: keep to the small cases.
    if selected.is_software_gpu() && !options.quick && case.train_flops() > SOFTWARE_GPU_MAX_FLOPS {
        progress.line(&format!(
            "{:8} skipped on {} (software GPU; too slow to time)",
            case.name,
            backend.name()
        ));
        progress.advance(options.modes_to_run().len() * options.implementations().len());
        return Ok(measurements);
    }
    let budget = options.budget(*backend);
    for mode in options.modes_to_run() {
        for implementation in options.implementations() {
            let step = runners::prepare(implementation, case, mode, selected.device())?;
            let Some(step) = step else {
                progress.advance(1);
                continue;
            };
            let (stats, peak_bytes, launches) = measure_step(step, budget)?;
            let launches = backend.is_cubecl().then_some(launches);
            progress.line(&timing_line(
                &case.name,
                mode,
                backend.name(),
                implementation.label(),
                stats.median_ms,
            ));
            progress.advance(1);
            measurements.push(Measurement {
                case: case.name.clone(),
                mode,
                backend: backend.name().to_string(),
                implementation,
                round,
                stats,
                peak_bytes,
                launches,
            });
        }
    }
    Ok(measurements)
}

/// Warms a step up, counts one step's peak memory and kernel launches, then times it within
/// `budget`.
fn measure_step(
    mut step: runners::Step,
    budget: Budget,
) -> Result<(Stats, Option<usize>, usize), BenchError> {
    // Warm up once outside the memory window, then count one step.
    step()?;
    // Count the step's whole working set, scratch buffers the fused kernels would otherwise
    // reuse from the warm-up included.
    rnn_models::release_scratch_memory();
    let baseline = measure::live_bytes();
    measure::reset_peak();
    let (result, launches) = launches::count(&mut step);
    result?;
    let peak_bytes = measure::peak_bytes(baseline);
    let stats = measure::time(budget, &mut step)?;
    Ok((stats, peak_bytes, launches))
}

/// Times `case` on the PyTorch peer, if there is one, as `round`.
fn time_torch(peer: Option<&mut torch::TorchPeer>, case: &Case, round: usize, progress: &Progress) {
    let Some(peer) = peer else {
        return;
    };
    let stopped_before = peer.failure().is_some();
    for (tuned, t) in peer.time(case, round) {
        let malloc = if tuned {
            "tuned malloc"
        } else {
            "stock malloc"
        };
        progress.line(&timing_line(
            &t.case,
            t.mode,
            "torch",
            malloc,
            t.stats.median_ms,
        ));
    }
    if let (false, Some(why)) = (stopped_before, peer.failure()) {
        progress.line(&format!("PyTorch stopped ({why}); timing ours without it"));
    }
}

/// One progress line: a case's median step time on one implementation.
fn timing_line(case: &str, mode: Mode, backend: &str, who: &str, median_ms: f64) -> String {
    let mode = format!("{mode:?}").to_lowercase();
    format!("{case:8} {mode:5} {backend:8} {who:15} {median_ms:9.2} ms")
}

/// Starts the PyTorch peer when a Python was given and has torch; otherwise the status that
/// says why not.
fn start_torch(
    options: &Options,
) -> Result<(Option<torch::TorchPeer>, report::TorchStatus), BenchError> {
    let Some(python) = &options.python else {
        return Ok((None, report::TorchStatus::Skipped));
    };
    if let Err(reason) = torch::probe(python) {
        return Ok((None, report::TorchStatus::NotInstalled(reason)));
    }
    eprintln!(
        "PyTorch: {} (each case after ours; stock malloc, then tuned)",
        python.display()
    );
    let peer = torch::TorchPeer::start(
        python,
        &options.torch_script,
        options.threads,
        options.budget(Backend::Flex),
        &options.torch_device,
        &options.out_dir,
    )?;
    Ok((Some(peer), report::TorchStatus::Skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(filter: &[&str]) -> Vec<String> {
        let options = Options {
            quick: false,
            filter: filter.iter().map(|f| f.to_string()).collect(),
            backends: Vec::new(),
            reference: false,
            only: Vec::new(),
            python: None,
            torch_script: PathBuf::new(),
            threads: 1,
            out_dir: PathBuf::new(),
            modes: Vec::new(),
            peak_gflops: None,
            torch_device: "cpu".into(),
            rounds: 1,
        };
        options.cases().into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn a_case_name_selects_that_case_and_other_filters_match_substrings() {
        assert_eq!(names(&["A"]), ["A"]);
        assert_eq!(names(&["a", "b"]), ["A", "B"]);
        assert_eq!(names(&["-bi"]), ["A-bi"]);
        assert_eq!(names(&["A-T"]).len(), 5);
        assert_eq!(names(&[]).len(), suite(false).len());
    }
}
