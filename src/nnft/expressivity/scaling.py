"""The KAN scaling law: test RMSE ∝ G^{−(k+1)} under grid extension (arXiv:2404.19756, §2.3, Fig. 2.3;
PHYSICS.md §9), against an MLP of the same parameter count trained the same way.

Claim (Liu et al., Thm 2.1). For a target that is a composition of C^{k+1} functions matching the KAN
shape, the best order-k spline KAN on G intervals satisfies ‖f − KAN_G‖_{C^m} ≤ C G^{−k−1+m}, so

    test RMSE(G) ∝ G^{−(k+1)}   (∝ G^{−4} for cubic splines; ∝ n_params^{−4} at fixed shape, n_params ∝ G),

until an optimizer/precision floor or the interpolation threshold (n_params ~ n_train). Standard probe:
f(x, y) = exp(sin(πx) + y²) on [−1, 1]², which [2, 1, 1] represents exactly (inner sin(πx) and y², outer
exp). Protocol, as in the paper: train the coarsest grid, then for each larger G extend the grid
(``KAN.extend_grid``: least-squares transfer of every edge to the finer grid) and train again, L-BFGS
(strong-Wolfe line search, 20 inner iterations per step, :func:`~.kan.train.fit`) in float64, ``steps``
steps per stage. As pykan's ``fit`` does, the first ``grid_update_steps`` steps of every stage re-place the
grids on the data every 5 steps (uniform on each layer's input range, ``grid_eps = 1``), so the hidden
node's grid follows its values.

The optimizer floor is located against a reference without an optimizer (:func:`spline_reference`:
least-squares splines of the known components, which follow G^{−4} down to ~1e−8 at G = 100). The fitted
exponent is the least-squares slope of log test RMSE on log G over the *pre-floor range*: the consecutive
stages from G ≥ ``fit_from`` whose test RMSE is within a factor 2 of the reference (approximation-
dominated); its standard error is the regression's. Measured (float64, 1000 training points, 60 L-BFGS
steps per stage): the trained [2, 1, 1] KAN tracks the reference to G ≈ 10–20 and then stalls at a test
RMSE of ~1e−5–1e−4 — the optimizer floor; the interpolation threshold (n_params ≈ n_train) lies far
beyond (G ≈ 330). The MLP baseline ([n_0, H, H, 1], tanh, from scratch
at each size, H chosen so n_params matches each KAN stage) is trained by the same L-BFGS for the same
number of steps per size; its exponent is fitted against n_params over all sizes (MLPs have no floor in
this range: their error decreases slowly everywhere).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import check

__all__ = ["ScalingCurve", "kan_scaling", "mlp_scaling", "spline_reference", "toy_target", "fit_exponent",
           "pre_floor_range", "matching_mlp_width", "mlp_n_params"]

Tensor = torch.Tensor


def toy_target(x: Tensor) -> Tensor:
    """f(x, y) = exp(sin(πx) + y²): (n, 2) → (n, 1)."""
    return torch.exp(torch.sin(math.pi * x[:, 0]) + x[:, 1] ** 2)[:, None]


@dataclass(frozen=True)
class ScalingCurve:
    """Train and test RMSE per stage.

    label : "KAN [2, 1, 1]" or "MLP [2, H, H, 1]".  grids : (S,) G per stage (KAN) or hidden widths H (MLP).
    n_params : (S,) trainable parameters.  train_rmse, test_rmse : (S,).  wall_time_s : total seconds.
    """

    label: str
    grids: np.ndarray
    n_params: np.ndarray
    train_rmse: np.ndarray
    test_rmse: np.ndarray
    wall_time_s: float


def _data(n_train: int, n_test: int, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x_train = torch.rand(n_train, 2, generator=gen, dtype=torch.float64) * 2 - 1
    x_test = torch.rand(n_test, 2, generator=gen, dtype=torch.float64) * 2 - 1
    return x_train, toy_target(x_train), x_test, toy_target(x_test)


def _rmse(model, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float(((model(x) - y) ** 2).mean().sqrt())


def kan_scaling(shape: Sequence[int] = (2, 1, 1), grids: Sequence[int] = (3, 5, 10, 20, 50), *, k: int = 3,
                steps: int = 100, grid_update_steps: int = 20, restarts: int = 4, restart_steps: int = 10,
                n_train: int = 1000, n_test: int = 1000, seed: int = 0,
                progress: Optional[Callable[[float], None]] = None) -> ScalingCurve:
    """Train a KAN on the toy target with grid extension through ``grids`` (module docstring).

    The coarsest stage starts from the best of ``restarts`` initialisations (KAN seeds seed, seed + 1, ...;
    lowest training loss after ``grid_update_steps`` + ``restart_steps`` L-BFGS steps): from a single random
    initialisation L-BFGS falls, for about half the seeds, into a basin at RMSE ≈ 0.5 that no later stage
    leaves."""
    from .kan import KAN, fit

    shape = tuple(int(n) for n in shape)
    check(len(shape) >= 2 and shape[0] == 2 and shape[-1] == 1, "shape", shape, "a KAN shape [2, ..., 1]")
    gl = [int(g) for g in grids]
    check(len(gl) >= 2 and gl[0] >= 1 and all(a < b for a, b in zip(gl, gl[1:])), "grids", grids,
          "at least two increasing integers >= 1")
    for name, v, low in (("steps", steps, 1), ("grid_update_steps", grid_update_steps, 0), ("restarts", restarts, 1),
                         ("restart_steps", restart_steps, 1)):
        check(isinstance(v, int) and not isinstance(v, bool) and v >= low, name, v, f"an integer >= {low}")
    x_train, y_train, x_test, y_test = _data(n_train, n_test, seed)
    t0 = time.perf_counter()

    def stage(model, n_steps: int) -> float:
        if grid_update_steps > 0:  # as pykan's fit: re-place the grids on the data early in every stage
            fit(model, x_train, y_train, steps=grid_update_steps, optimizer="lbfgs", update_grid_every=5)
        return fit(model, x_train, y_train, steps=n_steps, optimizer="lbfgs").final_train_loss

    candidates = []
    for r in range(restarts):
        model = KAN(list(shape), G=gl[0], k=k, seed=seed + r, grid_eps=1.0)
        loss = stage(model, restart_steps)
        candidates.append((loss if math.isfinite(loss) else math.inf, r, model))
    model = min(candidates)[2]
    n_params, train, test = [], [], []
    for i, g in enumerate(gl):
        if i == 0:
            fit(model, x_train, y_train, steps=max(steps - grid_update_steps - restart_steps, 1), optimizer="lbfgs")
        else:
            model.extend_grid(g, x_train)
            stage(model, max(steps - grid_update_steps, 1))
        n_params.append(model.n_params)
        train.append(_rmse(model, x_train, y_train))
        test.append(_rmse(model, x_test, y_test))
        if progress is not None:
            progress((i + 1) / len(gl))
    return ScalingCurve(f"KAN {list(shape)}", np.array(gl), np.array(n_params), np.array(train), np.array(test),
                        time.perf_counter() - t0)


def mlp_n_params(width: int, d_in: int = 2) -> int:
    """Parameters of [d_in, H, H, 1] with biases: H(d_in + 1) + H(H + 1) + H + 1."""
    return width * (d_in + 1) + width * (width + 1) + width + 1


def matching_mlp_width(n_params: int, d_in: int = 2) -> int:
    """The H whose [d_in, H, H, 1] parameter count is closest to ``n_params``."""
    return min(range(1, 512), key=lambda h: abs(mlp_n_params(h, d_in) - n_params))


def mlp_scaling(widths: Sequence[int], *, steps: int = 100, n_train: int = 1000, n_test: int = 1000, seed: int = 0,
                progress: Optional[Callable[[float], None]] = None) -> ScalingCurve:
    """[2, H, H, 1] tanh MLPs (PyTorch's default U(±1/sqrt(fan_in)) init from a local seed, float64), each
    trained from scratch on the toy target by
    L-BFGS with the settings of :func:`~.kan.train.fit` (lr 1, 20 inner iterations, history 10, strong
    Wolfe) for ``steps`` steps."""
    from torch import nn

    x_train, y_train, x_test, y_test = _data(n_train, n_test, seed)
    t0 = time.perf_counter()
    n_params, train, test = [], [], []
    for i, h in enumerate(widths):
        model = nn.Sequential(nn.Linear(2, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh(), nn.Linear(h, 1)).double()
        gen = torch.Generator().manual_seed(seed * 1000 + int(h))
        with torch.no_grad():  # PyTorch's default init, U(±1/sqrt(fan_in)), from a local generator
            for layer in model[::2]:
                bound = 1.0 / math.sqrt(layer.in_features)
                for p in (layer.weight, layer.bias):
                    p.copy_((torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
        opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=20, history_size=10,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-32, tolerance_change=1e-32)

        def closure(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = ((model(x_train) - y_train) ** 2).mean()
            loss.backward()
            return loss

        for _ in range(steps):
            opt.step(closure)
        n_params.append(sum(p.numel() for p in model.parameters()))
        train.append(_rmse(model, x_train, y_train))
        test.append(_rmse(model, x_test, y_test))
        if progress is not None:
            progress((i + 1) / len(widths))
    return ScalingCurve("MLP [2, H, H, 1] (tanh)", np.array(list(widths)), np.array(n_params), np.array(train),
                        np.array(test), time.perf_counter() - t0)


def pre_floor_range(grids: np.ndarray, rmse: np.ndarray, reference: np.ndarray, *, fit_from: int = 5,
                    factor: float = 2.0) -> np.ndarray:
    """Mask of the stages used for the exponent: G ≥ fit_from and test RMSE within ``factor`` of the
    best-approximation reference (:func:`spline_reference`) — approximation-dominated, not yet at the
    optimizer floor — consecutive from the first such stage."""
    ok = (np.asarray(grids) >= fit_from) & (np.asarray(rmse) < factor * np.asarray(reference))
    mask = np.zeros(len(ok), dtype=bool)
    idx = np.flatnonzero(ok)
    if idx.size:
        j = idx[0]
        while j < len(ok) and ok[j]:
            mask[j] = True
            j += 1
    return mask


def spline_reference(grids: Sequence[int], *, k: int = 3, n_test: int = 1000, seed: int = 0) -> np.ndarray:
    """Test RMSE of the [2, 1, 1] KAN whose three edges are the least-squares order-k splines (G uniform
    intervals) of the known components — sin(πx) and y² on [−1, 1], exp(t) on the hidden range [−1, 2] —
    fitted on 2001 / 3001 equispaced points: the approximation error without an optimizer, an upper
    bound on the best [2, 1, 1] error at each G (and on any shape that contains [2, 1, 1])."""
    from .kan import KAN, uniform_grid

    _, _, x_test, y_test = _data(1, n_test, seed)
    t_in = torch.linspace(-1.0, 1.0, 2001, dtype=torch.float64)
    t_out = torch.linspace(-1.0, 2.0, 3001, dtype=torch.float64)[:, None]
    out = []
    for g in grids:
        model = KAN([2, 1, 1], G=int(g), k=k, seed=0)
        inner, outer = model.layers
        with torch.no_grad():
            basis = inner.basis(torch.stack([t_in, t_in], 1))
            for i, fn in enumerate((torch.sin(math.pi * t_in), t_in ** 2)):
                inner.coef[i, 0] = torch.linalg.lstsq(basis[:, i, :], fn[:, None]).solution[:, 0]
            outer.set_grid(uniform_grid(int(g), k, -1.0, 2.0, n=1))
            outer.coef[0, 0] = torch.linalg.lstsq(outer.basis(t_out)[:, 0, :], torch.exp(t_out)).solution[:, 0]
            for layer in (inner, outer):
                layer.scale_base.zero_()
                layer.scale_sp.fill_(1.0)
        out.append(_rmse(model, x_test, y_test))
    return np.array(out)


def fit_exponent(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of log y on log x and its standard error (0 with two points)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    check(len(lx) >= 2, "fit_exponent", f"{len(lx)} points", "at least 2 points in the fit range")
    xc = lx - lx.mean()
    slope = float((xc * (ly - ly.mean())).sum() / (xc @ xc))
    if len(lx) <= 2:
        return slope, 0.0
    resid = ly - ly.mean() - slope * xc
    return slope, float(math.sqrt((resid @ resid) / (len(lx) - 2) / (xc @ xc)))
