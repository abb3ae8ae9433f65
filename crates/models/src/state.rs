use burn::tensor::Tensor;

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
