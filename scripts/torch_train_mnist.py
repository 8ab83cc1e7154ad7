#!/usr/bin/env python3
"""`afu mnist`'s training run in PyTorch: the wall time a user would otherwise spend.

The PyTorch MNIST example as `afu mnist` runs it (SPEC 2.4): the same CNN as
`scripts/torch_cnn_step.py` (activation after conv1, fc1 and on the output), NLL on
log-softmax, Adadelta lr 1.0 with the learning rate x0.7 after every epoch, batch 64 (the last
partial batch kept), test batch 1000, inputs normalised with mean 0.1307 and std 0.3081, a fresh
shuffle per epoch, test accuracy after every epoch. Variants as in `torch_cnn_step.py`: `relu`
or the paper's AFU formulation `afu-<base>-<N>-layer`.

Measured as a user would run it, and kind to PyTorch: denormals flushed, the data held in
memory as tensors (no DataLoader workers), PyTorch's default thread count unless --threads.
Prints one line per epoch and the total wall time (training and testing, data loading
excluded); one JSON line with --json.

    python3 scripts/torch_train_mnist.py --data DIR [--variant relu] [--epochs 10]
        [--seed 1] [--threads N] [--json]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_cnn_step import Net, cpu_model, find, read_idx  # noqa: E402


def load(data_dir, split):
    """Normalised images [n,1,28,28] and labels [n] of the `train` or `t10k` split."""
    images = read_idx(find(data_dir, f"{split}-images-idx3-ubyte")).float().div_(255.0)
    labels = read_idx(find(data_dir, f"{split}-labels-idx1-ubyte")).long()
    if images.dim() != 3 or images.shape[0] != labels.shape[0]:
        raise SystemExit(f"{data_dir}: {split} images {tuple(images.shape)} and labels "
                         f"{tuple(labels.shape)} do not match")
    return ((images - 0.1307) / 0.3081).unsqueeze(1).contiguous(), labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder with MNIST-format IDX files")
    ap.add_argument("--variant", default="relu")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.epochs < 1:
        raise SystemExit("--epochs: expected at least 1")
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_x, train_y = load(args.data, "train")
    test_x, test_y = load(args.data, "t10k")

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    model = Net(args.variant)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    epochs = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(train_x.shape[0], generator=g)
        total, count = 0.0, 0
        for i in range(0, train_x.shape[0], 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss = F.nll_loss(model(train_x[idx]), train_y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
            count += idx.shape[0]
        sched.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, test_x.shape[0], 1000):
                pred = model(test_x[i:i + 1000]).argmax(dim=1)
                correct += (pred == test_y[i:i + 1000]).sum().item()
        seconds = time.perf_counter() - t0
        acc = correct / test_x.shape[0]
        epochs.append({"epoch": epoch, "train_loss": total / count, "test_accuracy": acc,
                       "seconds": seconds})
        if not args.json:
            print(f"epoch {epoch}: train loss {total / count:.4f}, test accuracy "
                  f"{100 * acc:.2f} %, {seconds:.1f} s", flush=True)
    wall = time.perf_counter() - start
    result = {"variant": args.variant, "epochs": epochs, "wall_s": wall,
              "cpu": cpu_model(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "data": args.data,
              "train_images": train_x.shape[0], "test_images": test_x.shape[0]}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.variant}: {args.epochs} epochs in {wall:.1f} s on {cpu_model()}, "
              f"{torch.get_num_threads()} threads, PyTorch {torch.__version__}")


if __name__ == "__main__":
    main()
