//! The recurrence driver every layer shares: stacked layers, both directions, inter-layer
//! dropout, variable lengths, initial and final states.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::weights::{CellWeights, InitSpec};
use crate::{CellKind, ModelError, Recurrence};

/// The static shape of a stack; validated once by [`StackShape::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StackShape {
    pub kind: CellKind,
    pub input_size: usize,
    pub hidden_size: usize,
    /// 0 means no projection.
    pub proj_size: usize,
    pub num_layers: usize,
    pub bias: bool,
    pub batch_first: bool,
    pub dropout: f64,
    pub bidirectional: bool,
}

impl StackShape {
    /// 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// Size of `h` and of each direction's output: `proj_size` when projecting, else `hidden_size`.
    pub fn out_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Input size of layer `layer`.
    pub fn layer_input(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.directions() * self.out_size()
        }
    }

    /// Rejects impossible configurations before anything is allocated.
    pub fn check(&self, forget_bias: Option<f64>) -> Result<(), ModelError> {
        let bad = |field, value: String, expected| {
            Err(ModelError::InvalidConfig {
                field,
                value,
                expected,
            })
        };
        if self.input_size == 0 {
            return bad("input_size", "0".into(), "at least 1");
        }
        if self.hidden_size == 0 {
            return bad("hidden_size", "0".into(), "at least 1");
        }
        if self.num_layers == 0 {
            return bad("num_layers", "0".into(), "at least 1");
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return bad(
                "dropout",
                self.dropout.to_string(),
                "a probability in [0, 1)",
            );
        }
        if self.proj_size > 0 && self.kind != CellKind::Lstm {
            return bad(
                "proj_size",
                self.proj_size.to_string(),
                "0 (only LSTM projects)",
            );
        }
        if self.proj_size >= self.hidden_size && self.proj_size > 0 {
            return bad(
                "proj_size",
                self.proj_size.to_string(),
                "smaller than hidden_size (as in PyTorch)",
            );
        }
        if let Some(v) = forget_bias {
            if !v.is_finite() {
                return bad("forget_bias", v.to_string(), "a finite number");
            }
            if !self.bias {
                return bad("forget_bias", v.to_string(), "unset when bias = false");
            }
        }
        Ok(())
    }
}

/// A stack of recurrent cells: `num_layers × directions` cells, layer-major, forward then reverse.
#[derive(Module, Debug)]
pub struct Stack {
    /// Cell `layer · directions + direction`.
    pub(crate) cells: Vec<CellWeights>,
    pub(crate) dropout: Dropout,
    #[module(skip)]
    pub(crate) shape: StackShape,
    #[module(skip)]
    pub(crate) recurrence: Recurrence,
}

/// What a layer is, in PyTorch's terms; returned by each layer's `info()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Features per input step.
    pub input_size: usize,
    /// Hidden features per direction.
    pub hidden_size: usize,
    /// LSTM projection size, 0 when not projecting.
    pub proj_size: usize,
    /// Stacked layers.
    pub num_layers: usize,
    /// Whether each layer also runs in reverse.
    pub bidirectional: bool,
    /// Whether input and output are `[batch, seq, feature]`.
    pub batch_first: bool,
    /// Features per output step: `directions · (proj_size or hidden_size)`.
    pub output_size: usize,
}

impl LayerInfo {
    /// 2 when bidirectional, else 1: the `num_directions` of PyTorch's state shapes.
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }
}

/// Output of [`Stack::run`]: `(output, h_n, c_n)`.
pub(crate) type StackOutput = (Tensor<3>, Tensor<3>, Option<Tensor<3>>);

impl Stack {
    pub(crate) fn init(
        shape: StackShape,
        spec: &InitSpec,
        device: &Device,
    ) -> Result<Self, ModelError> {
        shape.check(spec.forget_bias)?;
        let mut cells = Vec::with_capacity(shape.num_layers * shape.directions());
        for layer in 0..shape.num_layers {
            for _ in 0..shape.directions() {
                cells.push(CellWeights::init(
                    shape.kind,
                    shape.layer_input(layer),
                    shape.hidden_size,
                    shape.proj_size,
                    shape.bias,
                    spec,
                    device,
                ));
            }
        }
        Ok(Self {
            cells,
            dropout: DropoutConfig::new(shape.dropout).init(),
            shape,
            recurrence: Recurrence::default(),
        })
    }

    pub(crate) fn info(&self) -> LayerInfo {
        let s = self.shape;
        LayerInfo {
            input_size: s.input_size,
            hidden_size: s.hidden_size,
            proj_size: s.proj_size,
            num_layers: s.num_layers,
            bidirectional: s.bidirectional,
            batch_first: s.batch_first,
            output_size: s.directions() * s.out_size(),
        }
    }

    /// [`Stack::run`] for the kinds whose only state is `h` (RNN, GRU).
    pub(crate) fn run_h(
        &self,
        input: Tensor<3>,
        lengths: Option<&[usize]>,
        h0: Option<Tensor<3>>,
    ) -> Result<(Tensor<3>, Tensor<3>), ModelError> {
        self.run(input, lengths, h0, None)
            .map(|(out, h, _)| (out, h))
    }

    /// `[num_layers · directions, batch, size]`.
    fn state_dims(&self, batch: usize, size: usize) -> [usize; 3] {
        [self.shape.num_layers * self.shape.directions(), batch, size]
    }

    /// Checks everything about a call once, at the boundary. Returns `(batch, seq)`.
    fn check_call(
        &self,
        input: &Tensor<3>,
        lengths: Option<&[usize]>,
        h0: Option<&Tensor<3>>,
        c0: Option<&Tensor<3>>,
    ) -> Result<(usize, usize), ModelError> {
        let dims = input.dims();
        let (batch, seq) = if self.shape.batch_first {
            (dims[0], dims[1])
        } else {
            (dims[1], dims[0])
        };
        if dims[2] != self.shape.input_size {
            return Err(ModelError::InputSize {
                expected: self.shape.input_size,
                got: dims[2],
                shape: dims.to_vec(),
            });
        }
        if batch == 0 || seq == 0 {
            return Err(ModelError::EmptyInput { batch, seq });
        }
        check_state("h0", h0, self.state_dims(batch, self.shape.out_size()))?;
        check_state("c0", c0, self.state_dims(batch, self.shape.hidden_size))?;
        if let Some(lengths) = lengths {
            check_lengths(lengths, batch, seq)?;
        }
        Ok((batch, seq))
    }

    /// Runs the whole stack.
    ///
    /// - `input`: `[batch, seq, input]` when `batch_first`, else `[seq, batch, input]`.
    /// - `lengths`: per-sequence lengths (PyTorch packed semantics) or `None`.
    /// - `h0`: `[layers·dirs, batch, out]`, `c0`: `[layers·dirs, batch, hidden]` (LSTM).
    pub(crate) fn run(
        &self,
        input: Tensor<3>,
        lengths: Option<&[usize]>,
        h0: Option<Tensor<3>>,
        c0: Option<Tensor<3>>,
    ) -> Result<StackOutput, ModelError> {
        let (batch, seq) = self.check_call(&input, lengths, h0.as_ref(), c0.as_ref())?;
        let s = self.shape;
        let device = input.device();
        let fused = self.uses_fused(&device, input.dtype());
        // The fused kernels work batch-major (a slice of the batch is then contiguous); the
        // reference path time-major (a step's slice is then contiguous).
        let batch_major = fused;
        let mut x = if s.batch_first == batch_major {
            input
        } else {
            input.swap_dims(0, 1)
        };
        // Equal full lengths need no masking.
        let lengths = lengths.filter(|l| l.iter().any(|&len| len < seq));
        let masks = lengths
            .filter(|_| !fused)
            .map(|l| step_masks(l, seq, &device));
        let is_lstm = s.kind == CellKind::Lstm;
        let dirs = s.directions();
        let zeros = |size| Tensor::<2>::zeros([batch, size], &device);
        // Final states, each `[n, batch, ·]`, concatenated along the first axis at the end.
        let mut h_n = Vec::with_capacity(self.cells.len());
        let mut c_n = Vec::with_capacity(self.cells.len());

        for layer in 0..s.num_layers {
            let first = layer * dirs;
            if fused {
                // One op for the whole layer, both directions.
                let pick = |state: &Option<Tensor<3>>, size| match state {
                    Some(t) => t.clone().narrow(0, first, dirs),
                    None => Tensor::zeros([dirs, batch, size], &device),
                };
                let h = pick(&h0, s.out_size());
                let c = is_lstm.then(|| pick(&c0, s.hidden_size));
                let cells = &self.cells[first..first + dirs];
                let (out, h, c) = fused_layer(s.kind, cells, x, h, c, lengths);
                x = out;
                h_n.push(h);
                c_n.extend(c);
            } else {
                let mut outputs = Vec::with_capacity(dirs);
                for dir in 0..dirs {
                    let index = first + dir;
                    let cell = &self.cells[index];
                    let pick = |state: &Option<Tensor<3>>, size| match state {
                        Some(t) => t.clone().narrow(0, index, 1).reshape([batch, size]),
                        None => zeros(size),
                    };
                    let h = pick(&h0, s.out_size());
                    let c = is_lstm.then(|| pick(&c0, s.hidden_size));
                    let (out, h, c) =
                        self.run_direction(cell, x.clone(), h, c, masks.as_deref(), dir == 1);
                    outputs.push(out);
                    h_n.push(h.unsqueeze_dim(0));
                    c_n.extend(c.map(|c| c.unsqueeze_dim(0)));
                }
                x = if outputs.len() == 1 {
                    outputs.remove(0)
                } else {
                    Tensor::cat(outputs, 2)
                };
            }
            if layer + 1 < s.num_layers {
                x = self.dropout.forward(x);
            }
        }

        let output = if s.batch_first == batch_major {
            x
        } else {
            x.swap_dims(0, 1)
        };
        let h_n = Tensor::cat(h_n, 0);
        let c_n = is_lstm.then(|| Tensor::cat(c_n, 0));
        Ok((output, h_n, c_n))
    }

    /// Whether this call takes the fused kernels: [`Recurrence::Auto`] on a device and dtype
    /// they serve, without an LSTM projection.
    pub(crate) fn uses_fused(&self, device: &Device, dtype: DType) -> bool {
        #[cfg(feature = "fused")]
        {
            self.recurrence == Recurrence::Auto
                && self.shape.proj_size == 0
                && crate::fused::available(device, dtype)
        }
        #[cfg(not(feature = "fused"))]
        {
            let _ = (device, dtype);
            false
        }
    }

    /// One direction of one layer over the whole sequence, composed of Burn tensor ops: the
    /// reference path.
    ///
    /// `x: [seq, batch, in]` → output `[seq, batch, out]`, final `h`, final `c`.
    fn run_direction(
        &self,
        cell: &CellWeights,
        x: Tensor<3>,
        mut h: Tensor<2>,
        mut c: Option<Tensor<2>>,
        masks: Option<&[StepMask]>,
        reverse: bool,
    ) -> (Tensor<3>, Tensor<2>, Option<Tensor<2>>) {
        let [seq, batch, input] = x.dims();
        let gh = self.shape.kind.gates() * self.shape.hidden_size;
        // One GEMM for the input projection of every step.
        let xp = cell
            .project_input(x.reshape([seq * batch, input]))
            .reshape([seq, batch, gh]);
        let stepper = cell.stepper(self.shape.kind, self.shape.hidden_size);
        let mut steps: Vec<Option<Tensor<2>>> = xp
            .split(1, 0)
            .into_iter()
            .map(|t| Some(t.reshape([batch, gh])))
            .collect();
        let mut outputs: Vec<Option<Tensor<2>>> = (0..seq).map(|_| None).collect();
        for i in 0..seq {
            let t = if reverse { seq - 1 - i } else { i };
            let Some(xp_t) = steps[t].take() else {
                continue;
            };
            let (h_new, c_new) = stepper.step(xp_t, h.clone(), c.clone());
            match masks {
                None => {
                    outputs[t] = Some(h_new.clone());
                    h = h_new;
                    c = c_new;
                }
                Some(masks) => {
                    // Past a sequence's end the state is held and the output is zero; in the
                    // reverse direction this makes each sequence start at its own last step.
                    let m = &masks[t];
                    outputs[t] = Some(h_new.clone() * m.keep.clone());
                    h = m.blend(h_new, h);
                    c = match (c_new, c) {
                        (Some(new), Some(old)) => Some(m.blend(new, old)),
                        (new, _) => new,
                    };
                }
            }
        }
        let output = Tensor::stack(outputs.into_iter().flatten().collect(), 0);
        (output, h, c)
    }
}

/// The fused path for one layer; only called when [`Stack::uses_fused`] said yes.
#[cfg(feature = "fused")]
use crate::fused::run_layer as fused_layer;

/// Without the `fused` feature [`Stack::uses_fused`] is always false; this keeps one call site.
#[cfg(not(feature = "fused"))]
fn fused_layer(
    _: CellKind,
    _: &[CellWeights],
    x: Tensor<3>,
    h: Tensor<3>,
    c: Option<Tensor<3>>,
    _: Option<&[usize]>,
) -> (Tensor<3>, Tensor<3>, Option<Tensor<3>>) {
    (x, h, c)
}

/// Per-step masks for variable lengths: `keep` is 1 where `t < length`, `hold = 1 - keep`.
pub(crate) struct StepMask {
    keep: Tensor<2>,
    hold: Tensor<2>,
}

impl StepMask {
    /// `new` where the sequence is running, `old` where it has ended.
    fn blend(&self, new: Tensor<2>, old: Tensor<2>) -> Tensor<2> {
        new * self.keep.clone() + old * self.hold.clone()
    }
}

/// Builds `seq` masks of shape `[batch, 1]` from host-side lengths.
fn step_masks(lengths: &[usize], seq: usize, device: &Device) -> Vec<StepMask> {
    let batch = lengths.len();
    let keep: Vec<f32> = (0..seq)
        .flat_map(|t| {
            lengths
                .iter()
                .map(move |&len| if t < len { 1.0 } else { 0.0 })
        })
        .collect();
    let hold: Vec<f32> = keep.iter().map(|k| 1.0 - k).collect();
    let to_steps = |v: Vec<f32>| {
        Tensor::<3>::from_data(TensorData::new(v, [seq, batch, 1]), device)
            .split(1, 0)
            .into_iter()
            .map(|t| t.reshape([batch, 1]))
            .collect::<Vec<_>>()
    };
    to_steps(keep)
        .into_iter()
        .zip(to_steps(hold))
        .map(|(keep, hold)| StepMask { keep, hold })
        .collect()
}

/// Checks an optional state tensor against the shape the layer needs.
pub(crate) fn check_state<const D: usize>(
    which: &'static str,
    state: Option<&Tensor<D>>,
    expected: [usize; D],
) -> Result<(), ModelError> {
    match state {
        Some(t) if t.dims() != expected => Err(ModelError::StateShape {
            which,
            expected: expected.to_vec(),
            got: t.dims().to_vec(),
        }),
        _ => Ok(()),
    }
}

/// Checks per-sequence lengths: one per batch element, each in `1..=seq`.
pub(crate) fn check_lengths(lengths: &[usize], batch: usize, seq: usize) -> Result<(), ModelError> {
    if lengths.len() != batch {
        return Err(ModelError::LengthsCount {
            expected: batch,
            got: lengths.len(),
        });
    }
    match lengths.iter().position(|&l| l == 0 || l > seq) {
        Some(index) => Err(ModelError::LengthOutOfRange {
            index,
            length: lengths[index],
            seq_len: seq,
        }),
        None => Ok(()),
    }
}
