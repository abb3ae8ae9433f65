//! PyTorch `state_dict` interchange: PyTorch's parameter names and layout
//! (`weight_ih_l{k}[_reverse]`, …), loading from `.safetensors` and `.pt` files, exporting.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::Param;
use burn::tensor::{Gradients, Tensor, TensorData};

use crate::ModelError;
use crate::cell::Cell;
use crate::kind::LayerKind;
use crate::layer::Layer;
use crate::stack::Stack;
use crate::weights::CellWeights;

/// Host-side named tensors, as in a PyTorch `state_dict`: `f32` values with their shapes.
///
/// Keys are PyTorch's (`weight_ih_l0`, `bias_hh_l1_reverse`, …), optionally under a module
/// prefix (`encoder.weight_ih_l0`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    entries: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an entry. `values.len()` must equal the product of `shape`.
    ///
    /// # Errors
    /// [`ModelError::KeyShape`] when the value count does not match the shape.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        shape: Vec<usize>,
        values: Vec<f32>,
    ) -> Result<(), ModelError> {
        let key = key.into();
        if shape.iter().product::<usize>() != values.len() {
            return Err(ModelError::KeyShape {
                key,
                expected: shape,
                got: vec![values.len()],
            });
        }
        self.entries.insert(key, (shape, values));
        Ok(())
    }

    /// The shape and values stored under `key`.
    pub fn get(&self, key: &str) -> Option<(&[usize], &[f32])> {
        self.entries
            .get(key)
            .map(|(s, v)| (s.as_slice(), v.as_slice()))
    }

    /// All keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The same entries with `prefix` put in front of every key (`"lstm."`).
    pub fn with_prefix(self, prefix: &str) -> Self {
        Self {
            entries: self
                .entries
                .into_iter()
                .map(|(k, v)| (format!("{prefix}{k}"), v))
                .collect(),
        }
    }

    fn put_data(&mut self, key: String, data: TensorData) {
        let shape = data.shape().to_vec();
        // Parameters are f32 by construction; a failed conversion leaves an empty entry that
        // any later load reports as a shape mismatch rather than panicking here.
        let values = data
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        self.entries.insert(key, (shape, values));
    }
}

/// Layers and cells that speak PyTorch's `state_dict`.
pub trait PytorchWeights: Sized {
    /// The parameters under PyTorch's names (no prefix).
    fn state_dict(&self) -> StateDict;

    /// The parameters' gradients from a backward pass, under PyTorch's names: what
    /// `{n: p.grad for n, p in layer.named_parameters()}` gives in PyTorch. Parameters
    /// without a gradient are left out.
    fn grads_state_dict(&self, grads: &Gradients) -> StateDict;

    /// Replaces every parameter by the entry `prefix + name` of `dict`, checking shapes.
    ///
    /// Keys of `dict` under `prefix` that look like this layer's parameters (no further `.`)
    /// but are not ones it has are reported, as PyTorch's `strict=True` does; other keys (the
    /// rest of a bigger model) are ignored.
    ///
    /// # Errors
    /// [`ModelError::MissingKey`], [`ModelError::KeyShape`] or [`ModelError::UnexpectedKeys`].
    fn load_state_dict(self, dict: &StateDict, prefix: &str) -> Result<Self, ModelError>;
}

/// `"_l{layer}"` plus `"_reverse"` for the second direction.
fn layer_suffix(layer: usize, reverse: bool) -> String {
    format!("_l{layer}{}", if reverse { "_reverse" } else { "" })
}

impl CellWeights {
    /// Writes each parameter (or, with `grads`, its gradient) under its PyTorch name.
    fn export(&self, suffix: &str, dict: &mut StateDict, grads: Option<&Gradients>) {
        fn value<const D: usize>(t: Tensor<D>, grads: Option<&Gradients>) -> Option<TensorData> {
            match grads {
                None => Some(t.into_data()),
                Some(g) => t.grad(g).map(Tensor::into_data),
            }
        }
        let mut put = |name: &str, data: Option<TensorData>| {
            if let Some(data) = data {
                dict.put_data(format!("{name}{suffix}"), data);
            }
        };
        put("weight_ih", value(self.weight_ih.val(), grads));
        put("weight_hh", value(self.weight_hh.val(), grads));
        if let Some(b) = &self.bias_ih {
            put("bias_ih", value(b.val(), grads));
        }
        if let Some(b) = &self.bias_hh {
            put("bias_hh", value(b.val(), grads));
        }
        if let Some(w) = &self.weight_hr {
            put("weight_hr", value(w.val(), grads));
        }
    }

    fn import(
        self,
        dict: &StateDict,
        prefix: &str,
        suffix: &str,
        used: &mut BTreeSet<String>,
    ) -> Result<Self, ModelError> {
        let mut take = |name: &str, expected: Vec<usize>| -> Result<TensorData, ModelError> {
            let key = format!("{prefix}{name}{suffix}");
            let (shape, values) = dict
                .get(&key)
                .ok_or_else(|| ModelError::MissingKey { key: key.clone() })?;
            if shape != expected.as_slice() {
                return Err(ModelError::KeyShape {
                    key,
                    expected,
                    got: shape.to_vec(),
                });
            }
            used.insert(key);
            Ok(TensorData::new(values.to_vec(), expected))
        };
        let device = self.weight_ih.val().device();
        let matrix = |data| Param::from_tensor(Tensor::<2>::from_data(data, &device));
        let vector = |data| Param::from_tensor(Tensor::<1>::from_data(data, &device));
        let weight_ih = matrix(take("weight_ih", self.weight_ih.dims().to_vec())?);
        let weight_hh = matrix(take("weight_hh", self.weight_hh.dims().to_vec())?);
        let bias_ih = match &self.bias_ih {
            Some(b) => Some(vector(take("bias_ih", b.dims().to_vec())?)),
            None => None,
        };
        let bias_hh = match &self.bias_hh {
            Some(b) => Some(vector(take("bias_hh", b.dims().to_vec())?)),
            None => None,
        };
        let weight_hr = match &self.weight_hr {
            Some(w) => Some(matrix(take("weight_hr", w.dims().to_vec())?)),
            None => None,
        };
        Ok(Self {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            weight_hr,
        })
    }
}

/// Fails on keys under `prefix` that look like recurrent parameters but were not used.
fn check_unexpected(
    dict: &StateDict,
    prefix: &str,
    used: &BTreeSet<String>,
) -> Result<(), ModelError> {
    const NAMES: [&str; 5] = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"];
    let keys: Vec<String> = dict
        .keys()
        .filter(|k| {
            k.strip_prefix(prefix).is_some_and(|rest| {
                !rest.contains('.') && NAMES.iter().any(|n| rest.starts_with(n))
            })
        })
        .filter(|k| !used.contains(*k))
        .map(String::from)
        .collect();
    if keys.is_empty() {
        Ok(())
    } else {
        Err(ModelError::UnexpectedKeys { keys })
    }
}

impl Stack {
    fn suffix(&self, index: usize) -> String {
        let dirs = self.shape.directions();
        layer_suffix(index / dirs, index % dirs == 1)
    }

    pub(crate) fn export(&self, grads: Option<&Gradients>) -> StateDict {
        let mut dict = StateDict::new();
        for (i, cell) in self.cells.iter().enumerate() {
            cell.export(&self.suffix(i), &mut dict, grads);
        }
        dict
    }

    pub(crate) fn import(mut self, dict: &StateDict, prefix: &str) -> Result<Self, ModelError> {
        let mut used = BTreeSet::new();
        let cells = std::mem::take(&mut self.cells);
        let mut loaded = Vec::with_capacity(cells.len());
        for (i, cell) in cells.into_iter().enumerate() {
            loaded.push(cell.import(dict, prefix, &self.suffix(i), &mut used)?);
        }
        check_unexpected(dict, prefix, &used)?;
        self.cells = loaded;
        Ok(self)
    }
}

impl<K: LayerKind> PytorchWeights for Layer<K> {
    fn state_dict(&self) -> StateDict {
        self.stack.export(None)
    }

    fn grads_state_dict(&self, grads: &Gradients) -> StateDict {
        self.stack.export(Some(grads))
    }

    fn load_state_dict(mut self, dict: &StateDict, prefix: &str) -> Result<Self, ModelError> {
        self.stack = self.stack.import(dict, prefix)?;
        Ok(self)
    }
}

impl<K: LayerKind> Cell<K> {
    fn export(&self, grads: Option<&Gradients>) -> StateDict {
        let mut dict = StateDict::new();
        self.weights.export("", &mut dict, grads);
        dict
    }
}

impl<K: LayerKind> PytorchWeights for Cell<K> {
    fn state_dict(&self) -> StateDict {
        self.export(None)
    }

    fn grads_state_dict(&self, grads: &Gradients) -> StateDict {
        self.export(Some(grads))
    }

    fn load_state_dict(mut self, dict: &StateDict, prefix: &str) -> Result<Self, ModelError> {
        let mut used = BTreeSet::new();
        self.weights = self.weights.import(dict, prefix, "", &mut used)?;
        check_unexpected(dict, prefix, &used)?;
        Ok(self)
    }
}

#[cfg(feature = "import")]
mod files {
    use std::path::Path;

    use burn::store::pytorch_reader::{DType, PytorchReader};
    use safetensors::{Dtype, SafeTensors};

    use super::StateDict;
    use crate::ModelError;

    fn file_error(path: &Path, reason: impl ToString) -> ModelError {
        ModelError::StateDictFile {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// Little-endian bytes of `width`-byte floats to `f32`.
    fn floats(bytes: &[u8], width: usize) -> Vec<f32> {
        bytes
            .chunks_exact(width)
            .map(|b| match b {
                [a, b, c, d] => f32::from_le_bytes([*a, *b, *c, *d]),
                [a, b, c, d, e, f, g, h] => {
                    f64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]) as f32
                }
                _ => f32::NAN,
            })
            .collect()
    }

    impl StateDict {
        /// Reads a `.safetensors` file (e.g. from `safetensors.torch.save_file(model.state_dict(), …)`).
        /// `f32` and `f64` tensors are read; other dtypes are skipped unless a layer asks for
        /// them, in which case loading reports the key as missing.
        ///
        /// # Errors
        /// [`ModelError::StateDictFile`] when the file cannot be read or parsed.
        pub fn from_safetensors(path: impl AsRef<Path>) -> Result<Self, ModelError> {
            let path = path.as_ref();
            let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
            Self::from_safetensors_bytes(&bytes).map_err(|e| match e {
                ModelError::StateDictFile { reason, .. } => file_error(path, reason),
                other => other,
            })
        }

        /// [`StateDict::from_safetensors`] on bytes in memory.
        ///
        /// # Errors
        /// [`ModelError::StateDictFile`] when the bytes are not valid safetensors.
        pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
            let memory = Path::new("<memory>");
            let tensors = SafeTensors::deserialize(bytes).map_err(|e| file_error(memory, e))?;
            let mut dict = StateDict::new();
            for (name, view) in tensors.tensors() {
                let width = match view.dtype() {
                    Dtype::F32 => 4,
                    Dtype::F64 => 8,
                    _ => continue,
                };
                dict.insert(name, view.shape().to_vec(), floats(view.data(), width))?;
            }
            Ok(dict)
        }

        /// Reads a PyTorch `.pt`/`.pth` file saved with `torch.save(model.state_dict(), …)`
        /// (through burn-store's pickle reader; no Python needed). `f32`/`f64` tensors are read.
        ///
        /// # Errors
        /// [`ModelError::StateDictFile`] when the file cannot be read or parsed.
        pub fn from_pytorch(path: impl AsRef<Path>) -> Result<Self, ModelError> {
            let path = path.as_ref();
            let reader = PytorchReader::new(path).map_err(|e| file_error(path, e))?;
            let mut dict = StateDict::new();
            for (name, tensor) in reader.into_tensors() {
                let width = match tensor.dtype() {
                    DType::F32 => 4,
                    DType::F64 => 8,
                    _ => continue,
                };
                let bytes = tensor.read().map_err(|e| file_error(path, e))?;
                // The reader returns native-endian bytes; every target we build for is little-endian.
                dict.insert(name, tensor.shape().to_vec(), floats(&bytes, width))?;
            }
            Ok(dict)
        }

        /// Writes the dict as `.safetensors` (f32), atomically (`rnn_atomic::write`: a
        /// temporary sibling, fsynced, renamed over `path`).
        ///
        /// # Errors
        /// [`ModelError::StateDictFile`] when writing fails.
        pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<(), ModelError> {
            let path = path.as_ref();
            let encoded: Vec<(&String, &Vec<usize>, Vec<u8>)> = self
                .entries
                .iter()
                .map(|(k, (shape, values))| {
                    (
                        k,
                        shape,
                        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    )
                })
                .collect();
            let views = encoded
                .iter()
                .map(|(k, shape, bytes)| {
                    safetensors::tensor::TensorView::new(Dtype::F32, shape.to_vec(), bytes)
                        .map(|v| (k.as_str(), v))
                        .map_err(|e| file_error(path, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let bytes = safetensors::serialize(views, None).map_err(|e| file_error(path, e))?;
            rnn_atomic::write(path, &bytes).map_err(|e| file_error(path, e))
        }
    }
}
