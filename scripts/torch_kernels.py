#!/usr/bin/env python3
"""PyTorch's side of `afu bench kernels`: forward+backward of torch's relu and of the paper's
AFU formulation on the benchmark tensor, timed like afu's cases.

Each pass is `L = sum(g * f(x))` with a dense N(0,1) upstream `g`, then `L.backward()`, as in
afu's benchmark. The paper's AFU: the tensor flattened to a column, Linear(1,N) -> psi ->
Linear(N,1), reshaped back (psi: relu, sigmoid or mish); one AFU for the whole tensor. Denormals
are flushed; each case gets warm-up passes, then timed ones; prints median, p10 and p90 in
milliseconds (one JSON line with --json). Not needed by afu or its tests.

    python3 scripts/torch_kernels.py [--shape 64,32,26,26] [--hidden 8,128]
        [--bases relu,sigmoid,mish] [--reps 21] [--threads N] [--json]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PSI = {"linear": lambda z: z, "relu": F.relu, "leaky-relu": lambda z: F.leaky_relu(z, 0.01),
       "sigmoid": torch.sigmoid, "tanh": torch.tanh, "swish": F.silu, "mish": F.mish}


class PaperAfu(nn.Module):
    def __init__(self, n, base):
        super().__init__()
        self.inner = nn.Linear(1, n)
        self.outer = nn.Linear(n, 1)
        self.psi = PSI[base]

    def forward(self, x):
        shape = x.shape
        return self.outer(self.psi(self.inner(x.reshape(-1, 1)))).reshape(shape)


def time_case(f, x, g, warmup, reps):
    def one():
        xi = x.detach().requires_grad_()
        t = time.perf_counter()
        (f(xi) * g).sum().backward()
        return (time.perf_counter() - t) * 1e3
    for _ in range(warmup):
        one()
    times = [one() for _ in range(reps)]
    q = statistics.quantiles(times, n=10) if len(times) >= 2 else [times[0]] * 9
    return {"median_ms": statistics.median(times), "p10_ms": q[0], "p90_ms": q[-1],
            "reps": reps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="64,32,26,26")
    ap.add_argument("--hidden", default="8,128")
    ap.add_argument("--bases", default="relu,sigmoid,mish")
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    shape = [int(s) for s in args.shape.split(",")]
    x = torch.randn(shape)
    g = torch.randn(shape)
    reps = max(args.reps, 2)
    cases = [dict(case="torch relu", **time_case(F.relu, x, g, 10, reps))]
    for n in [int(h) for h in args.hidden.split(",") if h]:
        for base in [b for b in args.bases.split(",") if b]:
            if base not in PSI:
                raise SystemExit(f"unknown base {base!r}: expected one of {', '.join(PSI)}")
            afu = PaperAfu(n, base)
            # The paper's AFU allocates N floats per element: far slower, so fewer passes.
            r = min(reps, 7 if n <= 32 else 3)
            cases.append(dict(case=f"torch paper-AFU {base} N={n}",
                              **time_case(afu, x, g, 1, r)))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "shape": shape,
           "flush_denormal": True, "cases": cases}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"PyTorch {out['torch']}, {out['threads']} threads, shape {shape}")
        for c in cases:
            print(f"{c['case']:<32} {c['median_ms']:>9.2f} ms (p10 {c['p10_ms']:.2f}, "
                  f"p90 {c['p90_ms']:.2f}, {c['reps']} reps)")


if __name__ == "__main__":
    main()
