"""Parameter densities P(θ) for one layer's weights or biases.

A density describes the O(1) parameter ŵ. The effective weight is W = ŵ / sqrt(fan_in) in a layer with
``scaling="fan_in"`` (PHYSICS.md §2: W ~ N(0, σ_W²/n_{l−1})) and W = ŵ otherwise; a bias is b = ŵ.
Every density has a scale ``std`` := sqrt(E[ŵ²]) per entry and samples as std × (a unit-scale shape), so
the NTK parameterization can keep stored parameters at unit scale and move ``std`` into the forward pass.
"""

from __future__ import annotations

import functools
import importlib
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch
from scipy import integrate

from ..errors import ConfigError, check, fail

__all__ = ["Normal", "Uniform", "UniformBall", "Sampled", "Spectrum", "Spectral", "Density", "density_from_config"]


def _positive_finite(name: str, value: float, *, zero_ok: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if zero_ok else value > 0)
    check(ok, name, value, "a finite number " + (">= 0" if zero_ok else "> 0"))


@dataclass(frozen=True)
class Normal:
    """ŵ ~ N(0, std²) entrywise."""

    std: float = 1.0

    def __post_init__(self) -> None:
        _positive_finite("Normal.std", self.std, zero_ok=True)

    is_gaussian = True
    symmetric = True
    isotropic = True

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
        out = torch.empty(shape, dtype=dtype)
        out.normal_(0.0, 1.0, generator=generator)
        return out.mul_(self.std)

    def moment(self, k: int) -> float:
        """E[ŵ^k] = std^k (k−1)!! for even k, 0 for odd k."""
        return 0.0 if k % 2 else self.std**k * math.prod(range(k - 1, 0, -2))

    def to_config(self) -> dict:
        return {"kind": "normal", "std": self.std}


@dataclass(frozen=True)
class Uniform:
    """ŵ ~ U[low, high] entrywise (e.g. the uniform phase U[−π, π] of Cos-net and Scalar-net)."""

    low: float = -math.sqrt(3.0)
    high: float = math.sqrt(3.0)

    def __post_init__(self) -> None:
        ok = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (self.low, self.high))
        check(ok and self.high > self.low, "Uniform(low, high)", (self.low, self.high), "finite low < high")

    is_gaussian = False
    isotropic = False

    @classmethod
    def with_std(cls, std: float) -> "Uniform":
        """Symmetric U[−√3 std, √3 std], which has E[ŵ²] = std²."""
        _positive_finite("Uniform.std", std)
        return cls(-math.sqrt(3.0) * std, math.sqrt(3.0) * std)

    @property
    def symmetric(self) -> bool:
        return self.low == -self.high

    @property
    def std(self) -> float:
        return math.sqrt(self.moment(2))

    @property
    def is_full_phase(self) -> bool:
        """True if the interval is a whole number (≥ 1) of periods 2π: a uniform phase."""
        periods = (self.high - self.low) / (2 * math.pi)
        return periods >= 1 - 1e-12 and abs(periods - round(periods)) < 1e-12

    def sample(self, shape, generator, dtype=torch.float32):
        out = torch.empty(shape, dtype=dtype)
        out.uniform_(self.low, self.high, generator=generator)
        return out

    def moment(self, k: int) -> float:
        """E[ŵ^k] = (high^{k+1} − low^{k+1}) / ((k+1)(high − low))."""
        return (self.high ** (k + 1) - self.low ** (k + 1)) / ((k + 1) * (self.high - self.low))

    def to_config(self) -> dict:
        return {"kind": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class UniformBall:
    """Each weight row ŵ ∈ R^{fan_in} uniform in the ball |ŵ| < radius (Scalar-net's momenta).

    Sampled as a uniform direction times radius · U^{1/d}; per-entry E[ŵ_k²] = radius²/(d + 2).
    """

    radius: float = 1.0

    def __post_init__(self) -> None:
        _positive_finite("UniformBall.radius", self.radius)

    is_gaussian = False
    symmetric = True
    isotropic = True

    def sample(self, shape, generator, dtype=torch.float32):
        *lead, d = shape
        direction = torch.empty(shape, dtype=torch.float64)
        direction.normal_(0.0, 1.0, generator=generator)
        direction /= direction.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        u = torch.empty((*lead, 1), dtype=torch.float64)
        u.uniform_(0.0, 1.0, generator=generator)
        return (direction * (self.radius * u ** (1.0 / d))).to(dtype)

    def std_for(self, fan_in: int) -> float:
        return self.radius / math.sqrt(fan_in + 2)

    def to_config(self) -> dict:
        return {"kind": "uniform_ball", "radius": self.radius}


@dataclass(frozen=True)
class Sampled:
    """A user-supplied density: ``sampler`` is ``"module:function"`` with signature
    ``f(shape, generator) -> Tensor`` returning i.i.d. draws of ŵ, and ``std`` = sqrt(E[ŵ²]).

    Theory for such a layer integrates over the density by single-neuron Monte Carlo.
    """

    sampler: str
    std: float
    symmetric: bool = False

    def __post_init__(self) -> None:
        check(isinstance(self.sampler, str) and ":" in self.sampler, "Sampled.sampler", self.sampler,
              "an importable 'module:function' (shape, generator) -> Tensor")
        _positive_finite("Sampled.std", self.std)
        self._fn()

    is_gaussian = False
    isotropic = False

    def _fn(self) -> Callable:
        module, _, attr = self.sampler.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError):
            raise fail("Sampled.sampler", self.sampler, "an importable 'module:function'") from None
        check(callable(fn), "Sampled.sampler", self.sampler, "a callable")
        return fn

    def sample(self, shape, generator, dtype=torch.float32):
        out = torch.as_tensor(self._fn()(tuple(shape), generator)).to(dtype)
        check(tuple(out.shape) == tuple(shape), f"Sampled({self.sampler}) output shape", tuple(out.shape),
              f"the requested shape {tuple(shape)}")
        check(bool(torch.isfinite(out).all()), f"Sampled({self.sampler}) output", "non-finite values",
              "finite samples")
        return out

    def to_config(self) -> dict:
        return {"kind": "sampled", "sampler": self.sampler, "std": self.std, "symmetric": self.symmetric}


_PROBE = np.array([0.0, 0.5, 1.0, 2.0, 5.0])


@dataclass(frozen=True)
class Spectrum:
    """An isotropic momentum-space profile S(|p|) ≥ 0, given by reference so that a spec holding it
    round-trips through TOML (a free-field spectrum G̃(p), PHYSICS.md §6).

    ``profile`` is an importable ``"module:function"`` with signature ``f(p, **params) -> array`` (p: a float64
    array of momenta ≥ 0; the result broadcasts to p's shape); ``params`` are its numeric keyword arguments, a
    dict or (name, value) pairs, stored sorted as floats. The ready-made profiles (massive 1/(p² + m²),
    gaussian, power) and their constructors live in :mod:`nnft.fieldtheory.spectrum`. Construction evaluates
    the profile at p = 0, 0.5, 1, 2, 5 and requires finite values ≥ 0.
    """

    profile: str
    params: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        check(isinstance(self.profile, str) and ":" in self.profile, "Spectrum.profile", self.profile,
              "an importable 'module:function' f(p, **params) -> array")
        params = tuple(self.params.items()) if isinstance(self.params, dict) else self.params
        ok = isinstance(params, (tuple, list)) and all(
            isinstance(kv, (tuple, list)) and len(kv) == 2 and isinstance(kv[0], str)
            and isinstance(kv[1], (int, float)) and not isinstance(kv[1], bool) and math.isfinite(kv[1])
            for kv in params)
        check(ok, "Spectrum.params", self.params, "a table of finite numbers {name = value}")
        object.__setattr__(self, "params", tuple(sorted((str(k), float(v)) for k, v in params)))
        vals = self(_PROBE)
        check(bool(np.all(np.isfinite(vals)) and np.all(vals >= 0)), "Spectrum", f"{self} = {vals.tolist()} at "
              f"p = {_PROBE.tolist()}", "a profile that is finite and >= 0 for p >= 0")

    def _fn(self) -> Callable:
        module, _, attr = self.profile.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError):
            raise fail("Spectrum.profile", self.profile, "an importable 'module:function'") from None
        check(callable(fn), "Spectrum.profile", self.profile, "a callable")
        return fn

    def __call__(self, p) -> np.ndarray:
        """S(p) at momenta p ≥ 0 (float64, p's shape)."""
        p = np.asarray(p, dtype=np.float64)
        try:
            with np.errstate(over="ignore", under="ignore"):  # an overflow is an inf, caught by the callers
                out = self._fn()(p, **dict(self.params))
        except ConfigError:
            raise
        except TypeError as exc:
            raise fail("Spectrum.params", dict(self.params), f"the keyword arguments of {self.profile} ({exc})") \
                from None
        return np.array(np.broadcast_to(np.asarray(out, dtype=np.float64), p.shape))

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.profile.rpartition(':')[2]}({args})"

    def to_config(self) -> dict:
        out: dict = {"profile": self.profile}
        if self.params:
            out["params"] = dict(self.params)
        return out

    @classmethod
    def from_config(cls, cfg: dict) -> "Spectrum":
        check(isinstance(cfg, dict) and "profile" in cfg and set(cfg) <= {"profile", "params"}, "Spectrum", cfg,
              "a table {profile = 'module:function', params = {...}}")
        return cls(cfg["profile"], cfg.get("params", {}))


def _finite_quad(f: Callable[[float], float], lo: float, hi: float) -> float:
    """∫_lo^hi f, or inf where quad reports divergence."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", integrate.IntegrationWarning)
        try:
            val, _ = integrate.quad(f, lo, hi, limit=500, epsabs=0.0, epsrel=1e-11)
        except integrate.IntegrationWarning:
            return math.inf
    return val if math.isfinite(val) else math.inf


@functools.lru_cache(maxsize=128)
def _radial_moment(spectrum: Spectrum, cutoff: Optional[float], d: int, k: int) -> float:
    """∫_0^Λ q^{d−1+k} S(q) dq (inf if it diverges)."""
    upper = math.inf if cutoff is None else cutoff
    return _finite_quad(lambda q: q ** (d - 1 + k) * float(spectrum(q)), 0.0, upper)


class _RadialPdf:
    """ρ(q) = q^{d−1} S(q) / Z_d on [0, Λ) for scipy's PINV."""

    def __init__(self, spectrum: Spectrum, cutoff: Optional[float], d: int, norm: float) -> None:
        self.spectrum, self.cutoff, self.d, self.norm = spectrum, cutoff, d, norm

    def pdf(self, q: float) -> float:
        if not math.isfinite(q) or q < 0 or (self.cutoff is not None and q > self.cutoff):
            return 0.0
        return q ** (self.d - 1) * float(self.spectrum(q)) / self.norm


@functools.lru_cache(maxsize=32)
def _radial_sampler(spectrum: Spectrum, cutoff: Optional[float], d: int):
    """Numerical inverse of the radial CDF (scipy PINV, u-resolution 1e-12), cached per (S, Λ, d)."""
    from scipy.stats.sampling import NumericalInversePolynomial

    norm = _radial_moment(spectrum, cutoff, d, 0)
    pdf = _RadialPdf(spectrum, cutoff, d, norm)
    grid = np.linspace(0.0, 20.0 if cutoff is None else cutoff, 2001)[1:]
    center = float(grid[np.argmax([pdf.pdf(q) for q in grid])])
    try:
        return NumericalInversePolynomial(pdf, domain=(0.0, math.inf if cutoff is None else cutoff), center=center,
                                          u_resolution=1e-12, random_state=0)
    except Exception as exc:  # scipy's UNURANError and friends: a profile PINV cannot invert
        raise fail("Spectral", f"{spectrum} in d = {d}", f"a radial density PINV can invert ({exc})") from None


@dataclass(frozen=True)
class Spectral:
    """First-layer rows ŵ ∈ R^d with density P(ŵ) ∝ S(|ŵ|) on the ball |ŵ| < cutoff (all of R^d if None):
    the importance-sampled momenta of a designed free field (PHYSICS.md §2, §6; arXiv:2112.04527).

    The radius has density ρ(q) = q^{d−1} S(q)/Z_d, Z_d = ∫_0^Λ q^{d−1} S(q) dq, and is drawn by numerical
    inversion of its CDF (scipy PINV, u-resolution 1e-12) from the generator's uniforms; the direction is
    uniform (a normalised Gaussian vector). Z_d must be finite: a cutoff is required when ∫ d^dp S(|p|)
    diverges (checked when an Architecture is built). First layer only (d = fan-in).
    Per-entry E[ŵ_k²] = E[|ŵ|²]/d (inf when that moment diverges).
    """

    spectrum: Spectrum
    cutoff: Optional[float] = None

    def __post_init__(self) -> None:
        if isinstance(self.spectrum, dict):
            object.__setattr__(self, "spectrum", Spectrum.from_config(self.spectrum))
        check(isinstance(self.spectrum, Spectrum), "Spectral.spectrum", self.spectrum, "a Spectrum")
        if self.cutoff is not None:
            _positive_finite("Spectral.cutoff", self.cutoff)
            object.__setattr__(self, "cutoff", float(self.cutoff))

    is_gaussian = False
    symmetric = True
    isotropic = True

    def radial_norm(self, d: int) -> float:
        """Z_d = ∫_0^Λ q^{d−1} S(q) dq; ConfigError if it diverges or vanishes."""
        norm = _radial_moment(self.spectrum, self.cutoff, d, 0)
        check(math.isfinite(norm), "Spectral.cutoff", self.cutoff,
              f"a finite cutoff: ∫ d^dp S(|p|) diverges for {self.spectrum} in d = {d}")
        check(norm > 0, "Spectral.spectrum", str(self.spectrum), f"a profile with ∫ d^dp S(|p|) > 0 in d = {d}")
        return norm

    def radial_pdf(self, d: int) -> Callable[[float], float]:
        """ρ(q) = q^{d−1} S(q)/Z_d, the normalised density of |ŵ| on [0, Λ)."""
        return _RadialPdf(self.spectrum, self.cutoff, d, self.radial_norm(d)).pdf

    def std_for(self, fan_in: int) -> float:
        return math.sqrt(_radial_moment(self.spectrum, self.cutoff, fan_in, 2) / self.radial_norm(fan_in) / fan_in)

    def sample(self, shape, generator, dtype=torch.float32):
        *lead, d = shape
        self.radial_norm(d)  # a clear error if the radial density does not normalise in this d
        sampler = _radial_sampler(self.spectrum, self.cutoff, d)
        direction = torch.empty(shape, dtype=torch.float64)
        direction.normal_(0.0, 1.0, generator=generator)
        direction /= direction.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        u = torch.empty((*lead, 1), dtype=torch.float64)
        u.uniform_(0.0, 1.0, generator=generator)
        radius = torch.from_numpy(np.asarray(sampler.ppf(u.numpy()), dtype=np.float64).reshape(u.shape))
        return (direction * radius).to(dtype)

    def to_config(self) -> dict:
        out = {"kind": "spectral", "spectrum": self.spectrum.to_config()}
        if self.cutoff is not None:
            out["cutoff"] = self.cutoff
        return out


Density = Union[Normal, Uniform, UniformBall, Sampled, Spectral]


def density_std(density: Density, fan_in: int) -> float:
    """sqrt(E[ŵ²]) per entry."""
    return density.std_for(fan_in) if isinstance(density, (UniformBall, Spectral)) else density.std


def density_from_config(cfg: Optional[dict], where: str) -> Optional[Density]:
    """Inverse of ``to_config``; ``None`` stays ``None`` (no bias)."""
    if cfg is None:
        return None
    check(isinstance(cfg, dict) and "kind" in cfg, where, cfg, "a table with a 'kind' key")
    kinds = {"normal": Normal, "uniform": Uniform, "uniform_ball": UniformBall, "sampled": Sampled,
             "spectral": Spectral}
    kind = cfg["kind"]
    check(kind in kinds, f"{where}.kind", kind, ", ".join(kinds))
    args = {k: v for k, v in cfg.items() if k != "kind"}
    try:
        return kinds[kind](**args)
    except TypeError as exc:
        raise fail(where, cfg, f"the fields of {kinds[kind].__name__} ({exc})") from None
