"""Coordinate check (Tensor Programs V, arXiv:2203.03466 §D.1; PHYSICS.md §8): how big each layer's
coordinates are, and how much they move, as a function of width.

For widths n on a geometric grid, fixed base hyperparameters (learning rate, σ_W, σ_b, base width) and a
fixed regression batch X, train T steps of full-batch SGD or Adam on L = (1/2|X|) Σ_α (φ(x_α) − y_α)² and
record, for every ``nn.Linear`` output h^l (pre-activations of the hidden layers, then the network output):

    size_t^l = mean_{α, i} |h^l_i(x_α; θ_t)|,     delta_t^l = mean_{α, i} |h^l_i(x_α; θ_t) − h^l_i(x_α; θ_0)|,

averaged over seeds. The log–log slope of delta_t^l against n is −r in Yang–Hu's notation for the hidden
layers (arXiv:2011.14522 Thm 3.8: feature updates are Θ(n^{−r})):

    * μP and mean field (r = 0): flat, slope 0 for every layer and the output;
    * NTK parameterization (r = ½): hidden-layer updates ∝ n^{−1/2}, the output update Θ(1);
    * SP with an O(1) learning rate (r < 0): updates grow with n (after one SGD step the last hidden layer
      moves ∝ n^{1/2} and the output ∝ n; later steps blow up further).

The models are built by a caller-supplied ``model_fn(width)`` (default: :func:`mlp_model`) and parameterized
with :func:`nnft.dynamics.parameterize.parameterize`, so the same check runs on a user's own ``nn.Module``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

from ..errors import check
from ..spec import Parameterization
from .parameterize import describe, param_groups, parameterize

__all__ = ["mlp_model", "regression_task", "train_record", "CoordCheck", "Slopes", "coord_check", "loglog_slope",
           "ACTIVATIONS", "expected_delta_slopes"]

Tensor = torch.Tensor
Optimizer = Literal["sgd", "adam"]
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mlp_model(d_in: int, width: int, depth: int = 2, d_out: int = 1, activation: str = "relu",
              bias: bool = True) -> nn.Sequential:
    """An MLP Linear(d_in, n), σ, [Linear(n, n), σ] × (depth − 1), Linear(n, d_out) with *uninitialised*
    weights (``torch.nn.utils.skip_init``: no global-RNG draw); initialise it with :func:`parameterize`."""
    for value, name in ((d_in, "d_in"), (width, "width"), (depth, "depth"), (d_out, "d_out")):
        check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, value, "an integer >= 1")
    check(activation in ACTIVATIONS, "activation", activation, ", ".join(ACTIVATIONS))

    def linear(a: int, b: int) -> nn.Linear:
        return skip_init(nn.Linear, a, b, bias=bias)

    mods: list[nn.Module] = [linear(d_in, width), ACTIVATIONS[activation]()]
    for _ in range(depth - 1):
        mods += [linear(width, width), ACTIVATIONS[activation]()]
    mods.append(linear(width, d_out))
    return nn.Sequential(*mods)


def regression_task(n_points: int, d_in: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed synthetic regression batch: x ~ N(0, I_d), y = sin(2 u·x) + ½ tanh(3 v·x), standardised.

    u, v are random unit vectors; the same ``seed`` gives the same (x, y) (float32, shapes (P, d), (P, 1)).
    """
    for value, name in ((n_points, "n_points"), (d_in, "d_in")):
        check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, value, "an integer >= 1")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n_points, d_in, generator=g, dtype=torch.float64)
    u, v = torch.randn(2, d_in, generator=g, dtype=torch.float64)
    y = torch.sin(2 * x @ (u / u.norm())) + 0.5 * torch.tanh(3 * x @ (v / v.norm()))
    y = (y - y.mean()) / (y.std() if n_points > 1 else 1.0)
    return x.float(), y.float()[:, None]


def train_record(model: nn.Module, x: Tensor, y: Tensor, *, steps: int, lr: float, optimizer: Optimizer,
                 record: Sequence[nn.Module]) -> tuple[list[list[Tensor]], list[float]]:
    """Train ``steps`` full-batch steps of L = ½ mean (φ(x) − y)² with the model's per-layer rates and return
    (outputs[t][k] of ``record[k]`` on x after t steps, t = 0..steps; the loss at each t)."""
    check(isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0, "steps", steps, "an integer >= 0")
    groups = param_groups(model, lr, optimizer)
    opt = torch.optim.SGD(groups, lr=lr) if optimizer == "sgd" else torch.optim.Adam(groups, lr=lr)
    captured: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: captured.append(out.detach())) for m in record]
    outs, losses = [], []
    try:
        for t in range(steps + 1):
            captured.clear()
            loss = 0.5 * (model(x) - y).pow(2).mean()
            outs.append(list(captured))
            losses.append(float(loss.detach()))
            if t < steps:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        for h in hooks:
            h.remove()
    return outs, losses


def loglog_slope(widths: Sequence[float], values: np.ndarray) -> np.ndarray:
    """Least-squares slope of log(values) against log(widths); ``values`` (W, ...) → slopes (...)."""
    lw = np.log(np.asarray(widths, dtype=np.float64))
    lv = np.log(np.asarray(values, dtype=np.float64))
    lw = (lw - lw.mean()).reshape((-1,) + (1,) * (lv.ndim - 1))
    return ((lv - lv.mean(axis=0)) * lw).sum(axis=0) / (lw ** 2).sum()


@dataclass(frozen=True)
class Slopes:
    """Per-layer log–log slope vs width of the seed-averaged statistic, with its standard error from the
    seed-to-seed scatter of per-seed slopes (NaN with one seed)."""

    layers: tuple[str, ...]
    slope: np.ndarray
    stderr: np.ndarray


@dataclass(frozen=True)
class CoordCheck:
    """Coordinate sizes of one parameterization across widths.

    size, delta : (W, S, T+1, K) mean |h_t| and mean |h_t − h_0| per width, seed, step and recorded layer.
    loss : (W, S, T+1) training loss.  layers : K layer labels (hidden pre-activations h1.., then "output").
    """

    parameterization: str
    optimizer: str
    lr: float
    steps: int
    widths: tuple[int, ...]
    layers: tuple[str, ...]
    size: np.ndarray
    delta: np.ndarray
    loss: np.ndarray
    wall_time_s: float

    def mean(self, what: Literal["size", "delta"] = "delta", step: int = -1) -> np.ndarray:
        """(W, K) seed average of ``what`` after ``step`` steps (default: the last)."""
        return getattr(self, what)[:, :, step, :].mean(axis=1)

    def slopes(self, what: Literal["size", "delta"] = "delta", step: int = -1) -> Slopes:
        data = getattr(self, what)[:, :, step, :]  # (W, S, K)
        slope = loglog_slope(self.widths, data.mean(axis=1))
        per_seed = loglog_slope(self.widths, data)  # (S, K)
        s = per_seed.shape[0]
        err = per_seed.std(axis=0, ddof=1) / math.sqrt(s) if s > 1 else np.full(slope.shape, np.nan)
        return Slopes(self.layers, slope, err)


def expected_delta_slopes(name: str, n_layers: int) -> Optional[np.ndarray]:
    """Asymptotic slopes of delta (hidden layers, then output) after SGD steps; None where the theory gives
    no single number (SP with O(1) LR grows step by step)."""
    p = Parameterization(name)
    if p.name == "standard":
        return None
    r = p.r
    return np.array([-r] * (n_layers - 1) + [0.0])


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def coord_check(parameterization: Union[str, Parameterization], *, widths: Sequence[int] = (64, 128, 256, 512, 1024),
                steps: int = 3, optimizer: Optimizer = "sgd", lr: float = 0.1, n_seeds: int = 3, seed: int = 0,
                depth: int = 2, d_in: int = 8, n_points: int = 64, activation: str = "relu",
                std: float = math.sqrt(2.0), bias_std: float = 0.5, base_width: Optional[int] = None,
                zero_readout: bool = False,
                model_fn: Optional[Callable[[int], nn.Module]] = None, data_seed: int = 1234,
                progress: Optional[Callable[[float], None]] = None) -> CoordCheck:
    """Run the coordinate check of PHYSICS.md §8 for one parameterization (see the module docstring).

    ``base_width`` defaults to the smallest width (μP and mean field then coincide with SP / NTK there);
    ``model_fn(width)`` builds the (unparameterized) model, default ``mlp_model(d_in, width, depth, 1,
    activation)``. Seeds: the k-th replicate of every width uses the k-th child of SeedSequence(seed); the
    data come from ``data_seed`` (separate stream).
    """
    check(isinstance(widths, (list, tuple)) and len(widths) >= 2 and all(
        isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths), "widths", widths,
        ">= 2 integer widths >= 1")
    check(optimizer in ("sgd", "adam"), "optimizer", optimizer, "'sgd' or 'adam'")
    check(isinstance(n_seeds, int) and not isinstance(n_seeds, bool) and n_seeds >= 1, "n_seeds", n_seeds,
          "an integer >= 1")
    p = Parameterization(parameterization) if isinstance(parameterization, str) else parameterization
    check(isinstance(p, Parameterization), "parameterization", p, "a Parameterization or its name")
    base = min(widths) if base_width is None else base_width
    build = model_fn if model_fn is not None else (lambda n: mlp_model(d_in, n, depth, 1, activation))
    x, y = regression_task(n_points, d_in, seed=data_seed)
    t0 = time.perf_counter()
    sizes, deltas, losses, layers = [], [], [], ()
    for wi, width in enumerate(widths):
        ws, wd, wl = [], [], []
        for si, s in enumerate(_seeds(seed, n_seeds)):
            model = parameterize(build(width), p, generator=torch.Generator().manual_seed(s), base_width=base,
                                 std=std, bias_std=bias_std, zero_readout=zero_readout)
            info = describe(model)
            mods = dict(model.named_modules())
            outs, loss = train_record(model, x, y, steps=steps, lr=lr, optimizer=optimizer,
                                      record=[mods[r.name] for r in info])
            layers = tuple([f"h{k + 1}" for k in range(len(info) - 1)] + ["output"])
            h0 = outs[0]
            ws.append([[float(h.double().abs().mean()) for h in ht] for ht in outs])
            wd.append([[float((h - g).double().abs().mean()) for h, g in zip(ht, h0)] for ht in outs])
            wl.append(loss)
            if progress is not None:
                progress((wi * n_seeds + si + 1) / (len(widths) * n_seeds))
        sizes.append(ws)
        deltas.append(wd)
        losses.append(wl)
    return CoordCheck(parameterization=str(p), optimizer=optimizer, lr=float(lr), steps=steps, widths=tuple(widths),
                      layers=layers, size=np.array(sizes), delta=np.array(deltas), loss=np.array(losses),
                      wall_time_s=time.perf_counter() - t0)
