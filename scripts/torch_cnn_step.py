#!/usr/bin/env python3
"""The MNIST-example CNN training step in PyTorch, like-for-like with `afu bench cnn-step`.

Same network as afu's `MnistCnn` (reference reading: activation after conv1 and fc1 and on the
output, none after conv2), batch 64 of 1x28x28, element-wise dropout 0.25/0.5, NLL on
log-softmax, Adam (PyTorch defaults, lr 1e-3). Variants:

  relu               torch's relu
  afu-<base>-<N>-layer   the paper's AFU formulation, one per activation slot: the activations
                     flattened to a column, Linear(1,N) -> psi -> Linear(N,1), reshaped back
                     (psi: relu, sigmoid or mish)

Measured the way a user would: denormals flushed (`torch.set_flush_denormal`), real batches
(shuffled MNIST-format IDX training images from --data, normalised to mean 0 / std 1 over the
set; without --data, the stated fallback: fresh N(0,1) images and uniform random labels each
step), >= 30 warm-up steps, then the timed steps; prints the median, p10 and p90 step time in
milliseconds (one JSON line with --json). Not needed by afu or its tests: run it where PyTorch
is installed to put afu's numbers side by side with PyTorch's on the same machine.

    python3 scripts/torch_cnn_step.py [--variants relu,afu-relu-8-layer] [--steps 100]
        [--warmup 30] [--threads N] [--data DIR] [--json]
"""
import argparse
import gzip
import json
import os
import platform
import statistics
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class PaperAfu(nn.Module):
    """The paper's AFU: Linear(1,N) -> psi -> Linear(N,1) applied to every element."""

    def __init__(self, n, base):
        super().__init__()
        self.inner = nn.Linear(1, n)
        self.outer = nn.Linear(n, 1)
        self.psi = {"relu": F.relu, "sigmoid": torch.sigmoid, "mish": F.mish}[base]

    def forward(self, x):
        shape = x.shape
        return self.outer(self.psi(self.inner(x.reshape(-1, 1)))).reshape(shape)


def activation(variant):
    if variant == "relu":
        return nn.ReLU()
    parts = variant.split("-")
    if len(parts) != 4 or parts[0] != "afu" or parts[3] != "layer":
        raise SystemExit(f"unknown variant {variant!r}: expected relu or afu-<base>-<N>-layer")
    return PaperAfu(int(parts[2]), parts[1])


class Net(nn.Module):
    def __init__(self, variant):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)
        self.act1 = activation(variant)
        self.act2 = activation(variant)
        self.act3 = activation(variant)

    def forward(self, x):
        x = self.act1(self.conv1(x))
        x = self.conv2(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.act2(self.fc1(x))
        x = self.dropout2(x)
        x = self.act3(self.fc2(x))
        return F.log_softmax(x, dim=1)


def read_idx(path):
    """An IDX file (gzipped or not) as a uint8 tensor of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    t = torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8)
    return t.reshape(dims)


def find(data_dir, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{data_dir}: no {stem}[.gz] (expected MNIST-format IDX files)")


def batches(data_dir, batch, seed):
    """Endless shuffled batches: (images [B,1,28,28] normalised, labels [B]); a description."""
    g = torch.Generator().manual_seed(seed)
    if data_dir is None:
        def random():
            while True:
                yield (torch.randn(batch, 1, 28, 28, generator=g),
                       torch.randint(0, 10, (batch,), generator=g))
        return random(), "random N(0,1) images, uniform random labels (no --data)"
    images = read_idx(find(data_dir, "train-images-idx3-ubyte")).float().div_(255.0)
    labels = read_idx(find(data_dir, "train-labels-idx1-ubyte")).long()
    images = ((images - images.mean()) / images.std()).unsqueeze(1).contiguous()

    def real():
        while True:
            order = torch.randperm(images.shape[0], generator=g)
            for i in range(0, images.shape[0] - batch + 1, batch):
                idx = order[i:i + batch]
                yield images[idx], labels[idx]
    return real(), f"{images.shape[0]} training images from {data_dir}, shuffled"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_variant(variant, args):
    torch.manual_seed(0)
    model = Net(variant)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data, source = batches(args.data, 64, 0)
    times = []
    for i in range(args.warmup + args.steps):
        x, y = next(data)
        t = time.perf_counter()
        opt.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= args.warmup:
            times.append((time.perf_counter() - t) * 1e3)
    q = statistics.quantiles(times, n=10)
    return {"variant": variant, "median_step_ms": statistics.median(times),
            "p10_ms": q[0], "p90_ms": q[-1], "steps": args.steps, "warmup": args.warmup,
            "data": source}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="relu",
                    help="comma-separated: relu, afu-<base>-<N>-layer (default relu)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    ap.add_argument("--data", default=None, help="folder with MNIST-format IDX training files")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.steps < 2 or args.warmup < 0:
        raise SystemExit("--steps must be >= 2 and --warmup >= 0")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    results = [time_variant(v, args) for v in args.variants.split(",") if v]
    head = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_model(),
            "flush_denormal": True}
    if args.json:
        print(json.dumps(dict(head, results=results)))
    else:
        print(f"PyTorch {head['torch']}, {head['threads']} threads, {head['cpu']}; "
              f"denormals flushed; {results[0]['data'] if results else ''}")
        for r in results:
            print(f"{r['variant']:<24} median step {r['median_step_ms']:.1f} ms "
                  f"(p10 {r['p10_ms']:.1f}, p90 {r['p90_ms']:.1f}) over {r['steps']} steps "
                  f"after {r['warmup']} warm-up")


if __name__ == "__main__":
    main()
