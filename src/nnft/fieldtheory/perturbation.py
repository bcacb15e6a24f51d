"""First-order perturbation theory for a deformed parameter density (PHYSICS.md §6; arXiv:2307.03223).

At N = ∞ the undeformed ensemble is Gaussian with 2-point function G = K (the NNGP kernel of the spec).
Deforming the density by exp(−∫_Ω V(φ)) with V = Σ_k g_k φ^k changes every connected correlator at first
order by one vertex at z ∈ Ω with k legs: n legs attach to the external points, the other k − n close into
(k − n − 1)!! self-contractions G(z, z):

    δG_c^(n)(x_1..x_n) = −Σ_k g_k · k!/(k − n)! · (k − n − 1)!! · ∫_Ω d^dz G(z, z)^{(k−n)/2} Π_i G(x_i, z)

(k ≥ n, k − n even). For φ⁴ (g_4 = λ/4!): the tree-level vertex δG_c^(4) = −λ ∫_Ω Π_{i=1}^4 G(x_i − z) and
the tadpole δG^(2)(x, y) = −(λ/2) G(0) ∫_Ω G(x − z) G(z − y), i.e. δm² = (λ/2) G(0). The integral over Ω
uses the region's quadrature rule — the same rule that defines the sampled deformation.
"""

from __future__ import annotations

import math

import numpy as np

from ..correlators import Correlators, sorted_tuples
from ..errors import check
from ..spec import Architecture
from ..theory.kernels import as_inputs, kernels
from .potential import Box, Polynomial

__all__ = ["vertex_factor", "propagators_to_region", "first_order", "tree_level", "tadpole"]


def _double_factorial(n: int) -> int:
    return 1 if n <= 0 else math.prod(range(n, 0, -2))


def vertex_factor(potential: Polynomial, order: int) -> list[tuple[int, float]]:
    """[(loops, c)] with c = g_k k!/(k − n)! (k − n − 1)!! for every power k ≥ n with k − n even; ``loops`` =
    (k − n)/2 is the power of G(z, z) that multiplies Π_i G(x_i, z)."""
    out = []
    for k, g in enumerate(potential.coeffs):
        if g != 0.0 and k >= order and (k - order) % 2 == 0:
            out.append(((k - order) // 2, g * math.factorial(k) / math.factorial(k - order)
                        * _double_factorial(k - order - 1)))
    return out


def propagators_to_region(spec: Architecture, x, region: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(G(x_i, z_q) (M, Q), G(z_q, z_q) (Q,), rule weights ω_q (Q,)) from the spec's NNGP kernel."""
    check(spec.d_out == 1, "spec.d_out", spec.d_out, "1 (a scalar field)")
    check(region.d == spec.d_in, "region", f"a box in d = {region.d}", f"a box in the spec's d = {spec.d_in}")
    x = as_inputs(x, spec.d_in)
    z, w = region.nodes()
    gxz = kernels(spec, x, z).nngp.numpy()
    gzz = np.array([float(kernels(spec, z[q:q + 1]).nngp[0, 0]) for q in range(len(z))]) \
        if not _translation_invariant(spec) else np.full(len(z), float(kernels(spec, z[:1]).nngp[0, 0]))
    return gxz, gzz, w


def _translation_invariant(spec: Architecture) -> bool:
    from ..theory.kernels import _is_phase_layer

    return spec.depth == 1 and _is_phase_layer(spec)


def first_order(spec: Architecture, x, potential: Polynomial, region: Box, order: int, *,
                propagators: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Correlators:
    """δG_c^(order) at first order in V (formula in the module docstring) on the sorted input tuples."""
    check(isinstance(order, int) and 1 <= order <= 6, "order", order, "an integer 1..6")
    gxz, gzz, w = propagators if propagators is not None else propagators_to_region(spec, x, region)
    m = gxz.shape[0]
    tup = sorted_tuples(m, order)
    prod = np.ones((len(tup), gxz.shape[1]))
    for j in range(order):
        prod = prod * gxz[tup[:, j]]
    vals = np.zeros(len(tup))
    for loops, c in vertex_factor(potential, order):
        vals -= c * prod @ (w * gzz**loops)
    return Correlators(order=order, connected=True, values=vals, n_sites=m, source="predicted",
                       label=f"first order in V = {potential}", width_order="N^0")


def tree_level(spec: Architecture, x, lam: float, region: Box, **kw) -> Correlators:
    """δG_c^(4) = −λ ∫_Ω Π_i G(x_i − z) (φ⁴ tree level)."""
    from .potential import phi4

    return first_order(spec, x, phi4(lam), region, 4, **kw)


def tadpole(spec: Architecture, x, lam: float, region: Box, **kw) -> Correlators:
    """δG^(2)(x, y) = −(λ/2) G(0) ∫_Ω G(x − z) G(z − y) (φ⁴ first-order mass shift δm² = (λ/2) G(0))."""
    from .potential import phi4

    return first_order(spec, x, phi4(lam), region, 2, **kw)
