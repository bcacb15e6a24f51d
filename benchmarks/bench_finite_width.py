"""Finite-width theory speed (issue: "Finite width as interactions"): the exact single-layer connected
4-point function at 6 inputs, its precision, and what the Monte Carlo (ensemble) path would need for the
same precision. One run, 2 threads. Usage: python benchmarks/bench_finite_width.py"""

from __future__ import annotations

import time

import numpy as np
import torch

import nnft
from nnft.theory import single_layer as sl

X = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])
CASES = {
    "gauss-net (closed form)": (nnft.gauss_net(10), 0.01 * X),
    "cos-net (closed form)": (nnft.cos_net(10), X),
    "relu-net, σ_b0 = 1 (exact angular quadrature)": (nnft.relu_net(10, sigma_b0=1.0), X),
    "erf-net (Gauss–Hermite, rank 2)": (nnft.erf_net(10), X),
}
TARGET = 1e-8


def _time(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    torch.set_num_threads(2)
    print(f"{'case':48s} {'theory s':>9s} {'rel. err':>9s} {'MC nets for 1e-8':>17s} {'MC time':>10s} {'ratio':>9s}")
    for name, (spec, x) in CASES.items():
        sl.single_layer_correlators(spec, x, 4)  # warm-up (imports, caches)
        t_theory, th = _time(lambda: sl.single_layer_correlators(spec, x, 4))
        g4 = th.connected[4].values
        # precision: against a finer rule (quadrature paths) or the closed form itself
        saved = dict(sl._GH_DEGREE)
        sl._GH_DEGREE.update({1: 400, 2: 320, 3: 64})
        try:
            ref = sl.single_layer_correlators(spec, x, 4).connected[4].values
        finally:
            sl._GH_DEGREE.clear()
            sl._GH_DEGREE.update(saved)
        scale = np.max(np.abs(ref))
        rel = float(np.max(np.abs(g4 - ref)) / scale)
        # the Monte Carlo path: readout-integrated estimator, the most precise one per network
        n0 = 100_000
        t0 = time.perf_counter()
        meas = nnft.measure(spec, x, nnft.EnsembleConfig(n_networks=n0, chunk_size=5000, max_order=4,
                                                         estimator="readout", seed=1))
        t_mc0 = time.perf_counter() - t0
        rel_err = float(np.median(meas.connected[4].stderr / np.maximum(np.abs(g4), 1e-300 + scale * 1e-3)))
        n_needed = n0 * (rel_err / TARGET) ** 2
        t_needed = t_mc0 * n_needed / n0
        print(f"{name:48s} {t_theory:9.4f} {rel:9.1e} {n_needed:17.2e} {t_needed:9.2e}s {t_needed / t_theory:9.2e}")


if __name__ == "__main__":
    main()
