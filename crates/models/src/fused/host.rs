//! [`FusedKernels`] for the CPU backends: the inputs are read into host memory once, the
//! recurrence runs on [`parallel::forward`] / [`parallel::backward`], and the results go back as
//! backend tensors.

// burn-ndarray is deprecated in Burn 0.22 but still a supported backend of this toolkit.
#![allow(deprecated)]

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorData, TensorMetadata};
use burn::tensor::DType;

use super::kernel::{Input, Params, Saved};
use super::op::{FusedKernels, InputGrads, RecurrentInputs, Role, Spec};
use super::parallel;

/// A CPU tensor's values as `f32`: borrowed from the backend's own buffer where it allows
/// (flex, a contiguous `f32` tensor), else copied out.
///
/// Why: for a tensor that other owners share (the parameters, the caller's input), Burn's
/// `into_data` copies the values twice (out of the shared buffer, then into an aligned one)
/// and `try_into_vec` a third time; on case D's training step those copies and the gradient's
/// were ≈ 3 % of the time under `perf`.
#[derive(Debug)]
enum HostValues {
    Copied(Vec<f32>),
    #[cfg(feature = "flex")]
    Flex(FloatTensor<burn::backend::Flex>),
}

impl Default for HostValues {
    fn default() -> Self {
        Self::Copied(Vec::new())
    }
}

impl std::ops::Deref for HostValues {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            Self::Copied(values) => values,
            #[cfg(feature = "flex")]
            Self::Flex(tensor) => tensor
                .as_slice::<f32>()
                .expect("kept only when contiguous f32 (`HostRead for Flex`)"),
        }
    }
}

/// How a CPU backend's tensors reach host memory.
trait HostRead: Backend {
    fn read(tensor: FloatTensor<Self>) -> HostValues {
        HostValues::Copied(copied::<Self>(tensor))
    }
}

#[cfg(feature = "flex")]
impl HostRead for burn::backend::Flex {
    fn read(tensor: FloatTensor<Self>) -> HostValues {
        if tensor.as_slice::<f32>().is_some() {
            HostValues::Flex(tensor)
        } else {
            HostValues::Copied(copied::<Self>(tensor))
        }
    }
}

#[cfg(feature = "ndarray")]
impl HostRead for burn::backend::NdArray {}

/// Reads a tensor of a CPU backend into host memory as `f32`.
fn copied<B: Backend>(tensor: FloatTensor<B>) -> Vec<f32> {
    // Reading a CPU backend's buffer completes synchronously and cannot fail for a live tensor;
    // a failure here is a broken backend, not a user error.
    let data = burn::backend::try_read_sync(B::float_into_data(tensor))
        .expect("a CPU tensor reads synchronously")
        .expect("a CPU tensor reads without error");
    let data = if data.dtype() == DType::F32 {
        data
    } else {
        data.convert::<f32>()
    };
    data.try_into_vec::<f32>()
        .expect("converted to f32 just above")
}

fn to_backend<B: Backend>(values: Vec<f32>, shape: &[usize], device: &B::Device) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(values, shape.to_vec()), device)
}

/// The op's inputs in host memory ([`HostValues`]); absent ones stay empty.
#[derive(Debug, Default)]
struct HostInputs {
    x: HostValues,
    w_ih: HostValues,
    w_hh: HostValues,
    b_ih: Option<HostValues>,
    b_hh: Option<HostValues>,
    h0: HostValues,
    /// LSTM only.
    c0: HostValues,
}

impl HostInputs {
    fn read<B: HostRead>(inputs: RecurrentInputs<B>) -> Self {
        let mut host_inputs = Self::default();
        for (role, tensor) in inputs.into_parts() {
            let values = B::read(tensor);
            match role {
                Role::X => host_inputs.x = values,
                Role::WIh => host_inputs.w_ih = values,
                Role::WHh => host_inputs.w_hh = values,
                Role::BIh => host_inputs.b_ih = Some(values),
                Role::BHh => host_inputs.b_hh = Some(values),
                Role::H0 => host_inputs.h0 = values,
                Role::C0 => host_inputs.c0 = values,
            }
        }
        host_inputs
    }

    fn params(&self) -> Params<'_> {
        Params {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: self.b_ih.as_deref(),
            b_hh: self.b_hh.as_deref(),
        }
    }
}

/// What a CPU backend's forward keeps for backward: the inputs and, per direction, the
/// activations.
#[derive(Debug)]
pub(crate) struct HostSaved<D> {
    inputs: HostInputs,
    saved: Vec<Saved>,
    device: D,
}

/// Runs `work` on one of Rayon's threads (at once when the caller is one).
///
/// Why: each parallel region entered from a thread outside the pool hands the work to a worker
/// and back through the OS (the caller sleeps until a worker wakes it), once per region: four
/// to six in a training step. From a worker, a region is a join that the other workers, still
/// spinning from the last one, pick up.
fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

fn forward<B: HostRead>(
    inputs: RecurrentInputs<B>,
    spec: &Spec,
    save: bool,
) -> (FloatTensor<B>, Option<HostSaved<B::Device>>) {
    let device = inputs.x.device();
    let host_inputs = HostInputs::read::<B>(inputs);
    let layer = spec.layer();
    let (packed, saved) = on_pool(|| {
        parallel::forward(
            layer.default_split(),
            layer,
            &host_inputs.params(),
            &host_inputs.x,
            &host_inputs.h0,
            &host_inputs.c0,
            save,
        )
    });
    let packed = to_backend::<B>(packed, &[spec.layout().len()], &device);
    let saved = saved.map(|saved| HostSaved {
        inputs: host_inputs,
        saved,
        device,
    });
    (packed, saved)
}

fn backward<B: HostRead>(
    state: &HostSaved<B::Device>,
    spec: &Spec,
    grad: FloatTensor<B>,
    need_x: bool,
) -> InputGrads<B> {
    let (d, dirs) = (spec.dims, spec.directions);
    let packed = B::read(grad);
    let (d_out, d_hn, d_cn) = spec.layout().split(&packed);
    let layer = spec.layer();
    let g = on_pool(|| {
        parallel::backward(
            layer.default_split(),
            layer,
            need_x,
            &state.inputs.params(),
            Input::new(&state.inputs.x, &d),
            &state.saved,
            d_out,
            d_hn,
            d_cn,
        )
    });
    let gh = dirs * d.gate_width();
    let state_shape = [dirs, d.batch, d.hidden];
    let device = &state.device;
    let tensor = |values: Vec<f32>, shape: &[usize]| to_backend::<B>(values, shape, device);
    let has_biases = state.inputs.b_ih.is_some();
    InputGrads {
        x: need_x.then(|| tensor(g.x, &[d.batch, d.seq, d.input])),
        w_ih: tensor(g.w_ih, &[gh, d.input]),
        w_hh: tensor(g.w_hh, &[gh, d.hidden]),
        biases: has_biases.then(|| (tensor(g.b_ih, &[gh]), tensor(g.b_hh, &[gh]))),
        h0: tensor(g.h0, &state_shape),
        c0: d.is_lstm().then(|| tensor(g.c0, &state_shape)),
    }
}

/// [`FusedKernels::packed_grad`] in one pass: zeros, the part's values (read in place where
/// [`HostRead`] allows), zeros.
///
/// Why: Burn's slice backward zero-fills a buffer of the whole packed length, copies it once
/// more to align it, then assigns the part: ≈ 4 % of case D's training samples under `perf`,
/// on the thread the others wait for.
fn packed_grad<B: HostRead>(grad: FloatTensor<B>, start: usize, total: usize) -> FloatTensor<B> {
    let device = grad.device();
    let part = B::read(grad);
    let mut values = Vec::with_capacity(total);
    values.resize(start, 0.0);
    values.extend_from_slice(&part);
    values.resize(total, 0.0);
    to_backend::<B>(values, &[total], &device)
}

/// The CPU backends' kernels.
macro_rules! host_kernels {
    ($backend:ty) => {
        impl FusedKernels for $backend {
            type Saved = HostSaved<burn::backend::tensor::Device<$backend>>;

            fn forward(
                inputs: RecurrentInputs<Self>,
                spec: &Spec,
                save: bool,
            ) -> (FloatTensor<Self>, Option<Self::Saved>) {
                forward::<Self>(inputs, spec, save)
            }

            fn backward(
                saved: &Self::Saved,
                spec: &Spec,
                grad: FloatTensor<Self>,
                need_x: bool,
            ) -> InputGrads<Self> {
                backward::<Self>(saved, spec, grad, need_x)
            }

            fn packed_grad(
                grad: FloatTensor<Self>,
                start: usize,
                total: usize,
            ) -> FloatTensor<Self> {
                packed_grad::<Self>(grad, start, total)
            }
        }
    };
}

#[cfg(feature = "flex")]
host_kernels!(burn::backend::Flex);
#[cfg(feature = "ndarray")]
host_kernels!(burn::backend::NdArray);

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::backend::ops::FloatTensorOps;

    fn flex(values: Vec<f32>, shape: &[usize]) -> FloatTensor<Flex> {
        to_backend::<Flex>(values, shape, &Default::default())
    }

    #[test]
    fn flex_tensors_are_read_in_place_when_contiguous_and_copied_otherwise() {
        let values: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let contiguous = <Flex as HostRead>::read(flex(values.clone(), &[2, 3]));
        assert!(matches!(contiguous, HostValues::Flex(_)));
        assert_eq!(&*contiguous, values.as_slice());

        // The transpose of [[0, 1, 2], [3, 4, 5]] is a strided view: read as a copy, in its
        // logical (row-major) order.
        let transposed = Flex::float_transpose(flex(values, &[2, 3]));
        let read = <Flex as HostRead>::read(transposed);
        assert!(matches!(read, HostValues::Copied(_)));
        assert_eq!(&*read, &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn a_parts_gradient_is_packed_between_zeros() {
        let grad = flex(vec![1.0, 2.0, 3.0], &[3]);
        let packed = <Flex as FusedKernels>::packed_grad(grad, 2, 7);
        assert_eq!(copied::<Flex>(packed), [0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0]);

        // A strided gradient lands in its logical order; a part may end the buffer.
        let values: Vec<f32> = (1..7).map(|v| v as f32).collect();
        let grad = Flex::float_transpose(flex(values, &[2, 3]));
        let packed = <Flex as FusedKernels>::packed_grad(grad, 1, 7);
        assert_eq!(copied::<Flex>(packed), [0.0, 1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
