"""The momentum-space check of designed free fields (nnft.fieldtheory.momentum; PHYSICS.md §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnft
from nnft.fieldtheory import free_scalar
from nnft.fieldtheory.momentum import _lag_propagator, lattice_window, momentum_spectrum, predicted_spectrum
from nnft.fieldtheory.spectrum import design, gaussian, power, spectral_density


def _q_space_prediction(spec, box: float, points: int, window: str, p: np.ndarray) -> np.ndarray:
    """Oracle for d = 1: E[I(p)] = ∫_{−Λ}^{Λ} dq/(2π) G̃(q) |W(p − q)|²/U with W(k) = a Σ_j w_j e^{ik a j},
    by composite Gauss–Legendre on panels much finer than the window's oscillation 2π/L."""
    a = box / points
    w1 = lattice_window(points, window)
    cutoff = 10.0
    t, wt = np.polynomial.legendre.leggauss(20)
    edges = np.linspace(-cutoff, cutoff, 2001)
    lo, hi = edges[:-1, None], edges[1:, None]
    q = ((hi - lo) / 2 * t + (hi + lo) / 2).ravel()
    wq = ((hi - lo) / 2 * wt).ravel()
    j = np.arange(points)
    out = []
    for pk in p:
        win = a * (w1[None, :] * np.exp(1j * np.outer(pk - q, a * j))).sum(1)
        out.append((wq * spectral_density(spec, np.abs(q)) * np.abs(win) ** 2).sum() / (2 * math.pi))
    return np.array(out) / (a * (w1**2).sum())


@pytest.mark.parametrize("window", ["hann", "none"])
def test_windowed_prediction_equals_the_momentum_space_convolution(window: str) -> None:
    """The lag-sum prediction (position space, one FFT) is the spectral-window convolution of G̃ (q space)."""
    spec = free_scalar(1, mass=1.0, cutoff=10.0, width=10)
    pred = predicted_spectrum(spec, box=8.0, points=32, window=window)
    pick = np.array([0, 1, 3, 7, 12, 16])
    np.testing.assert_allclose(pred.predicted[pick], _q_space_prediction(spec, 8.0, 32, window, pred.p[pick]),
                               rtol=1e-9)


def test_lag_propagator_is_the_kernel() -> None:
    """The vectorized Gauss–Legendre G(r) used for the prediction equals the NNGP (adaptive quadrature)."""
    for spec in (free_scalar(2, mass=0.7, cutoff=8.0, width=5), design(power(2.0, 0.5), 3, cutoff=6.0, width=5)):
        r = np.array([0.0, 0.3, 1.7, 9.5])
        x = np.zeros((len(r), spec.d_in))
        x[:, 0] = r
        np.testing.assert_allclose(_lag_propagator(spec, r), nnft.nngp(spec, x[:1], x).numpy()[0], rtol=1e-10,
                                   atol=1e-13)


def test_windowed_prediction_tends_to_the_bare_propagator() -> None:
    """Free massive scalar, m = 1, Λ = 20, spacing a = 1/16 (no aliasing: π/a > Λ). The leakage
    predicted/bare − 1 at p < Λ/4 is, to leading order, (2π²/(3L²)) G̃''(p)/G̃(p) with Hann (so −4π²/(3m²L²)
    at p = 0) and −(1/L) ∫|x| G e^{−ipx} / G̃ = −1/(mL) at p = 0 without a window. Stated tolerances:
    Hann at L = 64 within 0.4% of 1/(p² + m²) for all p < Λ/4, and both leading coefficients within 2%."""
    spec = free_scalar(1, mass=1.0, cutoff=20.0, width=10)
    leak = {}
    for window in ("hann", "none"):
        for box in (32.0, 64.0):
            pred = predicted_spectrum(spec, box=box, points=int(16 * box), window=window)
            low = pred.below(0.25)
            np.testing.assert_allclose(pred.bare[low], 1 / (pred.p[low] ** 2 + 1), rtol=1e-12)
            leak[window, box] = np.max(np.abs(pred.leakage()[low])), pred.leakage()[0]
    assert leak["hann", 64.0][0] < 4e-3
    assert leak["hann", 64.0][1] * 3 * 64.0**2 / (4 * math.pi**2) == pytest.approx(-1, rel=0.02)
    assert leak["none", 64.0][1] * 64.0 == pytest.approx(-1, rel=0.02)
    assert leak["hann", 32.0][0] / leak["hann", 64.0][0] == pytest.approx(4, rel=0.1)   # O(1/L²)
    assert leak["none", 32.0][0] / leak["none", 64.0][0] == pytest.approx(2, rel=0.05)  # O(1/L)


def test_measured_spectrum_of_the_free_scalar_d1() -> None:
    """Scalar-net, m = 1, Λ = 10, width 50, on L = 16 with n = 64 points (Nyquist 4π > Λ), Hann window,
    readout estimator, 10 000 networks: all 33 mode classes (26 below Λ) against the windowed prediction,
    max|z| < 4 and mean z² in [0.4, 1.8] (χ²/33 has standard deviation 0.25)."""
    res = momentum_spectrum(free_scalar(1, mass=1.0, cutoff=10.0, width=50), box=16.0, points=64,
                            n_networks=10_000, seed=3)
    z = res.z()
    assert len(z) == 33 and res.below().sum() == 26 and res.trusted().sum() == 26  # uniform momenta: all covered
    assert np.max(np.abs(z)) < 4, z
    assert 0.4 < np.mean(z**2) < 1.8, np.mean(z**2)
    # well below the cutoff the measurement is 1/(p² + m²) up to the stated Hann leakage (≤ 5% at L = 16)
    low = res.below(0.5)
    assert np.all(np.abs(res.measured[low] / res.bare[low] - 1) < 0.05 + 5 * res.stderr[low] / res.bare[low])


@pytest.mark.parametrize("spectrum,cutoff,window,estimator,n_trusted", [
    (power(2.0, 0.8), 5.0, "none", "plain", 12),
    (gaussian(1.5, 2.0), None, "hann", "readout", 16),
], ids=["power-cutoff-plain", "gaussian-no-cutoff-readout"])
def test_measured_spectrum_designed_d2(spectrum, cutoff, window: str, estimator: str, n_trusted: int) -> None:
    """Designed fields in d = 2 (importance momenta), on a 16² lattice of side 8 (Nyquist 2π), 4 000 networks
    of width 30: max|z| < 4 and mean z² in [0.3, 2.0] over the trusted mode classes (below Λ, coverage ≥ 100
    sampled momenta per cell; the 45 classes include rare-event-dominated ones near the Nyquist momentum)."""
    spec = design(spectrum, 2, cutoff=cutoff, width=30)
    res = momentum_spectrum(spec, box=8.0, points=16, n_networks=4_000, seed=2, window=window, estimator=estimator)
    assert len(res.p) == 45 and res.multiplicity.sum() == 16**2
    trusted = res.trusted()
    assert trusted.sum() == n_trusted
    z = res.z()[trusted]
    assert np.max(np.abs(z)) < 4, z
    assert 0.3 < np.mean(z**2) < 2.0, np.mean(z**2)


def test_reproducible_and_estimators_agree() -> None:
    """The same seed and chunk size give bitwise the same spectrum; the readout and plain estimators (the
    same networks) agree within errors, and the Rao–Blackwellized readout one has the smaller errors."""
    spec = free_scalar(1, mass=1.0, cutoff=6.0, width=20)
    kw = dict(box=8.0, points=32, n_networks=2_000, seed=1, chunk_size=500)
    a = momentum_spectrum(spec, **kw)
    b = momentum_spectrum(spec, **kw)
    np.testing.assert_array_equal(a.measured, b.measured)
    plain = momentum_spectrum(spec, **kw, estimator="plain")
    diff = (plain.measured - a.measured) / np.hypot(plain.stderr, a.stderr)
    assert np.max(np.abs(diff)) < 4.5
    assert np.mean(plain.stderr / a.stderr) > 1.0  # Rao–Blackwell: the readout estimator is the sharper one


@pytest.mark.parametrize("kwargs,where", [
    (dict(box=-1.0), "box"),
    (dict(points=1), "points"),
    (dict(points=300), "points"),
    (dict(window="kaiser"), "window"),
    (dict(n_networks=1), "n_networks"),
    (dict(seed=-2), "seed"),
    (dict(estimator="jackknife"), "estimator"),
])
def test_bad_input_names_the_parameter(kwargs, where) -> None:
    args = {**dict(box=4.0, points=8, n_networks=10, seed=0), **kwargs}
    spec = free_scalar(2, mass=1.0, cutoff=3.0, width=4)
    with pytest.raises(nnft.ConfigError) as e:
        momentum_spectrum(spec, **args)
    assert where in str(e.value)
    with pytest.raises(nnft.ConfigError) as e:
        predicted_spectrum(nnft.erf_net(4, 1), box=4.0, points=8)
    assert "spec" in str(e.value)
