"""Deep MLPs at O(1/N): the four-point vertex V and the 1/N correction to the two-point function.

Setting (PHYSICS.md §2, standard convention): z^(1) = W^(1) x + b^(1), z^(l+1) = W^(l+1) σ(z^(l)) + b^(l+1),
W^(l)_ij ~ N(0, C_W^(l)/n_{l−1}), b^(l)_i ~ N(0, C_b^(l)) in every layer, hidden widths n_1..n_L, output
φ = z^(L+1) ∈ R (d_out = 1). Given layer l, the preactivations z^(l+1)_i are i.i.d. Gaussian vectors over
the inputs with covariance Ĝ_{αβ} = C_b + (C_W/n_l) Σ_j σ(z_j(α)) σ(z_j(β)). Expanding Ĝ about its
infinite-width value K^(l+1) gives, to leading order in 1/n (Roberts–Yaida–Hanin arXiv:2106.10165 ch. 4;
Yaida arXiv:1910.00019):

    E[z^(l)_i1(α1) z_i2(α2) z_i3(α3) z_i4(α4)]_c = (1/n_{l−1}) [δ_i1i2 δ_i3i4 V^(l)_{(α1α2)(α3α4)} + 2 perms]
    E[z^(l)_i(α1) z^(l)_j(α2)] = δ_ij [K^(l)_{α1α2} + K1^(l)_{α1α2}/n_{l−1}] + O(1/n²)

    K^(1) = C_b + C_W x·x'/d,   V^(1) = 0,   K1^(1) = 0
    K^(l+1)_p  = C_b + C_W F_p(K^(l)),      F_{α1α2}(K) := ⟨σ(z_α1) σ(z_α2)⟩_K = k(K_α1α1, K_α2α2, K_α1α2)
    V^(l+1)_pq = C_W² [⟨σ_α1 σ_α2 σ_α3 σ_α4⟩_K − F_p F_q] + (n_l/n_{l−1}) C_W² Σ_{r,s} J_pr V^(l)_rs J_qs
    K1^(l+1)_p = (n_l/n_{l−1}) C_W [ Σ_r J_pr K1^(l)_r + ½ Σ_{r,s} V^(l)_rs ∂²F_p/∂K_r∂K_s ]

with p = (α1 ≤ α2), q = (α3 ≤ α4) and r, s running over *unordered* input pairs (the independent entries
of the symmetric kernel), J_pr = ∂F_p/∂K_r. This is the delta method on Ĝ = K + δ, Cov(δ_r, δ_s) =
V_rs/n_{l−1}, E[δ_r] = K1_r/n_{l−1}: Cov(F(Ĝ)) ≈ J Cov(δ) Jᵀ and E[F(Ĝ)] ≈ F + J E[δ] + ½ H:E[δδ].
It is the same as RYH's derivative form: for symmetric A, Σ_{γ1γ2} A_γ1γ2 ⟨∂_γ1∂_γ2 f⟩_K =
2 d/dt ⟨f⟩_{K+tA}, hence (C_W²/4) Σ_{γ1..γ4} V ⟨∂∂(σσ)⟩⟨∂∂(σσ)⟩ = C_W² J V Jᵀ, ½ Σ K1 ⟨∂∂(σσ)⟩ = J K1
and (1/8) Σ V ⟨∂⁴(σσ)⟩ = ½ H:V (sums over ordered γ's on the left, unordered pairs on the right).
No inverse kernel appears, so coincident inputs are fine (they are merged before computing anyway).
Derivatives of k(a, b, c) = E[σ(u)σ(v)], (u, v) ~ N(0, [[a, c], [c, b]]) come from Price's theorem,
    k_c = ⟨σ'σ'⟩, k_a = ½⟨σ''σ⟩, k_cc = ⟨σ''σ''⟩, k_ab = ¼⟨σ''σ''⟩, k_ac = ½⟨σ'''σ'⟩, k_aa = ¼⟨σ''''σ⟩,
by 2-D Gauss–Hermite for smooth σ, and by autograd through the closed-form dual kernel for the kinked,
positively homogeneous ones (relu, leaky_relu, abs, step), whose diagonal is E[σ(z)²] = k(1,1,1) a^deg.

Output (RYH notation ↔ this module): K^(ℓ) ↔ ``kernel``, G^{{1}(ℓ)} ↔ ``kernel_correction`` (K1),
V^(ℓ) ↔ ``vertex``; every 1/N term is divided by the width n_{ℓ−1} of the layer *feeding* ℓ, so at the
output (ℓ = L + 1) by n_L, the last hidden width:
    G^(2)    = K^(L+1) + K1^(L+1)/n_L + O(1/n²)
    G_c^(4)  = (1/n_L) [V_(12)(34) + V_(13)(24) + V_(14)(23)] + O(1/n²)
Single input: V^(l+1) = C_W²[⟨σ⁴⟩ − ⟨σ²⟩²] + (n_l/n_{l−1}) χ_∥² V^(l), χ_∥ = C_W d⟨σ²⟩/dK (PHYSICS.md §4);
ReLU at C_W = 2, C_b = 0 gives V^(L+1) = 5 L K², i.e. κ4/K² = 15 L/n (equal widths), and K1 = 0 on the
diagonal. One hidden layer: V^(2) = C_W² Cov(σσ, σσ) reproduces the exact single-layer G_c^(4).

Four-point expectations ⟨σσσσ⟩_K over the ≤ 4 distinct inputs of a tuple use the rank-r factor of the
restricted kernel (lower-trapezoidal, inputs in ascending variance): tensor Gauss–Hermite for smooth σ
(degrees 200/160/64/48 for r = 1..4, pruned below 1e-18 of the largest weight; 240 per dimension for
pair expectations). Gauss–Hermite converges slowly for tanh-like σ at large variance (poles at ±iπ/2):
the error of G_c^(4) is ≲ 1e-9 relative when all preactivation variances are ≲ 1, and ~1e-6–1e-5
(G^(2): ~1e-8) when the first layer has variances ~5. For homogeneous σ of degree p the radial part is
exact, E|ξ|^{4p} = 2^{2p} Γ(r/2 + 2p)/Γ(r/2), and the angular average is exact for r ≤ 2 (Gauss–Legendre
between the kinks) and randomized QMC for r = 3, 4 (R independently scrambled Sobol sets of 2^qmc_log2
directions: ~1e-5 relative, median over tuples, at the defaults). The replicates are propagated through
the (linear) recursion, so ``stderr`` fields carry that error (None for smooth σ: deterministic rules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np
import torch

from ..correlators import Correlators, pairings, sorted_tuples, tuple_rank
from ..errors import check
from ..spec import Activation, Architecture, Normal
from .kernels import as_inputs

__all__ = ["DeepTheory", "LayerTheory", "deep_correlators"]

Tensor = torch.Tensor
HOMOGENEOUS = {"relu": 1, "leaky_relu": 1, "abs": 1, "step": 0}  # σ(λz) = λ^p σ(z), λ > 0


@dataclass(frozen=True, eq=False)
class LayerTheory:
    """Layer ℓ's statistics on the M inputs: ``kernel`` K (M, M), ``kernel_correction`` K1 (M, M) and
    ``vertex`` V (P, P) on sorted input pairs (colex order, P = M(M+1)/2); 1/N terms divide by
    ``normalizer`` = n_{ℓ−1}."""

    layer: int
    normalizer: int
    kernel: Tensor
    kernel_correction: Tensor
    vertex: Tensor


@dataclass(frozen=True, eq=False)
class DeepTheory:
    """O(1/N) statistics of the output φ = z^(L+1) (module docstring for the formulas).

    kernel : (M, M) K^(L+1).   kernel_correction : (M, M) K1^(L+1) (G^(2) = K + K1/n_L).
    vertex : (P, P) V^(L+1) on sorted input pairs (colex rank of (α1 ≤ α2)); ``vertex_tensor()`` gives
        the full (M, M, M, M) V_{(α1α2)(α3α4)}.   vertex_stderr : its RQMC error (kinked σ), else None.
    two_point : G^(2) = K + K1/n_L on sorted pairs (equal to the connected G_c^(2): the mean vanishes).
    connected4 : G_c^(4) = (1/n_L) Σ_3 pairings V, or None for order = 2.
    layers : per layer ℓ = 1..L+1 (``LayerTheory``).   normalizer : n_L.   method : quadrature used.
    """

    kernel: Tensor
    kernel_correction: Tensor
    vertex: Tensor
    vertex_stderr: Optional[Tensor]
    two_point: Correlators
    connected4: Optional[Correlators]
    layers: tuple[LayerTheory, ...]
    normalizer: int
    method: str

    def vertex_tensor(self) -> Tensor:
        m = self.kernel.shape[0]
        idx = np.indices((m, m)).reshape(2, -1).T
        r = torch.as_tensor(tuple_rank(np.sort(idx, 1), m)).reshape(m, m)
        return self.vertex[r[:, :, None, None], r[None, None, :, :]]


# -- spec ---------------------------------------------------------------------------------------------------
def _layer_constants(spec: Architecture) -> tuple[list[float], list[float]]:
    """(C_W, C_b) per layer; ConfigError unless every layer is Gaussian with fan-in scaling and d_out = 1."""
    check(isinstance(spec, Architecture), "spec", spec, "an Architecture")
    check(spec.d_out == 1, "spec.d_out", spec.d_out, "1 (deep_correlators predicts a scalar output)")
    check(spec.amplitude is None, "spec.amplitude", spec.amplitude, "None (Gaussian preactivations)")
    for i, layer in enumerate(spec.layers):
        check(isinstance(layer.weight, Normal) and (layer.bias is None or isinstance(layer.bias, Normal)),
              f"spec.layers[{i}]", layer.to_config(), "Normal weight and bias densities (the recursion "
              "assumes Gaussian parameters; use nnft.measure for other densities)")
        check(layer.scaling == "fan_in", f"spec.layers[{i}].scaling", layer.scaling, "'fan_in'")
    return [l.weight.std ** 2 for l in spec.layers], [l.bias_var for l in spec.layers]


# -- pair derivatives: F, ∂F/∂(a, b, c), ∂²F/∂(a, b, c)² ------------------------------------------------------
@lru_cache(maxsize=32)
def _hermite(degree: int) -> tuple[Tensor, Tensor]:
    t, w = np.polynomial.hermite.hermgauss(degree)
    return torch.as_tensor(t * math.sqrt(2.0)), torch.as_tensor(w / math.sqrt(math.pi))


def _derivatives(act: Activation, z: Tensor, q: Tensor, kmax: int = 4) -> list[Tensor]:
    """[σ, σ', ..., σ^(kmax)] at z by nested autograd (q: the Gauss-net variance, held fixed)."""
    zz = z.detach().clone().requires_grad_(True)
    out = []
    with torch.enable_grad():
        g = act(zz, q)
        out.append(g.detach())
        for _ in range(kmax):
            g = torch.autograd.grad(g.sum(), zz, create_graph=True, allow_unused=True)[0] \
                if g.requires_grad else None
            g = torch.zeros_like(z) if g is None else g
            out.append(g.detach())
    return out


def _smooth_pairs(act: Activation, a: Tensor, b: Tensor, c: Tensor, degree: int):
    """Price's theorem by 2-D Gauss–Hermite: E[σ^(i)(u) σ^(j)(v)] → value, gradient, Hessian in (a, b, c)."""
    t, w = _hermite(degree)
    ab = a * b
    rho = torch.where(ab > 0, c / torch.sqrt(torch.where(ab > 0, ab, 1.0)), 0.0).clamp(-1, 1)[:, None, None]
    u = torch.sqrt(a)[:, None, None] * t[None, :, None]  # t already carries the √2 of the physicists' rule
    sb = torch.sqrt(b)[:, None, None]
    v = rho * sb * t[None, :, None] + torch.sqrt(1 - rho * rho) * sb * t[None, None, :]
    du = _derivatives(act, u, a[:, None, None])
    dv = _derivatives(act, v, b[:, None, None])
    ww = w[:, None] * w[None, :]
    e = lambda i, j: (du[i] * dv[j] * ww).sum((1, 2))  # noqa: E731
    grad = torch.stack([e(2, 0) / 2, e(0, 2) / 2, e(1, 1)], -1)
    e22, e31, e13 = e(2, 2), e(3, 1) / 2, e(1, 3) / 2
    hess = torch.stack([torch.stack([e(4, 0) / 4, e22 / 4, e31], -1), torch.stack([e22 / 4, e(0, 4) / 4, e13], -1),
                        torch.stack([e31, e13, e22], -1)], -2)
    return e(0, 0), grad, hess


def _kinked_pairs(act: Activation, a: Tensor, b: Tensor, c: Tensor, diag: Tensor):
    """Autograd through the closed-form dual off the diagonal (|ρ| < 1 required); homogeneity on it."""
    deg = HOMOGENEOUS[act.name]
    f1 = float(act.dual(*(torch.ones(1, dtype=torch.float64),) * 3))
    off = ~diag
    rho = c[off] / torch.sqrt(a[off] * b[off])
    check(bool(torch.all(torch.abs(rho) < 1 - 1e-9)), "x", "inputs with |ρ| = 1 at some layer",
          f"inputs whose kernel correlations stay below 1 in modulus for the kinked activation {act.name!r} "
          "(parallel inputs with no bias make its derivative terms singular: add a bias or separate them)")
    value = torch.empty_like(a)
    grad, hess = a.new_zeros(len(a), 3), a.new_zeros(len(a), 3, 3)
    value[diag] = f1 * a[diag] ** deg
    grad[diag, 0] = deg * f1 * a[diag] ** (deg - 1) if deg >= 1 else 0.0
    with torch.enable_grad():
        args = [x[off].detach().clone().requires_grad_(True) for x in (a, b, c)]
        k = act.dual(*args)
        g = torch.autograd.grad(k.sum(), args, create_graph=True)
        rows = [torch.autograd.grad(gi.sum(), args, retain_graph=True, allow_unused=True) for gi in g]
    value[off] = k.detach()
    grad[off] = torch.stack([gi.detach() for gi in g], -1)
    hess[off] = torch.stack([torch.stack([torch.zeros_like(k) if h is None else h.detach() for h in row], -1)
                             for row in rows], -2)
    return value, grad, hess


def _pair_statistics(act: Activation, kmat: Tensor, pairs: np.ndarray, degree: int):
    """F_p, and J (P, P), Hessian blocks (P, 3, 3) with their pair indices idx (P, 3) = ranks of
    (α1α1, α2α2, α1α2); sums over idx add up the three slots when α1 = α2."""
    m = kmat.shape[0]
    i, j = torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])
    a, b, c = kmat[i, i], kmat[j, j], kmat[i, j]
    if act.smooth:
        value, grad, hess = _smooth_pairs(act, a, b, c, degree)
    else:
        value, grad, hess = _kinked_pairs(act, a, b, c, i == j)
    idx = torch.as_tensor(np.stack([tuple_rank(np.stack([p, p], 1), m) for p in (pairs[:, 0], pairs[:, 1])]
                                   + [tuple_rank(pairs, m)], 1))
    jac = torch.zeros(len(pairs), len(pairs), dtype=torch.float64)
    jac.index_put_((torch.arange(len(pairs))[:, None].expand(-1, 3), idx), grad, accumulate=True)
    return value, jac, hess, idx


# -- four-point expectations ⟨σσσσ⟩_K ------------------------------------------------------------------------
def _factor(ks: Tensor) -> Tensor:
    """L (s, r) with L Lᵀ = ks, r = numerical rank, lower-trapezoidal (rows in the given order)."""
    evals, evecs = torch.linalg.eigh(ks)
    keep = evals > 1e-12 * max(float(evals.max()), 1e-300)
    l0 = evecs[:, keep] * torch.sqrt(evals[keep])
    q, r = torch.linalg.qr(l0.T)
    return r.T


@lru_cache(maxsize=8)
def _gh_grid(r: int, degree: int) -> tuple[Tensor, Tensor]:
    """Tensor Gauss–Hermite nodes (r, n) for N(0, I_r) and weights (n,), pruned below 1e-18 of the largest
    weight (built one slab of the first coordinate at a time, to bound memory)."""
    t, w = _hermite(degree)
    floor = 1e-18 * float(w.max()) ** r
    if r == 1:
        return t[None, :].clone(), w.clone()
    rest_t = torch.cartesian_prod(*([t] * (r - 1))).reshape(-1, r - 1)
    rest_w = torch.cartesian_prod(*([w] * (r - 1))).reshape(-1, r - 1).prod(1)
    pts, wts = [], []
    for ti, wi in zip(t, w):
        keep = wi * rest_w > floor
        pts.append(torch.cat([ti.expand(int(keep.sum()), 1), rest_t[keep]], 1))
        wts.append(wi * rest_w[keep])
    return torch.cat(pts).T.contiguous(), torch.cat(wts)


@lru_cache(maxsize=8)
def _sobol_directions(r: int, log2n: int, replicates: int, seed: int) -> Tensor:
    """(R, r, 2^log2n) unit vectors from R independently scrambled Sobol sequences (uniform on S^{r−1})."""
    out = []
    for rep in range(replicates):
        engine = torch.quasirandom.SobolEngine(r, scramble=True, seed=seed * 1000 + rep)
        xi = torch.special.ndtri(engine.draw(2**log2n, dtype=torch.float64).clamp(1e-16, 1 - 1e-16))
        out.append((xi / xi.norm(dim=1, keepdim=True)).T)
    return torch.stack(out)


def _angular_exact(lmat: Tensor) -> tuple[Tensor, Tensor]:
    """Nodes (r, n) on S^{r−1}, r ≤ 2, and weights exact for products of σ(L_k·e), kinks where L_k·e = 0."""
    if lmat.shape[1] == 1:
        return torch.tensor([[1.0, -1.0]], dtype=torch.float64), torch.tensor([0.5, 0.5], dtype=torch.float64)
    base = torch.atan2(lmat[:, 1], lmat[:, 0]) + math.pi / 2
    kinks = torch.cat([torch.remainder(base, 2 * math.pi), torch.remainder(base + math.pi, 2 * math.pi),
                       torch.tensor([0.0, 2 * math.pi], dtype=torch.float64)]).sort().values
    kinks = kinks[torch.cat([torch.tensor([True]), torch.diff(kinks) > 1e-14])]
    t, w = (torch.as_tensor(v) for v in np.polynomial.legendre.leggauss(40))
    lo, hi = kinks[:-1, None], kinks[1:, None]
    ang, wts = ((hi - lo) / 2 * t + (hi + lo) / 2).reshape(-1), ((hi - lo) / 2 * w / (2 * math.pi)).reshape(-1)
    return torch.stack([torch.cos(ang), torch.sin(ang)]), wts


def _subset_rule(act: Activation, lmat: Tensor, rule: dict):
    """(nodes (r, n) or (R, r, n), weights (n,) or None for a plain mean, radial factor) for one subset."""
    r = lmat.shape[1]
    if act.smooth:
        return (*_gh_grid(r, rule["degrees"][r - 1]), 1.0)
    p = HOMOGENEOUS[act.name]
    radial = 2 ** (2 * p) * math.gamma(r / 2 + 2 * p) / math.gamma(r / 2)  # E|ξ|^{4p}, ξ ~ N(0, I_r)
    if r <= 2:
        return (*_angular_exact(lmat), radial)
    return _sobol_directions(r, rule["qmc_log2"], rule["replicates"], rule["seed"]), None, radial


def _four_point(act: Activation, kmat: Tensor, rule: dict) -> Tensor:
    """E[Π_k σ(z_{t_k})] on every sorted input 4-tuple t (colex), shape (R, T); R = 1 unless by RQMC."""
    m = kmat.shape[0]
    tup = sorted_tuples(m, 4)
    groups: dict[tuple, list[int]] = {}
    for n, t in enumerate(tup):
        groups.setdefault(tuple(sorted(set(t.tolist()))), []).append(n)
    out = torch.zeros(1 if act.smooth else rule["replicates"], len(tup), dtype=torch.float64)
    var = torch.diagonal(kmat)
    for subset, rows in groups.items():
        s = sorted(subset, key=lambda k: float(var[k]))  # ascending variance: better-conditioned grids
        lut = np.full(m, -1)
        lut[s] = np.arange(len(s))
        loc = lut[tup[rows]].tolist()
        lmat = _factor(kmat[s][:, s])
        nodes, wts, radial = _subset_rule(act, lmat, rule)
        phi = act(lmat @ nodes, var[s][:, None])  # (..., s, n)
        prod = torch.stack([phi[..., a, :] * phi[..., b, :] * phi[..., c, :] * phi[..., d, :]
                            for a, b, c, d in loc], -2)
        out[:, rows] = radial * (prod.mean(-1) if wts is None else prod @ wts)
    return out


# -- the recursion ------------------------------------------------------------------------------------------
def _step(act, kmat, vertex, k1, cw, cb, ratio, pairs, idx4, rule):
    """Layer ℓ → ℓ+1 (module docstring); vertex (R, P, P) and k1 (R, P) carry the quadrature replicates."""
    f, jac, hess, idx = _pair_statistics(act, kmat, pairs, rule["pair_degree"])
    e4 = _four_point(act, kmat, rule)
    new_v = cw**2 * (e4[:, idx4] - f[:, None] * f[None, :])
    new_k1 = torch.zeros_like(new_v[:, 0])
    if ratio:
        new_v = new_v + ratio * cw**2 * jac @ vertex @ jac.T
        h_v = (hess * vertex[:, idx[:, :, None], idx[:, None, :]]).sum((-1, -2))
        new_k1 = ratio * cw * (k1 @ jac.T + 0.5 * h_v)
    return _symmetric(cb + cw * f, kmat.shape[0]), new_v, new_k1


def _pair_index(m: int) -> Tensor:
    """(2, P) input indices of the sorted pairs of m inputs, colex order."""
    return torch.tensor(sorted_tuples(m, 2).T.copy())


def _symmetric(values: Tensor, m: int) -> Tensor:
    """(m, m) symmetric matrix from its values on the sorted pairs."""
    (i, j), out = _pair_index(m), values.new_zeros(m, m)
    out[i, j] = values
    out[j, i] = values
    return out


def _recursion(act: Activation, kmat: Tensor, cws, cbs, widths, rule: dict) -> list:
    """[(K (M, M), V (R, P, P), K1 (R, P))] for layers ℓ = 1..L+1, on the inputs of K^(1) = ``kmat``."""
    m = kmat.shape[0]
    pairs = sorted_tuples(m, 2).copy()  # writable: torch warns on read-only arrays
    quads = np.concatenate([np.repeat(pairs, len(pairs), 0), np.tile(pairs, (len(pairs), 1))], 1)
    idx4 = torch.as_tensor(tuple_rank(np.sort(quads, 1), m)).reshape(len(pairs), len(pairs))
    states = [(kmat, kmat.new_zeros(1, len(pairs), len(pairs)), kmat.new_zeros(1, len(pairs)))]
    for l in range(1, len(widths)):
        ratio = widths[l] / widths[l - 1] if l >= 2 else 0.0  # n_l/n_{l−1}; V^(1) = K1^(1) = 0 anyway
        states.append(_step(act, *states[-1], cws[l], cbs[l], ratio, pairs, idx4, rule))
    return states


def _pairing_sum(vertex: Tensor, m: int) -> Tensor:
    """Σ over the 3 pairings of V_{(t_i t_j)(t_k t_l)} on every sorted 4-tuple t: (R, P, P) → (R, T)."""
    tup = sorted_tuples(m, 4)
    rank = lambda cols: torch.as_tensor(tuple_rank(np.sort(tup[:, list(cols)], 1), m))  # noqa: E731
    return sum(vertex[:, rank(p[0]), rank(p[1])] for p in pairings(4))


def deep_correlators(spec: Architecture, x, *, order: int = 4, pair_degree: int = 240,
                     degrees: tuple[int, int, int, int] = (200, 160, 64, 48), qmc_log2: int = 16,
                     qmc_replicates: int = 16, seed: int = 0) -> DeepTheory:
    """G^(2) to O(1/N) and G_c^(4) at leading order O(1/N) for a deep Gaussian MLP at inputs x (M, d).

    Parameters: ``pair_degree`` Gauss–Hermite nodes per dimension for pair expectations (smooth σ);
    ``degrees`` nodes per dimension for four-point expectations of rank r = 1..4 (smooth σ);
    ``qmc_log2``, ``qmc_replicates``, ``seed``: the randomized QMC of rank-3/4 angular averages (kinked σ).
    ``order`` = 2 skips building ``connected4`` (V is needed for K1 anyway). Coincident inputs are merged
    before the recursion and the results expanded back. References: arXiv:2106.10165 ch. 4 (recursions for
    V^(ℓ) and G^{{1}(ℓ)}), arXiv:1910.00019 (Yaida, "Non-Gaussian processes and neural networks at finite
    widths"). Example — ReLU, C_W = 2, C_b = 0, two hidden layers of width 64: κ4 n/K² = 15 L = 30,

    >>> import nnft
    >>> th = deep_correlators(nnft.mlp(1, [64, 64], activation="relu", sigma_w=2**0.5, sigma_b=0.0), [[1.0]])
    >>> round(float(th.connected4.values[0]) * 64 / th.kernel.item() ** 2, 9)
    30.0
    """
    check(order in (2, 4), "order", order, "2 or 4")
    cws, cbs = _layer_constants(spec)
    act = spec.activation
    check(act.smooth or act.name in HOMOGENEOUS, "spec.activation", act.name,
          f"a smooth activation or one of {sorted(HOMOGENEOUS)}")
    xt = as_inputs(x, spec.d_in, "x")
    xu, inverse = torch.unique(xt, dim=0, return_inverse=True)
    m = xt.shape[0]
    rule = dict(pair_degree=pair_degree, degrees=degrees, qmc_log2=qmc_log2, replicates=qmc_replicates, seed=seed)
    widths = (spec.d_in,) + spec.hidden_widths
    states = _recursion(act, cbs[0] + cws[0] / spec.d_in * xu @ xu.T, cws, cbs, widths, rule)
    pmap = torch.as_tensor(tuple_rank(np.sort(inverse.numpy()[sorted_tuples(m, 2)], 1), xu.shape[0]))
    layers = tuple(LayerTheory(l + 1, widths[l], k[inverse][:, inverse], _symmetric(k1.mean(0)[pmap], m),
                               v.mean(0)[pmap][:, pmap]) for l, (k, v, k1) in enumerate(states))
    _, vertex, k1 = states[-1]
    vertex, k1, n_last, reps = vertex[:, pmap][:, :, pmap], k1[:, pmap], widths[-1], vertex.shape[0]
    sem = (lambda v: v.std(0) / math.sqrt(reps)) if reps > 1 else (lambda v: None)  # noqa: E731

    def correlator(n: int, replicates: Tensor) -> Correlators:
        err = sem(replicates)
        return Correlators(order=n, connected=True, values=replicates.mean(0).numpy(), n_sites=m,
                           source="predicted", label=f"deep O(1/N) theory, n_L={n_last}",
                           stderr=None if err is None else err.numpy(), width_order="1/N")

    i, j = _pair_index(m)
    g2 = correlator(2, layers[-1].kernel[i, j] + k1 / n_last)
    g4 = correlator(4, _pairing_sum(vertex, m) / n_last) if order == 4 else None
    method = "Gauss–Hermite" if act.smooth else "exact radial × (exact or randomized-QMC) angular quadrature"
    return DeepTheory(layers[-1].kernel, layers[-1].kernel_correction, layers[-1].vertex, sem(vertex), g2, g4,
                      layers, n_last, method)
