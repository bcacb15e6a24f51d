"""Symbolic snapping of KAN edges: fit y ≈ c f(a x + b) + d, fix the edge, read off the formula.

KAN paper (Liu et al., arXiv:2404.19756, §2.5.1 "Simplification techniques", step 3; PHYSICS.md §9):
for each edge function φ_{l,j,i} and each f in a library (x, x², exp, sin, ...),

    (a, b)  by grid search (with zooming) maximising R² of the linear regression of y on f(a x + b),
    (c, d)  by least squares given (a, b),
    then (a, b) refined by bounded trust-region least squares on Σ_s (c f(a x_s + b) + d − y_s)² with
    (c, d) eliminated (variable projection), and (a, b, c, d) put in canonical form (a > 0, ...),

and candidates are ranked by the description-length-like loss of the reference code (pykan 0.2.8,
``MultKAN.suggest_symbolic``, which writes log2(1 − R² + 1e-5)):

    loss(f) = w · complexity(f) + (1 − w) · log2(max(1 − R², 1e-5)),    w = weight_simple = 0.8.

Clipping instead of adding makes every fit better than the floor an exact tie in R², decided by the
complexity and then by library order — otherwise a flexible function (sin(a x + b) with a tiny a is a
quadratic to 1e-9) beats x² on round-off.

A fixed edge is computed by a :class:`SymbolicEdges` module attached to its layer: the spline edge is
masked (mask = 0) and a forward hook adds Σ_i [c f(a x_i + b) + d] to the layer output. The affine
parameters (a, b, c, d) are trainable, so ordinary training fine-tunes them. Once every edge is symbolic
(or pruned), :func:`formula` returns the network as an exact sympy expression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import sympy
import torch
from torch import Tensor, nn

from ...errors import ConfigError, check

__all__ = ["SymbolicFunction", "SymbolicFit", "LIBRARY", "fit_affine", "suggest", "SymbolicEdges",
           "symbolic_edges", "edge_samples", "suggest_symbolic", "fix_symbolic", "unfix_symbolic",
           "auto_symbolic", "fine_tune", "formula", "formulas", "round_floats", "non_symbolic_edges", "EdgeSnap"]


# --------------------------------------------------------------------------------------------- library
Affine = tuple[float, float, float, float]
R2_FLOOR = 1e-5  # 1 − R² below this counts as a perfect fit when ranking


@dataclass(frozen=True)
class SymbolicFunction:
    """One library entry: the same f as a torch function and as a sympy function, with a complexity.

    ``admissible(u)`` says, for arguments u of shape (..., n_samples), whether f is defined and smooth on
    all n samples (log needs u > 0, 1/x needs u of one sign, ...); it returns a bool tensor of shape (...).
    ``inner_affine = False`` marks functions for which c f(a x + b) + d = c' f(x) + d' (x, 0): no search.
    ``canonical`` maps (a, b, c, d) to the plainest equivalent parameters (same function of x): a > 0 by
    parity, |a| = 1 by homogeneity, b in (−π, π] by periodicity, b = 0 for exp, ...
    """

    name: str
    torch_fn: Callable[[Tensor], Tensor]
    sympy_fn: Callable[[sympy.Expr], sympy.Expr]
    complexity: int
    admissible: Optional[Callable[[Tensor], Tensor]] = None
    inner_affine: bool = True
    canonical: Callable[[Affine], Affine] = lambda p: p


def _one_sign(u: Tensor) -> Tensor:
    return (u > 0).all(-1) | (u < 0).all(-1)


def _parity(sign: int, period: Optional[float] = None, degree: Optional[float] = None):
    """Canonical form for f(−u) = sign·f(u) (sign 0: no parity), f(u + period) = f(u), f(λu) = λ^degree f(u)."""

    def canon(p: Affine) -> Affine:
        a, b, c, d = p
        if degree is not None and a != 0:               # c f(a x + b) = c |a|^p f(sgn(a) x + b/|a|)
            a, b, c = math.copysign(1.0, a), b / abs(a), c * abs(a) ** degree
        if sign != 0 and a < 0:                         # c f(−u) = sign·c f(u)
            a, b, c = -a, -b, sign * c
        if period is not None:                          # b into (−period/2, period/2]
            b = b - period * math.ceil(b / period - 0.5)
        return a, b, c, d

    return canon


def _canon_log(p: Affine) -> Affine:                    # c log(a x + b) = c log|a| + c log(sgn(a) x + b/|a|)
    a, b, c, d = p
    return (math.copysign(1.0, a), b / abs(a), c, d + c * math.log(abs(a))) if a != 0 else p


def _canon_exp(p: Affine) -> Affine:                    # c e^(a x + b) = (c e^b) e^(a x)
    a, b, c, d = p
    return a, 0.0, c * math.exp(b), d


def _canon_sigmoid(p: Affine) -> Affine:                # c σ(−u) + d = −c σ(u) + (c + d)
    a, b, c, d = p
    return (-a, -b, -c, c + d) if a < 0 else p


def _entry(name, fn, sfn, c, adm=None, inner=True, canon=None) -> tuple[str, SymbolicFunction]:
    return name, SymbolicFunction(name, fn, sfn, c, adm, inner, canon or (lambda p: p))


_EVEN, _ODD = 1, -1
# Complexities follow pykan 0.2.8 utils.SYMBOLIC_LIB (x: 1, x²/sin/exp/log/sqrt/1/x: 2, ...).
LIBRARY: Mapping[str, SymbolicFunction] = dict([
    _entry("0", lambda u: u * 0, lambda u: sympy.Integer(0), 0, inner=False),
    _entry("x", lambda u: u, lambda u: u, 1, inner=False),
    _entry("x^2", lambda u: u**2, lambda u: u**2, 2, canon=_parity(_EVEN, degree=2)),
    _entry("x^3", lambda u: u**3, lambda u: u**3, 3, canon=_parity(_ODD, degree=3)),
    _entry("x^4", lambda u: u**4, lambda u: u**4, 3, canon=_parity(_EVEN, degree=4)),
    _entry("1/x", lambda u: 1 / u, lambda u: 1 / u, 2, _one_sign, canon=_parity(_ODD, degree=-1)),
    _entry("1/x^2", lambda u: 1 / u**2, lambda u: u**-2, 2, _one_sign, canon=_parity(_EVEN, degree=-2)),
    _entry("sqrt", torch.sqrt, sympy.sqrt, 2, lambda u: (u >= 0).all(-1), canon=_parity(0, degree=0.5)),
    _entry("exp", torch.exp, sympy.exp, 2, canon=_canon_exp),
    _entry("log", torch.log, sympy.log, 2, lambda u: (u > 0).all(-1), canon=_canon_log),
    _entry("sin", torch.sin, sympy.sin, 2, canon=_parity(_ODD, period=2 * math.pi)),
    _entry("cos", torch.cos, sympy.cos, 2, canon=_parity(_EVEN, period=2 * math.pi)),
    _entry("tanh", torch.tanh, sympy.tanh, 3, canon=_parity(_ODD)),
    _entry("abs", torch.abs, sympy.Abs, 3, canon=_parity(_EVEN, degree=1)),
    _entry("gaussian", lambda u: torch.exp(-u**2), lambda u: sympy.exp(-u**2), 3, canon=_parity(_EVEN)),
    _entry("sigmoid", torch.sigmoid, lambda u: 1 / (1 + sympy.exp(-u)), 4, canon=_canon_sigmoid),
    _entry("arctan", torch.arctan, sympy.atan, 4, canon=_parity(_ODD)),
    _entry("arcsin", torch.arcsin, sympy.asin, 4, lambda u: (u.abs() <= 1).all(-1), canon=_parity(_ODD)),
    _entry("arctanh", torch.arctanh, sympy.atanh, 4, lambda u: (u.abs() < 1).all(-1), canon=_parity(_ODD)),
])


def _library(lib: Optional[Iterable[str]]) -> dict[str, SymbolicFunction]:
    names = list(LIBRARY) if lib is None else list(lib)
    check(len(names) >= 1, "lib", names, "at least one function name")
    for n in names:
        check(n in LIBRARY, "lib", n, ", ".join(LIBRARY))
    return {n: LIBRARY[n] for n in names}


# --------------------------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class SymbolicFit:
    """y ≈ c f(a x + b) + d for the library function ``name``, with its R², complexity and ranking loss."""

    name: str
    a: float
    b: float
    c: float
    d: float
    r2: float
    complexity: int
    loss: float

    def __call__(self, x: Tensor) -> Tensor:
        return self.c * LIBRARY[self.name].torch_fn(self.a * x + self.b) + self.d


def _ranking_loss(r2: float, complexity: int, weight_simple: float) -> float:
    return weight_simple * complexity + (1 - weight_simple) * math.log2(max(1 - r2, R2_FLOOR))


def _r2_of(pred: Tensor, y: Tensor) -> float:
    ss_tot = float(((y - y.mean()) ** 2).sum())
    ss_res = float(((pred - y) ** 2).sum())
    if not math.isfinite(ss_res):
        return -math.inf
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else -math.inf)


def _linear_cd(u: Tensor, y: Tensor) -> tuple[float, float]:
    """Least squares y ≈ c u + d (c = 0 if u is constant)."""
    uc, yc = u - u.mean(), y - y.mean()
    var = float((uc * uc).sum())
    c = float((uc * yc).sum()) / var if var > 1e-18 * float((u * u).sum()) else 0.0  # constant u: c = 0
    return c, float(y.mean() - c * u.mean())


def _grid_search(fn: SymbolicFunction, x: Tensor, y: Tensor, a_range, b_range, n_grid: int, n_zoom: int):
    """argmax over an (a, b) grid of R²(y ~ f(a x + b)); each zoom re-grids ±1 step around the best point,
    inside the original box. Ties (R² equal to round-off: the b of c e^(a x + b), the period of sin) go to
    the smallest a² + b², so formulas come out in their plainest form."""
    (a_lo, a_hi), (b_lo, b_hi) = a_range, b_range
    yc = y - y.mean()
    syy = (yc * yc).sum()
    best = None
    for _ in range(n_zoom):
        a = torch.linspace(a_lo, a_hi, n_grid, dtype=x.dtype)
        b = torch.linspace(b_lo, b_hi, n_grid, dtype=x.dtype)
        u = a[:, None, None] * x + b[None, :, None]                       # (n_a, n_b, n)
        fu = fn.torch_fn(u)
        ok = torch.isfinite(fu).all(-1)
        if fn.admissible is not None:
            ok &= fn.admissible(u)
        fc = fu - fu.mean(-1, keepdim=True)
        sff = (fc * fc).sum(-1)
        r2 = (fc * yc).sum(-1) ** 2 / (sff * syy)
        varies = sff > 1e-18 * (fu * fu).sum(-1)                          # f(a x + b) not constant (round-off)
        r2 = torch.where(ok & varies & torch.isfinite(r2), r2, torch.full_like(r2, -1.0))
        top = float(r2.max())
        if top < 0:
            return best
        ties = r2 >= top - max(1e-12, 1e-6 * (1.0 - top))
        norm = torch.where(ties, a[:, None] ** 2 + b[None, :] ** 2, torch.full_like(r2, math.inf))
        ia, ib = divmod(int(torch.argmin(norm)), n_grid)
        best = (float(a[ia]), float(b[ib]))
        da, db = (a_hi - a_lo) / (n_grid - 1), (b_hi - b_lo) / (n_grid - 1)
        a_lo, a_hi = max(best[0] - da, a_range[0]), min(best[0] + da, a_range[1])
        b_lo, b_hi = max(best[1] - db, b_range[0]), min(best[1] + db, b_range[1])
    return best


def _refine(fn: SymbolicFunction, x: Tensor, y: Tensor, ab0: tuple[float, float], a_range,
            b_range) -> Optional[tuple[float, ...]]:
    """Trust-region least squares on (a, b), inside the search box, of the variable-projection residual
    y − P y, where P projects onto span{f(a x + b), 1} (so (c, d) are always the least-squares ones); None if
    it fails or leaves the admissible domain. Directions the fit is blind to (the b of c e^(a x + b)) stay
    where the grid put them.
    """
    from scipy.optimize import least_squares

    def residual(ab):
        fu = fn.torch_fn(ab[0] * x + ab[1])
        if not bool(torch.isfinite(fu).all()):
            return np.full(len(y), 1e150)
        c, d = _linear_cd(fu, y)
        return (c * fu + d - y).numpy()

    try:
        sol = least_squares(residual, np.asarray(ab0, dtype=np.float64), method="trf", max_nfev=60,
                            bounds=([a_range[0], b_range[0]], [a_range[1], b_range[1]]))
    except (ValueError, np.linalg.LinAlgError):  # pragma: no cover - defensive
        return None
    a, b = (float(v) for v in sol.x)
    u = a * x + b
    if not math.isfinite(a) or not math.isfinite(b) or (fn.admissible is not None and not bool(fn.admissible(u))):
        return None
    fu = fn.torch_fn(u)
    if not bool(torch.isfinite(fu).all()):
        return None
    return (a, b, *_linear_cd(fu, y))


def fit_affine(x, y, name: str, *, a_range: tuple[float, float] = (-10.0, 10.0),
               b_range: tuple[float, float] = (-10.0, 10.0), n_grid: int = 41, n_zoom: int = 3,
               max_samples: int = 64, refine: bool = True, weight_simple: float = 0.8) -> SymbolicFit:
    """Fit y ≈ c f(a x + b) + d for the library function ``name`` (arXiv:2404.19756 §2.5.1).

    Parameters
    ----------
    x, y : (n,) samples of one edge: its input and its value φ(x).
    name : a key of :data:`LIBRARY`.
    a_range, b_range : search box of the inner affine map; n_grid² points per zoom level, n_zoom levels.
    max_samples : the grid search uses at most this many samples (evenly spaced in sorted x); the
        refinement (``refine``) and the reported R² use all of them.
    weight_simple : w of the ranking loss (module docstring).

    Returns the :class:`SymbolicFit`; R² = 1 − SS_res/SS_tot on all samples (−inf where f cannot fit, e.g. a
    log whose argument cannot be kept positive).
    """
    check(name in LIBRARY, "name", name, ", ".join(LIBRARY))
    fn = LIBRARY[name]
    x = torch.as_tensor(x, dtype=torch.float64).detach().reshape(-1).cpu()
    y = torch.as_tensor(y, dtype=torch.float64).detach().reshape(-1).cpu()
    check(x.numel() == y.numel() and x.numel() >= 4, "x, y", (x.numel(), y.numel()),
          "the same number of samples, at least 4")
    check(bool(torch.isfinite(x).all() and torch.isfinite(y).all()), "x, y", "non-finite values", "finite numbers")
    check(n_grid >= 3 and n_zoom >= 1, "n_grid, n_zoom", (n_grid, n_zoom), "n_grid >= 3 and n_zoom >= 1")
    if not fn.inner_affine:
        a, b = 1.0, 0.0
    else:
        order = torch.argsort(x)
        sub = order[torch.linspace(0, len(x) - 1, min(max_samples, len(x))).round().long()]
        found = _grid_search(fn, x[sub], y[sub], a_range, b_range, n_grid, n_zoom)
        if found is None:
            return SymbolicFit(name, 0.0, 0.0, 0.0, 0.0, -math.inf, fn.complexity, math.inf)
        a, b = found
    u = fn.torch_fn(a * x + b)
    c, d = _linear_cd(u, y) if torch.isfinite(u).all() else (0.0, float(y.mean()))
    if name == "0":
        c = 0.0
    r2 = _r2_of(c * u + d, y)
    if refine and fn.inner_affine:
        p = _refine(fn, x, y, (a, b), a_range, b_range)
        if p is not None:
            r2_new = _r2_of(p[2] * fn.torch_fn(p[0] * x + p[1]) + p[3], y)
            if r2_new > r2:
                (a, b, c, d), r2 = (float(v) for v in p), r2_new
    a, b, c, d = fn.canonical((a, b, c, d))
    return SymbolicFit(name, a, b, c, d, r2, fn.complexity, _ranking_loss(r2, fn.complexity, weight_simple))


def suggest(x, y, *, lib: Optional[Iterable[str]] = None, topk: int = 5, weight_simple: float = 0.8,
            **fit_kw) -> list[SymbolicFit]:
    """Library fits of y ≈ c f(a x + b) + d, best (lowest ranking loss) first, at most ``topk``.

    Every library function is grid-searched; the ``topk`` best are then refined (see :func:`fit_affine`)
    and ranked again.
    """
    check(0.0 <= weight_simple <= 1.0, "weight_simple", weight_simple, "a number in [0, 1]")
    check(topk >= 1, "topk", topk, "an integer >= 1")

    order = {n: k for k, n in enumerate(LIBRARY)}

    def rank(fits):  # losses equal to 1e-6 are ties: the simpler, then the earlier library entry wins
        return sorted(fits, key=lambda f: (round(f.loss, 6), f.complexity, order[f.name]))

    coarse = rank(fit_affine(x, y, n, weight_simple=weight_simple, refine=False, **fit_kw) for n in _library(lib))
    return rank(fit_affine(x, y, f.name, weight_simple=weight_simple, **fit_kw) for f in coarse[:topk])


# ------------------------------------------------------------------------------------ symbolic edges
class SymbolicEdges(nn.Module):
    """The symbolic branch of one KAN layer: out_j = Σ_{i: fixed(i,j)} [c_ij f_ij(a_ij x_i + b_ij) + d_ij].

    ``affine`` (n_in, n_out, 4) holds (a, b, c, d) and is a trainable parameter; ``fixed`` (n_in, n_out) is a
    bool buffer; ``names[i][j]`` is the library name of a fixed edge (None otherwise). Attached to a layer
    by :func:`symbolic_edges`, which registers it as the submodule ``symbolic_edges`` and adds a forward hook
    that adds this module's output to the layer's.
    """

    def __init__(self, in_dim: int, out_dim: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.affine = nn.Parameter(torch.zeros(in_dim, out_dim, 4, dtype=dtype))
        self.register_buffer("fixed", torch.zeros(in_dim, out_dim, dtype=torch.bool))
        self.names: list[list[Optional[str]]] = [[None] * out_dim for _ in range(in_dim)]

    def set(self, i: int, j: int, name: Optional[str], params: Sequence[float] = (1.0, 0.0, 1.0, 0.0)) -> None:
        with torch.no_grad():
            self.fixed[i, j] = name is not None
            self.affine[i, j] = torch.tensor(params if name is not None else (0.0,) * 4, dtype=self.affine.dtype)
        self.names[i][j] = name

    def edges(self) -> list[tuple[int, int, str]]:
        return [(i, j, n) for i, row in enumerate(self.names) for j, n in enumerate(row) if n is not None]

    def edge_values(self, x: Tensor) -> Tensor:
        """(batch, n_in, n_out): c f(a x_i + b) + d on the fixed edges, 0 elsewhere."""
        vals = x.new_zeros(x.shape[0], self.in_dim, self.out_dim, dtype=torch.promote_types(x.dtype,
                                                                                             self.affine.dtype))
        for i, j, name in self.edges():
            a, b, c, d = self.affine[i, j]
            vals[:, i, j] = c * LIBRARY[name].torch_fn(a * x[:, i] + b) + d
        return vals

    def forward(self, x: Tensor) -> Tensor:
        """(batch, n_out): the sum over inputs of :meth:`edge_values`."""
        return self.edge_values(x).sum(dim=1)

    def _add_to_output(self, layer: nn.Module, args: tuple, output: Tensor) -> Tensor:
        if not bool(self.fixed.any()):
            return output
        return output + self(args[0]).to(output.dtype)


def symbolic_edges(layer: nn.Module, *, create: bool = True) -> Optional[SymbolicEdges]:
    """The :class:`SymbolicEdges` attached to ``layer`` (attached now, empty, if ``create``)."""
    sym = layer._modules.get("symbolic_edges")
    if sym is None and create:
        sym = SymbolicEdges(layer.in_dim, layer.out_dim, dtype=layer.coef.dtype)
        sym.to(layer.coef.device)
        layer.add_module("symbolic_edges", sym)
        layer.register_forward_hook(sym._add_to_output)
    return sym


# ------------------------------------------------------------------------------------ model operations
def _index(v, name: str, n: int, what: str) -> int:
    ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= int(v) < n
    check(ok, name, v, f"{what} 0..{n - 1}")
    return int(v)


def _edge(model: nn.Module, l: int, i: int, j: int) -> tuple[nn.Module, int, int, int]:
    """The layer of edge (l, i, j) and the validated indices."""
    l = _index(l, "l", len(model.layers), "a layer index")
    layer = model.layers[l]
    return (layer, l, _index(i, "i", layer.in_dim, f"an input index of layer {l}"),
            _index(j, "j", layer.out_dim, f"an output index of layer {l}"))


def edge_samples(model: nn.Module, l: int, i: int, j: int, x) -> tuple[Tensor, Tensor]:
    """(x_{l,i}, φ_{l,j,i}(x_{l,i})) on the data x: the edge's inputs and its values as the forward pass
    uses them (masked spline plus symbolic branch), as float64 (n,) tensors."""
    from .sparsity import layer_edge_values, layer_inputs

    layer, l, i, j = _edge(model, l, i, j)
    with torch.no_grad():
        xl = layer_inputs(model, model.as_input(x))[l]
        vals = layer_edge_values(layer, xl)
    return xl[:, i].double().cpu(), vals[:, i, j].double().cpu()


def suggest_symbolic(model: nn.Module, l: int, i: int, j: int, x, *, lib: Optional[Iterable[str]] = None,
                     topk: int = 5, weight_simple: float = 0.8, **fit_kw) -> list[SymbolicFit]:
    """The best library fits of edge φ_{l,j,i} (input i of layer l to its output j) on the data x."""
    xs, ys = edge_samples(model, l, i, j, x)
    return suggest(xs, ys, lib=lib, topk=topk, weight_simple=weight_simple, **fit_kw)


def fix_symbolic(model: nn.Module, l: int, i: int, j: int, name: str, x=None, *,
                 params: Optional[Sequence[float]] = None, **fit_kw) -> SymbolicFit:
    """Replace edge φ_{l,j,i} by c f(a x + b) + d, f = LIBRARY[name], in place.

    With data x, (a, b, c, d) are fitted to the edge's current values on x (:func:`fit_affine`); else they are
    ``params`` (default (1, 0, 1, 0)) and the returned fit has R² = nan. The spline edge is masked
    (mask[i, j] = 0) and the symbolic branch of the layer computes the edge from now on.
    """
    check(name in LIBRARY, "name", name, ", ".join(LIBRARY))
    layer, l, i, j = _edge(model, l, i, j)
    if x is not None:
        check(params is None, "params", params, "None when data x is given (the parameters are fitted)")
        fit = fit_affine(*edge_samples(model, l, i, j, x), name, **fit_kw)
        check(math.isfinite(fit.r2), "name", name, f"a function that can fit edge ({l},{i},{j}) on the data "
              "(its argument leaves the domain for every a, b in the search box)")
    else:
        p = (1.0, 0.0, 1.0, 0.0) if params is None else tuple(float(v) for v in params)
        check(len(p) == 4 and all(math.isfinite(v) for v in p), "params", params, "four finite numbers (a, b, c, d)")
        fit = SymbolicFit(name, *p, math.nan, LIBRARY[name].complexity, math.nan)
    symbolic_edges(layer).set(i, j, name, (fit.a, fit.b, fit.c, fit.d))
    with torch.no_grad():
        layer.mask[i, j] = 0.0
    return fit


def unfix_symbolic(model: nn.Module, l: int, i: int, j: int) -> None:
    """Undo :func:`fix_symbolic`: the spline edge is active again (mask 1) and the symbolic one removed."""
    layer, l, i, j = _edge(model, l, i, j)
    sym = symbolic_edges(layer, create=False)
    if sym is not None:
        sym.set(i, j, None)
    with torch.no_grad():
        layer.mask[i, j] = 1.0


@dataclass(frozen=True)
class EdgeSnap:
    """What :func:`auto_symbolic` did with edge (l, i, j): status is 'fixed', 'kept' (best R² below the
    threshold), 'symbolic' (already fixed) or 'pruned' (mask 0, left as zero); ``fit`` is the best
    candidate and ``candidates`` the ``topk`` best, ranked."""

    l: int
    i: int
    j: int
    status: str
    fit: Optional[SymbolicFit]
    candidates: tuple[SymbolicFit, ...] = ()


def auto_symbolic(model: nn.Module, x, *, lib: Optional[Iterable[str]] = None, r2_threshold: float = 0.0,
                  weight_simple: float = 0.8, topk: int = 3, progress: Optional[Callable[[float], None]] = None,
                  **fit_kw) -> list[EdgeSnap]:
    """Snap every active spline edge to its best library function (lowest ranking loss) if its R² ≥
    ``r2_threshold``; layer by layer, so an edge is fitted on inputs computed by the already-snapped layers
    before it. Returns one :class:`EdgeSnap` per edge."""
    check(isinstance(r2_threshold, (int, float)) and r2_threshold <= 1, "r2_threshold", r2_threshold,
          "a number <= 1")
    names = list(_library(lib))
    out: list[EdgeSnap] = []
    n_edges = sum(layer.in_dim * layer.out_dim for layer in model.layers)
    for l, layer in enumerate(model.layers):
        sym = symbolic_edges(layer, create=False)
        for i in range(layer.in_dim):
            for j in range(layer.out_dim):
                if sym is not None and bool(sym.fixed[i, j]):
                    out.append(EdgeSnap(l, i, j, "symbolic", None))
                elif float(layer.mask[i, j]) == 0.0:
                    out.append(EdgeSnap(l, i, j, "pruned", None))
                else:
                    cands = tuple(suggest_symbolic(model, l, i, j, x, lib=names, topk=topk,
                                                   weight_simple=weight_simple, **fit_kw))
                    best = cands[0]
                    if best.r2 >= r2_threshold:
                        fix_symbolic(model, l, i, j, best.name, params=(best.a, best.b, best.c, best.d))
                        out.append(EdgeSnap(l, i, j, "fixed", best, cands))
                    else:
                        out.append(EdgeSnap(l, i, j, "kept", best, cands))
                if progress is not None:
                    progress(len(out) / n_edges)
    return out


def fine_tune(model: nn.Module, x, y, *, steps: int = 50, which: str = "symbolic") -> list[float]:
    """Fine-tune by full-batch L-BFGS (strong Wolfe, at most ``steps`` iterations) on the mean squared error
    (1/(n n_L)) Σ_s ‖KAN(x_s) − y_s‖²; returns the loss at every evaluation.

    ``which = "symbolic"`` trains only the affine parameters (a, b, c, d) of the symbolic edges (the last
    step of KAN symbolic regression, arXiv:2404.19756 §2.5.1; the other parameters are frozen meanwhile);
    ``"all"`` trains every parameter.
    """
    check(which in ("symbolic", "all"), "which", which, "symbolic or all")
    check(isinstance(steps, int) and steps >= 1, "steps", steps, "an integer >= 1")
    xb = model.as_input(x)
    yb = torch.as_tensor(y, dtype=xb.dtype, device=xb.device).reshape(len(xb), -1)
    if which == "all":
        params = [p for p in model.parameters() if p.requires_grad]
    else:
        params = [s.affine for layer in model.layers if (s := symbolic_edges(layer, create=False)) is not None
                  and bool(s.fixed.any())]
    check(len(params) > 0, "model", "no symbolic edges", "a model with symbolic edges (fix_symbolic first)")
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-14, tolerance_change=1e-16)
    history: list[float] = []

    def closure():
        opt.zero_grad()
        loss = torch.mean((model(xb) - yb) ** 2)
        loss.backward()
        history.append(float(loss.detach()))
        return loss

    frozen = [p for p in model.parameters() if p.requires_grad and not any(p is q for q in params)]
    for p in frozen:
        p.requires_grad_(False)
    try:
        opt.step(closure)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return history


def non_symbolic_edges(model: nn.Module) -> list[tuple[int, int, int]]:
    """(l, i, j) of every edge still computed by its spline (mask ≠ 0)."""
    return [(l, int(i), int(j)) for l, layer in enumerate(model.layers)
            for i, j in torch.nonzero(layer.mask != 0).tolist()]


def _variables(model: nn.Module, variables) -> list[sympy.Expr]:
    n = model.layers[0].in_dim
    if variables is None:
        return list(sympy.symbols(f"x_1:{n + 1}", real=True))
    vs = [sympy.Symbol(v, real=True) if isinstance(v, str) else sympy.sympify(v) for v in variables]
    check(len(vs) == n, "variables", [str(v) for v in vs], f"{n} names or sympy symbols, one per input")
    return vs


def _integral_floats(expr: sympy.Expr) -> sympy.Expr:
    """Replace every Float with an integer value (1.0, −2.0) by that Integer: the same number, so exact."""
    subs = {f: sympy.Integer(int(f)) for f in expr.atoms(sympy.Float)
            if math.isfinite(float(f)) and float(f) == int(float(f))}
    return expr.xreplace(subs) if subs else expr


def round_floats(expr: sympy.Expr, digits: int = 4, *, chop: float = 0.0) -> sympy.Expr:
    """For display (no longer exact): every Float rounded to ``digits`` significant digits, and those with
    |value| < ``chop`` set to 0."""
    check(isinstance(digits, int) and digits >= 1, "digits", digits, "an integer >= 1")
    check(chop >= 0, "chop", chop, "a number >= 0")
    subs = {f: sympy.Integer(0) if abs(float(f)) < chop else sympy.Float(float(f"{float(f):.{digits}g}"), digits)
            for f in expr.atoms(sympy.Float)}
    return _integral_floats(expr.xreplace(subs))


def formulas(model: nn.Module, variables=None, *, simplify: bool = True) -> list[sympy.Expr]:
    """The network as exact sympy expressions, one per output, once every edge is symbolic or pruned.

    Layer by layer, x_{l+1,j} = Σ_{i: symbolic} [c f(a x_{l,i} + b) + d], with the parameters as exact
    sympy Floats (53-bit, the float64 values), so the expression evaluates to the network's output up to
    round-off. ``simplify`` makes only exact changes: integer-valued Floats become Integers (1.0·x → x);
    apply ``sympy.simplify`` yourself if wanted (it can take minutes on a composed network), and
    :func:`round_floats` for display. Raises ConfigError naming the edges that are not symbolic.
    """
    pending = non_symbolic_edges(model)
    if pending:
        shown = ", ".join(str(e) for e in pending[:12]) + (", ..." if len(pending) > 12 else "")
        raise ConfigError(f"model: got {len(pending)} non-symbolic edge(s) (l, i, j): {shown}; allowed: every "
                          "active edge symbolic (fix_symbolic / auto_symbolic) or pruned")  # not cut to 80 chars
    nodes = _variables(model, variables)
    for layer in model.layers:
        sym = symbolic_edges(layer, create=False)
        out = [sympy.Integer(0)] * layer.out_dim
        for i, j, name in (sym.edges() if sym is not None else []):
            a, b, c, d = (sympy.Float(float(v)) for v in sym.affine[i, j].detach().cpu())
            out[j] = out[j] + c * LIBRARY[name].sympy_fn(a * nodes[i] + b) + d
        nodes = [_integral_floats(e) if simplify else e for e in out]
    return nodes


def formula(model: nn.Module, variables=None, *, simplify: bool = True, output: int = 0) -> sympy.Expr:
    """The exact sympy expression of output ``output`` of an all-symbolic network (see :func:`formulas`)."""
    d_out = model.layers[-1].out_dim
    check(isinstance(output, int) and 0 <= output < d_out, "output", output, f"an output index 0..{d_out - 1}")
    return formulas(model, variables, simplify=simplify)[output]
