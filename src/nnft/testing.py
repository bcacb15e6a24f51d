"""Test helpers as public API: run nnft's own theory-vs-experiment checks on your specs.

Each helper raises AssertionError with a message that says what failed and by how much.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .compare import Comparison, compare
from .correlators import Correlators
from .ensemble import EnsembleConfig, InProcess, measure
from .spec import Architecture
from .theory import gaussian_correlators, kernels

__all__ = ["assert_kernel_psd", "assert_matches", "assert_kernel_matches_ensemble", "assert_chunk_invariant"]


def assert_kernel_psd(k, *, rtol: float = 1e-10) -> None:
    """K is symmetric and positive semi-definite: min eigenvalue ≥ −rtol · max eigenvalue."""
    k = np.asarray(k.numpy() if isinstance(k, torch.Tensor) else k, dtype=np.float64)
    asym = np.max(np.abs(k - k.T)) if k.size else 0.0
    assert asym <= rtol * max(np.max(np.abs(k)), 1e-300), f"kernel not symmetric: max |K − Kᵀ| = {asym:.3g}"
    eig = np.linalg.eigvalsh((k + k.T) / 2)
    assert eig[0] >= -rtol * max(eig[-1], 1e-300), f"kernel not PSD: min eig {eig[0]:.3g}, max {eig[-1]:.3g}"


def assert_matches(predicted: Correlators, measured: Correlators, *, z_threshold: float = 5.0) -> Comparison:
    """max |z| over tuples below ``z_threshold``; returns the comparison."""
    c = compare(predicted, measured)
    assert c.passed(z_threshold), (f"{measured.name}: max |z| = {c.max_abs_z:.2f} ≥ {z_threshold} "
                                   f"(worst tuples: {list(c.rows(3))})")
    return c


def assert_kernel_matches_ensemble(spec: Architecture, x, *, n_networks: int = 20000, seed: int = 0,
                                   z_threshold: float = 5.0) -> Comparison:
    """The measured G^(2) of ``spec`` equals its NNGP kernel within ``z_threshold`` standard errors.

    Exact at any width for one hidden layer; for deeper nets use a large width (the bias is O(1/N))."""
    k = kernels(spec, x).nngp
    meas = measure(spec, x, EnsembleConfig(n_networks=n_networks, chunk_size=max(1, n_networks // 20), seed=seed,
                                           max_order=2))
    return assert_matches(gaussian_correlators(k, spec.d_out, 2)[0][2], meas.moments[2], z_threshold=z_threshold)


def assert_chunk_invariant(spec: Architecture, x, config: EnsembleConfig, *,
                           batch_chunks: Sequence[int] = (1, 3)) -> None:
    """Measurements are bitwise identical for every batch size."""
    ref = None
    for b in batch_chunks:
        m = measure(spec, x, config, executor=InProcess(b))
        vals = [m.moments[n].values for n in m.moments] + [m.connected[n].stderr for n in m.connected]
        if ref is None:
            ref = vals
            continue
        for a, v in zip(ref, vals):
            assert np.array_equal(a, v), f"batch_chunks={b} changed the result (max diff {np.max(np.abs(a - v)):.3g})"
