"""Exact single-hidden-layer correlators at any width (PHYSICS.md §4) against ensembles and closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import nnft
from nnft.correlators import pairings, sorted_tuples
from nnft.theory.single_layer import _mc_neuron_moments, neuron_moments, single_layer_correlators

X = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])
NETS = {
    "erf": (lambda n: nnft.erf_net(n), X),
    "relu": (lambda n: nnft.relu_net(n), np.array([0.2, 0.4, 0.6, 0.8, 1.0, 1.2])),
    "relu-bias": (lambda n: nnft.relu_net(n, sigma_b0=1.0), X),
    # Gauss-net neurons are log-normal: with the preset σ_b0 = 1 the 6-point estimator is dominated by rare
    # huge samples (E[ρ⁶] ~ e^12) and its jackknife error is not Gaussian; σ_b0 = 0.5 keeps the tails tame
    # while testing the same closed form (the preset itself is checked in test_gauss_net_closed_form...).
    "gauss": (lambda n: nnft.gauss_net(n, sigma_b0=0.5), 0.01 * X),
    "cos": (lambda n: nnft.cos_net(n), X),
}
# z threshold: 56–462 correlated tuples per order; 5σ keeps the family-wise false-alarm rate < 1e-4
# while a wrong formula (an O(1) relative error on an O(1/N) quantity) gives z in the tens.
Z = 5.0


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("width", [1, 2, 5, 10, 100])
def test_exact_theory_matches_ensemble(net: str, width: int) -> None:
    make, x = NETS[net]
    spec = make(width)
    theory = single_layer_correlators(spec, x, max_order=6)
    # 40 jackknife blocks: with 10 the error estimate itself scatters (z follows Student t_9, whose tails
    # make a 5σ cut over ~100 tuples fire by chance)
    meas = nnft.measure(spec, x[:4], nnft.EnsembleConfig(n_networks=100_000, chunk_size=2500, n_blocks=40,
                                                         seed=width, max_order=6, estimator="readout"))
    sub = single_layer_correlators(spec, x[:4], max_order=6)
    for n in (2, 4, 6):
        c = nnft.compare(sub.connected[n], meas.connected[n])
        assert c.max_abs_z < Z, (net, width, n, c.max_abs_z)
    # the subset theory is the restriction of the full one (same tuples, different input set)
    assert np.isclose(theory.connected[4].at(0, 1, 2, 3), sub.connected[4].at(0, 1, 2, 3), rtol=1e-10)


def test_plain_estimator_sees_the_same_exact_six_point() -> None:
    spec, x = nnft.relu_net(3), NETS["relu"][1][:3]
    meas = nnft.measure(spec, x, nnft.EnsembleConfig(n_networks=400_000, chunk_size=10_000, n_blocks=40, seed=1,
                                                     max_order=6))
    theory = single_layer_correlators(spec, x, max_order=6)
    for n in (4, 6):
        assert nnft.compare(theory.connected[n], meas.connected[n]).max_abs_z < Z
    # and the signal is resolved: not a comparison of zeros
    assert np.min(np.abs(theory.connected[6].values) / meas.connected[6].stderr) > 3


@pytest.mark.parametrize("net", ["erf", "relu-bias", "gauss", "cos"])
def test_cumulants_scale_as_n_to_the_one_minus_r_over_two(net: str) -> None:
    """κ_r^φ = N^{1−r/2} κ_r^X (no output bias beyond order 2)."""
    make, x = NETS[net]
    c1 = single_layer_correlators(make(1), x, max_order=6).connected
    c7 = single_layer_correlators(make(7), x, max_order=6).connected
    for r in (3, 4, 5, 6):
        np.testing.assert_allclose(c7[r].values, 7.0 ** (1 - r / 2) * c1[r].values, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(c7[2].values, c1[2].values, rtol=1e-12)  # G^(2) is exact at any N


def test_two_point_equals_nngp() -> None:
    for net, (make, x) in NETS.items():
        th = single_layer_correlators(make(3), x, max_order=2).connected[2]
        k = nnft.kernels(make(3), x).nngp.numpy()
        t = th.tuples
        np.testing.assert_allclose(th.values, k[t[:, 0], t[:, 1]], rtol=1e-9, err_msg=net)


def test_cos_net_closed_form_of_physics_md() -> None:
    """PHYSICS.md §4 (derived; verified here): Cos-net G_c^(4) = (1/N)[(μ4/8) Σ_s e^{−σ_w²|s·x|²/(2d)}
    − (μ2²/4) Σ_pairings e^{−σ_w²(|x_a−x_b|² + |x_c−x_d|²)/(2d)}], coincident value (3μ4/8 − 3μ2²/4)/N."""
    n, sa, sw, d = 4, 1.3, 0.8, 2
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, d))
    spec = nnft.cos_net(n, d, sigma_a=sa, sigma_w=sw)
    got = single_layer_correlators(spec, x, max_order=4).connected[4]
    mu2, mu4 = sa**2, 3 * sa**4
    e = lambda y: np.exp(-sw**2 * np.sum(y * y) / (2 * d))  # noqa: E731
    for t in sorted_tuples(4, 4)[::7]:
        xs = x[t]
        signs = [(1, 1, -1, -1), (1, -1, 1, -1), (1, -1, -1, 1)]
        first = sum(e(np.einsum("k,kd->d", np.array(s, float), xs)) for s in signs)
        second = sum(e(xs[a] - xs[b]) * e(xs[c] - xs[dd]) for (a, b), (c, dd) in pairings(4))
        want = (mu4 / 8 * first - mu2**2 / 4 * second) / n
        assert np.isclose(got.at(*t), want, rtol=1e-12, atol=1e-15), (t, got.at(*t), want)
    assert np.isclose(got.at(0, 0, 0, 0), (3 * mu4 / 8 - 3 * mu2**2 / 4) / n, rtol=1e-12)


def test_gauss_net_closed_form_of_physics_md() -> None:
    """PHYSICS.md §4: G_c^(4) = (σ_W1⁴/N)[3E[ρ1ρ2ρ3ρ4] − Σ_pairings E[ρρ]E[ρρ]],
    E[Π ρ] = e^{4σ_b0²} e^{σ_W0²(|Σx|² − 2Σ|x|²)/(2d)}, E[ρaρb] = e^{−σ_W0²|x_a − x_b|²/(2d)}."""
    n, d, sw0, sb0, sw1 = 6, 3, 0.9, 0.7, 1.2
    x = 0.05 * np.random.default_rng(1).normal(size=(4, d))
    spec = nnft.gauss_net(n, d, sigma_w0=sw0, sigma_b0=sb0, sigma_w1=sw1, sigma_b1=0.5)
    got = single_layer_correlators(spec, x, max_order=4).connected[4]
    for t in sorted_tuples(4, 4)[::5]:
        xs = x[t]
        e4 = np.exp(4 * sb0**2) * np.exp(sw0**2 * (np.sum(xs.sum(0) ** 2) - 2 * np.sum(xs * xs)) / (2 * d))
        e2 = lambda a, b: np.exp(-sw0**2 * np.sum((xs[a] - xs[b]) ** 2) / (2 * d))  # noqa: E731
        want = sw1**4 / n * (3 * e4 - sum(e2(a, b) * e2(c, dd) for (a, b), (c, dd) in pairings(4)))
        assert np.isclose(got.at(*t), want, rtol=1e-11), (t, got.at(*t), want)


@pytest.mark.parametrize("spec_x", [(nnft.relu_net(3, sigma_b0=1.0), X), (nnft.erf_net(3), X),
                                    (nnft.mlp(2, [3], activation="abs"), np.array([[0.3, -0.2], [1.0, 0.5]]))],
                         ids=["relu", "erf", "abs-d2"])
def test_quadrature_paths_agree_with_single_neuron_monte_carlo(spec_x) -> None:
    spec, x = spec_x
    xt = torch.as_tensor(x, dtype=torch.float64)
    exact = neuron_moments(spec, xt, 6)
    assert exact.replicates is None
    mc = _mc_neuron_moments(spec, xt.reshape(len(xt), -1), 6, 1 << 20, seed=5)
    for n in range(1, 7):
        k = len(mc.replicates)
        reps = np.stack([r[n] for r in mc.replicates])
        err = np.sqrt((k - 1) / k * ((reps - reps.mean(0)) ** 2).sum(0))
        z = (mc.values[n] - exact.values[n]) / np.maximum(err, 1e-300)
        assert np.max(np.abs(z)) < Z, (exact.method, n, np.max(np.abs(z)))


def test_monte_carlo_path_reports_an_error_and_matches_ensemble() -> None:
    """A uniform first-layer density has no closed form: single-neuron MC with a jackknife error."""
    layers = (nnft.Layer(width=4, weight=nnft.Uniform.with_std(1.0), bias=nnft.Uniform.with_std(1.0)),
              nnft.Layer(width=1, weight=nnft.Normal(1.0), bias=nnft.Normal(0.5)))
    spec = nnft.Architecture(d_in=1, layers=layers, activation=nnft.Activation("tanh"))
    th = single_layer_correlators(spec, X[:3], max_order=4, mc_samples=1 << 20)
    assert th.method == "monte carlo" and th.connected[4].stderr is not None
    meas = nnft.measure(spec, X[:3], nnft.EnsembleConfig(n_networks=200_000, chunk_size=5_000, n_blocks=40,
                                                          seed=2, max_order=4, estimator="readout"))
    assert nnft.compare(th.connected[4], meas.connected[4]).max_abs_z < Z


def test_output_bias_of_a_non_gaussian_density_enters_every_cumulant() -> None:
    """A uniform output bias b ~ U[−a, a] adds κ_4(b) = −(2a)⁴/120 to every G_c^(4) tuple."""
    a = 0.9
    base = nnft.erf_net(3)
    layers = (base.layers[0], nnft.Layer(width=1, weight=nnft.Normal(1.0), bias=nnft.Uniform(-a, a)))
    with_bias = nnft.Architecture(d_in=1, layers=layers, activation=base.activation)
    no_bias = nnft.Architecture(d_in=1, layers=(base.layers[0], nnft.Layer(width=1, bias=None)),
                                activation=base.activation)
    diff = (single_layer_correlators(with_bias, X, 4).connected[4].values
            - single_layer_correlators(no_bias, X, 4).connected[4].values)
    np.testing.assert_allclose(diff, -(2 * a) ** 4 / 120, rtol=1e-10)


def test_deep_spec_is_rejected_with_a_named_error() -> None:
    with pytest.raises(nnft.ConfigError, match="one hidden layer"):
        single_layer_correlators(nnft.mlp(1, [4, 4]), X, 4)
    with pytest.raises(nnft.ConfigError, match="max_order"):
        single_layer_correlators(nnft.erf_net(3), X, 7)
