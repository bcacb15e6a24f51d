"""Order/chaos phases of deep MLPs (nnft.dynamics.phases; arXiv:1606.05340, 1611.01232; PHYSICS.md §10).

Oracle ladder:
  (a) Gaussian expectations: erf and relu closed forms against scipy.integrate.quad / dblquad and the
      project's Gauss–Hermite rule (≤ 1e-10); the tanh trapezoidal rule against scipy.integrate (≤ 1e-10).
  (b) Fixed points and the critical line against independent constructions: brentq on a quad-based
      length map; the critical line built parametrically (σ_w² = 1/D(q), σ_b² = q − V(q)/D(q), scipy quad)
      and found again by root finding; exact values (tanh 1, erf π/4, relu 2 at σ_b = 0; erf q* = 1/2 at
      σ_w² = 3/2, σ_b = 0). ξ_c |χ_1 − 1| → 1 on both sides of the line (ξ_c diverges), ξ_q stays finite.
  (c) The layer recursion against nnft.kernels (the NNGP of the same spec, an independent code path).
  (d) Sampled ensembles: c^l within z < 4 of the prediction (jackknife errors over 16–20 chunks, the
      maximum over ≤ 20 correlated layers; repeated runs gave max |z| ≤ 3.2), after the O(1/N)
      correction where it is resolved (ReLU at criticality: the infinite-width prediction is then off by
      > 5σ, which the test also asserts, so it can tell the two apart); the decay rate 1/ξ within z < 4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special

import nnft
from nnft import ConfigError
from nnft.dynamics import phases as ph
from nnft.theory.gaussian import gauss_hermite_pair

PHI = lambda z: np.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def quad1(g, q: float) -> float:
    """∫Dz g(√q z) by adaptive quadrature."""
    return integrate.quad(lambda z: g(math.sqrt(q) * z) * PHI(z), -12, 12, epsabs=1e-14, epsrel=1e-13,
                          limit=400)[0]


def quad2(g, q: float, c: float) -> float:
    """∫Dz1 Dz2 g(u1) g(u2), u1 = √q z1, u2 = √q (c z1 + √(1 − c²) z2)."""
    s = math.sqrt(1 - c * c)
    f = lambda z2, z1: g(math.sqrt(q) * z1) * g(math.sqrt(q) * (c * z1 + s * z2)) * PHI(z1) * PHI(z2)  # noqa
    return integrate.dblquad(f, -10, 10, -10, 10, epsabs=1e-13, epsrel=1e-12)[0]


TANH = (np.tanh, lambda u: 1 / np.cosh(u) ** 2, lambda u: -2 * np.tanh(u) / np.cosh(u) ** 2)
ERF = (special.erf, lambda u: 2 / math.sqrt(math.pi) * np.exp(-u * u),
       lambda u: -4 * u / math.sqrt(math.pi) * np.exp(-u * u))


# -- (a) Gaussian expectations ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, fns", [("erf", ERF), ("tanh", TANH)])
def test_single_expectations_match_quad(name, fns):
    f, fp, fpp = fns
    for q in (0.05, 0.7, 3.0, 30.0):
        v, d, w = (float(a) for a in ph._single(name, np.array(q)))
        assert abs(v - quad1(lambda u: f(u) ** 2, q)) < 1e-11
        assert abs(d - quad1(lambda u: fp(u) ** 2, q)) < 1e-11
        assert abs(w - quad1(lambda u: fpp(u) * f(u), q)) < 1e-11


def test_erf_and_relu_pair_closed_forms_match_quadrature():
    erf, relu = nnft.Activation("erf"), nnft.Activation("relu")
    for q, c in ((0.3, -0.8), (1.0, 0.2), (2.5, 0.95), (5.0, 0.999)):
        k, kp = ph._pair("erf", np.array(q), np.array(c))
        a, cc = torch.tensor(q, dtype=torch.float64), torch.tensor(q * c, dtype=torch.float64)
        assert abs(float(k) - float(gauss_hermite_pair(erf, a, a, cc, degree=300))) < 1e-10
        assert abs(float(kp) - float(gauss_hermite_pair(erf, a, a, cc, which="derivative", degree=300))) < 1e-10
        kr, kpr = ph._pair("relu", np.array(q), np.array(c))
        assert abs(float(kr) - float(relu.dual(a, a, cc))) < 1e-13 * q
        assert abs(float(kpr) - float(relu.dual_derivative(a, a, cc))) < 1e-14
    # relu by dblquad on the region where both factors are positive (z1 > 0, z2 > −c z1/√(1 − c²))
    q, c = 1.3, 0.4
    s = math.sqrt(1 - c * c)
    ref = integrate.dblquad(lambda z2, z1: q * z1 * (c * z1 + s * z2) * PHI(z1) * PHI(z2), 0, 12,
                            lambda z1: -c * z1 / s, 12, epsabs=1e-14, epsrel=1e-13)[0]
    assert abs(float(ph._pair("relu", np.array(q), np.array(c))[0]) - ref) < 1e-11


def test_tanh_pair_quadrature_matches_dblquad():
    for q, c in ((0.4, -0.6), (2.0, 0.5), (8.0, 0.99)):
        k, kp = ph._pair("tanh", np.array(q), np.array(c))
        assert abs(float(k) - quad2(np.tanh, q, c)) < 1e-10
        assert abs(float(kp) - quad2(TANH[1], q, c)) < 1e-10
    # c = ±1 reduce to the single-variance integrals: k(q, 1) = V(q), k'(q, 1) = D(q), k(q, −1) = −V(q)
    v, d, _ = ph._single("tanh", np.array([1.7]))
    k, kp = ph._pair("tanh", np.array([1.7, 1.7]), np.array([1.0, -1.0]))
    assert np.allclose([k[0], kp[0], k[1]], [v[0], d[0], -v[0]], rtol=1e-13, atol=1e-15)


# -- (b) fixed points, critical line, depth scales --------------------------------------------------------
def test_fixed_point_q_against_independent_root_finding():
    for sw, sb in ((1.5, 0.05), (3.0, 0.5)):
        ref = optimize.brentq(lambda q: sw * quad1(lambda u: np.tanh(u) ** 2, q) + sb - q, sb, sb + sw, xtol=1e-14)
        assert abs(float(ph.fixed_point_q("tanh", sw, sb)) - ref) < 1e-10
    grid_w, grid_b = np.meshgrid(np.linspace(0.2, 4, 9), np.linspace(0.01, 2, 7))
    for name in ("tanh", "erf"):
        q = ph.fixed_point_q(name, grid_w, grid_b)
        assert np.max(np.abs(ph.length_map(name, q, grid_w, grid_b) - q)) < 1e-13
    assert abs(float(ph.fixed_point_q("erf", 1.5, 0.0)) - 0.5) < 1e-14  # (3/π) asin(1/2) = 1/2
    assert float(ph.fixed_point_q("relu", 1.0, 0.3)) == pytest.approx(0.6, rel=1e-15)  # σ_b²/(1 − σ_w²/2)
    # degenerate cases are labelled, not invented: 0 (signal dies), NaN (marginal), ∞ (exploding)
    assert ph.fixed_point_q("tanh", 0.9, 0.0) == 0 and ph.fixed_point_q("relu", 1.9, 0.0) == 0
    assert np.isnan(ph.fixed_point_q("relu", 2.0, 0.0)) and np.isinf(ph.fixed_point_q("relu", 2.0, 0.1))
    assert ph.phase_point("relu", 2.5, 0.1).phase == "exploding"
    assert "no fixed point" in ph.phase_point("relu", 2.5, 0.1).status


def test_critical_line_known_values_and_parametric_construction():
    assert float(ph.critical_sigma_w2("tanh", 0.0)) == 1.0
    assert float(ph.critical_sigma_w2("erf", 0.0)) == pytest.approx(math.pi / 4, rel=1e-15)
    assert float(ph.critical_sigma_w2("relu", 0.0)) == 2.0 and np.isnan(ph.critical_sigma_w2("relu", 0.1))
    assert ph.phase_point("relu", 2.0, 0.0).phase == "critical" and ph.phase_point("tanh", 1.0, 0.0).phase == "critical"
    # On the line χ_1 = 1: σ_w² = 1/D(q), σ_b² = q − σ_w² V(q) for any q > 0 (computed here by quad)
    for name, (f, fp, _) in (("tanh", TANH), ("erf", ERF)):
        for q in (0.2, 0.57, 1.5):
            sw = 1 / quad1(lambda u: fp(u) ** 2, q)
            sb = q - sw * quad1(lambda u: f(u) ** 2, q)
            assert abs(float(ph.critical_sigma_w2(name, sb)) - sw) < 1e-9
            assert abs(ph.phase_point(name, sw, sb).chi_1 - 1) < 1e-10
    # the tanh value at σ_b² = 0.05 used in the experiment and docs (the often-quoted σ_w² ≈ 1.76)
    assert float(ph.critical_sigma_w2("tanh", 0.05)) == pytest.approx(1.760954, abs=1e-6)


@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_xi_c_diverges_at_the_critical_line(name):
    sb = 0.05
    crit = float(ph.critical_sigma_w2(name, sb))
    products, xi_q = [], []
    for eps in (1e-2, 1e-3, 1e-4):
        for side in (-1, 1):
            p = ph.phase_point(name, crit * (1 + side * eps), sb)
            assert p.phase == ("ordered" if side < 0 else "chaotic")
            products.append(p.xi_c * abs(p.chi_1 - 1))
            xi_q.append(p.xi_q)
    # ξ_c ≈ 1/|χ_1 − 1| on both sides (ordered: −1/log χ_1; chaotic: χ_c ≈ 2 − χ_1 to first order)
    assert abs(products[-1] - 1) < 1e-3 and abs(products[-2] - 1) < 1e-3
    assert abs(products[0] - 1) > abs(products[2] - 1) > abs(products[4] - 1)  # converging to 1
    assert ph.phase_point(name, crit * (1 + 1e-4), sb).xi_c > 5e3
    assert max(xi_q) < 10 and abs(xi_q[-1] - xi_q[-2]) < 1e-3 * xi_q[-1]  # ξ_q finite and continuous


def test_correlation_map_fixed_point_and_slope():
    for name, sw, sb in (("tanh", 3.0, 0.05), ("erf", 2.5, 0.3), ("tanh", 2.0, 0.0)):
        p = ph.phase_point(name, sw, sb)
        assert p.phase == "chaotic" and 0 <= p.c_star < 1
        cmap, slope = ph.correlation_map(name, p.c_star, p.q_star, sw, sb)
        assert abs(float(cmap) - p.c_star) < 1e-12 and abs(float(slope) - p.chi_c) < 1e-12
        h = 1e-5
        up, lo = (float(ph.correlation_map(name, p.c_star + s * h, p.q_star, sw, sb)[0]) for s in (1, -1))
        assert abs((up - lo) / (2 * h) - p.chi_c) < 1e-7
        assert p.chi_c < 1 < p.chi_1  # c* attracting, c = 1 repelling
        assert p.xi_q == pytest.approx(-1 / math.log(sw * sum(ph._single(name, np.array(p.q_star))[1:])), rel=1e-12)
    assert abs(ph.phase_point("tanh", 2.0, 0.0).c_star) < 1e-14  # odd σ without bias: c* = 0
    p = ph.phase_point("erf", 1.0, 0.2)  # ordered: c* = 1 and χ_c = χ_1
    assert p.phase == "ordered" and p.c_star == 1.0 and p.chi_c == p.chi_1


def test_phase_diagram_matches_points_and_labels():
    w, b = np.array([0.5, 1.5, 2.0, 3.5]), np.array([0.0, 0.05, 0.6])
    for name in ph.PHASE_ACTIVATIONS:
        d = ph.phase_diagram(name, w, b)
        assert d.q_star.shape == (3, 4) and d.phase.shape == (3, 4) and d.critical_sigma_w2.shape == (3,)
        for i, j in ((0, 1), (1, 2), (2, 3), (1, 0)):
            p = ph.phase_point(name, w[j], b[i])
            for key in ("q_star", "chi_1", "c_star", "chi_c", "xi_q", "xi_c"):
                assert getattr(d, key)[i, j] == pytest.approx(getattr(p, key), rel=1e-12, nan_ok=True)
            assert d.phase[i, j] == p.phase
        assert set(np.unique(d.arrays()["phase_code"])) <= {0, 1, 2, 3}
    d = ph.phase_diagram("relu", w, b)
    assert list(d.phase[1]) == ["ordered", "ordered", "exploding", "exploding"]
    assert list(ph.phase_diagram("tanh", w, [0.05]).phase[0]) == ["ordered", "ordered", "chaotic", "chaotic"]


# -- (c) the layer recursion against the NNGP kernel of the same spec --------------------------------------
@pytest.mark.parametrize("name, sw, sb, tol", [("erf", 2.5, 0.05, 1e-12), ("relu", 1.5, 0.05, 1e-12),
                                               ("relu", 2.0, 0.0, 1e-12), ("tanh", 1.3, 0.05, 1e-9)])
def test_propagation_matches_nngp_recursion(name, sw, sb, tol):
    prop = ph.correlation_propagation(name, sw, sb, 0.3, 6)
    x = ph.pair_inputs(prop.q0, 0.3, sw, sb)
    spec = ph.phase_spec(name, sw, sb, width=10, depth=5)  # output layer = layer 6
    k = nnft.kernels(spec, x).nngp.numpy()
    assert abs(k[0, 1] / math.sqrt(k[0, 0] * k[1, 1]) - prop.c[-1]) < tol
    assert abs(k[0, 0] - prop.q[-1]) < tol * max(1.0, prop.q[-1])
    if np.isfinite(prop.point.q_star) and prop.point.q_star > 0:
        assert np.allclose(prop.q, prop.point.q_star, rtol=1e-12)  # q0 = q*: Poole's map, q^l = q*


def test_bad_input_is_one_config_error():
    cases = [lambda: ph.phase_point("gelu", 1.0, 0.1), lambda: ph.phase_point("tanh", -1.0, 0.1),
             lambda: ph.phase_point("tanh", 1.0, float("nan")), lambda: ph.phase_diagram("erf", [], [0.1]),
             lambda: ph.correlation_propagation("erf", 1.0, 0.1, 1.5, 5),
             lambda: ph.correlation_propagation("erf", 1.0, 0.1, 0.5, 0),
             lambda: ph.pair_inputs(0.3, -0.9, 1.0, 0.25),  # the bias alone correlates the inputs
             lambda: ph.phase_point("tanh", 500.0, 0.0),
             lambda: ph.measure_correlation(nnft.mlp(2, [8, 16], activation="tanh"), 0.5, n_networks=100, seed=0),
             lambda: ph.measure_correlation(ph.phase_spec("erf", 1.0, 0.1, width=8, depth=2), 0.5, n_networks=30,
                                            seed=0, chunk_size=25)]
    for make in cases:
        with pytest.raises(ConfigError) as info:
            make()
        assert "\n" not in str(info.value) and "allowed" in str(info.value)


# -- (d) sampled ensembles --------------------------------------------------------------------------------
def test_relu_critical_needs_the_one_over_n_correction():
    spec = ph.phase_spec("relu", 2.0, 0.0, width=256, depth=25)
    meas = ph.measure_correlation(spec, 0.3, n_networks=800, seed=11, chunk_size=40)
    assert np.max(np.abs(meas.z_corrected)) < 4.0
    assert np.max(np.abs(meas.z)) > 5.0  # the O(L/N) shift of the mean kernel is resolved
    assert np.all(meas.corrected[1:] < meas.predicted[1:])  # ... and finite width lowers c^l here
    assert ph.fit_depth_scale(meas) is None  # ξ_c = ∞: no exponential window
    assert np.max(np.abs(meas.q - 1) / meas.q_stderr) < 4.0  # q^l = q^1 = 1 at σ_w² = 2, σ_b = 0


def test_ordered_and_chaotic_ensembles_follow_the_prediction():
    spec = ph.phase_spec("tanh", 1.3, 0.05, width=512, depth=15)
    meas = ph.measure_correlation(spec, 0.3, n_networks=400, seed=3, finite_width=False, chunk_size=20)
    assert meas.corrected is None and np.max(np.abs(meas.z)) < 4.0
    assert np.max(np.abs((meas.q - meas.predicted_q) / meas.q_stderr)) < 4.0
    spec = ph.phase_spec("erf", 2.5, 0.05, width=256, depth=12)
    meas = ph.measure_correlation(spec, 0.45, n_networks=400, seed=4, chunk_size=20)
    assert np.max(np.abs(meas.z_corrected)) < 4.0
    assert meas.point.phase == "chaotic" and meas.c[-1] < meas.c[0]  # decorrelating towards c* = 0.27


def test_fitted_depth_scale_matches_xi_c_in_the_ordered_phase():
    spec = ph.phase_spec("relu", 1.5, 0.05, width=512, depth=30)
    meas = ph.measure_correlation(spec, 0.3, n_networks=400, seed=9, chunk_size=20)
    fit = ph.fit_depth_scale(meas)
    assert fit is not None and fit.n_layers >= 8
    assert abs(fit.z) < 4.0
    assert abs(fit.xi_theory - fit.xi_c) / fit.xi_c < 0.03  # the window is nearly asymptotic (ξ_c = 3.476)
    assert abs(fit.xi - fit.xi_c) / fit.xi_c < 0.05
    assert fit.xi_stderr < 0.03 * fit.xi


def test_measurement_is_reproducible_and_seeded():
    spec = ph.phase_spec("erf", 1.0, 0.1, width=64, depth=4)
    a, b, c = (ph.measure_correlation(spec, 0.5, n_networks=40, seed=s, chunk_size=10, finite_width=False)
               for s in (1, 1, 2))
    assert np.array_equal(a.c, b.c) and np.array_equal(a.stderr, b.stderr)
    assert not np.array_equal(a.c, c.c)
    done = []
    ph.measure_correlation(spec, 0.5, n_networks=40, seed=1, chunk_size=10, finite_width=False,
                           progress=lambda d, t: done.append((d, t)))
    assert done[-1] == (40, 40) and len(done) == 4


# -- CLI and experiment -----------------------------------------------------------------------------------
def test_cli_point_diagram_and_measure(tmp_path, capsys, run_cli):
    import json

    import nnft._cli_phases  # noqa: F401  (registers `nnft phases` until cli.py imports it)

    assert run_cli(["phases", "--activation", "relu", "--point", "2,0"]) == 0
    text = capsys.readouterr().out
    assert "critical" in text and "marginal" in text
    assert run_cli(["phases", "--activation", "erf", "--sigma-b2", "0.05", "--sigma-w2-grid", "0.5,3,6",
                    "--sigma-b2-grid", "0,0.5,3", "--plot", str(tmp_path / "d.png"), "--out", str(tmp_path / "d")]) == 0
    assert "1.375839007" in capsys.readouterr().out
    assert (tmp_path / "d.png").stat().st_size > 1000 and (tmp_path / "d.npz").exists()
    assert run_cli(["phases", "--activation", "relu", "--point", "1.5,0.05", "--measure", "--width", "64",
                    "--depth", "6", "--n-networks", "40", "--chunk-size", "10", "--c0", "0.4",
                    "--plot", str(tmp_path / "m.png"), "--out", str(tmp_path / "m")]) == 0
    text = capsys.readouterr().out
    assert "max |z|" in text and "depth scale" in text
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["kind"] == "phase-measurement" and meta["n_networks"] == 40 and meta["phase"] == "ordered"
    assert (tmp_path / "m.png").exists()


@pytest.mark.parametrize("args, word", [
    (["--activation", "gelu"], "--activation"),
    (["--point", "1"], "--point"),
    (["--measure"], "--measure"),
    (["--sigma-w2-grid", "3,1,5"], "--sigma-w2-grid"),
    (["--plot", "OUT/x.pdf"], "--plot"),
    (["--point", "1,0.1", "--plot", "OUT/x.png"], "--plot"),
    (["--activation", "erf", "--point", "1,0.25", "--measure", "--c0", "-0.9", "--out", "OUT/m"], "c0"),
    (["--point", "-1,0.1"], "sigma_w2"),
])
def test_cli_bad_input_is_one_line_exit_2(args, word, tmp_path, capsys, run_cli):
    import nnft._cli_phases  # noqa: F401

    args = [a.replace("OUT", str(tmp_path)) for a in args]
    assert run_cli(["phases", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_experiment_small_config_runs_and_passes():
    from nnft.experiments.phases import Phases

    exp = Phases(activations=("erf", "relu"), sigma_w2_grid=(0.1, 3.0, 12), sigma_b2_grid=(0.0, 0.5, 6),
                 points=(("relu", None, 0.0, 0.3), ("relu", 1.5, 0.05, 0.3)), width=128, depth=24,
                 n_networks=200, chunk_size=10, seed=2)
    fractions = []
    res = exp.run(progress=fractions.append)
    assert res.passed and len(res.checks) == 3  # two c^l checks, one ξ fit (the critical point has none)
    assert fractions[-1] == pytest.approx(1.0) and len(res.figures) == 4 and all(f.png for f in res.figures)
    assert res.arrays["erf_chi_1"].shape == (6, 12) and res.arrays["point0_c"].shape == (24,)
    assert res.tables[0].rows[0][1] == "critical" and res.arrays["point0_hyper"][0] == 2.0  # None: on the line
