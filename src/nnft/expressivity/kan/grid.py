"""KAN grids from data, grid extension, and the least-squares transfer between spline spaces.

PHYSICS.md §9 and arXiv:2404.19756 §2.5 (pykan 0.2.8 conventions). All functions are pure and work in
float64 on per-input knot rows (n_in, G + 2k + 1); ``KANLayer.update_grid`` / ``extend_grid`` use them.

* Adaptive grid (``adaptive_knots``): per input, sorted samples x_(0) ≤ … ≤ x_(n−1), quantile knots
  q_j = x_(⌊j n/G⌋) (j < G), q_G = x_(n−1); uniform knots u_j = x_(0) + j (x_(n−1) − x_(0))/G;
  interior knots t_j = ε u_j + (1 − ε) q_j (ε = grid_eps; ε = 1 is uniform, ε = 0 pure quantiles);
  k extra knots on each side at spacing (x_(n−1) − x_(0))/G.
* Refined grid (``refined_knots``): G → G' on the same [a, b]: the old interior knots interpolated
  piecewise linearly at fractions j/G' (uniform stays uniform; G' = mG contains every old knot, so the
  spline spaces are nested on [a, b]); k extra knots each side at spacing (b − a)/G'.
* Transfer (``transfer``): c' = argmin Σ_s (Σ_j c'_j B'_j(x_s) − Σ_i c_i B_i(x_s))² per input and edge,
  solved as c'_i = T_i c_i with T_i = argmin_T ‖B'_i T − B_i‖_F (minimum-norm, SVD-based ``gelsd``), one
  solve per input for all its edges.
* Fitting points (``gauss_legendre_points``): k + 1 Gauss–Legendre nodes in every cell of [a, b]. The
  discrete least squares on them is exactly the L²([a, b]) projection (the rule integrates the degree-2k
  products of two splines exactly), so a spline already in the new space is reproduced to round-off.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .basis import _local_general, local_to_dense, uniform_grid

__all__ = ["design_matrix", "fit_coefficients", "transfer", "adaptive_knots", "refined_knots",
           "gauss_legendre_points", "extend_knots"]

Tensor = torch.Tensor
F64 = torch.float64


def design_matrix(x: Tensor, grid: Tensor, k: int) -> Tensor:
    """B_m(x_si) in float64: x (n, n_in), grid (n_in, K) → (n, n_in, K − k − 1) (general Cox–de Boor path)."""
    x = x.to(F64)
    cell, vals = _local_general(x, grid.to(F64), k)
    return local_to_dense(cell, vals, grid.shape[1] - k - 1, k)


def fit_coefficients(grid: Tensor, k: int, x: Tensor, y: Tensor) -> Tensor:
    """argmin_c Σ_s (Σ_m c_ijm B_m(x_si) − y_sij)² (minimum norm) for x (n, n_in), y (n, n_in, n_out).

    Returns (n_in, n_out, G + k) in float64.
    """
    B = design_matrix(x, grid, k)
    sol = torch.linalg.lstsq(B.transpose(0, 1), y.to(F64).transpose(0, 1), driver="gelsd").solution
    return sol.transpose(1, 2)


def transfer(old_grid: Tensor, new_grid: Tensor, k: int, coef: Tensor, x: Tensor, *, clamp: bool = False
             ) -> tuple[Tensor, float]:
    """Coefficients on ``new_grid`` that best reproduce Σ_m c_ijm B_m on the samples x (n, n_in).

    coef (n_in, n_out, G + k) on ``old_grid``; with ``clamp`` each grid sees x clamped to its own [a, b]
    (the "clamp" out-of-range policy). Returns (new coef (n_in, n_out, G' + k) float64, the largest
    absolute change of the spline on the samples).
    """
    x = x.to(F64)
    old_g, new_g = old_grid.to(F64), new_grid.to(F64)

    def inputs(g: Tensor) -> Tensor:
        return torch.clamp(x, g[:, k], g[:, -k - 1]) if clamp else x

    old_B, new_B = design_matrix(inputs(old_g), old_g, k), design_matrix(inputs(new_g), new_g, k)
    T = torch.linalg.lstsq(new_B.transpose(0, 1), old_B.transpose(0, 1), driver="gelsd").solution  # (n_in, nb', nb)
    coef = coef.detach().to(F64)
    new_coef = torch.einsum("ipm,iom->iop", T, coef)
    before = torch.einsum("nim,iom->nio", old_B, coef)
    after = torch.einsum("nim,iom->nio", new_B, new_coef)
    residual = float((after - before).abs().max()) if before.numel() else 0.0
    return new_coef, residual


def extend_knots(interior: Tensor, k: int) -> Tensor:
    """Interior knots (n_in, G + 1) plus k knots on each side at spacing (t_G − t_0)/G: (n_in, G + 2k + 1)."""
    G = interior.shape[1] - 1
    lo, hi = interior[:, :1], interior[:, -1:]
    h = (hi - lo) / G
    steps = torch.arange(1, k + 1, dtype=interior.dtype, device=interior.device)
    return torch.cat([lo - h * steps.flip(0), interior, hi + h * steps], dim=1)


def adaptive_knots(x: Tensor, G: int, k: int, grid_eps: float, old_grid: Optional[Tensor] = None) -> Tensor:
    """The grid of the samples x (n, n_in) (module docstring), float64 (n_in, G + 2k + 1).

    An input whose samples all coincide keeps its row of ``old_grid`` (required then). With
    grid_eps = 1 the rows are built by ``uniform_grid`` (exactly equally spaced, so the closed-form basis
    applies).
    """
    xs = torch.sort(x.detach().to(F64), dim=0).values
    n, n_in = xs.shape
    ids = [int(n / G * j) for j in range(G)] + [n - 1]
    q = xs[ids].T  # (n_in, G+1)
    lo, hi = xs[0], xs[-1]
    width = hi - lo
    u = lo[:, None] + width[:, None] * torch.arange(G + 1, dtype=F64) / G
    interior = grid_eps * u + (1 - grid_eps) * q
    interior[:, 0], interior[:, -1] = lo, hi
    new = extend_knots(interior, k)
    keep = width <= 1e-12 * torch.clamp(hi.abs(), min=1.0)
    if bool(keep.any()):
        new[keep] = old_grid.to(F64)[keep]
    if grid_eps == 1.0:
        for i in range(n_in):
            if not bool(keep[i]):
                new[i] = uniform_grid(G, k, float(lo[i]), float(hi[i]))
    return new


def refined_knots(grid: Tensor, k: int, G_new: int, uniform: bool) -> Tensor:
    """G → G' on each row's [a, b] = [t_0, t_G] (module docstring), float64 (n_in, G' + 2k + 1)."""
    grid = grid.to(F64)
    G = grid.shape[1] - 2 * k - 1
    inner = grid[:, k:k + G + 1]
    if uniform:
        return torch.stack([uniform_grid(G_new, k, float(a), float(b)) for a, b in zip(inner[:, 0], inner[:, -1])])
    pos = torch.arange(G_new + 1, dtype=F64) * G / G_new  # positions in old-interval units
    j0 = torch.clamp(torch.floor(pos).long(), max=G - 1)
    frac = pos - j0
    return extend_knots(inner[:, j0] * (1 - frac) + inner[:, j0 + 1] * frac, k)


def gauss_legendre_points(grid: Tensor, k: int) -> Tensor:
    """k + 1 Gauss–Legendre nodes in each of the G cells of every row's [a, b]: (G (k + 1), n_in) float64."""
    grid = grid.to(F64)
    G = grid.shape[1] - 2 * k - 1
    nodes, _ = np.polynomial.legendre.leggauss(k + 1)
    frac = torch.as_tensor((nodes + 1) / 2, dtype=F64)
    left, right = grid[:, k:k + G], grid[:, k + 1:k + G + 1]
    return (left[..., None] + (right - left)[..., None] * frac).reshape(grid.shape[0], -1).T
