"""Potentials V(φ) and finite regions Ω for deformed parameter densities (PHYSICS.md §6; arXiv:2307.03223).

A deformation multiplies the parameter density by exp(−S_V[φ_θ]) with

    S_V[φ] = ∫_Ω d^dx V(φ(x)),      V(φ) = Σ_k g_k φ^k      (φ⁴ theory: V = (λ/4!) φ⁴).

Ω is a box [lo, hi]^d. The integral is evaluated with a tensor-product Gauss–Legendre rule
(SciPy's ``roots_legendre``), S_V ≈ Σ_q ω_q V(φ(z_q)). The rule *defines* the deformation that is sampled, and
the perturbative predictions of :mod:`nnft.fieldtheory.perturbation` use the same rule, so theory and
experiment describe exactly the same action; :meth:`Box.rule_error` measures how far the rule is from the
continuum integral for a given integrand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from scipy import integrate, special

from ..errors import check

__all__ = ["Polynomial", "phi4", "Box"]


@dataclass(frozen=True)
class Polynomial:
    """V(φ) = Σ_k coeffs[k] φ^k (``coeffs[k]`` multiplies φ^k; trailing zeros allowed).

    A deformation needs V bounded below, so that exp(−S_V) is a normalisable weight: the highest nonzero power
    must be even with a positive coefficient (or V constant)."""

    coeffs: tuple[float, ...]

    def __post_init__(self) -> None:
        c = tuple(float(v) for v in self.coeffs) if isinstance(self.coeffs, (list, tuple, np.ndarray)) else None
        check(c is not None and len(c) >= 1 and all(math.isfinite(v) for v in c), "Polynomial.coeffs",
              self.coeffs, "a non-empty sequence of finite numbers (coeffs[k] multiplies φ^k)")
        while len(c) > 1 and c[-1] == 0.0:
            c = c[:-1]
        object.__setattr__(self, "coeffs", c)
        top = len(c) - 1
        check(top == 0 or (top % 2 == 0 and c[-1] > 0), "Polynomial.coeffs", list(c),
              "a potential bounded below: highest power even with a positive coefficient")

    @property
    def degree(self) -> int:
        return len(self.coeffs) - 1

    def __call__(self, phi):
        """V(φ) elementwise (Horner), for NumPy arrays or torch tensors."""
        out = 0.0 * phi + self.coeffs[-1]
        for c in reversed(self.coeffs[:-1]):
            out = out * phi + c
        return out

    def scaled(self, factor: float) -> "Polynomial":
        """factor · V (a coupling times a unit potential)."""
        check(math.isfinite(factor) and factor >= 0, "coupling", factor, "a finite number >= 0")
        return Polynomial(tuple(factor * c for c in self.coeffs)) if factor > 0 else Polynomial((0.0,))

    def minimum(self) -> float:
        """min_φ V(φ) over the real line (at a real critical point; exact for the polynomial)."""
        c = np.array(self.coeffs)
        if self.degree == 0:
            return float(c[0])
        crit = np.polynomial.polynomial.polyroots(np.polynomial.polynomial.polyder(c))
        crit = crit[np.abs(crit.imag) < 1e-9].real
        return float(min(self(v) for v in crit))

    def __str__(self) -> str:
        terms = [f"{c:g} φ^{k}" if k > 1 else (f"{c:g} φ" if k == 1 else f"{c:g}")
                 for k, c in enumerate(self.coeffs) if c != 0.0]
        return " + ".join(terms) if terms else "0"

    def to_config(self) -> dict:
        return {"coeffs": list(self.coeffs)}

    @classmethod
    def from_config(cls, cfg: dict) -> "Polynomial":
        check(isinstance(cfg, dict) and "coeffs" in cfg, "potential", cfg, "a table with 'coeffs' = [g0, g1, ...]")
        return cls(tuple(cfg["coeffs"]))


def phi4(lam: float = 1.0) -> Polynomial:
    """V(φ) = (λ/4!) φ⁴, the φ⁴ coupling in the sign convention of PHYSICS.md §6 (λ > 0: repulsive)."""
    check(isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0, "lambda", lam, "a finite number >= 0")
    return Polynomial((0.0, 0.0, 0.0, 0.0, lam / 24.0))


@lru_cache(maxsize=32)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    t, w = special.roots_legendre(n)
    return t, w


@dataclass(frozen=True)
class Box:
    """The region Ω = Π_μ [lo_μ, hi_μ] with an n-point Gauss–Legendre rule per axis (n^d nodes)."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    n_quad: int = 16

    def __post_init__(self) -> None:
        lo = tuple(float(v) for v in np.atleast_1d(self.lo))
        hi = tuple(float(v) for v in np.atleast_1d(self.hi))
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        check(len(lo) == len(hi) >= 1 and all(math.isfinite(a) and math.isfinite(b) and b > a
                                               for a, b in zip(lo, hi)),
              "region", f"lo={list(lo)}, hi={list(hi)}", "finite bounds with hi > lo in every dimension")
        check(isinstance(self.n_quad, int) and not isinstance(self.n_quad, bool) and 1 <= self.n_quad <= 512,
              "n_quad", self.n_quad, "an integer 1..512 (Gauss–Legendre nodes per dimension)")
        check(self.n_quad ** len(lo) <= 200_000, "n_quad", self.n_quad,
              f"at most 200000 nodes in all (n_quad^d with d = {len(lo)})")

    @classmethod
    def cube(cls, side: float, d: int, *, center: Sequence[float] | float = 0.0, n_quad: int = 16) -> "Box":
        """The cube of side ``side`` centred at ``center`` in d dimensions."""
        check(isinstance(d, int) and d >= 1, "d", d, "an integer >= 1")
        check(isinstance(side, (int, float)) and math.isfinite(side) and side > 0, "side", side, "a number > 0")
        c = np.broadcast_to(np.asarray(center, dtype=np.float64), (d,))
        return cls(tuple(c - side / 2), tuple(c + side / 2), n_quad)

    @property
    def d(self) -> int:
        return len(self.lo)

    @property
    def volume(self) -> float:
        return float(np.prod(np.subtract(self.hi, self.lo)))

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(points (Q, d), weights (Q,)) of the tensor-product rule; Σ weights = vol(Ω)."""
        t, w = _legendre(self.n_quad)
        axes = [(lo + (hi - lo) * (t + 1) / 2, w * (hi - lo) / 2) for lo, hi in zip(self.lo, self.hi)]
        pts = np.stack(np.meshgrid(*[a[0] for a in axes], indexing="ij"), axis=-1).reshape(-1, self.d)
        wts = np.ones(1)
        for a in axes:
            wts = np.multiply.outer(wts, a[1]).reshape(-1)
        return pts, wts

    def contains(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        return np.all((x >= np.array(self.lo)) & (x <= np.array(self.hi)), axis=1)

    def rule_error(self, integrand: Callable[[np.ndarray], np.ndarray], *, epsrel: float = 1e-8) -> float:
        """|rule − adaptive quadrature| / |adaptive| for a scalar integrand f(points (Q, d)) -> (Q,) over Ω
        (scipy.integrate.nquad; d ≤ 3 recommended)."""
        pts, wts = self.nodes()
        rule = float(wts @ integrand(pts))
        exact, _ = integrate.nquad(lambda *z: float(integrand(np.array([z]))[0]), list(zip(self.lo, self.hi)),
                                   opts={"epsrel": epsrel, "limit": 200})
        return abs(rule - exact) / max(abs(exact), 1e-300)

    def to_config(self) -> dict:
        return {"lo": list(self.lo), "hi": list(self.hi), "n_quad": self.n_quad}

    @classmethod
    def from_config(cls, cfg: dict) -> "Box":
        check(isinstance(cfg, dict) and {"lo", "hi"} <= set(cfg), "region", cfg,
              "a table with lo = [...], hi = [...] (and optional n_quad)")
        return cls(tuple(cfg["lo"]), tuple(cfg["hi"]), int(cfg.get("n_quad", 16)))
