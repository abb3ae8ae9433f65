//! TensorFlow's MNIST-as-sequences tutorial with a LSTM: each 28×28 image is read row by
//! row (28 steps of 28 pixels), the final hidden state is classified. `--dataset pixel` and
//! `permuted` give the harder 784-step variants. The program lives in `examples::mnist`,
//! shared with its bidirectional twin.
//!
//! `cargo run --release -p examples --bin mnist_rnn`  (target: Fashion-MNIST test accuracy ≥ 89 %)

use clap::Parser;
use examples::mnist::{Cli, run};

fn main() -> std::process::ExitCode {
    examples::finish(run(Cli::parse(), false))
}
