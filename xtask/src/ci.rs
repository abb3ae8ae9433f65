//! `cargo xtask ci`: the gates every change passes, in the order that fails fastest.

use std::time::Instant;

use crate::{cargo, run_step};

/// Library crates built alone, with feature sets a user would pick.
const STANDALONE: &[&[&str]] = &[
    &["-p", "rnn-atomic"],
    &["-p", "rnn-models", "--no-default-features"],
    &[
        "-p",
        "rnn-models",
        "--no-default-features",
        "--features",
        "import,flex",
    ],
    &[
        "-p",
        "rnn-models",
        "--no-default-features",
        "--features",
        "fused,ndarray",
    ],
    &[
        "-p",
        "rnn-backend",
        "--no-default-features",
        "--features",
        "flex",
    ],
    &["-p", "rnn-datasets", "--no-default-features"],
    &["-p", "rnn-train"],
];

/// Runs fmt, clippy, the tests and the stand-alone checks. Extra arguments go to `cargo test` (e.g. `-- --nocapture`).
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

    // Users depend on single crates: each library must build alone with only its own features
    // (the workspace build above unifies features and would hide a missing one).
    for args in STANDALONE {
        let mut check = cargo();
        check.arg("check").args(*args);
        run_step(&format!("cargo check {}", args.join(" ")), check)?;
    }

    eprintln!("==> ci passed in {:.0?}", start.elapsed());
    Ok(())
}
