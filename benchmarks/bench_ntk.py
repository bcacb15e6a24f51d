"""Empirical NTK speed (nnft structured vs torch.func Jacobians vs neural-tangents) and a 20 000-point
infinite-width regression (tiled kernel matrix + Cholesky) on one machine.

Part 1 config (matches /work/shared/peers/nt_empirical_ntk.py): MLP 10-512-512-1, ReLU, no biases, NTK
parameterization (W ~ N(0, 1), forward multiplier 1/sqrt(fan_in)), n = 256 standard normal inputs, float64,
Θ(x, x) traced over the (single) output. Timings: warm-up call first, then the min of ``--repeats`` calls
(the Jacobian paths: of 3), with 1 and with 2 torch threads (on a shared machine OpenMP barriers make 2
threads much slower than 1; the best of the two counts). neural-tangents runs as a subprocess in its own venv
(/work/.peers/nt); its script times one call after a warm-up, so it is run ``--nt-runs`` times and the min
is kept.

Part 2: KernelRegressor on n_train = 20 000 points in d = 10 (y = sin(x_0) + 0.1 x_1 x_2 + noise), spec
mlp(10, [512, 512], 1, relu, NTK parameterization): the NNGP posterior (noise 1e-2) and NTK kernel
regression (t = ∞), each: tiled kernel matrix (tile 2048, in-process) + float64 Cholesky + predictions with
standard deviations at 2 000 test points. Peak resident memory is reported (ru_maxrss).

    python benchmarks/bench_ntk.py [--n-train 20000] [--skip-nt] [--skip-regression] [--skip-empirical]
                                   [--nt-python PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    from nnft.dynamics.ntk import MLPParams, empirical_ntk, mlp_ntk
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from nnft.dynamics.ntk import MLPParams, empirical_ntk, mlp_ntk

NT_PYTHON = "/work/.peers/nt/bin/python"
NT_SCRIPT = "/work/shared/peers/nt_empirical_ntk.py"
THREADS = 2


def best_of(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up, not timed
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def plain_jacrev_ntk(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What one writes by hand with torch.func (the PyTorch NTK tutorial): per-sample Jacobians of every
    parameter, flattened, contracted."""
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, xi):
        return functional_call(model, p, (xi.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(f), (None, 0))(params, x)
    jac = torch.cat([j.flatten(2) for j in jac.values()], dim=2)  # (n, d_out, P)
    return torch.einsum("iap,jap->ij", jac, jac)


def run_nt(nt_python: str, runs: int) -> tuple[dict, str]:
    if not (Path(nt_python).exists() and Path(NT_SCRIPT).exists()):
        return {}, f"neural-tangents peer not found ({nt_python}, {NT_SCRIPT}): skipped"
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), TF_CPP_MIN_LOG_LEVEL="3")
    best: dict = {}
    for _ in range(runs):
        try:
            p = subprocess.run([nt_python, NT_SCRIPT], capture_output=True, text=True, timeout=300, env=env)
        except subprocess.TimeoutExpired:
            return best, "neural-tangents peer timed out (300 s)"
        found = dict((int(i), float(s)) for i, s in re.findall(r"impl (\d): ([\d.]+)s", p.stdout))
        if p.returncode != 0 or 3 not in found:
            tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
            return best, f"neural-tangents peer failed (rc={p.returncode}): " + " | ".join(tail)
        for k, v in found.items():
            best[k] = min(best.get(k, math.inf), v)
    return best, f"neural-tangents 0.6.5: min over {runs} runs of its script"


def part_ntk(args) -> None:
    g = torch.Generator().manual_seed(0)
    f64 = torch.float64
    x = torch.randn(256, 10, generator=g, dtype=f64)
    widths = (10, 512, 512, 1)
    weights = tuple(torch.randn(widths[l + 1], widths[l], generator=g, dtype=f64) for l in range(3))
    net = MLPParams(weights=weights, biases=(None, None, None), activations=torch.nn.ReLU(),
                    weight_multipliers=tuple(1 / math.sqrt(w) for w in widths[:3]))
    module = net.module()
    print(f"empirical NTK, MLP 10-512-512-1 ReLU (NTK param., no bias), n = 256, float64 (torch {torch.__version__}); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    methods = {"nnft mlp_ntk (structured)": (lambda: mlp_ntk(net, x), args.repeats),
               "nnft empirical_ntk (torch.func)": (lambda: empirical_ntk(module, x), 3),
               "plain torch.func jacrev + einsum": (lambda: plain_jacrev_ntk(module, x), 3)}
    times: dict = {}
    results: dict = {}
    for name, (fn, reps) in methods.items():
        for threads in (1, THREADS):  # torch's OpenMP pool suffers badly when the cores are shared: try both
            torch.set_num_threads(threads)
            t, results[name] = best_of(fn, reps)
            times[(name, threads)] = t
    torch.set_num_threads(THREADS)
    ref = results["plain torch.func jacrev + einsum"]
    scale = float(ref.abs().max())
    for name in list(methods)[:2]:
        print(f"max |Θ − Θ_jacrev| / max |Θ|, {name}: {float((results[name] - ref).abs().max()) / scale:.1e}")
    nt, msg = ({}, "neural-tangents skipped (--skip-nt)") if args.skip_nt else run_nt(args.nt_python, args.nt_runs)
    print(msg)
    best = {name: min(times[(name, 1)], times[(name, THREADS)]) for name in methods}
    t_j = best["plain torch.func jacrev + einsum"]
    rows = [(name, f"{times[(name, 1)] * 1e3:.2f}", f"{times[(name, THREADS)] * 1e3:.2f}", best[name])
            for name in methods]
    for impl in (3, 1):
        if impl in nt:
            label = "structured" if impl == 3 else "jacobian"
            rows.append((f"neural-tangents impl {impl} ({label})", "", "(own pool)", nt[impl]))
    print(f"\n{'method':<38} {'ms 1 thr':>9} {'ms 2 thr':>10} {'best ms':>9} {'jacrev / m':>11} {'NT impl3 / m':>13}")
    for name, t1, t2, t in rows:
        vs_nt = f"{nt[3] / t:12.2f}x" if 3 in nt else f"{'n/a':>13}"
        print(f"{name:<38} {t1:>9} {t2:>10} {t * 1e3:9.2f} {t_j / t:10.1f}x {vs_nt}")
    print("\n'X / m' = X's best seconds / the method's best seconds (higher is faster); one run, same machine.")


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def part_regression(args) -> None:
    from nnft.dynamics.estimator import KernelRegressor
    from nnft.spec import mlp

    n, n_test, d = args.n_train, 2000, 10
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n + n_test, d))
    y = np.sin(x[:, 0]) + 0.1 * x[:, 1] * x[:, 2] + 0.05 * rng.standard_normal(n + n_test)
    xtr, ytr, xte, yte = x[:n], y[:n], x[n:], y[n:]
    spec = mlp(d, [512, 512], 1, activation="relu", sigma_w=1.4, sigma_b=0.1, parameterization="ntk")
    print(f"\ninfinite-width regression, n_train = {n}, n_test = {n_test}, d = {d}, {spec}, float64, "
          f"tile 2048, in-process ({THREADS} threads)")
    print(f"{'kind':<22} {'fit s':>8} {'(cpu s)':>8} {'predict s':>10} {'(cpu s)':>8} {'test RMSE':>10} "
          f"{'mean std':>9} {'jitter':>8} {'cond':>9} {'peak RSS GB':>12}")
    for label, params in (("nngp posterior σ²=1e-2", dict(kind="nngp", noise=1e-2)),
                          ("ntk regression t=∞", dict(kind="ntk"))):
        est = KernelRegressor(spec, tile=2048, **params)
        t0, c0 = time.perf_counter(), time.process_time()
        est.fit(xtr, ytr)
        t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        mean, std = est.predict(xte, return_std=True)
        t_pred, c_pred = time.perf_counter() - t0, time.process_time() - c0
        rmse = float(np.sqrt(np.mean((mean - yte) ** 2)))
        p = est.solver_
        print(f"{label:<22} {t_fit:8.1f} {c_fit:8.1f} {t_pred:10.1f} {c_pred:8.1f} {rmse:10.4f} "
              f"{float(np.mean(std)):9.4f} {p.jitter:8.1e} {p.condition_number:9.2e} {_rss_gb():12.2f}")
        del est, p, mean, std  # free the 3.2 GB factor before the next fit
    print("fit = tiled kernel matrix + Cholesky (+ condition estimate); predict = cross kernels + solves, "
          "with std (kind=ntk: + the NNGP K(X, X) on first use). cpu s = process CPU time (all threads); on a "
          "shared machine wall >> cpu/threads. Peak RSS is the process maximum so far.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nt-python", default=NT_PYTHON, help="python of the neural-tangents 0.6.5 venv")
    ap.add_argument("--nt-runs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20, help="timed repeats of the structured path")
    ap.add_argument("--skip-nt", action="store_true")
    ap.add_argument("--skip-regression", action="store_true")
    ap.add_argument("--skip-empirical", action="store_true", help="only the regression part")
    ap.add_argument("--n-train", type=int, default=20000)
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    import numba

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    if not args.skip_empirical:
        part_ntk(args)
    if not args.skip_regression:
        part_regression(args)


if __name__ == "__main__":
    main()
