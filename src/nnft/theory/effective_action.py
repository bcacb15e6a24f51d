"""Effective actions from connected correlators: quartic couplings, their running, locality templates and
the 6-point prediction (PHYSICS.md §5; NN-QFT arXiv:2008.08601; Edgeworth form arXiv:2307.03223).

NN-QFT coupling (sign convention of arXiv:2008.08601, stated explicitly):

    ΔG4(x1..x4) := G^(4)_exp − G^(4)_GP           (= G_c^(4) at O(1/N) for one hidden layer)
    I_Λ(x1..x4) := ∫_{|x|<Λ} d^dx Π_{i=1}^4 K(x, x_i)   (K = full GP kernel, output bias included)
    λ(Λ)        := ΔG4 / (24 I_Λ)                     (a tensor over input 4-tuples; λ̄ = its mean)

The action S = S_0 + ∫_{|x|<Λ} λ_S φ⁴ gives ΔG4 = −24 λ_S I_Λ at first order, so **λ = −λ_S**: a positive
λ here is a *negative* φ⁴ term in S (the φ⁴/4! coupling is −24λ). ``domain="cube"`` integrates over
[−Λ, Λ]^d as the public NN-QFT code does (identical for d = 1).

Amputated coupling (leading order of the Edgeworth action, PHYSICS.md §5):
    λ_amp(y1..y4) = −Σ_{x} G_c^(4)(x1..x4) Π_i K^{-1}(x_i, y_i)      (quartic term S ⊃ (1/4!) Σ λ_amp φφφφ)
with K^{-1} the (ridge-regularised) inverse Gram matrix on the input set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import numpy as np
import torch

from ..correlators import Correlators, pairings, sorted_tuples, tuple_rank
from ..errors import check
from ..spec import Architecture
from .kernels import as_inputs, kernels

__all__ = ["coupling_integral", "quartic_coupling", "running", "six_point_prediction", "amputated_coupling",
           "template_fit", "Coupling", "Running", "TemplateFit"]

Domain = Literal["ball", "cube"]


def _radial_nodes(cutoff: float, scale: float, per_segment: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes on [0, Λ] on geometric segments [h 2^k, h 2^{k+1}] (h = half the input scale,
    at most 1/2): both the structure near the inputs and the far field are resolved for any Λ."""
    h = max(min(scale, 1.0), 1e-3) / 2
    edges = [0.0]
    while edges[-1] * 1.0001 < cutoff:
        edges.append(min(cutoff, h if len(edges) == 1 else 2 * edges[-1]))
    t, w = np.polynomial.legendre.leggauss(per_segment)
    nodes, weights = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        nodes.append((hi - lo) / 2 * t + (hi + lo) / 2)
        weights.append((hi - lo) / 2 * w)
    return np.concatenate(nodes), np.concatenate(weights)


_MAX_POINTS = 20_000_000


def _grid(d: int, cutoff: float, scale: float, domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes (P, d) and weights (P,) for ∫ d^dx over the ball |x| < Λ or the cube [−Λ, Λ]^d."""
    check(d <= 3, "d_in", d, "1, 2 or 3 (the coupling integral is a d-dimensional quadrature)")
    per_segment = {1: 24, 2: 16, 3: 16 if domain == "ball" else 8}[d]
    r, wr = _radial_nodes(cutoff, scale, per_segment)
    if domain == "cube" and d > 1:
        check((2 * len(r)) ** d <= _MAX_POINTS, "domain", "cube",
              f"'ball' for d = {d} at cutoff {cutoff:g} (the cube grid would need {(2 * len(r)) ** d:.2g} points)")
    if d == 1 or domain == "cube":
        line = np.concatenate([-r[::-1], r])
        wline = np.concatenate([wr[::-1], wr])
        mesh = np.stack(np.meshgrid(*([line] * d), indexing="ij"), -1).reshape(-1, d)
        wmesh = np.prod(np.stack(np.meshgrid(*([wline] * d), indexing="ij"), -1).reshape(-1, d), 1)
        return mesh, wmesh
    if d == 2:
        n_phi = 96
        phi = 2 * np.pi * np.arange(n_phi) / n_phi  # trapezoid: spectral for periodic integrands
        pts = np.stack([np.outer(r, np.cos(phi)), np.outer(r, np.sin(phi))], -1).reshape(-1, 2)
        w = np.outer(wr * r, np.full(n_phi, 2 * np.pi / n_phi)).ravel()
        return pts, w
    if d == 3:
        n_phi, n_mu = 48, 32
        mu, wmu = np.polynomial.legendre.leggauss(n_mu)
        phi = 2 * np.pi * np.arange(n_phi) / n_phi
        s = np.sqrt(1 - mu**2)
        dirs = np.stack([np.outer(s, np.cos(phi)), np.outer(s, np.sin(phi)), np.outer(mu, np.ones(n_phi))], -1)
        dirs = dirs.reshape(-1, 3)
        wdir = np.outer(wmu, np.full(n_phi, 2 * np.pi / n_phi)).ravel()
        pts = (r[:, None, None] * dirs[None]).reshape(-1, 3)
        w = np.outer(wr * r**2, wdir).ravel()
        return pts, w
    raise AssertionError("unreachable")


def coupling_integral(spec: Architecture, x, cutoff: float, *, domain: Domain = "ball",
                      order: int = 4) -> np.ndarray:
    """I_Λ(x_t1..x_tn) = ∫_{domain} d^dx Π_k K(x, x_tk) on every sorted input tuple t of ``order`` (colex)."""
    from ..ensemble.accumulator import Accumulator

    check(isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0, "cutoff", cutoff,
          "a finite number > 0")
    check(domain in ("ball", "cube"), "domain", domain, "'ball' or 'cube'")
    x = as_inputs(x, spec.d_in, "x")
    scale = float(x.abs().max()) if x.numel() else 1.0
    pts, w = _grid(spec.d_in, float(cutoff), scale, domain)
    total = None
    for s in range(0, len(pts), _BLOCK):  # bounded memory for d = 3 grids
        kx = kernels(spec, torch.from_numpy(pts[s:s + _BLOCK]), x).nngp.numpy()  # (P, M)
        acc = Accumulator.from_samples(kx, order, weights=w[s:s + _BLOCK])
        total = acc if total is None else total + acc
    return total.sums[order - 1]


_BLOCK = 1 << 16


@dataclass(frozen=True)
class Coupling:
    """λ(Λ) = ΔG4/(24 I_Λ) on every sorted input 4-tuple, its mean λ̄, spread and error."""

    cutoff: float
    values: np.ndarray
    stderr: Optional[np.ndarray]
    integral: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def mean_stderr(self) -> float:
        """Standard error of λ̄ (tuples are correlated: the error of the mean of the per-tuple errors is an
        upper bound; we use the mean per-tuple error, i.e. fully correlated errors)."""
        return float(np.mean(self.stderr)) if self.stderr is not None else float("nan")

    @property
    def spread(self) -> float:
        """std over tuples / |λ̄|: position dependence (non-locality) of the coupling."""
        return float(np.std(self.values) / abs(self.mean)) if self.mean != 0 else float("inf")


def quartic_coupling(spec: Architecture, x, delta_g4: Correlators, cutoff: float, *,
                     domain: Domain = "ball") -> Coupling:
    """λ(Λ) from ΔG4 = G^(4) − G^(4)_GP (a Correlators of order 4 on the inputs x; d_out = 1)."""
    check(delta_g4.order == 4 and delta_g4.d_out == 1, "delta_g4", delta_g4.name, "an order-4 correlator, d_out = 1")
    integral = coupling_integral(spec, x, cutoff, domain=domain)
    check(integral.shape == delta_g4.values.shape, "x", integral.shape, "the inputs delta_g4 was computed on")
    values = delta_g4.values / (24 * integral)
    err = None if delta_g4.stderr is None else delta_g4.stderr / (24 * np.abs(integral))
    return Coupling(float(cutoff), values, err, integral)


@dataclass(frozen=True)
class Running:
    """log10|λ̄| against log10 Λ: slope (β-function exponent), intercept and R² of the fit."""

    cutoffs: np.ndarray
    couplings: np.ndarray
    stderr: np.ndarray
    slope: float
    intercept: float
    r2: float


def running(spec: Architecture, x, delta_g4: Correlators, cutoffs: Sequence[float], *,
            domain: Domain = "ball") -> Running:
    """λ̄(Λ) over ``cutoffs`` and the log–log fit. Since ΔG4 does not depend on Λ,
    β = dλ/d log Λ = −λ d log I_Λ / d log Λ (PHYSICS.md §5)."""
    cs = [quartic_coupling(spec, x, delta_g4, c, domain=domain) for c in cutoffs]
    lam = np.array([c.mean for c in cs])
    err = np.array([c.mean_stderr for c in cs])
    lx, ly = np.log10(np.asarray(cutoffs, float)), np.log10(np.abs(lam))
    slope, icpt = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + icpt)
    r2 = float(1 - resid.var() / ly.var()) if ly.var() > 0 else 1.0
    return Running(np.asarray(cutoffs, float), lam, err, float(slope), float(icpt), r2)


def six_point_prediction(spec: Architecture, x, coupling: float, cutoff: float, *, domain: Domain = "ball",
                         gp_six: Optional[np.ndarray] = None) -> np.ndarray:
    """G^(6)_pred = G^(6)_GP + 24 λ̄ Σ_{15 spectator pairs (e,f)} I_Λ(x_a, x_b, x_c, x_d) K(x_e, x_f)
    on every sorted input 6-tuple (PHYSICS.md §5; G_c^(6) = O(1/N²) dropped)."""
    from .wick import wick_moments

    xt = as_inputs(x, spec.d_in, "x")
    m = xt.shape[0]
    k = kernels(spec, xt).nngp.numpy()
    i4 = coupling_integral(spec, xt, cutoff, domain=domain)
    tup = sorted_tuples(m, 6)
    extra = np.zeros(len(tup))
    for p in pairings(6):
        for e_pair in p:  # the spectator pair; the other four points form the quartic vertex
            e, f = e_pair
            rest = [i for i in range(6) if i not in e_pair]
            extra += i4[tuple_rank(np.sort(tup[:, rest], 1), m)] * k[tup[:, e], tup[:, f]]
    # each (spectator pair, vertex quadruple) split appears once per pairing containing the pair: 3 times
    extra /= 3
    base = wick_moments(k, 6) if gp_six is None else gp_six
    return base + 24 * coupling * extra


def amputated_coupling(g_c4: Correlators, kernel, *, ridge: float = 0.0) -> np.ndarray:
    """λ_amp(y1..y4) = −Σ_x G_c^(4)(x1..x4) Π_i (K + ridge·I)^{-1}(x_i, y_i), as the full (M,)*4 tensor.

    Coincident or near-collinear inputs make K singular; then a ``ridge`` > 0 is required (and reported)."""
    k = np.asarray(kernel.numpy() if isinstance(kernel, torch.Tensor) else kernel, dtype=np.float64)
    check(isinstance(ridge, (int, float)) and ridge >= 0, "ridge", ridge, "a number >= 0")
    m = k.shape[0]
    reg = k + ridge * np.eye(m)
    cond = np.linalg.cond(reg)
    check(cond < 1e12, "ridge", ridge, f"a ridge making K invertible (cond(K + ridge·I) = {cond:.2g} ≥ 1e12; "
          "coincident inputs make the Gram matrix singular)")
    kinv = np.linalg.inv(reg)
    kinv = (kinv + kinv.T) / 2
    g = g_c4.full()
    return -np.einsum("abcd,ai,bj,ck,dl->ijkl", g, kinv, kinv, kinv, kinv, optimize=True)


@dataclass(frozen=True)
class TemplateFit:
    """Least-squares fits of ΔG4 by coupling templates, scored on held-out tuples."""

    names: tuple[str, ...]
    coefficients: dict[str, np.ndarray]
    holdout_error: dict[str, float]  # RMS relative error on held-out tuples


def _templates(spec: Architecture, x: torch.Tensor, cutoff: float, domain: Domain) -> dict[str, np.ndarray]:
    m = x.shape[0]
    tup = sorted_tuples(m, 4)
    k = kernels(spec, x).nngp.numpy()
    local = coupling_integral(spec, x, cutoff, domain=domain)
    pair_sum = sum(k[tup[:, a], tup[:, b]] * k[tup[:, c], tup[:, d]] for (a, b), (c, d) in pairings(4))
    # derivative coupling (∂φ)²φ²: ∫ Σ_{pairs} ∇K(x, x_a)·∇K(x, x_b) K(x, x_c) K(x, x_d), ∇ by central differences
    from ..ensemble.accumulator import Accumulator

    scale = float(x.abs().max()) if x.numel() else 1.0
    pts, w = _grid(spec.d_in, cutoff, scale, domain)
    h = 1e-4 * max(scale, 1.0)
    kx = kernels(spec, torch.from_numpy(pts), x).nngp.numpy()
    grads = []
    for axis in range(spec.d_in):
        dp = pts.copy()
        dp[:, axis] += h
        dm = pts.copy()
        dm[:, axis] -= h
        grads.append((kernels(spec, torch.from_numpy(dp), x).nngp.numpy()
                      - kernels(spec, torch.from_numpy(dm), x).nngp.numpy()) / (2 * h))
    deriv = np.zeros(len(tup))
    for g in grads:  # Σ over the 6 (a,b) pairs of ∫ ∂K_a ∂K_b K_c K_d: use features [K, ∂K] and order-4 sums
        feats = np.concatenate([kx, g], 1)
        sums = Accumulator.from_samples(feats, 4, weights=w).sums[3]
        for (a, b), (c, d) in pairings(4):
            for (p, q), (r, s) in (((a, b), (c, d)), ((c, d), (a, b))):
                idx = np.stack([tup[:, p] + m, tup[:, q] + m, tup[:, r], tup[:, s]], 1)
                deriv += sums[tuple_rank(np.sort(idx, 1), 2 * m)]
    return {"local φ⁴": local, "derivative (∂φ)²φ²": deriv, "non-local Σ K K": pair_sum}


def template_fit(spec: Architecture, x, delta_g4: Correlators, cutoff: float, *, domain: Domain = "ball",
                 holdout: float = 0.3, seed: int = 0) -> TemplateFit:
    """Fit ΔG4 by (local), (local + derivative), (non-local) and (all) templates on a random (1 − holdout)
    fraction of tuples and report the RMS relative error on the rest (a locality test, PHYSICS.md §5)."""
    xt = as_inputs(x, spec.d_in, "x")
    temps = _templates(spec, xt, cutoff, domain)
    y = delta_g4.values
    rng = np.random.default_rng(seed)
    test = rng.random(len(y)) < holdout
    if test.all() or not test.any():
        test = np.arange(len(y)) % 3 == 0
    sets = {"local": ["local φ⁴"], "local + derivative": ["local φ⁴", "derivative (∂φ)²φ²"],
            "non-local": ["non-local Σ K K"], "all": list(temps)}
    coefs, errs = {}, {}
    scale = np.sqrt(np.mean(y[test] ** 2))
    for name, keys in sets.items():
        a = np.stack([temps[k] for k in keys], 1)
        c, *_ = np.linalg.lstsq(a[~test], y[~test], rcond=None)
        coefs[name] = c
        errs[name] = float(np.sqrt(np.mean((a[test] @ c - y[test]) ** 2)) / scale)
    return TemplateFit(tuple(sets), coefs, errs)
