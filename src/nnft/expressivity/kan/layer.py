"""One Kolmogorov–Arnold layer: a learnable univariate function on every edge (arXiv:2404.19756, §2.2).

    y_j = Σ_i φ_ij(x_i),   φ_ij(x) = mask_ij · ( scale_base_ij · b(x) + scale_sp_ij · Σ_{m=0}^{G+k−1} c_ijm B_m(x) )

with b = SiLU(x) = x/(1 + e^{−x}) (PHYSICS.md §9), B_m the order-k B-splines on the input's knots
(``basis.py``), i = 0..n_in−1, j = 0..n_out−1. Shapes: grid (n_in, G+2k+1), coef (n_in, n_out, G+k),
scale_base, scale_sp, mask (n_in, n_out).

The forward pass never forms the (batch, n_in, n_out) tensor of edge values. With
D = [B_0(x_i) … B_{G+k−1}(x_i) | b(x_i)] (batch, n_in·(G+k+1)) and W_{(i,m), j} = mask_ij scale_sp_ij c_ijm
(m < G + k), W_{(i,G+k), j} = mask_ij scale_base_ij, the layer is one matmul y = D W. Only the k + 1
nonzero B-splines per input are computed (closed form on uniform grids, ``basis.py``) and scattered
into D. Three kernels, each a single autograd node with a hand-written backward
(∂L/∂W = Dᵀ g, ∂L/∂x from g Wᵀ at the k + 1 positions and the derivative of the local polynomials):

* ``_SmallKAN`` — small layers on the CPU (batch·n_in·n_out·(k+2) ≤ 2^17, k ≥ 1, any grid): forward and
  backward as two compiled numba loops; there the torch kernels are dominated by per-operator overhead
  (≈ 40 tiny operators, k² more on adaptive grids). Saves x and the cell index per (batch, input);
* ``_UniformKAN`` — uniform grids otherwise (any device): memory batch × n_in × (G + k + 1) for D (one
  column more when some input lies outside [a, b)), work two dense matmuls per pass;
* ``_LocalKAN`` — adaptive (non-uniform) grids and k = 0 otherwise: local values from the general
  Cox–de Boor scheme (autograd), then the same D W product.

``edge_activations`` is the one place that forms per-edge values.

Initialisation (pykan 0.2.8 defaults, the reference code of arXiv:2404.19756):
    c: least-squares (minimum-norm) fit of U(−½, ½)·noise_scale/G noise at the G + 1 grid points,
    scale_base_ij = scale_base_mu/√n_in + scale_base · U(−1, 1)/√n_in,   scale_sp_ij = scale_sp/√n_in,
    mask = 1, uniform grid on grid_range.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch import nn
from torch.autograd.function import once_differentiable

from ...errors import check, fail
from .basis import _check_int, _local_general, cardinal_matrix, is_uniform, local_to_dense, uniform_grid
from .grid import adaptive_knots, fit_coefficients, gauss_legendre_points, refined_knots, transfer

__all__ = ["KANLayer", "OutOfRange", "BaseFn", "OUT_OF_RANGE", "BASE_FNS"]

Tensor = torch.Tensor
OutOfRange = Literal["extend", "clamp", "error"]
BaseFn = Literal["silu", "identity", "zero"]
OUT_OF_RANGE: tuple[str, ...] = ("extend", "clamp", "error")
BASE_FNS: tuple[str, ...] = ("silu", "identity", "zero")
_FLOAT_DTYPES = (torch.float32, torch.float64)


def _base(name: str, x: Tensor) -> Tensor:
    if name == "silu":
        return F.silu(x)
    if name == "identity":
        return x
    return torch.zeros_like(x)


class KANLayer(nn.Module):
    """A KAN layer n_in → n_out with order-k B-splines on G intervals (see the module docstring).

    Parameters
    ----------
    in_dim, out_dim : layer widths (>= 1).
    G : number of grid intervals (>= 1). k : spline order (>= 0).
    grid_range : (a, b), the initial uniform grid range, a < b.
    generator : torch.Generator for the initial draws; if None one is built from ``seed``.
    seed : used only when ``generator`` is None.
    scale_base_mu, scale_base, scale_sp, noise_scale : initialisation (module docstring).
    base_fn : "silu" (default), "identity" or "zero" (pure spline edges).
    grid_eps : weight of the uniform grid in ``update_grid`` (1 = uniform, 0 = sample quantiles).
    out_of_range : policy for spline inputs outside the grid range [a, b]:
        "extend" (default) — use the basis as is: it is nonzero up to a − kh and b + kh, beyond which
        only the base function b(x) survives; "clamp" — the spline sees clamp(x, a, b) (constant
        continuation; b(x) still sees x); "error" — raise ConfigError saying how many values are out.
    dtype : torch.float64 (default) or torch.float32.
    """

    def __init__(self, in_dim: int, out_dim: int, G: int = 5, k: int = 3,
                 grid_range: Sequence[float] = (-1.0, 1.0), *, generator: Optional[torch.Generator] = None,
                 seed: int = 0, scale_base_mu: float = 0.0, scale_base: float = 1.0, scale_sp: float = 1.0,
                 noise_scale: float = 0.3, base_fn: BaseFn = "silu", grid_eps: float = 0.02,
                 out_of_range: OutOfRange = "extend", dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.in_dim = _check_int(in_dim, "KANLayer.in_dim", 1)
        self.out_dim = _check_int(out_dim, "KANLayer.out_dim", 1)
        G = _check_int(G, "KANLayer.G", 1)
        self.k = _check_int(k, "KANLayer.k", 0)
        check(base_fn in BASE_FNS, "KANLayer.base_fn", base_fn, " | ".join(BASE_FNS))
        check(out_of_range in OUT_OF_RANGE, "KANLayer.out_of_range", out_of_range, " | ".join(OUT_OF_RANGE))
        check(dtype in _FLOAT_DTYPES, "KANLayer.dtype", dtype, "torch.float32 or torch.float64")
        for name, v in (("scale_base_mu", scale_base_mu), ("scale_base", scale_base), ("scale_sp", scale_sp),
                        ("noise_scale", noise_scale)):
            check(isinstance(v, (int, float)) and math.isfinite(v), f"KANLayer.{name}", v, "a finite number")
        check(isinstance(grid_eps, (int, float)) and 0.0 <= grid_eps <= 1.0, "KANLayer.grid_eps", grid_eps,
              "a number in [0, 1]")
        try:
            lo, hi = (float(v) for v in grid_range)
        except (TypeError, ValueError):
            raise fail("KANLayer.grid_range", grid_range, "two numbers (a, b) with a < b") from None
        check(math.isfinite(lo) and math.isfinite(hi) and lo < hi, "KANLayer.grid_range", grid_range,
              "two finite numbers (a, b) with a < b")
        if generator is None:
            check(isinstance(seed, (int, np.integer)) and not isinstance(seed, bool), "KANLayer.seed", seed,
                  "an integer")
            generator = torch.Generator().manual_seed(int(seed))
        self.base_fn: str = base_fn
        self.grid_eps = float(grid_eps)
        self.out_of_range: str = out_of_range
        self.name = "KANLayer"  # used in error messages; KAN sets "KAN.layers[l]"

        f64 = torch.float64
        grid = uniform_grid(G, self.k, lo, hi, n=self.in_dim, dtype=f64)
        noise = (torch.rand(G + 1, self.in_dim, self.out_dim, generator=generator, dtype=f64) - 0.5) * noise_scale / G
        coef = self._fit_coef(grid, grid[:, self.k:self.k + G + 1].T, noise)
        sb = (scale_base_mu + scale_base * (2 * torch.rand(self.in_dim, self.out_dim, generator=generator,
                                                           dtype=f64) - 1)) / math.sqrt(self.in_dim)
        self.coef = nn.Parameter(coef.to(dtype))
        self.scale_base = nn.Parameter(sb.to(dtype))
        self.scale_sp = nn.Parameter(torch.full((self.in_dim, self.out_dim), scale_sp / math.sqrt(self.in_dim),
                                                dtype=dtype))
        self.register_buffer("grid", grid.to(dtype))
        self.register_buffer("mask", torch.ones(self.in_dim, self.out_dim, dtype=dtype))
        self.register_buffer("_t_first", torch.zeros(self.in_dim, dtype=dtype), persistent=False)
        self.register_buffer("_inv_h", torch.zeros(self.in_dim, dtype=dtype), persistent=False)
        self.register_buffer("_u_shift", torch.zeros(self.in_dim, dtype=dtype), persistent=False)
        self.register_buffer("_offsets", torch.arange(-self.k, 1).view(-1, 1, 1), persistent=False)  # r − k
        self.register_buffer("_pos_table", _position_table(G, self.k), persistent=False)
        self.register_buffer("_lo", torch.zeros(self.in_dim, dtype=dtype), persistent=False)
        self.register_buffer("_hi", torch.zeros(self.in_dim, dtype=dtype), persistent=False)
        M = torch.as_tensor(cardinal_matrix(self.k), dtype=torch.float64)
        dM = M[1:] * torch.arange(1, self.k + 1, dtype=torch.float64)[:, None]  # d/ds: row q = (q+1) M[q+1]
        self.register_buffer("_matrix", M.to(dtype), persistent=False)
        self.register_buffer("_dmatrix", dM.to(dtype), persistent=False)
        self._refresh()

    # ------------------------------------------------------------------ grid bookkeeping
    @property
    def G(self) -> int:
        """Number of grid intervals (the grid has G + 2k + 1 knots per input)."""
        return self.grid.shape[1] - 2 * self.k - 1

    @property
    def n_basis(self) -> int:
        """G + k, the number of B-splines per edge."""
        return self.grid.shape[1] - self.k - 1

    @property
    def uniform(self) -> bool:
        """Whether every input's knots are equally spaced (then the closed-form basis is used)."""
        return self._uniform

    @property
    def grid_range(self) -> Tensor:
        """(n_in, 2): the range [a_i, b_i] = [t_0, t_G] of each input's grid (partition of unity there)."""
        return torch.stack([self._lo, self._hi], dim=1)

    def _refresh(self) -> None:
        """Recompute the cached per-input quantities after the grid changed."""
        g, k = self.grid, self.k
        self._uniform = is_uniform(g)
        if self._pos_table.shape[1] != g.shape[1] + 1:
            self._pos_table = _position_table(self.G, k).to(g.device)
        with torch.no_grad():
            self._t_first.copy_(g[:, 0])
            self._inv_h.copy_((g.shape[1] - 1) / (g[:, -1] - g[:, 0]))
            self._u_shift.copy_(-g[:, 0] * self._inv_h)
            self._lo.copy_(g[:, k])
            self._hi.copy_(g[:, -k - 1])

    def set_grid(self, grid: Tensor, coef: Optional[Tensor] = None) -> None:
        """Replace the knots (n_in, G' + 2k + 1) and, if given, the coefficients (n_in, n_out, G' + k).

        The number of intervals may change; then ``coef`` is required. A new ``coef`` Parameter is
        created when its shape changes, so optimisers built before must be rebuilt.
        """
        k = self.k
        check(isinstance(grid, Tensor) and grid.ndim == 2 and grid.shape[0] == self.in_dim
              and grid.shape[1] >= 2 * k + 2, f"{self.name}.grid.shape", tuple(getattr(grid, "shape", ())),
              f"(n_in={self.in_dim}, G + 2k + 1) with G >= 1")
        check(bool(torch.isfinite(grid).all()) and bool((torch.diff(grid, dim=1) >= 0).all())
              and bool((grid[:, -1] > grid[:, 0]).all()), f"{self.name}.grid", "non-finite or decreasing knots",
              "finite, non-decreasing knots")
        n_basis = grid.shape[1] - k - 1
        if coef is None:
            check(n_basis == self.n_basis, f"{self.name}.coef", None, "new coefficients when G changes")
        else:
            check(tuple(coef.shape) == (self.in_dim, self.out_dim, n_basis), f"{self.name}.coef.shape",
                  tuple(coef.shape), f"({self.in_dim}, {self.out_dim}, {n_basis})")
        dtype, device = self.coef.dtype, self.coef.device
        with torch.no_grad():
            if grid.shape == self.grid.shape:
                self.grid.copy_(grid)
            else:
                self.grid = grid.to(dtype=dtype, device=device).clone()
            if coef is not None:
                if coef.shape == self.coef.shape:
                    self.coef.copy_(coef)
                else:
                    self.coef = nn.Parameter(coef.to(dtype=dtype, device=device).clone())
        self._refresh()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # a state dict saved after extend_grid carries a different G: adopt its shapes first
        g, c = state_dict.get(prefix + "grid"), state_dict.get(prefix + "coef")
        if g is not None and c is not None and g.shape != self.grid.shape and g.ndim == 2 \
                and tuple(c.shape) == (self.in_dim, self.out_dim, g.shape[1] - self.k - 1):
            self.grid = torch.empty_like(g, dtype=self.grid.dtype, device=self.grid.device)
            self.coef = nn.Parameter(torch.empty_like(c, dtype=self.coef.dtype, device=self.coef.device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self._refresh()

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._uniform = is_uniform(self.grid)  # tolerance depends on dtype
        return out

    # ------------------------------------------------------------------ basis
    def _spline_input(self, x: Tensor, grid: Optional[Tensor] = None) -> Tensor:
        """Apply the out-of-range policy to the spline argument (x (batch, n_in), or grid rows given)."""
        if self.out_of_range == "extend":
            return x
        if grid is None:
            lo, hi = self._lo, self._hi
        else:
            lo, hi = grid[:, self.k], grid[:, -self.k - 1]
        if self.out_of_range == "clamp":
            return torch.clamp(x, lo, hi)
        n_bad = int(((x < lo) | (x > hi)).sum())
        if n_bad:
            raise fail(f"{self.name}.x", f"{n_bad} of {x.numel()} values outside the grid range [a, b]",
                       "values inside each input's grid range (out_of_range='error'); "
                       "use out_of_range='extend' or 'clamp', or update_grid(x)")
        return x

    def _local(self, x: Tensor) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        """The k + 1 nonzero basis values per point and where they go.

        Returns (vals, pos, bad): vals (batch, n_in, k+1) = B_{c−k+r}(x) for the cell c of x; pos (same
        shape, int64) = c − k + r, the basis index; bad marks entries that are not basis functions (the
        missing ones next to the ends of the knot vector, and every entry of a point outside
        [t_first, t_last]); their pos is set to G + k (the base-function slot) and their values ignored.
        bad is None when no entry is bad.
        """
        k, nb = self.k, self.n_basis
        offsets = torch.arange(-k, 1, device=x.device)
        if self._uniform and k >= 1:
            n_cells = self.grid.shape[1] - 1
            u = (x - self._t_first) * self._inv_h
            with torch.no_grad():
                c = torch.floor(u).clamp_(0, n_cells - 1)
                pos, bad = _positions(u, c, k, nb, n_cells)
            return _horner(u - c, self._matrix), pos, bad
        cell, vals = _local_general(x, self.grid, k)  # vals already 0 outside [t_first, t_last]
        with torch.no_grad():
            pos = cell.unsqueeze(-1) + offsets
            bad = (pos < 0) | (pos >= nb)
            return vals, pos.masked_fill_(bad, nb), bad

    def basis(self, x: Tensor) -> Tensor:
        """Dense basis B_m(x_i) after the out-of-range policy: (batch, n_in, G + k) (differentiable)."""
        vals, pos, _ = self._local(self._spline_input(x))
        batch, n_in, _ = vals.shape
        dense = torch.zeros(batch, n_in, self.n_basis + 1, dtype=vals.dtype, device=vals.device)
        return dense.scatter(2, pos, vals)[..., :self.n_basis]

    def weight(self) -> Tensor:
        """W (n_in, G+k+1, n_out): W[i, m, j] = mask_ij scale_sp_ij c_ijm for m < G + k, and
        mask_ij scale_base_ij for m = G + k (the base function's slot). Differentiable."""
        W = torch.cat([self.scale_sp[..., None] * self.coef, self.scale_base[..., None]], dim=2)
        return (W * self.mask[..., None]).transpose(1, 2)

    # ------------------------------------------------------------------ evaluation
    def forward(self, x: Tensor) -> Tensor:
        """y_j = Σ_i φ_ij(x_i) for x of shape (batch, n_in); returns (batch, n_out).

        One matmul of the (batch, n_in·(G+k+1)) matrix D = [B_m(x_i) | b(x_i)] with ``weight()``,
        in a single autograd node (hand-written backward, see ``_UniformKAN`` / ``_LocalKAN``).
        """
        xs = self._spline_input(x)
        if self.k >= 1 and x.device.type == "cpu" and \
                x.shape[0] * self.in_dim * self.out_dim * (self.k + 2) <= _SMALL_WORK:
            return _SmallKAN.apply(x, xs, self.coef, self.scale_sp, self.scale_base, self.mask, self._inv_h,
                                   self._u_shift, self.grid, self._uniform, self._matrix, self.base_fn)
        if self._uniform and self.k >= 1:
            return _UniformKAN.apply(x, xs, self.coef, self.scale_sp, self.scale_base, self.mask, self._inv_h,
                                     self._u_shift, self._offsets, self._pos_table, self._matrix, self._dmatrix,
                                     self.base_fn)
        vals, pos, bad = self._local(xs)
        return _LocalKAN.apply(x, vals, self.coef, self.scale_sp, self.scale_base, self.mask, pos, bad,
                               self.base_fn)

    def spline_values(self, x: Tensor) -> Tensor:
        """Σ_m c_ijm B_m(x_i) for every edge: (batch, n_in, n_out) (no scale_sp, no mask)."""
        return torch.einsum("bim,iom->bio", self.basis(x), self.coef)

    def edge_activations(self, x: Tensor) -> Tensor:
        """φ_ij(x_i) for every edge, (batch, n_in, n_out); summing over i gives ``forward(x)``.

        The only method that materialises per-edge values (for plots, sparsity penalties, pruning).
        """
        sp = self.spline_values(x) * self.scale_sp
        base = _base(self.base_fn, x)[..., None] * self.scale_base
        return (base + sp) * self.mask

    def _edge_index(self, i: int, j: int) -> tuple[int, int]:
        check(isinstance(i, (int, np.integer)) and 0 <= i < self.in_dim, f"{self.name}.i", i,
              f"an input index in [0, {self.in_dim - 1}]")
        check(isinstance(j, (int, np.integer)) and 0 <= j < self.out_dim, f"{self.name}.j", j,
              f"an output index in [0, {self.out_dim - 1}]")
        return int(i), int(j)

    def _edge_points(self, x_i: Tensor) -> Tensor:
        xs = torch.as_tensor(x_i, dtype=self.coef.dtype, device=self.coef.device).reshape(-1)
        check(not bool(torch.isnan(xs).any()), f"{self.name}.x_i", "NaN values", "no NaN")
        return xs

    def spline(self, x_i: Tensor, i: int, j: int) -> Tensor:
        """Σ_m c_ijm B_m(x) of edge (i → j) at 1-D points x_i: (n,) (no scale_sp, no mask; policy applied)."""
        i, j = self._edge_index(i, j)
        grid = self.grid[i:i + 1]
        xs = self._spline_input(self._edge_points(x_i)[:, None], grid)
        cell, vals = _local_general(xs, grid, self.k)
        return local_to_dense(cell, vals, self.n_basis, self.k)[:, 0, :] @ self.coef[i, j]

    def edge(self, x_i: Tensor, i: int, j: int) -> Tensor:
        """φ_ij(x) of edge (i → j) at 1-D points x_i: (n,), scales and mask included."""
        i, j = self._edge_index(i, j)
        xs = self._edge_points(x_i)
        sp = self.spline(xs, i, j)
        return self.mask[i, j] * (self.scale_base[i, j] * _base(self.base_fn, xs) + self.scale_sp[i, j] * sp)

    def subset(self, in_idx: Sequence[int], out_idx: Sequence[int]) -> "KANLayer":
        """A new layer keeping inputs ``in_idx`` and outputs ``out_idx`` (copies; used for pruning)."""
        in_idx, out_idx = list(in_idx), list(out_idx)
        check(len(in_idx) >= 1 and all(0 <= int(a) < self.in_dim for a in in_idx), f"{self.name}.in_idx", in_idx,
              f"a non-empty list of indices in [0, {self.in_dim - 1}]")
        check(len(out_idx) >= 1 and all(0 <= int(a) < self.out_dim for a in out_idx), f"{self.name}.out_idx",
              out_idx, f"a non-empty list of indices in [0, {self.out_dim - 1}]")
        new = KANLayer(len(in_idx), len(out_idx), self.G, self.k, base_fn=self.base_fn,  # type: ignore[arg-type]
                       grid_eps=self.grid_eps, out_of_range=self.out_of_range,  # type: ignore[arg-type]
                       dtype=self.coef.dtype)
        ii, oo = torch.tensor(in_idx), torch.tensor(out_idx)
        with torch.no_grad():
            new.grid = self.grid[ii].clone()
            new.coef = nn.Parameter(self.coef[ii][:, oo].clone())
            new.scale_base.copy_(self.scale_base[ii][:, oo])
            new.scale_sp.copy_(self.scale_sp[ii][:, oo])
            new.mask.copy_(self.mask[ii][:, oo])
        new.to(self.coef.device)
        new._refresh()
        return new

    @property
    def n_params(self) -> int:
        """Trainable numbers: coef + scale_base + scale_sp = n_in n_out (G + k + 2)."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, out_dim={self.out_dim}, G={self.G}, k={self.k}, base_fn={self.base_fn!r}, "
                f"uniform={self._uniform}, out_of_range={self.out_of_range!r}, dtype={self.coef.dtype}")

    # ------------------------------------------------------------------ grids (maths in grid.py)
    def _fit_coef(self, grid: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Least-squares coefficients of values y (n, n_in, n_out) at x (n, n_in) on ``grid`` (float64)."""
        return fit_coefficients(grid, self.k, x, y)

    def refit(self, new_grid: Tensor, x: Tensor) -> float:
        """Move to ``new_grid`` keeping each edge's spline as close as possible on the samples x (n, n_in).

        The least-squares transfer of PHYSICS.md §9 (``grid.transfer``), in float64, one solve per input
        for all its edges; "clamp" layers compare the clamped splines, "extend" and "error" layers the
        splines as they are. Returns the largest absolute change of Σ_m c_ijm B_m on the samples.
        """
        new_coef, residual = transfer(self.grid, new_grid, self.k, self.coef, x.detach(),
                                      clamp=self.out_of_range == "clamp")
        self.set_grid(new_grid.to(torch.float64), new_coef)
        return residual

    def update_grid(self, x: Tensor, grid_eps: Optional[float] = None) -> float:
        """Adaptive grid from samples x (n, n_in) of this layer's input (arXiv:2404.19756 §2.5; pykan).

        Quantile knots mixed with a uniform grid on [min, max] by ε = grid_eps (default: the layer's),
        k extra knots each side (``grid.adaptive_knots``; an input whose samples all coincide keeps its
        grid); the coefficients are refitted so each edge's spline is preserved on the samples
        (``refit``). Returns that fit's largest residual.
        """
        eps = self.grid_eps if grid_eps is None else grid_eps
        check(isinstance(eps, (int, float)) and 0.0 <= eps <= 1.0, f"{self.name}.grid_eps", eps, "a number in [0, 1]")
        check(isinstance(x, Tensor) and x.ndim == 2 and x.shape[1] == self.in_dim and x.shape[0] >= 2,
              f"{self.name}.update_grid.x.shape", tuple(getattr(x, "shape", ())),
              f"(n >= 2, {self.in_dim})")
        return self.refit(adaptive_knots(x, self.G, self.k, float(eps), self.grid), x)

    def extend_grid(self, G_new: int, x: Optional[Tensor] = None) -> float:
        """Grid extension G → G' on each input's range [a, b] (arXiv:2404.19756 §2.5, PHYSICS.md §9).

        New knots by ``grid.refined_knots`` (uniform stays uniform; nested when G' is a multiple of G).
        Coefficients by the least-squares transfer (``refit``) on the samples x (n, n_in) if given,
        otherwise on k + 1 Gauss–Legendre nodes per new cell of [a, b] — the L²([a, b]) projection, so
        for nested grids the old spline is reproduced on [a, b] to round-off (verified in the tests).
        Outside [a, b] the new spline differs: its support ends at b + k(b − a)/G' instead of b + kh.
        Returns the fit's largest residual on the fitting points.
        """
        G_new = _check_int(G_new, f"{self.name}.extend_grid.G_new", 1)
        new = refined_knots(self.grid, self.k, G_new, self._uniform)
        return self.refit(new, gauss_legendre_points(new, self.k) if x is None else x)


def _horner(s: Tensor, matrix: Tensor) -> Tensor:
    """Σ_q s^q M[q, :] for s (...,) and M (p, k+1): shape (..., k+1), by Horner's rule (p − 1 addcmul)."""
    s1 = s.unsqueeze(-1)
    p = matrix.shape[0]
    if p == 1:
        return matrix[0].expand(*s.shape, matrix.shape[1])
    acc = torch.addcmul(matrix[p - 2], matrix[p - 1], s1)
    for q in range(p - 3, -1, -1):
        acc = torch.addcmul(matrix[q], acc, s1)
    return acc


def _positions(u: Tensor, c: Tensor, k: int, nb: int, n_cells: int) -> tuple[Tensor, Optional[Tensor]]:
    """Basis indices c − k + r (batch, n_in, k+1) of a uniform grid, and the mask of entries that are no
    basis function (missing end functions; points outside [t_first, t_last]) — then set to the slot nb.
    The mask is None when every u lies in [k, nb) (x in [a, b): the common case, checked with one reduction)."""
    pos = c.long().unsqueeze_(-1) + torch.arange(-k, 1, device=u.device)
    lo, hi = torch.aminmax(u)
    if lo.item() >= k and hi.item() < nb:
        return pos, None
    bad = (pos < 0) | (pos >= nb) | ((u < 0) | (u > n_cells)).unsqueeze_(-1)
    return pos.masked_fill_(bad, nb), bad


def _base_forward(name: str, x: Tensor) -> Optional[Tensor]:
    return F.silu(x) if name == "silu" else (x if name == "identity" else None)


def _base_backward(name: str, g: Tensor, x: Tensor) -> Optional[Tensor]:
    if name == "silu":
        return torch.ops.aten.silu_backward(g, x)
    return g if name == "identity" else None


def _assemble(vals: Tensor, pos: Tensor, base: Optional[Tensor], coef: Tensor, spm: Tensor, sbm: Tensor,
              width: int) -> tuple[Tensor, Tensor]:
    """D (batch, n_in, width) with the local values scattered and b(x) in the last column, and
    W (n_in, width, n_out): rows 0..nb−1 = scale_sp·mask·c, last row = scale_base·mask, others 0."""
    n_in, n_out, nb = coef.shape
    W = torch.empty(n_in, width, n_out, dtype=coef.dtype, device=coef.device)
    W[:, nb:width - 1] = 0.0
    torch.mul(coef.transpose(1, 2), spm.unsqueeze(1), out=W[:, :nb])
    W[:, width - 1] = sbm
    D = vals.new_zeros(vals.shape[0], n_in, width)
    D.scatter_(2, pos, vals)
    D[..., width - 1] = 0.0 if base is None else base  # also clears values parked there (_LocalKAN's bad entries)
    return D, W


def _weight_grads(needs: tuple, gy: Tensor, D: Tensor, coef: Tensor, spm: Tensor, mask: Tensor):
    """∂L/∂coef, ∂L/∂scale_sp, ∂L/∂scale_base from ∂L/∂W = Dᵀ g (W = mask·[scale_sp·c | 0 | scale_base])."""
    if not any(needs):
        return None, None, None
    n_in, n_out, nb = coef.shape
    gW = (D.view(D.shape[0], -1).T @ gy).view(n_in, D.shape[2], n_out)
    gWs = gW[:, :nb].transpose(1, 2)  # (n_in, n_out, nb)
    g_coef = gWs * spm.unsqueeze(-1) if needs[0] else None
    g_sp = (gWs * coef).sum(-1) * mask if needs[1] else None
    g_sb = gW[:, -1] * mask if needs[2] else None
    return g_coef, g_sp, g_sb


def _uniform_local(xs: Tensor, u_scale: Tensor, u_shift: Tensor, offsets: Tensor, table: Tensor, k: int,
                   nb: int, matrix: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
    """Local values on a uniform grid, in the transposed layout (k+1, batch, n_in) for speed.

    u = x/h − t_first/h (batch, n_in), cell c = ⌊u⌋, s = u − c. Returns (S, vals, pos, width):
    S[q] = s^{q+1} (q = 0..k−1); vals[r] = B_{c−k+r}(x) = M[0, r] + Σ_{q≥1} M[q, r] s^q (one small
    matmul for all points); pos[r] = the column of D for basis c − k + r; width = columns per input.

    Two layouts of D's columns, chosen by one reduction (aminmax):
    * every u in [k, G+k) (all x in [a, b), the common case): columns 0..G+k−1 are B_0..B_{G+k−1},
      column G+k is the base function; width G+k+1; pos = c − k + r;
    * otherwise: u is clamped to [−1, n_cells+1] (n_cells = G+2k), c to [−1, n_cells], and
      pos = table[r, c+1] (``_position_table``): c − k + r for a basis function that exists, else the
      "trash" column G+k, whose weight row is 0 — so missing end functions and points beyond
      t_first/t_last contribute nothing, and get exactly 0 gradient, without masks; base at G+k+1.
    Rows are contiguous, so the elementwise work vectorises.
    """
    n_cells = nb + k
    batch, n_in = xs.shape
    u = torch.addcmul(u_shift, xs, u_scale)
    lo, hi = torch.aminmax(u)
    if lo.item() >= k and hi.item() < nb:
        width = nb + 1
        c = torch.floor(u)
        pos = c.long().unsqueeze_(0) + offsets
    else:
        width = nb + 2
        u.clamp_(-1.0, n_cells + 1.0)
        c = torch.floor(u).clamp_(max=n_cells)
        idx = c.long().unsqueeze_(0) + (torch.arange(k + 1, device=u.device) * (n_cells + 2) + 1).view(-1, 1, 1)
        pos = torch.take(table, idx)
    S = u.sub_(c).expand(k, batch, n_in).cumprod(0)  # s, s², ..., s^k
    vals = torch.addmm(matrix[0].unsqueeze(1), matrix[1:].T, S.view(k, -1)).view(k + 1, batch, n_in)
    return S, vals, pos, width


def _position_table(G: int, k: int) -> Tensor:
    """(k+1, G+2k+2) int64: entry [r, c+1] = c − k + r if that basis function exists (0 <= · < G+k), else
    G+k (the trash column), for cells c = −1..G+2k (−1 and G+2k: beyond the knots)."""
    nb = G + k
    m = torch.arange(-1, G + 2 * k + 1)[None, :] - k + torch.arange(k + 1)[:, None]
    return torch.where((m >= 0) & (m < nb), m, torch.full_like(m, nb))


class _UniformKAN(torch.autograd.Function):
    """One KAN layer on uniform grids (k >= 1) as a single autograd node.

    Forward: u = (x_s − t_first)/h, cell c = ⌊u⌋, s = u − c, local values B_{c−k+r} = Σ_q s^q M[q, r],
    D = [scatter of the values | b(x)] (batch, n_in, width), y = D W (one matmul).
    Backward: ∂L/∂W = Dᵀ g; ∂L/∂D = g Wᵀ gathered at the k + 1 positions (g_r; exactly 0 in the
    trash columns); ∂L/∂x_s = Σ_{q≥1} q s^{q−1} Σ_r M[q, r] g_r / h; ∂L/∂x = ∂L/∂D[..., base] · b'(x).
    Saved: D, the powers of s, the positions (no per-edge tensor).
    """

    @staticmethod
    def forward(ctx, x, xs, coef, scale_sp, scale_base, mask, u_scale, u_shift, offsets, table, matrix, dmatrix,
                base_fn):
        k = matrix.shape[0] - 1
        S, vals, pos, width = _uniform_local(xs, u_scale, u_shift, offsets, table, k, coef.shape[2], matrix)
        spm = scale_sp * mask
        D, W = _assemble(vals.permute(1, 2, 0), pos.permute(1, 2, 0), _base_forward(base_fn, x), coef, spm,
                         scale_base * mask, width)
        ctx.save_for_backward(x, S, D, W, pos, coef, spm, mask, u_scale, dmatrix)
        ctx.base_fn = base_fn
        return D.view(D.shape[0], -1) @ W.view(-1, W.shape[2])

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, S, D, W, pos, coef, spm, mask, u_scale, dmatrix = ctx.saved_tensors
        needs = ctx.needs_input_grad
        g_coef, g_sp, g_sb = _weight_grads(needs[2:5], gy, D, coef, spm, mask)
        g_x = g_xs = None
        if needs[0] or needs[1]:
            k = S.shape[0]
            gD = (gy @ W.view(-1, W.shape[2]).T).view(D.shape)
            if needs[1]:
                g_vals = torch.empty_like(pos, dtype=gy.dtype)  # (k+1, batch, n_in)
                torch.gather(gD, 2, pos.permute(1, 2, 0), out=g_vals.permute(1, 2, 0))
                # ∂L/∂s = Σ_{q=1..k} q s^{q−1} (M g)_q = (dM g)[0] + Σ_{q=1..k−1} s^q (dM g)[q], dM[q] = (q+1) M[q+1]
                gP = (dmatrix @ g_vals.view(k + 1, -1)).view(k, *S.shape[1:])
                g_s = gP[0] if k == 1 else (gP[1:] * S[:k - 1]).sum(0).add_(gP[0])
                g_xs = g_s * u_scale
            if needs[0]:
                g_x = _base_backward(ctx.base_fn, gD[..., -1].contiguous(), x)
        return g_x, g_xs, g_coef, g_sp, g_sb, None, None, None, None, None, None, None, None


class _LocalKAN(torch.autograd.Function):
    """One KAN layer from precomputed local basis values (any grid): y = D W, as in ``_UniformKAN``;
    the values' own dependence on x is left to autograd (general Cox–de Boor path)."""

    @staticmethod
    def forward(ctx, x, vals, coef, scale_sp, scale_base, mask, pos, bad, base_fn):
        spm = scale_sp * mask
        D, W = _assemble(vals, pos, _base_forward(base_fn, x), coef, spm, scale_base * mask, coef.shape[2] + 1)
        ctx.save_for_backward(x, D, W, pos, bad, coef, spm, mask)
        ctx.base_fn = base_fn
        return D.view(D.shape[0], -1) @ W.view(-1, W.shape[2])

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, D, W, pos, bad, coef, spm, mask = ctx.saved_tensors
        needs = ctx.needs_input_grad
        g_coef, g_sp, g_sb = _weight_grads(needs[2:5], gy, D, coef, spm, mask)
        g_x = g_vals = None
        if needs[0] or needs[1]:
            gD = (gy @ W.view(-1, W.shape[2]).T).view(D.shape)
            if needs[1]:
                g_vals = gD.gather(2, pos)
                if bad is not None:
                    g_vals.masked_fill_(bad, 0)
            if needs[0]:
                g_x = _base_backward(ctx.base_fn, gD[..., coef.shape[2]].contiguous(), x)
        return g_x, g_vals, g_coef, g_sp, g_sb, None, None, None, None


# ----------------------------------------------------------------------------------------------------------
# Small layers on the CPU: the whole forward / backward of a layer in one compiled loop each (numba).
# For batch·n_in·n_out·(k+2) up to _SMALL_WORK the torch kernels are dominated by per-operator overhead
# (about 40 tiny operators per layer and step, k² more on adaptive grids); hand-written because no library
# fuses this. Same maths and conventions as the torch kernels: cell c = the last knot <= x (the last cell
# closed), nothing outside [t_first, t_last]; uniform grids by the closed form (Horner on M), adaptive
# grids by the triangular Cox–de Boor scheme (NURBS Book A2.2) and the derivative formula
# B'_{m,k} = k B_{m,k−1}/(t_{m+k} − t_m) − k B_{m+1,k−1}/(t_{m+k+1} − t_{m+1}).
_SMALL_WORK = 1 << 17
_BASE_KIND = {"zero": 0, "silu": 1, "identity": 2}


@njit(inline="always")
def _knot(t, j):  # pragma: no cover - knot j of a row, extrapolated with the end spacing beyond the ends
    K = t.shape[0]
    if j < 0:
        h = t[1] - t[0]
        return t[0] + j * (h if h > 0 else 1.0)
    if j >= K:
        h = t[K - 1] - t[K - 2]
        return t[K - 1] + (j - K + 1) * (h if h > 0 else 1.0)
    return t[j]


@njit(inline="always")
def _cell(t, x):  # pragma: no cover - largest c with t_c <= x (binary search), clamped to the last cell; -1 outside
    K = t.shape[0]
    if not (x >= t[0] and x <= t[K - 1]):
        return -1
    lo, hi = 0, K  # invariant: t[lo] <= x < t[hi] (t[K] := +inf)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if t[mid] <= x:
            lo = mid
        else:
            hi = mid
    return min(lo, K - 2)


@njit(inline="always")
def _triangle(t, c, x, k, N, prev):  # pragma: no cover - N[r] = B_{c−k+r,k}(x); prev[r] = B_{c−k+1+r,k−1}(x)
    N[0] = 1.0
    for j in range(1, k + 1):
        if j == k:
            for r in range(k):
                prev[r] = N[r]
        saved = 0.0
        for r in range(j):
            right = _knot(t, c + r + 1) - x
            left = x - _knot(t, c + 1 - j + r)
            den = right + left
            temp = N[r] / den if den > 0 else 0.0
            N[r] = saved + right * temp
            saved = left * temp
        N[j] = saved


@njit(cache=True, nogil=True, error_model="numpy")
def _small_forward(x, xs, u_scale, u_shift, grid, uniform, coef, sp, sb, mask, M, base_kind, y, cell
                   ):  # pragma: no cover
    B, n_in = x.shape
    n_out, nb = coef.shape[1], coef.shape[2]
    k = M.shape[0] - 1
    n_cells = nb + k
    W = np.empty((n_in, nb, n_out), dtype=coef.dtype)  # W[i, m, o] = mask_io sp_io c_iom
    sbm = np.empty((n_in, n_out), dtype=coef.dtype)
    for i in range(n_in):
        for o in range(n_out):
            sbm[i, o] = sb[i, o] * mask[i, o]
            for m in range(nb):
                W[i, m, o] = coef[i, o, m] * (sp[i, o] * mask[i, o])
    N = np.empty(k + 1)
    prev = np.empty(k + 1)
    for b in range(B):
        for o in range(n_out):
            y[b, o] = 0.0
        for i in range(n_in):
            if base_kind != 0:
                xv = x[b, i]
                base = xv / (1.0 + math.exp(-xv)) if base_kind == 1 else xv
                for o in range(n_out):
                    y[b, o] += base * sbm[i, o]
            if uniform:
                u = xs[b, i] * u_scale[i] + u_shift[i]
                c = -1
                if u >= 0.0 and u <= n_cells:  # else beyond t_first / t_last (or NaN): no spline
                    c = min(int(math.floor(u)), n_cells - 1)
                    s = u - c
                    for r in range(k + 1):
                        v = M[k, r]
                        for q in range(k - 1, -1, -1):
                            v = v * s + M[q, r]
                        N[r] = v
            else:
                c = _cell(grid[i], xs[b, i])
                if c >= 0:
                    _triangle(grid[i], c, xs[b, i], k, N, prev)
            cell[b, i] = c
            if c < 0:
                continue
            for r in range(max(0, k - c), min(k + 1, nb + k - c)):  # existing functions m = c − k + r
                v = N[r]
                m = c - k + r
                for o in range(n_out):
                    y[b, o] += v * W[i, m, o]


@njit(cache=True, nogil=True, error_model="numpy")
def _small_backward(gy, x, xs, cell, u_scale, u_shift, grid, uniform, coef, sp, sb, mask, M, base_kind, need_x,
                    need_xs, g_coef, g_sp, g_sb, gx, gxs):  # pragma: no cover
    B, n_in = x.shape
    n_out, nb = coef.shape[1], coef.shape[2]
    k = M.shape[0] - 1
    gW = np.zeros((n_in, nb, n_out), dtype=coef.dtype)  # Σ_b B_m(x_bi) g_bo
    gB = np.zeros((n_in, n_out), dtype=coef.dtype)      # Σ_b b(x_bi) g_bo
    N = np.empty(k + 1)
    dN = np.empty(k + 1)
    prev = np.empty(k + 1)
    for b in range(B):
        for i in range(n_in):
            xv = x[b, i]
            if base_kind != 0:
                sig = 1.0 / (1.0 + math.exp(-xv)) if base_kind == 1 else 1.0
                base = xv * sig if base_kind == 1 else xv
                acc = 0.0
                for o in range(n_out):
                    g = gy[b, o]
                    gB[i, o] += base * g
                    acc += g * sb[i, o] * mask[i, o]
                if need_x:
                    gx[b, i] = acc * (sig * (1.0 + xv * (1.0 - sig)) if base_kind == 1 else 1.0)
            elif need_x:
                gx[b, i] = 0.0
            c = cell[b, i]
            if need_xs:
                gxs[b, i] = 0.0
            if c < 0:
                continue
            if uniform:  # values and d/dx by Horner on M (and its derivative), d/dx = (d/ds)/h
                s = xs[b, i] * u_scale[i] + u_shift[i] - c
                for r in range(k + 1):
                    v = M[k, r]
                    dv = 0.0
                    for q in range(k - 1, -1, -1):
                        dv = dv * s + v
                        v = v * s + M[q, r]
                    N[r] = v
                    dN[r] = dv * u_scale[i]
            else:
                t = grid[i]
                xv_s = xs[b, i]
                _triangle(t, c, xv_s, k, N, prev)
                for r in range(k + 1):  # B'_{c−k+r} from the order-(k−1) values prev[r−1], prev[r]
                    d = 0.0
                    if r >= 1:
                        den = _knot(t, c + r) - _knot(t, c + r - k)
                        if den > 0:
                            d += k * prev[r - 1] / den
                    if r < k:
                        den = _knot(t, c + r + 1) - _knot(t, c + r + 1 - k)
                        if den > 0:
                            d -= k * prev[r] / den
                    dN[r] = d
            acc_s = 0.0
            for r in range(max(0, k - c), min(k + 1, nb + k - c)):
                v = N[r]
                m = c - k + r
                gsum = 0.0
                for o in range(n_out):
                    g = gy[b, o]
                    gW[i, m, o] += v * g
                    gsum += g * coef[i, o, m] * sp[i, o] * mask[i, o]
                acc_s += gsum * dN[r]
            if need_xs:
                gxs[b, i] = acc_s
    for i in range(n_in):
        for o in range(n_out):
            tot = 0.0
            for m in range(nb):
                g_coef[i, o, m] = gW[i, m, o] * sp[i, o] * mask[i, o]
                tot += gW[i, m, o] * coef[i, o, m]
            g_sp[i, o] = tot * mask[i, o]
            g_sb[i, o] = gB[i, o] * mask[i, o]


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


class _SmallKAN(torch.autograd.Function):
    """One small KAN layer on the CPU (k >= 1, any grid): forward and backward each one numba loop.

    Same inputs and result as ``_UniformKAN`` (plus the knots for adaptive grids); saves only x, the
    spline input and the cell index per (batch, input)."""

    @staticmethod
    def forward(ctx, x, xs, coef, scale_sp, scale_base, mask, u_scale, u_shift, grid, uniform, matrix, base_fn):
        x, xs = x.contiguous(), xs.contiguous()
        B, n_in = x.shape
        y = torch.empty(B, coef.shape[1], dtype=x.dtype)
        cell = torch.empty(B, n_in, dtype=torch.int64)
        kind = _BASE_KIND[base_fn]
        _small_forward(_np(x), _np(xs), _np(u_scale), _np(u_shift), _np(grid), uniform, _np(coef), _np(scale_sp),
                       _np(scale_base), _np(mask), _np(matrix), kind, y.numpy(), cell.numpy())
        ctx.save_for_backward(x, xs, cell, u_scale, u_shift, grid, coef, scale_sp, scale_base, mask, matrix)
        ctx.kind, ctx.uniform = kind, uniform
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, xs, cell, u_scale, u_shift, grid, coef, sp, sb, mask, matrix = ctx.saved_tensors
        needs = ctx.needs_input_grad
        g_coef, g_sp, g_sb = torch.empty_like(coef), torch.empty_like(sp), torch.empty_like(sb)
        dummy = torch.empty(1, 1, dtype=x.dtype)
        gx = torch.empty_like(x) if needs[0] else dummy
        gxs = torch.empty_like(x) if needs[1] else dummy
        _small_backward(_np(gy.contiguous()), _np(x), _np(xs), cell.numpy(), _np(u_scale), _np(u_shift), _np(grid),
                        ctx.uniform, _np(coef), _np(sp), _np(sb), _np(mask), _np(matrix), ctx.kind, needs[0],
                        needs[1], g_coef.numpy(), g_sp.numpy(), g_sb.numpy(), gx.numpy(), gxs.numpy())
        return (gx if needs[0] else None, gxs if needs[1] else None, g_coef, g_sp, g_sb,
                None, None, None, None, None, None, None)
