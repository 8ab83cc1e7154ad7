#!/usr/bin/env python3
"""The MNIST-example CNN training step in PyTorch, like-for-like with `afu bench cnn-step`.

Same network as afu's `MnistCnn` (reference reading: relu after conv1 and fc1 and on the
output, none after conv2), batch 64 of 1x28x28, element-wise dropout 0.25/0.5, NLL on
log-softmax, Adam (PyTorch defaults, lr 1e-3). Prints the median step time in milliseconds
(and JSON with --json). Not needed by afu or its tests: run it where PyTorch is installed to
put afu's numbers side by side with PyTorch's on the same machine.

    python3 scripts/torch_cnn_step.py [--steps 30] [--warmup 5] [--threads N] [--json]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.conv2(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = F.relu(self.fc2(x))
        return F.log_softmax(x, dim=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Net()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(64, 1, 28, 28)
    y = torch.full((64,), 3, dtype=torch.long)
    times = []
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        opt.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= args.warmup:
            times.append((time.perf_counter() - t) * 1e3)
    med = statistics.median(times)
    if args.json:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                          "median_step_ms": med, "steps": args.steps}))
    else:
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads: "
              f"median step {med:.1f} ms over {args.steps} steps")


if __name__ == "__main__":
    main()
