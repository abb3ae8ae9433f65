//! `--quick` end to end, so the benchmark never rots: every case runs for our layers and
//! burn-nn's on flex, the report files are written, and the numbers are sane.

use rnn_backend::Backend;
use rnn_bench::report::TorchStatus;
use rnn_bench::{Implementation, Mode, Options};

#[test]
fn quick_run_measures_every_case_and_writes_the_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        quick: true,
        filter: Vec::new(),
        backends: vec![Backend::Flex],
        reference: true,
        only: Vec::new(),
        python: Some("python3".into()),
        torch_script: concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench_torch.py").into(),
        threads: 1,
        out_dir: dir.path().join("bench"),
        modes: Vec::new(),
        peak_gflops: None,
        torch_device: "cpu".into(),
        rounds: 1,
    };
    let report = rnn_bench::run(&options).expect("quick bench runs");
    assert_eq!(report.cases.len(), 8);
    for case in &report.cases {
        for mode in [Mode::Train, Mode::Infer] {
            let has = |imp| {
                report
                    .measurements
                    .iter()
                    .any(|m| m.case == case.name && m.mode == mode && m.implementation == imp)
            };
            assert!(has(Implementation::Ours), "{} {mode:?}", case.name);
            assert!(has(Implementation::OursReference), "{} {mode:?}", case.name);
            // burn-nn has no plain RNN.
            assert_eq!(
                has(Implementation::BurnNn),
                case.name != "D",
                "{}",
                case.name
            );
        }
    }
    assert!(report.measurements.iter().all(|m| m.stats.median_ms > 0.0));
    assert!(report.gemm_peak_gflops > 0.0);
    let table = report.table();
    assert!(table.contains("| A | train | flex |"), "{table}");
    match &report.torch {
        TorchStatus::Ran(run) => assert_eq!(run.stock.len(), 16),
        TorchStatus::NotInstalled(why) => assert!(why.contains("pip install torch")),
        TorchStatus::Skipped => panic!("python was given"),
    }
    for file in ["bench.json", "bench.md", "bench.png"] {
        let path = options.out_dir.join(file);
        assert!(
            std::fs::metadata(&path)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_filter_that_matches_nothing_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        quick: true,
        filter: vec!["no-such-case".into()],
        backends: vec![Backend::Flex],
        reference: false,
        only: Vec::new(),
        python: None,
        torch_script: "unused".into(),
        threads: 1,
        out_dir: dir.path().to_path_buf(),
        modes: Vec::new(),
        peak_gflops: None,
        torch_device: "cpu".into(),
        rounds: 1,
    };
    let err = rnn_bench::run(&options).expect_err("nothing to run");
    assert!(err.to_string().contains("A-bi"), "{err}");
}
