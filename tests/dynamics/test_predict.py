"""Infinite-width predictions (PHYSICS.md §7): closed forms against integrated linearized models, direct
Gaussian conditioning and a Monte Carlo ensemble evolved by the linear flow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from nnft.dynamics.ntk import MLPParams, mlp_ntk
from nnft.dynamics.predict import Prediction, infinite_width_prediction, nngp_posterior, ntk_flow
from nnft.errors import ConfigError
from nnft.spec import mlp
from nnft.theory.kernels import kernels

F64 = torch.float64


def _data(n_train=6, n_test=4, d=2, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n_train, d))
    xt = g.normal(size=(n_test, d))
    y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1]
    return x, y, xt


def _jacobian(module, x):
    """J (n, P) of a scalar-output module at its current parameters (torch.func), and the parameter order."""
    from torch.func import functional_call, jacrev

    params = {k: p.detach() for k, p in module.named_parameters()}
    jac = jacrev(lambda p: functional_call(module, p, (x,))[:, 0])(params)
    return torch.cat([jac[k].reshape(x.shape[0], -1) for k in params], 1), params


def _linearized_setup(rates):
    spec = mlp(2, [16], 1, activation="erf", sigma_w=1.2, sigma_b=0.5, parameterization="ntk")
    net = MLPParams.from_spec(spec, seed=0)
    module = net.module()
    x, y, xt = _data()
    x, xt = torch.as_tensor(x), torch.as_tensor(xt)
    xall = torch.cat([x, xt])  # predict at the train points too
    j_all, params = _jacobian(module, xall)
    lam = torch.cat([torch.full((p.numel(),), rates.get(k, 1.0), dtype=F64) for k, p in params.items()])
    with torch.no_grad():
        f0 = module(xall)[:, 0]
    theta_all = mlp_ntk(net, xall, x, rates=rates)  # (n_all, n_train), the structured path
    return x, torch.as_tensor(y), f0, j_all, lam, theta_all


@pytest.mark.parametrize("t", [0.7, 4.0])
def test_flow_matches_the_integrated_linearized_network(t):
    """φ_t(x) = φ_0(x) + Θ(x,X)Θ^{-1}E_t(Y − φ_0(X)) vs solve_ivp of dθ/dt = −(η/|D|) Λ Jᵀ(f_lin(X) − Y)."""
    rates = {"layers.0.weight": 0.5, "layers.1.bias": 2.0}
    x, y, f0, j_all, lam, theta_all = _linearized_setup(rates)
    n, lr = x.shape[0], 0.8
    jx, f0x = j_all[:n].numpy(), f0[:n].numpy()
    lam_np, y_np = lam.numpy(), y.numpy()

    def rhs(_, delta):
        return -(lr / n) * lam_np * (jx.T @ (f0x + jx @ delta - y_np))

    sol = solve_ivp(rhs, (0.0, t), np.zeros(j_all.shape[1]), method="DOP853", rtol=1e-12, atol=1e-14)
    integrated = f0.numpy() + j_all.numpy() @ sol.y[:, -1]
    pred = ntk_flow(theta_all[:n], theta_all, y - f0[:n], t=t, lr=lr)
    closed = f0 + pred.mean
    scale = float(np.abs(integrated).max())
    assert np.abs(closed.numpy() - integrated).max() <= 1e-9 * scale
    assert pred.kind == "ntk flow" and pred.t == t and pred.cov is None


def test_discrete_gradient_descent_matches_iterated_updates():
    """E_k = I − (I − ηΘ/|D|)^k against k explicit GD steps on the linearized network (exact to round-off)."""
    rates = {"layers.1.weight": 3.0}
    x, y, f0, j_all, lam, theta_all = _linearized_setup(rates)
    n, lr, steps = x.shape[0], 0.5, 37
    assert lr < 2 * n / float(torch.linalg.eigvalsh(theta_all[:n])[-1])
    jx = j_all[:n]
    delta = torch.zeros(j_all.shape[1], dtype=F64)
    for _ in range(steps):
        delta = delta - (lr / n) * lam * (jx.T @ (f0[:n] + jx @ delta - y))
    iterated = f0 + j_all @ delta
    pred = ntk_flow(theta_all[:n], theta_all, y - f0[:n], steps=steps, lr=lr)
    assert (f0 + pred.mean - iterated).abs().max() <= 1e-11 * iterated.abs().max()
    assert pred.steps == steps and math.isnan(pred.t)
    with pytest.raises(ConfigError, match=r"lr: got 50.0; allowed: < 2\|D\|/λ_max"):
        ntk_flow(theta_all[:n], theta_all, y, steps=3, lr=50.0)


def _spec_kernels(n_train=5, n_test=3, seed=1):
    spec = mlp(2, [512], 1, activation="erf", sigma_w=1.5, sigma_b=0.4, parameterization="ntk")
    x, y, xt = _data(n_train, n_test, seed=seed)
    k = kernels(spec, np.concatenate([x, xt]), ntk=True)
    return spec, x, y, xt, k.nngp, k.ntk


def _flow(k, th, y, n, **kw):
    return ntk_flow(th[:n, :n], th[:, :n], y, nngp_train=k[:n, :n], nngp_cross=k[:, :n], nngp_test=k, **kw)


def test_monte_carlo_ensemble_evolved_by_the_linear_flow():
    """Sample φ_0 ~ GP(0, K) at train and test points, evolve each sample with the exact affine flow
    (scipy expm of the augmented generator, no eigendecomposition), compare the sample mean and covariance
    with μ_t, Σ_t. z = (estimate − theory)/stderr with Gaussian standard errors; max |z| < 4.5 over all
    8 + 36 entries (M = 20000 samples, seed 0)."""
    spec, x, y, xt, k, th = _spec_kernels()
    n, m_all, lr, t, samples = x.shape[0], k.shape[0], 1.3, 0.9, 20000
    gen = torch.Generator().manual_seed(0)
    chol = torch.linalg.cholesky(k)
    phi0 = chol @ torch.randn(m_all, samples, generator=gen, dtype=F64)
    # dφ/dt = −(η/|D|) Θ(·, X) (φ(X) − Y): affine; augmented state (φ, 1)
    gen_mat = np.zeros((m_all + 1, m_all + 1))
    gen_mat[:m_all, :n] = -(lr / n) * th[:, :n].numpy()
    gen_mat[:m_all, m_all] = (lr / n) * (th[:, :n].numpy() @ y)
    prop = expm(t * gen_mat)
    phit = prop[:m_all, :m_all] @ phi0.numpy() + prop[:m_all, m_all:m_all + 1]
    pred = _flow(k, th, y, n, t=t, lr=lr)
    mu, sigma = pred.mean.numpy(), pred.cov.numpy()
    z_mean = (phit.mean(1) - mu) / np.sqrt(np.diag(sigma) / samples)
    c_hat = np.cov(phit)
    se = np.sqrt((sigma**2 + np.outer(np.diag(sigma), np.diag(sigma))) / samples)
    iu = np.triu_indices(m_all)
    z_cov = ((c_hat - sigma) / se)[iu]
    assert np.max(np.abs(z_mean)) < 4.5, z_mean
    assert np.max(np.abs(z_cov)) < 4.5, z_cov
    # and the check has power: the t = 0 prior is many standard errors away from the trained ensemble
    assert np.max(np.abs((phit.mean(1) - 0.0) / np.sqrt(np.diag(sigma) / samples))) > 20


def test_limits_in_time():
    spec, x, y, xt, k, th = _spec_kernels()
    n = x.shape[0]
    at0 = _flow(k, th, y, n, t=0.0)
    assert at0.mean.abs().max() == 0 and torch.allclose(at0.cov, k, rtol=0, atol=1e-14)
    inf = _flow(k, th, y, n)  # t = ∞ by default: kernel regression, interpolates the targets
    assert math.isinf(inf.t)
    assert np.abs(inf.mean[:n].numpy() - y).max() <= 1e-9
    assert inf.var[:n].abs().max() <= 1e-9 * float(k.diagonal().max())
    late = _flow(k, th, y, n, t=1e9, lr=1.0)
    assert torch.allclose(late.mean, inf.mean, rtol=0, atol=1e-7)
    assert torch.allclose(late.cov, inf.cov, rtol=0, atol=1e-7)
    none = _flow(k, th, y, n, steps=0)
    assert none.mean.abs().max() == 0


def test_covariances_are_positive_semidefinite():
    spec, x, y, xt, k, th = _spec_kernels(n_train=8, n_test=6)
    n = x.shape[0]
    preds = [_flow(k, th, y, n, t=t) for t in (0.3, 3.0, math.inf)]
    preds.append(nngp_posterior(k[:n, :n], k[:, :n], k, y, noise=0.01))
    for p in preds:
        lam = torch.linalg.eigvalsh(p.cov)
        assert float(lam[0]) >= -1e-10 * float(lam[-1]), (p.kind, p.t, float(lam[0]))
        assert torch.allclose(p.cov, p.cov.T, rtol=0, atol=0)
        assert torch.allclose(p.var, p.cov.diagonal(), rtol=0, atol=0)


def test_nngp_posterior_against_direct_gaussian_conditioning():
    """Conditioning through the joint precision matrix (a Schur-complement route, no Cholesky of K):
    cov = (P_bb)^{-1}, mean = −(P_bb)^{-1} P_ba y for the joint Gaussian of (φ(X) + ε, φ(x))."""
    spec, x, y, xt, k, th = _spec_kernels()
    n, noise = x.shape[0], 0.05
    joint = k.numpy().copy()
    joint[:n, :n] += noise * np.eye(n)
    prec = np.linalg.inv(joint)
    p_bb, p_ba = prec[n:, n:], prec[n:, :n]
    cov = np.linalg.inv(p_bb)
    mean = -cov @ p_ba @ y
    pred = nngp_posterior(k[:n, :n], k[n:, :n], k[n:, n:], y, noise=noise)
    assert np.abs(pred.mean.numpy() - mean).max() <= 1e-10 * np.abs(mean).max()
    assert np.abs(pred.cov.numpy() - cov).max() <= 1e-10 * np.abs(cov).max()
    assert pred.kind == "nngp posterior" and pred.jitter == 0.0 and pred.condition_number < 1e12
    # noise-free t = ∞ readout flow with Θ := K is the same posterior (PHYSICS.md §7, Σ_∞ formula)
    flow = ntk_flow(k[:n, :n], k[n:, :n], y, nngp_train=k[:n, :n], nngp_cross=k[n:, :n], nngp_test=k[n:, n:])
    post = nngp_posterior(k[:n, :n], k[n:, :n], k[n:, n:], y)
    assert torch.allclose(flow.mean, post.mean, rtol=0, atol=1e-10)
    assert torch.allclose(flow.cov, post.cov, rtol=0, atol=1e-10)


def test_ill_conditioned_systems():
    spec, x, y, xt, k, th = _spec_kernels()
    n = x.shape[0]
    # a duplicated training input: K and Θ are singular
    xd = np.concatenate([x, x[:1]])
    yd = np.concatenate([y, y[:1]])
    kd = kernels(spec, np.concatenate([xd, xt]), ntk=True)
    nd = n + 1
    with pytest.raises(ConfigError, match=r"k_train: got a 6×6 kernel matrix with condition number ≈ \S+"):
        nngp_posterior(kd.nngp[:nd, :nd], kd.nngp[nd:, :nd], None, yd, jitter=0.0)
    with pytest.raises(ConfigError, match=r"ntk_train: .*condition number"):
        ntk_flow(kd.ntk[:nd, :nd], kd.ntk[nd:, :nd], yd, jitter=0.0)
    auto = nngp_posterior(kd.nngp[:nd, :nd], kd.nngp[nd:, :nd], None, yd)
    assert auto.jitter > 0 and auto.condition_number <= 1e12 and auto.cov is None and auto.var is None
    # a finite time never inverts Θ: the duplicate is harmless
    finite = ntk_flow(kd.ntk[:nd, :nd], kd.ntk[nd:, :nd], yd, t=2.0)
    assert bool(torch.isfinite(finite.mean).all())


def test_vector_targets_and_variance_only():
    spec, x, y, xt, k, th = _spec_kernels()
    n = x.shape[0]
    y2 = np.stack([y, -2 * y + 1], axis=1)
    both = _flow(k, th, y2, n, t=1.5)
    for j in range(2):
        one = _flow(k, th, y2[:, j], n, t=1.5)
        assert torch.allclose(both.mean[:, j], one.mean, rtol=0, atol=1e-13)
    assert both.mean.shape == (k.shape[0], 2)
    diag = ntk_flow(th[:n, :n], th[:, :n], y, t=1.5, nngp_train=k[:n, :n], nngp_cross=k[:, :n],
                    nngp_test=k.diagonal())
    assert diag.cov is None and torch.allclose(diag.var, both.var, rtol=0, atol=1e-13)
    assert torch.allclose(diag.std, both.var.clamp_min(0).sqrt())


def test_infinite_width_prediction_reads_the_spec():
    spec, x, y, xt, k, th = _spec_kernels()
    n = x.shape[0]
    for kw in (dict(t=2.0), dict(), dict(steps=5, lr=0.5)):
        p = infinite_width_prediction(spec, x, y, xt, **kw)
        q = ntk_flow(th[:n, :n], th[n:, :n], y, nngp_train=k[:n, :n], nngp_cross=k[n:, :n],
                     nngp_test=k[n:, n:], **kw)
        assert isinstance(p, Prediction)
        assert torch.allclose(p.mean, q.mean, rtol=0, atol=1e-12) and torch.allclose(p.cov, q.cov, rtol=0, atol=1e-12)
    post = infinite_width_prediction(spec, x, y, xt, kind="nngp", noise=0.1)
    ref = nngp_posterior(k[:n, :n], k[n:, :n], k[n:, n:], y, noise=0.1)
    assert torch.allclose(post.mean, ref.mean, rtol=0, atol=1e-12) and post.kind == "nngp posterior"
    readout = infinite_width_prediction(spec, x, y, xt, kind="nngp", t=1.0)
    ref = ntk_flow(k[:n, :n], k[n:, :n], y, t=1.0, nngp_train=k[:n, :n], nngp_cross=k[n:, :n], nngp_test=k[n:, n:])
    assert torch.allclose(readout.mean, ref.mean, rtol=0, atol=1e-12)
    lean = infinite_width_prediction(spec, x, y, xt, t=2.0, cov=False)
    full = infinite_width_prediction(spec, x, y, xt, t=2.0)
    assert lean.cov is None and torch.allclose(lean.var, full.var, rtol=0, atol=1e-12)


def test_bad_arguments():
    spec, x, y, xt, k, th = _spec_kernels()
    n = x.shape[0]
    with pytest.raises(ConfigError, match="t/steps"):
        ntk_flow(th[:n, :n], th[:, :n], y, t=1.0, steps=3)
    with pytest.raises(ConfigError, match="nngp_train/nngp_cross/nngp_test: got '2 of 3 given'"):
        ntk_flow(th[:n, :n], th[:, :n], y, nngp_train=k[:n, :n], nngp_cross=k[:, :n])
    with pytest.raises(ConfigError, match=r"y_train.shape: got \(4,\)"):
        ntk_flow(th[:n, :n], th[:, :n], y[:4])
    with pytest.raises(ConfigError, match="ntk_train: got 'an asymmetric matrix"):
        ntk_flow(th[:n, :n] + torch.triu(torch.ones(n, n, dtype=F64), 1), th[:, :n], y)
    with pytest.raises(ConfigError, match="t: got -1.0"):
        ntk_flow(th[:n, :n], th[:, :n], y, t=-1.0)
    with pytest.raises(ConfigError, match="ridge"):
        ntk_flow(th[:n, :n], th[:, :n], y, t=1.0, ridge=0.1)
    with pytest.raises(ConfigError, match="kind"):
        infinite_width_prediction(spec, x, y, xt, kind="gp")
    with pytest.raises(ConfigError, match=r"x_test.shape"):
        infinite_width_prediction(spec, x, y, xt[:, :1])
    with pytest.raises(ConfigError, match="ntk_train: got 'a matrix with eigenvalue"):
        ntk_flow(-th[:n, :n], th[:, :n], y, t=1.0)
