//! The PyTorch shape walk-through of the RNN tutorial: what goes into `nn.Linear`, `nn.RNN`
//! and `nn.LSTM`, and what comes out, seq-first (PyTorch's default) and batch-first.
//!
//! `cargo run --release -p examples --bin rnn_shapes -- --backend flex`

use anyhow::Result;
use burn::nn::LinearConfig;
use burn::tensor::{Distribution, Tensor};
use clap::Parser;
use examples::CommonArgs;
use rnn_models::{LstmConfig, RnnConfig};

/// Prints the shapes of the tutorial's Linear, RNN and LSTM examples.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> std::process::ExitCode {
    examples::finish(run())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let selected = cli.common.select()?;
    let device = selected.device();
    let normal = Distribution::Normal(0.0, 1.0);

    // line = nn.Linear(2, 4); output = line(torch.randn(128, 2))
    let line = LinearConfig::new(2, 4).init(device);
    println!(
        "nn.Linear(2, 4): weight {:?} (burn stores [in, out])",
        line.weight.dims()
    );
    let output = line.forward(Tensor::<2>::random([128, 2], normal, device));
    println!("  input [128, 2] -> output {:?}", output.dims());

    // rnn_seq = nn.RNN(5, 10, 2); out, ht = rnn_seq(torch.randn(6, 3, 5))
    let rnn_seq = RnnConfig::new(5, 10).with_num_layers(2).init(device)?;
    let (out, ht) = rnn_seq.forward(Tensor::<3>::random([6, 3, 5], normal, device), None)?;
    println!("nn.RNN(5, 10, 2), input [6, 3, 5] = [seq, batch, input]");
    println!("  out {:?} = [seq, batch, hidden]", out.dims());
    println!(
        "  ht  {:?} = [num_layers*num_directions, batch, hidden]",
        ht.dims()
    );

    // lstm_seq = nn.LSTM(50, 100, num_layers=2); out, (h, c) = lstm_seq(torch.randn(10, 3, 50))
    let lstm_seq = LstmConfig::new(50, 100).with_num_layers(2).init(device)?;
    let (out, state) = lstm_seq.forward(Tensor::<3>::random([10, 3, 50], normal, device), None)?;
    println!("nn.LSTM(50, 100, num_layers=2), input [10, 3, 50]");
    println!("  out {:?}", out.dims());
    println!("  h   {:?}", state.h.dims());
    println!("  c   {:?}", state.c.dims());

    // The same LSTM with batch_first=True takes and returns [batch, seq, feature]; states are
    // [layers*dirs, batch, hidden] either way, as in PyTorch.
    let lstm_bf = LstmConfig::new(50, 100)
        .with_num_layers(2)
        .with_batch_first(true)
        .init(device)?;
    let (out, state) = lstm_bf.forward(Tensor::<3>::random([3, 10, 50], normal, device), None)?;
    println!("nn.LSTM(50, 100, num_layers=2, batch_first=True), input [3, 10, 50]");
    println!("  out {:?}", out.dims());
    println!("  h   {:?}", state.h.dims());
    println!("  c   {:?}", state.c.dims());

    // Bidirectional doubles the output features and the state rows.
    let bi = LstmConfig::new(50, 100)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(device)?;
    let (out, state) = bi.forward(Tensor::<3>::random([10, 3, 50], normal, device), None)?;
    println!("nn.LSTM(50, 100, num_layers=2, bidirectional=True), input [10, 3, 50]");
    println!("  out {:?}", out.dims());
    println!("  h   {:?}", state.h.dims());
    Ok(())
}
