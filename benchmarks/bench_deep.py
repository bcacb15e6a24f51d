"""Deep O(1/N) theory and the layerwise conditional sampler: wall times on this machine.

1. ``deep_correlators`` for M = 6 inputs (d = 3, fixed seed) at depth 4, ReLU (C_W = 2, C_b = 0: exact
   angular rules for rank ≤ 2, randomized QMC for rank 3–4) and tanh (C_W = 2.25, C_b = 0.09: tensor
   Gauss–Hermite). First call (includes building the quadrature grids) and a repeat.
2. Networks per second of ``measure_conditional`` vs plain ``nnft.measure`` (both with the readout
   estimator, float32 sampling) at width 512, depth 3, M = 6 inputs, and the standard error each reaches
   on G_c^(4) per second of wall time (precision per second, DESIGN.md "Estimators").

    python benchmarks/bench_deep.py [--threads 2] [--networks 20000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    import nnft
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import nnft
from nnft.ensemble.conditional import measure_conditional
from nnft.theory.deep import deep_correlators


def bench_theory(x: np.ndarray) -> None:
    for act, sw, sb in (("relu", math.sqrt(2.0), 0.0), ("tanh", 1.5, 0.3)):
        spec = nnft.mlp(x.shape[1], [512] * 4, activation=act, sigma_w=sw, sigma_b=sb)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            th = deep_correlators(spec, x)
            times.append(time.perf_counter() - t0)
        err = "" if th.connected4.stderr is None else \
            f", RQMC rel. error (median) {np.median(th.connected4.stderr / np.abs(th.connected4.values)):.1e}"
        print(f"deep_correlators {act:4s} depth 4, M = {len(x)}: first {times[0]:.2f} s, repeat {times[1]:.2f} s "
              f"({len(th.connected4.values)} G_c^(4) tuples{err})")


def bench_sampler(x: np.ndarray, networks: int) -> None:
    spec = nnft.mlp(x.shape[1], [512] * 3, activation="tanh", sigma_w=1.5, sigma_b=0.3)
    cfg = nnft.EnsembleConfig(n_networks=networks, chunk_size=networks // 10, n_blocks=10, seed=0,
                              estimator="readout")
    rows = []
    for name, fn in (("conditional", measure_conditional), ("plain measure", nnft.measure)):
        t0 = time.perf_counter()
        meas = fn(spec, x, cfg)
        wall = time.perf_counter() - t0
        rel = np.median(meas.connected[4].stderr / np.abs(meas.connected[4].values))
        rows.append((name, wall))
        print(f"{name:14s} width 512 depth 3 M = {len(x)}: {networks / wall:9.0f} networks/s "
              f"({wall:.2f} s for {networks}); G_c^(4) median rel. stderr {rel:.3f}")
    print(f"speed-up of the conditional sampler: {rows[1][1] / rows[0][1]:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--networks", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = np.random.default_rng(0).normal(size=(6, 3))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_theory(x)
    bench_sampler(x, args.networks)


if __name__ == "__main__":
    main()
