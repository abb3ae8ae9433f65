//! How a layer runs on the GPU: which time loop and how the persistent one is tiled, where
//! its input projection runs and how backward sums the weight gradients — from the layer's
//! sizes, what the device grants ([`Grant`]), `RNN_GPU_LOOP`, `RNN_GPU_INPUT` and
//! `RNN_GPU_WEIGHT_GRADS`.

use cubecl::prelude::*;
use std::sync::OnceLock;

use super::Sizes;

/// How a time loop (forward or backward) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimeLoop {
    /// Per step, one batched recurrent matmul and one gate kernel ([`super::kernels`]).
    PerStep,
    /// One launch for every step ([`super::sequence`]).
    Persistent(Tiling),
}

/// How the persistent loops split the work: cube `(d, slice)` runs `rows` batch rows of
/// direction `d`; each unit owns `vecs` vectors of `width` hidden features of those rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tiling {
    /// Batch rows per cube.
    pub rows: usize,
    /// Features per vector: the width of every load ([`vector_width`]).
    pub width: usize,
    /// Vectors per unit.
    pub vecs: usize,
}

/// Where the persistent forward loop gets each step's input projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Projection {
    /// One batched matmul projects every step before the loop (cuDNN's shape: the whole
    /// device works on it).
    Matmul,
    /// The loop projects each step's inputs itself, next to the recurrent product.
    InLoop,
}

/// How backward sums the weight and bias gradients over every step and batch row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WeightGrads {
    /// Burn's matmuls over contiguous, direction-major copies of the gate gradients and the
    /// sources, and Burn's sums (cuDNN's shape: the whole device works on each).
    Matmul,
    /// One kernel per side ([`super::products`]) reading the time loop's layouts in place,
    /// each unit summing a register block of the output over the whole sequence.
    Kernel,
}

impl WeightGrads {
    /// The kernel on a device that is no card — lavapipe, whose loads run one lane at a time,
    /// so a unit's large register block beats Burn's matmul tiles there (case A's training
    /// step 257–271 ms against 407–414, dev profile, 2026-12-07) — and Burn's matmuls on a
    /// card, where the kernel's few units (one per block of the output, no split over the
    /// steps) would leave most cores idle; unless `forced` names one.
    pub fn for_device(grant: Grant, forced: Option<WeightGrads>) -> Self {
        forced.unwrap_or(if grant.card {
            WeightGrads::Matmul
        } else {
            WeightGrads::Kernel
        })
    }
}

impl Tiling {
    /// One cube per direction and slice, one unit per `vecs` vectors of features.
    pub fn grid(&self, z: &Sizes) -> (CubeCount, CubeDim) {
        let cubes = z.dirs * z.batch.div_ceil(self.rows);
        let units = z.hidden / (self.width * self.vecs);
        (
            CubeCount::Static(Sizes::u32(cubes), 1, 1),
            CubeDim::new_1d(Sizes::u32(units)),
        )
    }

    /// Where the forward loop projects the inputs: in the loop on a device that is no card
    /// (lavapipe: its few cores already run the loop's cubes, and the projection's matmul
    /// there cost as much as a third of the forward), by one matmul on a GPU, whose cores far
    /// outnumber the loop's cubes — unless `forced` names one. In the loop only where its
    /// inputs come in whole vectors and a cube's rows of inputs and states fit the shared
    /// memory.
    pub fn projection(&self, z: &Sizes, grant: Grant, forced: Option<Projection>) -> Projection {
        let fits = z.input.is_multiple_of(self.width)
            && 4 * self.rows * (z.hidden + z.input) <= grant.shared_bytes;
        let wanted = forced.unwrap_or(if grant.card {
            Projection::Matmul
        } else {
            Projection::InLoop
        });
        if fits { wanted } else { Projection::Matmul }
    }
}

/// What the device grants a persistent loop, from CubeCL's hardware properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grant {
    /// Shared memory per cube, in bytes.
    pub shared_bytes: usize,
    /// Units that run in lockstep (a warp, a SIMD group; llvmpipe: the CPU's vector lanes).
    pub plane: usize,
    /// Whether the device is a card (a GPU) rather than a CPU or a software rasterizer.
    pub card: bool,
}

impl Grant {
    /// The grant of the device `client` runs on.
    pub fn of(client: &cubecl::client::Client) -> Self {
        let properties = client.properties();
        let hardware = &properties.hardware;
        Self {
            shared_bytes: hardware.max_shared_memory_size,
            plane: hardware.plane_size_max.max(1) as usize,
            card: properties.identity.physical.is_some(),
        }
    }
}

/// Hidden sizes the persistent loops take.
const PERSISTENT_MAX_HIDDEN: usize = 256;

/// Batch rows per cube of the persistent loops unless `RNN_GPU_LOOP` names another count:
/// the best of 4, 8, 16 and 32 for case A's inference on lavapipe (few cubes for few cores;
/// a real GPU with many more cores than cubes may want fewer rows).
const PERSISTENT_ROWS: usize = 16;

/// Most vectors a unit owns: more multiply the registers each unit keeps (`G · rows · vecs`
/// accumulators forward) and the time the device's compiler takes.
const MAX_VECS: usize = 4;

/// Features per vector (the width of the kernels' loads): the widest of 4, 2 and 1 that
/// divides every size a kernel reads in vectors.
pub(super) fn vector_width(sizes: &[usize]) -> usize {
    [4, 2, 1]
        .into_iter()
        .find(|w| sizes.iter().all(|n| n.is_multiple_of(*w)))
        .unwrap_or(1)
}

/// Vectors per unit: the most (up to [`MAX_VECS`]) that leave the cube at least one plane of
/// units. Every unit reads each shared value the cube exchanges per step — the rows' `h`
/// forward, their gate gradients backward — so `vecs` vectors a unit divide those reads by
/// `vecs`; llvmpipe runs a plane's loads one lane at a time, and there four vectors a unit cut
/// case A's backward loop from 31 to 20 ms (forward 17 → 15; 2026-12-07).
fn unit_vectors(hidden: usize, width: usize, plane: usize) -> usize {
    let vectors = hidden / width;
    (1..=MAX_VECS)
        .rev()
        .find(|v| vectors.is_multiple_of(*v) && vectors / v >= plane)
        .unwrap_or(1)
}

/// A time loop `RNN_GPU_LOOP` asks for: `per-step`, `persistent`, `persistent:R` (`R ≥ 1`
/// rows per cube) or `persistent:R:V` (and at most `V ≥ 1` vectors per unit: the most that
/// divide the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Forced {
    PerStep,
    Persistent {
        rows: Option<usize>,
        vecs: Option<usize>,
    },
}

/// `RNN_GPU_LOOP`'s value ([`Forced`]); `None` for anything else.
fn parse_loop(value: &str) -> Option<Forced> {
    let count = |s: &str| s.parse().ok().filter(|n: &usize| *n >= 1);
    let mut parts = value.split(':');
    let forced = match parts.next()? {
        "per-step" => Forced::PerStep,
        "persistent" => Forced::Persistent {
            rows: None,
            vecs: None,
        },
        _ => return None,
    };
    let rest: Vec<&str> = parts.collect();
    match (forced, rest.as_slice()) {
        (_, []) => Some(forced),
        (Forced::Persistent { .. }, [rows]) => Some(Forced::Persistent {
            rows: Some(count(rows)?),
            vecs: None,
        }),
        (Forced::Persistent { .. }, [rows, vecs]) => Some(Forced::Persistent {
            rows: Some(count(rows)?),
            vecs: Some(count(vecs)?),
        }),
        _ => None,
    }
}

/// What `parse` makes of the environment variable `name`, read once per process into
/// `cell`; `None` where it is unset or `parse` refuses it.
fn from_env<T: Copy>(
    cell: &'static OnceLock<Option<T>>,
    name: &str,
    parse: fn(&str) -> Option<T>,
) -> Option<T> {
    *cell.get_or_init(|| std::env::var(name).ok().as_deref().and_then(parse))
}

/// `RNN_GPU_LOOP` ([`parse_loop`]) overrides [`TimeLoop::for_layer`]'s choice, for measuring
/// one loop against the other and for running the test suite through both; an unknown value
/// is ignored.
pub(super) fn forced_loop() -> Option<Forced> {
    static FORCED: OnceLock<Option<Forced>> = OnceLock::new();
    from_env(&FORCED, "RNN_GPU_LOOP", parse_loop)
}

/// `RNN_GPU_INPUT`'s value: `matmul` or `in-loop`; `None` for anything else.
fn parse_projection(value: &str) -> Option<Projection> {
    match value {
        "matmul" => Some(Projection::Matmul),
        "in-loop" => Some(Projection::InLoop),
        _ => None,
    }
}

/// `RNN_GPU_INPUT` ([`parse_projection`]) overrides [`Tiling::projection`]'s choice where
/// the persistent loop runs; an unknown value is ignored.
pub(super) fn forced_projection() -> Option<Projection> {
    static FORCED: OnceLock<Option<Projection>> = OnceLock::new();
    from_env(&FORCED, "RNN_GPU_INPUT", parse_projection)
}

/// `RNN_GPU_WEIGHT_GRADS`'s value: `matmul` or `kernel`; `None` for anything else.
fn parse_weight_grads(value: &str) -> Option<WeightGrads> {
    match value {
        "matmul" => Some(WeightGrads::Matmul),
        "kernel" => Some(WeightGrads::Kernel),
        _ => None,
    }
}

/// `RNN_GPU_WEIGHT_GRADS` ([`parse_weight_grads`]) overrides [`WeightGrads::for_device`]'s
/// choice; an unknown value is ignored.
pub(super) fn forced_weight_grads() -> Option<WeightGrads> {
    static FORCED: OnceLock<Option<WeightGrads>> = OnceLock::new();
    from_env(&FORCED, "RNN_GPU_WEIGHT_GRADS", parse_weight_grads)
}

impl TimeLoop {
    /// The loop for a layer of these sizes, forward or backward: the persistent one where the
    /// layer fits it (`H ≤ 256`) unless `forced` asks for the per-step one. Its rows
    /// ([`PERSISTENT_ROWS`] unless `forced` names a count) are capped by the batch and by the
    /// granted shared memory for `per_row` floats a row (forward: `H`, the state; backward:
    /// `G·H`, the gate gradients); its vectors per unit are [`unit_vectors`]' unless `forced`
    /// names a most.
    pub fn for_layer(z: &Sizes, forced: Option<Forced>, per_row: usize, grant: Grant) -> Self {
        let (rows, vecs) = match forced {
            Some(Forced::PerStep) => return Self::PerStep,
            Some(Forced::Persistent { rows, vecs }) => (rows, vecs),
            None => (None, None),
        };
        if z.hidden > PERSISTENT_MAX_HIDDEN {
            return Self::PerStep;
        }
        let fit = grant.shared_bytes / (4 * per_row.max(1));
        let width = vector_width(&[z.hidden]);
        let vectors = z.hidden / width;
        let vecs = match vecs {
            Some(most) => (1..=most)
                .rev()
                .find(|v| vectors.is_multiple_of(*v))
                .unwrap_or(1),
            None => unit_vectors(z.hidden, width, grant.plane),
        };
        Self::Persistent(Tiling {
            rows: rows.unwrap_or(PERSISTENT_ROWS).min(z.batch).min(fit).max(1),
            width,
            vecs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CellKind;

    fn sizes(batch: usize, hidden: usize) -> Sizes {
        Sizes {
            kind: CellKind::Lstm,
            dirs: 1,
            seq: 28,
            batch,
            input: 28,
            hidden,
        }
    }

    /// WebGPU's default shared memory and llvmpipe's plane on a 256-bit CPU.
    const GRANT: Grant = Grant {
        shared_bytes: 16 * 1024,
        plane: 8,
        card: false,
    };

    fn persistent(rows: usize, width: usize, vecs: usize) -> TimeLoop {
        TimeLoop::Persistent(Tiling { rows, width, vecs })
    }

    fn asked(rows: Option<usize>, vecs: Option<usize>) -> Option<Forced> {
        Some(Forced::Persistent { rows, vecs })
    }

    #[test]
    fn rnn_gpu_loop_values_parse_and_others_are_ignored() {
        assert_eq!(parse_loop("per-step"), Some(Forced::PerStep));
        assert_eq!(parse_loop("persistent"), asked(None, None));
        assert_eq!(parse_loop("persistent:2"), asked(Some(2), None));
        assert_eq!(parse_loop("persistent:2:4"), asked(Some(2), Some(4)));
        for bad in [
            "",
            "Persistent",
            "persistent:0",
            "persistent:x",
            "persistent:2:0",
            "persistent:2:4:1",
            "persistent:",
            "per-step:1",
            "rows",
        ] {
            assert_eq!(parse_loop(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_persistent_loop_runs_where_it_fits_unless_told_otherwise() {
        let a = sizes(64, 128);
        assert_eq!(
            TimeLoop::for_layer(&a, None, 128, GRANT),
            persistent(PERSISTENT_ROWS, 4, 4)
        );
        assert_eq!(
            TimeLoop::for_layer(&a, Some(Forced::PerStep), 128, GRANT),
            TimeLoop::PerStep
        );
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 257), None, 257, GRANT),
            TimeLoop::PerStep
        );
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 257), asked(Some(16), None), 257, GRANT),
            TimeLoop::PerStep
        );
        assert_eq!(
            TimeLoop::for_layer(&a, asked(Some(4), Some(2)), 128, GRANT),
            persistent(4, 4, 2)
        );
        // At most the vectors asked for, as many as divide the row (6 vectors here).
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 24), asked(Some(4), Some(4)), 24, GRANT),
            persistent(4, 4, 3)
        );
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 24), asked(Some(4), Some(2)), 24, GRANT),
            persistent(4, 4, 2)
        );
        assert_eq!(
            TimeLoop::for_layer(&sizes(5, 3), asked(Some(2), Some(4)), 3, GRANT),
            persistent(2, 1, 3)
        );
    }

    #[test]
    fn rows_are_capped_by_the_batch_and_the_shared_memory() {
        let asked = asked(Some(64), None);
        assert_eq!(
            TimeLoop::for_layer(&sizes(3, 128), asked, 128, GRANT),
            persistent(3, 4, 4)
        );
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 256), asked, 256, GRANT),
            persistent(16, 4, 4)
        );
        // Backward keeps 4H gate gradients a row: 8 rows of an LSTM(128) in 16 KiB, 16 in 32.
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 128), asked, 512, GRANT),
            persistent(8, 4, 4)
        );
        let more = Grant {
            shared_bytes: 32 * 1024,
            ..GRANT
        };
        assert_eq!(
            TimeLoop::for_layer(&sizes(64, 128), asked, 512, more),
            persistent(16, 4, 4)
        );
    }

    #[test]
    fn units_keep_at_least_one_plane() {
        // llvmpipe (8 lanes): 32 vectors a row → 8 units of 4 vectors.
        assert_eq!(unit_vectors(128, 4, 8), 4);
        // A 32-wide warp keeps one vector a unit at H = 128, two at 256.
        assert_eq!(unit_vectors(128, 4, 32), 1);
        assert_eq!(unit_vectors(256, 4, 32), 2);
        // 6 vectors a row (H = 12): 3 vectors a unit would leave 2 units.
        assert_eq!(unit_vectors(12, 2, 1), 3);
        assert_eq!(unit_vectors(12, 2, 8), 1);
        assert_eq!(unit_vectors(7, 1, 1), 1);
    }

    #[test]
    fn the_input_is_projected_in_the_loop_off_a_card_where_it_fits() {
        let a = sizes(64, 128);
        let tiling = Tiling {
            rows: 16,
            width: 4,
            vecs: 4,
        };
        let card = Grant {
            shared_bytes: 48 * 1024,
            plane: 32,
            card: true,
        };
        assert_eq!(tiling.projection(&a, GRANT, None), Projection::InLoop);
        assert_eq!(tiling.projection(&a, card, None), Projection::Matmul);
        assert_eq!(
            tiling.projection(&a, card, Some(Projection::InLoop)),
            Projection::InLoop
        );
        assert_eq!(
            tiling.projection(&a, GRANT, Some(Projection::Matmul)),
            Projection::Matmul
        );
        // Inputs not in whole vectors, or rows of inputs and states over the shared memory.
        let odd = Sizes { input: 27, ..a };
        assert_eq!(
            tiling.projection(&odd, GRANT, Some(Projection::InLoop)),
            Projection::Matmul
        );
        let wide = Sizes { input: 132, ..a };
        assert_eq!(tiling.projection(&wide, GRANT, None), Projection::Matmul);
        assert_eq!(
            tiling.projection(&wide, card, Some(Projection::InLoop)),
            Projection::InLoop
        );
        assert_eq!(parse_projection("in-loop"), Some(Projection::InLoop));
        assert_eq!(parse_projection("matmul"), Some(Projection::Matmul));
        assert_eq!(parse_projection("loop"), None);
    }

    #[test]
    fn the_weight_grads_kernel_runs_off_a_card_unless_told_otherwise() {
        let card = Grant {
            card: true,
            ..GRANT
        };
        assert_eq!(WeightGrads::for_device(GRANT, None), WeightGrads::Kernel);
        assert_eq!(WeightGrads::for_device(card, None), WeightGrads::Matmul);
        assert_eq!(
            WeightGrads::for_device(GRANT, Some(WeightGrads::Matmul)),
            WeightGrads::Matmul
        );
        assert_eq!(
            WeightGrads::for_device(card, Some(WeightGrads::Kernel)),
            WeightGrads::Kernel
        );
        assert_eq!(parse_weight_grads("kernel"), Some(WeightGrads::Kernel));
        assert_eq!(parse_weight_grads("matmul"), Some(WeightGrads::Matmul));
        assert_eq!(parse_weight_grads("Kernel"), None);
    }

    #[test]
    fn the_vector_width_divides_every_size() {
        assert_eq!(vector_width(&[128]), 4);
        assert_eq!(vector_width(&[6]), 2);
        assert_eq!(vector_width(&[7]), 1);
        assert_eq!(vector_width(&[128, 28]), 4);
        assert_eq!(vector_width(&[128, 6]), 2);
        assert_eq!(vector_width(&[8, 3]), 1);
    }
}
