"""Gaussian (free-theory) n-point functions from a kernel, by Wick's theorem (Isserlis).

For a zero-mean Gaussian process with covariance K over sites,
    G^(n)(1..n) = Σ_{pairings p} Π_{(i,j) ∈ p} K(s_i, s_j)      ((n−1)!! terms; 0 for odd n)
e.g. G^(4)_GP = K12 K34 + K13 K24 + K14 K23 (PHYSICS.md §4, NN-QFT). Connected parts vanish for n > 2.
"""

from __future__ import annotations

import numpy as np
import torch

from ..correlators import Correlators, pairings, sorted_tuples
from ..errors import check

__all__ = ["site_kernel", "wick_moments", "gaussian_correlators"]


def site_kernel(k_inputs, d_out: int) -> np.ndarray:
    """K over sites s = m·d_out + a: K_sites = K_inputs ⊗ I_{d_out} (independent output components)."""
    k = np.asarray(k_inputs.numpy() if isinstance(k_inputs, torch.Tensor) else k_inputs, dtype=np.float64)
    return np.kron(k, np.eye(d_out))


def wick_moments(k_sites: np.ndarray, order: int) -> np.ndarray:
    """G^(order) on all sorted site tuples (colex order) for a zero-mean GP with covariance ``k_sites``."""
    k_sites = np.asarray(k_sites, dtype=np.float64)
    check(k_sites.ndim == 2 and k_sites.shape[0] == k_sites.shape[1], "kernel.shape", k_sites.shape,
          "a square (S, S) matrix")
    tup = sorted_tuples(k_sites.shape[0], order)
    out = np.zeros(len(tup))
    for p in pairings(order):
        term = np.ones(len(tup))
        for i, j in p:
            term = term * k_sites[tup[:, i], tup[:, j]]
        out += term
    return out


def gaussian_correlators(k_inputs, d_out: int, max_order: int, label: str = "NNGP (Wick)"):
    """Predicted moments and connected correlators, orders 1..max_order, of the GP with kernel K."""
    ks = site_kernel(k_inputs, d_out)
    n_sites = ks.shape[0]
    moments, connected = {}, {}
    for n in range(1, max_order + 1):
        moments[n] = Correlators(order=n, connected=False, values=wick_moments(ks, n), n_sites=n_sites,
                                 d_out=d_out, source="predicted", label=label, width_order="N^0")
        conn = ks[sorted_tuples(n_sites, 2)[:, 0], sorted_tuples(n_sites, 2)[:, 1]] if n == 2 else \
            np.zeros(len(sorted_tuples(n_sites, n)))
        connected[n] = Correlators(order=n, connected=True, values=conn, n_sites=n_sites, d_out=d_out,
                                   source="predicted", label=label, width_order="N^0")
    return moments, connected
