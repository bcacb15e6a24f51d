"""Measure n-point correlators of an ensemble of sampled networks (the "experiment" face).

Estimators (DESIGN.md, "Estimators"):
  * ``plain``: accumulate monomials of φ at all sites; works for any density and architecture.
  * ``readout``: Rao–Blackwell over a Gaussian readout. Given the last hidden layer h (n_L neurons),
        φ | h ~ N(0, S),   S(x, x') = σ_b² + (σ_W²/n_L) Σ_i h_i(x) h_i(x')
    so E[φφ] = E[S], G_c^(4)(1234) = Σ_{3 pairings} Cov(S_12, S_34), G_c^(6) = Σ_{15 pairings} κ3(S, S, S),
    odd cumulants vanish. The relative error is O(M^{−1/2}) at any width instead of O(N M^{−1/2}).

``sampler="conditional"`` draws deep Gaussian MLPs layer by layer on the fixed inputs instead of whole
networks (:mod:`nnft.ensemble.conditional`; exact in distribution, ~n/M times cheaper at width n).

Networks come in chunks of ``chunk_size`` seeded by (seed, chunk index); chunks are grouped into
``n_blocks`` contiguous blocks whose estimates give the jackknife standard error and the chunk-to-chunk
spread ("background", arXiv:2008.08601). Results are bitwise identical for any batch size or executor.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np
import torch

from ..correlators import MAX_ORDER, Correlators, cumulants_to_moments, moments_to_cumulants, pairings, \
    sorted_tuples, tuple_rank
from ..errors import check, fail
from ..results import atomic_path
from ..spec import Architecture, Normal
from ..theory.kernels import as_inputs
from .accumulator import Accumulator, StreamingReducer, tree_reduce
from .executors import DaskExecutor, InProcess
from .sampling import chunk_generator, evaluate, hidden_gram, in_parallel, sample_networks

__all__ = ["EnsembleConfig", "Measurement", "measure", "run_problem"]


@dataclass(frozen=True, kw_only=True)
class EnsembleConfig:
    """How to sample: ``n_networks`` in chunks of ``chunk_size`` from ``seed``; moments up to ``max_order``.

    ``chunk_size`` is part of the result's identity (it fixes the random streams); the executor and batch
    size are not.
    """

    n_networks: int
    chunk_size: int = 1000
    n_blocks: int = 10
    seed: int = 0
    max_order: int = 4
    estimator: Literal["plain", "readout"] = "plain"
    dtype: Literal["float32", "float64"] = "float32"
    sampler: Literal["networks", "conditional"] = "networks"

    def __post_init__(self) -> None:
        for name in ("n_networks", "chunk_size", "n_blocks"):
            v = getattr(self, name)
            check(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"EnsembleConfig.{name}", v,
                  "an integer >= 1")
        check(isinstance(self.seed, int) and self.seed >= 0, "EnsembleConfig.seed", self.seed, "an integer >= 0")
        check(isinstance(self.max_order, int) and 1 <= self.max_order <= MAX_ORDER, "EnsembleConfig.max_order",
              self.max_order, f"an integer 1..{MAX_ORDER}")
        check(self.estimator in ("plain", "readout"), "EnsembleConfig.estimator", self.estimator,
              "'plain' or 'readout'")
        check(self.dtype in ("float32", "float64"), "EnsembleConfig.dtype", self.dtype, "'float32' or 'float64'")
        check(self.sampler in ("networks", "conditional"), "EnsembleConfig.sampler", self.sampler,
              "'networks' (whole networks) or 'conditional' (layerwise, Gaussian MLPs on fixed inputs)")
        check(self.n_networks >= self.n_blocks * self.chunk_size, "EnsembleConfig.n_networks", self.n_networks,
              f">= n_blocks × chunk_size = {self.n_blocks * self.chunk_size} (each block needs a full chunk)")

    @property
    def n_chunks(self) -> int:
        return -(-self.n_networks // self.chunk_size)

    def chunk_len(self, index: int) -> int:
        return min(self.chunk_size, self.n_networks - index * self.chunk_size)

    def blocks(self) -> list[list[int]]:
        """Chunk indices of each block: contiguous ranges, a chunk going to the block that holds its
        midpoint network, so a short last chunk joins its neighbours instead of forming a tiny block."""
        out: list[list[int]] = [[] for _ in range(self.n_blocks)]
        for c in range(self.n_chunks):
            mid2 = 2 * c * self.chunk_size + self.chunk_len(c)  # twice the midpoint, in networks
            out[min(mid2 * self.n_blocks // (2 * self.n_networks), self.n_blocks - 1)].append(c)
        check(all(out), "EnsembleConfig", f"{self.n_chunks} chunks for {self.n_blocks} blocks",
              "at least one chunk per block (more networks or a smaller chunk_size)")
        return out


@dataclass(frozen=True, eq=False)
class Measurement:
    """Measured moments G^(n) and connected correlators G_c^(n), n = 1..max_order, at ``inputs``."""

    spec: Architecture
    inputs: np.ndarray
    config: EnsembleConfig
    moments: dict[int, Correlators]
    connected: dict[int, Correlators]
    wall_time_s: float

    def meta(self) -> dict:
        return {"kind": "measurement", "architecture": self.spec.to_config(), "ensemble": asdict(self.config),
                "seed": self.config.seed, "wall_time_s": self.wall_time_s}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"inputs": self.inputs}
        for kind, group in (("moment", self.moments), ("connected", self.connected)):
            for n, c in group.items():
                out[f"{kind}{n}"] = c.values
                out[f"{kind}{n}_stderr"] = c.stderr
                out[f"{kind}{n}_background"] = c.background
        return out


class _Problem:
    """What one chunk computes: the features whose monomials are accumulated."""

    def __init__(self, spec: Architecture, x: torch.Tensor, config: EnsembleConfig) -> None:
        self.spec, self.x, self.config = spec, x, config
        self.dtype = torch.float32 if config.dtype == "float32" else torch.float64
        self.variances = None
        if spec.activation.normalized:
            from ..theory.kernels import preactivation_variances

            self.variances = preactivation_variances(spec, x)
        m = x.shape[0]
        if config.estimator == "readout":
            readout = spec.layers[-1]
            check(isinstance(readout.weight, Normal) and (readout.bias is None or isinstance(readout.bias, Normal))
                  and readout.scaling == "fan_in", "estimator", "readout",
                  "'plain' for this spec ('readout' integrates a Gaussian readout: Normal weight and bias)")
            self.iu = torch.triu_indices(m, m)
            self.n_features = self.iu.shape[1]
            self.order = max(1, config.max_order // 2)
        else:
            self.n_features = m * spec.d_out
            self.order = config.max_order

    def features(self, nets) -> np.ndarray:
        if self.config.estimator == "plain":
            out = evaluate(self.spec, nets, self.x, variances=self.variances)
            return out.reshape(out.shape[0], -1).to(torch.float64).numpy()
        gram = hidden_gram(self.spec, nets, self.x, variances=self.variances).numpy()  # Σ_i h_i(x) h_i(x')
        readout = self.spec.layers[-1]
        iu = self.iu.numpy()
        return gram[:, iu[0], iu[1]] * (readout.weight.std ** 2 / self.spec.hidden_widths[-1]) + readout.bias_var

    def chunks(self, indices: list[int]) -> list[Accumulator]:
        """Accumulators of the given chunks, evaluated in one vectorized batch."""
        nets = [sample_networks(self.spec, self.config.chunk_len(c), chunk_generator(self.config.seed, c),
                                dtype=self.dtype) for c in indices]
        from .sampling import NetworkBatch

        f = self.features(NetworkBatch.concat(nets))
        starts = np.cumsum([0] + [self.config.chunk_len(c) for c in indices])
        out: list = [None] * len(indices)

        def accumulate(j0: int, j1: int) -> None:  # chunks are independent: threads change no bit
            for j in range(j0, j1):
                out[j] = Accumulator.from_samples(f[starts[j]:starts[j + 1]], self.order)

        in_parallel(accumulate, len(indices), grain=1)
        return out

    def chunk(self, index: int) -> Accumulator:
        return self.chunks([index])[0]


def _fingerprint(spec: Architecture, x: np.ndarray, config: EnsembleConfig) -> str:
    body = json.dumps({"spec": spec.to_config(), "config": asdict(config), "x": x.tolist()}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _save_checkpoint(path: Path, fp: str, next_chunk: int, done_blocks: list[Accumulator],
                     stack: list) -> None:
    arrays = {"fingerprint": np.array(fp), "next_chunk": np.array(next_chunk),
              "n_done_blocks": np.array(len(done_blocks)), "stack_sizes": np.array([s for s, _ in stack], int)}
    for i, acc in enumerate(done_blocks):
        arrays.update(acc.to_arrays(f"b{i}_"))
    for i, (_, acc) in enumerate(stack):
        arrays.update(acc.to_arrays(f"s{i}_"))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _load_checkpoint(path: Path, fp: str):
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise fail("checkpoint", str(path), f"a readable nnft checkpoint ({exc})") from None
    with data:
        check(str(data["fingerprint"]) == fp, "resume", str(path),
              "a checkpoint of the same spec, inputs and ensemble config (this one differs)")
        blocks = [Accumulator.from_arrays(data, f"b{i}_") for i in range(int(data["n_done_blocks"]))]
        stack = [(int(s), Accumulator.from_arrays(data, f"s{i}_")) for i, s in enumerate(data["stack_sizes"])]
        return int(data["next_chunk"]), blocks, stack


def measure(spec: Architecture, x, config: EnsembleConfig, *, executor: InProcess | DaskExecutor = InProcess(),
            checkpoint: Optional[Path] = None, resume: bool = False, checkpoint_every_s: float = 5.0,
            progress: Optional[Callable[[int, int], None]] = None) -> Measurement:
    """Sample ``config.n_networks`` networks of ``spec``, evaluate them at ``x`` (M, d) and return the
    measured moments and connected correlators (orders 1..max_order) with jackknife errors.

    ``checkpoint`` (in-process only) stores the accumulators every ``checkpoint_every_s`` seconds;
    ``resume=True`` continues from it to the identical result.
    """
    check(isinstance(spec, Architecture), "spec", spec, "an Architecture")
    check(isinstance(config, EnsembleConfig), "config", config, "an EnsembleConfig")
    xt = as_inputs(x, spec.d_in, "x")
    if config.sampler == "conditional":
        from .conditional import ConditionalProblem

        problem = ConditionalProblem(spec, xt, config)
    else:
        problem = _Problem(spec, xt, config)
    return run_problem(problem, spec, xt, config, executor=executor, checkpoint=checkpoint, resume=resume,
                       checkpoint_every_s=checkpoint_every_s, progress=progress)


def run_problem(problem, spec, x: torch.Tensor, config: EnsembleConfig, *,
                executor: InProcess | DaskExecutor = InProcess(), checkpoint: Optional[Path] = None,
                resume: bool = False, checkpoint_every_s: float = 5.0,
                progress: Optional[Callable[[int, int], None]] = None) -> Measurement:
    """Drive any chunk problem (an object with ``chunk(index)``/``chunks(indices)`` returning accumulators,
    plus ``n_features``/``order``/``config``/``spec``) through the blocks, executor and checkpointing, and
    return the jackknifed :class:`Measurement`. ``spec`` (with ``to_config``) and ``x`` identify a checkpoint.
    Used by :func:`measure` and by other ensemble families (e.g. random KANs)."""
    t0 = time.perf_counter()
    blocks = config.blocks()
    total = config.n_networks
    report = (lambda n: progress(min(n, total), total)) if progress is not None else None
    if isinstance(executor, DaskExecutor):
        check(checkpoint is None, "checkpoint", str(checkpoint), "None with the Dask executor (in-process only)")
        block_accs = executor.run_blocks(problem.chunk, blocks,
                                         None if report is None else (lambda c: report(c * config.chunk_size)))
    else:
        check(isinstance(executor, InProcess), "executor", executor, "InProcess() or DaskExecutor(...)")
        block_accs = _run_in_process(problem, config, blocks, executor.batch_chunks, checkpoint, resume,
                                     checkpoint_every_s, _fingerprint(spec, x.numpy(), config), report)
    result = _finalize(problem, block_accs, x, time.perf_counter() - t0)
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()
    return result


def _run_in_process(problem, config, blocks, batch_chunks, checkpoint, resume, every_s, fp, report):
    check(isinstance(batch_chunks, int) and batch_chunks >= 1, "batch_chunks", batch_chunks, "an integer >= 1")
    block_of = {c: b for b, cs in enumerate(blocks) for c in cs}
    next_chunk, done_blocks, stack = 0, [], []
    if resume:
        check(checkpoint is not None, "resume", True, "a checkpoint path to resume from")
        if Path(checkpoint).exists():
            next_chunk, done_blocks, stack = _load_checkpoint(Path(checkpoint), fp)
        for stale in Path(checkpoint).parent.glob(f".{Path(checkpoint).name}.*.tmp"):
            stale.unlink()  # a write interrupted by a kill; the checkpoint itself is whole (atomic rename)
    reducer = StreamingReducer(stack)
    last_save = time.monotonic()
    while next_chunk < config.n_chunks:
        block = block_of[next_chunk]
        batch = [c for c in range(next_chunk, min(next_chunk + batch_chunks, config.n_chunks)) if block_of[c] == block]
        for acc in problem.chunks(batch):
            reducer.push(acc)
        next_chunk = batch[-1] + 1
        if next_chunk == config.n_chunks or block_of[next_chunk] != block:
            done_blocks.append(reducer.result())
            reducer = StreamingReducer()
        if report is not None:
            report(next_chunk * config.chunk_size)
        if checkpoint is not None and time.monotonic() - last_save >= every_s and next_chunk < config.n_chunks:
            _save_checkpoint(Path(checkpoint), fp, next_chunk, done_blocks, reducer.stack)
            last_save = time.monotonic()
    return done_blocks


def _phi_cumulants_from_kernel(kappa: dict[int, np.ndarray], m: int, d_out: int, max_order: int):
    """φ cumulants from joint cumulants κ_r of the (input-pair) entries of S, for a conditionally
    Gaussian zero-mean φ with Cov(φ_a(x), φ_b(x') | S) = δ_ab S(x, x'):
        κ_2n(φ at sites t) = Σ_{pairings p of t} Π_{pairs} δ_{a a'} · κ_n(S_{pair 1}, ..., S_{pair n})."""
    n_sites = m * d_out
    out = {}
    for order in range(1, max_order + 1):
        tup = sorted_tuples(n_sites, order)
        val = np.zeros(kappa[1].shape[:-1] + (len(tup),))
        if order % 2 == 0:
            inp, comp = tup // d_out, tup % d_out
            for p in pairings(order):
                ranks, ok = [], np.ones(len(tup), bool)
                for i, j in p:
                    lo, hi = np.minimum(inp[:, i], inp[:, j]), np.maximum(inp[:, i], inp[:, j])
                    ranks.append(tuple_rank(np.stack([lo, hi], 1), m))
                    ok &= comp[:, i] == comp[:, j]
                pair_idx = _pair_feature_index(m)[np.stack(ranks, 1)]
                r = tuple_rank(np.sort(pair_idx, axis=1), m * (m + 1) // 2)
                val += np.where(ok, kappa[order // 2][..., r], 0.0)
        out[order] = val
    return out


def _pair_feature_index(m: int) -> np.ndarray:
    """Map the colex rank of a sorted input pair (lo, hi) to the feature index in torch.triu_indices order."""
    iu = torch.triu_indices(m, m).numpy().T
    idx = np.empty(len(iu), dtype=np.int64)
    idx[tuple_rank(iu, m)] = np.arange(len(iu))
    return idx


def _estimates(problem: _Problem, acc_stack: list[Accumulator]):
    """(moments, cumulants) per order, each with a leading axis over the given accumulators."""
    cfg, spec = problem.config, problem.spec
    moments_f = {k: np.stack([a.moments()[k] for a in acc_stack]) for k in range(1, problem.order + 1)}
    if cfg.estimator == "plain":
        cum = moments_to_cumulants(moments_f, problem.n_features, cfg.max_order)
        mom = moments_f
    else:
        m = problem.x.shape[0]
        kappa = moments_to_cumulants(moments_f, problem.n_features, problem.order)
        cum = _phi_cumulants_from_kernel(kappa, m, spec.d_out, cfg.max_order)
        mom = cumulants_to_moments(cum, m * spec.d_out, cfg.max_order)
    return mom, cum


def _finalize(problem: _Problem, block_accs: list[Accumulator], x: torch.Tensor, wall: float) -> Measurement:
    cfg = problem.config
    total = tree_reduce(block_accs)
    k = len(block_accs)
    leave_one_out = [total - b for b in block_accs]
    mom_t, cum_t = _estimates(problem, [total])
    mom_j, cum_j = _estimates(problem, leave_one_out)
    mom_b, cum_b = _estimates(problem, block_accs)
    n_sites = x.shape[0] * problem.spec.d_out
    group = {}
    for kind, (t, j, b) in {"moment": (mom_t, mom_j, mom_b), "connected": (cum_t, cum_j, cum_b)}.items():
        group[kind] = {}
        for n in range(1, cfg.max_order + 1):
            jk = j[n]
            stderr = np.sqrt((k - 1) / k * ((jk - jk.mean(0)) ** 2).sum(0))
            group[kind][n] = Correlators(order=n, connected=(kind == "connected"), values=t[n][0], n_sites=n_sites,
                                         d_out=problem.spec.d_out, source="measured",
                                         label=f"{'conditional ' if cfg.sampler == 'conditional' else ''}ensemble ({cfg.estimator})", stderr=stderr,
                                         background=b[n].std(0, ddof=1), n_networks=total.count)
    return Measurement(problem.spec, x.numpy(), cfg, group["moment"], group["connected"], wall)
