"""Free-field design benchmark (issue "Neural network field theory"): the Scalar-net 2-point measurement at
64 separations, width 100, d = 3 — networks/s for both estimators and the time 10⁶ networks take.
Usage: python benchmarks/bench_free_field.py [n_networks]"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

import nnft
from nnft.fieldtheory import free_scalar, scalar_propagator


def main() -> None:
    torch.set_num_threads(2)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    spec = free_scalar(3, mass=1.0, cutoff=20.0, width=100)
    r = np.concatenate([[0.0], np.geomspace(0.02, 3.0, 63)])
    x = np.zeros((64, 3))
    x[:, 0] = r
    exact = scalar_propagator(r, 3, mass=1.0, cutoff=20.0)
    print(f"Scalar-net d = 3, m = 1, Λ = 20, width 100, 64 separations, {n} networks, torch {torch.__version__}")
    for est in ("plain", "readout"):
        cfg = nnft.EnsembleConfig(n_networks=n, chunk_size=max(1, n // 40), n_blocks=20, seed=1, max_order=2,
                                  estimator=est)
        nnft.measure(spec, x, nnft.EnsembleConfig(n_networks=2000, chunk_size=100, n_blocks=20, max_order=2,
                                                  estimator=est))  # warm-up
        t = time.perf_counter()
        meas = nnft.measure(spec, x, cfg)
        dt = time.perf_counter() - t
        g = meas.moments[2]
        first = np.array([g.at(0, j) for j in range(64)])
        err = g.full("stderr")[0]
        z = np.max(np.abs((first - exact) / err))
        print(f"{est:8s}: {n / dt:10,.0f} networks/s; 10⁶ networks in {1e6 / (n / dt):6.1f} s; "
              f"G(0, r) vs exact max|z| = {z:.2f}; median rel. error {np.median(err / np.abs(exact)):.1e}")


if __name__ == "__main__":
    main()
