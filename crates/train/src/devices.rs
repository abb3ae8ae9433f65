//! The devices [`crate::fit`] trains on: one, or several for data parallelism.
//!
//! With several, every batch is split into contiguous shards, one per device (sizes differing
//! by at most one item; a batch smaller than the device count leaves the last devices idle).
//! Each device runs the model on its shard — forward and backward — and the shards' gradients,
//! each weighted by its share of the batch, are gathered on the first device and summed with
//! burn-optim's `GradientsAccumulator`: the optimizer steps once on exactly the gradient of the
//! whole batch's mean loss, so `k` devices with batch `B` take the same steps as one device with
//! batch `B` (up to float rounding). The optimizer state, the checkpoints and validation live on
//! the first device.
//!
//! Why not Burn's collectives (`burn::tensor::distributed`): in Burn 0.22.1 only CUDA with NCCL
//! implements `all_reduce`; on wgpu, the CubeCL CPU runtime, flex and ndarray it panics, so a
//! training loop built on it could run on none of the machines this toolkit is tested on. The
//! gradients here travel through Burn's `to_device` (through the host between GPUs without a
//! direct transport).

use burn::tensor::Device;

use crate::TrainError;

/// One training device or several (data parallel). Build it from a `&Device`, a slice or a
/// `Vec` of devices; every device gets autodiff if it lacks it.
#[derive(Debug, Clone)]
pub struct Devices(Vec<Device>);

impl Devices {
    /// The devices, checked: at least one, all of one backend.
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`] for an empty list or devices of different backends.
    pub fn new(devices: Vec<Device>) -> Result<Self, TrainError> {
        let Some(first) = devices.first() else {
            return Err(TrainError::InvalidConfig {
                field: "devices",
                value: "none".into(),
                expected: "at least one device",
            });
        };
        let kind = backend_of(first);
        if let Some(other) = devices.iter().find(|d| backend_of(d) != kind) {
            return Err(TrainError::InvalidConfig {
                field: "devices",
                value: format!("{first:?} and {other:?}"),
                expected: "devices of one backend",
            });
        }
        Ok(Self(
            devices
                .into_iter()
                .map(|d| if d.is_autodiff() { d } else { d.autodiff() })
                .collect(),
        ))
    }

    /// The training devices (with autodiff), the first holding the model.
    pub fn as_slice(&self) -> &[Device] {
        &self.0
    }

    /// The device that holds the model, the optimizer state and validation.
    pub fn main(&self) -> &Device {
        &self.0[0]
    }

    /// How many devices share each batch.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: there is at least one device.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The backend a device belongs to: the variant of its dispatch device.
fn backend_of(device: &Device) -> std::mem::Discriminant<burn::backend::DispatchDevice> {
    std::mem::discriminant(device.clone().without_autodiff().as_dispatch())
}

impl From<&Device> for Devices {
    fn from(device: &Device) -> Self {
        Self(vec![if device.is_autodiff() {
            device.clone()
        } else {
            device.clone().autodiff()
        }])
    }
}

impl From<Device> for Devices {
    fn from(device: Device) -> Self {
        Self::from(&device)
    }
}

/// Splits `batch` into `parts` contiguous shards whose sizes differ by at most one; empty
/// shards (a batch smaller than `parts`) are left out.
pub(crate) fn shards(batch: &[usize], parts: usize) -> Vec<&[usize]> {
    let parts = parts.max(1);
    let (base, extra) = (batch.len() / parts, batch.len() % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let len = base + usize::from(p < extra);
        if len > 0 {
            out.push(&batch[start..start + len]);
        }
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order_with_sizes_one_apart() {
        let batch: Vec<usize> = (0..10).collect();
        let s = shards(&batch, 3);
        assert_eq!(s, vec![&batch[0..4], &batch[4..7], &batch[7..10]]);
        assert_eq!(shards(&batch, 1), vec![&batch[..]]);
        // Fewer items than devices: the idle devices get nothing.
        assert_eq!(shards(&batch[..2], 4), vec![&batch[0..1], &batch[1..2]]);
    }

    #[test]
    fn an_empty_or_mixed_device_list_is_rejected() {
        assert!(matches!(
            Devices::new(vec![]),
            Err(TrainError::InvalidConfig {
                field: "devices",
                ..
            })
        ));
        let two = Devices::new(vec![Device::flex(), Device::flex()]).unwrap();
        assert_eq!(two.len(), 2);
        assert!(two.main().is_autodiff());
    }
}
