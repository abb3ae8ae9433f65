//! Mutation fuzzing of every parser that reads user files: IDX (raw and gzipped), character
//! corpora, and state dicts (`.safetensors` and `.pt`). Valid seed files are mutated —
//! truncation, bit flips, byte runs, huge declared sizes in headers, splices, re-gzipping of
//! corrupted content — and each parser must answer every case with `Ok` or a typed error:
//! zero panics, and a bounded heap high-water mark per case.
//!
//! `RNN_FUZZ_CASES` sets the cases per parser (default 2,000 for the test suite; the long run
//! recorded in the issue notes used 100,000). Seeded: a failure names the case to replay.
//!
//! Why not proptest/cargo-fuzz: cargo-fuzz needs nightly; the properties here are "never
//! panics, never over-allocates" over structured mutations of real files, which a seeded
//! mutation loop states directly.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rnn_datasets::{CharCorpus, MAX_IDX_BYTES, decode_idx};
use rnn_models::StateDict;

/// Counts live heap bytes and their high-water mark (this test binary runs one test).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; the counters are statistics only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The heap counters are process-wide: tests in this binary take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cases() -> usize {
    std::env::var("RNN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// A structured mutation of `seed`.
fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        match rng.random_range(0..7) {
            // Truncate.
            0 => v.truncate(rng.random_range(0..=v.len())),
            // Flip bits.
            1 => {
                for _ in 0..rng.random_range(1..=8) {
                    if !v.is_empty() {
                        let i = rng.random_range(0..v.len());
                        v[i] ^= 1 << rng.random_range(0..8);
                    }
                }
            }
            // Overwrite a 4-byte big- or little-endian word near the start with an extreme value.
            2 => {
                let extreme: u32 =
                    [u32::MAX, 4_000_000_000, 0x7fff_ffff, 0, 1, 65_536][rng.random_range(0..6)];
                let bytes = if rng.random_bool(0.5) {
                    extreme.to_be_bytes()
                } else {
                    extreme.to_le_bytes()
                };
                let at = rng.random_range(0..v.len().clamp(1, 64));
                for (k, b) in bytes.iter().enumerate() {
                    if let Some(slot) = v.get_mut(at + k) {
                        *slot = *b;
                    }
                }
            }
            // Insert random bytes.
            3 => {
                let at = rng.random_range(0..=v.len());
                let run: Vec<u8> = (0..rng.random_range(1..32)).map(|_| rng.random()).collect();
                v.splice(at..at, run);
            }
            // Delete a range.
            4 if !v.is_empty() => {
                let a = rng.random_range(0..v.len());
                let b = rng.random_range(a..=v.len().min(a + 64));
                v.drain(a..b);
            }
            // Duplicate a chunk (count/size mismatches).
            5 if !v.is_empty() => {
                let a = rng.random_range(0..v.len());
                let b = rng.random_range(a..=v.len());
                let chunk = v[a..b].to_vec();
                v.extend(chunk);
            }
            // Overwrite a byte with a digit or quote (aimed at JSON headers).
            _ => {
                if !v.is_empty() {
                    let i = rng.random_range(0..v.len().min(256));
                    v[i] = b"0123456789\"{}[],:9"[rng.random_range(0..18)];
                }
            }
        }
    }
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    e.write_all(bytes).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

/// Runs `parse` on `n` mutations of the seeds; panics name the parser and case. Returns how
/// many inputs were accepted (to show the mutations are not all trivially rejected).
fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    n: usize,
    heap_limit: usize,
    parse: impl Fn(Vec<u8>) -> bool,
) -> usize {
    let mut rng = StdRng::seed_from_u64(0x5eed ^ name.len() as u64);
    let mut accepted = 0;
    for case in 0..n {
        let seed = &seeds[case % seeds.len()];
        let input = mutate(&mut rng, seed);
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| parse(input.clone())));
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        match outcome {
            Ok(ok) => accepted += ok as usize,
            Err(_) => panic!(
                "{name}: case {case} panicked on a {}-byte input",
                input.len()
            ),
        }
        assert!(
            used <= heap_limit,
            "{name}: case {case} allocated {used} bytes for a {}-byte input",
            input.len()
        );
    }
    eprintln!("{name}: {n} cases, {accepted} accepted, 0 panics");
    accepted
}

fn idx_seed(dims: &[u32]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    let n: u32 = dims.iter().product();
    v.extend((0..n).map(|i| (i * 37 % 251) as u8));
    v
}

#[test]
fn parsers_survive_mutated_files() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = cases();
    let label = Path::new("<fuzz>");

    // IDX: raw and gzipped, 1–4 dimensions. Gzip output is capped at MAX_IDX_BYTES.
    let raw_seeds = vec![
        idx_seed(&[7]),
        idx_seed(&[3, 4]),
        idx_seed(&[2, 3, 4]),
        idx_seed(&[2, 2, 3, 2]),
    ];
    let mut idx_seeds = raw_seeds.clone();
    idx_seeds.extend(raw_seeds.iter().map(|s| gzip(s)));
    fuzz("idx", &idx_seeds, n, 2 * MAX_IDX_BYTES as usize, |bytes| {
        decode_idx(bytes, label).is_ok()
    });
    // Corrupt content inside a valid gzip stream.
    let mut rng = StdRng::seed_from_u64(7);
    let regz: Vec<Vec<u8>> = (0..64)
        .map(|_| gzip(&mutate(&mut rng, &raw_seeds[2])))
        .collect();
    fuzz(
        "idx-regzipped",
        &regz,
        n,
        2 * MAX_IDX_BYTES as usize,
        |bytes| decode_idx(bytes, label).is_ok(),
    );

    // Character corpora: multi-byte UTF-8 included.
    let text_seeds = vec![
        "Four score and seven years ago".as_bytes().to_vec(),
        "naïve café — ünïcödé ✓ 日本語".as_bytes().to_vec(),
    ];
    fuzz("corpus", &text_seeds, n, 1 << 20, |bytes| {
        CharCorpus::from_bytes(bytes, label).is_ok()
    });

    // State dicts: a real PyTorch-written .safetensors file and a real .pt file.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/models/tests/fixtures");
    let st = std::fs::read(fixtures.join("lstm_l2_bi.safetensors")).expect("fixture");
    let st_len = st.len();
    let accepted = fuzz("safetensors", &[st], n, 64 * st_len + (1 << 20), |bytes| {
        StateDict::from_safetensors_bytes(&bytes).is_ok()
    });
    assert!(accepted < n, "mutations must break some files");

    let pt = std::fs::read(fixtures.join("lstm_l2_bi.pt")).expect("fixture");
    let pt_len = pt.len();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fuzz.pt");
    fuzz("pytorch", &[pt], n, 64 * pt_len + (8 << 20), |bytes| {
        std::fs::write(&path, bytes).expect("write temp file");
        StateDict::from_pytorch(&path).is_ok()
    });
}

#[test]
fn a_header_claiming_four_billion_images_allocates_nothing_big() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bytes = vec![0, 0, 0x08, 3];
    for d in [4_000_000_000u32, 28, 28] {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend([0u8; 100]);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let err = decode_idx(bytes, Path::new("huge.idx")).expect_err("must be rejected");
    assert!(PEAK.load(Ordering::Relaxed) - base < 1 << 20);
    assert!(err.to_string().contains("huge.idx"), "{err}");
}
