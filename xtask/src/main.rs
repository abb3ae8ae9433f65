//! Project chores, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! - `ci`: what CI runs — format check, clippy with `-D warnings`, the whole test suite.
//! - `bench`: builds `rnn-bench` in release and runs it (arguments pass through).

mod ci;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            println!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command '{other}'\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const HELP: &str = "usage: cargo xtask <command>

commands:
  ci      cargo fmt --check, cargo clippy -D warnings, cargo test (the README's test command)
  bench   our layers vs burn-nn and PyTorch: `cargo xtask bench [--quick] [--filter A] [--backend flex]
          [--threads N] [--rounds N] [--reference] [--no-torch] [--python PATH] [--out DIR]`
          (builds rnn-bench in release; writes target/bench/bench.{json,md,png})";

/// `cargo xtask bench ARGS`: the release build of rnn-bench, run from the workspace root.
fn bench(args: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--package",
        "rnn-bench",
        "--bin",
        "rnn-bench",
        "--",
    ])
    .args(args);
    run_step("rnn-bench (release)", cmd)
}

/// The workspace root: the parent of this package's directory.
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A `cargo` command in the workspace root, using the cargo that runs us.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command, echoing it, and fails with its name if it fails.
fn run_step(name: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("==> {name}");
    let status = cmd
        .status()
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}
