//! Hidden state carried across consecutive batches for truncated BPTT.

use burn::tensor::Tensor;

/// A state that can be cut from the autodiff graph.
pub trait Detach {
    /// The same values, with no history: gradients stop here.
    fn detach(self) -> Self;
}

impl<const D: usize> Detach for Tensor<D> {
    fn detach(self) -> Self {
        Tensor::detach(self)
    }
}

impl Detach for rnn_models::LstmState {
    fn detach(self) -> Self {
        rnn_models::LstmState::detach(self)
    }
}

impl<const D: usize> Detach for rnn_models::RecurrentState<D> {
    fn detach(self) -> Self {
        rnn_models::RecurrentState::detach(self)
    }
}

impl<A: Detach, B: Detach> Detach for (A, B) {
    fn detach(self) -> Self {
        (self.0.detach(), self.1.detach())
    }
}

/// The state an [`Objective`](crate::Objective) carries from one window of a stream to the
/// next (the sin → cos and char-LM tutorials): the next window starts from it, but gradients
/// stop at the window boundary, because [`Carried::keep`] detaches it.
#[derive(Debug, Clone)]
pub struct Carried<S> {
    state: Option<S>,
}

impl<S> Default for Carried<S> {
    fn default() -> Self {
        Self { state: None }
    }
}

impl<S: Detach> Carried<S> {
    /// Nothing carried yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state to start the next window from (`None` at the start of a pass).
    pub fn take(&mut self) -> Option<S> {
        self.state.take()
    }

    /// Keeps the state a window ended with, detached.
    pub fn keep(&mut self, state: S) {
        self.state = Some(state.detach());
    }

    /// Forgets the state (call it from [`Objective::start_pass`](crate::Objective::start_pass)).
    pub fn reset(&mut self) {
        self.state = None;
    }
}
