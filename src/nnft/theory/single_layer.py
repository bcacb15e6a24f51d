"""Exact connected correlators of single-hidden-layer networks at any width N (PHYSICS.md §4).

For φ(x) = b1 + Σ_{i=1}^N Y_i(x), Y_i(x) = W1_i ϕ_i(x) with i.i.d. neurons ϕ_i(x) = F(w_i) σ(w_i·x + b0_i),
the cumulant generating function is additive over neurons, so for every order r and sites s_1..s_r

    κ_r(φ(s_1), ..., φ(s_r)) = N κ_r(Y(s_1), ..., Y(s_r)) + κ_r(b1, ..., b1)

(equivalently κ_r^φ = N^{1−r/2} κ_r^X in the lecture normalisation X = √N Y; arXiv:2008.08601, 2307.03223).
Single-neuron moments factorise: E[Π_k Y_{a_k}(x_k)] = Π_a E[W1^{n_a}] · E[Π_k ϕ(x_k)] (n_a = how often
output component a occurs). The neuron moments E[Π_k ϕ(x_k)] (k ≤ 6) come from

  * closed forms: Gauss-net  E[Π_k ρ_k] = exp(½ Σ_{jk} K0(x_j, x_k) − Σ_k q_k);  exp likewise;
    cos/sin with a uniform phase (Cos-net): E_b[Π_k cos(A_k + b)] = 2^{−n} Σ_{s ∈ {±1}^n, Σs = 0} cos(s·A),
    then E_w cos(w·y) = exp(−σ_w² |y|²/(2d)) for Gaussian w;
  * quadrature over the rank-r Gaussian of first-layer pre-activations z = L ξ (K0 = L Lᵀ, r ≤ d + 1):
    tensor Gauss–Hermite for analytic σ (r ≤ 3); for positively homogeneous σ (relu, leaky_relu, abs of
    degree 1; step of degree 0) the radial part is exact, E[|ξ|^{n·deg}] = 2^{n·deg/2} Γ((r + n·deg)/2)/Γ(r/2),
    and the angular average is exact at r = 1 (two points) or piecewise Gauss–Legendre between the
    kinks at r = 2;
  * otherwise single-neuron Monte Carlo (fixed seed) with a jackknife error.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy import special

from ..correlators import Correlators, cumulants_to_moments, moments_to_cumulants, sorted_tuples, tuple_rank
from ..errors import check
from ..spec import Architecture, Normal, Uniform
from .kernels import _is_phase_layer, as_inputs

__all__ = ["SingleLayerTheory", "NeuronMoments", "neuron_moments", "single_layer_correlators"]

_HOMOGENEOUS = {"relu": 1, "leaky_relu": 1, "abs": 1, "step": 0}
_GH_DEGREE = {1: 200, 2: 160, 3: 48}  # converged to ~1e-13 (r ≤ 2) for erf at K0 ~ 2, checked in tests


@dataclass(frozen=True)
class NeuronMoments:
    """E[Π_{k∈t} ϕ(x_k)] on sorted input tuples t, orders 1..R (values[n], stderr[n] or None)."""

    values: dict[int, np.ndarray]
    replicates: Optional[list[dict[int, np.ndarray]]]  # leave-one-block-out estimates (Monte Carlo only)
    method: str


def _k0(spec: Architecture, x: torch.Tensor) -> np.ndarray:
    first = spec.layers[0]
    xn = x.numpy()
    return first.bias_var + first.weight_var(spec.d_in) * xn @ xn.T


def _weighted_monomials(phi: np.ndarray, weights: np.ndarray, max_order: int) -> dict[int, np.ndarray]:
    """Σ_p w_p Π_{k∈t} phi[p, t_k] for every sorted tuple t of every order ≤ max_order."""
    from ..ensemble.accumulator import Accumulator

    acc = Accumulator.from_samples(phi, max_order, weights=weights)
    return {n: s for n, s in enumerate(acc.sums, start=1)}


def _gaussian_factor(k0: np.ndarray) -> np.ndarray:
    """L (M, r) with K0 = L Lᵀ, keeping eigen-directions above 1e-13 of the largest."""
    evals, evecs = np.linalg.eigh(k0)
    keep = evals > 1e-13 * max(evals.max(), 1e-300)
    return evecs[:, keep] * np.sqrt(evals[keep])


def _angular_nodes(lmat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors e and weights averaging over S^{r−1}, exact for piecewise-analytic integrands whose
    kinks lie where L_m·e = 0 (r = 1: ±1; r = 2: Gauss–Legendre between the kink angles)."""
    r = lmat.shape[1]
    if r == 1:
        return np.array([[1.0], [-1.0]]), np.array([0.5, 0.5])
    base = np.arctan2(lmat[:, 1], lmat[:, 0]) + np.pi / 2  # L_m·e(t) = 0 at t = base, base + π
    kinks = np.sort(np.concatenate([np.mod(base, 2 * np.pi), np.mod(base + np.pi, 2 * np.pi), [0.0, 2 * np.pi]]))
    kinks = kinks[np.concatenate([[True], np.diff(kinks) > 1e-14])]
    t_gl, w_gl = np.polynomial.legendre.leggauss(40)
    ts, ws = [], []
    for lo, hi in zip(kinks[:-1], kinks[1:]):
        ts.append((hi - lo) / 2 * t_gl + (hi + lo) / 2)
        ws.append((hi - lo) / 2 * w_gl / (2 * np.pi))
    t = np.concatenate(ts)
    return np.stack([np.cos(t), np.sin(t)], 1), np.concatenate(ws)


def _act(spec: Architecture, z: np.ndarray, q: np.ndarray) -> np.ndarray:
    zt = torch.from_numpy(z)
    return spec.activation(zt, torch.from_numpy(q)).numpy()


def _closed_phase(spec: Architecture, x: torch.Tensor, max_order: int) -> dict[int, np.ndarray]:
    """Cos/sin with a uniform phase and Gaussian weights: sign-pattern formula (module docstring)."""
    first, d = spec.layers[0], spec.d_in
    s2 = first.weight_var(d)
    xn = x.numpy()
    m = xn.shape[0]
    out = {}
    for n in range(1, max_order + 1):
        tup = sorted_tuples(m, n)
        val = np.zeros(len(tup))
        if n % 2 == 0:
            for s in itertools.product((1, -1), repeat=n):
                if sum(s) != 0:
                    continue
                y = np.einsum("k,tkd->td", np.array(s, float), xn[tup])
                val += np.exp(-s2 * (y * y).sum(1) / 2)
            val /= 2**n
        out[n] = val
    return out


def neuron_moments(spec: Architecture, x, max_order: int, *, mc_samples: int = 1 << 21,
                   seed: int = 0) -> NeuronMoments:
    """E[Π_k ϕ(x_{t_k})] for one first-layer neuron, every sorted input tuple t, orders 1..max_order."""
    check(spec.depth == 1, "spec", str(spec), "one hidden layer (deep networks: the O(1/N) recursion)")
    x = as_inputs(x, spec.d_in, "x")
    act, first = spec.activation, spec.layers[0]
    m = x.shape[0]
    if spec.gaussian_first_layer:
        k0 = _k0(spec, x)
        q = np.diag(k0).copy()
        if act.name in ("gauss", "exp"):
            out = {}
            for n in range(1, max_order + 1):
                tup = sorted_tuples(m, n)
                quad = k0[tup[:, :, None], tup[:, None, :]].sum((1, 2)) / 2
                out[n] = np.exp(quad - (q[tup].sum(1) if act.name == "gauss" else 0.0))
            return NeuronMoments(out, None, "closed form")
        lmat = _gaussian_factor(k0)
        r = lmat.shape[1]
        if act.name in _HOMOGENEOUS and r <= 2:
            deg = _HOMOGENEOUS[act.name]
            e, w = _angular_nodes(lmat)
            phi = _act(spec, e @ lmat.T, np.broadcast_to(q, (len(e), m)).copy())
            ang = _weighted_monomials(phi, w, max_order)
            radial = {n: 2 ** (n * deg / 2) * special.gamma((r + n * deg) / 2) / special.gamma(r / 2)
                      for n in range(1, max_order + 1)}
            return NeuronMoments({n: radial[n] * ang[n] for n in ang}, None, "exact angular quadrature")
        if act.smooth and r <= 3:
            t, w = np.polynomial.hermite.hermgauss(_GH_DEGREE[r])
            grid = np.stack(np.meshgrid(*([t] * r), indexing="ij"), -1).reshape(-1, r) * np.sqrt(2)
            wts = np.prod(np.stack(np.meshgrid(*([w] * r), indexing="ij"), -1).reshape(-1, r), 1) / np.pi ** (r / 2)
            phi = _act(spec, grid @ lmat.T, np.broadcast_to(q, (len(grid), m)).copy())
            return NeuronMoments(_weighted_monomials(phi, wts, max_order), None, f"Gauss–Hermite (rank {r})")
    elif (_is_phase_layer(spec) and isinstance(first.weight, Normal) and spec.amplitude is None
          and act.name == "cos"):
        return NeuronMoments(_closed_phase(spec, x, max_order), None, "closed form")
    return _mc_neuron_moments(spec, x, max_order, mc_samples, seed)


def _mc_neuron_moments(spec, x, max_order, n_samples, seed) -> NeuronMoments:
    """Single-neuron Monte Carlo: 16 blocks; block means give a jackknife error."""
    from ..ensemble.accumulator import Accumulator
    from ..ensemble.sampling import sample_first_layer_features

    n_blocks, per = 16, max(1, n_samples // 16)
    gen = torch.Generator().manual_seed(int(seed))
    blocks = []
    for _ in range(n_blocks):
        phi, _ = sample_first_layer_features(spec, x, x[:1], per, gen)
        blocks.append(Accumulator.from_samples(phi.numpy(), max_order))
    total = blocks[0]
    for b in blocks[1:]:
        total = total + b
    vals = total.moments()
    for n, v in vals.items():
        check(bool(np.all(np.isfinite(v))), "spec", str(spec),
              "activations and densities with finite single-neuron moments up to the requested order")
    return NeuronMoments(vals, [(total - b).moments() for b in blocks], "monte carlo")


def _density_moment(density, n: int, scale: float = 1.0) -> float:
    """E[(scale · ŵ)^n]."""
    if isinstance(density, (Normal, Uniform)):
        return scale**n * density.moment(n)
    gen = torch.Generator().manual_seed(12345)
    sample = density.sample((1 << 20,), gen, torch.float64) * scale
    return float((sample**n).mean())


def _scalar_cumulants(density, max_order: int) -> dict[int, float]:
    """κ_n of a scalar density (the output bias)."""
    mom = {n: np.array([_density_moment(density, n)]) for n in range(1, max_order + 1)}
    cum = moments_to_cumulants(mom, 1, max_order)
    return {n: float(c[0]) for n, c in cum.items()}


@dataclass(frozen=True)
class SingleLayerTheory:
    """Exact moments and connected correlators (orders 1..R) of a one-hidden-layer spec at its width."""

    moments: dict[int, Correlators]
    connected: dict[int, Correlators]
    method: str
    width: int


def single_layer_correlators(spec: Architecture, x, max_order: int = 4, *, mc_samples: int = 1 << 21,
                             seed: int = 0, neuron: Optional[NeuronMoments] = None) -> SingleLayerTheory:
    """Exact G^(n) and G_c^(n), n ≤ max_order ≤ 6, of a single-hidden-layer spec at width N (any N ≥ 1).

    ``neuron`` reuses :func:`neuron_moments` of the same first layer and inputs (they do not depend on N),
    e.g. when scanning widths."""
    check(isinstance(max_order, int) and 1 <= max_order <= 6, "max_order", max_order, "an integer 1..6")
    x = as_inputs(x, spec.d_in, "x")
    nm = neuron if neuron is not None else neuron_moments(spec, x, max_order, mc_samples=mc_samples, seed=seed)
    check(max(nm.values) >= max_order, "neuron", f"moments up to order {max(nm.values)}",
          f"moments up to max_order = {max_order}")
    readout = spec.layers[-1]
    width, d_out, m = spec.hidden_widths[0], spec.d_out, x.shape[0]
    scale = readout.weight_scale(width)
    w_mom = {n: _density_moment(readout.weight, n, scale) for n in range(0, max_order + 1)}
    bias_kappa = _scalar_cumulants(readout.bias, max_order) if readout.bias is not None else None
    n_sites = m * d_out

    def y_moments(neuron: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        out = {}
        for n in range(1, max_order + 1):
            tup = sorted_tuples(n_sites, n)
            inp, comp = tup // d_out, tup % d_out
            wfac = np.ones(len(tup))
            for a in range(d_out):
                counts = (comp == a).sum(1)
                wfac *= np.array([w_mom[c] for c in counts]) if d_out > 1 else w_mom[n]
            out[n] = wfac * neuron[n][tuple_rank(np.sort(inp, 1), m)]
        return out

    def phi_cumulants(neuron: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        cum = moments_to_cumulants(y_moments(neuron), n_sites, max_order)
        cum = {n: width * c for n, c in cum.items()}
        if bias_kappa is not None:
            for n in cum:
                comp = sorted_tuples(n_sites, n) % d_out
                same = np.all(comp == comp[:, :1], axis=1)
                cum[n] = cum[n] + np.where(same, bias_kappa[n], 0.0)
        return cum

    cum = phi_cumulants(nm.values)
    mom = cumulants_to_moments(cum, n_sites, max_order)
    err_c = err_m = None
    if nm.replicates is not None:  # jackknife through the whole (nonlinear) map
        k = len(nm.replicates)
        reps_c = [phi_cumulants(r) for r in nm.replicates]
        reps_m = [cumulants_to_moments(c, n_sites, max_order) for c in reps_c]
        jack = lambda reps, n: np.sqrt((k - 1) / k * ((np.stack([r[n] for r in reps]) - np.mean(  # noqa: E731
            [r[n] for r in reps], 0)) ** 2).sum(0))
        err_c = {n: jack(reps_c, n) for n in cum}
        err_m = {n: jack(reps_m, n) for n in mom}
    label = f"exact single layer, N={width} ({nm.method})"
    make = lambda n, v, e, conn: Correlators(order=n, connected=conn, values=v, n_sites=n_sites, d_out=d_out,  # noqa
                                            source="predicted", label=label, stderr=e, width_order="exact")
    return SingleLayerTheory({n: make(n, mom[n], None if err_m is None else err_m[n], False) for n in mom},
                             {n: make(n, cum[n], None if err_c is None else err_c[n], True) for n in cum},
                             nm.method, width)
