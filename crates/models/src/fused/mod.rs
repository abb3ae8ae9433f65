//! Fused recurrent kernels with a hand-written backward (feature `fused`, on by default).
//!
//! On the backends compiled in — the CPU backends (features `flex`, `ndarray`) and the CubeCL
//! GPU backends (features `wgpu`, `cuda`) — a whole layer, both directions of a bidirectional
//! one, is a single operation: one GEMM projects all steps' inputs, each step runs one
//! recurrent GEMM and one pass over the gates, and backward runs BPTT by hand with the input
//! and weight gradients as large GEMMs over the whole sequence. Autodiff sees one node instead
//! of thousands of small ones. Elsewhere (other backends, f16 tensors, LSTM with `proj_size`)
//! layers run the composed reference path, which stays selectable everywhere through
//! [`Engine::Reference`](crate::Engine::Reference).
//!
//! - [`op`]: the Burn operation (backend extension), its autodiff node, and [`op::FusedKernels`],
//!   what each backend implements
//! - [`host`]: the CPU backends' implementation, on host buffers
//! - `gpu`: the CubeCL implementation, on the device (features `wgpu`, `cuda`)
//! - [`parallel`]: one layer over the whole batch — big GEMMs, parallel time loops
//! - [`kernel`]: the time loops of one direction over a slice of the batch
//! - [`units`]: the time loops split by hidden units, threads meeting once per step
//! - [`layout`]: how the op packs its outputs into one tensor
//! - [`packed`]: the packed micro-kernels: per-step GEMMs against weights packed once per call,
//!   and large products blocked as in BLIS
//! - [`gemm`]: the whole-batch GEMMs on strided views, split across threads (the `gemm` crate
//!   where the CPU lacks AVX2)
//! - [`cpu`]: instruction-set detection
//! - [`math`]: vectorizable `exp`, sigmoid, tanh
//! - [`pool`]: scratch buffers reused between calls

// The CPU kernels are compiled with the feature `fused` alone too (the op's description,
// `Dims` and `Layer`, lives there), but only a CPU backend (`flex`, `ndarray`) runs them.
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
mod cpu;
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
mod gemm;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu;
#[cfg_attr(
    not(any(feature = "flex", feature = "ndarray")),
    allow(dead_code, unused_imports, unused_macros)
)]
mod host;
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
mod kernel;
mod layout;
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
mod math;
mod op;
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
mod packed;
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
mod parallel;
mod pool;
#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
mod units;

use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::{DType, Device, Tensor};

use crate::CellKind;
use crate::stack::{LayerInput, LayerOutput};
use kernel::Dims;
use op::{Biases, FusedRecurrence, InitialCell, RecurrentInputs, Spec};
pub(crate) use packed::serial_gflops as packed_gemm_gflops;
pub(crate) use pool::release as release_scratch_memory;

/// Whether the fused kernels serve tensors of this device and dtype.
pub(crate) fn available(device: &Device, dtype: DType) -> bool {
    if dtype != DType::F32 {
        return false;
    }
    let device = device.clone().without_autodiff();
    match device.as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        DispatchDevice::NdArray(_) => true,
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        DispatchDevice::Cube(device) => matches!(
            device.runtime(),
            burn::backend::RuntimeId::Wgpu | burn::backend::RuntimeId::Cuda
        ),
        _ => false,
    }
}

/// One layer — both directions when `cells` holds two — through the fused op.
///
/// Batch-major: `x: [batch, seq, input]`, `h`, `c: [D, batch, hidden]` → `output: [batch, seq,
/// D·hidden]` (the reverse direction's features second), `h_n`, `c_n: [D, batch, hidden]`.
pub(crate) fn run_layer(
    kind: CellKind,
    input: LayerInput<'_>,
    lengths: Option<&[usize]>,
) -> LayerOutput {
    let LayerInput { cells, x, h, c } = input;
    let [batch, seq, input] = x.dims();
    let [directions, _, hidden] = h.dims();
    let dims = Dims {
        kind,
        seq,
        batch,
        input,
        hidden,
    };
    // The directions' weights stacked along the first axis (a copy of the weights per call,
    // small next to the recurrence; autodiff splits the gradient back).
    fn stacked<const D: usize>(mut parts: Vec<Tensor<D>>) -> Tensor<D> {
        if parts.len() == 1 {
            parts.swap_remove(0)
        } else {
            Tensor::cat(parts, 0)
        }
    }
    // A stack's cells all have biases or none do.
    let biases = match cells
        .iter()
        .map(|cell| Some((cell.bias_ih.as_ref()?.val(), cell.bias_hh.as_ref()?.val())))
        .collect::<Option<Vec<_>>>()
    {
        Some(pairs) => {
            let (b_ih, b_hh): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
            Biases::Both(stacked(b_ih).into_dispatch(), stacked(b_hh).into_dispatch())
        }
        None => Biases::Absent,
    };
    let c0 = match c {
        Some(c) => InitialCell::Lstm(c.into_dispatch()),
        None => InitialCell::Absent,
    };
    let spec = Spec {
        dims,
        lengths: lengths.map(<[usize]>::to_vec),
        directions,
    };
    let layout = spec.layout();
    let packed = <Dispatch as FusedRecurrence>::fused_recurrence(
        RecurrentInputs {
            x: x.into_dispatch(),
            w_ih: stacked(cells.iter().map(|c| c.weight_ih.val()).collect()).into_dispatch(),
            w_hh: stacked(cells.iter().map(|c| c.weight_hh.val()).collect()).into_dispatch(),
            biases,
            h0: h.into_dispatch(),
            c0,
        },
        spec,
    );
    let part = |range: std::ops::Range<usize>| {
        Tensor::<1>::from_dispatch(<Dispatch as FusedRecurrence>::packed_part(
            packed.clone(),
            range.start,
            range.len(),
        ))
    };
    let state = [directions, batch, hidden];
    LayerOutput {
        output: part(layout.out()).reshape([batch, seq, directions * hidden]),
        h_n: part(layout.h_n()).reshape(state),
        c_n: layout.c_n().map(|range| part(range).reshape(state)),
    }
}
