#!/usr/bin/env python3
"""Epoch times of the PyTorch peers of three example programs, for examples/README.md.

Usage: examples_torch.py [--epochs N] [--threads T] [--seed S] [--valid-indices FILE]
                         [addition_rnn] [mnist_rnn] [mnist_birnn] [mnist_birnn_sample]

Each program is the same model, data size, batch and optimizer as our binary with its defaults
(one epoch = a training pass plus the validation pass the binary runs after it):
- addition_rnn: 50,000 reversed 3-digit questions one-hot over 12 characters, LSTM(128) encoder →
  repeat ×4 → LSTM(128) decoder → Linear(12) per step, Adam 1e-3, batch 128, 45,000 train /
  5,000 validation.
- mnist_rnn / mnist_birnn: Fashion-MNIST (Debian's dataset-fashion-mnist) rows as 28 steps of
  28 pixels, LSTM(128) / BiLSTM(128) (the BiLSTM with input dropout 0.1: one mask per sequence
  and pixel column), last hidden state → Linear(10), Adam 1e-3, batch 64, no validation pass
  (the binaries' defaults read the test set once, after training; the accuracy printed here is
  the test set's after the epoch, outside the timing).
- mnist_birnn_sample: `mnist_birnn --dataset mnist --valid-fraction 0.1` — the 5,000-digit
  sample embedded in rnn-datasets (4,000 train, 1,000 test), a seeded random tenth of the
  training digits held out for validation, BiLSTM(128) with input dropout 0.1, batch 64,
  Adam 1e-3 with the binary's step schedule (×0.3 every 10 epochs), 25 epochs by default;
  the test digits are read once, at the end (pass --epochs 25 for the binary's default).
  `--valid-indices DIR/valid_indices.json` (written by `mnist_birnn --dataset mnist
  --valid-fraction 0.1 --out DIR`) holds out exactly the binary's items instead.
Prints one line per epoch: program, epoch, seconds, validation accuracy. Run with the tuned
malloc (MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=268435456) for PyTorch's best.
"""
import argparse
import pathlib
import gzip
import json
import random
import time

import torch
from torch import nn

FASHION = "/usr/share/datasets/fashion-mnist"
SAMPLE = pathlib.Path(__file__).resolve().parent.parent / "crates/datasets/data/mnist-sample"


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def fashion():
    def load(prefix):
        x = idx(f"{FASHION}/{prefix}-images-idx3-ubyte.gz").float() / 255.0
        y = idx(f"{FASHION}/{prefix}-labels-idx1-ubyte.gz").long()
        return x, y

    return load("train"), load("t10k")


def addition(size=50_000, digits=3):
    chars = "0123456789+ "
    seen, questions, answers = set(), [], []
    rng = random.Random(0)
    while len(questions) < size:
        a = rng.randint(0, 10**digits - 1)
        b = rng.randint(0, 10**digits - 1)
        key = tuple(sorted((a, b)))
        if key in seen:
            continue
        seen.add(key)
        q = f"{a}+{b}".ljust(2 * digits + 1)[::-1]
        questions.append([chars.index(c) for c in q])
        answers.append([chars.index(c) for c in str(a + b).ljust(digits + 1)])
    x = nn.functional.one_hot(torch.tensor(questions), len(chars)).float()
    y = torch.tensor(answers)
    split = size - size // 10
    return (x[:split], y[:split]), (x[split:], y[split:])


class Classifier(nn.Module):
    def __init__(self, bidirectional, input_dropout=0.0):
        super().__init__()
        self.input_dropout = input_dropout
        self.lstm = nn.LSTM(28, 128, batch_first=True, bidirectional=bidirectional)
        self.out = nn.Linear(256 if bidirectional else 128, 10)

    def forward(self, x):
        if self.training and self.input_dropout > 0:
            # As rnn-models' input dropout: one mask per sequence and feature, the same at
            # every step, kept values scaled by 1 / (1 - p).
            keep = 1.0 - self.input_dropout
            x = x * torch.bernoulli(torch.full((x.shape[0], 1, x.shape[2]), keep)) / keep
        _, (h, _) = self.lstm(x)
        return self.out(torch.cat(list(h), dim=1))


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.LSTM(12, 128, batch_first=True)
        self.decoder = nn.LSTM(128, 128, batch_first=True)
        self.out = nn.Linear(128, 12)

    def forward(self, x):
        _, (h, _) = self.encoder(x)
        repeated = h[-1].unsqueeze(1).repeat(1, 4, 1)
        y, _ = self.decoder(repeated)
        return self.out(y)


def digit_sample(seed, fraction=0.1, valid_indices=None):
    """The embedded digits: (train, valid) split by a seeded permutation, or by the held-out
    indices our binary wrote (`--out DIR` → DIR/valid_indices.json), and test."""
    def load(prefix):
        x = idx(SAMPLE / f"{prefix}-images-idx3-ubyte.gz").float() / 255.0
        y = idx(SAMPLE / f"{prefix}-labels-idx1-ubyte.gz").long()
        return x.reshape(-1, 28, 28), y

    (x, y), test = load("train"), load("t10k")
    if valid_indices:
        v = torch.tensor(json.loads(pathlib.Path(valid_indices).read_text()))
        held_out = torch.zeros(len(x), dtype=torch.bool)
        held_out[v] = True
        t = torch.arange(len(x))[~held_out]
    else:
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        n_valid = round(len(x) * fraction)
        v, t = perm[:n_valid], perm[n_valid:]
    return (x[t], y[t]), (x[v], y[v]), test


def run(name, model, train, valid, epochs, per_step, schedule=None, batch=128, timed_valid=True):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=schedule, gamma=0.3) if schedule else None
    loss_fn = nn.CrossEntropyLoss()
    (xt, yt), (xv, yv) = train, valid
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx_ = perm[i : i + batch]
            logits = model(xt[idx_])
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), yt[idx_].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        if not timed_valid:
            seconds = time.perf_counter() - start
        model.eval()
        correct = 0
        with torch.inference_mode():
            for i in range(0, len(xv), 1000):
                pred = model(xv[i : i + 1000]).argmax(-1)
                hit = pred == yv[i : i + 1000]
                correct += int((hit.all(-1) if per_step else hit).sum())
        if timed_valid:
            seconds = time.perf_counter() - start
        held_out = "validation" if timed_valid else "test (untimed)"
        print(f"{name} epoch {epoch}: {seconds:.1f} s, {held_out} accuracy {100 * correct / len(xv):.2f} %", flush=True)
        if sched:
            sched.step()


def test_accuracy(model, test):
    model.eval()
    with torch.inference_mode():
        return 100 * float((model(test[0]).argmax(-1) == test[1]).float().mean())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid-indices", help="mnist_birnn_sample: hold out these training items "
                   "(the valid_indices.json our binary writes with --out) instead of a seeded tenth")
    programs = ["addition_rnn", "mnist_rnn", "mnist_birnn", "mnist_birnn_sample"]
    p.add_argument("programs", nargs="*", default=programs[:3], help=", ".join(programs))
    args = p.parse_args()
    # (argparse's `choices` would also check the default list as one value, and fail.)
    for name in args.programs:
        if name not in programs:
            p.error(f"unknown program {name!r}: choose from {', '.join(programs)}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, {args.threads} threads")
    for name in args.programs:
        if name == "mnist_birnn_sample":
            train, valid, test = digit_sample(args.seed, valid_indices=args.valid_indices)
            model = Classifier(bidirectional=True, input_dropout=0.1)
            run(name, model, train, valid, args.epochs, per_step=False, schedule=10, batch=64)
            print(f"{name} seed {args.seed}: test accuracy {test_accuracy(model, test):.2f} %", flush=True)
        elif name == "addition_rnn":
            train, valid = addition()
            run(name, Seq2Seq(), train, valid, args.epochs, per_step=True)
        else:  # mnist_rnn, mnist_birnn
            train, valid = fashion()
            bidirectional = name == "mnist_birnn"
            model = Classifier(bidirectional, input_dropout=0.1 if bidirectional else 0.0)
            batch = 64
            run(name, model, (train[0].reshape(-1, 28, 28), train[1]), (valid[0].reshape(-1, 28, 28), valid[1]), args.epochs,
                per_step=False, batch=batch, timed_valid=False)


if __name__ == "__main__":
    main()
