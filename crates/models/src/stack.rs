//! The recurrence driver every layer shares: stacked layers, both directions, inter-layer
//! dropout, variable lengths, initial and final states.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::state::StateParts;
use crate::weights::{CellWeights, InitSpec};
use crate::{CellKind, Engine, ModelError};

/// The parameter shapes of a stack: what its weights look like. Validated once by
/// [`StackShape::check`], for layers and cells alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StackShape {
    pub kind: CellKind,
    pub input_size: usize,
    pub hidden_size: usize,
    /// 0 means no projection.
    pub proj_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
    /// Whether each cell has `bias_ih` and `bias_hh`.
    pub bias: bool,
}

impl StackShape {
    /// One cell: one layer, one direction, no projection.
    pub fn cell(kind: CellKind, input_size: usize, hidden_size: usize, bias: bool) -> Self {
        Self {
            kind,
            input_size,
            hidden_size,
            proj_size: 0,
            num_layers: 1,
            bidirectional: false,
            bias,
        }
    }

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

    /// `[num_layers · directions, batch, size]`.
    fn state_dims(&self, batch: usize, size: usize) -> [usize; 3] {
        [self.num_layers * self.directions(), batch, size]
    }

    /// Rejects impossible shapes, and a forget-gate bias without biases, before anything is
    /// allocated.
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

/// Rejects a dropout probability outside `[0, 1)`.
pub(crate) fn check_dropout(field: &'static str, dropout: f64) -> Result<(), ModelError> {
    if dropout.is_finite() && (0.0..1.0).contains(&dropout) {
        Ok(())
    } else {
        Err(ModelError::InvalidConfig {
            field,
            value: dropout.to_string(),
            expected: "a probability in [0, 1)",
        })
    }
}

/// Everything a layer config decides: the parameter shapes, how the weights are drawn, and
/// the options that shape a call.
#[derive(Debug, Clone)]
pub(crate) struct StackConfig {
    pub shape: StackShape,
    pub init: InitSpec,
    /// `[batch, seq, feature]` input and output instead of `[seq, batch, feature]`.
    pub batch_first: bool,
    /// Dropout on each layer's output except the last, in training.
    pub dropout: f64,
    /// Dropout on each layer's input, one mask per sequence for all its steps, in training.
    pub input_dropout: f64,
    /// Dropout on `h` where it enters `W_hh`, one mask per sequence for all its steps, in
    /// training (Gal & Ghahramani 2016; Keras' `recurrent_dropout`).
    pub recurrent_dropout: f64,
}

/// A stack of recurrent cells: `num_layers × directions` cells, layer-major, forward then reverse.
#[derive(Module, Debug)]
pub struct Stack {
    /// Cell `layer · directions + direction`.
    pub(crate) cells: Vec<CellWeights>,
    pub(crate) dropout: Dropout,
    pub(crate) input_dropout: Dropout,
    pub(crate) recurrent_dropout: Dropout,
    #[module(skip)]
    pub(crate) shape: StackShape,
    #[module(skip)]
    pub(crate) batch_first: bool,
    #[module(skip)]
    pub(crate) engine: Engine,
}

/// A call's initial state for every layer and direction, as given (`None`: zeros).
struct Initial {
    /// `[layers·dirs, batch, out]`.
    h0: Option<Tensor<3>>,
    /// `[layers·dirs, batch, hidden]`, LSTM only.
    c0: Option<Tensor<3>>,
}

impl Initial {
    /// Rows `first..first + count` of `h0` and `c0`, zeros where absent (`c` for LSTM only).
    fn rows(
        &self,
        shape: &StackShape,
        first: usize,
        count: usize,
        batch: usize,
        device: &Device,
    ) -> (Tensor<3>, Option<Tensor<3>>) {
        let pick = |state: &Option<Tensor<3>>, size| match state {
            Some(t) => t.clone().narrow(0, first, count),
            None => Tensor::zeros([count, batch, size], device),
        };
        let h = pick(&self.h0, shape.out_size());
        let c = shape
            .kind
            .has_cell_state()
            .then(|| pick(&self.c0, shape.hidden_size));
        (h, c)
    }
}

/// What one layer runs on: its cells (one per direction), its input and initial states. The
/// boundary every engine takes (the fused op too).
pub(crate) struct LayerInput<'a> {
    /// Cell per direction, forward first.
    pub cells: &'a [CellWeights],
    /// `[batch, seq, in]` for the fused engine, `[seq, batch, in]` for the reference one.
    pub x: Tensor<3>,
    /// `[dirs, batch, out]`.
    pub h: Tensor<3>,
    /// `[dirs, batch, hidden]`, LSTM only.
    pub c: Option<Tensor<3>>,
}

/// One layer's result: its output sequence and final states, `[dirs, batch, ·]` each.
pub(crate) struct LayerOutput {
    pub output: Tensor<3>,
    pub h_n: Tensor<3>,
    /// LSTM only.
    pub c_n: Option<Tensor<3>>,
}

impl Stack {
    pub(crate) fn init(config: &StackConfig, device: &Device) -> Result<Self, ModelError> {
        let shape = config.shape;
        shape.check(config.init.forget_bias)?;
        check_dropout("dropout", config.dropout)?;
        check_dropout("input_dropout", config.input_dropout)?;
        check_dropout("recurrent_dropout", config.recurrent_dropout)?;
        let mut cells = Vec::with_capacity(shape.num_layers * shape.directions());
        for layer in 0..shape.num_layers {
            for _ in 0..shape.directions() {
                cells.push(CellWeights::init(
                    shape,
                    shape.layer_input(layer),
                    &config.init,
                    device,
                ));
            }
        }
        Ok(Self {
            cells,
            dropout: DropoutConfig::new(config.dropout).init(),
            input_dropout: DropoutConfig::new(config.input_dropout).init(),
            recurrent_dropout: DropoutConfig::new(config.recurrent_dropout).init(),
            shape,
            batch_first: config.batch_first,
            engine: Engine::default(),
        })
    }

    /// Checks everything about a call once, at the boundary. Returns `(batch, seq)`.
    fn check_call(
        &self,
        input: &Tensor<3>,
        lengths: Option<&[usize]>,
        initial: &Initial,
    ) -> Result<(usize, usize), ModelError> {
        let s = &self.shape;
        let dims = input.dims();
        let (batch, seq) = if self.batch_first {
            (dims[0], dims[1])
        } else {
            (dims[1], dims[0])
        };
        if dims[2] != s.input_size {
            return Err(ModelError::InputSize {
                expected: s.input_size,
                got: dims[2],
                shape: dims.to_vec(),
            });
        }
        if batch == 0 || seq == 0 {
            return Err(ModelError::EmptyInput { batch, seq });
        }
        if let Some(h0) = &initial.h0 {
            check_state_kind(s.kind, initial.c0.is_some())?;
            check_state("h0", Some(h0), s.state_dims(batch, s.out_size()))?;
        }
        check_state(
            "c0",
            initial.c0.as_ref(),
            s.state_dims(batch, s.hidden_size),
        )?;
        if let Some(lengths) = lengths {
            check_lengths(lengths, batch, seq)?;
        }
        Ok((batch, seq))
    }

    /// Runs the whole stack.
    ///
    /// - `input`: `[batch, seq, input]` when `batch_first`, else `[seq, batch, input]`.
    /// - `lengths`: per-sequence lengths (PyTorch packed semantics) or `None`.
    /// - `state`: `h0: [layers·dirs, batch, out]` (and `c0: [layers·dirs, batch, hidden]` for
    ///   LSTM); zeros when `None`.
    ///
    /// Returns the output, shaped like the input with `dirs·out` features, and the final state.
    pub(crate) fn run<S: StateParts<3>>(
        &self,
        input: Tensor<3>,
        lengths: Option<&[usize]>,
        state: Option<S>,
    ) -> Result<(Tensor<3>, S), ModelError> {
        let (h0, c0) = match state.map(S::into_parts) {
            Some((h, c)) => (Some(h), c),
            None => (None, None),
        };
        let initial = Initial { h0, c0 };
        let (batch, seq) = self.check_call(&input, lengths, &initial)?;
        let s = self.shape;
        let device = input.device();
        let fused = self.uses_fused(&device, input.dtype());
        // The fused kernels work batch-major (a slice of the batch is then contiguous); the
        // reference path time-major (a step's slice is then contiguous).
        let reorient = |x: Tensor<3>| {
            if self.batch_first == fused {
                x
            } else {
                x.swap_dims(0, 1)
            }
        };
        // Equal full lengths need no masking.
        let lengths = lengths.filter(|l| l.iter().any(|&len| len < seq));
        let masks = lengths
            .filter(|_| !fused)
            .map(|l| step_masks(l, seq, &device));
        let dirs = s.directions();
        let mut x = reorient(input);
        let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
        for layer in 0..s.num_layers {
            let first = layer * dirs;
            let (h, c) = initial.rows(&s, first, dirs, batch, &device);
            let cells = &self.cells[first..first + dirs];
            let layer_input = LayerInput {
                cells,
                x: self.drop_inputs(x, fused),
                h,
                c,
            };
            let out = if fused {
                self.run_fused(layer_input, lengths)
            } else {
                self.run_reference(layer_input, masks.as_deref())
            };
            x = if layer + 1 < s.num_layers {
                self.dropout.forward(out.output)
            } else {
                out.output
            };
            h_n.push(out.h_n);
            c_n.extend(out.c_n);
        }
        Ok((reorient(x), S::from_rows(h_n, c_n)))
    }

    /// Whether recurrent dropout draws masks on this device: a probability above 0 and a
    /// training (autodiff) device. The fused kernels have no masks, so such calls take the
    /// reference path.
    fn recurrent_dropout_active(&self, device: &Device) -> bool {
        self.recurrent_dropout.prob > 0.0 && device.is_autodiff()
    }

    /// Whether this call takes the fused kernels: [`Engine::Auto`] on a device and dtype
    /// they serve, without an LSTM projection or active recurrent dropout.
    pub(crate) fn uses_fused(&self, device: &Device, dtype: DType) -> bool {
        #[cfg(feature = "fused")]
        {
            self.engine == Engine::Auto
                && self.shape.proj_size == 0
                && !self.recurrent_dropout_active(device)
                && crate::fused::available(device, dtype)
        }
        #[cfg(not(feature = "fused"))]
        {
            let _ = (device, dtype);
            false
        }
    }

    /// Input dropout: one mask per sequence and feature, the same at every step; `x` is
    /// batch-major when `batch_major`, else time-major.
    fn drop_inputs(&self, x: Tensor<3>, batch_major: bool) -> Tensor<3> {
        if self.input_dropout.prob == 0.0 || !x.device().is_autodiff() {
            return x;
        }
        let [a, b, features] = x.dims();
        let (batch, mask_dims) = if batch_major {
            (a, [a, 1, features])
        } else {
            (b, [1, b, features])
        };
        let ones = Tensor::<2>::ones([batch, features], &x.device());
        let mask = self.input_dropout.forward(ones).reshape(mask_dims);
        x * mask
    }

    /// One layer, both directions, through the fused op: batch-major `x: [batch, seq, in]`,
    /// states `[dirs, batch, ·]`. Only called when [`Stack::uses_fused`] said yes.
    fn run_fused(&self, input: LayerInput<'_>, lengths: Option<&[usize]>) -> LayerOutput {
        #[cfg(feature = "fused")]
        {
            crate::fused::run_layer(self.shape.kind, input, lengths)
        }
        #[cfg(not(feature = "fused"))]
        {
            // `uses_fused` is false without the feature; the reference path is always correct.
            let _ = lengths;
            self.run_reference(input, None)
        }
    }

    /// One layer, each direction composed of Burn tensor ops: the reference path.
    /// Time-major `x: [seq, batch, in]`, states `[dirs, batch, ·]`.
    fn run_reference(&self, input: LayerInput<'_>, masks: Option<&[StepMask]>) -> LayerOutput {
        let LayerInput { cells, x, h, c } = input;
        let [_, batch, _] = x.dims();
        let row = |t: &Tensor<3>, dir: usize| {
            let [_, _, size] = t.dims();
            t.clone().narrow(0, dir, 1).reshape([batch, size])
        };
        let mut outputs = Vec::with_capacity(cells.len());
        let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
        let [_, _, out_size] = h.dims();
        for (dir, cell) in cells.iter().enumerate() {
            let h0 = row(&h, dir);
            let c0 = c.as_ref().map(|c| row(c, dir));
            let mask = self.recurrent_dropout_active(&x.device()).then(|| {
                let ones = Tensor::<2>::ones([batch, out_size], &x.device());
                self.recurrent_dropout.forward(ones)
            });
            let (out, h, c) = self.run_direction(cell, x.clone(), h0, c0, masks, mask, dir == 1);
            outputs.push(out);
            h_n.push(h.unsqueeze_dim(0));
            c_n.extend(c.map(|c| c.unsqueeze_dim(0)));
        }
        let output = if outputs.len() == 1 {
            outputs.swap_remove(0)
        } else {
            Tensor::cat(outputs, 2)
        };
        LayerOutput {
            output,
            h_n: Tensor::cat(h_n, 0),
            c_n: (!c_n.is_empty()).then(|| Tensor::cat(c_n, 0)),
        }
    }

    /// One direction of one layer over the whole sequence, composed of Burn tensor ops.
    ///
    /// `x: [seq, batch, in]` → output `[seq, batch, out]`, final `h`, final `c`.
    #[allow(clippy::too_many_arguments)]
    fn run_direction(
        &self,
        cell: &CellWeights,
        x: Tensor<3>,
        mut h: Tensor<2>,
        mut c: Option<Tensor<2>>,
        masks: Option<&[StepMask]>,
        recurrent_mask: Option<Tensor<2>>,
        reverse: bool,
    ) -> (Tensor<3>, Tensor<2>, Option<Tensor<2>>) {
        let [seq, batch, input] = x.dims();
        let gh = self.shape.kind.gate_count() * self.shape.hidden_size;
        // One GEMM for the input projection of every step.
        let xp = cell
            .project_input(x.reshape([seq * batch, input]))
            .reshape([seq, batch, gh]);
        let stepper = cell.stepper(self.shape.kind, self.shape.hidden_size, recurrent_mask);
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

/// Rejects a state whose parts do not fit the kind: `(h, c)` for LSTM, `h` alone otherwise
/// (possible only through a run-time-kind [`RecurrentState`](crate::RecurrentState)).
pub(crate) fn check_state_kind(kind: CellKind, has_c: bool) -> Result<(), ModelError> {
    if has_c == kind.has_cell_state() {
        return Ok(());
    }
    let parts = |c: bool| if c { "(h, c)" } else { "h alone" };
    Err(ModelError::StateKind {
        kind,
        expected: parts(kind.has_cell_state()),
        got: parts(has_c),
    })
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
