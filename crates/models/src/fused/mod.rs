//! Fused recurrent kernels with a hand-written backward (feature `fused`, on by default).
//!
//! On the CPU backends compiled in (features `flex`, `ndarray`), one direction of one layer is
//! a single operation: one GEMM projects all steps' inputs, each step runs one recurrent GEMM
//! and one pass over the gates, and backward runs BPTT by hand with the weight gradients as
//! three large GEMMs. Autodiff sees one node instead of thousands of small ones. Elsewhere
//! (wgpu, CUDA, f16 tensors, LSTM with `proj_size`) layers run the composed reference path,
//! which stays selectable everywhere through [`Recurrence::Reference`].

mod gemm;
mod kernel;
mod math;
mod op;
mod packed;
mod parallel;
mod pool;

use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::{DType, Device, Tensor};

use crate::CellKind;
use crate::weights::CellWeights;
use kernel::{Dims, Schedule};
use op::{FusedRecurrence, RecurrentInputs, Spec};
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
        _ => false,
    }
}

/// One direction of one layer through the fused op.
///
/// Batch-major: `x: [batch, seq, input]`, `h`, `c: [batch, hidden]` → `([batch, seq, hidden],
/// h_n, c_n)`.
pub(crate) fn run_direction(
    kind: CellKind,
    cell: &CellWeights,
    x: Tensor<3>,
    h: Tensor<2>,
    c: Option<Tensor<2>>,
    lengths: Option<&[usize]>,
    reverse: bool,
) -> (Tensor<3>, Tensor<2>, Option<Tensor<2>>) {
    let [batch, seq, input] = x.dims();
    let [_, hidden] = h.dims();
    let device = x.device();
    let dims = Dims {
        kind,
        seq,
        batch,
        input,
        hidden,
    };
    let gh = dims.gates();
    let bias = cell.bias_ih.is_some() && cell.bias_hh.is_some();
    let vector = |b: &Option<burn::module::Param<Tensor<1>>>| match b {
        Some(b) => b.val(),
        None => Tensor::zeros([gh], &device),
    };
    let is_lstm = kind == CellKind::Lstm;
    let c0 = match c {
        Some(c) => c,
        None if is_lstm => Tensor::zeros([batch, hidden], &device),
        None => Tensor::zeros([1, 1], &device),
    };
    let spec = Spec {
        dims,
        schedule: Schedule {
            reverse,
            lengths: lengths.map(<[usize]>::to_vec),
        },
        bias,
    };
    let packed = <Dispatch as FusedRecurrence>::fused_recurrence(
        RecurrentInputs {
            x: x.into_dispatch(),
            w_ih: cell.weight_ih.val().into_dispatch(),
            w_hh: cell.weight_hh.val().into_dispatch(),
            b_ih: vector(&cell.bias_ih).into_dispatch(),
            b_hh: vector(&cell.bias_hh).into_dispatch(),
            h0: h.into_dispatch(),
            c0: c0.into_dispatch(),
        },
        spec,
    );
    let packed = Tensor::<1>::from_dispatch(packed);
    let out_len = seq * batch * hidden;
    let state_len = batch * hidden;
    let out = packed
        .clone()
        .narrow(0, 0, out_len)
        .reshape([batch, seq, hidden]);
    let h_n = packed
        .clone()
        .narrow(0, out_len, state_len)
        .reshape([batch, hidden]);
    let c_n = is_lstm.then(|| {
        packed
            .narrow(0, out_len + state_len, state_len)
            .reshape([batch, hidden])
    });
    (out, h_n, c_n)
}
