//! The op under Burn's `fusion` feature, where the CubeCL backend is `Fusion<CubeBackend>`:
//! it runs [`CubeBackend`]'s kernels as they are. Its inputs are resolved (the stream's queued
//! operations run first) and its outputs enter the stream as fresh tensors, as
//! `float_from_data` does. Fusion has nothing to merge into the op, which is a few large kernels
//! already; the element-wise work around it still fuses.

use burn::backend::fusion::custom::{OperationIr, OperationOutput, StreamId};
use burn::backend::fusion::{Fusion, NoOp, get_client};
use burn::backend::ir::{BackendIr, InitOperationIr};
use burn::backend::tensor::FloatTensor;
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

use super::GpuSaved;
use crate::fused::op::{FusedKernels, InputGrads, RecurrentInputs, Spec};

type F = Fusion<CubeBackend>;

/// The device tensor behind a fusion tensor, once everything queued before it has run.
fn resolve(t: FloatTensor<F>) -> CubeTensor {
    t.client.clone().resolve_tensor_float::<CubeBackend>(t)
}

/// A computed device tensor as a fusion tensor.
fn register(t: CubeTensor) -> FloatTensor<F> {
    let client = get_client::<CubeBackend>(&t.device);
    let (shape, dtype) = (t.meta.shape().clone(), t.dtype);
    let handle = <CubeBackend as BackendIr>::float_tensor_handle(t);
    let init = InitOperationIr::create(shape, dtype, || client.register_tensor_handle(handle));
    client
        .register(
            StreamId::current(),
            OperationIr::Init(init),
            NoOp::<CubeBackend>::new(),
        )
        .output()
}

impl FusedKernels for F {
    type Saved = GpuSaved;

    fn forward(
        inputs: RecurrentInputs<Self>,
        spec: &Spec,
        save: bool,
    ) -> (FloatTensor<Self>, Option<Self::Saved>) {
        let (packed, saved) = CubeBackend::forward(inputs.map(resolve), spec, save);
        (register(packed), saved)
    }

    fn backward(
        saved: &Self::Saved,
        spec: &Spec,
        grad: FloatTensor<Self>,
        need_x: bool,
    ) -> InputGrads<Self> {
        CubeBackend::backward(saved, spec, resolve(grad), need_x).map(register)
    }
}
