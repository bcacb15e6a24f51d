"""Infinite-width kernels (:func:`nnft.theory.kernels`): NNGP and NTK against closed forms, Monte Carlo
ensembles of wide networks, an empirical NTK, and the kernel contracts (symmetry, PSD, block consistency).

Formulas: PHYSICS.md §2 (presets), §3 (NNGP recursion), §7 (NTK recursion).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np
import pytest
import torch
from scipy import integrate, special

import nnft
from nnft.spec import Activation, Architecture, Layer, Normal, Uniform, UniformBall
from nnft.spec import cos_net, erf_net, gauss_net, mlp, relu_net, scalar_net
from nnft.theory import kernels


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tensors here are tiny (M ≤ 8 inputs); on a shared 2-core machine torch's intra-op threads only
    contend (measured 10× slower for the empirical NTK). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _points(n: int, d: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal((n, d))


def _k0(x1: np.ndarray, x2: np.ndarray, sw0: float, sb0: float) -> np.ndarray:
    """K0(x, x') = σ_b0² + σ_W0² x·x'/d."""
    return sb0**2 + sw0**2 * (x1 @ x2.T) / x1.shape[1]


def _sqdist(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    return ((x1[:, None, :] - x2[None, :, :]) ** 2).sum(-1)


def _assert_rel(got: torch.Tensor | np.ndarray, want: np.ndarray, rtol: float, atol: float = 0.0) -> None:
    got = np.asarray(got)
    err = np.abs(got - want)
    bad = err > rtol * np.abs(want) + atol
    assert not bad.any(), f"max rel err {np.max(err / np.maximum(np.abs(want), 1e-300)):.2e}\n{got}\n{want}"


# ========================================================================================================
# (a) presets against the closed forms of PHYSICS.md §2
# ========================================================================================================
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("sig", [(1.0, 1.0, 1.0, 1.0), (1.3, 0.7, 0.9, 0.4)], ids=["unit", "general"])
def test_erf_net_arcsin(d: int, sig: tuple) -> None:
    sw0, sb0, sw1, sb1 = sig
    x1, x2 = _points(6, d, 1), _points(4, d, 2)
    k0, a, b = _k0(x1, x2, sw0, sb0), np.diag(_k0(x1, x1, sw0, sb0)), np.diag(_k0(x2, x2, sw0, sb0))
    want = sb1**2 + sw1**2 * (2 / np.pi) * np.arcsin(2 * k0 / np.sqrt(np.outer(1 + 2 * a, 1 + 2 * b)))
    spec = erf_net(50, d, sigma_w0=sw0, sigma_b0=sb0, sigma_w1=sw1, sigma_b1=sb1)
    _assert_rel(kernels(spec, x1, x2).nngp, want, 1e-8)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("sig", [(1.0, 0.0, 1.0, 0.0), (1.3, 0.7, 0.9, 0.4)], ids=["default-no-bias", "general"])
def test_relu_net_arccos(d: int, sig: tuple) -> None:
    sw0, sb0, sw1, sb1 = sig
    x1, x2 = _points(6, d, 3), _points(4, d, 4)
    k0, a, b = _k0(x1, x2, sw0, sb0), np.diag(_k0(x1, x1, sw0, sb0)), np.diag(_k0(x2, x2, sw0, sb0))
    cos_t = np.clip(k0 / np.sqrt(np.outer(a, b)), -1, 1)
    theta = np.arccos(cos_t)
    want = sb1**2 + sw1**2 * np.sqrt(np.outer(a, b)) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * cos_t)
    spec = relu_net(50, d) if sig[1] == 0.0 else relu_net(50, d, sigma_w0=sw0, sigma_b0=sb0, sigma_w1=sw1,
                                                              sigma_b1=sb1)
    # Without biases in d = 1, θ ∈ {0, π}: inputs of opposite sign give K = 0 exactly (relu(u) relu(−λu) = 0),
    # which the numpy formula reproduces only to round-off (sin π ≈ 1e-16); hence a 1e-14 absolute floor.
    _assert_rel(kernels(spec, x1, x2).nngp, want, 1e-8, atol=1e-14 * np.abs(want).max())


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("sb0", [1.0, 0.3])
def test_gauss_net_rbf(d: int, sb0: float) -> None:
    """K = σ_b1² + σ_W1² exp(−σ_W0²|x − x'|²/(2d)), independent of σ_b0."""
    sw0, sw1, sb1 = 1.2, 0.8, 0.5
    x1, x2 = _points(5, d, 5, 0.7), _points(3, d, 6, 0.7)
    want = sb1**2 + sw1**2 * np.exp(-(sw0**2) * _sqdist(x1, x2) / (2 * d))
    spec = gauss_net(50, d, sigma_w0=sw0, sigma_b0=sb0, sigma_w1=sw1, sigma_b1=sb1)
    _assert_rel(kernels(spec, x1, x2).nngp, want, 1e-8)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_cos_net_rbf(d: int) -> None:
    """G^(2) = (σ_a²/2) exp(−σ_w²|x − y|²/(2d)) (uniform phase; a closed form, no quadrature)."""
    sa, sw = 1.4, 0.9
    x1, x2 = _points(5, d, 7), _points(3, d, 8)
    res = kernels(cos_net(50, d, sigma_a=sa, sigma_w=sw), x1, x2)
    _assert_rel(res.nngp, sa**2 / 2 * np.exp(-(sw**2) * _sqdist(x1, x2) / (2 * d)), 1e-8)
    assert res.method == "closed form" and res.nngp_stderr is None


def _scalar_propagator(d: int, r: float, mass: float, cutoff: float) -> float:
    """G(r) = ∫_{|p|<Λ} d^dp/(2π)^d e^{ip·x}/(p² + m²), by the elementary 1-D forms of PHYSICS.md §2.

    d = 1: (1/π) ∫_0^Λ cos(pr)/(p²+m²) dp (QAWO cosine weight);
    d = 3: (1/(2π² r)) ∫_0^Λ p sin(pr)/(p²+m²) dp (J_{1/2}(z) = sqrt(2/(πz)) sin z), r = 0: (1/(2π²))∫ p²/(p²+m²);
    d = 2: the general radial form (2π)^{−1} ∫_0^Λ p J_0(pr)/(p²+m²) dp.
    """
    m2 = mass * mass
    kw = dict(limit=500, epsabs=1e-14, epsrel=1e-12)
    if d == 1:
        if r == 0.0:
            return math.atan(cutoff / mass) / (math.pi * mass)  # (1/π) ∫_0^Λ dp/(p²+m²), in closed form
        return integrate.quad(lambda p: 1 / (p * p + m2), 0, cutoff, weight="cos", wvar=r, **kw)[0] / math.pi
    if d == 3:
        if r == 0.0:
            return (cutoff - mass * math.atan(cutoff / mass)) / (2 * math.pi**2)  # ∫ p²/(p²+m²) in closed form
        return integrate.quad(lambda p: p / (p * p + m2), 0, cutoff, weight="sin", wvar=r, **kw)[0] / (
            2 * math.pi**2 * r)
    assert d == 2
    return integrate.quad(lambda p: p * special.j0(p * r) / (p * p + m2), 0, cutoff, **kw)[0] / (2 * math.pi)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("mass,cutoff", [(1.0, 10.0), (1.5, 4.0)])
def test_scalar_net_propagator(d: int, mass: float, cutoff: float) -> None:
    x1 = np.concatenate([np.zeros((1, d)), _points(4, d, 9, 0.8)])
    x2 = np.concatenate([np.zeros((1, d)), _points(3, d, 10, 0.8)])
    r = np.sqrt(_sqdist(x1, x2))
    want = np.vectorize(lambda rr: _scalar_propagator(d, float(rr), mass, cutoff))(r)
    res = kernels(scalar_net(50, d, mass=mass, cutoff=cutoff), x1, x2)
    assert res.method == "radial quadrature"
    # G(r) oscillates through zero (period ~2π/Λ in r); next to a zero crossing a relative tolerance is
    # meaningless, so an absolute floor of 1e-10·G(0) (both quadratures are good to ~1e-12 absolute) is added.
    _assert_rel(res.nngp, want, 1e-8, atol=1e-10 * want[0, 0])


# ========================================================================================================
# (b) the deep NNGP recursion against Monte Carlo over wide networks
# ========================================================================================================
_NP_ACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0), "erf": special.erf}


def _deep_readout_kernel_samples(act: str, x: np.ndarray, depth: int, width: int, n_nets: int, sw: float,
                                 sb: float, seed: int) -> np.ndarray:
    """Per-network S(x, x') = E[φ(x)φ(x') | last hidden layer] for i.i.d. width-N MLPs, shape (n_nets, M, M).

    Exact sampler of the finite-width network at the M inputs: given layer l's post-activations h (N × M),
    each row of z^(l+1) = W h + b is independent N(0, σ_b² + σ_W² hᵀh/N) (W ~ N(0, σ_W²/N), b ~ N(0, σ_b²)),
    so it is drawn from that M × M covariance instead of through an N × N weight matrix. The readout is
    integrated out analytically (Rao–Blackwell): S = σ_b² + σ_W² h_L·h_L'/N, with E[S] = G^(2) exactly.
    """
    rng = np.random.default_rng(seed)
    m, d = x.shape
    z = rng.standard_normal((n_nets, width, d)) @ x.T * (sw / math.sqrt(d)) + sb * rng.standard_normal(
        (n_nets, width, 1))
    for layer in range(1, depth + 1):
        h = _NP_ACT[act](z)
        cov = sb**2 + sw**2 * np.einsum("kim,kin->kmn", h, h) / width
        if layer == depth:
            return cov
        chol = np.linalg.cholesky(cov)
        z = rng.standard_normal((n_nets, width, m)) @ np.swapaxes(chol, 1, 2)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("act,sw,sb", [("tanh", 1.5, 0.3), ("relu", 1.4, 0.2), ("erf", 1.3, 0.5)])
def test_deep_nngp_matches_wide_ensemble(act: str, sw: float, sb: float) -> None:
    """3 hidden layers of width N = 512, 1000 networks, z-scores on G^(2) below 5.

    Why 5σ holds: G^(2) of a deep MLP has a finite-width bias O(L/N) relative to K (the nonlinear dual
    map of a kernel that fluctuates by O(N^{-1/2}) picks up its O(1/N) variance; PHYSICS.md §4). Measured
    with this sampler it is |bias|/K ≈ (0.2–1.5)/N, i.e. ≲ 3e-3 at N = 512, while the Monte Carlo error of
    E[S] is ≈ 1.5–5e-3 of the kernel scale: the bias is below one standard error, so |z| < 5 fails only
    for a real discrepancy. The second assertion shows the test has power.
    """
    x = np.array([[0.3, -0.5], [1.0, 0.2], [-0.7, 0.9], [0.1, 0.1], [1.2, -1.1]])
    samples = _deep_readout_kernel_samples(act, x, depth=3, width=512, n_nets=1000, sw=sw, sb=sb, seed=11)
    mean, se = samples.mean(0), samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
    spec = mlp(2, [512] * 3, activation=act, sigma_w=sw, sigma_b=sb)
    k = kernels(spec, x).nngp.numpy()
    z = (mean - k) / se
    assert np.abs(z).max() < 5.0, z
    scale = np.sqrt(np.outer(np.diag(k), np.diag(k)))
    assert np.max(se / scale) < 1e-2  # power: an error of 5% of sqrt(K(x,x)K(x',x')) would be detected


def test_nngp_matches_nnft_ensemble_measurement() -> None:
    """End to end through nnft's own sampler (nnft.measure, readout estimator): a 2-hidden-layer ReLU MLP
    of width 512. Same bias argument as above (O(1/N) ≈ 2e-3 relative, below the ~1% standard error)."""
    x = np.array([[0.5, -0.2], [-0.4, 0.8], [1.0, 1.0]])
    spec = mlp(2, [512, 512], activation="relu", sigma_w=1.4, sigma_b=0.3)
    meas = nnft.measure(spec, x, nnft.EnsembleConfig(n_networks=300, chunk_size=30, max_order=2,
                                                     estimator="readout", dtype="float32"))
    g2, se = meas.moments[2].full(), meas.moments[2].full("stderr")
    z = (g2 - kernels(spec, x).nngp.numpy()) / se
    assert np.abs(z).max() < 5.0, z
    assert np.max(se / np.abs(g2)) < 0.015  # power: a ~7% error would be detected


# ========================================================================================================
# (c) NTK
# ========================================================================================================
def _empirical_ntk(act: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, width: int, sw: float, sb: float,
                   n_nets: int, seed: int) -> torch.Tensor:
    """Θ = J Jᵀ of 2-hidden-layer MLPs in the NTK parameterization (PHYSICS.md §7), one per network:
    stored parameters ~ N(0, 1); forward multipliers σ_W/sqrt(fan_in) on weights and σ_b on biases.
    J = ∂φ(x_m)/∂θ by autograd, one backward pass per input. Returns (n_nets, M, M)."""
    gen = torch.Generator().manual_seed(seed)
    d = x.shape[1]
    shapes = {"w1": (width, d), "b1": (width,), "w2": (width, width), "b2": (width,), "w3": (1, width), "b3": (1,)}
    out = []
    for _ in range(n_nets):
        p = {k: torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for k, s in shapes.items()}
        h = sw / math.sqrt(d) * x @ p["w1"].T + sb * p["b1"]
        h = sw / math.sqrt(width) * act(h) @ p["w2"].T + sb * p["b2"]
        phi = (sw / math.sqrt(width) * act(h) @ p["w3"].T + sb * p["b3"])[:, 0]
        rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(phi[m], list(p.values()), retain_graph=True)])
                for m in range(x.shape[0])]
        jac = torch.stack(rows)
        out.append(jac @ jac.T)
    return torch.stack(out).detach()


@pytest.mark.parametrize("act,fn,sw,sb", [("relu", torch.relu, 1.4, 0.3), ("erf", torch.erf, 1.3, 0.5)])
def test_ntk_matches_empirical_ntk(act: str, fn, sw: float, sb: float) -> None:
    """Infinite-width Θ against the average of 16 empirical NTKs at width 512.

    The empirical NTK of one network fluctuates by O(N^{-1/2}) relative (measured ≈ (1.5–2.5)/sqrt(N) on
    the diagonal, i.e. 7–10% at N = 512), so the mean of 16 has a ≲2.5% standard error; its finite-width
    bias is O(L/N) ≈ 0.4%, far below that. The test is |mean − Θ| < 5 standard errors (errors estimated
    from the 16 networks, 15 degrees of freedom).
    """
    x = torch.tensor([[0.3, -0.5], [1.0, 0.2], [-0.7, 0.9], [0.1, 0.1], [1.2, -1.1]], dtype=torch.float64)
    spec = mlp(2, [512, 512], activation=act, sigma_w=sw, sigma_b=sb, parameterization="ntk")
    theta = kernels(spec, x, ntk=True).ntk
    emp = _empirical_ntk(fn, x, 512, sw, sb, n_nets=16, seed=5)
    mean, se = emp.mean(0), emp.std(0) / math.sqrt(emp.shape[0])
    z = (mean - theta) / se
    assert z.abs().max() < 5.0, z
    # power, and the expected O(N^{-1/2}/sqrt(16)) spread: a ~20% error on the diagonal would be detected
    assert torch.all(se.diagonal() / theta.diagonal() < 0.04)


_X_NTK = np.array([[0.3, -0.5], [1.0, 0.2], [-0.7, 0.9], [0.1, 0.1], [1.2, -1.1]])


@pytest.mark.parametrize("depth", [1, 3])
def test_fused_relu_equals_generic_path(depth: int) -> None:
    """The fused numba path (relu) against the generic torch recursion, forced by the activation
    leaky_relu(0), which is the same function with the same closed forms but no fused kernel."""
    spec = mlp(2, [64] * depth, activation="relu", sigma_w=1.4, sigma_b=0.3, parameterization="ntk")
    generic = replace(spec, activation=Activation("leaky_relu", 0.0))
    a, b = kernels(spec, _X_NTK, ntk=True), kernels(generic, _X_NTK, ntk=True)
    _assert_rel(a.nngp, b.nngp.numpy(), 1e-12)
    off = ~np.eye(len(_X_NTK), dtype=bool)
    _assert_rel(a.ntk.numpy()[off], b.ntk.numpy()[off], 1e-12)
    # Diagonal: the generic path forms ρ = c/sqrt(ab) with c = x·x and a = |x|² computed separately, so ρ can
    # be 1 − 1e-16 and θ = arccos ρ ≈ sqrt(2e-16) ≈ 1e-8 enters Σ̇ = (π − θ)/(2π) linearly (the fused path
    # uses the exact ρ = 1). That ~1e-8 conditioning, not an error, is the diagonal's tolerance.
    _assert_rel(a.ntk.diagonal(), b.ntk.diagonal().numpy(), 1e-7)


@pytest.mark.parametrize("depth", [1, 3])
def test_fused_erf_equals_generic_quadrature(depth: int) -> None:
    """The fused erf path against the generic path with erf given as a user callable ("torch:erf", so
    Gauss–Hermite quadrature of the dual and derivative kernels at every layer, the first included).
    Pre-activation variances here reach ~5, where 48 nodes give only ~1e-5 (test_dual_kernels); at degree
    192 the quadrature is at round-off. depth = 1 checks that ``quadrature_degree`` reaches the first layer."""
    spec = mlp(2, [64] * depth, activation="erf", sigma_w=1.4, sigma_b=0.3, parameterization="ntk")
    generic = replace(spec, activation=Activation("torch:erf"))
    a, b = kernels(spec, _X_NTK, ntk=True), kernels(generic, _X_NTK, ntk=True, quadrature_degree=192)
    assert a.method == "closed form" and b.method == "quadrature"
    _assert_rel(a.nngp, b.nngp.numpy(), 1e-11)
    _assert_rel(a.ntk, b.ntk.numpy(), 1e-11)


# ========================================================================================================
# (d) contracts over a registry of specs: symmetry, PSD, Θ − K PSD, block consistency
# ========================================================================================================
def _uniform_first_layer(width: int = 16, d: int = 2) -> Architecture:
    return Architecture(d_in=d, activation=Activation("erf"), name="uniform-erf",
                        layers=(Layer(width=width, weight=Uniform.with_std(1.0), bias=Normal(0.8)),
                                Layer(width=1, weight=Normal(1.0), bias=Normal(0.5))))


REGISTRY: dict[str, Callable[[], Architecture]] = {
    "erf-net": lambda: erf_net(10, 2),
    "relu-net": lambda: relu_net(10, 2),
    "gauss-net": lambda: gauss_net(10, 2),
    "cos-net": lambda: cos_net(10, 2),
    "scalar-net": lambda: scalar_net(10, 2, mass=1.0, cutoff=4.0),
    "relu-mlp-L3": lambda: mlp(2, [32] * 3, activation="relu", sigma_w=1.4, sigma_b=0.2, parameterization="ntk"),
    "erf-mlp-L3": lambda: mlp(2, [32] * 3, activation="erf", sigma_w=1.3, sigma_b=0.5, parameterization="ntk"),
    "tanh-mlp-L3": lambda: mlp(2, [32] * 3, activation="tanh", sigma_w=1.5, sigma_b=0.3, parameterization="ntk"),
    "gelu-mlp-L2": lambda: mlp(2, [32] * 2, activation="gelu", parameterization="ntk"),
    "gauss-mlp-L2": lambda: replace(mlp(2, [32] * 2, activation="gauss", sigma_b=0.5), name="gauss-deep"),
    "uniform-first-layer": _uniform_first_layer,
    "ball-first-layer-cos": lambda: Architecture(
        d_in=2, activation=Activation("cos"), name="ball-cos",
        layers=(Layer(width=8, weight=UniformBall(3.0), bias=Uniform(-math.pi, math.pi)),
                Layer(width=1, weight=Normal(1.0), bias=None))),
}
_MC = dict(mc_samples=1 << 14, seed=3)
_XA, _XB = _points(5, 2, 21, 0.8), _points(3, 2, 22, 0.8)


def _has_ntk(spec: Architecture) -> bool:
    return spec.amplitude is None


def _assert_psd(k: np.ndarray, what: str) -> None:
    eig = np.linalg.eigvalsh((k + k.T) / 2)
    assert eig.min() >= -1e-10 * eig.max(), (what, eig)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_kernel_contracts(name: str) -> None:
    spec = REGISTRY[name]()
    x = np.concatenate([_XA, _XB])
    ntk = _has_ntk(spec)
    full = kernels(spec, x, ntk=ntk, **_MC)
    for what, k in (("nngp", full.nngp), ("ntk", full.ntk)):
        if k is None:
            continue
        k = k.numpy()
        assert k.shape == (8, 8) and k.dtype == np.float64 and np.isfinite(k).all(), what
        np.testing.assert_allclose(k, k.T, rtol=1e-12, atol=0, err_msg=what)
        _assert_psd(k, what)
    if ntk:
        # Θ^(L+1) − Σ^(L+1) = Θ^(L) ∘ Σ̇^(L+1), a Hadamard product of PSD matrices: PSD (Schur)
        _assert_psd((full.ntk - full.nngp).numpy(), "ntk - nngp")
    # block consistency: K(x1, x2) is the off-diagonal block of K on the concatenation
    block = kernels(spec, _XA, _XB, ntk=ntk, **_MC)
    np.testing.assert_allclose(block.nngp.numpy(), full.nngp.numpy()[:5, 5:], rtol=1e-12, atol=0)
    if ntk:
        np.testing.assert_allclose(block.ntk.numpy(), full.ntk.numpy()[:5, 5:], rtol=1e-12, atol=0)
    # and the diagonal of the matrix is the kernel of each point alone
    alone = np.array([float(kernels(spec, x[i:i + 1], **_MC).nngp[0, 0]) for i in range(0, 8, 3)])
    np.testing.assert_allclose(alone, np.diag(full.nngp.numpy())[::3], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_kernel_of_x_equals_kernel_of_x_x(name: str) -> None:
    """k(X) equals k(X, X). The NTK diagonal of ReLU-type nets is compared at 1e-7: with x2 given, ρ(x, x)
    is formed from separately rounded numbers (see test_fused_relu_equals_generic_path)."""
    spec = REGISTRY[name]()
    ntk = _has_ntk(spec)
    a, b = kernels(spec, _XA, ntk=ntk, **_MC), kernels(spec, _XA, _XA, ntk=ntk, **_MC)
    np.testing.assert_allclose(a.nngp.numpy(), b.nngp.numpy(), rtol=1e-12, atol=0)
    if ntk:
        off = ~np.eye(5, dtype=bool)
        np.testing.assert_allclose(a.ntk.numpy()[off], b.ntk.numpy()[off], rtol=1e-12, atol=0)
        np.testing.assert_allclose(a.ntk.numpy().diagonal(), b.ntk.numpy().diagonal(), rtol=1e-7, atol=0)


def test_kernel_at_a_constant_zero_neuron() -> None:
    """At x = 0 a bias-free first layer is the constant 0: with σ = step, φ(0) = Σ W step(0) = 0, so
    K(0, ·) = 0 exactly (not the ρ → 1 limit 1/2 of the arc-cosine formula)."""
    spec = mlp(1, [16], activation="step", sigma_w=1.3, bias=False)
    k = kernels(spec, np.array([[0.0], [0.7], [-1.2]])).nngp.numpy()
    assert np.all(k[0] == 0.0) and np.all(k[:, 0] == 0.0)
    assert k[1, 1] == pytest.approx(1.3**2 / 2, rel=1e-14) and k[1, 2] == 0.0


# ========================================================================================================
# (e) the Monte Carlo first-layer fallback reports an honest standard error
# ========================================================================================================
def _uniform_erf_exact(x: np.ndarray, sb0: float, sw1: float, sb1: float) -> np.ndarray:
    """K(x, x') = σ_b1² + σ_W1² E[erf(wx + b) erf(wx' + b)], w ~ U[−√3, √3] (d = 1), b ~ N(0, σ_b0²), by
    nested quadrature (an exact reference for the d = 1 Uniform-weight erf layer)."""
    h = math.sqrt(3.0)

    def entry(x1: float, x2: float) -> float:
        def over_b(w: float) -> float:
            f = lambda b: math.exp(-0.5 * (b / sb0) ** 2) * math.erf(w * x1 + b) * math.erf(w * x2 + b)  # noqa: E731
            return integrate.quad(f, -12 * sb0, 12 * sb0, epsabs=0, epsrel=1e-10, limit=200)[0] / (
                sb0 * math.sqrt(2 * math.pi))

        return integrate.quad(over_b, -h, h, epsabs=0, epsrel=1e-10, limit=200)[0] / (2 * h)

    e = np.array([[entry(a, b) for b in x[:, 0]] for a in x[:, 0]])
    return sb1**2 + sw1**2 * e


def _uniform_erf_1d(width: int = 8) -> Architecture:
    return Architecture(d_in=1, activation=Activation("erf"), name="uniform-erf-1d",
                        layers=(Layer(width=width, weight=Uniform.with_std(1.0), bias=Normal(0.8)),
                                Layer(width=1, weight=Normal(1.0), bias=Normal(0.5))))


_X1D = np.array([[-1.0], [0.2], [0.9]])


def test_monte_carlo_first_layer_stderr_is_calibrated() -> None:
    """Over 40 seeds, z = (K_mc − K_exact)/stderr has mean z² ≈ 1 and no |z| ≥ 5.

    The 6 unique entries are correlated (same neurons), so the effective number of z's is between 40 and
    240; the window [0.5, 1.8] for mean z² is about ±3σ for 40 independent z²'s (sd of the mean sqrt(2/40)).
    """
    spec = _uniform_erf_1d()
    exact = _uniform_erf_exact(_X1D, 0.8, 1.0, 0.5)
    iu = np.triu_indices(3)
    zs = []
    for seed in range(40):
        res = kernels(spec, _X1D, mc_samples=1 << 12, seed=seed)
        assert res.method == "monte carlo"
        zs.append(((res.nngp.numpy() - exact) / res.nngp_stderr.numpy())[iu])
    zs = np.array(zs)
    assert np.abs(zs).max() < 5.0
    assert 0.5 < np.mean(zs**2) < 1.8, np.mean(zs**2)


def test_monte_carlo_first_layer_stderr_scales_as_inverse_sqrt_samples() -> None:
    """stderr ∝ n^{-1/2}: 16× the samples give a 4× smaller error bar (to 10%, the sampling error of a
    variance estimate from 2^12 samples being ~2%)."""
    spec = _uniform_erf_1d()
    small = kernels(spec, _X1D, mc_samples=1 << 12, seed=1).nngp_stderr.numpy()
    big = kernels(spec, _X1D, mc_samples=1 << 16, seed=2).nngp_stderr.numpy()
    np.testing.assert_allclose(small / big, 4.0, rtol=0.1)


def test_monte_carlo_first_layer_agrees_with_ensemble() -> None:
    """The MC kernel against an independent nnft.measure ensemble (one hidden layer: G^(2) = K exactly at
    any width, so the two differ only by their two independent statistical errors)."""
    spec = _uniform_erf_1d(width=8)
    res = kernels(spec, _X1D, mc_samples=1 << 16, seed=7)
    meas = nnft.measure(spec, _X1D, nnft.EnsembleConfig(n_networks=20000, chunk_size=2000, max_order=2,
                                                        estimator="readout", dtype="float64", seed=1))
    g2, se = meas.moments[2].full(), meas.moments[2].full("stderr")
    z = (res.nngp.numpy() - g2) / np.sqrt(res.nngp_stderr.numpy() ** 2 + se**2)
    assert np.abs(z).max() < 5.0, z
    # power: the combined error is < 0.5% of the kernel scale, so a 2.5% error would show
    assert np.max(np.sqrt(res.nngp_stderr.numpy() ** 2 + se**2)) < 5e-3 * np.abs(g2).max()
