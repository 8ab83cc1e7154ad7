#!/usr/bin/env python3
"""PyTorch's side of `afu bench kernels`: forward+backward of torch's relu and of the paper's
AFU formulation on the benchmark tensor, timed like afu's cases.

Each pass is `L = sum(g * f(x))` with a dense N(0,1) upstream `g`, then `L.backward()`, as in
afu's benchmark. The paper's AFU: the tensor flattened to a column, Linear(1,N) -> psi ->
Linear(N,1), reshaped back (psi: relu, sigmoid or mish); one AFU for the whole tensor. Denormals
are flushed; each case gets warm-up passes, then timed ones; prints median, p10 and p90 in
milliseconds (one JSON line with --json). Not needed by afu or its tests.

With --families, also the learnable activation families with per-channel parameters (one set
per channel of axis 1), written in plain PyTorch the way their own libraries' CPU paths
compute them: PReLU with `F.prelu`; Swish-beta as `x * sigmoid(beta * x)`; pmish as
`mish(x) + a * min(0, x)`; PAU (ml-research/pau's Python path) from a stacked
elements x degree power tensor; PWLU by bucket index and gather; APL and KAF (Kafnets) as
an elements x hinges / elements x dictionary tensor summed over the last axis. Parameters start
as afu's families do.

    python3 scripts/torch_kernels.py [--shape 64,32,26,26] [--hidden 8,128]
        [--bases relu,sigmoid,mish] [--families prelu,pau,kaf,...] [--reps 21]
        [--threads N] [--json]
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


# PAU's start (ml-research/pau, `pade_optimized_leakyrelu`, degrees (5, 4)), as in afu.
PAU_NUM = [3.35583603e-02, 5.05000375e-01, 1.65343934e+00, 2.01001052e+00, 9.31901999e-01,
           1.52424124e-01]
PAU_DEN = [3.30847488e-06, 3.98021568e+00, 5.12471206e-07, 3.01830109e-01]


def per_channel(v, c):
    """A [C, ...] parameter viewed to broadcast over [B, C, H, W] with a trailing axis."""
    return v.reshape(1, c, 1, 1, *v.shape[1:])


def family_module(name, c):
    """(module, description) for a family name as afu writes it (`pwlu-16`, `apl-5`, `kaf`)."""
    parts = name.split("-")
    size = int(parts[-1]) if parts[-1].isdigit() else None
    base = name if size is None else "-".join(parts[:-1])

    class Fam(nn.Module):
        pass

    m = Fam()
    if base == "prelu":
        m.a = nn.Parameter(torch.full((c,), 0.25))
        m.forward = lambda x: F.prelu(x, m.a)
    elif base == "swish-beta":
        m.beta = nn.Parameter(torch.ones(c))
        m.forward = lambda x: x * torch.sigmoid(per_channel(m.beta, c) * x)
    elif base == "pmish":
        m.a = nn.Parameter(torch.zeros(c))
        m.forward = lambda x: F.mish(x) + per_channel(m.a, c) * torch.clamp(x, max=0.0)
    elif base == "pau":
        m.num = nn.Parameter(torch.tensor(PAU_NUM).repeat(c, 1))
        m.den = nn.Parameter(torch.tensor(PAU_DEN).repeat(c, 1))

        def pau(x):
            powers = torch.stack([x ** k for k in range(len(PAU_NUM))], dim=-1)
            p = (powers * per_channel(m.num, c)).sum(-1)
            q = 1.0 + (powers[..., 1:len(PAU_DEN) + 1] * per_channel(m.den, c)).abs().sum(-1)
            return p / q
        m.forward = pau
    elif base == "pwlu":
        n = size or 16
        m.bounds = nn.Parameter(torch.tensor([-3.0, 3.0]).repeat(c, 1))
        m.slopes = nn.Parameter(torch.tensor([0.0, 1.0]).repeat(c, 1))
        grid = torch.linspace(-3.0, 3.0, n + 1).clamp(min=0.0)
        m.heights = nn.Parameter(grid.repeat(c, 1))

        def pwlu(x):
            lo = m.bounds[:, 0].reshape(1, c, 1, 1)
            hi = m.bounds[:, 1].reshape(1, c, 1, 1)
            delta = (hi - lo) / n
            t = (x - lo) / delta
            i = t.floor().clamp(0, n - 1)
            h = m.heights.unsqueeze(0).expand(x.shape[0], c, n + 1)
            flat = lambda idx: idx.long().reshape(x.shape[0], c, -1)
            left = torch.gather(h, 2, flat(i)).reshape(x.shape)
            right = torch.gather(h, 2, flat(i + 1)).reshape(x.shape)
            inner = left + (t - i) * (right - left)
            h0 = m.heights[:, 0].reshape(1, c, 1, 1)
            hn = m.heights[:, n].reshape(1, c, 1, 1)
            kl = m.slopes[:, 0].reshape(1, c, 1, 1)
            kr = m.slopes[:, 1].reshape(1, c, 1, 1)
            out = torch.where(x < lo, h0 + kl * (x - lo), inner)
            return torch.where(x >= hi, hn + kr * (x - hi), out)
        m.forward = pwlu
    elif base == "apl":
        s = size or 5
        m.a = nn.Parameter(torch.zeros(c, s))
        m.b = nn.Parameter(torch.linspace(-2.0, 2.0, s).repeat(c, 1))
        m.forward = lambda x: F.relu(x) + (per_channel(m.a, c) * F.relu(
            per_channel(m.b, c) - x.unsqueeze(-1))).sum(-1)
    elif base == "kaf":
        d = size or 20
        points = torch.linspace(-3.0, 3.0, d)
        gamma = 1.0 / (6.0 * (points[1] - points[0]).item() ** 2)
        k = torch.exp(-gamma * (points[:, None] - points[None, :]) ** 2)
        elu = F.elu(points)
        alpha = torch.linalg.solve(k + 1e-4 * torch.eye(d), elu)
        m.alpha = nn.Parameter(alpha.repeat(c, 1))

        def kaf(x):
            kern = torch.exp(-gamma * (x.unsqueeze(-1) - points) ** 2)
            return (kern * per_channel(m.alpha, c)).sum(-1)
        m.forward = kaf
    else:
        raise SystemExit(f"unknown family {name!r}: expected prelu, swish-beta, pmish, pau, "
                         "pwlu[-N], apl[-S] or kaf[-D]")
    return m


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
    ap.add_argument("--families", default="",
                    help="learnable families, e.g. prelu,swish-beta,pmish,pau,pwlu-16,apl-5,kaf")
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
    for name in [f for f in args.families.split(",") if f]:
        fam = family_module(name, shape[1])
        r = min(reps, 11)
        cases.append(dict(case=f"torch family {name}-channel", **time_case(fam, x, g, 2, r)))
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
