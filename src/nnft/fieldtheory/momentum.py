"""The momentum-space check of a designed free field (PHYSICS.md §6: "the Fourier transform of the measured
⟨φ(x)φ(0)⟩ should be G̃(p) = 1/(p² + m²) on |p| < Λ"; arXiv:2112.04527).

Each network is sampled on the lattice x_j = a j, j ∈ {0, …, n−1}^d, a = L/n, and Fourier transformed with a
window w_j = Π_μ w1(j_μ) (``"hann"``: w1(j) = sin²(π(j + ½)/n); ``"none"``: 1). Its periodogram

    I(p) = |a^d Σ_j w_j φ(x_j) e^{−ip·x_j}|² / U,     U = a^d Σ_j w_j²,     p = 2πk/L,

has the ensemble mean (the **windowed prediction**, exact for any box, window and lattice spacing)

    E[I(p)] = (a^{2d}/U) Σ_{s ∈ {1−n, …, n−1}^d} C(s) G(a|s|) e^{−ip·as},   C(s) = Σ_j w_j w_{j+s}
            = ∫ d^dq/(2π)^d G̃(|q|) |W(p − q)|² / U,                        W(k) = a^d Σ_j w_j e^{ik·x_j}.

The field is not periodic on the box, so E[I] is G̃ smeared by the spectral window |W|²/U (leakage) and
folded by the lattice (aliasing, absent when the Nyquist momentum π/a exceeds the cutoff Λ). For L → ∞ it
tends to G̃(p): the leakage is O(1/L) without a window (the lag window 1 − |s|/n) and O(1/L²) with Hann (a
lag window 1 − O(s²/n²)). The honest comparison is measured vs windowed, with z-scores; the bare G̃ is
shown alongside, with the leakage predicted/bare − 1.

Estimators: ``"readout"`` (Rao–Blackwell over a Gaussian readout W ~ N(0, σ_W²/N), bias ~ N(0, σ_b²)):

    E[I(p) | h] = (σ_W²/N) Σ_i |a^d Σ_j w_j h_i(x_j) e^{−ip·x_j}|²/U + σ_b² |a^d Σ_j w_j e^{−ip·x_j}|²/U;

``"plain"``: I(p) of the sampled φ. Modes are grouped in classes under the cubic group (permutations and sign
flips of k, which leave the prediction invariant); each network's value is averaged over its class, and the
error is the standard error of the mean over the independent networks. Networks come in chunks seeded by
(seed, chunk index), as in :func:`nnft.measure`.

Coverage. A mode's periodogram is carried by the neurons whose momentum falls in its cell (volume
(2π/L)^d); the expected number of them among the sampled ones is coverage(p) = M N P(p) (2π/L)^d. Where it
is small (the Gaussian tail of Cos-net near the Nyquist momentum, say) the mean is dominated by events the
sample hardly contains, and neither the sample mean nor its standard error can be trusted: compare the
modes with :meth:`MomentumSpectrum.trusted` (coverage ≥ 100 and |p| < Λ by default).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import numpy as np
import torch
from scipy import special

from ..errors import check
from ..spec import Architecture, Normal
from .spectrum import _phase_layer, momentum_density, spectral_cutoff, spectral_density, sphere_area

__all__ = ["MomentumSpectrum", "momentum_spectrum", "predicted_spectrum", "lattice_window"]

Window = Literal["hann", "none"]


@dataclass(frozen=True, eq=False)
class MomentumSpectrum:
    """Lattice power spectrum of a translation-invariant ensemble, by mode class (K classes).

    modes : (K, d) int, a representative k of each class (|k_μ| sorted descending; p = 2πk/L).
    p : (K,) |p|.   multiplicity : (K,) number of lattice momenta in the class.
    predicted : (K,) the exact ensemble mean of the windowed periodogram (box, window, aliasing included).
    bare : (K,) G̃(|p|) of the spec (:func:`~nnft.fieldtheory.spectrum.spectral_density`; 0 beyond Λ).
    measured, stderr : (K,) class-averaged periodogram over the ensemble and its standard error, or None
    for a prediction only.  coverage : (K,) expected number of sampled momenta in the mode's cell,
    M N P(|p|) (2π/L)^d, or None.  box L, points n, window, cutoff Λ (inf if none), n_networks, seed,
    estimator.
    """

    modes: np.ndarray
    p: np.ndarray
    multiplicity: np.ndarray
    predicted: np.ndarray
    bare: np.ndarray
    box: float
    points: int
    window: str
    cutoff: float
    measured: Optional[np.ndarray] = None
    stderr: Optional[np.ndarray] = None
    coverage: Optional[np.ndarray] = None
    n_networks: int = 0
    seed: Optional[int] = None
    estimator: Optional[str] = None

    @property
    def spacing(self) -> float:
        """a = L/n."""
        return self.box / self.points

    @property
    def nyquist(self) -> float:
        """π/a: no aliasing when this exceeds the cutoff."""
        return math.pi / self.spacing

    def z(self) -> np.ndarray:
        """(measured − predicted)/stderr per class."""
        check(self.measured is not None, "MomentumSpectrum.z", "a prediction only", "a measured spectrum")
        return (self.measured - self.predicted) / self.stderr

    def leakage(self) -> np.ndarray:
        """predicted/bare − 1 (nan where bare = 0): what the finite box and window do to G̃."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.bare > 0, self.predicted / self.bare - 1, np.nan)

    def below(self, fraction: float = 1.0) -> np.ndarray:
        """Mask of the classes with |p| < fraction · Λ."""
        return self.p < fraction * self.cutoff

    def trusted(self, min_coverage: float = 100.0) -> np.ndarray:
        """Mask of the classes below the cutoff whose coverage is at least ``min_coverage`` sampled momenta
        (where the mean and its standard error are not dominated by rare neurons)."""
        check(self.coverage is not None, "MomentumSpectrum.trusted", "a prediction only", "a measured spectrum")
        return self.below() & (self.coverage >= min_coverage)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"modes": self.modes, "p": self.p, "multiplicity": self.multiplicity, "predicted": self.predicted,
               "bare": self.bare}
        if self.measured is not None:
            out.update(measured=self.measured, stderr=self.stderr, coverage=self.coverage)
        return out


# ------------------------------------------------------------------------------------------------------
# Lattice, window, mode classes
# ------------------------------------------------------------------------------------------------------

def lattice_window(points: int, window: Window) -> np.ndarray:
    """w1(j), j = 0..n−1: Hann sin²(π(j + ½)/n) or ones."""
    check(window in ("hann", "none"), "window", window, "'hann' or 'none'")
    j = np.arange(points)
    return np.sin(math.pi * (j + 0.5) / points) ** 2 if window == "hann" else np.ones(points)


def _mode_classes(d: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(representatives (K, d), class index of every lattice k in C order (n^d,), multiplicity (K,))."""
    k = np.indices((n,) * d).reshape(d, -1).T
    centred = np.where(k <= n // 2, k, n - k)  # |k| in the symmetric range
    key = -np.sort(-centred, axis=1)
    reps, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return reps, inverse.ravel(), counts


def _check_inputs(spec: Architecture, box, points) -> tuple[int, float, int]:
    _phase_layer(spec)
    check(spec.d_out == 1, "spec.d_out", spec.d_out, "1 (one output field)")
    check(isinstance(box, (int, float)) and not isinstance(box, bool) and math.isfinite(box) and box > 0, "box", box,
          "a finite box side L > 0")
    check(isinstance(points, int) and not isinstance(points, bool) and points >= 2, "points", points,
          "an integer n >= 2 (lattice points per side)")
    d = spec.d_in
    check(points**d <= 1 << 16, "points", points, f"n with n^d <= 65536 sites (d = {d})")
    return d, float(box), points


# ------------------------------------------------------------------------------------------------------
# Prediction
# ------------------------------------------------------------------------------------------------------

def _lag_propagator(spec: Architecture, radii: np.ndarray) -> np.ndarray:
    """G(r) of the spec at many radii: composite 16-point Gauss–Legendre of
    G(r) = σ_b² + ∫_0^Λ dp S_{d−1}(2π)^{−d} p^{d−1} G̃(p) Ω_d(pr) on panels ≤ π/(2 r_max) (and graded
    towards p = 0), vectorized over r. Without a cutoff, Λ is the momentum beyond which the spectral mass
    ∫ p^{d−1} G̃ is below 1e-15 of the total (so |error| ≤ 1e-15 G(0), as |Ω_d| ≤ 1); Gaussian momenta, or
    tails too heavy for that, use the NNGP kernel (nnft.theory) radius by radius."""
    d = spec.d_in
    cutoff = spectral_cutoff(spec)
    if not math.isfinite(cutoff) and not isinstance(spec.layers[0].weight, Normal):
        cutoff = _effective_cutoff(spec)
    if not math.isfinite(cutoff):
        from ..theory.kernels import nngp

        x = np.zeros((len(radii), d))
        x[:, 0] = radii
        return nngp(spec, np.zeros((1, d)), x).numpy()[0]
    n_panels = max(64, int(math.ceil(cutoff * 2 * max(radii.max(), 1e-12) / math.pi)))
    edges = np.unique(np.concatenate([np.linspace(0.0, cutoff, n_panels + 1), cutoff * 2.0 ** -np.arange(1, 25)]))
    t, wt = np.polynomial.legendre.leggauss(16)
    lo, hi = edges[:-1, None], edges[1:, None]
    nodes = ((hi - lo) / 2 * t + (hi + lo) / 2).ravel()
    weights = ((hi - lo) / 2 * wt).ravel()
    h = weights * sphere_area(d) / (2 * math.pi) ** d * nodes ** (d - 1) * spectral_density(spec, nodes)
    out = np.empty(len(radii))
    for i0 in range(0, len(radii), 64):
        out[i0:i0 + 64] = _omega(radii[i0:i0 + 64, None] * nodes[None, :], d) @ h
    return out + spec.layers[-1].bias_var


def _effective_cutoff(spec: Architecture) -> float:
    """The smallest P = 2^k ≤ 1e4 with ∫_P^∞ p^{d−1} G̃ ≤ 1e-15 ∫_0^∞ p^{d−1} G̃, else inf."""
    from scipy import integrate

    d = spec.d_in
    f = lambda p: p ** (d - 1) * float(spectral_density(spec, p)[0])  # noqa: E731

    def tail(lo: float) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("error", integrate.IntegrationWarning)
            try:
                return integrate.quad(f, lo, math.inf, limit=200, epsabs=0.0, epsrel=1e-8)[0]
            except integrate.IntegrationWarning:
                return math.inf

    total = tail(0.0)
    upper = 1.0
    while math.isfinite(total) and total > 0 and upper <= 1e4:
        if tail(upper) <= 1e-15 * total:
            return upper
        upper *= 2
    return math.inf


def _omega(x: np.ndarray, d: int) -> np.ndarray:
    """Ω_d(x) = Γ(d/2)(2/x)^{d/2−1} J_{d/2−1}(x) (Ω(0) = 1), with the fast elementary/J0/J1 forms for d ≤ 4."""
    small = x < 1e-8
    xs = np.where(small, 1.0, x)
    if d == 1:
        return np.cos(x)
    if d == 2:
        return special.j0(x)
    if d == 3:
        val = np.sin(xs) / xs
    elif d == 4:
        val = 2 * special.j1(xs) / xs
    else:
        nu = d / 2 - 1
        val = special.gamma(d / 2) * (2 / xs) ** nu * special.jv(nu, xs)
    return np.where(small, 1.0, val)


def _predicted_lattice(spec: Architecture, d: int, n: int, a: float, w1: np.ndarray) -> np.ndarray:
    """E[I(p_k)] for every lattice k (shape (n,)*d) from the lag sum, evaluated by one FFT of size (2n)^d."""
    lags = np.indices((n,) * d).reshape(d, -1).T
    s2, where = np.unique((lags**2).sum(1), return_inverse=True)
    g_lag = _lag_propagator(spec, a * np.sqrt(s2.astype(np.float64)))[where.ravel()].reshape((n,) * d)
    c1 = np.correlate(w1, w1, mode="full")[n - 1:]  # C1(|s|), s = 0..n−1
    t = np.arange(2 * n)
    lag = np.minimum(t, 2 * n - t)
    valid = lag < n
    lag = np.where(valid, lag, 0)
    factor = np.where(valid, c1[lag], 0.0)
    arr = g_lag[np.ix_(*([lag] * d))]
    for mu in range(d):
        shape = [1] * d
        shape[mu] = 2 * n
        arr = arr * factor.reshape(shape)
    spectrum = np.fft.fftn(arr).real[tuple(slice(0, 2 * n, 2) for _ in range(d))]
    u = a**d * float((w1**2).sum()) ** d
    return spectrum * a ** (2 * d) / u


def _classes_and_prediction(spec, box, points, window):
    d, box, n = _check_inputs(spec, box, points)
    a = box / n
    w1 = lattice_window(n, window)
    reps, cls, counts = _mode_classes(d, n)
    full = _predicted_lattice(spec, d, n, a, w1).ravel()
    predicted = np.bincount(cls, weights=full, minlength=len(reps)) / counts
    p = 2 * math.pi / box * np.sqrt((reps.astype(np.float64) ** 2).sum(1))
    return d, a, w1, reps, cls, counts, p, predicted


def predicted_spectrum(spec: Architecture, *, box: float, points: int, window: Window = "hann") -> MomentumSpectrum:
    """The windowed prediction E[I(p)] and the bare G̃(|p|) of a cos-layer spec on an n^d lattice of side L
    (no sampling; ``measured`` is None)."""
    d, a, w1, reps, cls, counts, p, predicted = _classes_and_prediction(spec, box, points, window)
    return MomentumSpectrum(modes=reps, p=p, multiplicity=counts, predicted=predicted,
                            bare=spectral_density(spec, p), box=float(box), points=points, window=window,
                            cutoff=spectral_cutoff(spec))


# ------------------------------------------------------------------------------------------------------
# Measurement
# ------------------------------------------------------------------------------------------------------

def momentum_spectrum(spec: Architecture, *, box: float, points: int, n_networks: int, seed: int,
                      chunk_size: int = 1000, window: Window = "hann",
                      estimator: Literal["readout", "plain"] = "readout",
                      dtype: Literal["float32", "float64"] = "float64",
                      progress: Optional[Callable[[int, int], None]] = None) -> MomentumSpectrum:
    """Measure the lattice power spectrum of ``n_networks`` sampled networks of a cos-layer spec and compare
    it with the windowed prediction and the bare G̃ (see the module docstring for the formulas).

    The networks of chunk c are ``sample_networks(spec, ·, chunk_generator(seed, c))``, as in nnft.measure.
    Cost: O(n_networks · N · n^d log n) for the readout estimator, O(n_networks · n^d log n) for plain.
    """
    from ..ensemble.sampling import NetworkBatch, chunk_generator, evaluate, sample_networks

    d, a, w1, reps, cls, counts, p, predicted = _classes_and_prediction(spec, box, points, window)
    for name, v, lo in (("n_networks", n_networks, 2), ("chunk_size", chunk_size, 1), ("seed", seed, 0)):
        check(isinstance(v, int) and not isinstance(v, bool) and v >= lo, name, v, f"an integer >= {lo}")
    check(estimator in ("readout", "plain"), "estimator", estimator, "'readout' or 'plain'")
    check(dtype in ("float32", "float64"), "dtype", dtype, "'float32' or 'float64'")
    readout = spec.layers[-1]
    if estimator == "readout":
        check(isinstance(readout.weight, Normal) and (readout.bias is None or isinstance(readout.bias, Normal)),
              "estimator", estimator, "'plain' for this spec ('readout' integrates a Gaussian readout)")
    n, width = points, spec.layers[0].width
    grid = np.stack(np.meshgrid(*([np.arange(n) * a] * d), indexing="ij"), -1).reshape(-1, d)
    x = torch.as_tensor(grid, dtype=torch.float64)
    window_t = torch.as_tensor(functools.reduce(np.multiply.outer, [w1] * d))  # w_j = Π_μ w1(j_μ)
    norm = a ** (2 * d) / (a**d * float((w1**2).sum()) ** d)
    # real fields: I(−k) = I(k), so the half lattice k_d = 0..⌊n/2⌋ (from rfftn) carries every class, an entry
    # standing for itself and its mirror −k (weight 2) unless k_d ≡ −k_d (mod n) (weight 1)
    half = n // 2 + 1
    cls_half = cls.reshape((n,) * d)[..., :half].ravel()
    k_last = np.broadcast_to(np.arange(half), (n,) * (d - 1) + (half,)).ravel()
    weight = np.where((k_last == 0) | (2 * k_last == n), 1.0, 2.0)
    average = torch.zeros((len(cls_half), len(reps)), dtype=torch.float64)
    average[torch.arange(len(cls_half)), torch.as_tensor(cls_half)] = torch.as_tensor(weight / counts[cls_half])
    power = lambda f: f.real.square() + f.imag.square()  # noqa: E731  |f|²
    bias_term = readout.bias_var * power(torch.fft.rfftn(window_t)).reshape(-1) * norm
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    dims = tuple(range(-d, 0))
    total, total_sq, done = np.zeros(len(reps)), np.zeros(len(reps)), 0
    n_chunks = -(-n_networks // chunk_size)
    sub = max(1, (1 << 21) // (width * n**d)) if estimator == "readout" else max(1, (1 << 22) // n**d)
    for c in range(n_chunks):
        size = min(chunk_size, n_networks - c * chunk_size)
        nets = sample_networks(spec, size, chunk_generator(seed, c), dtype=tdtype)
        ws, bs, amp = nets.weights, nets.biases, nets.amplitude
        for b0 in range(0, size, sub):
            part = NetworkBatch([w[b0:b0 + sub] for w in ws], [None if b is None else b[b0:b0 + sub] for b in bs],
                                None if amp is None else amp[b0:b0 + sub])
            if estimator == "readout":
                h = evaluate(spec, part, x, return_hidden=True).to(torch.float64)  # (B, N, n^d)
                f = torch.fft.rfftn(h.reshape(h.shape[0], width, *([n] * d)) * window_t, dim=dims)
                per = power(f).sum(1).reshape(h.shape[0], -1) * (readout.weight_var(width) * norm) + bias_term
            else:
                phi = evaluate(spec, part, x).to(torch.float64)[:, :, 0]  # (B, n^d)
                f = torch.fft.rfftn(phi.reshape(phi.shape[0], *([n] * d)) * window_t, dim=dims)
                per = power(f).reshape(phi.shape[0], -1) * norm
            vals = (per @ average).numpy() - predicted  # shifted by the prediction: a stable sum of squares
            total += vals.sum(0)
            total_sq += (vals * vals).sum(0)
        done += size
        if progress is not None:
            progress(done, n_networks)
    shift = total / n_networks
    var = np.maximum(total_sq - n_networks * shift * shift, 0.0) / (n_networks - 1)
    mean = predicted + shift
    return MomentumSpectrum(modes=reps, p=p, multiplicity=counts, predicted=predicted,
                            bare=spectral_density(spec, p), box=float(box), points=points, window=window,
                            cutoff=spectral_cutoff(spec), measured=mean, stderr=np.sqrt(var / n_networks),
                            coverage=n_networks * width * momentum_density(spec, p) * (2 * math.pi / box) ** d,
                            n_networks=n_networks, seed=seed, estimator=estimator)
