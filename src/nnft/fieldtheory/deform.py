"""Interactions from deformed parameter densities, sampled by importance reweighting (arXiv:2307.03223;
PHYSICS.md §6).

The deformed density P̃(θ) ∝ P(θ) exp(−g S[φ_θ]), S[φ] = ∫_Ω V(φ) (Ω's quadrature rule), is sampled by drawing
θ ~ P and weighting each network with ω_g = exp(−g (S[φ_θ] − vol(Ω) min V)) (the shift makes ω ≤ 1 and
cancels in the ratio):

    ⟨O⟩_g = Σ ω_g O / Σ ω_g,        ESS_g = (Σ ω_g)² / Σ ω_g²   (collapses as g·vol(Ω) grows)

for every coupling g of a sweep on the *same* networks, so differences G(g) − G(0) are measured with
correlated samples and small errors. The first-order response at g = 0 comes from the same draws,

    d⟨O⟩/dg |_0 = −Cov_P(O, S[φ_θ]),

converted to connected correlators by the chain rule of the moment→cumulant map. Errors: delete-one-block
jackknife over ``config.n_blocks`` contiguous blocks of seeded chunks (bitwise reproducible for any batch).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..correlators import Correlators, moments_to_cumulants, set_partitions, sorted_tuples, tuple_rank
from ..ensemble.accumulator import Accumulator, tree_reduce
from ..ensemble.measure import EnsembleConfig
from ..ensemble.sampling import chunk_generator, evaluate, sample_networks
from ..errors import check
from ..spec import Architecture
from ..theory.kernels import as_inputs, preactivation_variances
from .potential import Box, Polynomial

__all__ = ["Reweighted", "reweight", "reweight_fields", "action", "cumulant_derivative"]


def action(potential: Polynomial, region: Box, phi_nodes) -> np.ndarray:
    """S[φ] − vol(Ω) min V = Σ_q ω_q (V(φ(z_q)) − min V) ≥ 0 for fields at the rule's nodes (B, Q)."""
    _, w = region.nodes()
    v = potential(np.asarray(phi_nodes, dtype=np.float64)) - potential.minimum()
    return v @ w


def cumulant_derivative(m: dict[int, np.ndarray], dm: dict[int, np.ndarray], n_sites: int,
                        order: int) -> np.ndarray:
    """dκ_n = Σ_π c_π Σ_{B∈π} dm_{|B|}[t_B] Π_{B'≠B} m_{|B'|}[t_B'] (the differential of the moment→cumulant
    map, c_π = (−1)^{|π|−1}(|π|−1)!), on every sorted tuple; arrays may carry a leading batch axis."""
    tup = sorted_tuples(n_sites, order)
    lead = m[1].shape[:-1]
    out = np.zeros(lead + (len(tup),))
    for pi in set_partitions(order):
        coef = (-1) ** (len(pi) - 1) * math.factorial(len(pi) - 1)
        idx = [tuple_rank(tup[:, list(block)], n_sites) for block in pi]
        for j, block in enumerate(pi):
            term = np.full(lead + (len(tup),), float(coef))
            for i, other in enumerate(pi):
                src = dm if i == j else m
                term = term * src[len(other)][..., idx[i]]
            out += term
    return out


@dataclass
class _Sums:
    """Mergeable sums of one chunk/block: per coupling Σω Π f (accs[i]), Σω, Σω²; and Σ S Π f, Σ S."""

    accs: list
    sw: np.ndarray
    sw2: np.ndarray
    response: Accumulator
    s_sum: float

    def __add__(self, o: "_Sums") -> "_Sums":
        return _Sums([a + b for a, b in zip(self.accs, o.accs)], self.sw + o.sw, self.sw2 + o.sw2,
                     self.response + o.response, self.s_sum + o.s_sum)

    def __sub__(self, o: "_Sums") -> "_Sums":
        return _Sums([a - b for a, b in zip(self.accs, o.accs)], self.sw - o.sw, self.sw2 - o.sw2,
                     self.response - o.response, self.s_sum - o.s_sum)


@dataclass(frozen=True, eq=False)
class Reweighted:
    """Correlators of the deformed ensembles at each coupling g of a sweep (same networks for all g).

    connected[i][n], moments[i][n] : G_c^(n), G^(n) at couplings[i] (jackknife errors).
    shift[i][n] : G_c^(n)(g_i) − G_c^(n)(0), with the jackknife error of the difference.
    response[n] : dG_c^(n)/dg at g = 0 (first order in the unit potential).
    ess[i] : effective sample size (Σω)²/Σω²; n_networks; wall_time_s.
    """

    spec: Architecture
    inputs: np.ndarray
    potential: Polynomial
    region: Box
    couplings: tuple[float, ...]
    config: EnsembleConfig
    connected: list[dict[int, Correlators]]
    moments: list[dict[int, Correlators]]
    shift: list[dict[int, Correlators]]
    response: dict[int, Correlators]
    ess: np.ndarray
    n_networks: int
    wall_time_s: float

    @property
    def effective_samples_per_s(self) -> np.ndarray:
        """ESS per second of wall time, per coupling."""
        return self.ess / max(self.wall_time_s, 1e-12)

    def meta(self) -> dict:
        return {"kind": "deformed-measurement", "method": "importance reweighting",
                "architecture": self.spec.to_config(), "potential": self.potential.to_config(),
                "region": self.region.to_config(), "couplings": list(self.couplings),
                "ensemble": asdict(self.config), "ess": self.ess.tolist(), "wall_time_s": self.wall_time_s}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"inputs": self.inputs, "couplings": np.array(self.couplings), "ess": self.ess}
        for i in range(len(self.couplings)):
            for n, c in self.connected[i].items():
                out[f"g{i}_connected{n}"], out[f"g{i}_connected{n}_stderr"] = c.values, c.stderr
                s = self.shift[i][n]
                out[f"g{i}_shift{n}"], out[f"g{i}_shift{n}_stderr"] = s.values, s.stderr
        for n, c in self.response.items():
            out[f"response{n}"], out[f"response{n}_stderr"] = c.values, c.stderr
        return out


class _Problem:
    def __init__(self, spec, x, potential, region, couplings, config):
        self.spec, self.potential, self.region, self.couplings, self.config = spec, potential, region, couplings, config
        self.z, _ = region.nodes()
        self.m = x.shape[0]
        self.points = torch.cat([x, torch.as_tensor(self.z, dtype=torch.float64)])
        self.dtype = torch.float32 if config.dtype == "float32" else torch.float64
        self.variances = preactivation_variances(spec, self.points) if spec.activation.normalized else None

    def chunk(self, index: int) -> _Sums:
        cfg = self.config
        nets = sample_networks(self.spec, cfg.chunk_len(index), chunk_generator(cfg.seed, index), dtype=self.dtype)
        phi = evaluate(self.spec, nets, self.points, variances=self.variances)[:, :, 0].to(torch.float64).numpy()
        return _sums(phi[:, :self.m], action(self.potential, self.region, phi[:, self.m:]), self.couplings,
                     cfg.max_order)


def _sums(f: np.ndarray, s: np.ndarray, couplings: tuple[float, ...], order: int) -> _Sums:
    """Weighted power sums of fields f (B, M) with shifted actions s (B,) for every coupling."""
    accs, sw, sw2 = [], [], []
    for g in couplings:
        w = np.exp(-g * s)
        accs.append(Accumulator.from_samples(f, order, weights=w))
        sw.append(w.sum())
        sw2.append((w * w).sum())
    accs.append(Accumulator.from_samples(f, order))  # unweighted (g = 0), for the response
    return _Sums(accs, np.array(sw), np.array(sw2), Accumulator.from_samples(f, order, weights=s), float(s.sum()))


def _estimates(couplings, m: int, order: int, stack: list[_Sums]):
    """Per coupling (connected, moments), and the connected response, each with a leading axis over ``stack``."""
    con, mom = [], []
    for i in range(len(couplings)):
        mk = {k: np.stack([s.accs[i].sums[k - 1] / s.sw[i] for s in stack]) for k in range(1, order + 1)}
        mom.append(mk)
        con.append(moments_to_cumulants(mk, m, order))
    m0 = {k: np.stack([s.accs[-1].sums[k - 1] / s.accs[-1].count for s in stack]) for k in range(1, order + 1)}
    s_mean = np.array([s.s_sum / s.accs[-1].count for s in stack])[:, None]
    dm = {k: -(np.stack([s.response.sums[k - 1] / s.accs[-1].count for s in stack]) - s_mean * m0[k])
          for k in range(1, order + 1)}
    resp = {n: cumulant_derivative(m0, dm, m, n) for n in range(1, order + 1)}
    base = moments_to_cumulants(m0, m, order)
    return con, mom, resp, base


def reweight(spec: Architecture, x, potential: Polynomial, region: Box, couplings: Sequence[float],
             config: EnsembleConfig, *, progress: Optional[Callable[[int, int], None]] = None) -> Reweighted:
    """Importance-reweighted correlators of the deformed densities P(θ) exp(−g ∫_Ω V(φ_θ)), g ∈ couplings.

    Args:
        spec: the undeformed ensemble (any spec with d_out = 1).
        x: (M, d) external points.
        potential: the unit potential V; the deformation at coupling g is g·V (use ``phi4(1.0)`` and g = λ).
        region: the box Ω with its quadrature rule.
        couplings: g values (≥ 0); correlators, shifts G(g) − G(0) and ESS are reported for each.
        config: chunks, blocks, seed, max_order (estimator must be 'plain').
    """
    check(spec.d_out == 1, "spec.d_out", spec.d_out, "1 (a scalar field)")
    x = as_inputs(x, spec.d_in)
    check(region.d == spec.d_in, "region", f"a box in d = {region.d}", f"a box in the spec's d = {spec.d_in}")
    check(config.estimator == "plain" and config.sampler == "networks", "config.estimator", config.estimator,
          "'plain' with sampler 'networks' (weights depend on the whole network)")
    g = tuple(float(v) for v in couplings)
    check(len(g) >= 1 and all(math.isfinite(v) and v >= 0 for v in g), "couplings", list(couplings),
          "one or more finite numbers >= 0")
    p = _Problem(spec, x, potential, region, g, config)
    t0 = time.perf_counter()
    blocks, done = [], 0
    for chunk_ids in config.blocks():
        sums = []
        for c in chunk_ids:
            sums.append(p.chunk(c))
            done += config.chunk_len(c)
            if progress is not None:
                progress(done, config.n_networks)
        blocks.append(tree_reduce(sums))
    wall = time.perf_counter() - t0
    parts = _finish(blocks, g, p.m, config.max_order, config.n_networks)
    return Reweighted(spec, x.numpy(), potential, region, g, config, *parts, config.n_networks, wall)


def _finish(blocks: list[_Sums], g: tuple[float, ...], m: int, order: int, n_total: int):
    """(connected, moments, shift, response, ess) with delete-one-block jackknife errors."""
    total = tree_reduce(blocks)
    k = len(blocks)
    con_t, mom_t, resp_t, base_t = _estimates(g, m, order, [total])
    con_j, mom_j, resp_j, base_j = _estimates(g, m, order, [total - b for b in blocks])

    def jk(a: np.ndarray) -> np.ndarray:
        return np.sqrt((k - 1) / k * ((a - a.mean(0)) ** 2).sum(0))

    def corr(values, stderr, n, connected, label) -> Correlators:
        return Correlators(order=n, connected=connected, values=values, n_sites=m, source="measured",
                           label=label, stderr=stderr, n_networks=n_total)

    connected, moments, shift = [], [], []
    for i, gi in enumerate(g):
        lab = f"reweighted, g = {gi:g}"
        connected.append({n: corr(con_t[i][n][0], jk(con_j[i][n]), n, True, lab) for n in range(1, order + 1)})
        moments.append({n: corr(mom_t[i][n][0], jk(mom_j[i][n]), n, False, lab) for n in range(1, order + 1)})
        shift.append({n: corr(con_t[i][n][0] - base_t[n][0], jk(con_j[i][n] - base_j[n]), n, True,
                              f"G_c(g = {gi:g}) − G_c(0)") for n in range(1, order + 1)})
    response = {n: corr(resp_t[n][0], jk(resp_j[n]), n, True, "dG_c/dg at g = 0 (−Cov(O, S))")
                for n in range(1, order + 1)}
    return connected, moments, shift, response, total.sw**2 / total.sw2


def reweight_fields(f, s, couplings: Sequence[float], *, n_blocks: int = 20, max_order: int = 4):
    """The reweighting estimators on given samples: fields f (B, M) at the external points and shifted actions
    s (B,) ≥ 0 (e.g. :func:`action` of the fields at the rule's nodes), B split into ``n_blocks`` contiguous
    blocks. Returns (connected, moments, shift, response, ess) as in :class:`Reweighted`."""
    f = np.asarray(f, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    check(f.ndim == 2 and s.shape == (f.shape[0],), "f, s", f"shapes {f.shape}, {s.shape}", "(B, M) and (B,)")
    check(bool(np.all(np.isfinite(f)) and np.all(np.isfinite(s)) and np.all(s >= 0)), "f, s", "non-finite or s < 0",
          "finite fields and shifted actions s >= 0")
    check(isinstance(n_blocks, int) and 2 <= n_blocks <= f.shape[0], "n_blocks", n_blocks, "an integer 2..B")
    g = tuple(float(v) for v in couplings)
    edges = np.linspace(0, f.shape[0], n_blocks + 1).astype(int)
    blocks = [_sums(f[a:b], s[a:b], g, max_order) for a, b in zip(edges[:-1], edges[1:])]
    return _finish(blocks, g, f.shape[1], max_order, f.shape[0])
