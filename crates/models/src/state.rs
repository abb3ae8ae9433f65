//! The states layers and cells carry between calls, and how the shared driver takes them
//! apart and puts them back together.

use burn::tensor::Tensor;

/// How the shared recurrence driver reads a state (`h`, and `c` for LSTM) and builds one from
/// its rows. Implemented by `Tensor<D>` (RNN, GRU), [`LstmState`] / [`LstmCellState`] and
/// [`RecurrentState`]; users only name it in bounds.
pub trait StateParts<const D: usize>: Sized + Clone + std::fmt::Debug + Send {
    /// `(h, c)`; `c` only for an LSTM state.
    #[doc(hidden)]
    fn into_parts(self) -> (Tensor<D>, Option<Tensor<D>>);

    /// Concatenates per-layer rows along axis 0: `h` rows always, `c` rows for LSTM (empty
    /// otherwise). The driver gives an LSTM layer's kind a `c` row for every `h` row.
    #[doc(hidden)]
    fn from_rows(h: Vec<Tensor<D>>, c: Vec<Tensor<D>>) -> Self;
}

/// Rows side by side along axis 0 (one row: itself, no copy).
fn cat_rows<const D: usize>(mut rows: Vec<Tensor<D>>) -> Tensor<D> {
    if rows.len() == 1 {
        rows.swap_remove(0)
    } else {
        Tensor::cat(rows, 0)
    }
}

impl<const D: usize> StateParts<D> for Tensor<D> {
    fn into_parts(self) -> (Tensor<D>, Option<Tensor<D>>) {
        (self, None)
    }

    fn from_rows(h: Vec<Tensor<D>>, _: Vec<Tensor<D>>) -> Self {
        cat_rows(h)
    }
}

impl StateParts<3> for LstmState {
    fn into_parts(self) -> (Tensor<3>, Option<Tensor<3>>) {
        (self.h, Some(self.c))
    }

    fn from_rows(h: Vec<Tensor<3>>, c: Vec<Tensor<3>>) -> Self {
        Self::new(cat_rows(h), cat_rows(c))
    }
}

impl StateParts<2> for LstmCellState {
    fn into_parts(self) -> (Tensor<2>, Option<Tensor<2>>) {
        (self.h, Some(self.c))
    }

    fn from_rows(h: Vec<Tensor<2>>, c: Vec<Tensor<2>>) -> Self {
        Self::new(cat_rows(h), cat_rows(c))
    }
}

impl<const D: usize> StateParts<D> for RecurrentState<D> {
    fn into_parts(self) -> (Tensor<D>, Option<Tensor<D>>) {
        match self {
            RecurrentState::Hidden(h) => (h, None),
            RecurrentState::Lstm { h, c } => (h, Some(c)),
        }
    }

    fn from_rows(h: Vec<Tensor<D>>, c: Vec<Tensor<D>>) -> Self {
        if c.is_empty() {
            RecurrentState::Hidden(cat_rows(h))
        } else {
            RecurrentState::Lstm {
                h: cat_rows(h),
                c: cat_rows(c),
            }
        }
    }
}

/// The state of a [`Recurrent`](crate::Recurrent) layer (`D = 3`, `[layers·dirs, batch, ·]`)
/// or of a cell picked at run time (`D = 2`, `[batch, ·]`): `h` alone for RNN and GRU, `(h, c)`
/// for LSTM.
#[derive(Debug, Clone)]
// A state moves once per call; boxing the LSTM variant would only make matching on it clumsier.
#[allow(clippy::large_enum_variant)]
pub enum RecurrentState<const D: usize> {
    /// The hidden state of an RNN or GRU.
    Hidden(Tensor<D>),
    /// An LSTM's hidden and cell states.
    Lstm {
        /// Hidden state `h`.
        h: Tensor<D>,
        /// Cell state `c`.
        c: Tensor<D>,
    },
}

impl<const D: usize> RecurrentState<D> {
    /// The hidden state `h` (what a classifier reads).
    pub fn h(&self) -> &Tensor<D> {
        match self {
            RecurrentState::Hidden(h) | RecurrentState::Lstm { h, .. } => h,
        }
    }

    /// Takes the hidden state `h`, dropping an LSTM's `c`.
    pub fn into_h(self) -> Tensor<D> {
        match self {
            RecurrentState::Hidden(h) | RecurrentState::Lstm { h, .. } => h,
        }
    }

    /// Cuts the state from the autodiff graph, for truncated BPTT across windows.
    pub fn detach(self) -> Self {
        match self {
            RecurrentState::Hidden(h) => RecurrentState::Hidden(h.detach()),
            RecurrentState::Lstm { h, c } => RecurrentState::Lstm {
                h: h.detach(),
                c: c.detach(),
            },
        }
    }
}

impl From<LstmState> for RecurrentState<3> {
    fn from(state: LstmState) -> Self {
        RecurrentState::Lstm {
            h: state.h,
            c: state.c,
        }
    }
}

impl From<LstmCellState> for RecurrentState<2> {
    fn from(state: LstmCellState) -> Self {
        RecurrentState::Lstm {
            h: state.h,
            c: state.c,
        }
    }
}

impl<const D: usize> From<Tensor<D>> for RecurrentState<D> {
    fn from(h: Tensor<D>) -> Self {
        RecurrentState::Hidden(h)
    }
}

/// The `(h, c)` pair of an LSTM layer, in PyTorch's shapes and order.
///
/// - `h`: `[num_layers · num_directions, batch, out]` where `out` is `proj_size` when
///   projecting, else `hidden_size`;
/// - `c`: `[num_layers · num_directions, batch, hidden_size]`.
///
/// Rows are layer-major, forward direction before reverse: row `2·k + 1` is layer `k`'s reverse
/// direction in a bidirectional layer.
#[derive(Debug, Clone)]
pub struct LstmState {
    /// Hidden state `h`.
    pub h: Tensor<3>,
    /// Cell state `c`.
    pub c: Tensor<3>,
}

impl LstmState {
    /// Wraps an `(h, c)` pair.
    pub fn new(h: Tensor<3>, c: Tensor<3>) -> Self {
        Self { h, c }
    }

    /// Cuts both tensors from the autodiff graph, for truncated BPTT across windows.
    pub fn detach(self) -> Self {
        Self {
            h: self.h.detach(),
            c: self.c.detach(),
        }
    }
}

/// The `(h, c)` pair of an [`LstmCell`](crate::LstmCell): both `[batch, hidden]`.
#[derive(Debug, Clone)]
pub struct LstmCellState {
    /// Hidden state `h`: `[batch, hidden]`.
    pub h: Tensor<2>,
    /// Cell state `c`: `[batch, hidden]`.
    pub c: Tensor<2>,
}

impl LstmCellState {
    /// Wraps an `(h, c)` pair.
    pub fn new(h: Tensor<2>, c: Tensor<2>) -> Self {
        Self { h, c }
    }

    /// Cuts both tensors from the autodiff graph.
    pub fn detach(self) -> Self {
        Self {
            h: self.h.detach(),
            c: self.c.detach(),
        }
    }
}

/// The last layer's final hidden state with its directions side by side: PyTorch's `h_n[-1]`,
/// or `torch.cat((h_n[-2], h_n[-1]), dim=1)` when bidirectional — what a classifier reads.
///
/// `h_n: [num_layers · directions, batch, hidden]` → `[batch, directions · hidden]`.
/// `directions` is clamped to `1..=rows`, so a wrong count cannot panic.
pub fn last_layer(h_n: Tensor<3>, directions: usize) -> Tensor<2> {
    let [rows, batch, hidden] = h_n.dims();
    let d = directions.clamp(1, rows.max(1));
    h_n.narrow(0, rows - d, d)
        .swap_dims(0, 1)
        .reshape([batch, d * hidden])
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    #[test]
    fn last_layer_takes_the_top_rows_forward_then_reverse() {
        // 2 layers × 2 directions, batch 1, hidden 2: row r holds [r, r + 0.5].
        let v: Vec<f32> = (0..4).flat_map(|r| [r as f32, r as f32 + 0.5]).collect();
        let h = Tensor::<3>::from_data(TensorData::new(v, [4, 1, 2]), &Device::flex());
        let top: Vec<f32> = last_layer(h.clone(), 2).into_data().try_to_vec().unwrap();
        assert_eq!(top, vec![2.0, 2.5, 3.0, 3.5]);
        let uni: Vec<f32> = last_layer(h, 1).into_data().try_to_vec().unwrap();
        assert_eq!(uni, vec![3.0, 3.5]);
    }
}
