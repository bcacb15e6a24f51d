"""KANs in the statistics pillar: the NNGP kernel of a random-initialised KAN against sampled ensembles.

Oracles: the spline quadrature against tensor Gauss–Legendre with scipy's B-splines (an independent basis);
kernels against ensembles by z-scores of jackknife errors (20 blocks; threshold |z| < 5 over all tuples);
the connected 4-point function's 1/N law by a weighted log–log fit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from nnft.compare import compare
from nnft.ensemble import EnsembleConfig, InProcess
from nnft.errors import ConfigError
from nnft.expressivity.kan.ensemble import evaluate_kans, measure_kan, sample_kans
from nnft.expressivity.kan.kernel import edge_covariance, kan_kernel, kan_two_point, spline_expectation
from nnft.expressivity.kan.spec import Constant, KANSpec
from nnft.spec import Normal, Uniform

Z_MAX = 5.0
X = np.array([[-0.9, 0.3], [0.1, -0.5], [0.6, 0.8], [1.3, -1.6]])  # last point outside the grid range


def _scipy_basis(spec: KANSpec, t: np.ndarray) -> np.ndarray:
    """B_m(t) from scipy's basis elements (an implementation independent of nnft's), 0 off support."""
    knots = spec.knots().numpy()
    cols = [np.nan_to_num(BSpline.basis_element(knots[m:m + spec.k + 2], extrapolate=False)(t))
            for m in range(spec.n_basis)]
    return np.stack(cols, axis=1)


def _tensor_gauss_legendre(spec: KANSpec, a: float, b: float, c: float, n: int = 24) -> float:
    """E[B(u)·B(v)] by tensor Gauss–Legendre on every knot-cell rectangle (valid away from |ρ| = 1)."""
    knots = spec.knots().numpy()
    t, w = np.polynomial.legendre.leggauss(n)
    pts = ((knots[:-1, None] + knots[1:, None]) / 2 + np.diff(knots)[:, None] / 2 * t).ravel()
    wts = (np.diff(knots)[:, None] / 2 * w).ravel()
    basis = _scipy_basis(spec, pts)
    det = a * b - c * c
    u, v = pts[:, None], pts[None, :]
    dens = np.exp(-(b * u * u - 2 * c * u * v + a * v * v) / (2 * det)) / (2 * np.pi * math.sqrt(det))
    return float(np.einsum("i,j,iq,jq,ij->", wts, wts, basis, basis, dens))


def test_spline_expectation_against_independent_quadrature() -> None:
    spec = KANSpec(shape=(2, 1), G=5, k=3)
    for a, b, c in ((0.5, 0.8, 0.3), (1.4, 0.3, -0.5), (0.2, 0.2, 0.05)):
        got = spline_expectation(spec, a, b, c)[0]
        assert abs(got - _tensor_gauss_legendre(spec, a, b, c)) < 1e-12
    # the diagonal (ρ = 1): a 1-D integral, checked by Gauss–Legendre per cell with scipy's basis
    knots = spec.knots().numpy()
    t, w = np.polynomial.legendre.leggauss(24)
    pts = ((knots[:-1, None] + knots[1:, None]) / 2 + np.diff(knots)[:, None] / 2 * t).ravel()
    wts = (np.diff(knots)[:, None] / 2 * w).ravel()
    for a in (0.05, 0.7, 3.0):
        dens = np.exp(-pts**2 / (2 * a)) / np.sqrt(2 * np.pi * a)
        ref = float((wts * dens * (_scipy_basis(spec, pts) ** 2).sum(1)).sum())
        assert abs(spline_expectation(spec, a, a, a)[0] - ref) < 1e-13
    # near-degenerate correlation stays accurate (breakpoints at the scaled knots)
    vals = [spline_expectation(spec, 0.5, 0.8, 0.63245, nodes=n)[0] for n in (16, 32)]
    assert abs(vals[0] - vals[1]) < 1e-11


def test_edge_covariance_formula_by_monte_carlo() -> None:
    """(1) with non-centred β, γ and c against the sample covariance of 2·10⁵ edges (z-scores of the
    per-entry standard error std[(φ_i − φ̄_i)(φ_j − φ̄_j)]/√n)."""
    spec = KANSpec(shape=(1, 1), G=4, k=2, scale_base=Uniform(-0.5, 1.5), scale_sp=Uniform(0.2, 1.0),
                   coef=Uniform(-1.0, 2.0))
    t = torch.tensor([-1.2, -0.3, 0.4, 0.95], dtype=torch.float64)
    nets = sample_kans(spec, 200000, torch.Generator().manual_seed(5))
    phi = evaluate_kans(spec, nets, t[:, None])[:, :, 0]  # (n, 4): φ(t) of one edge (s_0 = 1)
    dev = phi - phi.mean(0)
    prod = dev[:, :, None] * dev[:, None, :]
    z = (prod.mean(0) - edge_covariance(spec, t, t)) / (prod.std(0) / math.sqrt(phi.shape[0]))
    assert float(z.abs().max()) < Z_MAX, z


def test_build_matches_vectorized_evaluation() -> None:
    spec = KANSpec(shape=(2, 3, 2), scale_sp=Normal(0.5))
    nets = sample_kans(spec, 3, torch.Generator().manual_seed(2))
    x = torch.as_tensor(X)
    for i in range(3):
        out = nets.network(i)(x)
        assert torch.allclose(out, evaluate_kans(spec, nets, x)[i], atol=1e-13, rtol=0)
    a, b = spec.build(7)(x), spec.build(7)(x)
    assert torch.equal(a, b) and a.shape == (4, 2)


def test_measurement_independent_of_batching() -> None:
    spec = KANSpec(shape=(2, 5, 1))
    cfg = EnsembleConfig(n_networks=600, chunk_size=100, n_blocks=3, seed=4, max_order=4, dtype="float64")
    m1 = measure_kan(spec, X, cfg, executor=InProcess(1))
    m2 = measure_kan(spec, X, cfg, executor=InProcess(4))
    for n in (2, 4):
        assert np.array_equal(m1.connected[n].values, m2.connected[n].values)
        assert np.array_equal(m1.connected[n].stderr, m2.connected[n].stderr)


@pytest.mark.parametrize("spec", [
    KANSpec(shape=(2, 1)),
    KANSpec(shape=(2, 2), scale_base=Uniform(-0.5, 1.5), coef=Uniform(0.0, 1.0), scale_sp=Normal(0.7)),
    KANSpec(shape=(3, 1), normalization="none", scale_sp=Uniform(0.5, 1.5)),
], ids=["gaussian", "non-centred", "no-fan-in"])
def test_one_layer_kernel_is_exact(spec: KANSpec) -> None:
    x = np.concatenate([X, X[:, :1]], axis=1) if spec.d_in == 3 else X
    meas = measure_kan(spec, x, EnsembleConfig(n_networks=20000, chunk_size=1000, n_blocks=20, seed=11,
                                               max_order=2, dtype="float64"))
    pred = kan_two_point(spec, x)
    c = compare(pred, meas.moments[2])
    assert c.max_abs_z < Z_MAX, c.max_abs_z
    kk = kan_kernel(spec, x)
    mean_z = (meas.moments[1].values - np.repeat(kk.mean1.numpy(), spec.d_out)) / meas.moments[1].stderr
    assert np.max(np.abs(mean_z)) < Z_MAX
    assert kk.exact


@pytest.mark.parametrize("width", [3, 48])
def test_two_layer_gaussian_kan_kernel_exact_at_every_width(width: int) -> None:
    spec = KANSpec(shape=(2, width, 1))
    meas = measure_kan(spec, X, EnsembleConfig(n_networks=20000, chunk_size=1000, n_blocks=20, seed=width,
                                               max_order=2, estimator="readout", dtype="float64"))
    pred = kan_two_point(spec, X)
    assert kan_kernel(spec, X).exact
    c = compare(pred, meas.moments[2])
    assert c.max_abs_z < Z_MAX, c.max_abs_z


def test_deep_kan_kernel_approaches_recursion() -> None:
    """[2, N, N, 1]: the recursion is the N → ∞ limit. At N = 4 the measured G^(2) deviates by many
    standard errors; at N = 64 it agrees, and the mean relative deviation has shrunk (1/N predicts 16×)."""
    out = {}
    for width, n_nets in ((4, 20000), (64, 8000)):
        spec = KANSpec(shape=(2, width, width, 1))
        meas = measure_kan(spec, X, EnsembleConfig(n_networks=n_nets, chunk_size=n_nets // 20, n_blocks=20,
                                                   seed=3, max_order=2, estimator="readout", dtype="float64"))
        assert not kan_kernel(spec, X).exact
        out[width] = compare(kan_two_point(spec, X), meas.moments[2])
    assert out[4].max_abs_z > 8, out[4].max_abs_z
    assert out[64].max_abs_z < Z_MAX, out[64].max_abs_z
    assert out[64].mean_m < out[4].mean_m / 4, (out[4].mean_m, out[64].mean_m)


def test_connected_four_point_falls_like_one_over_width() -> None:
    """[2, N, 1] Gaussian KAN: one hidden layer of i.i.d. nodes, so G_c^(4) = κ4/N exactly. Weighted
    log–log fit of the coincident G_c^(4)(x, x, x, x) over N = 2..32: slope −1 within 3 standard errors."""
    widths = np.array([2, 4, 8, 16, 32])
    vals, errs = [], []
    for w in widths:
        spec = KANSpec(shape=(2, int(w), 1))
        meas = measure_kan(spec, X[:2], EnsembleConfig(n_networks=10000, chunk_size=500, n_blocks=20, seed=int(w),
                                                       max_order=4, estimator="readout", dtype="float64"))
        g4 = meas.connected[4]
        vals.append(g4.at(0, 0, 0, 0))
        errs.append(g4.full("stderr")[0, 0, 0, 0])
    vals, errs = np.array(vals), np.array(errs)
    assert np.all(vals > 5 * errs)  # a positive signal at every width (Gaussian readout: leptokurtic)
    lx, ly, sy = np.log(widths), np.log(vals), errs / vals
    wts = 1 / sy**2
    xm = (wts * lx).sum() / wts.sum()
    slope = (wts * (lx - xm) * ly).sum() / (wts * (lx - xm) ** 2).sum()
    slope_err = 1 / math.sqrt((wts * (lx - xm) ** 2).sum())
    assert slope_err < 0.05
    assert abs(slope + 1) < 3 * slope_err, (slope, slope_err)


def test_spec_validation_and_round_trip(tmp_path) -> None:
    spec = KANSpec(shape=(2, 4, 1), G=7, k=2, grid_range=(-2, 1), coef=Uniform(-1, 1), scale_sp=0.5,
                   normalization="none")
    assert isinstance(spec.scale_sp, Constant)
    assert KANSpec.from_config(spec.to_config()) == spec
    spec.save(tmp_path / "k.toml")
    assert KANSpec.load(tmp_path / "k.toml") == spec
    assert spec.n_params == (2 * 4 + 4 * 1) * (7 + 2 + 2)
    for bad, param in ((dict(shape=(2,)), "KANSpec.shape"), (dict(shape=(2, 1), G=0), "KANSpec.G"),
                       (dict(shape=(2, 1), grid_range=(1, -1)), "KANSpec.grid_range"),
                       (dict(shape=(2, 1), coef="x"), "KANSpec.coef"),
                       (dict(shape=(2, 1), normalization="ntk"), "KANSpec.normalization")):
        with pytest.raises(ConfigError, match=param):
            KANSpec(**bad)
    with pytest.raises(ConfigError, match="centred edge functions"):
        kan_kernel(KANSpec(shape=(2, 3, 1), scale_base=Uniform(0.0, 1.0)), X)
    with pytest.raises(ConfigError, match="readout"):
        measure_kan(KANSpec(shape=(2, 3, 1), scale_base=Uniform(-1.0, 1.0)), X,
                    EnsembleConfig(n_networks=100, chunk_size=10, estimator="readout"))
