"""B-spline bases on Kolmogorov–Arnold grids (PHYSICS.md §9; Liu et al., arXiv:2404.19756, §2.2).

Grid. G intervals on [a, b], h = (b − a)/G, knots

    t_j = a + j h,   j = −k, ..., G + k          (G + 2k + 1 knots, k extra on each side),

which carry G + k B-splines B_0, ..., B_{G+k−1} of order (degree) k. Stored knots are indexed from 0:
``knots[..., j] = t_{j−k}``; basis function m is supported on [knots[m], knots[m+k+1]].

Cox–de Boor (de Boor 1972):

    B_{m,0}(x) = 1[t_m ≤ x < t_{m+1}]
    B_{m,p}(x) = (x − t_m)/(t_{m+p} − t_m) B_{m,p−1}(x) + (t_{m+p+1} − x)/(t_{m+p+1} − t_{m+1}) B_{m+1,p−1}(x).

Conventions (those of ``scipy.interpolate.BSpline`` with ``extrapolate=False``): the intervals are
half-open [t_j, t_{j+1}) except the last one, which also contains the last knot, so for k = 0 the
basis is a partition of unity on the closed [a, b]. Outside [t_first, t_last] = [a − kh, b + kh]
every basis function is 0 (only the SiLU residual of a KAN edge survives there). The sum of the
basis is 1 on [a, b] (partition of unity) and smaller in the k boundary cells on each side.

Implementation. A point in cell c (t_c ≤ x < t_{c+1}) has at most k + 1 nonzero basis functions,
B_{c−k}, ..., B_c. We compute only those ("local" values) and scatter them into the dense
(batch, n_in, G + k) design matrix:

* uniform knots: closed form. With s = (x − t_c)/h ∈ [0, 1), B_{c−k+r}(x) = N_k(s + k − r), where N_k
  is the cardinal B-spline on [0, k + 1]; its k + 1 polynomial pieces are the columns of the
  (k + 1) × (k + 1) matrix ``cardinal_matrix(k)`` acting on the powers (1, s, ..., s^k), so the local
  values are one small matmul (Qin 2000, "General matrix representations for B-splines");
* any non-decreasing knots (adaptive grids): the triangular Cox–de Boor scheme on the k + 1 local
  functions (Piegl & Tiller, The NURBS Book, Algorithm A2.2), cost O(k²) per point.

Both are differentiable in x through autograd. Hand-written because no library evaluates a batch of
per-input B-spline bases with autograd (scipy's ``BSpline`` is the oracle in the tests).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Optional

import numpy as np
import torch

from ...errors import check

__all__ = [
    "uniform_grid",
    "bspline_basis",
    "bspline_local",
    "local_to_dense",
    "bspline_basis_recursive",
    "cardinal_matrix",
    "is_uniform",
]

Tensor = torch.Tensor


def _check_int(value, name: str, low: int) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and int(value) >= low
    check(ok, name, value, f"an integer >= {low}")
    return int(value)


def uniform_grid(G: int, k: int, lo: float = -1.0, hi: float = 1.0, *, n: Optional[int] = None,
                 dtype: torch.dtype = torch.float64) -> Tensor:
    """Uniform KAN knots t_j = lo + j (hi − lo)/G for j = −k, ..., G + k.

    Parameters
    ----------
    G : number of grid intervals on [lo, hi], G >= 1.
    k : spline order (degree), k >= 0.
    lo, hi : grid range [a, b], lo < hi, finite.
    n : if given, the grid is repeated for n inputs: shape (n, G + 2k + 1).
    dtype : floating dtype of the result (computed in float64, then cast).

    Returns
    -------
    Tensor of shape (G + 2k + 1,), or (n, G + 2k + 1) when n is given. The interior knots come from
    ``torch.linspace`` so t_0 = lo and t_G = hi exactly.

    Examples
    --------
    >>> uniform_grid(2, 1).tolist()
    [-2.0, -1.0, 0.0, 1.0, 2.0]
    """
    G = _check_int(G, "uniform_grid.G", 1)
    k = _check_int(k, "uniform_grid.k", 0)
    lo_f, hi_f = float(lo), float(hi)
    check(np.isfinite(lo_f) and np.isfinite(hi_f) and lo_f < hi_f, "uniform_grid.(lo, hi)", (lo, hi),
          "finite numbers with lo < hi")
    h = (hi_f - lo_f) / G
    inner = torch.linspace(lo_f, hi_f, G + 1, dtype=torch.float64)
    steps = torch.arange(1, k + 1, dtype=torch.float64) * h
    knots = torch.cat([lo_f - steps.flip(0), inner, hi_f + steps]).to(dtype)
    if n is not None:
        n = _check_int(n, "uniform_grid.n", 1)
        knots = knots.expand(n, -1).contiguous()
    return knots


@lru_cache(maxsize=None)
def _cardinal_pieces(k: int) -> tuple[tuple[Fraction, ...], ...]:
    """Exact polynomial pieces of the cardinal B-spline N_k: piece j (t ∈ [j, j+1)) in s = t − j.

    N_0 = 1 on [0, 1); N_p(t) = t/p N_{p−1}(t) + (p + 1 − t)/p N_{p−1}(t − 1)   (Cox–de Boor, unit knots).
    Returns k + 1 tuples of k + 1 coefficients (ascending powers of s).
    """
    pieces = [[Fraction(1)]]  # p = 0: one piece, constant 1
    for p in range(1, k + 1):
        new = []
        for j in range(p + 1):
            coeffs = [Fraction(0)] * (p + 1)
            if j <= p - 1:  # (s + j)/p * N_{p−1}^j(s)
                for q, c in enumerate(pieces[j]):
                    coeffs[q] += c * j / p
                    coeffs[q + 1] += c / p
            if j >= 1:  # (p + 1 − j − s)/p * N_{p−1}^{j−1}(s)
                for q, c in enumerate(pieces[j - 1]):
                    coeffs[q] += c * (p + 1 - j) / p
                    coeffs[q + 1] -= c / p
            new.append(coeffs)
        pieces = new
    return tuple(tuple(piece) for piece in pieces)


def cardinal_matrix(k: int) -> np.ndarray:
    """The (k + 1) × (k + 1) uniform B-spline matrix M_k, float64.

    For a point at fractional position s ∈ [0, 1] of cell c on a uniform grid,
    B_{c−k+r}(x) = Σ_q s^q M_k[q, r]  (r = 0..k), i.e. column r is piece k − r of N_k.
    Example: M_1 = [[1, 0], [−1, 1]] (hat functions 1 − s and s).
    """
    k = _check_int(k, "cardinal_matrix.k", 0)
    pieces = _cardinal_pieces(k)
    return np.array([[float(pieces[k - r][q]) for r in range(k + 1)] for q in range(k + 1)])


def is_uniform(knots: Tensor, rtol: Optional[float] = None) -> bool:
    """True when every row of ``knots`` (…, K) is equally spaced to relative tolerance ``rtol``.

    The default tolerance is 1e-9 in float64 and 1e-4 in float32 (relative to the spacing).
    """
    if knots.shape[-1] < 2:
        return False
    if rtol is None:
        rtol = 1e-9 if knots.dtype == torch.float64 else 1e-4
    d = torch.diff(knots, dim=-1)
    h = (knots[..., -1:] - knots[..., :1]) / d.shape[-1]
    return bool((h > 0).all() and ((d - h).abs() <= rtol * h).all())


def _validate(x: Tensor, knots: Tensor, k: int, where: str) -> tuple[Tensor, Tensor, bool]:
    """Shapes: (batch, n_in) with (n_in, K), or 1-D x with 1-D knots. Returns 2-D views and a flag."""
    k = _check_int(k, f"{where}.k", 0)
    check(isinstance(x, Tensor) and x.is_floating_point(), f"{where}.x", type(x).__name__, "a floating torch.Tensor")
    check(isinstance(knots, Tensor) and knots.is_floating_point(), f"{where}.knots", type(knots).__name__,
          "a floating torch.Tensor")
    squeeze = x.ndim == 1
    if squeeze:
        check(knots.ndim == 1, f"{where}.knots.shape", tuple(knots.shape), "(K,) for 1-D x")
        x, knots = x[:, None], knots[None, :]
    check(x.ndim == 2, f"{where}.x.shape", tuple(x.shape), "(batch, n_in) or (batch,)")
    if knots.ndim == 1:
        knots = knots[None, :].expand(x.shape[1], -1)
    check(knots.ndim == 2 and knots.shape[0] == x.shape[1], f"{where}.knots.shape", tuple(knots.shape),
          f"(n_in, K) with n_in = {x.shape[1]} to match x")
    check(knots.shape[1] >= k + 2, f"{where}.knots.shape", tuple(knots.shape),
          f"at least k + 2 = {k + 2} knots per input")
    check(bool(torch.isfinite(knots).all()) and bool((torch.diff(knots, dim=1) >= 0).all()), f"{where}.knots",
          "non-finite or decreasing knots", "finite, non-decreasing knots")
    check(not bool(torch.isnan(x).any()), f"{where}.x", "NaN values", "no NaN")
    return x, knots.to(x.dtype), squeeze


def _local_uniform(x: Tensor, t_first: Tensor, inv_h: Tensor, n_cells: int, k: int, matrix: Tensor,
                   knots: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Closed-form local values on a uniform grid (per-input first knot and inverse spacing, shape (n_in,)).

    Returns (cell, vals): cell (batch, n_in) int64 in [0, n_cells − 1]; vals (batch, n_in, k + 1) with
    vals[..., r] = B_{cell−k+r}(x), zero for x outside [t_first, t_last]. For k = 0 the cell is checked
    against the stored ``knots`` so that points exactly on a knot follow the half-open convention.
    """
    u = (x - t_first) * inv_h
    inside = (u >= 0) & (u <= n_cells)
    cell = torch.floor(u).clamp_(0, n_cells - 1)
    if k == 0 and knots is not None:
        c = cell.long()
        flat = knots.reshape(-1)
        base = torch.arange(knots.shape[0], device=x.device)[None, :] * knots.shape[1]
        cell = cell - (x < torch.take(flat, c + base)).to(cell.dtype)
        nxt = torch.take(flat, (c + 1).clamp_(max=n_cells) + base)
        cell = cell + ((x >= nxt) & (c < n_cells - 1)).to(cell.dtype)
        inside = (x >= knots[:, 0]) & (x <= knots[:, -1])
        vals = inside.to(x.dtype)[..., None]
        return cell.clamp_(0, n_cells - 1).long(), vals
    s = u - cell
    vals = torch.linalg.vander(s, N=k + 1) @ matrix  # (batch, n_in, k+1): Σ_q s^q M[q, r]
    return cell.long(), vals * inside[..., None]


def _local_general(x: Tensor, knots: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Local values by the triangular Cox–de Boor scheme (The NURBS Book, Algorithm A2.2).

    knots (n_in, K) non-decreasing. Knots beyond either end are extrapolated with the end spacing
    (they only enter basis functions that do not exist and are discarded). A zero denominator
    (repeated knots) contributes 0, the usual 0/0 := 0 convention.
    """
    n_in, K = knots.shape
    n_cells = K - 1
    # cell = largest c with t_c <= x (and the last cell for x = t_last), as in scipy
    cell = torch.searchsorted(knots.contiguous(), x.T.contiguous(), right=True).T - 1
    inside = (x >= knots[:, 0]) & (x <= knots[:, -1])
    cell = cell.clamp_(0, n_cells - 1)
    # padded knots: index j of `pad` is knot j − k
    lo_step = (knots[:, 1] - knots[:, 0]).clamp(min=torch.finfo(x.dtype).tiny).where(knots[:, 1] > knots[:, 0],
                                                                                      torch.ones_like(knots[:, 0]))
    hi_step = (knots[:, -1] - knots[:, -2]).where(knots[:, -1] > knots[:, -2], torch.ones_like(knots[:, 0]))
    steps = torch.arange(1, k + 1, dtype=x.dtype, device=x.device)
    pad = torch.cat([knots[:, :1] - lo_step[:, None] * steps.flip(0), knots,
                     knots[:, -1:] + hi_step[:, None] * steps], dim=1)
    flat = pad.reshape(-1)
    base = cell + k + torch.arange(n_in, device=x.device)[None, :] * pad.shape[1]  # position of t_cell in pad

    def t(offset: int) -> Tensor:
        return torch.take(flat, base + offset)

    left = [None] + [x - t(1 - j) for j in range(1, k + 1)]   # x − t_{c+1−j}
    right = [None] + [t(j) - x for j in range(1, k + 1)]      # t_{c+j} − x
    N = [torch.ones_like(x)]
    for j in range(1, k + 1):
        saved = torch.zeros_like(x)
        new = []
        for r in range(j):
            den = right[r + 1] + left[j - r]
            ok = den > 0
            temp = torch.where(ok, N[r] / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))
            new.append(saved + right[r + 1] * temp)
            saved = left[j - r] * temp
        new.append(saved)
        N = new
    vals = torch.stack(N, dim=-1)
    return cell, vals * inside[..., None]


def local_to_dense(cell: Tensor, vals: Tensor, n_basis: int, k: int) -> Tensor:
    """Scatter local values into the dense (batch, n_in, n_basis) matrix, n_basis = G + k.

    vals[..., r] belongs to basis m = cell − k + r; entries with m outside [0, n_basis − 1] (the
    missing basis functions next to the ends of the knot vector) are dropped.
    """
    batch, n_in = cell.shape
    dense = torch.zeros(batch, n_in, n_basis + 2 * k, dtype=vals.dtype, device=vals.device)
    pos = cell[..., None] + torch.arange(k + 1, device=cell.device)  # padded position m + k
    dense = dense.scatter(2, pos, vals)
    return dense[..., k:k + n_basis]


def bspline_local(x: Tensor, knots: Tensor, k: int, *, uniform: Optional[bool] = None) -> tuple[Tensor, Tensor]:
    """The k + 1 nonzero B-splines at each point: (cell, vals) as described in ``local_to_dense``.

    x (batch, n_in) with knots (n_in, K) (or 1-D x with 1-D knots; then the n_in axis is dropped).
    ``uniform=None`` detects equally spaced knots and uses the closed form; ``False`` forces the
    general Cox–de Boor scheme.
    """
    x2, kn, squeeze = _validate(x, knots, k, "bspline_local")
    cell, vals = _local(x2, kn, int(k), uniform)
    return (cell[:, 0], vals[:, 0]) if squeeze else (cell, vals)


def _local(x: Tensor, knots: Tensor, k: int, uniform: Optional[bool]) -> tuple[Tensor, Tensor]:
    if uniform is None:
        uniform = is_uniform(knots)
    if uniform:
        n_cells = knots.shape[1] - 1
        inv_h = n_cells / (knots[:, -1] - knots[:, 0])
        matrix = torch.as_tensor(cardinal_matrix(k), dtype=x.dtype, device=x.device)
        return _local_uniform(x, knots[:, 0], inv_h, n_cells, k, matrix, knots)
    return _local_general(x, knots, k)


def bspline_basis(x: Tensor, knots: Tensor, k: int, *, uniform: Optional[bool] = None) -> Tensor:
    """Dense B-spline design matrix B_m(x_i) of order k on per-input knots.

    Parameters
    ----------
    x : (batch, n_in) points, or (batch,) with 1-D knots.
    knots : (n_in, K) non-decreasing knots (K = G + 2k + 1 on a KAN grid), or (K,).
    k : order (degree) >= 0.
    uniform : None = detect; True = closed form for equally spaced knots; False = general recursion.

    Returns
    -------
    (batch, n_in, K − k − 1) (= G + k basis functions), or (batch, K − k − 1) for 1-D x.
    Matches ``scipy.interpolate.BSpline.design_matrix`` (extrapolate=False) to round-off.
    """
    x2, kn, squeeze = _validate(x, knots, k, "bspline_basis")
    k = int(k)
    cell, vals = _local(x2, kn, k, uniform)
    dense = local_to_dense(cell, vals, kn.shape[1] - k - 1, k)
    return dense[:, 0] if squeeze else dense


def bspline_basis_recursive(x: Tensor, knots: Tensor, k: int) -> Tensor:
    """Textbook Cox–de Boor recursion on the full knot vector (a slow, obviously correct oracle).

    Same shapes and conventions as ``bspline_basis`` (the last interval includes its right end).
    """
    x2, kn, squeeze = _validate(x, knots, k, "bspline_basis_recursive")
    k = int(k)
    xe, t = x2[:, :, None], kn[None, :, :]
    K = kn.shape[1]
    B = ((xe >= t[..., :-1]) & (xe < t[..., 1:])).to(x2.dtype)
    # the last non-empty interval of each row also contains its right end (closed [t_first, t_last])
    nonempty = (kn[:, 1:] > kn[:, :-1]).to(torch.int64)
    last = (K - 2) - torch.argmax(nonempty.flip(1), dim=1)  # (n_in,)
    at_end = (x2 == kn[None, :, -1]).to(x2.dtype)[..., None]  # (batch, n_in, 1)
    B = B.scatter_add(2, last[None, :, None].expand(x2.shape[0], -1, 1), at_end)

    def ratio(num: Tensor, den: Tensor) -> Tensor:
        return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))

    for p in range(1, k + 1):
        n = K - p - 1
        a = ratio(xe - t[..., :n], t[..., p:p + n] - t[..., :n])
        b = ratio(t[..., p + 1:p + 1 + n] - xe, t[..., p + 1:p + 1 + n] - t[..., 1:1 + n])
        B = a * B[..., :n] + b * B[..., 1:n + 1]
    return B[:, 0] if squeeze else B
