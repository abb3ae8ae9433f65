//! The numpy "RNN from scratch" tutorial in plain Rust: parameters U, V, W; the forward pass;
//! backpropagation through time written by hand (truncated at 4 steps); a finite-difference
//! gradient check; a check of the hand-written gradients against Burn's autodiff; SGD that
//! halves the learning rate when the loss rises; a character language model on a text.
//!
//! `cargo run --release -p examples --bin rnn_from_scratch`
//!
//! No tensor library in the model on purpose: the point of the tutorial is to see every
//! multiplication. Burn appears only as the independent referee of the gradients.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::Parser;
use examples::CommonArgs;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rnn_datasets::CharCorpus;
use rnn_models::StateDict;

/// A character RNN trained with hand-written BPTT.
#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// UTF-8 text to learn from [default: the built-in Gettysburg Address, public domain].
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Hidden units.
    #[arg(long, default_value_t = 100, value_parser = examples::at_least_one)]
    hidden: usize,
    /// Characters per training sequence.
    #[arg(long, default_value_t = 25)]
    seq_len: usize,
    /// BPTT truncation (steps back from each output).
    #[arg(long, default_value_t = 4)]
    bptt_truncate: usize,
    /// Passes over the text.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Initial SGD learning rate.
    #[arg(long, default_value_t = 0.005)]
    lr: f64,
    /// Use only the first this many characters of the corpus.
    #[arg(long)]
    limit: Option<usize>,
    /// Save U, V, W here as .safetensors at the end.
    #[arg(long)]
    save: Option<PathBuf>,
}

/// Row-major `rows × cols` matrix of f64.
#[derive(Clone, Debug)]
struct Mat {
    rows: usize,
    cols: usize,
    v: Vec<f64>,
}

impl Mat {
    fn zeros(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            v: vec![0.0; rows * cols],
        }
    }
    /// Uniform in ±1/√fan_in, as the tutorial initializes.
    fn random(rows: usize, cols: usize, fan_in: usize, rng: &mut StdRng) -> Self {
        let k = 1.0 / (fan_in as f64).sqrt();
        Mat {
            rows,
            cols,
            v: (0..rows * cols).map(|_| rng.random_range(-k..k)).collect(),
        }
    }
    fn at(&self, r: usize, c: usize) -> f64 {
        self.v[r * self.cols + c]
    }
    fn add(&mut self, r: usize, c: usize, x: f64) {
        self.v[r * self.cols + c] += x;
    }
    /// `self · x`.
    fn mul(&self, x: &[f64]) -> Vec<f64> {
        self.v
            .chunks(self.cols)
            .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    }
    /// `selfᵀ · x`.
    fn mul_t(&self, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.cols];
        for (row, xr) in self.v.chunks(self.cols).zip(x) {
            for (o, a) in out.iter_mut().zip(row) {
                *o += a * xr;
            }
        }
        out
    }
}

/// `s_t = tanh(U x_t + W s_{t−1})`, `o_t = softmax(V s_t)`; `x_t` one-hot, so `U x_t` is a column.
#[derive(Clone, Debug)]
struct Rnn {
    u: Mat, // [hidden, vocab]
    v: Mat, // [vocab, hidden]
    w: Mat, // [hidden, hidden]
}

struct Grads {
    u: Mat,
    v: Mat,
    w: Mat,
}

impl Rnn {
    fn new(vocab: usize, hidden: usize, rng: &mut StdRng) -> Self {
        Rnn {
            u: Mat::random(hidden, vocab, vocab, rng),
            v: Mat::random(vocab, hidden, hidden, rng),
            w: Mat::random(hidden, hidden, hidden, rng),
        }
    }

    /// States `s` (with `s[0]` the zero initial state) and output probabilities `o`.
    fn forward(&self, x: &[u32]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let hidden = self.w.rows;
        let mut s = vec![vec![0.0; hidden]];
        let mut o = Vec::with_capacity(x.len());
        for &xt in x {
            let ws = self.w.mul(&s[s.len() - 1]);
            let st: Vec<f64> = (0..hidden)
                .map(|h| (self.u.at(h, xt as usize) + ws[h]).tanh())
                .collect();
            let logits = self.v.mul(&st);
            let max = logits.iter().copied().fold(f64::MIN, f64::max);
            let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let z: f64 = e.iter().sum();
            o.push(e.iter().map(|v| v / z).collect());
            s.push(st);
        }
        (s, o)
    }

    /// Total cross-entropy `−Σ_t log o_t[y_t]`.
    fn loss(&self, x: &[u32], y: &[u32]) -> f64 {
        let (_, o) = self.forward(x);
        o.iter().zip(y).map(|(ot, &yt)| -ot[yt as usize].ln()).sum()
    }

    /// The tutorial's BPTT: for each output, walk back at most `truncate` steps.
    fn bptt(&self, x: &[u32], y: &[u32], truncate: usize) -> Grads {
        let (s, o) = self.forward(x);
        let mut g = Grads {
            u: Mat::zeros(self.u.rows, self.u.cols),
            v: Mat::zeros(self.v.rows, self.v.cols),
            w: Mat::zeros(self.w.rows, self.w.cols),
        };
        for t in (0..x.len()).rev() {
            let mut delta_o = o[t].clone();
            delta_o[y[t] as usize] -= 1.0;
            let st = &s[t + 1];
            for (r, d) in delta_o.iter().enumerate() {
                for (c, sv) in st.iter().enumerate() {
                    g.v.add(r, c, d * sv);
                }
            }
            let back = self.v.mul_t(&delta_o);
            let mut delta: Vec<f64> = back
                .iter()
                .zip(st)
                .map(|(b, sv)| b * (1.0 - sv * sv))
                .collect();
            for step in (t.saturating_sub(truncate)..=t).rev() {
                let prev = &s[step]; // s_{step−1}
                for (r, d) in delta.iter().enumerate() {
                    for (c, pv) in prev.iter().enumerate() {
                        g.w.add(r, c, d * pv);
                    }
                    g.u.add(r, x[step] as usize, *d);
                }
                let back = self.w.mul_t(&delta);
                delta = back
                    .iter()
                    .zip(prev)
                    .map(|(b, pv)| b * (1.0 - pv * pv))
                    .collect();
            }
        }
        g
    }

    fn sgd_step(&mut self, g: &Grads, lr: f64) {
        for (p, d) in [
            (&mut self.u, &g.u),
            (&mut self.v, &g.v),
            (&mut self.w, &g.w),
        ] {
            p.v.iter_mut().zip(&d.v).for_each(|(a, b)| *a -= lr * b);
        }
    }
}

/// The tutorial's gradient check: central differences with h = 1e-3 on every parameter.
/// Returns the largest relative error.
fn gradient_check(model: &Rnn, x: &[u32], y: &[u32]) -> f64 {
    let g = model.bptt(x, y, x.len());
    let mut worst = 0f64;
    for which in 0..3 {
        let analytic = [&g.u, &g.v, &g.w][which];
        for i in 0..analytic.v.len() {
            let mut plus = model.clone();
            let mut minus = model.clone();
            [&mut plus.u, &mut plus.v, &mut plus.w][which].v[i] += 1e-3;
            [&mut minus.u, &mut minus.v, &mut minus.w][which].v[i] -= 1e-3;
            let numeric = (plus.loss(x, y) - minus.loss(x, y)) / 2e-3;
            let a = analytic.v[i];
            let denom = (a.abs() + numeric.abs()).max(1e-8);
            worst = worst.max((a - numeric).abs() / denom);
        }
    }
    worst
}

/// Burn's autodiff on the same forward pass (f32): the largest error relative to each
/// gradient's scale against the hand-written full BPTT.
fn autodiff_check(model: &Rnn, x: &[u32], y: &[u32], device: &Device) -> f64 {
    let ad = device.clone().autodiff();
    let param = |m: &Mat| {
        let v: Vec<f32> = m.v.iter().map(|&v| v as f32).collect();
        Tensor::<2>::from_data(TensorData::new(v, [m.rows, m.cols]), &ad).require_grad()
    };
    let (u, v, w) = (param(&model.u), param(&model.v), param(&model.w));
    let hidden = model.w.rows;
    let mut s = Tensor::<2>::zeros([hidden, 1], &ad);
    let mut loss = Tensor::<1>::zeros([1], &ad);
    for (&xt, &yt) in x.iter().zip(y) {
        let col = u.clone().narrow(1, xt as usize, 1);
        s = (col + w.clone().matmul(s)).tanh();
        let logits = v
            .clone()
            .matmul(s.clone())
            .reshape([1, model.v.rows as i64]);
        let log_probs = burn::tensor::activation::log_softmax(logits, 1);
        let idx = Tensor::<2, Int>::from_data(TensorData::new(vec![yt as i64], [1, 1]), &ad);
        loss = loss - log_probs.gather(1, idx).reshape([1]);
    }
    let grads = loss.backward();
    let hand = model.bptt(x, y, x.len());
    let mut worst = 0f64;
    for (t, h) in [(&u, &hand.u), (&v, &hand.v), (&w, &hand.w)] {
        let auto = t
            .grad(&grads)
            .map(|g| {
                g.into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let scale = h.v.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
        let diff = auto
            .iter()
            .zip(&h.v)
            .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        worst = worst.max(if auto.len() == h.v.len() {
            diff / scale
        } else {
            f64::INFINITY
        });
    }
    worst
}

fn main() -> std::process::ExitCode {
    examples::finish(run())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let selected = cli.common.select()?;
    let mut corpus = match &cli.corpus {
        Some(path) => CharCorpus::from_file(path)?,
        None => CharCorpus::builtin(),
    };
    if let Some(limit) = cli.limit {
        corpus = CharCorpus::from_text(&corpus.decode(&corpus.ids()[..limit.min(corpus.len())]))?;
    }
    let vocab = corpus.vocab().len();
    let stream = corpus.stream(cli.seq_len)?;
    let windows: Vec<(Vec<u32>, Vec<u32>)> = (0..burn::data::dataset::Dataset::len(&stream))
        .filter_map(|i| burn::data::dataset::Dataset::get(&stream, i).ok())
        .map(|item| (item.input, item.target))
        .collect();
    println!(
        "corpus: {} characters, vocabulary {vocab}, {} sequences of {}",
        corpus.len(),
        windows.len(),
        cli.seq_len
    );
    let mut rng = StdRng::seed_from_u64(cli.common.seed);

    // 1. Gradient check on a small model, as the tutorial does before training.
    let small = Rnn::new(vocab, 10, &mut rng);
    let (x, y) = (&windows[0].0[..8], &windows[0].1[..8]);
    let fd = gradient_check(&small, x, y);
    println!("gradient check (finite differences, h = 1e-3): max relative error {fd:.2e}");
    if fd > 1e-4 {
        bail!("gradient check failed: {fd:.2e} > 1e-4");
    }
    // 2. Hand-written full BPTT against Burn's autodiff.
    let ad = autodiff_check(&small, x, y, selected.device());
    println!("hand BPTT vs autodiff (full BPTT): max relative error {ad:.2e}");
    if ad > 1e-4 {
        bail!("hand BPTT disagrees with autodiff: {ad:.2e} > 1e-4");
    }

    // 3. SGD with BPTT truncated at `bptt_truncate` steps; halve the rate when the loss rises.
    let mut model = Rnn::new(vocab, cli.hidden, &mut rng);
    let per_char = |m: &Rnn| {
        let total: f64 = windows.iter().map(|(x, y)| m.loss(x, y)).sum();
        total / (windows.len() * cli.seq_len) as f64
    };
    let mut lr = cli.lr;
    let mut previous = per_char(&model);
    println!(
        "epoch 0: loss {previous:.4} per character (uniform guessing: {:.4})",
        (vocab as f64).ln()
    );
    for epoch in 1..=cli.epochs {
        for (x, y) in &windows {
            let g = model.bptt(x, y, cli.bptt_truncate);
            model.sgd_step(&g, lr);
        }
        let loss = per_char(&model);
        println!("epoch {epoch}: loss {loss:.4} per character, lr {lr:.2e}");
        if loss > previous {
            lr *= 0.5;
            println!("  loss rose: learning rate halved to {lr:.2e}");
        }
        previous = loss;
    }

    if let Some(path) = &cli.save {
        let mut dict = StateDict::new();
        for (name, m) in [("U", &model.u), ("V", &model.v), ("W", &model.w)] {
            dict.insert(
                name,
                vec![m.rows, m.cols],
                m.v.iter().map(|&v| v as f32).collect(),
            )?;
        }
        dict.save_safetensors(path)?;
        println!("saved U, V, W to {}", path.display());
    }
    Ok(())
}
