"""Universal approximation, measured: sup and L² error of single-hidden-layer networks against width N.

The networks are the one-hidden-layer family of PHYSICS.md §2 read from an :class:`~nnft.spec.Architecture`,

    f_θ(x) = b + Σ_{i=1}^N a_i σ(W_i·x + c_i),        x ∈ [−1, 1]^d,

and the universal approximation theorem (Cybenko 1989; Hornik 1991; PHYSICS.md §9) says that for every
continuous target f and ε > 0 some N and θ reach sup_x |f(x) − f_θ(x)| < ε. It says nothing about how
large N must be, nor whether training finds θ. Two measurements (both upper bounds on the best error
inf_θ sup_x |f − f_θ| at width N):

* :class:`RandomFeatures` — the first layer (W_i, c_i) drawn once from the spec's densities and frozen;
  the readout (a, b) solved by least squares on a fit grid X_fit,
      (a, b) = argmin Σ_{x ∈ X_fit} (f(x) − f_θ(x))² + λ |(a, b)|²,   λ = ridge · mean_j (HᵀH)_jj,
  with H the (|X_fit|, N + 1) feature matrix [σ(W_i·x + c_i), 1], by the SVD with relative cutoff rcond
  (defaults: ridge 0, rcond 1e-12; see :class:`RandomFeatures`). No optimizer is involved, so it is an
  upper bound on the *approximation* error of width N (Rahimi & Recht 2008, "Uniform approximation of
  functions with random bases"; Barron 1993 for the N^{−1/2} rate of the best N-term approximation).
* :class:`Trained` — all parameters trained from the spec's initialization on the mean-squared error on
  X_fit (Adam, vectorized over seeds, or L-BFGS per seed): what an optimizer reaches (optimizer-limited).

Errors are measured on a denser evaluation grid X_eval ⊃≠ X_fit: sup = max_{x∈X_eval} |f − f_θ| and
L² = (mean_{x∈X_eval} (f − f_θ)²)^{1/2}. Rates: per seed, the least-squares slope of log(error) against
log(N) over the widths whose median error is above a floor (round-off / conditioning); the reported slope
is the mean over seeds with its standard error (std/√S). For Barron-class targets the expected L² rate of
the best approximation is at least N^{−1/2} (Barron 1993); smooth targets in d = 1 do much better.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np
import torch

from ..ensemble.sampling import chunk_generator, sample_networks
from ..errors import check
from ..spec import Activation, Architecture, Layer, Normal
from .targets import Target, cube_grid

__all__ = ["RandomFeatures", "Trained", "Rate", "ApproximationErrors", "uat_spec", "approximation_errors",
           "fit_rate", "default_grid_sizes"]

Tensor = torch.Tensor
_EVAL_BLOCK = 8192  # evaluation points per block (memory: S × block × N doubles)


@dataclass(frozen=True, kw_only=True)
class RandomFeatures:
    """Frozen random first layer; readout by least squares on the fit grid.

    The readout solves min |H θ − y|² + λ|θ|² with λ = ``ridge`` · mean_j (HᵀH)_jj, by the SVD (LAPACK gelsd)
    with singular values below ``rcond`` · σ_max discarded (the pseudo-inverse's spectral cutoff). The
    default is no Tikhonov term (ridge = 0) and rcond = 1e-12: random bases are ill-conditioned, the
    best readout has large coefficients, and a ridge of even 1e-14 (relative) raises the error of a
    smooth target at N = 256 from ~1e-11 to ~1e-8 — it would measure the regularizer, not the basis.
    """

    ridge: float = 0.0
    rcond: float = 1e-12

    def __post_init__(self) -> None:
        check(isinstance(self.ridge, (int, float)) and math.isfinite(self.ridge) and self.ridge >= 0,
              "RandomFeatures.ridge", self.ridge, "a finite number >= 0 (relative to the mean Gram diagonal)")
        check(isinstance(self.rcond, (int, float)) and math.isfinite(self.rcond) and 0 < self.rcond < 1,
              "RandomFeatures.rcond", self.rcond, "a number in (0, 1) (relative singular-value cutoff)")

    @property
    def name(self) -> str:
        return "random-features"


@dataclass(frozen=True, kw_only=True)
class Trained:
    """All parameters trained on the fit grid (full batch, MSE loss) from the spec's initialization.

    ``optimizer="adam"``: ``steps`` Adam steps, learning rate decaying exponentially from ``lr`` to
    ``lr · lr_decay``; vectorized over seeds (Adam is elementwise, so one Adam on the stacked parameters of
    S networks with the summed loss is S independent Adams). ``"lbfgs"``: ``steps`` L-BFGS iterations
    (strong-Wolfe line search, learning rate ``lr``), one network at a time.
    """

    steps: int = 2000
    optimizer: Literal["adam", "lbfgs"] = "adam"
    lr: float = 1e-2
    lr_decay: float = 1e-2

    def __post_init__(self) -> None:
        check(isinstance(self.steps, int) and not isinstance(self.steps, bool) and self.steps >= 1,
              "Trained.steps", self.steps, "an integer >= 1")
        check(self.optimizer in ("adam", "lbfgs"), "Trained.optimizer", self.optimizer, "'adam' or 'lbfgs'")
        for name in ("lr", "lr_decay"):
            v = getattr(self, name)
            check(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, f"Trained.{name}", v,
                  "a finite number > 0")

    @property
    def name(self) -> str:
        return "trained"


Method = Union[RandomFeatures, Trained]


@dataclass(frozen=True)
class Rate:
    """A fitted power law error ∝ N^slope: ``slope`` ± ``stderr`` (mean and standard error over seeds).

    per_seed : (S,) each seed's least-squares slope of log error vs log N over ``widths``.
    t : slope / stderr (a one-sided test of "the error decreases" is t < −3).
    """

    slope: float
    stderr: float
    per_seed: np.ndarray
    widths: np.ndarray

    @property
    def t(self) -> float:
        return self.slope / self.stderr if self.stderr > 0 else -math.inf * np.sign(-self.slope)

    def __str__(self) -> str:
        return f"{self.slope:.3f} ± {self.stderr:.3f}"


def fit_rate(widths: Sequence[int], errors: np.ndarray, *, floor: float = 1e-9) -> Rate:
    """Fit errors (S, W) ∝ N^slope per seed over the widths whose median error exceeds ``floor``.

    slope_s = least-squares slope of log e_s(N) on log N; slope = mean_s slope_s, stderr = std_s/√S
    (S ≥ 2), or the regression standard error of the single seed's fit (S = 1).
    """
    n = np.asarray(widths, dtype=np.float64)
    e = np.atleast_2d(np.asarray(errors, dtype=np.float64))
    check(e.shape[1] == len(n), "errors.shape", e.shape, f"(S, {len(n)}) to match the widths")
    keep = np.median(e, axis=0) > floor
    check(int(keep.sum()) >= 2, "fit_rate", f"{int(keep.sum())} widths above the floor {floor:g}",
          "at least 2 widths with error above the floor")
    lx, ly = np.log(n[keep]), np.log(np.maximum(e[:, keep], 1e-300))
    xc = lx - lx.mean()
    slopes = (ly - ly.mean(1, keepdims=True)) @ xc / (xc @ xc)
    if len(slopes) >= 2:
        stderr = float(slopes.std(ddof=1) / math.sqrt(len(slopes)))
    else:
        resid = ly[0] - ly[0].mean() - slopes[0] * xc
        dof = max(len(lx) - 2, 1)
        stderr = float(math.sqrt((resid @ resid) / dof / (xc @ xc))) if len(lx) > 2 else 0.0
    return Rate(float(slopes.mean()), stderr, slopes, n[keep].astype(int))


@dataclass(frozen=True)
class ApproximationErrors:
    """Sup and L² errors of ``method`` on ``target`` at each width, for each seed.

    widths : (W,) hidden widths N.  sup, l2 : (S, W) errors on the evaluation grid (network s of width N is
    drawn from chunk_generator(seed, N), network index s).  n_fit, n_eval : grid sizes (points).
    """

    target: Target
    method: Method
    spec: Architecture
    widths: np.ndarray
    seed: int
    sup: np.ndarray
    l2: np.ndarray
    n_fit: int
    n_eval: int
    wall_time_s: float
    train_loss: Optional[np.ndarray] = field(default=None)

    def rate(self, which: Literal["sup", "l2"] = "sup", *, floor: float = 1e-9) -> Rate:
        check(which in ("sup", "l2"), "which", which, "'sup' or 'l2'")
        return fit_rate(self.widths, getattr(self, which), floor=floor)

    @property
    def n_seeds(self) -> int:
        return self.sup.shape[0]


def uat_spec(d: int, *, activation: Union[str, Activation] = "tanh", sigma_w: float = 10.0,
             sigma_b: float = 10.0, sigma_w1: float = 1.0, width: int = 1) -> Architecture:
    """The one-hidden-layer spec used for approximation: W_i ~ N(0, σ_w² I/d), c_i ~ N(0, σ_b²),
    a_i ~ N(0, σ_w1²/N), b ~ N(0, σ_w1²).

    The first-layer scale must match the target's frequencies: a neuron σ(W·x + c) varies on the length
    scale 1/|W|, so σ_w = 10 resolves sin(5πx); its transition point −c/|W| is Cauchy-distributed with scale
    σ_b/σ_w·√d (centred on the cube).
    """
    act = Activation(activation) if isinstance(activation, str) else activation
    for name, v in (("sigma_w", sigma_w), ("sigma_b", sigma_b), ("sigma_w1", sigma_w1)):
        check(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, name, v, "a finite number > 0")
    layers = (Layer(width=width, weight=Normal(float(sigma_w)), bias=Normal(float(sigma_b))),
              Layer(width=1, weight=Normal(float(sigma_w1)), bias=Normal(float(sigma_w1))))
    return Architecture(d_in=d, layers=layers, activation=act, name="uat")


def default_grid_sizes(d: int) -> tuple[int, int]:
    """(fit, eval) points per axis: d = 1: (1025, 4097); d = 2: (65, 201); d ≥ 3: (17, 33)."""
    return {1: (1025, 4097), 2: (65, 201)}.get(d, (17, 33))


def _features(act: Activation, w: Tensor, c: Tensor, x: Tensor) -> Tensor:
    """H[s, m, i] = σ(W_si·x_m + c_si), float64 (S, M, N)."""
    return act(torch.einsum("md,snd->smn", x, w) + c[:, None, :])


def _errors(predict: Callable[[Tensor], Tensor], f: Target, x_eval: Tensor) -> tuple[Tensor, Tensor]:
    """(sup, L²) over x_eval, blockwise; predict maps (B, d) to (S, B)."""
    sup, sq = None, None
    for s in range(0, x_eval.shape[0], _EVAL_BLOCK):
        xb = x_eval[s:s + _EVAL_BLOCK]
        r = (predict(xb) - f(xb)[None, :]).abs()
        sup = r.max(1).values if sup is None else torch.maximum(sup, r.max(1).values)
        sq = (r * r).sum(1) if sq is None else sq + (r * r).sum(1)
    return sup, torch.sqrt(sq / x_eval.shape[0])


def _random_features(spec: Architecture, nets, f: Target, x_fit: Tensor, method: RandomFeatures):
    w, c = nets.weights[0], nets.biases[0]
    if c is None:
        c = torch.zeros(w.shape[:2], dtype=w.dtype)
    act = spec.activation
    h = _features(act, w, c, x_fit)
    h = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)  # readout bias b
    y = f(x_fit).expand(h.shape[0], -1)
    a_mat, rhs = h, y
    if method.ridge > 0:  # Tikhonov: the augmented system [H; sqrt(λ) I] θ = [y; 0]
        lam = method.ridge * (h * h).sum(1).mean(-1)
        eye = torch.eye(h.shape[-1], dtype=h.dtype).expand(h.shape[0], -1, -1)
        a_mat = torch.cat([h, torch.sqrt(lam)[:, None, None] * eye], dim=1)
        rhs = torch.cat([y, torch.zeros(h.shape[0], h.shape[-1], dtype=h.dtype)], dim=1)
    coef = torch.linalg.lstsq(a_mat, rhs[..., None], rcond=method.rcond, driver="gelsd").solution[..., 0]
    a, b = coef[:, :-1], coef[:, -1]

    def predict(xb: Tensor) -> Tensor:
        return (_features(act, w, c, xb) @ a[..., None])[..., 0] + b[:, None]

    fit_mse = ((h @ coef[..., None])[..., 0] - y).pow(2).mean(1)
    return predict, fit_mse


def _train(spec: Architecture, nets, f: Target, x_fit: Tensor, method: Trained):
    act = spec.activation
    w0 = nets.weights[0].clone()
    c0 = (nets.biases[0] if nets.biases[0] is not None else torch.zeros(w0.shape[:2], dtype=w0.dtype)).clone()
    a0 = nets.weights[1][:, 0, :].clone()
    b0 = (nets.biases[1][:, 0] if nets.biases[1] is not None else torch.zeros(w0.shape[0], dtype=w0.dtype)).clone()
    y = f(x_fit)

    def forward(params, xb):
        w, c, a, b = params
        return (_features(act, w, c, xb) @ a[..., None])[..., 0] + b[:, None]

    if method.optimizer == "adam":
        params = [t.requires_grad_(True) for t in (w0, c0, a0, b0)]
        opt = torch.optim.Adam(params, lr=method.lr)
        gamma = method.lr_decay ** (1.0 / method.steps)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
        for _ in range(method.steps):
            opt.zero_grad(set_to_none=True)
            loss = (forward(params, x_fit) - y).pow(2).mean(1).sum()  # Σ_seeds MSE_s: independent Adams
            loss.backward()
            opt.step()
            sched.step()
        final = [t.detach() for t in params]
    else:
        final_parts: list[list[Tensor]] = [[], [], [], []]
        for s in range(w0.shape[0]):
            params = [t[s:s + 1].clone().requires_grad_(True) for t in (w0, c0, a0, b0)]
            opt = torch.optim.LBFGS(params, lr=method.lr, max_iter=method.steps, history_size=50,
                                    tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")

            def closure(params=params, opt=opt):
                opt.zero_grad(set_to_none=True)
                loss = (forward(params, x_fit) - y).pow(2).mean()
                loss.backward()
                return loss

            opt.step(closure)
            for part, t in zip(final_parts, params):
                part.append(t.detach())
        final = [torch.cat(p) for p in final_parts]
    with torch.no_grad():
        fit_mse = (forward(final, x_fit) - y).pow(2).mean(1)
    return (lambda xb: forward(final, xb)), fit_mse


def approximation_errors(f: Target, widths: Sequence[int], *, method: Method = RandomFeatures(),
                         spec: Optional[Architecture] = None, n_seeds: int = 4, seed: int = 0,
                         fit_points: Optional[int] = None, eval_points: Optional[int] = None,
                         progress: Optional[Callable[[int, int], None]] = None) -> ApproximationErrors:
    """Sup and L² error of width-N networks approximating ``f`` on [−1, 1]^d, for N in ``widths``.

    f : a :class:`Target`.  spec : a one-hidden-layer Architecture with d_in = f.d and d_out = 1 (its width is
    replaced by each N; default :func:`uat_spec`).  method : :class:`RandomFeatures` or :class:`Trained`.
    n_seeds networks per width, from ``chunk_generator(seed, N)`` (all float64).
    fit_points / eval_points : points per axis of the fit and evaluation grids (default
    :func:`default_grid_sizes`). ``progress(done, total)`` is called after each width.
    """
    check(isinstance(f, Target), "target", f, "a Target (nnft.expressivity.targets.target(name, d))")
    spec = uat_spec(f.d) if spec is None else spec
    check(isinstance(spec, Architecture) and spec.depth == 1 and spec.d_out == 1, "spec", spec,
          "a one-hidden-layer Architecture with d_out = 1")
    check(spec.d_in == f.d, "spec.d_in", spec.d_in, f"the target's dimension d = {f.d}")
    check(spec.amplitude is None and not spec.activation.normalized, "spec", str(spec),
          "a plain activation (no neuron amplitude, not gauss)")
    check(isinstance(method, (RandomFeatures, Trained)), "method", method, "RandomFeatures(...) or Trained(...)")
    ws = [int(w) for w in widths] if isinstance(widths, (list, tuple, np.ndarray, range)) else []
    check(len(ws) >= 1 and all(w >= 1 for w in ws) and all(a < b for a, b in zip(ws, ws[1:])), "widths",
          widths, "increasing integers >= 1")
    check(isinstance(n_seeds, int) and n_seeds >= 1, "n_seeds", n_seeds, "an integer >= 1")
    check(isinstance(seed, int) and seed >= 0, "seed", seed, "an integer >= 0")
    nf_default, ne_default = default_grid_sizes(f.d)
    nf, ne = fit_points or nf_default, eval_points or ne_default
    check(isinstance(nf, int) and nf >= 2 and isinstance(ne, int) and ne >= 2, "fit_points/eval_points",
          (nf, ne), "integers >= 2 (points per axis)")
    x_fit, x_eval = cube_grid(f.d, nf), cube_grid(f.d, ne)
    if isinstance(method, RandomFeatures):
        check(x_fit.shape[0] >= ws[-1] + 1, "fit_points", nf,
              f"a fit grid with at least N + 1 = {ws[-1] + 1} points (has {x_fit.shape[0]})")
    t0 = time.perf_counter()
    sup = np.zeros((n_seeds, len(ws)))
    l2 = np.zeros_like(sup)
    loss = np.zeros_like(sup)
    for j, n in enumerate(ws):
        spec_n = spec.with_width(n)
        nets = sample_networks(spec_n, n_seeds, chunk_generator(seed, n), dtype=torch.float64)
        if isinstance(method, RandomFeatures):
            predict, fit_mse = _random_features(spec_n, nets, f, x_fit, method)
        else:
            with torch.enable_grad():
                predict, fit_mse = _train(spec_n, nets, f, x_fit, method)
        with torch.no_grad():
            s, l = _errors(predict, f, x_eval)
        sup[:, j], l2[:, j], loss[:, j] = s.numpy(), l.numpy(), fit_mse.detach().numpy()
        if progress is not None:
            progress(j + 1, len(ws))
    return ApproximationErrors(f, method, spec, np.array(ws), seed, sup, l2, x_fit.shape[0], x_eval.shape[0],
                               time.perf_counter() - t0, train_loss=loss)
