"""Train ensembles of MLPs from a spec, vectorized over networks (PHYSICS.md §7–8).

Loss (the convention of :mod:`nnft.dynamics.predict`, PHYSICS.md §7), per network, scalar output:

    L(θ) = (1/|D|) Σ_{α∈D} ½ (φ_θ(x_α) − y_α)²

Updates of a stored parameter θ_i of layer l (:mod:`.batched_mlp` for the parameterization's multipliers):

    gd / sgd:  θ_i ← θ_i − η λ_i ∂L_B/∂θ_i              λ_i = the layer's SGD factor (PHYSICS.md §8 table)
    adam:      θ_i ← θ_i − η ε_i m̂_i / (sqrt(v̂_i) + eps)  ε_i = the layer's Adam factor; m̂, v̂ bias-corrected
               moments with (β1, β2) (Kingma & Ba, arXiv:1412.6980)

L_B is L on a minibatch B (``batch_size``) or on all of D (``gd``, or ``batch_size=None``). Gradient descent
with the NTK as defined in :mod:`.batched_mlp` gives, linearized, φ_{k+1}(X) − Y = (I − ηΘ/|D|)(φ_k(X) − Y):
the discrete frozen-NTK dynamics of PHYSICS.md §7.

Randomness (all explicit, STYLE.md habit 4):
  * **init**: network i is network i mod C of chunk i // C of :func:`nnft.ensemble.sampling.sample_networks`
    with ``chunk_generator(seed, chunk)`` (C = ``init_chunk``), rescaled into the parameterization's stored
    parameters: stored = init_std · (unit-scale draw), effective weight = multiplier · stored. In the standard
    and NTK parameterizations the trained ensemble at step 0 is therefore exactly the ensemble that
    ``nnft.measure`` samples with ``chunk_size=C`` (Normal densities). Network i's init never depends on
    ``n_networks`` or on ``network_batch`` (how many networks are trained at once).
  * **minibatches**: epoch e's order of the training set is argsort of a SplitMix64 hash of
    (data_seed, stream, e, α); one epoch is |D| // batch_size steps (the remainder is dropped). With
    ``shuffle="shared"`` every network sees the same batches (stream 0), with ``"per_network"`` network i
    has stream i + 1. Both are pure functions of their indices, hence independent of ``network_batch``.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal, Optional, Sequence

import numpy as np
import torch

from ..errors import check, fail
from ..spec import Architecture
from ..spec._density import density_std
from ..theory.kernels import as_inputs
from .batched_mlp import BatchedMLP, check_trainable, layer_rates

__all__ = ["TrainConfig", "TrainResult", "train", "init_networks", "minibatch_indices"]

Tensor = torch.Tensor
Progress = Optional[Callable[[int, int], None]]  # progress(network-steps done, total)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train an ensemble (see the module docstring for the formulas and the random streams).

    steps : number of parameter updates; lr : the base learning rate η (per-layer factors come from the
    spec's parameterization); optimizer : "gd" (full batch), "sgd" (minibatches of ``batch_size``) or
    "adam"; n_networks, seed : the ensemble; data_seed : minibatch order; network_batch : networks trained
    at once (memory and speed only, never the result; default all); init_chunk : the init chunk size C
    (part of the result's identity, as ``EnsembleConfig.chunk_size``); record_kernels : empirical NTK and
    feature kernels at the probe inputs at the start and the end; device : a torch device; threads : torch
    intra-op threads while training (restored afterwards; ``torch.set_num_threads`` is process-wide, so
    other torch work running concurrently in the process sees it too), None leaves torch's setting. Small
    networks train fastest with ``threads=1``: the ensemble is already vectorized, and on a busy machine
    intra-op threads of sub-millisecond ops mostly wait for each other (measured 15× slower at 2 threads
    under load).
    """

    steps: int
    lr: float
    optimizer: Literal["gd", "sgd", "adam"] = "gd"
    batch_size: Optional[int] = None
    shuffle: Literal["shared", "per_network"] = "shared"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    n_networks: int = 1
    seed: int = 0
    data_seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    network_batch: Optional[int] = None
    init_chunk: int = 16
    record_kernels: bool = True
    device: str = "cpu"
    threads: Optional[int] = None

    def __post_init__(self) -> None:
        def integer(name: str, v, low: int) -> None:
            check(isinstance(v, int) and not isinstance(v, bool) and v >= low, f"TrainConfig.{name}", v,
                  f"an integer >= {low}")

        integer("steps", self.steps, 0)
        integer("n_networks", self.n_networks, 1)
        integer("seed", self.seed, 0)
        integer("data_seed", self.data_seed, 0)
        integer("init_chunk", self.init_chunk, 1)
        if self.batch_size is not None:
            integer("batch_size", self.batch_size, 1)
        if self.network_batch is not None:
            integer("network_batch", self.network_batch, 1)
        if self.threads is not None:
            integer("threads", self.threads, 1)
        check(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0, "TrainConfig.lr",
              self.lr, "a finite number > 0")
        check(self.optimizer in ("gd", "sgd", "adam"), "TrainConfig.optimizer", self.optimizer, "gd, sgd or adam")
        check(not (self.optimizer == "gd" and self.batch_size is not None), "TrainConfig.batch_size",
              self.batch_size, "None with optimizer 'gd' (full batch; use 'sgd' for minibatches)")
        check(self.shuffle in ("shared", "per_network"), "TrainConfig.shuffle", self.shuffle,
              "'shared' or 'per_network'")
        b1, b2 = self.betas if isinstance(self.betas, (tuple, list)) and len(self.betas) == 2 else (-1, -1)
        check(0 <= b1 < 1 and 0 <= b2 < 1, "TrainConfig.betas", self.betas, "two numbers in [0, 1)")
        check(isinstance(self.eps, (int, float)) and self.eps > 0, "TrainConfig.eps", self.eps, "a number > 0")
        check(self.dtype in ("float32", "float64"), "TrainConfig.dtype", self.dtype, "'float32' or 'float64'")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise fail("TrainConfig.device", self.device, "a torch device ('cpu', 'cuda', 'cuda:0', ...)") from None

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float32 if self.dtype == "float32" else torch.float64


@dataclass(frozen=True, eq=False)
class TrainResult:
    """History of a trained ensemble; all tensors float64 on the CPU.

    loss : (n_networks, steps + 1) full-batch training loss before each update (the last: after the last).
    record_steps : the steps at which predictions were stored (always 0 and ``steps``).
    train_predictions : (R, n_networks, |D|) φ at the training inputs at ``record_steps``.
    test_predictions : (R, n_networks, M_test) at ``x_test``, or None.
    ntk_initial, ntk_final : (n_networks, P, P) empirical NTK at ``probe`` (rates λ = SGD factors), or None.
    features_initial, features_final : one (n_networks, P, P) feature kernel Φ^(l) per hidden layer.
    """

    spec: Architecture
    config: TrainConfig
    x_train: Tensor
    y_train: Tensor
    x_test: Optional[Tensor]
    probe: Optional[Tensor]
    loss: Tensor
    record_steps: tuple[int, ...]
    train_predictions: Tensor
    test_predictions: Optional[Tensor]
    ntk_initial: Optional[Tensor]
    ntk_final: Optional[Tensor]
    features_initial: tuple[Tensor, ...] = field(default_factory=tuple)
    features_final: tuple[Tensor, ...] = field(default_factory=tuple)
    wall_time_s: float = 0.0

    @property
    def final_loss(self) -> Tensor:
        return self.loss[:, -1]

    def ntk_movement(self) -> Tensor:
        """‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F per network (n_networks,)."""
        check(self.ntk_initial is not None, "TrainResult.ntk_movement", "no recorded NTK",
              "a result trained with record_kernels=True")
        return _relative_change(self.ntk_initial, self.ntk_final)

    def feature_movement(self) -> Tensor:
        """‖Φ_T − Φ_0‖_F / ‖Φ_0‖_F per hidden layer and network (L, n_networks)."""
        check(bool(self.features_initial), "TrainResult.feature_movement", "no recorded feature kernels",
              "a result trained with record_kernels=True")
        return torch.stack([_relative_change(a, b) for a, b in zip(self.features_initial, self.features_final)])

    def meta(self) -> dict:
        return {"kind": "training", "architecture": self.spec.to_config(), "training": asdict(self.config),
                "seed": self.config.seed, "record_steps": list(self.record_steps), "wall_time_s": self.wall_time_s}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"x_train": self.x_train.numpy(), "y_train": self.y_train.numpy(), "loss": self.loss.numpy(),
               "train_predictions": self.train_predictions.numpy()}
        if self.x_test is not None:
            out["x_test"] = self.x_test.numpy()
            out["test_predictions"] = self.test_predictions.numpy()
        if self.ntk_initial is not None:
            out["probe"] = self.probe.numpy()
            out["ntk_initial"], out["ntk_final"] = self.ntk_initial.numpy(), self.ntk_final.numpy()
            for l, (a, b) in enumerate(zip(self.features_initial, self.features_final)):
                out[f"features{l}_initial"], out[f"features{l}_final"] = a.numpy(), b.numpy()
        return out


def _relative_change(a: Tensor, b: Tensor) -> Tensor:
    return torch.linalg.matrix_norm(b - a) / torch.linalg.matrix_norm(a).clamp_min(1e-300)


# ------------------------------------------------------------------------------------------------------
# Initialization
# ------------------------------------------------------------------------------------------------------

def init_networks(spec: Architecture, start: int, stop: int, *, seed: int, init_chunk: int = 16,
                  dtype: torch.dtype = torch.float32, device: str = "cpu") -> BatchedMLP:
    """Networks start..stop−1 of the ensemble (see the module docstring), as stored parameters."""
    from ..ensemble.sampling import chunk_generator, sample_networks

    check_trainable(spec)
    check(0 <= start < stop, "networks", (start, stop), "0 <= start < stop")
    rates = layer_rates(spec)
    n_layers = len(spec.layers)
    ws: list[list[Tensor]] = [[] for _ in range(n_layers)]
    bs: list[list[Tensor]] = [[] for _ in range(n_layers)]
    for c in range(start // init_chunk, (stop - 1) // init_chunk + 1):
        nets = sample_networks(spec, init_chunk, chunk_generator(seed, c), dtype=torch.float64)
        lo, hi = max(start - c * init_chunk, 0), min(stop - c * init_chunk, init_chunk)
        for l, (layer, fan_in, r) in enumerate(zip(spec.layers, spec.fan_ins, rates)):
            unit = nets.weights[l][lo:hi] / (density_std(layer.weight, fan_in) * layer.weight_scale(fan_in))
            ws[l].append(unit * r.init_w)
            if r.multiplier_b != 0.0:
                bs[l].append(nets.biases[l][lo:hi] / math.sqrt(layer.bias_var) * r.init_b)
    weights = [torch.cat(w).to(device=device, dtype=dtype) for w in ws]
    biases = [torch.cat(b).to(device=device, dtype=dtype) if b else None for b in bs]
    return BatchedMLP(spec, weights, biases, rates)


# ------------------------------------------------------------------------------------------------------
# Minibatches: counter-based shuffles
# ------------------------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer on a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def minibatch_indices(data_seed: int, streams: Sequence[int], step: int, n_data: int, batch_size: int) -> np.ndarray:
    """Training-set indices of minibatch ``step`` for each stream: (len(streams), batch_size).

    Epoch e = step // (n_data // batch_size) orders the data by argsort of hash(data_seed, stream, e, α).
    """
    per_epoch = n_data // batch_size
    epoch, slot = divmod(step, per_epoch)
    with np.errstate(over="ignore"):
        key = _mix64(np.full(1, data_seed, dtype=np.uint64) + _GOLDEN)
        key = _mix64(key + (np.asarray(streams, dtype=np.uint64) + np.uint64(1)) * _GOLDEN)
        key = _mix64(key + np.uint64(epoch + 1) * _GOLDEN)
        h = _mix64(key[:, None] + (np.arange(n_data, dtype=np.uint64)[None, :] + np.uint64(1)) * _GOLDEN)
    order = np.argsort(h, axis=1, kind="stable")
    return order[:, slot * batch_size:(slot + 1) * batch_size]


# ------------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------------

def _targets(y, n: int) -> Tensor:
    try:
        t = torch.as_tensor(np.asarray(y, dtype=np.float64) if not isinstance(y, Tensor) else y, dtype=torch.float64)
    except (TypeError, ValueError):
        raise fail("y_train", type(y).__name__, "a numeric array of shape (|D|,) or (|D|, 1)") from None
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    check(t.ndim == 1 and t.shape[0] == n, "y_train.shape", tuple(t.shape), f"({n},) to match x_train")
    check(bool(torch.isfinite(t).all()), "y_train", "non-finite values (NaN or inf)", "finite numbers")
    return t


def _variances(spec: Architecture, x: Optional[Tensor], device) -> Optional[list[Tensor]]:
    """Gauss-net's pre-activation variances q_l(x) (the spec's infinite-width values), else None."""
    if x is None or not spec.activation.normalized:
        return None
    from ..theory.kernels import preactivation_variances

    return [q.to(device) for q in preactivation_variances(spec, x)]


def _gather_q(q: Optional[list[Tensor]], idx: Tensor) -> Optional[list[Tensor]]:
    return None if q is None else [v[idx] for v in q]


@dataclass
class _Adam:
    betas: tuple[float, float]
    eps: float
    m: list[Tensor] = field(default_factory=list)
    v: list[Tensor] = field(default_factory=list)
    t: int = 0

    def step(self, params, grads, lr: float) -> None:
        if not self.m:
            self.m = [torch.zeros_like(p) for p, _, _ in params]
            self.v = [torch.zeros_like(p) for p, _, _ in params]
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for (p, _, factor), g, m, v in zip(params, grads, self.m, self.v):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m / c1, (v / c2).sqrt_().add_(self.eps), value=-lr * factor)


@contextmanager
def _intra_op_threads(n: Optional[int]):
    """torch.set_num_threads(n) for the block, restored afterwards (None: no change)."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@torch.no_grad()
def train(spec: Architecture, x_train, y_train, config: TrainConfig, *, x_test=None, probe=None,
          record_steps: Optional[Sequence[int]] = None, progress: Progress = None) -> TrainResult:
    """Train ``config.n_networks`` networks of ``spec`` on (x_train, y_train) and record the history.

    x_train : (|D|, d); y_train : (|D|,); x_test : (M, d) inputs at which to record predictions;
    probe : (P, d) inputs of the recorded NTK and feature kernels (default x_train); record_steps : steps at
    which to record predictions (0 and ``steps`` are always included).
    """
    check(isinstance(config, TrainConfig), "config", type(config).__name__, "a TrainConfig")
    check_trainable(spec)
    xtr = as_inputs(x_train, spec.d_in, "x_train")
    ytr = _targets(y_train, xtr.shape[0])
    xte = None if x_test is None else as_inputs(x_test, spec.d_in, "x_test")
    xpr = (xtr if probe is None else as_inputs(probe, spec.d_in, "probe")) if config.record_kernels else None
    n_data = xtr.shape[0]
    if config.batch_size is not None:
        check(config.batch_size <= n_data, "TrainConfig.batch_size", config.batch_size,
              f"at most |D| = {n_data}")
    steps = config.steps
    extra = list(record_steps or ())
    check(all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and 0 <= k <= steps for k in extra),
          "record_steps", record_steps, f"integers in [0, {steps}]")
    rec = sorted({0, steps, *(int(k) for k in extra)})
    t0 = time.perf_counter()
    n_nets = config.n_networks
    per = config.network_batch or n_nets
    with _intra_op_threads(config.threads):
        pieces = [_train_batch(spec, xtr, ytr, xte, xpr, config, start, min(start + per, n_nets), rec, progress)
                  for start in range(0, n_nets, per)]
    cat = lambda name, dim=0: torch.cat([getattr(p, name) for p in pieces], dim=dim)  # noqa: E731
    kernels_recorded = xpr is not None
    return TrainResult(
        spec, config, xtr, ytr, xte, xpr, loss=cat("loss"), record_steps=tuple(rec),
        train_predictions=cat("train_pred", 1), test_predictions=None if xte is None else cat("test_pred", 1),
        ntk_initial=cat("ntk0") if kernels_recorded else None, ntk_final=cat("ntk1") if kernels_recorded else None,
        features_initial=tuple(torch.cat([p.feats0[l] for p in pieces]) for l in range(spec.depth))
        if kernels_recorded else (),
        features_final=tuple(torch.cat([p.feats1[l] for p in pieces]) for l in range(spec.depth))
        if kernels_recorded else (),
        wall_time_s=time.perf_counter() - t0)


@dataclass
class _Piece:
    """The history of networks start..stop−1 (the fields of :class:`TrainResult`, for those networks)."""

    loss: Tensor
    train_pred: Tensor
    test_pred: Optional[Tensor]
    ntk0: Optional[Tensor]
    ntk1: Optional[Tensor]
    feats0: list[Tensor]
    feats1: list[Tensor]


def _train_batch(spec, xtr, ytr, xte, xpr, config: TrainConfig, start: int, stop: int, rec: list[int],
                 progress: Progress) -> _Piece:
    """Train networks start..stop−1 together; returns their slices of the history."""
    dev, dt = torch.device(config.device), config.torch_dtype
    net = init_networks(spec, start, stop, seed=config.seed, init_chunk=config.init_chunk, dtype=dt,
                        device=config.device)
    b = stop - start
    x, y = xtr.to(dev, dt), ytr.to(dev, dt)
    xt = None if xte is None else xte.to(dev, dt)
    xp = None if xpr is None else xpr.to(dev, dt)
    q_tr, q_te, q_pr = (_variances(spec, v, dev) for v in (xtr, xte, xpr))
    params = net.parameters()
    kernels0 = _kernels(net, xp, q_pr)
    n_data, steps = x.shape[0], config.steps
    minibatch = config.optimizer != "gd" and config.batch_size is not None and config.batch_size < n_data
    streams = np.arange(start + 1, stop + 1) if config.shuffle == "per_network" else np.zeros(1, dtype=np.int64)
    adam = _Adam(config.betas, config.eps) if config.optimizer == "adam" else None
    loss_hist = torch.empty(b, steps + 1, dtype=dt, device=dev)  # on the device: no per-step sync
    train_pred, test_pred = [], []
    rec_set = set(rec)
    for k in range(steps + 1):
        if k in rec_set:
            train_pred.append(net(x, q_tr).to(torch.float64).cpu())
            if xt is not None:
                test_pred.append(net(xt, q_te).to(torch.float64).cpu())
        if minibatch:
            loss_hist[:, k] = 0.5 * ((net(x, q_tr) - y) ** 2).mean(1)
            if k == steps:
                break
            idx = torch.as_tensor(minibatch_indices(config.data_seed, streams, k, n_data, config.batch_size),
                                  device=dev)
            if config.shuffle == "shared":
                idx = idx[0]
            _, grads = net.loss_and_grads(x[idx], y[idx], _gather_q(q_tr, idx))
        else:
            per_net, grads = net.loss_and_grads(x, y, q_tr)
            loss_hist[:, k] = per_net
            if k == steps:
                break
        if adam is not None:
            adam.step(params, grads, config.lr)
        else:
            for (p, factor, _), g in zip(params, grads):
                p.sub_(g, alpha=config.lr * factor)
        if progress is not None:
            progress(start * steps + (k + 1) * b, config.n_networks * steps)
    kernels1 = _kernels(net, xp, q_pr)
    tp = torch.stack(test_pred, dim=0) if test_pred else None
    return _Piece(loss_hist.to(torch.float64).cpu(), torch.stack(train_pred, dim=0), tp, kernels0[0], kernels1[0],
                  kernels0[1], kernels1[1])


def _kernels(net: BatchedMLP, xp: Optional[Tensor], q: Optional[list[Tensor]]):
    if xp is None:
        return None, []
    ntk = net.ntk(xp, q1=q).to(torch.float64).cpu()
    return ntk, [f.to(torch.float64).cpu() for f in net.feature_kernels(xp, q)]
