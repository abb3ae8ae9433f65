//! `cargo xtask ci`: the gates every change passes, in the order that fails fastest.

use std::time::Instant;

use crate::{cargo, run_step};

/// Runs fmt, clippy and the tests. Extra arguments go to `cargo test` (e.g. `-- --nocapture`).
pub fn run(test_args: &[String]) -> Result<(), String> {
    let start = Instant::now();

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run_step("cargo fmt --check", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run_step("cargo clippy -D warnings", clippy)?;

    // One build serves every test binary: the same profile and features as clippy's check.
    let mut test = cargo();
    test.args(["test", "--workspace"]).args(test_args);
    run_step("cargo test --workspace", test)?;

    eprintln!("==> ci passed in {:.0?}", start.elapsed());
    Ok(())
}
