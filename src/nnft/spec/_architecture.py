"""The architecture spec: one immutable, validated description of a network family.

A fully connected network with L hidden layers (PHYSICS.md §2, standard convention):

    z^(1) = W^(1) x + b^(1),   z^(l+1) = W^(l+1) σ(z^(l)) + b^(l+1),   φ = z^(L+1) ∈ R^{d_out}

with W^(l) = ŵ / sqrt(n_{l−1}) (``scaling="fan_in"``) or ŵ (``"none"``), ŵ and b drawn from the layer's
densities. An optional first-layer ``amplitude`` F multiplies hidden neuron i by F(|W^(1)_i|)
(the Euclidean-invariant feature layer ℓ_i(x) = F(w_i) cos(w_i·x + b_i); Scalar-net uses
F(w) = (|w|² + m²)^{−1/2}, arXiv:2112.04527). The sampler, the kernels, the finite-width theory and the
trainer all read this object; nothing else re-describes an architecture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import check
from ._activation import Activation
from ._density import Density, Normal, Sampled, Spectral, Spectrum, Uniform, UniformBall, density_from_config, \
    density_std
from ._parameterization import STANDARD, Parameterization

__all__ = ["Layer", "Propagator", "SpectralAmplitude", "Architecture", "mlp"]

_DENSITIES = (Normal, Uniform, UniformBall, Sampled, Spectral)


@dataclass(frozen=True)
class Propagator:
    """Neuron amplitude F(w) = (|w|² + mass²)^{−1/2} (Scalar-net, PHYSICS.md §2)."""

    mass: float

    def __post_init__(self) -> None:
        check(isinstance(self.mass, (int, float)) and math.isfinite(self.mass) and self.mass > 0,
              "Propagator.mass", self.mass, "a finite number > 0")

    def evaluate(self, w: torch.Tensor) -> torch.Tensor:
        """F(w) for first-layer rows w (..., d): (|w|² + m²)^{−1/2}, computed in float64, returned in w's dtype."""
        return torch.rsqrt((w.double() ** 2).sum(-1) + self.mass**2).to(w.dtype)

    def squared(self, p: float) -> float:
        """F² at |w| = p: 1/(p² + m²)."""
        return 1.0 / (p * p + self.mass * self.mass)

    def to_config(self) -> dict:
        return {"kind": "propagator", "mass": self.mass}


@dataclass(frozen=True)
class SpectralAmplitude:
    """Neuron amplitude F(w) = sqrt(S(|w|)) for a :class:`Spectrum` S: with momenta uniform in a ball this
    is the cos layer of a designed free field with G̃ ∝ S (PHYSICS.md §2, §6; Propagator is S = 1/(p² + m²))."""

    spectrum: Spectrum

    def __post_init__(self) -> None:
        if isinstance(self.spectrum, dict):
            object.__setattr__(self, "spectrum", Spectrum.from_config(self.spectrum))
        check(isinstance(self.spectrum, Spectrum), "SpectralAmplitude.spectrum", self.spectrum, "a Spectrum")

    def evaluate(self, w: torch.Tensor) -> torch.Tensor:
        """F(w) = sqrt(S(|w|)) for rows w (..., d), returned in w's dtype."""
        norm = torch.linalg.vector_norm(w.double(), dim=-1).numpy()
        return torch.from_numpy(np.sqrt(self.spectrum(norm))).to(w.dtype)

    def squared(self, p: float) -> float:
        """F² at |w| = p: S(p)."""
        return float(self.spectrum(p))

    def to_config(self) -> dict:
        return {"kind": "spectral", "spectrum": self.spectrum.to_config()}


@dataclass(frozen=True, kw_only=True)
class Layer:
    """One affine layer: ``width`` outputs, weight and bias densities, and the weight scaling."""

    width: int
    weight: Density = Normal(1.0)
    bias: Optional[Density] = Normal(1.0)
    scaling: Literal["fan_in", "none"] = "fan_in"

    def __post_init__(self) -> None:
        check(isinstance(self.width, int) and not isinstance(self.width, bool) and self.width >= 1,
              "Layer.width", self.width, "an integer >= 1")
        check(isinstance(self.weight, _DENSITIES), "Layer.weight", self.weight, "a density (Normal, Uniform, ...)")
        check(self.bias is None or isinstance(self.bias, _DENSITIES), "Layer.bias", self.bias, "a density or None")
        check(self.scaling in ("fan_in", "none"), "Layer.scaling", self.scaling, "'fan_in' or 'none'")

    def weight_scale(self, fan_in: int) -> float:
        """c with W = c ŵ: 1/sqrt(fan_in) or 1."""
        return 1.0 / math.sqrt(fan_in) if self.scaling == "fan_in" else 1.0

    def weight_var(self, fan_in: int) -> float:
        """Per-entry E[W²] = E[ŵ²] c²."""
        return density_std(self.weight, fan_in) ** 2 * self.weight_scale(fan_in) ** 2

    @property
    def bias_var(self) -> float:
        return 0.0 if self.bias is None else density_std(self.bias, 1) ** 2

    def to_config(self) -> dict:
        out = {"width": self.width, "weight": self.weight.to_config(), "scaling": self.scaling}
        if self.bias is not None:
            out["bias"] = self.bias.to_config()
        return out


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """A network family: input dimension, layers (hidden ones, then the readout), activation, densities.

    Attributes
    ----------
    d_in : input dimension d (inputs have shape (M, d)).
    layers : L hidden layers followed by the readout; ``layers[-1].width`` is d_out.
    activation : the pointwise nonlinearity σ of every hidden layer.
    parameterization : ``standard`` or ``ntk`` (same forward ensemble; differs for training and NTK).
    amplitude : optional first-layer neuron amplitude F(|w|) (Scalar-net; a designed spectrum).
    name : a label for tables and reports.
    """

    d_in: int
    layers: tuple[Layer, ...]
    activation: Activation
    parameterization: Parameterization = STANDARD
    amplitude: Optional[Union[Propagator, SpectralAmplitude]] = None
    name: str = "mlp"

    def __post_init__(self) -> None:
        check(isinstance(self.d_in, int) and not isinstance(self.d_in, bool) and self.d_in >= 1,
              "Architecture.d_in", self.d_in, "an integer >= 1")
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        check(isinstance(self.layers, tuple) and len(self.layers) >= 2
              and all(isinstance(l, Layer) for l in self.layers),
              "Architecture.layers", self.layers, "a tuple of >= 2 Layer (hidden layers, then the readout)")
        if isinstance(self.activation, str):
            object.__setattr__(self, "activation", Activation(self.activation))
        check(isinstance(self.activation, Activation), "Architecture.activation", self.activation, "an Activation")
        if isinstance(self.parameterization, str):
            object.__setattr__(self, "parameterization", Parameterization(self.parameterization))
        check(isinstance(self.parameterization, Parameterization), "Architecture.parameterization",
              self.parameterization, "a Parameterization")
        check(self.amplitude is None or isinstance(self.amplitude, (Propagator, SpectralAmplitude)),
              "Architecture.amplitude", self.amplitude, "None, Propagator or SpectralAmplitude")
        for i, layer in enumerate(self.layers[1:], start=1):
            check(not isinstance(layer.weight, (UniformBall, Spectral)), f"Architecture.layers[{i}].weight",
                  layer.weight, "entrywise densities beyond the first layer (UniformBall, Spectral only in layer 0)")
        if isinstance(self.layers[0].weight, Spectral):
            self.layers[0].weight.radial_norm(self.d_in)  # the radial density must normalise in d = d_in

    # -- derived ----------------------------------------------------------------------------------
    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return tuple(l.width for l in self.layers[:-1])

    @property
    def depth(self) -> int:
        """L, the number of hidden layers."""
        return len(self.layers) - 1

    @property
    def d_out(self) -> int:
        return self.layers[-1].width

    @property
    def fan_ins(self) -> tuple[int, ...]:
        return (self.d_in,) + self.hidden_widths

    @property
    def gaussian_first_layer(self) -> bool:
        first = self.layers[0]
        return (isinstance(first.weight, Normal) and (first.bias is None or isinstance(first.bias, Normal))
                and self.amplitude is None)

    def with_width(self, width: int) -> "Architecture":
        """The same family with every hidden layer of width ``width``."""
        layers = tuple(replace(l, width=width) for l in self.layers[:-1]) + (self.layers[-1],)
        return replace(self, layers=layers)

    def __str__(self) -> str:
        widths = "-".join(str(w) for w in (self.d_in, *self.hidden_widths, self.d_out))
        return f"{self.name}[{widths}, {self.activation.name}, {self.parameterization.name}]"

    # -- config round trip --------------------------------------------------------------------------
    def to_config(self) -> dict:
        out = {"name": self.name, "d_in": self.d_in, "activation": self.activation.to_config(),
               "parameterization": self.parameterization.to_config(),
               "layers": [l.to_config() for l in self.layers]}
        if self.amplitude is not None:
            out["amplitude"] = self.amplitude.to_config()
        return out

    @classmethod
    def from_config(cls, cfg: dict) -> "Architecture":
        check(isinstance(cfg, dict), "architecture", cfg, "a table")
        required = {"d_in", "activation", "layers"}
        missing = sorted(required - set(cfg))
        check(not missing, "architecture", f"missing {missing}", f"the keys {sorted(required)}")
        unknown = sorted(set(cfg) - required - {"name", "parameterization", "amplitude"})
        check(not unknown, "architecture", f"unknown keys {unknown}",
              "d_in, activation, layers, name, parameterization, amplitude")
        act = cfg["activation"]
        if isinstance(act, str):
            act = {"name": act}
        check(isinstance(act, dict) and "name" in act, "architecture.activation", act, "a name or {name, param}")
        layers_cfg = cfg["layers"]
        check(isinstance(layers_cfg, list), "architecture.layers", layers_cfg, "a list of layer tables")
        layers = []
        for i, lc in enumerate(layers_cfg):
            where = f"architecture.layers[{i}]"
            check(isinstance(lc, dict) and "width" in lc, where, lc, "a table with 'width'")
            extra = sorted(set(lc) - {"width", "weight", "bias", "scaling"})
            check(not extra, where, f"unknown keys {extra}", "width, weight, bias, scaling")
            layers.append(Layer(width=lc["width"],
                                weight=density_from_config(lc.get("weight", {"kind": "normal", "std": 1.0}),
                                                           where + ".weight"),
                                bias=density_from_config(lc.get("bias"), where + ".bias"),
                                scaling=lc.get("scaling", "fan_in")))
        amp = cfg.get("amplitude")
        if amp is not None:
            kind = amp.get("kind") if isinstance(amp, dict) else None
            check((kind == "propagator" and set(amp) == {"kind", "mass"})
                  or (kind == "spectral" and set(amp) == {"kind", "spectrum"}), "architecture.amplitude", amp,
                  "{kind = 'propagator', mass = m} or {kind = 'spectral', spectrum = {profile, params}}")
            amp = Propagator(amp["mass"]) if kind == "propagator" else SpectralAmplitude(amp["spectrum"])
        return cls(d_in=cfg["d_in"], layers=tuple(layers), activation=Activation(act["name"], act.get("param")),
                   parameterization=Parameterization.from_config(cfg.get("parameterization", "standard")),
                   amplitude=amp, name=cfg.get("name", "mlp"))

    def save(self, path: Union[str, Path]) -> None:
        """Write the spec as TOML (``.toml``) or JSON (anything else), atomically."""
        from ..results import atomic_write_text, dumps_config

        atomic_write_text(Path(path), dumps_config({"architecture": self.to_config()}, Path(path)))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Architecture":
        from ..results import load_config

        cfg = load_config(Path(path))
        check("architecture" in cfg, str(path), sorted(cfg), "a file with an [architecture] table")
        return cls.from_config(cfg["architecture"])


def mlp(d_in: int, hidden: Sequence[int], d_out: int = 1, *, activation: Union[str, Activation] = "relu",
        sigma_w: float = 1.0, sigma_b: float = 1.0, bias: bool = True,
        parameterization: Union[str, Parameterization] = STANDARD, name: str = "mlp") -> Architecture:
    """A deep MLP in the standard convention: W ~ N(0, σ_W²/fan_in), b ~ N(0, σ_b²) in every layer."""
    check(isinstance(hidden, (list, tuple)) and len(hidden) >= 1, "hidden", hidden,
          "a non-empty list of hidden widths")
    check(isinstance(sigma_w, (int, float)) and math.isfinite(sigma_w) and sigma_w > 0, "sigma_w", sigma_w,
          "a finite number > 0")
    check(isinstance(sigma_b, (int, float)) and math.isfinite(sigma_b) and sigma_b >= 0, "sigma_b", sigma_b,
          "a finite number >= 0")
    b = Normal(float(sigma_b)) if bias and sigma_b > 0 else None
    layers = tuple(Layer(width=w, weight=Normal(float(sigma_w)), bias=b) for w in hidden)
    layers += (Layer(width=d_out, weight=Normal(float(sigma_w)), bias=b),)
    act = Activation(activation) if isinstance(activation, str) else activation
    return Architecture(d_in=d_in, layers=layers, activation=act, parameterization=parameterization, name=name)
