"""Free fields by design (PHYSICS.md §2, §6): exact propagators, measured 2-point functions, RP."""

from __future__ import annotations

import numpy as np
import pytest

import nnft
from nnft.fieldtheory import (free_scalar, gaussian_free_field, gaussian_propagator, reflection_positivity,
                              scalar_propagator, time_lattice)

R = np.array([0.0, 0.15, 0.4, 0.8, 1.5])


def _points(d: int) -> np.ndarray:
    x = np.zeros((len(R), d))
    x[:, 0] = R
    return x


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_network_kernel_is_the_cutoff_propagator(d: int) -> None:
    """The Scalar-net NNGP (first-layer radial quadrature in nnft.theory) equals the independently coded
    Fourier–Bessel propagator ∫_{|p|<Λ} d^dp/(2π)^d e^{ip·x}/(p² + m²)."""
    spec = free_scalar(d, mass=1.3, cutoff=15.0, width=10)
    k = nnft.nngp(spec, _points(d)[:1], _points(d)).numpy()[0]
    np.testing.assert_allclose(k, scalar_propagator(R, d, mass=1.3, cutoff=15.0), rtol=1e-9)


@pytest.mark.parametrize("d,closed", [(1, lambda r: np.exp(-r) / 2), (3, lambda r: np.exp(-r) / (4 * np.pi * r))])
def test_no_cutoff_closed_forms(d: int, closed) -> None:
    r = np.array([0.3, 1.0, 2.5])
    np.testing.assert_allclose(scalar_propagator(r, d, mass=1.0), closed(r), rtol=1e-12)


def test_cutoff_propagator_converges_to_the_continuum() -> None:
    """|G_Λ − G_∞| = |(1/π) ∫_Λ^∞ cos(p x)/(p² + m²) dp| ≤ 2/(π Λ² x) in d = 1."""
    r = np.array([0.5, 1.0, 2.0])
    exact = scalar_propagator(r, 1)
    for cutoff in (50.0, 400.0):
        err = np.abs(scalar_propagator(r, 1, cutoff=cutoff) - exact)
        assert np.all(err <= 2 / (np.pi * cutoff**2 * r))


@pytest.mark.parametrize("d", [1, 3])
def test_measured_propagator_of_the_designed_scalar(d: int) -> None:
    """Free massive scalar, m = 1, Λ = 20: the ensemble's G^(2)(0, r) against the exact propagator.
    5σ over 15 correlated tuples (jackknife, 20 blocks)."""
    spec = free_scalar(d, mass=1.0, cutoff=20.0, width=100)
    x = _points(d)
    meas = nnft.measure(spec, x, nnft.EnsembleConfig(n_networks=40_000, chunk_size=2000, n_blocks=20, seed=d,
                                                     max_order=2, estimator="readout"))
    g = meas.moments[2]
    dist = np.linalg.norm(x[g.tuples[:, 0]] - x[g.tuples[:, 1]], axis=1)
    exact = scalar_propagator(dist, d, mass=1.0, cutoff=20.0)
    z = (g.values - exact) / g.stderr
    assert np.max(np.abs(z)) < 5, z


def test_measured_gaussian_spectrum() -> None:
    spec = gaussian_free_field(2, sigma_a=1.2, sigma_w=1.5, width=50)
    x = _points(2)
    meas = nnft.measure(spec, x, nnft.EnsembleConfig(n_networks=20_000, chunk_size=1000, n_blocks=20, seed=5,
                                                     max_order=2, estimator="readout"))
    g = meas.moments[2]
    dist = np.linalg.norm(x[g.tuples[:, 0]] - x[g.tuples[:, 1]], axis=1)
    exact = gaussian_propagator(dist, 2, sigma_a=1.2, sigma_w=1.5)
    assert np.max(np.abs((g.values - exact) / g.stderr)) < 5


def test_reflection_positivity_expectations_of_physics_md() -> None:
    """PHYSICS.md §6 (derived; verified here): 1/(p² + m²) at Λ = ∞ is RP; the RBF kernel is not; a sharp
    cutoff violates RP at separations ~1/Λ, less and less as Λ grows."""
    pts = time_lattice(8, 0.25)
    assert reflection_positivity(lambda r: scalar_propagator(r, 1), pts).positive()
    rbf = reflection_positivity(lambda r: gaussian_propagator(r, 1), pts)
    assert rbf.ratio < -0.05
    fine = time_lattice(8, 0.1)
    ratios = [reflection_positivity(lambda r, c=c: scalar_propagator(r, 1, cutoff=c), fine).ratio for c in (5, 20, 80)]
    assert all(v < -1e-5 for v in ratios)
    assert ratios[0] < ratios[1] < ratios[2]  # the violation shrinks as Λ grows


def test_bad_input() -> None:
    with pytest.raises(nnft.ConfigError, match="d"):
        free_scalar(5)
    with pytest.raises(nnft.ConfigError, match="r"):
        scalar_propagator([-1.0], 1)
    with pytest.raises(nnft.ConfigError, match="points"):
        reflection_positivity(lambda r: r, np.array([[-1.0], [1.0]]))


def test_field_cli_design_and_measure(tmp_path, run_cli, capsys) -> None:
    assert run_cli(["field", "design", "--d", "2", "--mass", "1.5", "--cutoff", "10", "--out",
                    str(tmp_path / "s.toml")]) == 0
    spec = nnft.Architecture.load(tmp_path / "s.toml")
    assert spec == free_scalar(2, mass=1.5, cutoff=10.0, width=100)
    assert run_cli(["field", "measure", "--d", "1", "--n-networks", "10000", "--separations", "0,0.5,1",
                    "--out", str(tmp_path / "p")]) == 0
    meta, arrays = nnft.results.read_result(tmp_path / "p")
    np.testing.assert_allclose(arrays["exact"], scalar_propagator([0, 0.5, 1], 1, cutoff=20.0), rtol=1e-12)
    capsys.readouterr()
    assert run_cli(["field", "measure", "--separations", "-1,2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--separations" in err[0]
