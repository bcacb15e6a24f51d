"""Gaussian expectations of activations: closed forms where they exist, Gauss–Hermite otherwise.

E[g(u, v)] for (u, v) ~ N(0, [[a, c], [c, b]]) by the physicists' Gauss–Hermite rule (PHYSICS.md §3):
    E[g(u, v)] ≈ (1/π) Σ_{i,j} ω_i ω_j g( sqrt(2a) t_i, ρ sqrt(2b) t_i + sqrt(2b(1 − ρ²)) t_j ),  ρ = c/sqrt(ab).
Convergence is exponential for analytic σ and only algebraic for kinks (ReLU, step, abs), which is why
those have closed forms. Degenerate variances (a = 0 or |ρ| = 1) are handled by the same formula: the
node map stays finite because ρ is clipped and sqrt(1 − ρ²) vanishes.

The rule is not symmetric under (a, b) → (b, a) (it conditions on u), but E[σ(u)σ(v)] is; so each pair is
ordered with the smaller variance as u, which makes the result exactly symmetric (a kernel matrix built
from it is symmetric to the last bit) without changing the rule.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import torch

from ..spec import Activation

__all__ = ["dual_kernel", "gauss_hermite_pair", "gauss_hermite_single"]

Tensor = torch.Tensor
Which = Literal["value", "derivative"]


@lru_cache(maxsize=16)
def _hermgauss(degree: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.hermite.hermgauss(degree)


def _apply(act: Activation, which: Which, z: Tensor, q: Tensor) -> Tensor:
    return act(z, q) if which == "value" else act.derivative(z, q)


def gauss_hermite_pair(act: Activation, a: Tensor, b: Tensor, c: Tensor, *, which: Which = "value",
                       degree: int = 48, block: int = 4096) -> Tensor:
    """E[σ(u)σ(v)] (or E[σ'(u)σ'(v)]) by the 2-D rule above; broadcasts a, b, c; float64."""
    a, b, c = torch.broadcast_tensors(*(torch.as_tensor(t, dtype=torch.float64) for t in (a, b, c)))
    a, b = torch.minimum(a, b), torch.maximum(a, b)  # σ(u)σ(v) is symmetric: condition on the smaller variance
    shape = a.shape
    a, b, c = a.reshape(-1), b.reshape(-1), c.reshape(-1)
    t, w = (torch.as_tensor(v, dtype=torch.float64) for v in _hermgauss(degree))
    ww = (w[:, None] * w[None, :]) / np.pi
    out = torch.empty_like(a)
    for s in range(0, a.numel(), block):
        aa, bb, cc = a[s:s + block, None, None], b[s:s + block, None, None], c[s:s + block, None, None]
        ab = aa * bb
        rho = torch.where(ab > 0, cc / torch.sqrt(torch.where(ab > 0, ab, torch.ones_like(ab))),
                          torch.zeros_like(ab)).clamp(-1.0, 1.0)
        u = torch.sqrt(2 * aa) * t[None, :, None]
        v = rho * torch.sqrt(2 * bb) * t[None, :, None] + torch.sqrt(2 * bb * (1 - rho * rho)) * t[None, None, :]
        gu = _apply(act, which, u, aa)
        gv = _apply(act, which, v, bb)
        out[s:s + block] = (gu * gv * ww).sum(dim=(1, 2))
    return out.reshape(shape)


def gauss_hermite_single(act: Activation, a: Tensor, fn=None, *, degree: int = 64) -> Tensor:
    """E[g(u)], u ~ N(0, a), g = σ by default: π^{−1/2} Σ ω_i g(sqrt(2a) t_i)."""
    a = torch.as_tensor(a, dtype=torch.float64)
    t, w = (torch.as_tensor(v, dtype=torch.float64) for v in _hermgauss(degree))
    u = torch.sqrt(2 * a)[..., None] * t
    g = act(u, a[..., None]) if fn is None else fn(u, a[..., None])
    return (g * w).sum(-1) / np.sqrt(np.pi)


def dual_kernel(act: Activation, a: Tensor, b: Tensor, c: Tensor, *, which: Which = "value",
                degree: int = 48) -> Tensor:
    """E[σ(u)σ(v)] (``which="value"``) or E[σ'(u)σ'(v)] (``"derivative"``): the activation's closed
    form if it has one, else Gauss–Hermite quadrature of ``degree`` nodes per dimension."""
    closed = act.dual(a, b, c) if which == "value" else act.dual_derivative(a, b, c)
    if closed is not None:
        return closed
    if which == "derivative" and not act.has_derivative:
        act.derivative(torch.zeros(1))  # raises the named error
    return gauss_hermite_pair(act, a, b, c, which=which, degree=degree)
