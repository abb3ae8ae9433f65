//! The two small sequence-to-sequence helpers of the Keras tutorials.
//!
//! Keras `TimeDistributed(Dense(n))` needs no helper here: Burn's
//! [`Linear`](burn::nn::Linear) already maps the last axis of a tensor of any rank, so
//! `linear.forward(x)` on `x: [batch, seq, features]` applies the same layer at every step and
//! returns `[batch, seq, n]`.

use burn::tensor::Tensor;

/// Keras `RepeatVector(steps)`: feeds one vector to every step of a decoder.
///
/// # Shapes
/// `x: [batch, features]` → `[batch, steps, features]`.
///
/// ```
/// # use burn::tensor::{Device, Tensor};
/// # let device = Device::flex();
/// let encoded = Tensor::<2>::ones([4, 128], &device);
/// let repeated = rnn_models::repeat_vector(encoded, 4);
/// assert_eq!(repeated.dims(), [4, 4, 128]);
/// ```
pub fn repeat_vector(x: Tensor<2>, steps: usize) -> Tensor<3> {
    x.unsqueeze_dim::<3>(1).repeat_dim(1, steps)
}
