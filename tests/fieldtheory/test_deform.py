"""Deformed densities: potentials, regions, first-order perturbation theory, reweighting and MCMC estimators.

Exact Gaussian fields (N = ∞) drawn from a spec's kernel test the estimators and the first-order formula
without 1/N effects; network ensembles are tested in tests/validation/test_phi4.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnft import ConfigError
from nnft.compare import compare
from nnft.fieldtheory import free_scalar
from nnft.fieldtheory.deform import action, cumulant_derivative, reweight_fields
from nnft.fieldtheory.mcmc import integrated_autocorrelation_time, mcmc
from nnft.fieldtheory.perturbation import first_order, propagators_to_region, tadpole, tree_level, vertex_factor
from nnft.fieldtheory.potential import Box, Polynomial, phi4
from nnft.correlators import moments_to_cumulants, sorted_tuples
from nnft.spec import cos_net
from nnft.theory import kernels

Z_MAX = 4.0  # fixed seeds; |z| > 4 has probability ~6e-5 per entry for a correct estimator


def test_polynomial_values_minimum_and_validation() -> None:
    v = Polynomial((0.0, 0.0, -1.0, 0.0, 1.0))  # φ⁴ − φ², minimum −1/4 at φ² = 1/2
    assert v(np.array([2.0]))[0] == pytest.approx(12.0)
    assert v.minimum() == pytest.approx(-0.25, abs=1e-12)
    assert phi4(24.0).coeffs == (0.0, 0.0, 0.0, 0.0, 1.0)
    assert Polynomial((1.0, 0.0, 2.0, 0.0)).coeffs == (1.0, 0.0, 2.0)  # trailing zeros dropped
    for bad in ((0.0, 0.0, 0.0, 1.0), (0.0, 0.0, -1.0), (math.nan,), ()):
        with pytest.raises(ConfigError, match="Polynomial.coeffs"):
            Polynomial(bad)
    with pytest.raises(ConfigError, match="lambda"):
        phi4(-1.0)


def test_linear_potential_is_rejected_but_constant_allowed() -> None:
    with pytest.raises(ConfigError, match="bounded below"):
        Polynomial((0.0, 1.0))
    assert Polynomial((3.0,)).minimum() == 3.0


def test_box_rule_integrates_polynomials_exactly() -> None:
    box = Box((-1.0, 0.0), (2.0, 0.5), n_quad=5)
    z, w = box.nodes()
    assert w.sum() == pytest.approx(box.volume, rel=1e-14)
    # ∫ x^4 y^3 over [-1,2]×[0,0.5] = (2^5 + 1)/5 · 0.5^4/4
    assert w @ (z[:, 0] ** 4 * z[:, 1] ** 3) == pytest.approx(33 / 5 * 0.0625 / 4, rel=1e-13)
    smooth = lambda p: np.cos(p[:, 0]) * np.exp(p[:, 1])  # noqa: E731
    exact = (math.sin(2.0) + math.sin(1.0)) * (math.exp(0.5) - 1)
    fine = Box((-1.0, 0.0), (2.0, 0.5), n_quad=10)
    assert fine.nodes()[1] @ smooth(fine.nodes()[0]) == pytest.approx(exact, rel=1e-13)
    assert fine.rule_error(smooth) < 1e-10 < 1e-9 < box.rule_error(smooth) < 1e-6  # 5 nodes: ~3e-8
    assert Box.cube(2.0, 3, n_quad=2).nodes()[0].shape == (8, 3)
    with pytest.raises(ConfigError, match="region"):
        Box((0.0,), (0.0,))
    with pytest.raises(ConfigError, match="n_quad"):
        Box((0.0,), (1.0,), n_quad=0)


def test_vertex_factors() -> None:
    lam = 2.5
    assert vertex_factor(phi4(lam), 4) == [(0, pytest.approx(lam))]
    assert vertex_factor(phi4(lam), 2) == [(1, pytest.approx(lam / 2))]  # tadpole: δm² = (λ/2) G(0)
    assert vertex_factor(phi4(lam), 3) == []
    # g φ⁶: n = 2 gets C(6,2)·2!·E[φ⁴]/G0² = 30 · 3 = 90 g
    assert vertex_factor(Polynomial((0, 0, 0, 0, 0, 0, 1.0)), 2) == [(2, pytest.approx(90.0))]


def _gaussian_fields(spec, x, region, n, seed):
    """Exact N = ∞ fields: a Gaussian vector with the spec's kernel over the points x and the rule's nodes."""
    z, _ = region.nodes()
    pts = np.concatenate([x, z])
    cov = kernels(spec, pts).nngp.numpy()
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(len(pts)))
    g = np.random.default_rng(seed).standard_normal((n, len(pts))) @ chol.T
    return g[:, :len(x)], g[:, len(x):], cov


@pytest.fixture(scope="module")
def setting():
    spec = free_scalar(1, mass=1.0, cutoff=5.0, width=100)
    region = Box.cube(2.0, 1, n_quad=12)
    x = np.array([[-0.3], [0.1], [0.4]])
    return spec, region, x


def test_first_order_matches_gaussian_response_for_a_general_polynomial(setting) -> None:
    """−Cov(O, S) on exact Gaussian fields equals the one-vertex formula for every order, odd ones included."""
    spec, region, x = setting
    v = Polynomial((0.0, 0.0, 0.2, 1.0, 1.0))
    fx, fz, _ = _gaussian_fields(spec, x, region, 400_000, seed=11)
    s = action(v, region, fz)
    _, _, _, response, _ = reweight_fields(fx, s, [0.0], n_blocks=40, max_order=4)
    props = propagators_to_region(spec, x, region)
    for n in (1, 2, 3, 4):
        pred = first_order(spec, x, v, region, n, propagators=props)
        c = compare(pred, response[n])
        assert c.max_abs_z < Z_MAX, (n, pred.values, response[n].values, response[n].stderr)
        assert np.all(np.abs(pred.values) > 3 * response[n].stderr)  # the test resolves the signal


def test_quadratic_deformation_is_exactly_gaussian(setting) -> None:
    """V = c φ² keeps the fields Gaussian: precision C⁻¹ + 2gc diag(0, ω). Reweighting reproduces the exact
    deformed covariance at couplings far beyond first order, and G_c^(4) stays 0."""
    spec, region, x = setting
    c2 = 0.5
    fx, fz, cov = _gaussian_fields(spec, x, region, 200_000, seed=5)
    s = action(Polynomial((0.0, 0.0, c2)), region, fz)
    _, w = region.nodes()
    couplings = [0.0, 1.0, 3.0]
    connected, _, _, _, ess = reweight_fields(fx, s, couplings, n_blocks=20, max_order=4)
    m = len(x)
    for i, g in enumerate(couplings):
        # (C⁻¹ + diag(0, β))⁻¹ by Woodbury (C itself is too ill-conditioned to invert): C − C_·z (β⁻¹ + C_zz)⁻¹ C_z·
        exact = cov[:m, :m] if g == 0 else cov[:m, :m] - cov[:m, m:] @ np.linalg.solve(
            np.diag(1 / (2 * g * c2 * w)) + cov[m:, m:], cov[m:, :m])
        tup = sorted_tuples(m, 2)
        z2 = (connected[i][2].values - exact[tup[:, 0], tup[:, 1]]) / connected[i][2].stderr
        z4 = connected[i][4].values / connected[i][4].stderr
        assert np.max(np.abs(z2)) < Z_MAX and np.max(np.abs(z4)) < Z_MAX, (g, z2, z4)
        if g > 0:
            assert np.all(exact[tup[:, 0], tup[:, 1]] < cov[tup[:, 0], tup[:, 1]])  # a mass term lowers G
    assert ess[0] == pytest.approx(200_000) and ess[2] < ess[1] < ess[0]


def test_tree_level_and_tadpole_use_the_region_rule(setting) -> None:
    spec, region, x = setting
    gxz, gzz, w = propagators_to_region(spec, x, region)
    lam = 3.0
    tree = tree_level(spec, x, lam, region)
    t = tree.tuples
    expected = -lam * (gxz[t[:, 0]] * gxz[t[:, 1]] * gxz[t[:, 2]] * gxz[t[:, 3]]) @ w
    np.testing.assert_allclose(tree.values, expected, rtol=1e-13)
    tad = tadpole(spec, x, lam, region)
    t2 = tad.tuples
    np.testing.assert_allclose(tad.values, -lam / 2 * gzz[0] * (gxz[t2[:, 0]] * gxz[t2[:, 1]]) @ w, rtol=1e-13)
    # G(0) of the cutoff scalar in d = 1: (1/π) atan(Λ/m)/m
    assert gzz[0] == pytest.approx(math.atan(5.0) / math.pi, rel=1e-9)


def test_cumulant_derivative_is_the_differential_of_the_cumulant_map() -> None:
    rng = np.random.default_rng(0)
    m = {k: rng.normal(size=len(sorted_tuples(3, k))) for k in range(1, 5)}
    dm = {k: rng.normal(size=v.shape) for k, v in m.items()}
    eps = 1e-6
    plus = moments_to_cumulants({k: m[k] + eps * dm[k] for k in m}, 3, 4)
    minus = moments_to_cumulants({k: m[k] - eps * dm[k] for k in m}, 3, 4)
    for n in (1, 2, 3, 4):
        np.testing.assert_allclose(cumulant_derivative(m, dm, 3, n), (plus[n] - minus[n]) / (2 * eps),
                                   rtol=1e-7, atol=1e-8)


def test_autocorrelation_time_of_ar1() -> None:
    """AR(1) with coefficient ρ has τ_int = (1 + ρ)/(1 − ρ)."""
    rng = np.random.default_rng(3)
    rho, chains, t = 0.8, 64, 4000
    x = np.zeros((chains, t))
    e = rng.standard_normal((chains, t))
    for i in range(1, t):
        x[:, i] = rho * x[:, i - 1] + math.sqrt(1 - rho**2) * e[:, i]
    assert integrated_autocorrelation_time(x) == pytest.approx((1 + rho) / (1 - rho), rel=0.1)
    assert integrated_autocorrelation_time(rng.standard_normal((16, 2000))) == pytest.approx(1.0, abs=0.15)


def test_bad_input() -> None:
    spec = free_scalar(1, mass=1.0, cutoff=5.0, width=10)
    with pytest.raises(ConfigError, match="region"):
        tree_level(spec, [[0.0]], 1.0, Box.cube(1.0, 2, n_quad=2))
    with pytest.raises(ConfigError, match="spec"):
        mcmc(cos_net(10, 1).__class__(d_in=1, layers=(cos_net(10, 1).layers[0],) * 2 + (cos_net(10, 1).layers[1],),
                                       activation="cos"), [[0.0]], phi4(), Box.cube(1.0, 1, n_quad=2), 1.0)
    with pytest.raises(ConfigError, match="coupling"):
        mcmc(spec, [[0.0]], phi4(), Box.cube(1.0, 1, n_quad=2), -1.0)
    with pytest.raises(ConfigError, match="f, s"):
        reweight_fields(np.zeros((10, 2)), -np.ones(10), [0.0], n_blocks=2)


def test_field_deform_cli(tmp_path, run_cli, capsys) -> None:
    cfg = tmp_path / "deform.toml"
    cfg.write_text('d = 1\nwidth = 20\ncouplings = [0.0, 0.5]\nn_networks = 4000\nseed = 3\n'
                   'x = [[-0.1], [0.2]]\n')
    stem = tmp_path / "phi4"
    assert run_cli(["field", "deform", "--config", str(cfg), "--out", str(stem)]) == 0
    out = capsys.readouterr().out
    assert "first-order response at g = 0" in out and "ESS" in out
    from nnft.results import read_result

    meta, arrays = read_result(stem.with_suffix(".json"))
    assert meta["method"] == "importance reweighting" and meta["couplings"] == [0.0, 0.5]
    assert arrays["first_order4"].shape == (5,) and np.all(arrays["first_order4"] < 0)
    assert run_cli(["field", "deform", "--d", "1", "--width", "8", "--sampler", "mcmc", "--couplings", "1",
                    "--chains", "32", "--steps", "60"]) == 0
    assert "acceptance" in capsys.readouterr().out


@pytest.mark.parametrize("argv, param", [
    (["--couplings", "-1"], "--couplings"),
    (["--potential", "0,1"], "Polynomial.coeffs"),
    (["--sampler", "hmc"], "--sampler"),
    (["--sampler", "mcmc", "--couplings", "1,2"], "--couplings"),
    (["--d", "7"], "--d"),
    (["--n-quad", "0"], "n_quad"),
])
def test_field_deform_cli_bad_input(argv, param, tmp_path, run_cli, capsys) -> None:
    stem = tmp_path / "never"
    assert run_cli(["field", "deform", "--n-networks", "100", "--out", str(stem), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nnft: error: {param}"), err
    assert not list(tmp_path.iterdir())


def test_field_deform_cli_rejects_unknown_config_keys(tmp_path, run_cli, capsys) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("lambda = 3\n")
    assert run_cli(["field", "deform", "--config", str(cfg)]) == 2
    assert "--config: got 'lambda'" in capsys.readouterr().err
