"""Ensembles of random-initialised KANs: seeded, vectorized sampling and the measured correlators.

The experiment face of a :class:`~.spec.KANSpec` (DESIGN.md "the spine"). A chunk of networks comes from
its own generator ``chunk_generator(seed, chunk)`` (:mod:`nnft.ensemble.sampling`), parameters drawn per
layer in the fixed order β (B, n_l, n_{l+1}), γ (B, n_l, n_{l+1}), c (B, n_l, n_{l+1}, G + k) (a Constant
draws nothing). Evaluation is vectorized over the B networks of a chunk,

    x_{l+1}[b, m, j] = s_l Σ_i ( β[b,i,j] SiLU(x_l[b,m,i]) + γ[b,i,j] Σ_q c[b,i,j,q] B_q(x_l[b,m,i]) ),

one chunk at a time, so a network's output never depends on which chunks share a batch: results are
bitwise identical for any ``batch_chunks``, executor or thread count (the chunk size, part of the run's
config, fixes the random streams).

Correlators are measured by the project's accumulators and jackknife (:mod:`nnft.ensemble.measure`): a
KAN chunk problem plugs into the same in-process/Dask drivers, checkpointing and finalisation as MLP
ensembles, and returns the same :class:`~nnft.ensemble.measure.Measurement` of
:class:`~nnft.correlators.Correlators`, so :func:`nnft.compare.compare` applies unchanged. Estimators:

* ``plain``: monomials of the outputs at all sites (any densities);
* ``readout`` (Rao–Blackwell; needs Gaussian edges, ``spec.gaussian_edges``): given the last hidden layer
  h = x_{L−1} (n = n_{L−1} nodes), the output is Gaussian, φ_a | h ~ N(0, δ_ab S), with
      S(x, x') = s_{L−1}² Σ_i [ σ_β² SiLU(h_i(x)) SiLU(h_i(x')) + γ² σ_c² Σ_q B_q(h_i(x)) B_q(h_i(x')) ],
  so the moments of S give G^(2) = E[S] and G_c^(4)(1234) = Σ_{3 pairings} Cov(S_12, S_34), with a relative
  error O(M^{−1/2}) at any width (the plain estimator's grows like N/√M).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ...ensemble.accumulator import Accumulator
from ...ensemble.executors import DaskExecutor, InProcess
from ...ensemble.measure import EnsembleConfig, Measurement, run_problem
from ...ensemble.sampling import chunk_generator
from ...errors import check
from ...theory.kernels import as_inputs
from .basis import bspline_basis
from .spec import KANSpec

__all__ = ["KANBatch", "sample_kans", "evaluate_kans", "readout_kernel", "measure_kan"]

Tensor = torch.Tensor


@dataclass
class KANBatch:
    """Raw edge parameters of B networks, per layer l: scale_base[l], scale_sp[l] (B, n_l, n_{l+1}) and
    coef[l] (B, n_l, n_{l+1}, G + k) — β, γ and c, before the fan-in factor s_l."""

    spec: KANSpec
    scale_base: list[Tensor]
    scale_sp: list[Tensor]
    coef: list[Tensor]

    @property
    def size(self) -> int:
        return self.coef[0].shape[0]

    def network(self, index: int):
        """Network ``index`` as a trainable :class:`~.network.KAN` (coef = c, scale_base = s_l β,
        scale_sp = s_l γ; grids from the spec; mask 1)."""
        from .network import KAN

        check(isinstance(index, int) and 0 <= index < self.size, "index", index, f"0..{self.size - 1}")
        spec = self.spec
        dtype = self.coef[0].dtype
        model = KAN(list(spec.shape), G=spec.G, k=spec.k, grid_range=spec.grid_range, seed=0, dtype=dtype)
        with torch.no_grad():
            for l, layer in enumerate(model.layers):
                s = spec.edge_scale(l)
                layer.coef.copy_(self.coef[l][index])
                layer.scale_base.copy_(s * self.scale_base[l][index])
                layer.scale_sp.copy_(s * self.scale_sp[l][index])
        return model


def sample_kans(spec: KANSpec, n: int, generator: torch.Generator, *, dtype=torch.float64) -> KANBatch:
    """Draw n networks' edge parameters from ``generator`` (per layer: β, γ, c; see the module docstring)."""
    check(isinstance(spec, KANSpec), "spec", spec, "a KANSpec")
    check(isinstance(n, int) and n >= 0, "n", n, "an integer >= 0")
    sb, sp, cf = [], [], []
    for n_in, n_out in zip(spec.shape[:-1], spec.shape[1:]):
        sb.append(spec.scale_base.sample((n, n_in, n_out), generator, dtype))
        sp.append(spec.scale_sp.sample((n, n_in, n_out), generator, dtype))
        cf.append(spec.coef.sample((n, n_in, n_out, spec.n_basis), generator, dtype))
    return KANBatch(spec, sb, sp, cf)


def _basis(spec: KANSpec, h: Tensor) -> Tensor:
    """B_q(h) for h (..., n) on the spec's uniform grid: (..., n, G + k)."""
    n = h.shape[-1]
    knots = spec.knots(h.dtype)
    flat = bspline_basis(h.reshape(-1, n), knots[None, :].expand(n, -1), spec.k, uniform=True)
    return flat.reshape(*h.shape, spec.n_basis)


def _layer(spec: KANSpec, nets: KANBatch, l: int, h: Tensor) -> Tensor:
    """One layer for every network: h (M, n_l) shared or (B, M, n_l) → (B, M, n_{l+1})."""
    s = spec.edge_scale(l)
    basis = _basis(spec, h)
    weighted = nets.scale_sp[l][..., None] * nets.coef[l]  # γ c: (B, n_l, n_{l+1}, G+k)
    if h.ndim == 2:
        out = torch.einsum("mi,bij->bmj", F.silu(h), nets.scale_base[l])
        out = out + torch.einsum("miq,bijq->bmj", basis, weighted)
    else:
        out = torch.einsum("bmi,bij->bmj", F.silu(h), nets.scale_base[l])
        out = out + torch.einsum("bmiq,bijq->bmj", basis, weighted)
    return s * out


def evaluate_kans(spec: KANSpec, nets: KANBatch, x, *, return_hidden: bool = False) -> Tensor:
    """Outputs of every network at inputs x (M, n_0): (B, M, n_L); or, with ``return_hidden``, the last
    hidden layer x_{L−1} (B, M, n_{L−1}) (the inputs x themselves, broadcast, for a one-layer KAN)."""
    h = as_inputs(x, spec.d_in, "x").to(nets.coef[0].dtype)
    last = spec.depth - 1 if return_hidden else spec.depth
    if last == 0:
        return h.expand(nets.size, *h.shape)
    for l in range(last):
        h = _layer(spec, nets, l, h)
    return h


def readout_kernel(spec: KANSpec, nets: KANBatch, x) -> Tensor:
    """Per-network output covariance given the last hidden layer, S[b] (B, M, M), float64:
    S(x, x') = s² Σ_i [σ_β² SiLU(h_i(x))SiLU(h_i(x')) + γ²σ_c² Σ_q B_q(h_i(x))B_q(h_i(x'))] (module
    docstring)."""
    check(spec.gaussian_edges, "estimator", "readout",
          "'plain' for this spec ('readout' needs Gaussian edges: scale_base and coef Normal, scale_sp Constant)")
    h = evaluate_kans(spec, nets, x, return_hidden=True).to(torch.float64)  # (B, M, n)
    l = spec.depth - 1
    s2 = spec.edge_scale(l) ** 2
    sb2, g2, c2 = spec.scale_base.std ** 2, spec.scale_sp.value ** 2, spec.coef.std ** 2
    silu = F.silu(h)
    basis = _basis(spec, h)  # (B, M, n, G+k)
    out = sb2 * torch.einsum("bmi,bpi->bmp", silu, silu)
    out = out + (g2 * c2) * torch.einsum("bmiq,bpiq->bmp", basis, basis)
    return s2 * out


class _KANProblem:
    """What one chunk computes, in the shape :mod:`nnft.ensemble.measure`'s drivers expect (``spec``,
    ``config``, ``x``, ``order``, ``n_features``, ``chunks``, ``chunk``)."""

    def __init__(self, spec: KANSpec, x: Tensor, config: EnsembleConfig) -> None:
        self.spec, self.x, self.config = spec, x, config
        self.dtype = torch.float32 if config.dtype == "float32" else torch.float64
        m = x.shape[0]
        if config.estimator == "readout":
            check(spec.gaussian_edges, "estimator", "readout", "'plain' for this spec ('readout' needs Gaussian "
                  "edges: scale_base and coef Normal, scale_sp Constant)")
            self.iu = torch.triu_indices(m, m)
            self.n_features = self.iu.shape[1]
            self.order = max(1, config.max_order // 2)
        else:
            self.n_features = m * spec.d_out
            self.order = config.max_order

    def features(self, nets: KANBatch) -> np.ndarray:
        if self.config.estimator == "plain":
            out = evaluate_kans(self.spec, nets, self.x)
            return out.reshape(out.shape[0], -1).to(torch.float64).numpy()
        s = readout_kernel(self.spec, nets, self.x)
        return s[:, self.iu[0], self.iu[1]].numpy()

    def chunk(self, index: int) -> Accumulator:
        nets = sample_kans(self.spec, self.config.chunk_len(index), chunk_generator(self.config.seed, index),
                           dtype=self.dtype)
        return Accumulator.from_samples(self.features(nets), self.order)

    def chunks(self, indices: list[int]) -> list[Accumulator]:
        return [self.chunk(c) for c in indices]  # one chunk per evaluation: no batch-size dependence


def measure_kan(spec: KANSpec, x, config: EnsembleConfig, *, executor: InProcess | DaskExecutor = InProcess(),
                checkpoint: Optional[Path] = None, resume: bool = False, checkpoint_every_s: float = 5.0,
                progress: Optional[Callable[[int, int], None]] = None) -> Measurement:
    """Sample ``config.n_networks`` random KANs of ``spec``, evaluate them at x (M, n_0) and return the
    measured moments and connected correlators (orders 1..max_order) with jackknife errors over
    ``config.n_blocks`` blocks — the same :class:`Measurement` as :func:`nnft.ensemble.measure`.
    """
    check(isinstance(spec, KANSpec), "spec", spec, "a KANSpec")
    check(isinstance(config, EnsembleConfig), "config", config, "an EnsembleConfig")
    check(config.sampler == "networks", "EnsembleConfig.sampler", config.sampler, "'networks' for KAN ensembles")
    xt = as_inputs(x, spec.d_in, "x")
    return run_problem(_KANProblem(spec, xt, config), spec, xt, config, executor=executor, checkpoint=checkpoint,
                       resume=resume, checkpoint_every_s=checkpoint_every_s, progress=progress)

