//! `cargo xtask ci`: the gates every change passes, in the order that fails fastest.

use std::path::Path;
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
        "rnn-models",
        "--no-default-features",
        "--features",
        "wgpu",
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

/// Narrower instruction sets the fused CPU kernels fall back to (`RNN_CPU_ISA`).
const FALLBACK_ISAS: &[&str] = &["avx2", "portable"];

/// rnn-models' test binaries that run every layer through the fused kernels.
const LAYER_TESTS: &[&str] = &["parity", "engines", "finite_diff"];

/// Runs fmt, clippy, the tests and the stand-alone checks. Extra arguments go to `cargo test` (e.g. `-- --nocapture`).
pub fn run(test_args: &[String]) -> Result<(), String> {
    let start = Instant::now();
    vulkan_driver()?;

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

    // The fused CPU kernels pick the widest instruction set the CPU has; run the layer tests
    // and the unit tests (the kernels' own, whose results must not depend on which build ran)
    // again through each narrower build so the fallbacks stay covered (same build, no rebuild).
    for isa in FALLBACK_ISAS {
        let mut test = cargo();
        test.args(["test", "--workspace", "--lib"])
            .args(LAYER_TESTS.iter().flat_map(|t| ["--test", t]))
            .env("RNN_CPU_ISA", isa);
        run_step(
            &format!("unit and layer tests with RNN_CPU_ISA={isa}"),
            test,
        )?;
    }

    // Layers split by batch rows unless the batch is too small for the threads; run the layer
    // tests again split by hidden units. One test at a time: a unit-split call runs only when
    // no other is running, and concurrent tests would fall back to rows.
    let mut test = cargo();
    test.args(["test", "--workspace"])
        .args(LAYER_TESTS.iter().flat_map(|t| ["--test", t]))
        .args(["--", "--test-threads=1"])
        .env("RNN_CPU_SPLIT", "units");
    run_step("layer tests with RNN_CPU_SPLIT=units", test)?;

    // On wgpu the time loops run in one launch each (persistent) where the layer fits, and on
    // lavapipe the persistent forward projects the inputs itself and backward sums the weight
    // gradients in its own kernel; run the layer tests again through the per-step loops, and
    // through the persistent ones with a GPU's choices — the projection and the weight
    // gradients as matmuls — and two batch rows per cube, so that odd batches leave a cube
    // half full, and up to four vectors of features per unit (the tests' small layers
    // otherwise get one, as a GPU would).
    let gpu_products = [
        ("RNN_GPU_INPUT", "matmul"),
        ("RNN_GPU_WEIGHT_GRADS", "matmul"),
    ];
    for (time_loop, products) in [("per-step", &[][..]), ("persistent:2:4", &gpu_products[..])] {
        let mut test = cargo();
        test.args(["test", "--workspace"])
            .args(LAYER_TESTS.iter().flat_map(|t| ["--test", t]))
            .env("RNN_GPU_LOOP", time_loop);
        let mut step = format!("layer tests with RNN_GPU_LOOP={time_loop}");
        for (name, value) in products {
            test.env(name, value);
            step += &format!(" {name}={value}");
        }
        run_step(&step, test)?;
    }

    // Burn's `fusion` feature turns the CubeCL backend into `Fusion<CubeBackend>` for the whole
    // build; run the layer tests through the fused op under it (a second build of Burn). The
    // `ndarray` feature because the tests' devices include ndarray, whose kernels it enables.
    let mut test = cargo();
    test.args(["test", "-p", "rnn-models", "--features", "fusion,ndarray"])
        .args(LAYER_TESTS.iter().flat_map(|t| ["--test", t]));
    run_step("layer tests under Burn's fusion", test)?;

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

/// Where the Vulkan loader looks for driver manifests (ICDs) on Linux.
const ICD_DIRS: &[&str] = &[
    "/usr/share/vulkan/icd.d",
    "/usr/local/share/vulkan/icd.d",
    "/etc/vulkan/icd.d",
];

/// Where distributions put the Vulkan loader itself.
const LOADER_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libvulkan.so.1",
    "/usr/lib/aarch64-linux-gnu/libvulkan.so.1",
    "/usr/lib64/libvulkan.so.1",
    "/usr/lib/libvulkan.so.1",
];

/// The wgpu tests need a Vulkan loader and at least one driver (lavapipe runs on any CPU).
/// Checked before anything builds, so a missing package is named in the first second rather
/// than as an adapter error after the build. `VK_ICD_FILENAMES` / `VK_DRIVER_FILES` (a driver
/// set by hand) skip the manifest search; other systems than Linux are not checked.
fn vulkan_driver() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Ok(());
    }
    let driver_by_env = ["VK_ICD_FILENAMES", "VK_DRIVER_FILES"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    check_vulkan(LOADER_PATHS, ICD_DIRS, driver_by_env)
}

/// The check itself, over the given places: a loader among `loaders` and a manifest in one of
/// `icd_dirs` (or a driver named by the environment).
fn check_vulkan(loaders: &[&str], icd_dirs: &[&str], driver_by_env: bool) -> Result<(), String> {
    let loader = loaders.iter().any(|p| Path::new(p).exists());
    let driver = driver_by_env || icd_dirs.iter().any(|dir| has_manifest(Path::new(dir)));
    let missing = match (loader, driver) {
        (true, true) => return Ok(()),
        (false, false) => "neither the Vulkan loader (libvulkan.so.1) nor a Vulkan driver".into(),
        (false, true) => "no Vulkan loader (libvulkan.so.1)".into(),
        (true, false) => format!("no Vulkan driver manifest in {}", icd_dirs.join(", ")),
    };
    Err(format!(
        "the wgpu tests need Vulkan, and this machine has {missing}.\n\
         Install the CPU driver (lavapipe) and the loader, then run `cargo xtask ci` again:\n\
         \n    sudo apt-get install -y mesa-vulkan-drivers libvulkan1\n"
    ))
}

/// Whether `dir` holds a driver manifest (`*.json`).
fn has_manifest(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|ext| ext == "json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_vulkan_driver_names_the_packages_to_install() {
        let dir = scratch("icd");
        let loader = dir.join("libvulkan.so.1");
        std::fs::write(&loader, b"").unwrap();
        let (loader, icd) = (loader.to_str().unwrap(), dir.to_str().unwrap());
        // A loader but no manifest yet.
        let err = check_vulkan(&[loader], &[icd], false).unwrap_err();
        assert!(err.contains("no Vulkan driver manifest"), "{err}");
        assert!(
            err.contains("apt-get install -y mesa-vulkan-drivers libvulkan1"),
            "{err}"
        );
        // Neither.
        let err = check_vulkan(&["/nonexistent/libvulkan.so.1"], &[icd], false).unwrap_err();
        assert!(err.contains("neither"), "{err}");
        // A driver named by the environment stands in for the manifest.
        assert!(check_vulkan(&[loader], &[icd], true).is_ok());
        // With a manifest, all is there.
        std::fs::write(dir.join("lvp_icd.x86_64.json"), b"{}").unwrap();
        assert!(check_vulkan(&[loader], &[icd], false).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
