"""Training KANs (nnft.expressivity.kan.train.fit; arXiv:2404.19756 §2.5, PHYSICS.md §9).

Checks: Adam and L-BFGS reduce the MSE on f(x, y) = exp(sin(πx) + y²) by stated factors with fixed
seeds; minibatch training is a deterministic function of the seed; the penalty hook enters the loss;
update_grid_every re-places the grids; grid extension between stages continues from the coarse fit;
bad input (NaN, shapes, options) raises ConfigError naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nnft import ConfigError
from nnft.expressivity.kan import KAN, History, fit

F64 = torch.float64


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=F64) * 2 - 1
    return x, torch.exp(torch.sin(math.pi * x[:, 0]) + x[:, 1] ** 2)[:, None]


def test_adam_reduces_loss() -> None:
    x, y = _data(300, 0)
    xv, yv = _data(300, 1)
    model = KAN([2, 3, 1], G=5, k=3, seed=0)
    hist = fit(model, x, y, steps=150, lr=2e-2, x_val=xv, y_val=yv)
    assert isinstance(hist, History) and hist.n_steps == 150 and not hist.diverged
    assert hist.final_train_loss < 0.05 * hist.train_loss[0]
    assert hist.val_loss is not None and hist.val_loss.shape == (150,)
    assert hist.final_val_loss < 0.05 * hist.train_loss[0]
    assert np.all(hist.penalty == 0)


def test_lbfgs_then_grid_extension() -> None:
    x, y = _data(300, 0)
    model = KAN([2, 3, 1], G=5, k=3, seed=0)
    coarse = fit(model, x, y, steps=8, optimizer="lbfgs", update_grid_every=2)
    assert coarse.final_train_loss < 1e-2 * coarse.train_loss[0]
    # the KAN workflow: grids on the data (so every layer's inputs lie in [a, b]), then G → 2G (nested)
    model.update_grid(x)
    before = float(((model(x) - y) ** 2).mean().detach())
    residuals = model.extend_grid(10, x)
    assert max(residuals) < 1e-10
    fine = fit(model, x, y, steps=8, optimizer="lbfgs")
    assert abs(fine.train_loss[0] - before) < 1e-8 * before  # the extended model starts where the coarse ended
    assert fine.final_train_loss < 0.5 * coarse.final_train_loss


def test_minibatch_seed_determinism() -> None:
    x, y = _data(200, 3)
    runs = []
    for seed in (0, 0, 1):
        model = KAN([2, 2, 1], G=3, k=3, seed=0)
        runs.append((fit(model, x, y, steps=20, batch_size=32, seed=seed), model))
    assert np.array_equal(runs[0][0].train_loss, runs[1][0].train_loss)
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1].parameters(), runs[1][1].parameters()))
    assert not np.array_equal(runs[0][0].train_loss, runs[2][0].train_loss)


def test_penalty_hook_and_grid_updates() -> None:
    x, y = _data(200, 4)
    calls = []

    def l1(model: KAN, xb: torch.Tensor) -> torch.Tensor:
        calls.append(xb.shape[0])
        return 0.3 * sum(layer.coef.abs().sum() for layer in model.layers)

    free, reg = KAN([2, 2, 1], G=5, seed=0), KAN([2, 2, 1], G=5, seed=0)
    fit(free, x, y, steps=40, lr=2e-2, update_grid_every=10)
    hist = fit(reg, x, y, steps=40, lr=2e-2, penalty=l1, update_grid_every=10)
    assert calls == [200] * 40 and np.all(hist.penalty > 0)
    assert hist.grid_updates == (0, 10, 20, 30) and not reg.layers[0].uniform
    size = lambda m: float(sum(layer.coef.detach().abs().sum() for layer in m.layers))  # noqa: E731
    assert size(reg) < 0.7 * size(free)  # measured 0.48


def test_float32_training() -> None:
    x, y = _data(200, 5)
    model = KAN([2, 2, 1], G=5, seed=0, dtype=torch.float32)
    hist = fit(model, x.numpy(), y.numpy()[:, 0], steps=60, lr=2e-2)  # NumPy input, 1-D targets
    assert model.dtype == torch.float32 and hist.final_train_loss < 0.2 * hist.train_loss[0]


def test_bad_input_raises_config_error() -> None:
    x, y = _data(20, 0)
    model = KAN([2, 2, 1], seed=0)
    x_nan, y_nan = x.clone(), y.clone()
    x_nan[3, 1] = float("nan")
    y_nan[5, 0] = float("nan")
    cases = [
        (dict(x=x_nan), "x: got 'NaN values'"),
        (dict(y=y_nan), "y: got 'NaN or inf values'"),
        (dict(y=y[:10]), r"y.shape: got \(10, 1\)"),
        (dict(x=x[:, :1]), r"x.shape: got \(20, 1\)"),
        (dict(steps=0), "fit.steps"),
        (dict(optimizer="sgd"), "fit.optimizer"),
        (dict(lr=-1.0), "fit.lr"),
        (dict(batch_size=21), "fit.batch_size"),
        (dict(x_val=x), "fit.x_val/y_val"),
        (dict(update_grid_every=0), "fit.update_grid_every"),
        (dict(penalty=lambda m, xb: torch.ones(2)), "fit.penalty"),
    ]
    for change, pattern in cases:
        args = dict(x=x, y=y, steps=2)
        args.update(change)
        with pytest.raises(ConfigError, match=pattern):
            fit(model, args.pop("x"), args.pop("y"), **args)
