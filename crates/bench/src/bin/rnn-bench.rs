//! `cargo xtask bench` runs this in release: see the crate docs for what it measures.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rnn_backend::{Backend, BackendParser};
use rnn_bench::{Options, measure::CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Benchmark rnn-models' layers against burn-nn and PyTorch CPU in one run.
#[derive(Parser, Debug)]
#[command(name = "rnn-bench", version)]
struct Cli {
    /// Tiny shapes, one iteration each: a seconds-long smoke run.
    #[arg(long)]
    quick: bool,
    /// Only this case, or the cases whose names contain this when no case has exactly this
    /// name (repeatable): `--filter A` is case A alone, `--filter A-T` the whole sweep.
    #[arg(long)]
    filter: Vec<String>,
    /// Backends to measure (repeatable); default: every compiled one.
    #[arg(long, value_parser = BackendParser)]
    backend: Vec<Backend>,
    /// Threads for every implementation; default: all logical CPUs.
    #[arg(long)]
    threads: Option<usize>,
    /// Also time rnn-models' composed reference path.
    #[arg(long)]
    reference: bool,
    /// Time only these implementations (repeatable): ours, ours-reference, burn-nn.
    #[arg(long, value_enum)]
    only: Vec<rnn_bench::Implementation>,
    /// The Python that has torch.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Where the PyTorch peer runs: `cpu`, or `cuda` (cuDNN) to compare a GPU backend.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    torch_device: String,
    /// Skip the PyTorch peer.
    #[arg(long)]
    no_torch: bool,
    /// Time only this mode (repeatable): train, infer; default both.
    #[arg(long, value_enum)]
    mode: Vec<rnn_bench::Mode>,
    /// Report against this GEMM peak (GFLOP/s) instead of measuring it first.
    #[arg(long, value_parser = positive_gflops)]
    peak: Option<f64>,
    /// Print the GEMM throughput on the fused kernels' shapes and exit.
    #[arg(long)]
    gemm_shapes: bool,
    /// Time the whole suite this many times (PyTorch next to ours case by case: after it in
    /// even rounds, before it in odd ones); the report gives each ratio's median and range over
    /// the rounds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Where bench.json, bench.md and bench.png go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

/// `--peak` must be a positive, finite number of GFLOP/s.
fn positive_gflops(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a positive number of GFLOP/s")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        eprintln!("rnn-bench: --threads must be at least 1");
        return ExitCode::from(2);
    }
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        eprintln!("rnn-bench: cannot size the thread pool: {e}");
        return ExitCode::FAILURE;
    }
    if cli.gemm_shapes {
        println!("{}", rnn_bench::peak::shape_report());
        return ExitCode::SUCCESS;
    }
    let backends = if cli.backend.is_empty() {
        Backend::compiled()
    } else {
        cli.backend
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let options = Options {
        quick: cli.quick,
        filter: cli.filter,
        backends,
        reference: cli.reference,
        only: cli.only,
        python: (!cli.no_torch).then_some(cli.python),
        torch_script: root.join("scripts/bench_torch.py"),
        threads,
        out_dir: cli.out,
        modes: cli.mode,
        peak_gflops: cli.peak,
        torch_device: cli.torch_device,
        rounds: cli.rounds as usize,
    };
    match rnn_bench::run(&options) {
        Ok(report) => {
            println!("{}", report.markdown());
            println!(
                "(written to {}/bench.{{json,md,png}})",
                options.out_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rnn-bench: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
