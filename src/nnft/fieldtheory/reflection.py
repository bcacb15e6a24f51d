"""Reflection positivity (Osterwalder–Schrader) diagnostic for a 2-point function (PHYSICS.md §6).

For the time reflection Θ(x⁰, x⃗) = (−x⁰, x⃗) and points x_1..x_n with x⁰ > 0, a Gaussian theory is
reflection positive iff the reflected Gram matrix R_ij = G(Θx_i, x_j) is positive semi-definite. The
diagnostic is its smallest eigenvalue relative to the largest, λ_min/λ_max (≥ 0 up to round-off for an RP
theory). Expected: 1/(p² + m²) with Λ = ∞ is RP; the RBF kernel of Cos/Gauss-net is not; a sharp
momentum cutoff violates RP at separations ~1/Λ, less as Λ grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import check

__all__ = ["ReflectionPositivity", "reflection_positivity", "time_lattice"]


@dataclass(frozen=True)
class ReflectionPositivity:
    """Eigenvalues of R (ascending) and the ratio λ_min/λ_max."""

    eigenvalues: np.ndarray

    @property
    def ratio(self) -> float:
        return float(self.eigenvalues[0] / self.eigenvalues[-1])

    def positive(self, tol: float = 1e-10) -> bool:
        return self.ratio >= -tol


def time_lattice(n: int, spacing: float, d: int = 1, offset: float | None = None) -> np.ndarray:
    """n points on the positive time axis, x⁰ = offset + k·spacing (spatial coordinates 0)."""
    check(isinstance(n, int) and n >= 1, "n", n, "an integer >= 1")
    check(spacing > 0, "spacing", spacing, "a number > 0")
    x = np.zeros((n, d))
    x[:, 0] = (spacing / 2 if offset is None else offset) + spacing * np.arange(n)
    return x


def reflection_positivity(propagator: Callable[[np.ndarray], np.ndarray], points: np.ndarray) -> ReflectionPositivity:
    """RP diagnostic for a translation- and rotation-invariant 2-point function G(r) = propagator(r) at
    positive-time ``points`` (n, d): eigenvalues of R_ij = G(|Θx_i − x_j|)."""
    pts = np.asarray(points, dtype=np.float64)
    check(pts.ndim == 2 and bool(np.all(pts[:, 0] > 0)), "points", pts.shape, "(n, d) with x⁰ > 0")
    refl = pts.copy()
    refl[:, 0] = -refl[:, 0]
    dist = np.linalg.norm(refl[:, None, :] - pts[None, :, :], axis=-1)
    r = np.asarray(propagator(dist.ravel()), dtype=np.float64).reshape(dist.shape)
    return ReflectionPositivity(np.linalg.eigvalsh((r + r.T) / 2))
