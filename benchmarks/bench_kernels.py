"""Infinite-width NNGP + NTK throughput: nnft fused (numba) vs plain torch vs neural-tangents.

Config (matches /work/shared/peers/nt_kernel_time.py): n = 4000 standard normal inputs in d = 10,
5 hidden layers of stax.Dense(512, W_std=1.4, b_std=0.1) + Relu/Erf, readout Dense(1, W_std=1.4,
b_std=0.1), NTK parameterization, float64, i.e. sw2 = 1.4^2 and sb2 = 0.1^2 for all 6 layers.
Timings: warm-up call first (excludes compilation), then the min of 3 (the plain torch path stops
repeating after 15 s, to keep the whole script near 2 minutes); 2 CPU threads.

    python benchmarks/bench_kernels.py [--n 4000] [--depth 5] [--nt-python PATH] [--skip-nt]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    from nnft.theory._fused import fused_nngp_ntk
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from nnft.theory._fused import fused_nngp_ntk

NT_PYTHON = "/work/.peers/nt/bin/python"
NT_SCRIPT = "/work/shared/peers/nt_kernel_time.py"
THREADS = 2


def torch_plain(x: torch.Tensor, sw2, sb2, activation: str):
    """Unfused reference recursion over the full n x n matrices (what one writes by hand in torch)."""
    d = x.shape[1]
    c = sb2[0] + sw2[0] * (x @ x.T) / d
    a = sb2[0] + sw2[0] * (x * x).sum(1) / d
    th = c
    for l in range(1, len(sw2)):
        if activation == "relu":
            sab = torch.sqrt(a[:, None] * a[None, :])
            rho = torch.clamp(c / sab, -1.0, 1.0)
            phi = math.pi - torch.acos(rho)
            k = sab / (2 * math.pi) * (torch.sqrt(1 - rho * rho) + phi * rho)
            kdot = phi / (2 * math.pi)
            a_next = a / 2
        else:
            den = (1 + 2 * a)[:, None] * (1 + 2 * a)[None, :]
            k = 2 / math.pi * torch.asin(torch.clamp(2 * c / torch.sqrt(den), -1.0, 1.0))
            kdot = 4 / math.pi / torch.sqrt(den - 4 * c * c)
            a_next = 2 / math.pi * torch.asin(2 * a / (1 + 2 * a))
        c = sb2[l] + sw2[l] * k
        th = th * (sw2[l] * kdot) + c
        a = sb2[l] + sw2[l] * a_next
    return c, th


def best_of(fn, repeats: int = 3, warm=None, budget_s: float = float("inf")) -> tuple[float, object]:
    """Min over `repeats` timed calls after an untimed warm-up; stops early once `budget_s` is spent."""
    out = (warm or fn)()  # warm-up (numba compile / thread pools), not timed
    ts = []
    while len(ts) < repeats and sum(ts) < budget_s:
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def run_nt(nt_python: str, n: int, depth: int, activation: str) -> tuple[float | None, str]:
    if not (Path(nt_python).exists() and Path(NT_SCRIPT).exists()):
        return None, f"neural-tangents peer not found ({nt_python}, {NT_SCRIPT}): skipped"
    cmd = [nt_python, NT_SCRIPT, str(n), str(depth), activation, "--x64"]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), TF_CPP_MIN_LOG_LEVEL="3")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        return None, "neural-tangents peer timed out (120 s): skipped"
    m = re.search(r"min ([\d.]+)s", p.stdout)
    if p.returncode != 0 or m is None:
        tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
        return None, f"neural-tangents peer failed (rc={p.returncode}): " + " | ".join(tail)
    return float(m.group(1)), p.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--depth", type=int, default=5, help="hidden layers")
    ap.add_argument("--nt-python", default=NT_PYTHON, help="python of the neural-tangents 0.6.5 venv")
    ap.add_argument("--skip-nt", action="store_true")
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()

    import numba

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(THREADS)
    n, depth = args.n, args.depth
    sw2, sb2 = [1.4**2] * (depth + 1), [0.1**2] * (depth + 1)
    x = np.random.default_rng(0).standard_normal((n, 10))
    xt = torch.from_numpy(x)
    entries = n * n
    print(f"NNGP + NTK, n = {n}, d = 10, {depth} hidden layers, float64, {THREADS} threads "
          f"(numba {numba.__version__}, torch {torch.__version__})\n")

    rows = []
    for act in ("relu", "erf"):
        t_f, (K, T) = best_of(lambda: fused_nngp_ntk(x, None, sw2, sb2, act))
        res = {"nnft fused (numba)": t_f}
        if not args.skip_torch:
            t_t, (Kt, Tt) = best_of(lambda: torch_plain(xt, sw2, sb2, act),
                                    warm=lambda: torch_plain(xt[:500], sw2, sb2, act), budget_s=15.0)
            res["torch plain (unfused)"] = t_t
            off = ~np.eye(n, dtype=bool)  # diagonal: arccos(rho ~ 1) is ill-conditioned in the plain path
            dk = np.max(np.abs(K - Kt.numpy())[off]) / np.abs(K).max()
            dt = np.max(np.abs(T - Tt.numpy())[off]) / np.abs(T).max()
            print(f"[{act}] fused vs torch off-diagonal max |diff| / max: NNGP {dk:.1e}, NTK {dt:.1e}")
            del Kt, Tt
        t_nt, msg = (None, "neural-tangents skipped (--skip-nt)") if args.skip_nt else run_nt(
            args.nt_python, n, depth, act)
        print(f"[{act}] {msg}")
        if t_nt is not None:
            res["neural-tangents 0.6.5 (jax)"] = t_nt
        rows.append((act, res, t_nt))
        del K, T

    print(f"\n{'activation':<10} {'method':<28} {'seconds':>9} {'M entries/s':>12} {'vs NT':>8}")
    for act, res, t_nt in rows:
        for name, t in res.items():
            ratio = f"{t_nt / t:7.2f}x" if t_nt else "     n/a"
            print(f"{act:<10} {name:<28} {t:9.3f} {entries / t / 1e6:12.1f} {ratio}")
    print("\n'vs NT' = neural-tangents seconds / method seconds (higher is faster); one run, same machine.")


if __name__ == "__main__":
    main()
