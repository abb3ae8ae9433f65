#!/usr/bin/env python3
"""PyTorch timings (CPU, or CUDA with "device": "cuda") for `cargo xtask bench` (run by rnn-bench; not meant to be called by hand).

Usage: bench_torch.py — prints {"ready": version} once torch is imported, then reads one spec
per line from stdin until it closes and answers each with one line on stdout, so that rnn-bench can time PyTorch right after its own layers, case by
case, without importing torch again. A spec is {"cases": [...], "threads": N, "warmup": W,
"min_iters": A, "max_iters": B, "budget_s": S, "device": "cpu" | "cuda"}, each case as
rnn-bench's `Case` serializes it; the answer {"torch": version, "threads": N, "device": D,
"results": [{"case", "mode", "median_ms", "min_ms", "max_ms", "iters"}]}. Same steps as the Rust side: input
[batch, seq, input] (batch_first), loss = output.sum(), backward through every parameter;
inference under torch.inference_mode().
"""
import json
import statistics
import sys
import time

import torch


def layer(case):
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[case["cell"]]
    return cls(
        case["input"],
        case["hidden"],
        num_layers=case["layers"],
        bidirectional=case["bidirectional"],
        batch_first=True,
    )


def measure(step, spec):
    for _ in range(spec["warmup"]):
        step()
    samples = []
    start = time.perf_counter()
    while len(samples) < spec["min_iters"] or (
        len(samples) < spec["max_iters"] and time.perf_counter() - start < spec["budget_s"]
    ):
        t = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t) * 1e3)
    return {
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "iters": len(samples),
    }


def time_cases(spec):
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    device = torch.device(spec.get("device", "cpu"))
    # GPU work is asynchronous: a step ends when the device is done, as on the Rust side.
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results = []
    for case in spec["cases"]:
        model = layer(case).to(device)
        x = torch.rand(case["batch"], case["seq"], case["input"], device=device) * 2 - 1

        def train():
            model.zero_grad(set_to_none=True)
            out, _ = model(x)
            out.sum().backward()
            sync()

        def infer():
            with torch.inference_mode():
                model(x)
            sync()

        for mode, step in (("train", train), ("infer", infer)):
            results.append({"case": case["name"], "mode": mode, **measure(step, spec)})
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "results": results,
    }


def main():
    # Ready: torch is imported, so rnn-bench can time its own layers without an import beside them.
    print(json.dumps({"ready": torch.__version__}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(time_cases(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
