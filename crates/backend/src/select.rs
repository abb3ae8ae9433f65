use burn::tensor::Device;

use crate::{Backend, BackendError};

/// A backend that has been opened: the devices to run on and a line describing them.
///
/// Obtained from [`Backend::select`]. Cloning is cheap; devices are handles.
#[derive(Debug, Clone)]
pub struct Selected {
    backend: Backend,
    device: Device,
    adapter: Option<String>,
}

impl Selected {
    /// The backend that was chosen.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The inference device (no autodiff): use it for evaluation and data.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The training device: the same hardware with autodiff enabled.
    pub fn training_device(&self) -> Device {
        self.device.clone().autodiff()
    }

    /// `count` inference devices of this backend for data-parallel training, the selected one
    /// first. GPU backends list what Burn enumerates (every GPU; on a machine without one,
    /// wgpu's default adapter and its CPU adapter are two devices on lavapipe).
    ///
    /// # Errors
    /// [`BackendError::TooFewDevices`] when the backend has fewer: the CPU backends are one
    /// device each (their threads already share every batch).
    pub fn devices(&self, count: usize) -> Result<Vec<Device>, BackendError> {
        let mut devices = vec![self.device.clone()];
        if count > 1 {
            for other in self.backend.other_devices(self.is_software_gpu()) {
                if devices.len() == count {
                    break;
                }
                if !devices.contains(&other) {
                    devices.push(other);
                }
            }
        }
        if devices.len() < count.max(1) {
            return Err(BackendError::TooFewDevices {
                name: self.backend.name(),
                asked: count,
                found: devices.len(),
            });
        }
        Ok(devices)
    }

    /// The wgpu adapter's name (e.g. `"llvmpipe (LLVM 15.0.6, 256 bits)"`), `None` elsewhere.
    pub fn adapter(&self) -> Option<&str> {
        self.adapter.as_deref()
    }

    /// Whether the device is a software rasterizer posing as a GPU (lavapipe / llvmpipe): it
    /// works, but it is slow and timings on it say nothing about a real GPU.
    pub fn is_software_gpu(&self) -> bool {
        self.adapter.as_deref().is_some_and(|a| {
            a.contains("llvmpipe") || a.contains("lavapipe") || a.contains("SwiftShader")
        })
    }

    /// One line for humans: backend, hardware and, for wgpu, the adapter.
    pub fn describe(&self) -> String {
        match (self.backend, &self.adapter) {
            (Backend::Flex, _) => "flex (CPU, pure Rust)".to_string(),
            (Backend::NdArray, _) => "ndarray (CPU)".to_string(),
            (Backend::Wgpu, Some(adapter)) if self.is_software_gpu() => {
                format!("wgpu on {adapter} (software Vulkan on the CPU: slow)")
            }
            (Backend::Wgpu, Some(adapter)) => format!("wgpu on {adapter}"),
            (Backend::Wgpu, None) => "wgpu".to_string(),
            (Backend::Cpu, _) => "cpu (CubeCL CPU runtime)".to_string(),
            (Backend::Cuda, _) => "cuda (device 0)".to_string(),
        }
    }
}

impl Backend {
    /// Makes this backend the one Burn falls back to when a library asks for its default
    /// device (`BURN_DEVICE`), unless the user already set that variable (to something).
    ///
    /// Burn's own default is the first GPU backend compiled in: a program built with wgpu that
    /// runs on flex would otherwise open Vulkan whenever Burn reaches for its default device —
    /// burn-optim does when it loads an optimizer's state (`--resume`) — probing the GPU
    /// driver on a CPU run and failing where none is installed.
    ///
    /// # Safety
    /// Sets a process environment variable: call it before the program starts other threads
    /// and before [`Backend::select`] opens a device (at the top of `main`, as the examples
    /// do), since another thread reading the environment at the same time is undefined
    /// behaviour on some platforms.
    pub unsafe fn make_process_default(self) {
        const BURN_DEVICE: &str = "BURN_DEVICE";
        if std::env::var_os(BURN_DEVICE).is_none_or(|v| v.is_empty()) {
            // SAFETY: the caller guarantees that no other thread touches the environment.
            unsafe { std::env::set_var(BURN_DEVICE, self.name()) };
        }
    }

    /// Opens the backend's default device.
    ///
    /// # Errors
    /// [`BackendError::NotCompiled`] when the backend's feature is off, and
    /// [`BackendError::Unavailable`] when its runtime cannot start here (e.g. wgpu with no
    /// adapter). Runtime panics during start-up are caught and reported the same way.
    pub fn select(self) -> Result<Selected, BackendError> {
        if !self.is_compiled() {
            return Err(BackendError::NotCompiled {
                name: self.name(),
                compiled: Backend::compiled_names(),
            });
        }
        let (device, adapter) = open(self).map_err(|reason| BackendError::Unavailable {
            name: self.name(),
            reason,
            compiled: Backend::compiled_names(),
        })?;
        Ok(Selected {
            backend: self,
            device,
            adapter,
        })
    }
}

/// Runs a start-up step, turning a panic inside the runtime into an error message.
#[allow(dead_code)] // unused when only the infallible CPU backends are compiled in
fn guarded<T>(step: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(result) => result,
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the runtime panicked while starting".to_string())),
    }
}

/// Checks that a lazily opened device really runs by computing one tiny tensor on it.
#[allow(dead_code)]
fn probe(device: Device) -> Result<Device, String> {
    guarded(|| {
        let x = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &device);
        let sum = x.sum().into_scalar::<f32>();
        if sum == 3.0 {
            Ok(device.clone())
        } else {
            Err(format!("a probe computation returned {sum} instead of 3"))
        }
    })
}

impl Backend {
    /// Devices of this backend besides the default one, in Burn's enumeration order (none for
    /// the CPU backends). The CPU adapter (lavapipe) counts only when the default device is a
    /// software GPU itself (`software`): real GPUs never get it mixed in.
    #[cfg_attr(not(feature = "wgpu"), allow(unused_variables))]
    fn other_devices(self, software: bool) -> Vec<Device> {
        match self {
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => {
                use burn::tensor::{DeviceKind, DeviceType};
                let mut all = Device::enumerate(DeviceType::Wgpu).into_vec();
                if software {
                    all.push(Device::wgpu(DeviceKind::Cpu));
                }
                all.into_iter()
                    .filter(|d| probe(d.clone()).is_ok())
                    .collect()
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda => {
                use burn::tensor::DeviceType;
                Device::enumerate(DeviceType::Cuda).into_vec()
            }
            _ => Vec::new(),
        }
    }
}

fn open(backend: Backend) -> Result<(Device, Option<String>), String> {
    match backend {
        #[cfg(feature = "flex")]
        Backend::Flex => Ok((Device::flex(), None)),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // still a supported backend of Burn 0.22
        Backend::NdArray => Ok((Device::ndarray(), None)),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => wgpu::open().map(|(d, a)| (d, Some(a))),
        #[cfg(feature = "cpu")]
        Backend::Cpu => probe(Device::cpu()).map(|d| (d, None)),
        #[cfg(feature = "cuda")]
        Backend::Cuda => probe(Device::cuda(0)).map(|d| (d, None)),
        #[allow(unreachable_patterns)] // every arm above may be compiled out
        _ => Err("not compiled in".to_string()),
    }
}

#[cfg(feature = "wgpu")]
mod wgpu {
    use std::sync::OnceLock;

    use burn::tensor::Device;

    /// Burn registers a wgpu runtime once per process and refuses a second `init`, so the first
    /// outcome (device or failure) is kept and handed to every later caller.
    static OPENED: OnceLock<Result<(Device, String), String>> = OnceLock::new();

    pub(super) fn open() -> Result<(Device, String), String> {
        OPENED
            .get_or_init(|| {
                super::guarded(|| {
                    let (device, setup) = Device::wgpu_options()
                        .init_with_setup()
                        .map_err(|e| format!("no usable wgpu adapter ({e})"))?;
                    let info = setup.adapter.get_info();
                    Ok((device, format!("{} ({:?})", info.name, info.backend)))
                })
            })
            .clone()
    }
}
