"""μTransfer (Tensor Programs V, arXiv:2203.03466; PHYSICS.md §8): is the optimal learning rate width-stable?

For each width n and each base learning rate η on a log2 grid, train an MLP for T full-batch steps on a fixed
regression batch (loss L = ½ mean_α (φ(x_α) − y_α)²) and record the final training loss L_T(n, η). The
optimal rate η*(n) comes from a parabola through log L_T at the grid minimum and its two neighbours:

    log2 η* = g_k − h (f_{k+1} − f_{k−1}) / (2 (f_{k+1} − 2 f_k + f_{k−1})),     f = log L_T, grid step h

(the vertex, clamped to [g_{k−1}, g_{k+1}]). Under μP the curves L_T(n, ·) keep their minimum as n grows
(the hyperparameters transfer). Under SP with an O(1) base rate the optimum tracks the largest rate at which
one step moves the output by O(1). Power counting the first step (readout entries ~ n^{-1/2}, hidden
activations Θ(1), confirmed by the SP coordinate check): with SGD the output moves by η n (the NTK grows ∝ n),
so η* ∝ n^{-1}; with Adam (updates of size η per entry) a hidden layer moves its pre-activations by η n and
the readout sums them coherently, so the output moves by η n^{3/2} and η* ∝ n^{-3/2} for L ≥ 2 hidden layers
(∝ n^{-1} for L = 1, where only the readout term η n is left). See :func:`sp_optimum_exponent`.

All learning rates and seeds of one width train together as one batch of R = G·S networks (stacked weights,
batched matrix products); the S initialisations are shared across the G rates (common random numbers, so
the curves are smooth in η). The per-layer multipliers, init stds and rate factors come from
:meth:`Parameterization.layer_scales` / :meth:`~Parameterization.bias_scales`, exactly as in
:func:`nnft.dynamics.parameterize.parameterize` (a test checks the two paths agree step by step).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import check
from ..spec import LayerScales, Parameterization
from .coordcheck import _seeds, regression_task

__all__ = ["TransferSweep", "lr_sweep", "optimal_log2_lr", "BatchedNet", "init_batched", "train_batched",
           "sp_optimum_exponent"]

Tensor = torch.Tensor
_ACT = {"relu": torch.relu, "tanh": torch.tanh, "gelu": torch.nn.functional.gelu}


@dataclass
class BatchedNet:
    """R MLPs as stacked stored parameters: w[l] (R, n_l, n_{l−1}), b[l] (R, 1, n_l) or None, with the
    per-layer :class:`LayerScales` of weights (``ws``) and biases (``bs``)."""

    w: list[Tensor]
    b: list[Optional[Tensor]]
    ws: list[LayerScales]
    bs: list[Optional[LayerScales]]
    activation: str

    def forward(self, x: Tensor) -> list[Tensor]:
        """Pre-activations h^1..h^L and the output, each (R, P, n_l), for inputs x (P, d)."""
        a = x.expand(self.w[0].shape[0], *x.shape)
        outs = []
        for l, (w, b, s, sb) in enumerate(zip(self.w, self.b, self.ws, self.bs)):
            # (w aᵀ)ᵀ rather than a wᵀ: autograd then returns a contiguous (R, n_l, n_{l−1}) gradient for w,
            # which the fused optimizer kernels need (they walk parameter and gradient memory in step)
            h = torch.bmm(w, a.transpose(1, 2)).transpose(1, 2)
            if s.multiplier != 1.0:
                h = h * s.multiplier
            if b is not None:
                h = h + (b if sb.multiplier == 1.0 else b * sb.multiplier)
            outs.append(h)
            a = _ACT[self.activation](h)
        return outs


def init_batched(p: Parameterization, widths: Sequence[int], *, replicas: int, seeds: Sequence[int],
                 std: float, bias_std: float, activation: str, zero_readout: bool = False,
                 dtype: torch.dtype = torch.float32) -> BatchedNet:
    """Stored parameters for ``len(seeds)`` initialisations, each repeated ``replicas`` times (seed-major).

    ``widths`` = (d_in, n_1, ..., n_L, d_out). Weights of seed s are drawn from torch.Generator(s), layer by
    layer (weight, then bias), w ~ N(0, init_std²); bias_std = 0 gives zero biases.
    """
    n_layers = len(widths) - 1
    ws = [p.layer_scales(l, n_layers, widths[l], widths[l + 1], std) for l in range(n_layers)]
    bs = [p.bias_scales(l, n_layers, widths[l + 1], bias_std if bias_std > 0 else 1.0) for l in range(n_layers)]
    per_seed_w: list[list[Tensor]] = [[] for _ in range(n_layers)]
    per_seed_b: list[list[Tensor]] = [[] for _ in range(n_layers)]
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        for l in range(n_layers):
            shape = (widths[l + 1], widths[l])
            zero = zero_readout and l == n_layers - 1
            per_seed_w[l].append(torch.zeros(shape, dtype=dtype) if zero
                                 else torch.randn(shape, generator=g, dtype=dtype) * ws[l].init_std)
            per_seed_b[l].append(torch.randn(widths[l + 1], generator=g, dtype=dtype) * bs[l].init_std
                                 if bias_std > 0 and not zero else torch.zeros(widths[l + 1], dtype=dtype))
    w = [torch.stack(t).repeat_interleave(replicas, dim=0).contiguous() for t in per_seed_w]
    b = [torch.stack(t).repeat_interleave(replicas, dim=0)[:, None, :].contiguous() for t in per_seed_b]
    return BatchedNet(w, b, ws, bs, activation)


def _optimizer(tensors: list[Tensor], factors: list[float], lrs: Sequence[float], optimizer: str, betas, eps):
    """torch.optim over per-replica views: param group (tensor i, replica r) has lr = lrs[r] · factors[i].

    The views t.detach()[r] are leaves sharing storage with the stacked tensors, so a step updates the batch
    in place; Adam is torch's fused kernel where available (one pass over memory; torch >= 2.4 on CPU)."""
    views = [[t.detach()[r] for r in range(t.shape[0])] for t in tensors]
    groups = [{"params": [views[i][r]], "lr": lrs[r] * f} for i, f in enumerate(factors) for r in range(len(lrs))]
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lrs[0]), views
    try:
        return torch.optim.Adam(groups, lr=lrs[0], betas=betas, eps=eps, fused=True), views
    except RuntimeError:  # fused Adam not available for this device / torch version
        return torch.optim.Adam(groups, lr=lrs[0], betas=betas, eps=eps), views


def train_batched(net: BatchedNet, x: Tensor, y: Tensor, lrs: Tensor, *, steps: int,
                  optimizer: Literal["sgd", "adam"], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                  ) -> Tensor:
    """Train every replica r with base rate lrs[r] (per-layer factors from the scales) by torch.optim.SGD /
    Adam; returns the loss trajectory (steps + 1, R) of L_r = ½ mean_α (φ_r(x_α) − y_α)²."""
    tensors = [t for w, b in zip(net.w, net.b) for t in (w, b) if t is not None]
    scales = [s for w, b, sw, sb in zip(net.w, net.b, net.ws, net.bs) for s, t in ((sw, w), (sb, b)) if t is not None]
    factors = [s.sgd_lr if optimizer == "sgd" else s.adam_lr for s in scales]
    opt, views = _optimizer(tensors, factors, [float(v) for v in lrs], optimizer, betas, eps)
    for t in tensors:
        t.requires_grad_(True)
    losses = []
    try:
        for step in range(steps + 1):
            loss = 0.5 * (net.forward(x)[-1] - y).pow(2).mean(dim=(1, 2))
            losses.append(loss.detach())
            if step == steps:
                break
            grads = [g.contiguous() for g in torch.autograd.grad(loss.sum(), tensors)]  # no-op copies here
            for per_replica, g in zip(views, grads):
                for view, gr in zip(per_replica, g):
                    view.grad = gr
            opt.step()
    finally:
        for t in tensors:
            t.requires_grad_(False)
    return torch.stack(losses)


def sp_optimum_exponent(optimizer: Literal["sgd", "adam"], depth: int) -> float:
    """Asymptotic slope of log2 η* against log2 n under SP (module docstring): SGD −1; Adam −3/2 for depth
    L >= 2, −1 for L = 1. μP's is 0."""
    check(optimizer in ("sgd", "adam"), "optimizer", optimizer, "'sgd' or 'adam'")
    check(isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1, "depth", depth, "an integer >= 1")
    return -1.5 if (optimizer == "adam" and depth >= 2) else -1.0


def optimal_log2_lr(log2_lrs: np.ndarray, log_loss: np.ndarray) -> tuple[float, bool]:
    """(log2 η*, at_edge): vertex of the parabola through the grid minimum of ``log_loss`` and its neighbours
    (see the module docstring); at_edge when the minimum sits at the end of the grid or a neighbour diverged."""
    g = np.asarray(log2_lrs, dtype=np.float64)
    f = np.where(np.isfinite(log_loss), log_loss, np.inf)
    check(g.ndim == 1 and g.size >= 3 and f.shape == g.shape, "log2_lrs", g.shape, ">= 3 grid points, one per loss")
    check(bool(np.isfinite(f).any()), "log_loss", "no finite loss", "at least one finite loss")
    k = int(np.argmin(f))
    if k == 0 or k == g.size - 1 or not (np.isfinite(f[k - 1]) and np.isfinite(f[k + 1])):
        return float(g[k]), True
    h = 0.5 * (g[k + 1] - g[k - 1])
    curv = f[k + 1] - 2 * f[k] + f[k - 1]
    shift = 0.0 if curv <= 0 else -h * (f[k + 1] - f[k - 1]) / (2 * curv)
    return float(g[k] + np.clip(shift, -h, h)), False


@dataclass(frozen=True)
class TransferSweep:
    """Final training loss on a (width × log2 LR × seed) grid for one parameterization.

    loss : (W, G, S) training loss at the end of training (geometric mean over the last steps; inf where a run
        diverged).
    """

    parameterization: str
    optimizer: str
    steps: int
    widths: tuple[int, ...]
    log2_lrs: np.ndarray
    loss: np.ndarray
    wall_time_s: float

    def log_loss(self) -> np.ndarray:
        """(W, G) log of the seed-mean final loss (inf where any seed diverged)."""
        return np.log(self.loss.mean(axis=2))

    def optimum(self) -> tuple[np.ndarray, np.ndarray]:
        """(log2 η* per width, at_edge per width)."""
        res = [optimal_log2_lr(self.log2_lrs, row) for row in self.log_loss()]
        return np.array([r[0] for r in res]), np.array([r[1] for r in res])

    def drift(self) -> float:
        """log2 η*(widest) − log2 η*(narrowest)."""
        opt, _ = self.optimum()
        return float(opt[-1] - opt[0])

    def drift_slope(self) -> float:
        """Least-squares slope of log2 η* against log2 width."""
        opt, _ = self.optimum()
        lw = np.log2(np.asarray(self.widths, dtype=np.float64))
        return float(np.polyfit(lw, opt, 1)[0])


def lr_sweep(parameterization: Union[str, Parameterization], *,
             widths: Sequence[int] = (64, 128, 256, 512, 1024, 2048),
             log2_lrs: Sequence[float] = tuple(range(-14, -1)), steps: int = 60,
             optimizer: Literal["sgd", "adam"] = "adam", n_seeds: int = 1, seed: int = 0, depth: int = 2,
             d_in: int = 8, n_points: int = 16, activation: str = "relu", std: float = math.sqrt(2.0),
             bias_std: float = 0.5, base_width: Optional[int] = None, zero_readout: bool = False,
             average_last: Optional[int] = None, data_seed: int = 1234, divergence: float = 1e3,
             progress: Optional[Callable[[float], None]] = None) -> TransferSweep:
    """Loss after ``steps`` steps vs base learning rate 2^g for every width (see the module docstring).

    ``base_width`` defaults to the narrowest width (μP = SP there). The recorded loss of a run is the geometric
    mean of its training loss over the last ``average_last`` steps (default: the last quarter of training),
    which averages out edge-of-stability oscillations; a run counts as diverged (loss inf) when a loss in that
    window is not finite or exceeds ``divergence`` × the loss at initialisation.
    """
    check(isinstance(widths, (list, tuple)) and len(widths) >= 2 and all(
        isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths), "widths", widths,
        ">= 2 integer widths >= 1")
    grid = np.asarray(log2_lrs, dtype=np.float64)
    check(grid.ndim == 1 and grid.size >= 3 and bool(np.all(np.diff(grid) > 0)) and bool(np.all(np.isfinite(grid))),
          "log2_lrs", tuple(log2_lrs), ">= 3 increasing finite numbers")
    check(optimizer in ("sgd", "adam"), "optimizer", optimizer, "'sgd' or 'adam'")
    check(activation in _ACT, "activation", activation, ", ".join(_ACT))
    for value, name in ((steps, "steps"), (n_seeds, "n_seeds"), (depth, "depth"), (d_in, "d_in")):
        check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, value, "an integer >= 1")
    p = Parameterization(parameterization) if isinstance(parameterization, str) else parameterization
    check(isinstance(p, Parameterization), "parameterization", p, "a Parameterization or its name")
    if p.name in ("mup", "mean_field"):
        p = Parameterization(p.name, form=p.form, base_width=min(widths) if base_width is None else base_width)
    k_avg = max(1, steps // 4) if average_last is None else average_last
    check(isinstance(k_avg, int) and 1 <= k_avg <= steps + 1, "average_last", average_last,
          f"None or an integer in [1, steps + 1 = {steps + 1}]")
    x, y = regression_task(n_points, d_in, seed=data_seed)
    seeds = _seeds(seed, n_seeds)
    lrs = torch.tensor(2.0 ** grid, dtype=torch.float64).repeat(n_seeds)  # seed-major: r = s·G + g
    t0 = time.perf_counter()
    losses = []
    for i, n in enumerate(widths):
        net = init_batched(p, (d_in,) + (n,) * depth + (1,), replicas=grid.size, seeds=seeds, std=std,
                           bias_std=bias_std, activation=activation, zero_readout=zero_readout)
        traj = train_batched(net, x, y, lrs, steps=steps, optimizer=optimizer).double()
        tail = traj[-k_avg:]
        bad = ~torch.isfinite(tail).all(dim=0) | (tail.max(dim=0).values > divergence * traj[0])
        final = torch.where(bad, torch.full_like(traj[0], math.inf), tail.clamp_min(1e-300).log().mean(dim=0).exp())
        losses.append(final.view(n_seeds, grid.size).T.numpy())
        if progress is not None:
            progress((i + 1) / len(widths))
    return TransferSweep(str(p), optimizer, steps, tuple(widths), grid, np.stack(losses),
                         time.perf_counter() - t0)
