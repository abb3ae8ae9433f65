//! The example binaries as a user runs them: bad flags fail politely, and every tutorial
//! program runs end to end on tiny settings (the full results are in the README).

use std::process::{Command, Output};

fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).env_remove("RNN_BACKEND");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("example binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn unknown_backend_flag_and_env_exit_2_listing_backends() {
    let bin = env!("CARGO_BIN_EXE_rnn_shapes");
    for out in [
        run(bin, &["--backend", "nope"], &[]),
        run(bin, &[], &[("RNN_BACKEND", "nope")]),
    ] {
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        assert!(msg.contains("nope"), "{msg}");
        for name in ["flex", "ndarray", "wgpu"] {
            assert!(msg.contains(name), "{msg} should list {name}");
        }
        assert!(!msg.contains("panicked"), "{msg}");
    }
    let out = run(bin, &["--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn rnn_shapes_prints_pytorch_shapes() {
    let out = run(
        env!("CARGO_BIN_EXE_rnn_shapes"),
        &["--backend", "flex"],
        &[],
    );
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    for shape in [
        "[128, 4]",
        "[6, 3, 10]",
        "[2, 3, 10]",
        "[10, 3, 100]",
        "[2, 3, 100]",
        "[3, 10, 100]",
        "[10, 3, 200]",
        "[4, 3, 100]",
    ] {
        assert!(msg.contains(shape), "missing {shape} in:\n{msg}");
    }
}

#[test]
fn tutorial_programs_run_on_tiny_settings() {
    let tmp = std::env::temp_dir().join(format!("rnn-examples-{}", std::process::id()));
    let out_dir = tmp.join("sin_cos");
    let out_dir = out_dir.to_str().unwrap();
    let (dynamic_dir, mnist_dir) = (tmp.join("dynamic_rnn"), tmp.join("mnist_rnn"));
    let (dynamic_dir, mnist_dir) = (dynamic_dir.to_str().unwrap(), mnist_dir.to_str().unwrap());
    let corpus = tmp.join("corpus.txt");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        &corpus,
        "the quick brown fox jumps over the lazy dog. ".repeat(40),
    )
    .unwrap();
    let corpus = corpus.to_str().unwrap();
    let cases: [(&str, Vec<&str>, &str); 8] = [
        (
            env!("CARGO_BIN_EXE_hello_rnn"),
            vec!["--model", "gru"],
            "Predicted:",
        ),
        (
            env!("CARGO_BIN_EXE_sin_cos"),
            vec!["--windows", "20", "--out", out_dir, "--quiet"],
            "MSE over the last",
        ),
        (
            env!("CARGO_BIN_EXE_dynamic_rnn"),
            vec!["--epochs", "2", "--quiet", "--out", dynamic_dir],
            "Testing accuracy",
        ),
        (
            env!("CARGO_BIN_EXE_mnist_rnn"),
            vec![
                "--cell",
                "gru",
                "--dataset",
                "mnist",
                "--no-download",
                "--limit",
                "64",
                "--epochs",
                "1",
                "--hidden",
                "8",
                "--quiet",
                "--out",
                mnist_dir,
            ],
            "Testing Accuracy",
        ),
        (
            env!("CARGO_BIN_EXE_mnist_birnn"),
            vec![
                "--dataset",
                "pixel",
                "--no-download",
                "--limit",
                "16",
                "--epochs",
                "1",
                "--hidden",
                "4",
                "--dropout",
                "0.2",
                "--quiet",
            ],
            "Testing Accuracy",
        ),
        (
            env!("CARGO_BIN_EXE_addition_rnn"),
            vec![
                "--size", "300", "--epochs", "1", "--hidden", "16", "--quiet",
            ],
            "validation samples",
        ),
        (
            env!("CARGO_BIN_EXE_text_gen"),
            vec![
                "--corpus",
                corpus,
                "--epochs",
                "1",
                "--hidden",
                "8",
                "--generate",
                "10",
                "--quiet",
            ],
            "temperature 1.2",
        ),
        (
            env!("CARGO_BIN_EXE_rnn_from_scratch"),
            vec!["--corpus", corpus, "--epochs", "1", "--hidden", "8"],
            "hand BPTT vs autodiff",
        ),
    ];
    for (bin, args, expect) in cases {
        let out = run(bin, &args, &[("RNN_DATA_DIR", tmp.to_str().unwrap())]);
        let msg = text(&out);
        assert!(out.status.success(), "{bin} {args:?} failed:\n{msg}");
        assert!(
            msg.contains(expect),
            "{bin}: expected {expect:?} in:\n{msg}"
        );
        // Output to a pipe carries no colour or cursor codes (addition_rnn's ☑/☒ included).
        assert!(
            !msg.contains('\x1b'),
            "{bin}: escape codes in a pipe:\n{msg}"
        );
    }
    assert!(tmp.join("sin_cos/prediction.png").is_file());
    assert!(tmp.join("sin_cos/learning_curve.png").is_file());
    // Each run's report.html holds its config and its pictures inline.
    for (run, pictures, names) in [
        ("sin_cos", 2, &["test stream MSE"][..]),
        (
            "dynamic_rnn",
            2,
            &["test accuracy", "confusion_matrix.png"][..],
        ),
        (
            "mnist_rnn",
            2,
            &["test accuracy", "confusion_matrix.png"][..],
        ),
    ] {
        let report = std::fs::read_to_string(tmp.join(run).join("report.html")).unwrap();
        assert!(
            report.contains(&format!("<h1>{run}: run report</h1>")),
            "{run}"
        );
        assert!(report.contains("<th>batch_size</th>"), "{run}: no config");
        assert_eq!(
            report
                .matches("<img src=\"data:image/png;base64,iVBORw0KGgo")
                .count(),
            pictures,
            "{run}"
        );
        for name in names {
            assert!(report.contains(name), "{run}: no {name}");
        }
    }
    assert!(tmp.join("dynamic_rnn/confusion_matrix.png").is_file());
    assert!(tmp.join("mnist_rnn/confusion_matrix.png").is_file());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The bar for `hello_rnn`: with the defaults, every variant ends its 15 epochs
/// predicting "ohlol" (each run takes well under a second).
#[test]
fn hello_rnn_learns_ohlol_with_every_model_by_default() {
    for model in ["cell", "rnn", "embedding", "lstm", "gru"] {
        let out = run(
            env!("CARGO_BIN_EXE_hello_rnn"),
            &["--model", model, "--backend", "flex"],
            &[],
        );
        let msg = text(&out);
        assert!(out.status.success(), "{model}: {msg}");
        assert!(msg.contains("Epoch [15/15]"), "{model}: {msg}");
        assert!(msg.contains("learned: ohlol"), "{model}: {msg}");
    }
}

#[test]
fn bad_paths_exit_2_with_one_clear_line() {
    let file = std::env::temp_dir().join(format!("rnn-cli-file-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let under_file = file.join("run");
    let cases = [
        (
            env!("CARGO_BIN_EXE_dynamic_rnn"),
            vec!["--out", under_file.to_str().unwrap(), "--epochs", "1"],
            "--out",
        ),
        (
            env!("CARGO_BIN_EXE_mnist_rnn"),
            vec!["--data-dir", "/no/such/dir", "--epochs", "1"],
            "--data-dir",
        ),
    ];
    for (bin, args, flag) in cases {
        let out = run(bin, &args, &[("RUST_BACKTRACE", "1")]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        let first = msg.lines().next().unwrap_or_default();
        assert!(first.starts_with("error:") && first.contains(flag), "{msg}");
        assert!(
            !msg.contains("panicked") && !msg.contains("backtrace"),
            "{msg}"
        );
    }
    let _ = std::fs::remove_file(&file);
}

/// `dynamic_rnn --show-errors` lists exactly the test sequences the accuracy counts as wrong
/// (500 test sequences), each with its true class and the one predicted.
#[test]
fn dynamic_rnn_show_errors_lists_every_misclassified_test_sequence() {
    let out = run(
        env!("CARGO_BIN_EXE_dynamic_rnn"),
        &[
            "--epochs",
            "40", // about 77 % accurate: errors of both kinds
            "--train-samples",
            "256",
            "--quiet",
            "--show-errors",
        ],
        &[],
    );
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    let accuracy: f64 = msg
        .lines()
        .find_map(|l| l.strip_prefix("Testing accuracy: "))
        .and_then(|rest| rest.split('%').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in:\n{msg}"));
    let errors: Vec<&str> = msg.lines().filter(|l| l.contains(" taken for ")).collect();
    let expected = ((100.0 - accuracy) * 5.0).round() as usize;
    assert_eq!(errors.len(), expected, "{msg}");
    // Both directions of error are printed (at this seed: 104 linear, 13 random).
    for kind in ["linear [", "random ["] {
        assert!(errors.iter().any(|l| l.starts_with(kind)), "{msg}");
    }
    for line in errors {
        assert!(
            line.starts_with("linear [") && line.contains("taken for random")
                || line.starts_with("random [") && line.contains("taken for linear"),
            "{line}"
        );
    }
}

#[test]
fn out_of_range_dropout_is_a_usage_error() {
    for value in ["1.5", "-0.1", "1", "lots"] {
        let arg = format!("--dropout={value}");
        let out = run(env!("CARGO_BIN_EXE_mnist_rnn"), &[&arg], &[]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{value}: {msg}");
        let first = msg.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error:") && first.contains("--dropout"),
            "{msg}"
        );
    }
}

#[test]
fn bad_training_numbers_are_usage_errors_before_any_work() {
    let bin = env!("CARGO_BIN_EXE_sin_cos");
    let cases: [(&[&str], &str); 6] = [
        (&["--lr", "nan"], "--lr"),
        (&["--lr", "0"], "--lr"),
        (&["--lr=-1e-3"], "--lr"),
        (&["--epochs", "0"], "--epochs"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--lr", "inf"], "--lr"),
    ];
    for (args, flag) in cases {
        let out = run(bin, args, &[]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {msg}");
        let first = msg.lines().next().unwrap_or_default();
        assert!(first.starts_with("error:") && first.contains(flag), "{msg}");
        // Parse-time: nothing was opened or loaded.
        assert!(!msg.contains("backend:"), "{args:?}: {msg}");
    }
    let dir = std::env::temp_dir();
    let out = run(
        env!("CARGO_BIN_EXE_text_gen"),
        &["--corpus", dir.to_str().unwrap()],
        &[],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("--corpus") && msg.contains("is a directory"),
        "{msg}"
    );
    assert_eq!(msg.matches("directory").count(), 1, "the cause once: {msg}");
    let out = run(env!("CARGO_BIN_EXE_mnist_rnn"), &["--hidden", "0"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn mirror_refuses_pixel_sequences_before_any_work() {
    for dataset in ["pixel", "permuted"] {
        let args = ["--mirror", "--dataset", dataset];
        let out = run(env!("CARGO_BIN_EXE_mnist_birnn"), &args, &[]);
        let msg = text(&out);
        assert!(!out.status.success(), "{dataset}: {msg}");
        assert!(
            msg.contains("--mirror needs images read by rows"),
            "{dataset}: {msg}"
        );
        assert!(!msg.contains("backend:"), "{dataset}: {msg}");
    }
}

/// A CPU run never opens the GPU driver, not even when resuming (burn-optim loads optimizer
/// state on Burn's default device, which would otherwise be wgpu in these binaries).
#[test]
fn a_flex_run_and_its_resume_probe_no_gpu() {
    let dir = std::env::temp_dir().join(format!("rnn-cli-resume-{}", std::process::id()));
    let out_dir = dir.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_sin_cos");
    let base = ["--backend", "flex", "--out", out_dir, "--quiet"];
    for (epochs, resume) in [("1", false), ("2", true)] {
        let mut args = base.to_vec();
        args.extend(["--epochs", epochs, "--windows", "40"]);
        if resume {
            args.push("--resume");
        }
        let mut cmd = Command::new(bin);
        cmd.args(&args)
            .env_remove("RNN_BACKEND")
            .env_remove("BURN_DEVICE")
            .env_remove("XDG_RUNTIME_DIR");
        let out = cmd.output().expect("example binary runs");
        let msg = text(&out);
        assert!(out.status.success(), "{msg}");
        for probe in ["XDG_RUNTIME_DIR", "Vulkan", "vulkan", "wgpu"] {
            assert!(!msg.contains(probe), "resume={resume}: {probe} in {msg}");
        }
        // The resumed run trains epoch 2 only.
        assert_eq!(msg.contains("epoch 1:"), !resume, "{msg}");
        assert!(msg.contains("epoch 2:") == resume, "{msg}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn valid_fraction_holds_out_training_items_and_reports_them_each_epoch() {
    let bin = env!("CARGO_BIN_EXE_dynamic_rnn");
    let args = [
        "--epochs",
        "2",
        "--quiet",
        "--train-samples",
        "200",
        "--valid-fraction",
        "0.2",
    ];
    let out = run(bin, &args, &[]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains("validation: 40 of 200 training items held out"),
        "{msg}"
    );
    assert!(msg.contains("| valid loss"), "{msg}");
    let mut keep = args.to_vec();
    keep.push("--keep-best");
    let out = run(bin, &keep, &[]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("kept the weights of epoch "), "{msg}");
    // Without the flag nothing is validated during training (the test set waits for the end).
    let out = run(bin, &args[..5], &[]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(!msg.contains("valid loss"), "{msg}");
    assert!(msg.contains("Testing accuracy"), "{msg}");
    for bad in ["0", "1", "-0.5", "x"] {
        let arg = format!("--valid-fraction={bad}");
        let out = run(bin, &[&arg], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
    }
}

#[test]
fn data_parallel_needs_a_gpu_backend_and_an_objective_without_carried_state() {
    // flex is one device: a clear refusal before any training.
    let out = run(
        env!("CARGO_BIN_EXE_dynamic_rnn"),
        &["--devices", "2", "--epochs", "1"],
        &[],
    );
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("--devices 2") && msg.contains("GPU backend"),
        "{msg}"
    );
    assert!(!msg.contains("epoch 1"), "refused before training: {msg}");
    // On wgpu (two lavapipe devices here), a batch-splitting objective trains...
    if std::env::var_os("RNN_TEST_SKIP_WGPU").is_none() {
        let out = run(
            env!("CARGO_BIN_EXE_dynamic_rnn"),
            &[
                "--backend",
                "wgpu",
                "--devices",
                "2",
                "--epochs",
                "1",
                "--train-samples",
                "256",
            ],
            &[],
        );
        let msg = text(&out);
        assert!(out.status.success(), "{msg}");
        assert!(msg.contains("data parallel on 2 devices"), "{msg}");
        assert!(msg.contains("Testing accuracy"), "{msg}");
        // ...and truncated BPTT (sin_cos carries its state) is refused with the reason.
        let out = run(
            env!("CARGO_BIN_EXE_sin_cos"),
            &["--backend", "wgpu", "--devices", "2", "--epochs", "1"],
            &[],
        );
        let msg = text(&out);
        assert!(!out.status.success(), "{msg}");
        assert!(msg.contains("carries state"), "{msg}");
    }
}
