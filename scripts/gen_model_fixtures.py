#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures that `crates/models/tests` read.

    pip install torch safetensors && python3 scripts/gen_model_fixtures.py

Every case runs a torch.nn recurrent layer (or cell) in float64 on float32-representable inputs
and weights, and records inputs, weights, outputs, final states and the gradients of the scalar
loss  sum(out * w_out) + sum(h_n * w_h) [+ sum(c_n * w_c)]  with respect to the input, the
initial states and every parameter. Variable-length cases go through pack_padded_sequence /
pad_packed_sequence. The Rust tests need no Python: the JSON files are committed.
"""
import itertools
import json
import os

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "models", "tests", "fixtures")
B, T, I, H, P = 3, 5, 4, 3, 2
LENGTHS = [5, 2, 4]  # unsorted, with one full-length sequence


def f32(t):
    """Round to float32 then widen, so both sides start from identical values."""
    return t.float().double()


def enc(t):
    return {"shape": list(t.shape), "data": [float(x) for x in t.detach().double().flatten()]}


def make_layer(kind, layers, bi, batch_first):
    common = dict(num_layers=layers, bidirectional=bi, batch_first=batch_first)
    if kind == "rnn_tanh":
        return torch.nn.RNN(I, H, nonlinearity="tanh", **common)
    if kind == "rnn_relu":
        return torch.nn.RNN(I, H, nonlinearity="relu", **common)
    if kind == "lstm":
        return torch.nn.LSTM(I, H, **common)
    if kind == "lstm_proj":
        return torch.nn.LSTM(I, H, proj_size=P, **common)
    if kind == "gru":
        return torch.nn.GRU(I, H, **common)
    raise ValueError(kind)


def layer_case(kind, layers, bi, batch_first, variable, seed):
    torch.manual_seed(seed)
    layer = make_layer(kind, layers, bi, batch_first).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(f32(torch.empty_like(p).uniform_(-0.6, 0.6)))
    dirs = 2 if bi else 1
    out_size = P if kind == "lstm_proj" else H
    x = f32(torch.randn(B, T, I) if batch_first else torch.randn(T, B, I)).requires_grad_()
    h0 = f32(torch.randn(layers * dirs, B, out_size) * 0.5).requires_grad_()
    is_lstm = kind.startswith("lstm")
    c0 = f32(torch.randn(layers * dirs, B, H) * 0.5).requires_grad_() if is_lstm else None
    state = (h0, c0) if is_lstm else h0
    if variable:
        packed = pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False)
        out, st = layer(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    else:
        out, st = layer(x, state)
    h_n, c_n = st if is_lstm else (st, None)
    w_out = f32(torch.randn_like(out))
    w_h = f32(torch.randn_like(h_n))
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    tensors = {"input": x, "h0": h0, "output": out, "h_n": h_n, "w_out": w_out, "w_h": w_h}
    if is_lstm:
        w_c = f32(torch.randn_like(c_n))
        loss = loss + (c_n * w_c).sum()
        tensors.update({"c0": c0, "c_n": c_n, "w_c": w_c})
    loss.backward()
    grads = {"input": x.grad, "h0": h0.grad}
    if is_lstm:
        grads["c0"] = c0.grad
    params = dict(layer.named_parameters())
    for name, p in params.items():
        grads[name] = p.grad
    name = f"{kind}_l{layers}_{'bi' if bi else 'uni'}_{'bf' if batch_first else 'sf'}_{'var' if variable else 'eq'}"
    return name, {
        "kind": kind,
        "input_size": I,
        "hidden_size": H,
        "proj_size": P if kind == "lstm_proj" else 0,
        "num_layers": layers,
        "bidirectional": bi,
        "batch_first": batch_first,
        "lengths": LENGTHS if variable else None,
        "tensors": {k: enc(v) for k, v in tensors.items()},
        "params": {k: enc(v) for k, v in params.items()},
        "grads": {k: enc(v) for k, v in grads.items()},
    }


def cell_case(kind, seed):
    torch.manual_seed(seed)
    cell = {"rnn_cell": lambda: torch.nn.RNNCell(I, H), "lstm_cell": lambda: torch.nn.LSTMCell(I, H),
            "gru_cell": lambda: torch.nn.GRUCell(I, H)}[kind]().double()
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(f32(torch.empty_like(p).uniform_(-0.6, 0.6)))
    x = f32(torch.randn(B, I)).requires_grad_()
    hx = f32(torch.randn(B, H) * 0.5).requires_grad_()
    tensors = {"input": x, "h0": hx}
    if kind == "lstm_cell":
        cx = f32(torch.randn(B, H) * 0.5).requires_grad_()
        h, c = cell(x, (hx, cx))
        w_h, w_c = f32(torch.randn_like(h)), f32(torch.randn_like(c))
        loss = (h * w_h).sum() + (c * w_c).sum()
        tensors.update({"c0": cx, "h_n": h, "c_n": c, "w_h": w_h, "w_c": w_c})
    else:
        h = cell(x, hx)
        w_h = f32(torch.randn_like(h))
        loss = (h * w_h).sum()
        tensors.update({"h_n": h, "w_h": w_h})
    loss.backward()
    grads = {"input": x.grad, "h0": hx.grad}
    if kind == "lstm_cell":
        grads["c0"] = cx.grad
    params = dict(cell.named_parameters())
    grads.update({k: p.grad for k, p in params.items()})
    return kind, {
        "kind": kind, "input_size": I, "hidden_size": H, "proj_size": 0, "num_layers": 1,
        "bidirectional": False, "batch_first": False, "lengths": None,
        "tensors": {k: enc(v) for k, v in tensors.items()},
        "params": {k: enc(v) for k, v in params.items()},
        "grads": {k: enc(v) for k, v in grads.items()},
    }


def state_dict_files():
    """A trained-looking nn.LSTM saved both ways, with the output it must reproduce."""
    from safetensors.torch import save_file

    torch.manual_seed(7)
    lstm = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(B, T, I)
    with torch.no_grad():
        out, (h, c) = lstm(x)
    sd = {k: v.contiguous() for k, v in lstm.state_dict().items()}
    save_file(sd, os.path.join(OUT, "lstm_l2_bi.safetensors"))
    torch.save(sd, os.path.join(OUT, "lstm_l2_bi.pt"))
    with open(os.path.join(OUT, "lstm_l2_bi_io.json"), "w") as f:
        json.dump({"input": enc(x), "output": enc(out), "h_n": enc(h), "c_n": enc(c)}, f)


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = {}
    seed = 0
    for kind, layers, bi, bf, var in itertools.product(
            ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"], [1, 2], [False, True], [True, False], [False, True]):
        name, case = layer_case(kind, layers, bi, bf, var, seed)
        cases[name] = case
        seed += 1
    for kind in ["rnn_cell", "lstm_cell", "gru_cell"]:
        name, case = cell_case(kind, seed)
        cases[name] = case
        seed += 1
    for kind in ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru", "cell"]:
        subset = {k: v for k, v in cases.items() if k.startswith(kind) or (kind == "cell" and k.endswith("_cell"))}
        if kind == "lstm":
            subset = {k: v for k, v in subset.items() if not k.startswith("lstm_proj") and not k.endswith("_cell")}
        if kind == "gru":
            subset = {k: v for k, v in subset.items() if not k.endswith("_cell")}
        with open(os.path.join(OUT, f"parity_{kind}.json"), "w") as f:
            json.dump(subset, f, separators=(",", ":"))
        print(f"parity_{kind}.json: {len(subset)} cases")
    state_dict_files()


if __name__ == "__main__":
    main()
