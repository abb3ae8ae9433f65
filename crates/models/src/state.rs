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
