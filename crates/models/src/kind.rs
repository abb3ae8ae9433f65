/// Which recurrence a layer or cell runs. One enum drives the shared gate math in
/// `weights.rs`, so the three layer types cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellKind {
    /// Elman RNN, `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// Elman RNN with ReLU instead of tanh.
    RnnRelu,
    /// LSTM with PyTorch's gate order i, f, g, o.
    Lstm,
    /// GRU with PyTorch's gate order r, z, n.
    Gru,
}

impl CellKind {
    /// How many hidden-sized gate blocks the weight matrices stack: 1, 4 or 3.
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }
}
