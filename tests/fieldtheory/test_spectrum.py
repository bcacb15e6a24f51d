"""Free theories by design from a general isotropic spectrum (nnft.fieldtheory.spectrum; PHYSICS.md §2, §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nnft
from nnft.ensemble.sampling import chunk_generator, evaluate, sample_networks
from nnft.fieldtheory import free_scalar, gaussian_free_field, gaussian_propagator, scalar_propagator
from nnft.fieldtheory.spectrum import (as_spectrum, continuum_propagator, design, gaussian, massive,
                                       position_propagator, power, spectral_cutoff, spectral_density, sphere_area)
from nnft.spec import Spectral, SpectralAmplitude, Spectrum, scalar_net

R = np.array([0.0, 0.15, 0.4, 0.8, 1.5])


def _points(d: int, r: np.ndarray = R) -> np.ndarray:
    x = np.zeros((len(r), d))
    x[:, 0] = r
    return x


def bump(p):
    """A user spectrum, G̃(p) = (1 + p²) e^{−p²} (importable as '<this module>:bump')."""
    return (1 + p * p) * np.exp(-p * p)


# ========================================================================================================
# Theory face: kernels of designed specs = the Fourier–Bessel propagator
# ========================================================================================================
@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("momenta", ["uniform", "importance"])
def test_designed_massive_scalar_is_scalar_net(d: int, momenta: str) -> None:
    """design(1/(p² + m²)) has the Scalar-net 2-point function: its NNGP (radial quadrature in nnft.theory)
    equals free.py's independently coded propagator and the Scalar-net kernel to 1e-10."""
    spec = design(massive(1.3), d, cutoff=15.0, width=10, momenta=momenta)
    k = nnft.nngp(spec, _points(d)[:1], _points(d)).numpy()[0]
    np.testing.assert_allclose(k, scalar_propagator(R, d, mass=1.3, cutoff=15.0), rtol=1e-10)
    np.testing.assert_allclose(k, nnft.nngp(free_scalar(d, mass=1.3, cutoff=15.0), _points(d)[:1],
                                            _points(d)).numpy()[0], rtol=1e-10)
    np.testing.assert_allclose(position_propagator(massive(1.3), R, d, cutoff=15.0), k, rtol=1e-10)


def test_uniform_design_samples_the_scalar_net_networks() -> None:
    """Same momenta, phases and readout draws as Scalar-net; the amplitude sqrt(G̃) = (p² + m²)^{−1/2} agrees
    to rounding, so the sampled fields agree network by network."""
    spec, ref = design(massive(0.8), 2, cutoff=6.0, width=40, momenta="uniform"), scalar_net(40, 2, mass=0.8,
                                                                                             cutoff=6.0)
    assert spec.layers == ref.layers and isinstance(spec.amplitude, SpectralAmplitude)
    x = torch.as_tensor(_points(2))
    phi = evaluate(spec, sample_networks(spec, 200, chunk_generator(4, 0), dtype=torch.float64), x)
    phi_ref = evaluate(ref, sample_networks(ref, 200, chunk_generator(4, 0), dtype=torch.float64), x)
    np.testing.assert_allclose(phi.numpy(), phi_ref.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_gaussian_spectrum_closed_form_and_cos_net(d: int) -> None:
    """G̃ = A e^{−p²/(2σ²)} without cutoff: the importance design's kernel is A (σ²/2π)^{d/2} e^{−σ²r²/2};
    with σ = σ_w/√d, A = (σ_a²/2)(2π/σ²)^{d/2} it is Cos-net's (σ_a²/2) e^{−σ_w² r²/(2d)}."""
    sigma_a, sigma_w = 1.2, 1.5
    sigma = sigma_w / math.sqrt(d)
    amp = sigma_a**2 / 2 * (2 * math.pi / sigma**2) ** (d / 2)
    spec = design(gaussian(sigma, amp), d)
    k = nnft.nngp(spec, _points(d)[:1], _points(d)).numpy()[0]
    closed = amp * (sigma**2 / (2 * math.pi)) ** (d / 2) * np.exp(-(sigma**2) * R**2 / 2)
    np.testing.assert_allclose(k, closed, rtol=1e-10)
    np.testing.assert_allclose(k, gaussian_propagator(R, d, sigma_a=sigma_a, sigma_w=sigma_w), rtol=1e-10)
    np.testing.assert_allclose(position_propagator(gaussian(sigma, amp), R, d, method="quadrature"), closed,
                               rtol=1e-10)
    # and back: the spec's G̃ is Cos-net's Gaussian spectrum
    p = np.array([0.0, 0.7, 2.0])
    np.testing.assert_allclose(spectral_density(spec, p), amp * np.exp(-p * p / (2 * sigma**2)), rtol=1e-10)
    np.testing.assert_allclose(spectral_density(gaussian_free_field(d, sigma_a=sigma_a, sigma_w=sigma_w), p),
                               amp * np.exp(-p * p / (2 * sigma**2)), rtol=1e-12)


@pytest.mark.parametrize("spectrum,d,cutoff", [
    (power(2.0, 0.7), 2, 12.0),
    (power(1.5, 1.0), 3, 9.0),
    ("scipy.special:erfc", 1, None),   # any importable profile: G̃(p) = erfc(p)
    (bump, 3, None),
], ids=["power-a2-d2", "power-a1.5-d3", "erfc-d1", "user-bump-d3"])
@pytest.mark.parametrize("momenta", ["uniform", "importance"])
def test_designed_kernel_is_the_position_propagator(spectrum, d: int, cutoff, momenta: str) -> None:
    if momenta == "uniform" and cutoff is None:
        cutoff = 7.0
    spec = design(spectrum, d, cutoff=cutoff, width=5, momenta=momenta)
    k = nnft.nngp(spec, _points(d)[:1], _points(d)).numpy()[0]
    np.testing.assert_allclose(k, position_propagator(spectrum, R, d, cutoff=cutoff), rtol=1e-10)
    # spec → G̃ inverts design: G̃ below the cutoff, 0 beyond it
    s = as_spectrum(spectrum)
    p = np.array([0.0, 0.5, 2.0, 6.5])
    np.testing.assert_allclose(spectral_density(spec, p), s(p), rtol=1e-10)
    if cutoff is not None:
        assert spectral_cutoff(spec) == cutoff and spectral_density(spec, [cutoff * 1.01])[0] == 0.0


# ========================================================================================================
# Position space: continuum closed forms and the Λ → ∞ limit
# ========================================================================================================
@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_continuum_closed_forms_against_quadrature(d: int) -> None:
    """Bessel-K (massive), Matérn (power) and Gaussian closed forms vs the Λ = ∞ radial quadrature
    (QAWF in d = 1, 3; Euler-summed Bessel-zero pieces in d = 2, 4)."""
    r = np.array([0.3, 1.0, 2.5, 6.0])
    for s in (massive(0.9), power(d / 2 + 0.4, 1.2), power(3.0, 0.6), gaussian(1.7, 0.4)):
        closed = continuum_propagator(s, r, d)  # absolute floor 1e-13 G(0.3): the Gaussian's G(6) ~ e^{−52}
        np.testing.assert_allclose(position_propagator(s, r, d, method="quadrature"), closed, rtol=1e-9,
                                   atol=1e-13 * closed[0])
    # the massive closed form is free.py's (independently coded) continuum propagator
    np.testing.assert_allclose(continuum_propagator(massive(0.9), r, d), scalar_propagator(r, d, mass=0.9),
                               rtol=1e-13)
    # G(0) of the power spectrum, 2α > d: Γ(α − d/2) m^{d−2α}/((4π)^{d/2} Γ(α))
    s = power(3.0, 0.6)
    np.testing.assert_allclose(position_propagator(s, [0.0], d, method="quadrature"),
                               continuum_propagator(s, [0.0], d), rtol=1e-10)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_cutoff_propagator_tends_to_the_bessel_k_continuum(d: int) -> None:
    """|G_Λ − G_∞|/G_∞ at r = 0.5, 1, 2: below 2e-3 at Λ = 800 and falling at least like Λ^{(d−5)/2} (the
    oscillating tail of the Fourier–Bessel integral), within a factor 4, from Λ = 50."""
    r = np.array([0.5, 1.0, 2.0])
    exact = continuum_propagator(massive(1.0), r, d)
    err = {c: np.max(np.abs(position_propagator(massive(1.0), r, d, cutoff=c) / exact - 1)) for c in (50.0, 800.0)}
    assert err[800.0] < 2e-3
    assert err[800.0] < 4 * err[50.0] * (50.0 / 800.0) ** ((5 - d) / 2), err


# ========================================================================================================
# Experiment face: sampled ensembles of designed specs
# ========================================================================================================
@pytest.mark.parametrize("spectrum,d,cutoff,momenta", [
    (power(2.0, 0.7), 2, 12.0, "importance"),
    (power(2.0, 0.7), 2, 12.0, "uniform"),
    (massive(1.0), 3, 20.0, "importance"),
    (massive(1.0), 1, None, "importance"),  # the continuum e^{−m|x|}/(2m): Cauchy-distributed momenta
], ids=["power-importance", "power-uniform", "massive-d3", "massive-d1-continuum"])
def test_measured_propagator_of_designed_specs(spectrum, d: int, cutoff, momenta: str) -> None:
    """The ensemble's G^(2) at all pairs of 5 points against position_propagator: max|z| < 5 over 15
    correlated tuples (readout estimator, jackknife over 20 blocks, 20 000 networks of width 50)."""
    spec = design(spectrum, d, cutoff=cutoff, width=50, momenta=momenta)
    x = _points(d)
    meas = nnft.measure(spec, x, nnft.EnsembleConfig(n_networks=20_000, chunk_size=1000, n_blocks=20, seed=11,
                                                     max_order=2, estimator="readout"))
    g = meas.moments[2]
    dist = np.linalg.norm(x[g.tuples[:, 0]] - x[g.tuples[:, 1]], axis=1)
    z = (g.values - position_propagator(spectrum, dist, d, cutoff=cutoff)) / g.stderr
    assert np.max(np.abs(z)) < 5, z


def test_importance_design_has_the_smaller_four_point_function() -> None:
    """G_c^(4)(x,x,x,x) of one cos layer with a Gaussian readout is (3μ_2²/N)(3E[F⁴]/8 − E[F²]²/4) at width N:
    1.5 G(0)²/N for the importance design, (3/N)[(3/2) vol ∫_{|p|<Λ} G̃²/(2π)^{2d} − G(0)²] for the uniform one
    (larger, by Cauchy–Schwarz). Measured with the readout estimator: |z| < 4 for both."""
    s, d, cutoff, width = power(2.0, 0.7), 2, 12.0, 50
    g0 = position_propagator(s, [0.0], d, cutoff=cutoff)[0]
    vol = math.pi * cutoff**2
    from scipy import integrate

    int_g2 = sphere_area(d) * integrate.quad(lambda p: p * float(s(p)) ** 2, 0, cutoff, epsrel=1e-12)[0]
    theory = {"importance": 1.5 * g0**2 / width,
              "uniform": 3 / width * (1.5 * vol * int_g2 / (2 * math.pi) ** (2 * d) - g0**2)}
    assert theory["uniform"] > 50 * theory["importance"]
    for momenta, expected in theory.items():
        spec = design(s, d, cutoff=cutoff, width=width, momenta=momenta)
        meas = nnft.measure(spec, np.zeros((1, d)), nnft.EnsembleConfig(
            n_networks=20_000, chunk_size=1000, n_blocks=20, seed=5, max_order=4, estimator="readout"))
        c4 = meas.connected[4]
        assert abs(c4.values[0] - expected) < 4 * c4.stderr[0], (momenta, c4.values[0], c4.stderr[0], expected)


# ========================================================================================================
# The spec: round trips and validation
# ========================================================================================================
@pytest.mark.parametrize("momenta", ["uniform", "importance"])
def test_designed_spec_round_trips_through_toml(tmp_path, momenta: str) -> None:
    for spectrum, cutoff in ((power(2.0, 0.7), 9.0), (bump, 7.0), ("scipy.special:erfc", 5.0)):
        spec = design(spectrum, 2, cutoff=cutoff, width=7, momenta=momenta)
        spec.save(tmp_path / "s.toml")
        back = nnft.Architecture.load(tmp_path / "s.toml")
        assert back == spec and hash(back) == hash(spec)
        assert back.to_config() == spec.to_config()
    text = (tmp_path / "s.toml").read_text()
    assert "scipy.special:erfc" in text


def test_spectral_density_samples_its_radial_law() -> None:
    """|ŵ| of the importance design has the CDF ∫_0^q p^{d−1} G̃ / Z_d (Simpson on a 40 001-point grid):
    Kolmogorov–Smirnov on 20 000 draws (p > 1e-3), and E[ŵ_k²] = std_for(d)² within 5 standard errors."""
    from scipy import integrate, stats

    density = Spectral(power(2.0, 0.7), 12.0)
    w = density.sample((20_000, 3), torch.Generator().manual_seed(3), torch.float64)
    q = w.norm(dim=-1).numpy()
    grid = np.linspace(0.0, 12.0, 40_001)
    cum = integrate.cumulative_simpson(grid**2 * density.spectrum(grid), x=grid, initial=0.0)
    np.testing.assert_allclose(cum[-1], density.radial_norm(3), rtol=1e-9)
    assert stats.kstest(q, lambda t: np.interp(t, grid, cum / cum[-1])).pvalue > 1e-3
    second = (w**2).mean(0).numpy()
    assert np.all(np.abs(second - density.std_for(3) ** 2) < 5 * (w**2).std(0).numpy() / math.sqrt(len(w)))


def _message(exc_info) -> str:
    return str(exc_info.value)


@pytest.mark.parametrize("build,where", [
    (lambda: Spectrum("no_colon"), "Spectrum.profile"),
    (lambda: Spectrum("no_such_module_q:f"), "Spectrum.profile"),
    (lambda: Spectrum("numpy:sin"), "Spectrum"),                        # negative at p = 5
    (lambda: design(Spectrum("numpy:exp"), 1), "Spectral.cutoff"),      # valid profile, but Z_1 = ∞
    (lambda: Spectrum(massive(1.0).profile, {"mass": "1"}), "Spectrum.params"),
    (lambda: Spectrum(massive(1.0).profile, {"mass": -1.0}), "massive.mass"),
    (lambda: Spectrum(massive(1.0).profile, {"charm": 1.0}), "Spectrum.params"),
    (lambda: massive(0.0), "mass"),
    (lambda: power(-1.0), "alpha"),
    (lambda: gaussian(sigma=float("nan")), "sigma"),
    (lambda: Spectral(massive(1.0), cutoff=0.0), "Spectral.cutoff"),
    (lambda: Spectral("massive"), "Spectral.spectrum"),
    (lambda: SpectralAmplitude(3.0), "SpectralAmplitude.spectrum"),
    (lambda: design(massive(1.0), 2, momenta="uniform"), "cutoff"),      # a ball needs a radius
    (lambda: design(massive(1.0), 3), "Spectral.cutoff"),               # ∫ d³p/(p² + m²) diverges
    (lambda: design(massive(1.0), 0, cutoff=1.0), "d"),
    (lambda: design(massive(1.0), 1, cutoff=1.0, width=0), "width"),
    (lambda: design(massive(1.0), 1, cutoff=1.0, momenta="random"), "momenta"),
    (lambda: design(lambda p: 1 / (1 + p * p), 1, cutoff=3.0), "spectrum"),  # a lambda does not serialize
    (lambda: position_propagator(massive(1.0), [0.0], 2), "cutoff"),    # G(0) diverges in d = 2
    (lambda: position_propagator(massive(1.0), [-1.0], 1), "r"),
    (lambda: position_propagator(massive(1.0), [1.0], 1, method="fft"), "method"),
    (lambda: spectral_density(nnft.relu_net(3, 1), [1.0]), "spec"),
    (lambda: nnft.Architecture.from_config({**design(massive(1.0), 1, cutoff=2.0, momenta="uniform").to_config(),
                                            "amplitude": {"kind": "spectral"}}), "architecture.amplitude"),
])
def test_bad_input_names_the_parameter(build, where: str) -> None:
    with pytest.raises(nnft.ConfigError) as e:
        build()
    assert where in _message(e), _message(e)


def test_position_propagator_accepts_a_plain_function() -> None:
    """The theory side needs no serialization: a lambda works there (and matches the family)."""
    r = np.array([0.0, 0.7])
    np.testing.assert_allclose(position_propagator(lambda p: 1 / (p * p + 4.0), r, 3, cutoff=10.0),
                               position_propagator(massive(2.0), r, 3, cutoff=10.0), rtol=1e-13)


def test_field_cli_general_spectrum_and_momentum(tmp_path, run_cli, capsys) -> None:
    from nnft import Architecture
    from nnft.fieldtheory import design, power

    assert run_cli(["field", "design", "--d", "2", "--spectrum", "power", "--alpha", "2", "--mass", "0.7",
                    "--cutoff", "12", "--momenta", "importance", "--width", "6", "--out", str(tmp_path / "s.toml")]) == 0
    assert Architecture.load(tmp_path / "s.toml") == design(power(2.0, 0.7), 2, cutoff=12.0, width=6)
    assert run_cli(["field", "measure", "--spec", str(tmp_path / "s.toml"), "--n-networks", "4000",
                    "--separations", "0,0.5", "--out", str(tmp_path / "g")]) == 0
    assert run_cli(["field", "measure", "--d", "1", "--momentum", "--box", "8", "--points", "64",
                    "--n-networks", "2000", "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "lattice power spectrum" in out and "max |z|" in out
    for argv, param in ((["--spectrum", "lorentz"], "--spectrum"), (["--momenta", "grid"], "--momenta"),
                        (["--cutoff", "-1"], "--cutoff")):
        assert run_cli(["field", "design", *argv, "--out", str(tmp_path / "bad.toml")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and param in err[0], err
    assert not (tmp_path / "bad.toml").exists()
