"""Free field theories by design from a general isotropic spectrum (PHYSICS.md §2, §6; arXiv:2112.04527).

Target: a Gaussian field with momentum-space propagator G̃(|p|) ≥ 0 and a sharp cutoff Λ,

    G^(2)(x − y) = ∫_{|p|<Λ} d^dp/(2π)^d G̃(|p|) e^{ip·(x−y)}.

Network: the cos layer of PHYSICS.md §2, φ(x) = Σ_i W_i F(w_i) cos(w_i·x + b_i) with b ~ U[−π, π],
isotropic momenta w ~ P(w) and a readout W ~ N(0, μ_2/N) (the lecture's μ_2 = σ_W²). At every width N

    G^(2)(x, y) = (μ_2/2) E_w[F(w)² cos(w·(x − y))],   i.e.   G̃(p) = (2π)^d (μ_2/2) P(p) F(p)²,

so P F² = 2 G̃/(μ_2 (2π)^d) designs any spectrum. Two designs (``momenta=``), with
Z_d = ∫_0^Λ p^{d−1} G̃(p) dp and S_{d−1} = 2π^{d/2}/Γ(d/2):

  * ``"uniform"`` (Scalar-net style): w uniform in the ball |w| < Λ, F(w) = sqrt(G̃(|w|)),
    μ_2 = 2 vol(B_Λ)/(2π)^d. Needs a cutoff.
  * ``"importance"``: P(w) = G̃(|w|)/(S_{d−1} Z_d) on |w| < Λ (radius drawn by inverse CDF), F = 1,
    μ_2 = 2 S_{d−1} Z_d/(2π)^d = 2 G^(2)(0). Every neuron carries the same weight, so the higher
    cumulants (G_c^(4) ∝ E[F⁴]/N) are smaller; Λ may be ∞ when Z_d < ∞.

A spectrum is a :class:`~nnft.spec.Spectrum`: a profile by reference (``"module:function"`` with
f(p, **params)) so that the designed spec round-trips through TOML. Ready-made families:

    massive(m)          G̃ = 1/(p² + m²)              (Λ required for d ≥ 2)
    power(α, m)         G̃ = (p² + m²)^{−α}           (Λ required for 2α ≤ d)
    gaussian(σ, A)      G̃ = A exp(−p²/(2σ²))

Position space: G(r) = ∫_0^Λ dp S_{d−1}(2π)^{−d} p^{d−1} G̃(p) Ω_d(pr), Ω_d(x) = Γ(d/2)(2/x)^{d/2−1}J_{d/2−1}(x)
(:func:`nnft.theory.kernels.radial_fourier`), and in the continuum (Λ = ∞)

    massive:  (2π)^{−d/2} (m/r)^{d/2−1} K_{d/2−1}(m r)
    power:    (2π)^{−d/2} 2^{1−α}/Γ(α) (m/r)^{d/2−α} K_{d/2−α}(m r)     (Matérn)
              G(0) = Γ(α − d/2) m^{d−2α}/((4π)^{d/2} Γ(α))  for 2α > d, else ∞
    gaussian: A (σ²/(2π))^{d/2} exp(−σ² r²/2).
"""

from __future__ import annotations

import importlib
import math
from typing import Callable, Literal, Optional, Union

import numpy as np
from scipy import special

from ..errors import check
from ..spec import Activation, Architecture, Layer, Normal, Spectral, SpectralAmplitude, Spectrum, Uniform
from ..spec import UniformBall, ball_volume
from ..theory.kernels import radial_fourier

__all__ = ["Spectrum", "massive", "gaussian", "power", "massive_profile", "gaussian_profile", "power_profile",
           "as_spectrum", "design", "position_propagator", "continuum_propagator", "spectral_density",
           "momentum_density", "spectral_cutoff", "sphere_area"]

_HERE = __name__
SpectrumLike = Union[Spectrum, str, Callable]


# ------------------------------------------------------------------------------------------------------
# Families: profiles (what a spec stores by reference) and constructors
# ------------------------------------------------------------------------------------------------------

def _number(name: str, value, *, positive: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    check(ok and (value > 0 or not positive), name, value, "a finite number" + (" > 0" if positive else ""))
    return float(value)


def massive_profile(p, *, mass: float) -> np.ndarray:
    """G̃(p) = 1/(p² + m²), the free massive scalar."""
    m = _number("massive.mass", mass)
    return 1.0 / (np.asarray(p, dtype=np.float64) ** 2 + m * m)


def power_profile(p, *, alpha: float, mass: float) -> np.ndarray:
    """G̃(p) = (p² + m²)^{−α} (α = 1: massive; α = 2: the squared propagator)."""
    a, m = _number("power.alpha", alpha), _number("power.mass", mass)
    return (np.asarray(p, dtype=np.float64) ** 2 + m * m) ** (-a)


def gaussian_profile(p, *, sigma: float, amplitude: float = 1.0) -> np.ndarray:
    """G̃(p) = A exp(−p²/(2σ²))."""
    s, amp = _number("gaussian.sigma", sigma), _number("gaussian.amplitude", amplitude)
    return amp * np.exp(-(np.asarray(p, dtype=np.float64) ** 2) / (2 * s * s))


def massive(mass: float = 1.0) -> Spectrum:
    """The free massive scalar G̃(p) = 1/(p² + m²)."""
    return Spectrum(f"{_HERE}:massive_profile", {"mass": _number("mass", mass)})


def power(alpha: float, mass: float = 1.0) -> Spectrum:
    """G̃(p) = (p² + m²)^{−α}."""
    return Spectrum(f"{_HERE}:power_profile", {"alpha": _number("alpha", alpha), "mass": _number("mass", mass)})


def gaussian(sigma: float = 1.0, amplitude: float = 1.0) -> Spectrum:
    """G̃(p) = A exp(−p²/(2σ²)); G(r) = A (σ²/(2π))^{d/2} exp(−σ² r²/2). Cos-net's spectrum with
    G(r) = (σ_a²/2) exp(−σ_w² r²/(2d)) is σ = σ_w/√d, A = (σ_a²/2)(2π/σ²)^{d/2}."""
    return Spectrum(f"{_HERE}:gaussian_profile", {"amplitude": _number("amplitude", amplitude),
                                                 "sigma": _number("sigma", sigma)})


def as_spectrum(spectrum: SpectrumLike) -> Spectrum:
    """A :class:`Spectrum` from a Spectrum, a ``"module:function"`` string, or an importable module-level
    function f(p) (stored by reference, so that a spec built from it serializes)."""
    if isinstance(spectrum, Spectrum):
        return spectrum
    if isinstance(spectrum, str):
        return Spectrum(spectrum)
    check(callable(spectrum), "spectrum", spectrum, "a Spectrum, a 'module:function' string or a function of |p|")
    module, qual = getattr(spectrum, "__module__", None), getattr(spectrum, "__qualname__", "")
    ref = f"{module}:{qual}"
    try:
        found = getattr(importlib.import_module(module), qual) if module and "<" not in qual else None
    except (ImportError, AttributeError, ValueError, TypeError):
        found = None
    check(found is spectrum, "spectrum", spectrum, "a Spectrum, a 'module:function' string or an importable "
          "module-level function (a spec stores its spectrum by reference; lambdas and local functions do not "
          "serialize — position_propagator accepts them)")
    return Spectrum(ref)


def _profile(spectrum: SpectrumLike) -> tuple[Callable[[np.ndarray], np.ndarray], Optional[Spectrum]]:
    """(G̃ as a vectorized function, the Spectrum or None for a plain callable)."""
    if isinstance(spectrum, (Spectrum, str)):
        s = as_spectrum(spectrum)
        return s, s
    check(callable(spectrum), "spectrum", spectrum, "a Spectrum, a 'module:function' string or a function of |p|")
    return (lambda p: np.asarray(spectrum(np.asarray(p, dtype=np.float64)), dtype=np.float64)), None


# ------------------------------------------------------------------------------------------------------
# Position space
# ------------------------------------------------------------------------------------------------------

def sphere_area(d: int) -> float:
    """S_{d−1} = 2π^{d/2}/Γ(d/2), the area of the unit sphere in R^d."""
    return 2 * math.pi ** (d / 2) / special.gamma(d / 2)


def _check_d(d) -> int:
    check(isinstance(d, int) and not isinstance(d, bool) and d >= 1, "d", d, "an integer >= 1")
    return d


def _check_cutoff(cutoff) -> Optional[float]:
    if cutoff is None:
        return None
    return _number("cutoff", cutoff)


def _distances(r) -> np.ndarray:
    r = np.atleast_1d(np.asarray(r, dtype=np.float64))
    check(bool(np.all(np.isfinite(r)) and np.all(r >= 0)), "r", r.ravel().tolist()[:4], "finite distances >= 0")
    return r


def continuum_propagator(spectrum: SpectrumLike, r, d: int) -> Optional[np.ndarray]:
    """The closed-form G(r) without cutoff for the ready-made families (inf where it diverges, e.g. G(0) of
    the massive scalar in d ≥ 2), or None for a spectrum without a known closed form."""
    d, r = _check_d(d), _distances(r)
    _, s = _profile(spectrum)
    if s is None:
        return None
    family, par = s.profile, dict(s.params)
    if family == f"{_HERE}:gaussian_profile":
        s2 = par["sigma"] ** 2
        return par.get("amplitude", 1.0) * (s2 / (2 * math.pi)) ** (d / 2) * np.exp(-s2 * r * r / 2)
    if family == f"{_HERE}:massive_profile":
        alpha, m = 1.0, par["mass"]
    elif family == f"{_HERE}:power_profile":
        alpha, m = par["alpha"], par["mass"]
    else:
        return None
    nu = d / 2 - alpha
    out = np.empty_like(r)
    pos = r > 0
    with np.errstate(over="ignore"):
        out[pos] = ((2 * math.pi) ** (-d / 2) * 2 ** (1 - alpha) / special.gamma(alpha)
                    * (m / r[pos]) ** nu * special.kv(nu, m * r[pos]))
    origin = (special.gamma(alpha - d / 2) * m ** (d - 2 * alpha) / ((4 * math.pi) ** (d / 2) * special.gamma(alpha))
              if alpha > d / 2 else math.inf)
    out[~pos] = origin
    return out


def position_propagator(spectrum: SpectrumLike, r, d: int, *, cutoff: Optional[float] = None,
                        method: Literal["auto", "quadrature"] = "auto") -> np.ndarray:
    """G(r) = ∫_{|p|<Λ} d^dp/(2π)^d G̃(|p|) e^{ip·r} at distances r ≥ 0 (Λ = ``cutoff``; None = ∞).

    Computed as the radial Fourier–Bessel integral ∫_0^Λ dp S_{d−1}(2π)^{−d} p^{d−1} G̃(p) Ω_d(pr)
    (:func:`nnft.theory.kernels.radial_fourier`, ~1e-12 relative). Without a cutoff, ``method="auto"`` uses
    the family's closed form when there is one (:func:`continuum_propagator`). ``spectrum`` may also be any
    Python function of |p| here. A divergent integral (G(0) of 1/(p² + m²) in d ≥ 2 without a cutoff) raises
    a ConfigError asking for a cutoff.
    """
    d, r, cutoff = _check_d(d), _distances(r), _check_cutoff(cutoff)
    check(method in ("auto", "quadrature"), "method", method, "'auto' or 'quadrature'")
    fn, _ = _profile(spectrum)
    if cutoff is None and method == "auto":
        closed = continuum_propagator(spectrum, r, d)
        if closed is not None:
            check(bool(np.all(np.isfinite(closed))), "cutoff", None,
                  f"a finite cutoff (G(0) diverges for this spectrum in d = {d})")
            return closed
    c = sphere_area(d) / (2 * math.pi) ** d
    h = lambda p: c * p ** (d - 1) * float(fn(p))  # noqa: E731
    return np.array([radial_fourier(h, float(v), d, cutoff) for v in r.ravel()]).reshape(r.shape)


# ------------------------------------------------------------------------------------------------------
# Design: spectrum → Architecture, and back
# ------------------------------------------------------------------------------------------------------

def design(spectrum: SpectrumLike, d: int, *, cutoff: Optional[float] = None, width: int = 100,
           momenta: Literal["importance", "uniform"] = "importance", name: str = "spectral-net") -> Architecture:
    """The one-hidden-layer cos network whose 2-point function is, at every width,

        G^(2)(x − y) = ∫_{|p|<Λ} d^dp/(2π)^d G̃(|p|) e^{ip·(x−y)}       (PHYSICS.md §6, "free theories by design")

    ``momenta="importance"``: w ~ G̃(|w|)/(S_{d−1} Z_d) on |w| < Λ, F = 1, readout N(0, 2G(0)/N);
    ``momenta="uniform"``: w uniform in |w| < Λ, F = sqrt(G̃(|w|)), readout N(0, 2 vol(B_Λ)/((2π)^d N)).
    Phase b ~ U[−π, π] in both. ``cutoff`` Λ is required for ``"uniform"``, and for ``"importance"`` when
    Z_d = ∫_0^∞ p^{d−1} G̃ dp diverges. The spec stores the spectrum by reference and round-trips through
    TOML (``Architecture.to_config``/``from_config``).
    """
    s, d, cutoff = as_spectrum(spectrum), _check_d(d), _check_cutoff(cutoff)
    check(isinstance(width, int) and not isinstance(width, bool) and width >= 1, "width", width, "an integer >= 1")
    check(momenta in ("importance", "uniform"), "momenta", momenta, "'importance' or 'uniform'")
    phase = Uniform(-math.pi, math.pi)
    if momenta == "uniform":
        check(cutoff is not None, "cutoff", cutoff, "a finite cutoff for momenta='uniform' (a ball of momenta)")
        mu2 = 2 * ball_volume(d, cutoff) / (2 * math.pi) ** d
        first, amplitude = Layer(width=width, weight=UniformBall(cutoff), bias=phase, scaling="none"), \
            SpectralAmplitude(s)
    else:
        density = Spectral(s, cutoff)
        mu2 = 2 * sphere_area(d) * density.radial_norm(d) / (2 * math.pi) ** d
        first, amplitude = Layer(width=width, weight=density, bias=phase, scaling="none"), None
    return Architecture(d_in=d, activation=Activation("cos"), name=name, amplitude=amplitude,
                        layers=(first, Layer(width=1, weight=Normal(math.sqrt(mu2)), bias=None)))


def _phase_layer(spec: Architecture, where: str = "spec") -> None:
    """Require the translation-invariant cos layer of PHYSICS.md §2 (one hidden layer)."""
    check(isinstance(spec, Architecture), where, spec, "an Architecture")
    first = spec.layers[0]
    ok = (spec.depth == 1 and spec.activation.name in ("cos", "sin") and isinstance(first.bias, Uniform)
          and first.bias.is_full_phase and isinstance(first.weight, (Normal, UniformBall, Spectral)))
    check(ok, where, str(spec), "a one-hidden-layer cos/sin network with a uniform phase and isotropic momenta "
          "(Normal, UniformBall or Spectral first-layer weights): a translation-invariant free field")


def spectral_cutoff(spec: Architecture) -> float:
    """The largest first-layer momentum |w| of a cos-layer spec (Λ; inf for unbounded densities)."""
    _phase_layer(spec)
    first = spec.layers[0]
    scale = first.weight_scale(spec.d_in)
    if isinstance(first.weight, UniformBall):
        return first.weight.radius * scale
    if isinstance(first.weight, Spectral) and first.weight.cutoff is not None:
        return first.weight.cutoff * scale
    return math.inf


def momentum_density(spec: Architecture, p) -> np.ndarray:
    """P(w) at |w| = p: the density (on R^d) of the effective first-layer momenta w = c ŵ of a cos-layer spec."""
    _phase_layer(spec)
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))
    check(bool(np.all(np.isfinite(p)) and np.all(p >= 0)), "p", p.ravel().tolist()[:4], "finite momenta >= 0")
    d, first = spec.d_in, spec.layers[0]
    c = first.weight_scale(d)
    if isinstance(first.weight, UniformBall):
        radius = first.weight.radius * c
        density = np.where(p < radius, 1.0 / ball_volume(d, radius), 0.0)
    elif isinstance(first.weight, Normal):
        s2 = (first.weight.std * c) ** 2
        density = (2 * math.pi * s2) ** (-d / 2) * np.exp(-p * p / (2 * s2))
    else:
        w = first.weight
        inside = p / c < (math.inf if w.cutoff is None else w.cutoff)
        density = np.where(inside, w.spectrum(p / c) / (sphere_area(d) * w.radial_norm(d) * c**d), 0.0)
    return density


def spectral_density(spec: Architecture, p) -> np.ndarray:
    """The momentum-space propagator G̃(|p|) = (2π)^d (μ_2/2) P(p) F(p)² of a cos-layer spec (PHYSICS.md §2),
    with μ_2 = N E[W²] of the readout, P the density of the effective first-layer momenta
    (:func:`momentum_density`) and F the amplitude (0 beyond the cutoff). The inverse of :func:`design`; a
    readout bias (a δ(p) term) is left out."""
    density = momentum_density(spec, p)
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))
    first, readout = spec.layers[0], spec.layers[-1]
    mu2 = first.width * readout.weight_var(first.width)
    amp2 = 1.0 if spec.amplitude is None else np.vectorize(spec.amplitude.squared, otypes=[float])(p)
    return (2 * math.pi) ** spec.d_in * mu2 / 2 * density * amp2
