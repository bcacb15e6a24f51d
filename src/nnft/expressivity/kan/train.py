"""Training a KAN on regression data: mean-squared error plus an optional penalty (arXiv:2404.19756, §2.5).

    L(θ) = (1/(B n_L)) Σ_{s ∈ batch} ‖KAN_θ(x_s) − y_s‖² + penalty(model, x_batch)

minimised by Adam (Kingma & Ba, arXiv:1412.6980; torch's fused implementation) or L-BFGS with a
strong-Wolfe line search (each L-BFGS "step" is one ``LBFGS.step`` of up to 20 inner iterations, as
pykan 0.2.8 does; a grid update leaves its curvature history stale, as in pykan). The penalty
hook takes (model, x_batch) and returns a scalar tensor — e.g. the L1 + entropy sparsity penalty of
PHYSICS.md §9 written elsewhere. ``update_grid_every`` re-places the grids on the training inputs
(``KAN.update_grid``) before steps 0, n, 2n, ...
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import numpy as np
import torch

from ...errors import check, fail
from .network import KAN

__all__ = ["fit", "History", "Penalty"]

Tensor = torch.Tensor
Penalty = Callable[[KAN, Tensor], Tensor]
Optimizer = Literal["adam", "lbfgs"]
_LBFGS_MAX_ITER = 20


@dataclass(frozen=True)
class History:
    """What ``fit`` did, step by step.

    train_loss : (n_steps,) mean-squared error on each step's batch, before that step's update.
    penalty : (n_steps,) penalty value per step (zeros without a penalty).
    val_loss : (n_steps,) validation MSE after each step, or None without validation data.
    grid_updates : steps before which the grids were re-placed.
    final_train_loss / final_val_loss : MSE on the full training / validation set after training.
    wall_time_s : seconds spent in ``fit``.
    diverged : True when the loss became non-finite (training stopped there; arrays are shorter).
    """

    train_loss: np.ndarray
    penalty: np.ndarray
    val_loss: Optional[np.ndarray]
    grid_updates: tuple[int, ...]
    final_train_loss: float
    final_val_loss: Optional[float]
    wall_time_s: float
    optimizer: str
    lr: float
    diverged: bool = False

    @property
    def n_steps(self) -> int:
        return int(self.train_loss.shape[0])


def _targets(model: KAN, y, n: int, name: str) -> Tensor:
    if not isinstance(y, Tensor):
        try:
            y = torch.as_tensor(np.asarray(y, dtype=np.float64))
        except (TypeError, ValueError):
            raise fail(name, type(y).__name__, f"a numeric array of shape ({n}, {model.shape[-1]})") from None
    y = y.to(dtype=model.dtype, device=model.layers[0].coef.device)
    if y.ndim == 1 and model.shape[-1] == 1:
        y = y[:, None]
    check(y.ndim == 2 and tuple(y.shape) == (n, model.shape[-1]), f"{name}.shape", tuple(y.shape),
          f"({n}, {model.shape[-1]}): one row per input, shape[-1] = {model.shape[-1]} columns")
    check(bool(torch.isfinite(y).all()), name, "NaN or inf values", "finite numbers")
    return y


def _mse(model: KAN, x: Tensor, y: Tensor, chunk: int = 65536) -> float:
    with torch.no_grad():
        total = sum(float(((model(x[i:i + chunk]) - y[i:i + chunk]) ** 2).sum()) for i in range(0, x.shape[0], chunk))
    return total / (x.shape[0] * y.shape[1])


def fit(model: KAN, x, y, *, steps: int, optimizer: Optimizer = "adam", lr: Optional[float] = None,
        batch_size: Optional[int] = None, penalty: Optional[Penalty] = None, seed: int = 0, x_val=None, y_val=None,
        update_grid_every: Optional[int] = None, progress: Optional[Callable[[float], None]] = None) -> History:
    """Train ``model`` in place on (x, y) and return the :class:`History`.

    Parameters
    ----------
    model : a :class:`KAN` (its parameters are updated in place).
    x : (n, n_0) inputs; y : (n, n_L) targets ((n,) allowed when n_L = 1). NumPy or torch; cast to the
        model's dtype. No NaN (ConfigError naming the argument).
    steps : number of optimiser steps (>= 1).
    optimizer : "adam" (default) or "lbfgs".
    lr : learning rate; default 1e-2 for Adam, 1.0 for L-BFGS.
    batch_size : minibatch size (epochs of a seeded permutation); None = full batch.
    penalty : optional ``penalty(model, x_batch) -> scalar Tensor`` added to the loss.
    seed : seed of the minibatch generator (no global RNG is read).
    x_val, y_val : optional validation set (both or neither).
    update_grid_every : re-place the grids on x every this many steps (None = never).
    progress : optional callback with the fraction done, 0..1.
    """
    check(isinstance(model, KAN), "fit.model", type(model).__name__, "a KAN")
    check(isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) and steps >= 1, "fit.steps", steps,
          "an integer >= 1")
    check(optimizer in ("adam", "lbfgs"), "fit.optimizer", optimizer, "'adam' or 'lbfgs'")
    if lr is None:
        lr = 1e-2 if optimizer == "adam" else 1.0
    check(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0, "fit.lr", lr, "a finite number > 0")
    check(isinstance(seed, (int, np.integer)) and not isinstance(seed, bool), "fit.seed", seed, "an integer")
    check(penalty is None or callable(penalty), "fit.penalty", type(penalty).__name__,
          "None or a callable penalty(model, x_batch) -> scalar Tensor")
    check(progress is None or callable(progress), "fit.progress", type(progress).__name__,
          "None or a callable taking the fraction done")
    xt = model.as_input(x, "x")
    check(bool(torch.isfinite(xt).all()), "x", "inf values", "finite numbers")
    n = xt.shape[0]
    yt = _targets(model, y, n, "y")
    check((x_val is None) == (y_val is None), "fit.x_val/y_val", "only one of them", "both or neither")
    xv = yv = None
    if x_val is not None:
        xv = model.as_input(x_val, "x_val")
        check(bool(torch.isfinite(xv).all()), "x_val", "inf values", "finite numbers")
        yv = _targets(model, y_val, xv.shape[0], "y_val")
    if batch_size is not None:
        check(isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool) and 1 <= batch_size <= n,
              "fit.batch_size", batch_size, f"None or an integer in [1, {n}] (the number of samples)")
    if update_grid_every is not None:
        check(isinstance(update_grid_every, (int, np.integer)) and not isinstance(update_grid_every, bool)
              and update_grid_every >= 1, "fit.update_grid_every", update_grid_every, "None or an integer >= 1")

    t0 = time.perf_counter()
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, fused=True)  # one kernel per step
    else:
        opt = torch.optim.LBFGS(params, lr=lr, max_iter=_LBFGS_MAX_ITER, history_size=10,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-32, tolerance_change=1e-32)
    gen = torch.Generator().manual_seed(int(seed))
    order, cursor = None, n
    train_loss, pen_vals, val_loss, grid_updates = [], [], [], []
    diverged = False
    for step in range(int(steps)):
        if update_grid_every is not None and step % update_grid_every == 0:
            model.update_grid(xt)
            grid_updates.append(step)
        if batch_size is None or batch_size == n:
            xb, yb = xt, yt
        else:
            if cursor + batch_size > n:
                order, cursor = torch.randperm(n, generator=gen).to(xt.device), 0
            idx = order[cursor:cursor + batch_size]
            cursor += batch_size
            xb, yb = xt[idx], yt[idx]
        record: dict[str, float] = {}

        def closure() -> Tensor:
            opt.zero_grad(set_to_none=True)
            mse = ((model(xb) - yb) ** 2).mean()
            loss = mse
            if penalty is not None:
                pen = penalty(model, xb)
                check(isinstance(pen, Tensor) and pen.numel() == 1, "fit.penalty", type(pen).__name__,
                      "a callable returning a scalar Tensor")
                loss = loss + pen.reshape(())
                record.setdefault("penalty", float(pen.detach()))
            record.setdefault("mse", float(mse.detach()))
            loss.backward()
            return loss

        opt.step(closure)
        train_loss.append(record["mse"])
        pen_vals.append(record.get("penalty", 0.0))
        if xv is not None:
            val_loss.append(_mse(model, xv, yv))
        if progress is not None:
            progress((step + 1) / steps)
        if not math.isfinite(record["mse"]) or not math.isfinite(pen_vals[-1]):
            diverged = True
            break
    final_train = _mse(model, xt, yt)
    return History(train_loss=np.asarray(train_loss), penalty=np.asarray(pen_vals),
                   val_loss=np.asarray(val_loss) if xv is not None else None, grid_updates=tuple(grid_updates),
                   final_train_loss=final_train, final_val_loss=_mse(model, xv, yv) if xv is not None else None,
                   wall_time_s=time.perf_counter() - t0, optimizer=optimizer, lr=float(lr),
                   diverged=diverged or not math.isfinite(final_train))
