"""Parameter densities P(θ) for one layer's weights or biases.

A density describes the O(1) parameter ŵ. The effective weight is W = ŵ / sqrt(fan_in) in a layer with
``scaling="fan_in"`` (PHYSICS.md §2: W ~ N(0, σ_W²/n_{l−1})) and W = ŵ otherwise; a bias is b = ŵ.
Every density has a scale ``std`` := sqrt(E[ŵ²]) per entry and samples as std × (a unit-scale shape), so
the NTK parameterization can keep stored parameters at unit scale and move ``std`` into the forward pass.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

from ..errors import check, fail

__all__ = ["Normal", "Uniform", "UniformBall", "Sampled", "Density", "density_from_config"]


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


Density = Union[Normal, Uniform, UniformBall, Sampled]


def density_std(density: Density, fan_in: int) -> float:
    """sqrt(E[ŵ²]) per entry."""
    return density.std_for(fan_in) if isinstance(density, UniformBall) else density.std


def density_from_config(cfg: Optional[dict], where: str) -> Optional[Density]:
    """Inverse of ``to_config``; ``None`` stays ``None`` (no bias)."""
    if cfg is None:
        return None
    check(isinstance(cfg, dict) and "kind" in cfg, where, cfg, "a table with a 'kind' key")
    kinds = {"normal": Normal, "uniform": Uniform, "uniform_ball": UniformBall, "sampled": Sampled}
    kind = cfg["kind"]
    check(kind in kinds, f"{where}.kind", kind, ", ".join(kinds))
    args = {k: v for k, v in cfg.items() if k != "kind"}
    try:
        return kinds[kind](**args)
    except TypeError as exc:
        raise fail(where, cfg, f"the fields of {kinds[kind].__name__} ({exc})") from None
