"""Infinite-width kernels of any spec: NNGP (arXiv:1711.00165, 1804.11271) and NTK (arXiv:1806.07572).

NNGP recursion in the standard convention (PHYSICS.md §3), with σ_W² := n_{l−1}·E[W²] per layer:
    K^(1)(x, x') = σ_b² + σ_W² x·x'/d
    K^(l+1)(x, x') = σ_b² + σ_W² E_{(u,v)~N(0, Σ^(l))}[σ(u)σ(v)]
NTK (NTK parameterization, PHYSICS.md §7):
    Θ^(1) = K^(1),   Θ^(l+1) = Θ^(l) Σ̇^(l+1) + K^(l+1),   Σ̇^(l+1) = σ_W² E[σ'(u)σ'(v)]
The output kernel is K^(L+1) (independent output components: K_ab = δ_ab K).

The first hidden layer sees the actual first-layer density, which need not be Gaussian:
  * Gaussian weights and bias: the dual kernel of K^(1) (closed form or Gauss–Hermite);
  * cos/sin with a uniform phase b ~ U[−π, π] and isotropic weights (Cos-net, Scalar-net, designed
    spectra, PHYSICS.md §2 "general Euclidean-invariant input layer"): E = ½ E_w[F(w)² cos(w·(x − x'))],
    exactly, via a closed form (Gaussian w) or the radial Bessel integral
    E_w[g(|w|) cos(w·r)] = ∫ dp P_rad(p) g(p) Γ(d/2) (2/(p r))^{d/2−1} J_{d/2−1}(p r)  (:func:`radial_fourier`);
  * anything else: single-neuron Monte Carlo with a fixed seed, returned with its standard error.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import numpy as np
import torch
from scipy import integrate, special

from ..errors import ConfigError, NonGaussianInputError, check, fail
from ..spec import Architecture, Normal, Spectral, Uniform, UniformBall
from ..spec._density import density_std
from .gaussian import dual_kernel

__all__ = ["Kernels", "kernels", "nngp", "ntk", "first_layer_expectation", "as_inputs", "radial_fourier"]

Tensor = torch.Tensor
Method = Literal["closed form", "quadrature", "radial quadrature", "monte carlo"]


def as_inputs(x, d_in: Optional[int] = None, name: str = "x") -> Tensor:
    """Validate inputs: a finite (M, d) array (a 1-D array is taken as M points in d = 1), float64."""
    try:
        t = torch.as_tensor(np.asarray(x, dtype=np.float64) if not isinstance(x, Tensor) else x,
                            dtype=torch.float64)
    except (TypeError, ValueError):
        raise fail(name, type(x).__name__, "a numeric array of shape (M, d)") from None
    if t.ndim == 1 and (d_in in (None, 1)):
        t = t[:, None]
    check(t.ndim == 2 and t.shape[0] >= 1, f"{name}.shape", tuple(t.shape), "(M, d) with M >= 1")
    if d_in is not None:
        check(t.shape[1] == d_in, f"{name}.shape", tuple(t.shape), f"(M, {d_in}) to match the spec's d_in = {d_in}")
    check(bool(torch.isfinite(t).all()), name, "non-finite values (NaN or inf)", "finite numbers")
    return t.contiguous()


@dataclass(frozen=True)
class Kernels:
    """Infinite-width kernels between two input sets.

    nngp : (M1, M2) output NNGP kernel K^(L+1).
    ntk : (M1, M2) NTK Θ^(L+1) (NTK parameterization), or None if not requested.
    nngp_stderr : (M1, M2) Monte Carlo standard error when the first layer needed it, else None.
    method : how the first hidden layer's expectation was obtained.
    """

    nngp: Tensor
    ntk: Optional[Tensor]
    nngp_stderr: Optional[Tensor]
    method: str


def _is_phase_layer(spec: Architecture) -> bool:
    first = spec.layers[0]
    return (spec.activation.name in ("cos", "sin") and isinstance(first.bias, Uniform)
            and first.bias.is_full_phase and getattr(first.weight, "isotropic", False))


def _omega(x: float, d: int) -> float:
    """Ω_d(x) = Γ(d/2) (2/x)^{d/2−1} J_{d/2−1}(x): the average of e^{i x n·e} over unit vectors n ∈ S^{d−1}."""
    if x < 1e-12:
        return 1.0
    nu = d / 2 - 1
    return special.gamma(d / 2) * (2 / x) ** nu * special.jv(nu, x)


def _quiet_quad(f: Callable[[float], float], lo: float, hi: float, **kw) -> float:
    """scipy quad whose IntegrationWarning becomes a ConfigError (a cutoff is then needed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", integrate.IntegrationWarning)
        try:
            return integrate.quad(f, lo, hi, **kw)[0]
        except integrate.IntegrationWarning as exc:
            raise fail("cutoff", None if math.isinf(hi) else hi, "a finite cutoff (the radial Fourier integral "
                       f"did not converge: {str(exc).splitlines()[0]})") from None


def radial_fourier(h: Callable[[float], float], r: float, d: int, upper: Optional[float] = None) -> float:
    """I(r) = ∫_0^Λ dp h(p) Ω_d(p r),  Ω_d(x) = Γ(d/2) (2/x)^{d/2−1} J_{d/2−1}(x)  (Λ = ``upper``, None = ∞).

    Ω_d is the angular average of e^{i p·r} (Ω_1 = cos, Ω_3 = sin x/x), so with h(p) = S_{d−1} (2π)^{−d}
    p^{d−1} G̃(p), S_{d−1} = 2π^{d/2}/Γ(d/2), I(r) = ∫_{|p|<Λ} d^dp/(2π)^d G̃(|p|) e^{ip·r} (PHYSICS.md §2).
    Quadrature (scipy QUADPACK): r = 0: ∫ h; finite Λ: one adaptive quad per half period [kπ/r, (k+1)π/r]
    (stable for the oscillating Bessel factor); Λ = ∞: the Fourier integral QAWF in d = 1 (cos) and d = 3
    (sin); in even d the pieces between the first 60 zeros of J_{d/2−1}(pr), summed as an alternating series
    by 25-fold averaging of the partial sums (Euler transform); in odd d ≥ 5 half periods up to the P beyond
    which ∫_P^∞ |h| < 1e-13 ∫_0^∞ |h|. A ConfigError asks for a cutoff where these do not converge.
    """
    hi = math.inf if upper is None else float(upper)
    tight = dict(epsabs=1e-15, epsrel=1e-12, limit=200)
    if r == 0.0:
        return _quiet_quad(h, 0.0, hi, epsabs=0.0, epsrel=1e-12, limit=500)
    if math.isinf(hi) and d in (1, 3):  # QAWF takes an absolute tolerance only: ~1e-13 relative, loosened if needed
        f = h if d == 1 else (lambda p: h(p) / (p * r) if p > 0 else 0.0)
        scale = _quiet_quad(lambda p: abs(h(p) * _omega(p * r, d)), 0.0, 4 * math.pi / r, limit=500)
        for k, rel in enumerate((1e-13, 1e-12, 1e-11, 1e-10)):
            try:
                return _quiet_quad(f, 0.0, math.inf, weight="cos" if d == 1 else "sin", wvar=r,
                                   epsabs=rel * scale, limlst=200)
            except ConfigError:
                if k == 3:
                    raise
    if math.isinf(hi) and d % 2 == 0:  # integer order: pieces between zeros of J_ν(pr), an alternating series
        zeros = special.jn_zeros(d // 2 - 1, 60) / r
        pieces: list[float] = []
        for lo, up in zip(np.concatenate([[0.0], zeros[:-1]]), zeros):
            pieces.append(_quiet_quad(lambda p: h(p) * _omega(p * r, d), lo, up, **tight))
            if len(pieces) >= 8 and max(map(abs, pieces[-4:])) <= 1e-17 * max(map(abs, pieces)):
                return float(sum(pieces))  # a light tail: converged without acceleration
        sums = np.cumsum(pieces)
        for _ in range(25):  # repeated averaging of partial sums (Euler transform) sums the alternating tail
            sums = (sums[:-1] + sums[1:]) / 2
        scale = max(abs(v) for v in pieces[:4])
        check(abs(sums[-1] - sums[-2]) <= 1e-11 * scale, "cutoff", None, "a finite cutoff (the radial Fourier "
              f"integral without one did not converge in d = {d})")
        return float(sums[-1])
    if math.isinf(hi):
        total = _quiet_quad(lambda p: abs(h(p)), 0.0, math.inf, epsabs=0.0, epsrel=1e-10, limit=500)
        hi = math.pi / r
        while _quiet_quad(lambda p: abs(h(p)), hi, math.inf, epsabs=0.0, epsrel=1e-6, limit=500) > 1e-13 * total:
            hi *= 2
            check(hi * r / math.pi <= 1e5, "cutoff", None, f"a finite cutoff (the spectrum's tail is too heavy "
                  f"for the radial Fourier integral without one in d = {d})")
    edges = np.unique(np.concatenate([np.arange(0.0, hi, math.pi / r), [hi]]))
    return float(sum(_quiet_quad(lambda p: h(p) * _omega(p * r, d), lo, up, **tight)
                     for lo, up in zip(edges[:-1], edges[1:])))


def _radial_cos_average(spec: Architecture, r: np.ndarray) -> np.ndarray:
    """E_w[F(|w|)² cos(w·r)] for an isotropic first-layer density, at distances r ≥ 0."""
    first, d = spec.layers[0], spec.d_in
    scale = first.weight_scale(d)
    g = spec.amplitude.squared if spec.amplitude is not None else (lambda p: 1.0)
    if isinstance(first.weight, Normal) and spec.amplitude is None:
        s2 = (first.weight.std * scale) ** 2
        return np.exp(-s2 * r * r / 2)
    if isinstance(first.weight, Spectral):  # |ŵ| ~ q^{d−1} S(q)/Z_d, w = scale·ŵ
        pdf = first.weight.radial_pdf(d)
        h = lambda q: pdf(q) * g(scale * q)  # noqa: E731
        distinct, where = np.unique(r, return_inverse=True)
        vals = np.array([radial_fourier(h, scale * rr, d, first.weight.cutoff) for rr in distinct])
        return vals[where].reshape(r.shape)
    if isinstance(first.weight, UniformBall):
        radius = first.weight.radius * scale
        pdf = lambda p: d * p ** (d - 1) / radius**d  # noqa: E731
        upper = radius
    else:  # Gaussian weights with an amplitude: chi-distributed |w|
        s = first.weight.std * scale
        pdf = lambda p: p ** (d - 1) * np.exp(-p * p / (2 * s * s)) / (  # noqa: E731
            2 ** (d / 2 - 1) * special.gamma(d / 2) * s**d)
        upper = 40 * s
    nu = d / 2 - 1

    def angular(p: float, rr: float) -> float:
        x = p * rr
        if x < 1e-12:
            return 1.0
        return special.gamma(d / 2) * (2 / x) ** nu * special.jv(nu, x)

    out = np.empty_like(r)
    for i, rr in enumerate(r.ravel()):
        val, _ = integrate.quad(lambda p: pdf(p) * g(p) * angular(p, rr), 0.0, upper, limit=2000,
                                epsabs=1e-13, epsrel=1e-11)
        out.ravel()[i] = val
    return out


def _mc_first_layer(spec: Architecture, x1: Tensor, x2: Tensor, which: str, n_samples: int, seed: int):
    """Single-neuron Monte Carlo of E[g(z(x)) g(z(x'))] with its standard error (fixed seed)."""
    from ..ensemble.sampling import sample_first_layer_features

    gen = torch.Generator().manual_seed(seed)
    sums = torch.zeros(x1.shape[0], x2.shape[0], dtype=torch.float64)
    sq = torch.zeros_like(sums)
    done, block = 0, 65536
    while done < n_samples:
        n = min(block, n_samples - done)
        f1, f2 = sample_first_layer_features(spec, x1, x2, n, gen, derivative=(which == "derivative"))
        prod = f1[:, :, None] * f2[:, None, :]
        sums += prod.sum(0)
        sq += (prod * prod).sum(0)
        done += n
    mean = sums / n_samples
    var = (sq / n_samples - mean * mean).clamp_min(0)
    return mean, torch.sqrt(var / n_samples)


def first_layer_expectation(spec: Architecture, x1: Tensor, x2: Tensor, *, which: str = "value",
                            mc_samples: int = 1 << 20, seed: int = 0, quadrature_degree: int = 48):
    """E_θ[g(z(x)) g(z(x'))] over one first-layer neuron (g = σ or σ', times the amplitude F²).

    ``quadrature_degree`` is the Gauss–Hermite degree used for a Gaussian first layer without a closed form.
    Returns (value, stderr or None, method).
    """
    first, d = spec.layers[0], spec.d_in
    if spec.gaussian_first_layer:
        wv, bv = first.weight_var(d), first.bias_var
        k12 = bv + wv * x1 @ x2.T
        a = (bv + wv * (x1 * x1).sum(1))[:, None]
        b = (bv + wv * (x2 * x2).sum(1))[None, :]
        val = dual_kernel(spec.activation, a, b, k12, which=which, degree=quadrature_degree)
        closed = (spec.activation.dual if which == "value" else spec.activation.dual_derivative)(a, b, k12)
        return val, None, "closed form" if closed is not None else "quadrature"
    if _is_phase_layer(spec) and not (which == "derivative" and spec.amplitude is not None):
        r = torch.cdist(x1, x2).numpy()
        val = 0.5 * torch.as_tensor(_radial_cos_average(spec, r), dtype=torch.float64)
        closed = isinstance(first.weight, Normal) and spec.amplitude is None
        return val, None, "closed form" if closed else "radial quadrature"
    if which == "derivative" and spec.amplitude is not None:
        raise fail("kernels(ntk=True)", str(spec), "specs without a neuron amplitude (the NTK of an "
                   "amplitude layer needs F'(w) terms, not implemented)", cls=NonGaussianInputError)
    val, err = _mc_first_layer(spec, x1, x2, which, mc_samples, seed)
    return val, err, "monte carlo"


def first_layer_diagonal(spec: Architecture, x: Tensor, *, mc_samples: int = 1 << 20, seed: int = 0,
                         quadrature_degree: int = 48) -> Tensor:
    """E_θ[g(z(x))²] at each input (the diagonal of :func:`first_layer_expectation`) in O(M) memory."""
    first, d = spec.layers[0], spec.d_in
    if spec.gaussian_first_layer:
        a = first.bias_var + first.weight_var(d) * (x * x).sum(1)
        return dual_kernel(spec.activation, a, a, a, degree=quadrature_degree)
    if _is_phase_layer(spec):
        return torch.full((x.shape[0],), 0.5 * float(_radial_cos_average(spec, np.zeros(1))[0]), dtype=torch.float64)
    from ..ensemble.sampling import sample_first_layer_features

    gen = torch.Generator().manual_seed(seed)
    f, _ = sample_first_layer_features(spec, x, x[:1], mc_samples, gen)
    return (f * f).mean(0)


def _sigma_w2(spec: Architecture, l: int) -> float:
    """σ_W² = fan_in · E[W²] for layer l ≥ 1 (requires fan-in scaling for a width limit)."""
    layer = spec.layers[l]
    check(layer.scaling == "fan_in", f"layers[{l}].scaling", layer.scaling,
          "'fan_in' for every layer after the first (an infinite-width limit needs W ∝ n^{-1/2})")
    return density_std(layer.weight, spec.fan_ins[l]) ** 2


def kernels(spec: Architecture, x1, x2=None, *, ntk: bool = False, quadrature_degree: int = 48,
            mc_samples: int = 1 << 20, seed: int = 0) -> Kernels:
    """NNGP (and optionally NTK) of ``spec`` between inputs x1 (M1, d) and x2 (M2, d) (default x1).

    Uses the fused numba path for deep ReLU/erf MLPs with Gaussian layers (see ``_fused``); the general
    torch recursion otherwise. All float64.
    """
    x1 = as_inputs(x1, spec.d_in, "x1")
    x2 = x1 if x2 is None else as_inputs(x2, spec.d_in, "x2")
    same = x2 is x1
    if (spec.gaussian_first_layer and spec.activation.name in ("relu", "erf")
            and all(l.scaling == "fan_in" for l in spec.layers)):
        from ._fused import fused_nngp_ntk

        sw2 = [density_std(l.weight, f) ** 2 for l, f in zip(spec.layers, spec.fan_ins)]
        sb2 = [l.bias_var for l in spec.layers]
        k, t = fused_nngp_ntk(x1.numpy(), None if same else x2.numpy(), sw2, sb2, spec.activation.name, ntk=ntk)
        return Kernels(torch.from_numpy(k), None if t is None else torch.from_numpy(t), None, "closed form")

    first = spec.layers[0]
    if ntk and spec.amplitude is not None:
        raise fail("kernels(ntk=True)", str(spec), "specs without a neuron amplitude (the NTK of an amplitude "
                   "layer needs F'(w) terms, not implemented)", cls=NonGaussianInputError)
    theta_1 = first.bias_var + first.weight_var(spec.d_in) * x1 @ x2.T if ntk else None
    # layer-1 post-activation expectations: cross, and the two diagonals
    fl = dict(mc_samples=mc_samples, quadrature_degree=quadrature_degree)
    e12, err12, method = first_layer_expectation(spec, x1, x2, seed=seed, **fl)
    e11 = first_layer_diagonal(spec, x1, seed=seed, **fl)
    e22 = e11 if same else first_layer_diagonal(spec, x2, seed=seed, **fl)
    theta = None
    if ntk:
        d12 = first_layer_expectation(spec, x1, x2, which="derivative", seed=seed + 1, **fl)[0]
        sw2 = _sigma_w2(spec, 1)
        theta = theta_1 * sw2 * d12
    for l in range(1, len(spec.layers)):
        sw2, sb2 = _sigma_w2(spec, l), spec.layers[l].bias_var
        k12, k11, k22 = sb2 + sw2 * e12, sb2 + sw2 * e11, sb2 + sw2 * e22
        err = None if err12 is None else sw2 * err12
        if theta is not None and l > 1:
            theta = theta * sw2 * dual_kernel(spec.activation, a, b, c, which="derivative",  # noqa: F821
                                              degree=quadrature_degree)
        if theta is not None:
            theta = theta + k12
        if l == len(spec.layers) - 1:
            return Kernels(k12, theta, err, method)
        a, b, c = k11[:, None], k22[None, :], k12
        e12 = dual_kernel(spec.activation, a, b, c, degree=quadrature_degree)
        e11 = dual_kernel(spec.activation, k11, k11, k11, degree=quadrature_degree)
        e22 = e11 if same else dual_kernel(spec.activation, k22, k22, k22, degree=quadrature_degree)
        err12 = None  # a Monte Carlo error is reported for one hidden layer only (no propagation through σ)
        method = method if spec.activation.dual(k11, k11, k11) is not None else "quadrature"
    raise AssertionError("unreachable")


def nngp(spec: Architecture, x1, x2=None, **kw) -> Tensor:
    """The output NNGP kernel K^(L+1)(x1, x2)."""
    return kernels(spec, x1, x2, **kw).nngp


def ntk(spec: Architecture, x1, x2=None, **kw) -> Tensor:
    """The infinite-width NTK Θ^(L+1)(x1, x2) in NTK parameterization."""
    return kernels(spec, x1, x2, ntk=True, **kw).ntk


def preactivation_variances(spec: Architecture, x) -> list[Tensor]:
    """q_l(x) = Σ^(l)(x, x) for hidden layers l = 1..L at infinite width (exact for l = 1).

    Gauss-net's neuron σ(z; q) = exp(z − q) reads these (PHYSICS.md §2)."""
    x = as_inputs(x, spec.d_in, "x")
    first = spec.layers[0]
    q = first.bias_var + first.weight_var(spec.d_in) * (x * x).sum(1)
    out = [q]
    if spec.depth == 1:
        return out
    e = first_layer_diagonal(spec, x)
    for l in range(1, spec.depth):
        q = spec.layers[l].bias_var + _sigma_w2(spec, l) * e
        out.append(q)
        e = dual_kernel(spec.activation, q, q, q)
    return out
