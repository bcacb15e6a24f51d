"""The KAN spec: one frozen, validated description of a random-initialised Kolmogorov–Arnold network family.

A KAN of shape [n_0, ..., n_L] (arXiv:2404.19756; PHYSICS.md §9) maps x_0 = x ∈ R^{n_0} by

    x_{l+1, j} = s_l Σ_{i=1}^{n_l} φ_{l,j,i}(x_{l,i}),     φ(t) = β SiLU(t) + γ Σ_{m=1}^{G+k} c_m B_m(t),

with order-k B-splines B_m on the uniform grid of G intervals on ``grid_range`` (k extra knots per side),
and the fan-in factor s_l = n_l^{−1/2} (``normalization="fan_in"``) or 1 (``"none"``). Every edge (l, j, i)
draws its own β ~ ``scale_base``, γ ~ ``scale_sp`` and c_1..c_{G+k} ~ ``coef``, all independent. This is
an ensemble like any other (DESIGN.md "the spine"): the same spec feeds the sampler
(:mod:`.ensemble`), the NNGP kernel (:mod:`.kernel`) and a trainable :class:`~.network.KAN` (:meth:`KANSpec.build`).

Mapping to :class:`~.layer.KANLayer`: its ``scale_base`` holds s_l β and its ``scale_sp`` holds s_l γ. In
this notation the pykan 0.2.8 initialisation is β ~ U(−1, 1), γ = 1, ``normalization="fan_in"``, with c a
least-squares fit of small uniform noise (not i.i.d.; not represented here). The default spec is the
"Gaussian KAN": β ~ N(0, 1), γ = 1, c ~ N(0, 1), fan-in normalised — its edge functions are Gaussian
processes in t, so the first layer's outputs are exactly Gaussian and an infinite-width limit exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Union

import torch

from ...errors import check, fail
from ...spec import Normal, Uniform

__all__ = ["Constant", "KANSpec", "EdgeDensity", "edge_density_from_config"]


@dataclass(frozen=True)
class Constant:
    """A parameter fixed at ``value`` in every network (a point mass): E[p] = value, E[p²] = value²."""

    value: float = 1.0

    def __post_init__(self) -> None:
        check(isinstance(self.value, (int, float)) and not isinstance(self.value, bool)
              and math.isfinite(self.value), "Constant.value", self.value, "a finite number")

    is_gaussian = False

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
        return torch.full(shape, float(self.value), dtype=dtype)

    def moment(self, k: int) -> float:
        return float(self.value) ** k

    def to_config(self) -> dict:
        return {"kind": "constant", "value": self.value}


EdgeDensity = Union[Normal, Uniform, Constant]
_EDGE_DENSITIES = (Normal, Uniform, Constant)


def _moment(density: EdgeDensity, k: int) -> float:
    """E[p^k] for k = 1, 2 of an edge density."""
    if isinstance(density, Normal):
        return 0.0 if k == 1 else density.std ** 2
    return float(density.moment(k))


def edge_density_from_config(cfg, where: str) -> EdgeDensity:
    """Inverse of ``to_config`` for the edge densities; a bare number means :class:`Constant`."""
    if isinstance(cfg, (int, float)) and not isinstance(cfg, bool):
        return Constant(float(cfg))
    check(isinstance(cfg, dict) and "kind" in cfg, where, cfg, "a number or a table with a 'kind' key")
    kinds = {"normal": Normal, "uniform": Uniform, "constant": Constant}
    check(cfg["kind"] in kinds, f"{where}.kind", cfg["kind"], ", ".join(kinds))
    args = {k: v for k, v in cfg.items() if k != "kind"}
    try:
        return kinds[cfg["kind"]](**args)
    except TypeError as exc:
        raise fail(where, cfg, f"the fields of {kinds[cfg['kind']].__name__} ({exc})") from None


def _int_ge(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


@dataclass(frozen=True, kw_only=True)
class KANSpec:
    """A random-initialised KAN family (see the module docstring).

    Attributes
    ----------
    shape : (n_0, ..., n_L), L >= 1 layers.
    G, k : grid intervals (>= 1) and spline order (>= 0); G + k B-splines per edge.
    grid_range : (a, b), the uniform grid's range (partition of unity on [a, b]).
    coef, scale_base, scale_sp : densities of c_m, β and γ (Normal, Uniform or Constant; a number
        means Constant).
    normalization : "fan_in" (s_l = n_l^{−1/2}) or "none" (s_l = 1).
    name : a label for tables and reports.
    """

    shape: tuple[int, ...]
    G: int = 5
    k: int = 3
    grid_range: tuple[float, float] = (-1.0, 1.0)
    coef: EdgeDensity = Normal(1.0)
    scale_base: EdgeDensity = Normal(1.0)
    scale_sp: EdgeDensity = Constant(1.0)
    normalization: Literal["fan_in", "none"] = "fan_in"
    name: str = "kan"

    def __post_init__(self) -> None:
        if isinstance(self.shape, list):
            object.__setattr__(self, "shape", tuple(self.shape))
        check(isinstance(self.shape, tuple) and len(self.shape) >= 2 and all(_int_ge(n, 1) for n in self.shape),
              "KANSpec.shape", self.shape, "a sequence of >= 2 integers >= 1 [n_0, ..., n_L]")
        check(_int_ge(self.G, 1), "KANSpec.G", self.G, "an integer >= 1")
        check(_int_ge(self.k, 0), "KANSpec.k", self.k, "an integer >= 0")
        try:
            lo, hi = (float(v) for v in self.grid_range)
        except (TypeError, ValueError):
            raise fail("KANSpec.grid_range", self.grid_range, "two numbers (a, b) with a < b") from None
        check(math.isfinite(lo) and math.isfinite(hi) and lo < hi, "KANSpec.grid_range", self.grid_range,
              "two finite numbers (a, b) with a < b")
        object.__setattr__(self, "grid_range", (lo, hi))
        for name in ("coef", "scale_base", "scale_sp"):
            v = getattr(self, name)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                object.__setattr__(self, name, Constant(float(v)))
            check(isinstance(getattr(self, name), _EDGE_DENSITIES), f"KANSpec.{name}", v,
                  "Normal(std), Uniform(low, high), Constant(value) or a number")
        check(self.normalization in ("fan_in", "none"), "KANSpec.normalization", self.normalization,
              "'fan_in' or 'none'")
        check(isinstance(self.name, str), "KANSpec.name", self.name, "a string")

    # -- derived ----------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """L, the number of KAN layers."""
        return len(self.shape) - 1

    @property
    def d_in(self) -> int:
        return self.shape[0]

    @property
    def d_out(self) -> int:
        return self.shape[-1]

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return self.shape[1:-1]

    @property
    def n_basis(self) -> int:
        """G + k B-splines per edge."""
        return self.G + self.k

    @property
    def n_params(self) -> int:
        """Σ_l n_l n_{l+1} (G + k + 2): coefficients, β and γ of every edge."""
        return sum(a * b for a, b in zip(self.shape[:-1], self.shape[1:])) * (self.n_basis + 2)

    def edge_scale(self, layer: int) -> float:
        """s_l: n_l^{−1/2} under fan-in normalization, else 1."""
        return 1.0 / math.sqrt(self.shape[layer]) if self.normalization == "fan_in" else 1.0

    def knots(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The G + 2k + 1 uniform knots t_j = a + j (b − a)/G, j = −k..G+k."""
        from .basis import uniform_grid

        return uniform_grid(self.G, self.k, *self.grid_range, dtype=dtype)

    @property
    def edge_moments(self) -> dict[str, float]:
        """First and second moments of β, γ, c: keys b1, b2, g1, g2, c1, c2 (E[p], E[p²])."""
        return {"b1": _moment(self.scale_base, 1), "b2": _moment(self.scale_base, 2),
                "g1": _moment(self.scale_sp, 1), "g2": _moment(self.scale_sp, 2),
                "c1": _moment(self.coef, 1), "c2": _moment(self.coef, 2)}

    @property
    def zero_mean(self) -> bool:
        """E[φ(t)] = E[β] SiLU(t) + E[γ]E[c] Σ_m B_m(t) vanishes for every t."""
        m = self.edge_moments
        return m["b1"] == 0.0 and m["g1"] * m["c1"] == 0.0

    @property
    def gaussian_edges(self) -> bool:
        """Each edge function φ(t) is a Gaussian process in t: β and c Normal, γ Constant."""
        return (isinstance(self.scale_base, Normal) and isinstance(self.coef, Normal)
                and isinstance(self.scale_sp, Constant))

    def with_width(self, width: int) -> "KANSpec":
        """The same family with every hidden layer of width ``width``."""
        check(_int_ge(width, 1), "width", width, "an integer >= 1")
        return replace(self, shape=(self.shape[0],) + (width,) * (self.depth - 1) + (self.shape[-1],))

    def __str__(self) -> str:
        widths = "-".join(str(n) for n in self.shape)
        return f"{self.name}[{widths}, G={self.G}, k={self.k}]"

    # -- config round trip --------------------------------------------------------------------------
    def to_config(self) -> dict:
        return {"kind": "kan", "name": self.name, "shape": list(self.shape), "G": self.G, "k": self.k,
                "grid_range": list(self.grid_range), "coef": self.coef.to_config(),
                "scale_base": self.scale_base.to_config(), "scale_sp": self.scale_sp.to_config(),
                "normalization": self.normalization}

    @classmethod
    def from_config(cls, cfg: dict) -> "KANSpec":
        check(isinstance(cfg, dict), "kan", cfg, "a table")
        check("shape" in cfg, "kan", f"missing {['shape']}", "the key 'shape'")
        allowed = {"kind", "name", "shape", "G", "k", "grid_range", "coef", "scale_base", "scale_sp",
                   "normalization"}
        unknown = sorted(set(cfg) - allowed)
        check(not unknown, "kan", f"unknown keys {unknown}", ", ".join(sorted(allowed)))
        check(cfg.get("kind", "kan") == "kan", "kan.kind", cfg.get("kind"), "'kan'")
        args = {k: v for k, v in cfg.items() if k in allowed - {"kind", "coef", "scale_base", "scale_sp"}}
        if "shape" in args:
            args["shape"] = tuple(args["shape"]) if isinstance(args["shape"], list) else args["shape"]
        if "grid_range" in args and isinstance(args["grid_range"], list):
            args["grid_range"] = tuple(args["grid_range"])
        for name in ("coef", "scale_base", "scale_sp"):
            if name in cfg:
                args[name] = edge_density_from_config(cfg[name], f"kan.{name}")
        return cls(**args)

    def save(self, path: Union[str, Path]) -> None:
        """Write the spec as TOML (``.toml``) or JSON (anything else), atomically."""
        from ...results import atomic_write_text, dumps_config

        atomic_write_text(Path(path), dumps_config({"kan": self.to_config()}, Path(path)))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "KANSpec":
        from ...results import load_config

        cfg = load_config(Path(path))
        check("kan" in cfg, str(path), sorted(cfg), "a file with a [kan] table")
        return cls.from_config(cfg["kan"])

    # -- one network ------------------------------------------------------------------------------
    def build(self, seed: int, *, dtype: torch.dtype = torch.float64):
        """One network of the family as a trainable :class:`~.network.KAN` (float64 by default).

        Its parameters are network 0 of ``sample_kans(self, 1, torch.Generator().manual_seed(seed))``
        (:mod:`.ensemble`), written into the KAN's layers as coef = c, scale_base = s_l β, scale_sp = s_l γ.
        """
        from .ensemble import sample_kans

        check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed, "an integer >= 0")
        return sample_kans(self, 1, torch.Generator().manual_seed(seed), dtype=dtype).network(0)
