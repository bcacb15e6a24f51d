"""Symmetry from invariances of the parameter density P(θ) (arXiv:2106.00694; PHYSICS.md §6).

A transformation g acts on inputs (x → g·x) and/or outputs (φ_a → Σ_b R_ab φ_b). If the density P(θ) is
invariant under a compensating change of parameters, every correlator satisfies

    G^(n)_{a1..an}(g·x1, ..., g·xn) = Σ_{b1..bn} R_{a1b1} ... R_{anbn} G^(n)_{b1..bn}(x1, ..., xn).

Examples (PHYSICS.md §2 table):
  * translations x → x + c: uniform phase b ~ U[−π, π] absorbs w·c (Cos-net, Scalar-net, any cos layer);
  * rotations x → R x, R ∈ SO(d): isotropic first-layer weight density (MLPs, Erf/ReLU/Gauss/Cos nets);
  * Z_2, φ → −φ (R = −1): even last-layer density and bias, so every odd G^(n) vanishes;
  * O(d_out) output rotations φ → R φ: i.i.d. Gaussian readout (and zero or isotropic bias), e.g.
    G^(2)_{ab}(x, y) ∝ δ_ab.

Test (same networks, independent replicates). The ensemble is split into K = ``config.n_blocks``
independent replicate ensembles (seeds spawned from ``config.seed``; each of n_networks // K networks).
Each replicate k is evaluated on the concatenated input set [x; g·x], so the same networks see both, and
gives per sorted site tuple t of the original inputs the difference

    D_k(t) = G_k(g·t) − (R^{⊗n} G_k)(t).

Under the symmetry the joint law of (φ(x), φ(g·x)) equals that of (φ(x), R φ(x)), hence E[D_k(t)] = 0
exactly, for moments and for connected correlators alike (the estimator's finite-sample bias is
symmetric too). Using the same networks for both sides cancels most of the sampling noise. With
D̄(t) = (1/K) Σ_k D_k(t) and s(t) = std_k(D_k(t)) / sqrt(K),

    z(t) = D̄(t) / s(t)  ~  Student-t with K − 1 degrees of freedom.

Tuples are strongly correlated, so Σ z² is NOT χ²_T. Two valid combinations are offered:
  * ``method="maxz"`` (default): max_t |z(t)| with a Bonferroni bound
        p = min(1, T · 2 (1 − F_{t,K−1}(max|z|))),
    conservative under any correlation between tuples;
  * ``method="hotelling"``: the full covariance S of the D_k from the replicates,
        T² = K D̄ᵀ S⁻¹ D̄,   F = (K − T) / (T (K − 1)) · T²  ~  F(T, K − T),
    which needs K > T replicates.
Tuples whose difference vanishes identically in every replicate (an exact per-network identity, e.g.
a rotation fixing x = 0) carry no information and are dropped; a nonzero difference with zero spread
gives z = ∞ and p = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional

import numpy as np
from scipy import stats

from ..correlators import sorted_tuples
from ..ensemble import EnsembleConfig, measure
from ..errors import check
from ..spec import Architecture

__all__ = ["Transform", "SymmetryTest", "symmetry_test", "translation", "rotation", "random_rotation",
           "reflection_z2", "output_rotation"]

_MAX_TENSOR = 4_000_000  # entries of the full correlator tensor on [x; g·x] per replicate


@dataclass(frozen=True, eq=False)
class Transform:
    """A candidate symmetry g: an input map x → g·x ((M, d) → (M, d); None = identity) and an output
    matrix R (d_out × d_out; None = identity), with the claim G^(n)(g·t) = R^{⊗n} G^(n)(t)."""

    name: str
    inputs: Optional[Callable[[np.ndarray], np.ndarray]] = None
    output: Optional[np.ndarray] = None


def translation(c) -> Transform:
    """x → x + c (c a vector of length d, or a scalar added to every component)."""
    c = np.asarray(c, dtype=np.float64)
    check(c.ndim <= 1 and np.all(np.isfinite(c)), "translation(c)", c, "a finite scalar or vector")
    return Transform(f"translation by {np.round(c, 4).tolist()}", inputs=lambda x: x + c)


def rotation(R) -> Transform:
    """x → R x for an orthogonal R (d × d): rows of the input array become x R^T."""
    R = np.asarray(R, dtype=np.float64)
    check(R.ndim == 2 and R.shape[0] == R.shape[1] and np.allclose(R @ R.T, np.eye(len(R)), atol=1e-10),
          "rotation(R)", R.shape, "an orthogonal d × d matrix")
    return Transform(f"rotation (d={len(R)}, det={np.linalg.det(R):+.0f})", inputs=lambda x: x @ R.T)


def random_rotation(d: int, seed: int = 0) -> np.ndarray:
    """A fixed SO(d) matrix from a seeded Haar-random orthogonal matrix (QR with sign fix, det → +1)."""
    check(isinstance(d, int) and d >= 1, "d", d, "an integer >= 1")
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def reflection_z2(d_out: int = 1) -> Transform:
    """Z_2, φ → −φ (inputs unchanged): the claim is G^(n) = (−1)^n G^(n), i.e. odd correlators vanish."""
    return Transform("Z2 (phi -> -phi)", output=-np.eye(d_out))


def output_rotation(R) -> Transform:
    """φ_a → Σ_b R_ab φ_b (inputs unchanged) for an orthogonal R (d_out × d_out, d_out ≥ 2): the claim is
    that G^(n) is an O(d_out)-invariant tensor, e.g. G^(2)_{ab} ∝ δ_ab."""
    R = np.asarray(R, dtype=np.float64)
    check(R.ndim == 2 and R.shape[0] == R.shape[1] and np.allclose(R @ R.T, np.eye(len(R)), atol=1e-10),
          "output_rotation(R)", R.shape, "an orthogonal d_out × d_out matrix")
    return Transform(f"output rotation (d_out={len(R)})", output=R)


@dataclass(frozen=True, eq=False)
class SymmetryTest:
    """Result of :func:`symmetry_test`.

    name : transform and correlator, e.g. "translation by [0.5] on G^(4)".
    statistic : max_t |z(t)| (method "maxz") or Hotelling T² (method "hotelling").
    dof : degrees of freedom of the reference law: K − 1 of the per-tuple Student t ("maxz"), or T, the
        numerator dof of F(T, K − T) ("hotelling").
    p_value : probability, under the symmetry, of a statistic at least this large (Bonferroni bound for
        "maxz").
    max_abs_z : max_t |D̄(t)| / s(t) (reported for both methods).
    n_tuples : T, the number of informative sorted site tuples compared.
    n_replicates : K.
    diff, stderr : D̄(t) and s(t) on the informative tuples; tuples: their (T, n) site indices.
    """

    name: str
    statistic: float
    dof: int
    p_value: float
    max_abs_z: float
    method: str
    n_tuples: int
    n_replicates: int
    diff: np.ndarray = field(repr=False)
    stderr: np.ndarray = field(repr=False)
    tuples: np.ndarray = field(repr=False)

    def passed(self, alpha: float = 1e-3) -> bool:
        """True when the symmetry is not rejected at level ``alpha`` (p ≥ alpha)."""
        return bool(self.p_value >= alpha)


def _transform_tensor(g: np.ndarray, R: np.ndarray, order: int) -> np.ndarray:
    """(R^{⊗n} G) on a tensor of shape (M, d_out) * n: contract R on every output axis."""
    out = g
    for k in range(order):
        out = np.moveaxis(np.tensordot(out, R, axes=([2 * k + 1], [1])), -1, 2 * k + 1)
    return out


def _replicate_diff(spec: Architecture, xx: np.ndarray, m: int, concat: bool, R: np.ndarray, order: int,
                    kind: str, cfg: EnsembleConfig) -> np.ndarray:
    meas = measure(spec, xx, cfg)
    corr = (meas.connected if kind == "connected" else meas.moments)[order]
    d_out = spec.d_out
    n_in = xx.shape[0]
    full = corr.full().reshape((n_in, d_out) * order)
    sl = tuple(slice(0, m) if i % 2 == 0 else slice(None) for i in range(2 * order))
    a = full[sl]
    if concat:
        sl_g = tuple(slice(m, 2 * m) if i % 2 == 0 else slice(None) for i in range(2 * order))
        b = full[sl_g]
    else:
        b = a
    diff = (b - _transform_tensor(a, R, order)).reshape((m * d_out,) * order)
    tup = sorted_tuples(m * d_out, order)
    return diff[tuple(tup.T)]


def symmetry_test(spec: Architecture, x, transform: Transform, *, order: int = 2, config: EnsembleConfig,
                  kind: Literal["moment", "connected"] = "moment",
                  method: Literal["maxz", "hotelling"] = "maxz") -> SymmetryTest:
    """Test G^(order)(g·x_1..g·x_n) = R^{⊗n} G^(order)(x_1..x_n) on all sorted site tuples of ``x`` (M, d).

    ``config.n_blocks`` = K independent replicate ensembles of ``config.n_networks // K`` networks each
    (seeds spawned from ``config.seed``; each replicate uses 2 internal blocks and a chunk size of at most
    half its networks); ``config.estimator``/``dtype``/``sampler`` are passed through. ``kind`` picks moments
    G^(n) or connected G_c^(n). See the module docstring for the statistic (arXiv:2106.00694).
    """
    check(isinstance(spec, Architecture), "spec", spec, "an Architecture")
    check(isinstance(transform, Transform), "transform", transform,
          "a Transform (translation, rotation, reflection_z2, output_rotation)")
    check(isinstance(config, EnsembleConfig), "config", config, "an EnsembleConfig")
    check(isinstance(order, int) and 1 <= order <= 6, "order", order, "an integer 1..6")
    check(kind in ("moment", "connected"), "kind", kind, "'moment' or 'connected'")
    check(method in ("maxz", "hotelling"), "method", method, "'maxz' or 'hotelling'")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and spec.d_in == 1:
        x = x[:, None]
    check(x.ndim == 2 and x.shape[1] == spec.d_in and len(x) >= 1, "x", x.shape,
          f"an (M, {spec.d_in}) array of inputs")
    d_out = spec.d_out
    R = np.eye(d_out) if transform.output is None else np.asarray(transform.output, dtype=np.float64)
    check(R.shape == (d_out, d_out), "transform.output", R.shape, f"a {d_out} × {d_out} matrix (spec.d_out)")
    k_rep = config.n_blocks
    check(k_rep >= 3, "config.n_blocks", k_rep, "an integer >= 3 (the number of independent replicates)")
    n_rep = config.n_networks // k_rep
    check(n_rep >= 2, "config.n_networks", config.n_networks, f">= 2 × n_blocks = {2 * k_rep}")
    m = len(x)
    concat = transform.inputs is not None
    if concat:
        gx = np.asarray(transform.inputs(x), dtype=np.float64)
        check(gx.shape == x.shape and np.all(np.isfinite(gx)), "transform.inputs(x)", gx.shape,
              f"finite inputs of shape {x.shape}")
        xx = np.concatenate([x, gx])
    else:
        xx = x
    check((len(xx) * d_out) ** order <= _MAX_TENSOR, "len(x)", m,
          f"fewer inputs ((M·d_out·{2 if concat else 1})^order <= {_MAX_TENSOR})")
    seeds = [int(s) for s in np.random.SeedSequence(config.seed).generate_state(k_rep)]
    chunk = min(config.chunk_size, n_rep // 2)
    reps = np.stack([
        _replicate_diff(spec, xx, m, concat, R, order, kind,
                        EnsembleConfig(n_networks=n_rep, chunk_size=chunk, n_blocks=2, seed=s,
                                       max_order=max(order, 1), estimator=config.estimator, dtype=config.dtype,
                                       sampler=config.sampler))
        for s in seeds])
    tup = sorted_tuples(m * d_out, order)
    mean = reps.mean(0)
    sd = reps.std(0, ddof=1) / math.sqrt(k_rep)
    scale = np.abs(reps).max() if reps.size else 0.0
    informative = (sd > 1e-12 * max(scale, 1e-300)) | (np.abs(mean) > 1e-12 * max(scale, 1e-300))
    mean, sd, reps, tup = mean[informative], sd[informative], reps[:, informative], tup[informative]
    n_t = int(informative.sum())
    label = f"{transform.name} on {'G_c' if kind == 'connected' else 'G'}^({order})"
    if n_t == 0:
        return SymmetryTest(label, 0.0, k_rep - 1, 1.0, 0.0, method, 0, k_rep, mean, sd, tup)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), np.inf)
    max_z = float(np.max(np.abs(z)))
    if method == "maxz":
        p = 0.0 if not np.isfinite(max_z) else float(min(1.0, n_t * 2.0 * stats.t.sf(max_z, k_rep - 1)))
        return SymmetryTest(label, max_z, k_rep - 1, p, max_z, method, n_t, k_rep, mean, sd, tup)
    check(k_rep > n_t, "config.n_blocks", k_rep,
          f"> the number of tuples T = {n_t} for method='hotelling' (or method='maxz')")
    cov = np.cov(reps, rowvar=False, ddof=1).reshape(n_t, n_t)
    t2 = float(k_rep * mean @ np.linalg.lstsq(cov, mean, rcond=None)[0])
    f_stat = (k_rep - n_t) / (n_t * (k_rep - 1)) * t2
    p = float(stats.f.sf(f_stat, n_t, k_rep - n_t))
    return SymmetryTest(label, t2, n_t, p, max_z, method, n_t, k_rep, mean, sd, tup)
