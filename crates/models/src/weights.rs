//! The parameters of one recurrent cell (one layer, one direction) and the gate math: the
//! single source of truth that cells and every layer type share.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};

use crate::CellKind;
use crate::stack::StackShape;

/// The weights of one cell in PyTorch's layout (rows are gate blocks stacked in PyTorch's order).
///
/// `G` is [`CellKind::gate_count`], `H` the hidden size, `P` the projection size (LSTM only), and
/// `R` the recurrent input size: `P` when projecting, else `H`.
#[derive(Module, Debug)]
pub struct CellWeights {
    /// `weight_ih`: `[G·H, input]`.
    pub weight_ih: Param<Tensor<2>>,
    /// `weight_hh`: `[G·H, R]`.
    pub weight_hh: Param<Tensor<2>>,
    /// `bias_ih`: `[G·H]`, absent when `bias = false`.
    pub bias_ih: Option<Param<Tensor<1>>>,
    /// `bias_hh`: `[G·H]`, absent when `bias = false`.
    pub bias_hh: Option<Param<Tensor<1>>>,
    /// `weight_hr` (LSTM with `proj_size > 0`): `[P, H]`.
    pub weight_hr: Option<Param<Tensor<2>>>,
}

/// How a cell's weights are drawn.
#[derive(Debug, Clone)]
pub(crate) struct InitSpec {
    pub initializer: Option<Initializer>,
    /// `None`: the biases are drawn like the weights.
    pub bias_initializer: Option<Initializer>,
    /// LSTM only: start the forget-gate bias here (TensorFlow's `forget_bias = 1.0` habit).
    pub forget_bias: Option<f64>,
}

impl CellWeights {
    /// Draws new weights. The default is PyTorch's: every parameter uniform in `±1/√hidden`.
    ///
    /// `shape` gives the kind, hidden and projection sizes and whether there are biases;
    /// `input` is this cell's input size (the layer's own, which differs from layer to layer).
    pub(crate) fn init(shape: StackShape, input: usize, spec: &InitSpec, device: &Device) -> Self {
        let StackShape {
            kind,
            hidden_size: hidden,
            proj_size: proj,
            bias,
            ..
        } = shape;
        let k = 1.0 / (hidden as f64).sqrt();
        let init = spec
            .initializer
            .clone()
            .unwrap_or(Initializer::Uniform { min: -k, max: k });
        let gh = kind.gate_count() * hidden;
        let rec = if proj > 0 { proj } else { hidden };
        let weight_ih = init.init_with([gh, input], Some(input), Some(gh), device);
        let weight_hh = init.init_with([gh, rec], Some(rec), Some(gh), device);
        let bias_init = spec.bias_initializer.as_ref().unwrap_or(&init);
        let bias_block = |fan_in: usize| bias_init.init_with([gh], Some(fan_in), Some(gh), device);
        let (mut bias_ih, mut bias_hh) = if bias {
            (Some(bias_block(input)), Some(bias_block(rec)))
        } else {
            (None, None)
        };
        if let (CellKind::Lstm, Some(value), Some(b_ih), Some(b_hh)) =
            (kind, spec.forget_bias, &bias_ih, &bias_hh)
        {
            // The forget block is rows H..2H; the two biases add up to `value` there.
            let fill = |b: &Param<Tensor<1>>, v: f64| {
                // Detached: a parameter must be a leaf, also on an autodiff device.
                Param::from_tensor(
                    b.val()
                        .slice_assign(hidden..2 * hidden, Tensor::<1>::full([hidden], v, device))
                        .detach(),
                )
            };
            let (new_ih, new_hh) = (fill(b_ih, value), fill(b_hh, 0.0));
            bias_ih = Some(new_ih);
            bias_hh = Some(new_hh);
        }
        let weight_hr =
            (proj > 0).then(|| init.init_with([proj, hidden], Some(hidden), Some(proj), device));
        Self {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            weight_hr,
        }
    }

    /// Input projection for many time steps at once: `x W_ihᵀ + b_ih`.
    ///
    /// `x: [n, input]` → `[n, G·H]`.
    pub(crate) fn project_input(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight_ih.val().transpose());
        match &self.bias_ih {
            Some(b) => y + b.val().unsqueeze_dim(0),
            None => y,
        }
    }

    /// Prepares the per-step recurrence: transposes the recurrent weights once per sequence
    /// rather than once per step. `recurrent_mask: [batch, R]` (recurrent dropout, already
    /// scaled) multiplies `h` wherever it enters `W_hh`, at every step.
    pub(crate) fn stepper(
        &self,
        kind: CellKind,
        hidden: usize,
        recurrent_mask: Option<Tensor<2>>,
    ) -> Stepper {
        Stepper {
            kind,
            hidden,
            recurrent_mask,
            w_hh_t: self.weight_hh.val().transpose(),
            b_hh: self.bias_hh.as_ref().map(|b| b.val().unsqueeze_dim(0)),
            w_hr_t: self.weight_hr.as_ref().map(|w| w.val().transpose()),
        }
    }
}

/// One cell's recurrence with its weights prepared for a sequence of steps.
pub(crate) struct Stepper {
    kind: CellKind,
    hidden: usize,
    recurrent_mask: Option<Tensor<2>>,
    w_hh_t: Tensor<2>,
    b_hh: Option<Tensor<2>>,
    w_hr_t: Option<Tensor<2>>,
}

impl Stepper {
    /// One time step.
    ///
    /// - `xp: [batch, G·H]`: the input projection of this step (from [`CellWeights::project_input`]).
    /// - `h: [batch, R]`, `c: [batch, H]` (LSTM only; zeros when `None`).
    ///
    /// Returns the new `(h, c)`; `c` is `None` except for LSTM.
    pub(crate) fn step(
        &self,
        xp: Tensor<2>,
        h: Tensor<2>,
        c: Option<Tensor<2>>,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        // Recurrent dropout (Gal & Ghahramani): the same mask at every step, on the recurrent
        // projection's input only; GRU's `z ⊙ h` below keeps the unmasked state.
        let h_in = match &self.recurrent_mask {
            Some(mask) => h.clone() * mask.clone(),
            None => h.clone(),
        };
        let mut hh = h_in.matmul(self.w_hh_t.clone());
        if let Some(b) = &self.b_hh {
            hh = hh + b.clone();
        }
        let hidden = self.hidden;
        match self.kind {
            CellKind::RnnTanh => ((xp + hh).tanh(), None),
            CellKind::RnnRelu => (relu(xp + hh), None),
            CellKind::Lstm => {
                let c = c.unwrap_or_else(|| {
                    let [batch, _] = h.dims();
                    Tensor::zeros([batch, hidden], &h.device())
                });
                let gates = xp + hh;
                let gate = |k: usize| gates.clone().narrow(1, k * hidden, hidden);
                let (i, f, g, o) = (
                    sigmoid(gate(0)),
                    sigmoid(gate(1)),
                    gate(2).tanh(),
                    sigmoid(gate(3)),
                );
                let c_new = f * c + i * g;
                let mut h_new = o * c_new.clone().tanh();
                if let Some(w_hr_t) = &self.w_hr_t {
                    h_new = h_new.matmul(w_hr_t.clone());
                }
                (h_new, Some(c_new))
            }
            CellKind::Gru => {
                let block = |t: &Tensor<2>, k: usize| t.clone().narrow(1, k * hidden, hidden);
                let (xr, xz, xn) = (block(&xp, 0), block(&xp, 1), block(&xp, 2));
                let (hr, hz, hn) = (block(&hh, 0), block(&hh, 1), block(&hh, 2));
                let r = sigmoid(xr + hr);
                let z = sigmoid(xz + hz);
                let n = (xn + r * hn).tanh();
                // (1 - z) ⊙ n + z ⊙ h, written with one fewer temporary.
                let h_new = n.clone() + z * (h - n);
                (h_new, None)
            }
        }
    }
}
