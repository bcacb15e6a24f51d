"""Free field theories by design (PHYSICS.md §2, §6; arXiv:2112.04527).

A cosine layer ℓ_i(x) = F(w_i) cos(w_i·x + b_i) with a uniform phase b ~ U[−π, π] and isotropic momenta
w ~ P(w), read out as φ = N^{−1/2} Σ a_i ℓ_i, has G^(2)(x, y) = (μ_2/2) ∫ d^dw P(w) F(w)² cos(w·(x − y)) at
every width, i.e. momentum-space propagator G̃(p) = (2π)^d (μ_2/2) P(p) F(p)². Two ready-made spectra:

  * the massive free scalar G̃(p) = 1/(p² + m²) on |p| < Λ (Scalar-net: P uniform on the ball,
    F = (p² + m²)^{−1/2}, μ_2 = 2 vol(B_Λ)/(2π)^d), any d;
  * the Gaussian spectrum (Cos-net: Gaussian w, F = 1): G(r) = (σ_a²/2) exp(−σ_w² r²/(2d)).

Exact position-space propagators for the checks:
    with cutoff:  G(r) = (2π)^{−d/2} r^{1−d/2} ∫_0^Λ dp p^{d/2} J_{d/2−1}(p r) / (p² + m²),
                  G(0) = [2π^{d/2}/Γ(d/2)] (2π)^{−d} ∫_0^Λ dp p^{d−1}/(p² + m²)
    Λ → ∞:        G(r) = (2π)^{−d/2} (m/r)^{d/2−1} K_{d/2−1}(m r)   (e^{−m|x|}/(2m) in d = 1, e^{−mr}/(4πr) in d = 3)
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import check
from ..spec import Architecture, cos_net, scalar_net

__all__ = ["free_scalar", "gaussian_free_field", "scalar_propagator", "gaussian_propagator"]


def free_scalar(d: int, *, mass: float = 1.0, cutoff: float = 20.0, width: int = 100) -> Architecture:
    """The network whose ensemble is the free massive scalar 1/(p² + m²) with momentum cutoff Λ (Scalar-net)."""
    check(isinstance(d, int) and 1 <= d <= 4, "d", d, "1, 2, 3 or 4")
    return scalar_net(width, d, mass=mass, cutoff=cutoff)


def gaussian_free_field(d: int, *, sigma_a: float = 1.0, sigma_w: float = 1.0, width: int = 100) -> Architecture:
    """The network whose ensemble has the Gaussian spectrum G(r) = (σ_a²/2) exp(−σ_w² r²/(2d)) (Cos-net)."""
    check(isinstance(d, int) and d >= 1, "d", d, "an integer >= 1")
    return cos_net(width, d, sigma_a=sigma_a, sigma_w=sigma_w)


def scalar_propagator(r, d: int, *, mass: float = 1.0, cutoff: Optional[float] = None) -> np.ndarray:
    """Exact position-space propagator of 1/(p² + m²) in d dimensions at distances r, with a sharp momentum
    cutoff Λ (Fourier–Bessel quadrature) or without (Bessel-K closed form; r > 0). The massive case of
    :func:`nnft.fieldtheory.spectrum.position_propagator`."""
    from .spectrum import massive, position_propagator

    r = np.atleast_1d(np.asarray(r, dtype=np.float64))
    check(bool(np.all(np.isfinite(r)) and np.all(r >= 0)), "r", r.tolist()[:4], "finite distances >= 0")
    check(isinstance(mass, (int, float)) and mass > 0, "mass", mass, "a number > 0")
    if cutoff is None:
        check(bool(np.all(r > 0)), "r", 0.0, "r > 0 without a cutoff (the propagator diverges at r = 0 for d ≥ 2)"
              if d >= 2 else "")
    else:
        check(cutoff > 0, "cutoff", cutoff, "a number > 0")
    return position_propagator(massive(float(mass)), r, d, cutoff=None if cutoff is None else float(cutoff))


def gaussian_propagator(r, d: int, *, sigma_a: float = 1.0, sigma_w: float = 1.0) -> np.ndarray:
    """G(r) = (σ_a²/2) exp(−σ_w² r²/(2d)) (the Gaussian spectrum of Cos-net)."""
    r = np.asarray(r, dtype=np.float64)
    return sigma_a**2 / 2 * np.exp(-(sigma_w**2) * r**2 / (2 * d))
