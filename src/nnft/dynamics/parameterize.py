"""Apply a parameterization (SP, NTK, mean field, μP) to a user's own torch model of ``nn.Linear`` layers.

For every ``nn.Linear`` with role ``input``, ``hidden`` or ``readout`` and weight (fan_out × fan_in), the
stored parameter w is re-initialised as w ~ N(0, init_std²) and a forward multiplier M is attached through
``torch.nn.utils.parametrize`` so that the layer computes

    h = (M w) a + (M_b b),     (M, init_std, SGD factor, Adam factor) = Parameterization.layer_scales(...)

(biases: :meth:`Parameterization.bias_scales`). :func:`param_groups` then returns optimizer groups with the
per-layer learning rates lr · factor. This is the recipe of Tensor Programs V (arXiv:2203.03466; mup's
``set_base_shapes`` + ``MuSGD``/``MuAdam``) for the whole abc family of Yang–Hu (arXiv:2011.14522),
PHYSICS.md §8. ``base_width`` plays the role of mup's base shapes: with base width n0, μP at width n0 is SP.

Layer roles: by default the ``nn.Linear`` modules in registration order (``model.named_modules()``) are
input, hidden, …, hidden, readout. A mapping ``{module name: role}`` overrides this; it must name every
``nn.Linear``. Modules that own parameters and are not ``nn.Linear`` (convolutions, embeddings, norms, …)
are rejected with a ConfigError: their width scaling is not defined here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Union

import torch
from torch import nn
from torch.nn.utils import parametrize as torch_parametrize

from ..errors import check, fail
from ..spec import LayerScales, Parameterization

__all__ = ["parameterize", "param_groups", "describe", "LayerInfo", "ROLES"]

Role = Literal["input", "hidden", "readout"]
ROLES: tuple[str, ...] = ("input", "hidden", "readout")
_INDEX = {"input": (0, 3), "hidden": (1, 3), "readout": (2, 3)}  # (index, n_layers) for layer_scales


class _Scale(nn.Module):
    """The fixed forward multiplier of one parameter: stored w ↦ M · w (a torch parametrization)."""

    def __init__(self, scales: LayerScales, role: str, kind: str, parameterization: Parameterization) -> None:
        super().__init__()
        self.scales = scales
        self.role = role
        self.kind = kind
        self.parameterization = parameterization

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w if self.scales.multiplier == 1.0 else w * self.scales.multiplier

    def extra_repr(self) -> str:
        return f"{self.kind}, role={self.role}, multiplier={self.scales.multiplier:.6g}"


@dataclass(frozen=True)
class LayerInfo:
    """One parameterized ``nn.Linear``: module name, role, fan-in/out, weight and bias scales (bias: None)."""

    name: str
    role: str
    fan_in: int
    fan_out: int
    weight: LayerScales
    bias: Optional[LayerScales]


def _linear_roles(model: nn.Module, layers: Optional[Mapping[str, str]]) -> dict[str, str]:
    check(isinstance(model, nn.Module), "model", type(model).__name__, "a torch.nn.Module")
    linears = []
    for name, mod in model.named_modules():
        own = list(mod.parameters(recurse=False))
        if isinstance(mod, nn.Linear):
            check(not torch_parametrize.is_parametrized(mod), f"model.{name}", "an already parameterized layer",
                  "a model not yet passed to parameterize() (call it once, on a fresh model)")
            linears.append(name)
        elif own and not torch_parametrize.is_parametrized(mod):
            raise fail(f"model.{name or '<root>'}", type(mod).__name__,
                       "nn.Linear layers and parameter-free modules only (no width scaling is defined here for "
                       "other parameterized modules)")
    check(len(linears) >= 2, "model", f"{len(linears)} nn.Linear layers", ">= 2 (an input layer and a readout)")
    if layers is None:
        return {n: ("input" if i == 0 else "readout" if i == len(linears) - 1 else "hidden")
                for i, n in enumerate(linears)}
    check(isinstance(layers, Mapping), "layers", type(layers).__name__, "a mapping {module name: role}")
    missing, unknown = sorted(set(linears) - set(layers)), sorted(set(layers) - set(linears))
    check(not unknown, "layers", f"unknown names {unknown}", f"names of nn.Linear modules: {linears}")
    check(not missing, "layers", f"no role for {missing}", "a role for every nn.Linear module")
    for name, role in layers.items():
        check(role in ROLES, f"layers[{name!r}]", role, "'input', 'hidden' or 'readout'")
    return {n: layers[n] for n in linears}


def _resolve(parameterization: Union[str, Parameterization], base_width: Optional[int]) -> Parameterization:
    p = Parameterization(parameterization) if isinstance(parameterization, str) else parameterization
    check(isinstance(p, Parameterization), "parameterization", p, "a Parameterization or its name")
    if base_width is not None and p.name in ("mup", "mean_field"):
        p = Parameterization(p.name, form=p.form, base_width=base_width)
    return p


def parameterize(model: nn.Module, parameterization: Union[str, Parameterization], *, generator: torch.Generator,
                 base_width: Optional[int] = None, std: float = 1.0, bias_std: float = 0.0,
                 zero_readout: bool = False, layers: Optional[Mapping[str, str]] = None) -> nn.Module:
    """Re-initialise ``model``'s ``nn.Linear`` layers in ``parameterization`` and attach its multipliers.

    Parameters
    ----------
    model : an ``nn.Module`` whose parameters all live in ``nn.Linear`` layers; modified in place and returned.
    parameterization : "standard", "ntk", "mean_field", "mup" or a :class:`Parameterization`.
    generator : the torch.Generator of the initialisation (required: no global random state).
    base_width : μP / mean-field base width n0 (overrides the parameterization's; ignored by standard and ntk,
        which have no width ratio, so one call signature serves a sweep over parameterizations).
    std : σ_W; the effective weight variance at init is σ_W²/fan_in (μP / MF readout: σ_W²/(fan_in · m)).
    bias_std : σ_b; 0 initialises biases to zero (their multipliers and rates then use σ_b = 1).
    zero_readout : initialise the readout weight to zero (recommended for μP, arXiv:2203.03466 §D.2).
    layers : optional {module name: role}, roles in ("input", "hidden", "readout").
    """
    check(isinstance(generator, torch.Generator), "generator", type(generator).__name__, "a torch.Generator")
    for value, name, low in ((std, "std", 0.0), (bias_std, "bias_std", None)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        check(ok and (value > 0 if low is not None else value >= 0), name, value,
              "a finite number > 0" if low is not None else "a finite number >= 0")
    if base_width is not None:
        check(isinstance(base_width, int) and not isinstance(base_width, bool) and base_width >= 1, "base_width",
              base_width, "None or an integer >= 1")
    p = _resolve(parameterization, base_width)
    roles = _linear_roles(model, layers)
    modules = dict(model.named_modules())
    for name, role in roles.items():
        lin = modules[name]
        fan_out, fan_in = lin.weight.shape
        index, n_layers = _INDEX[role]
        ws = p.layer_scales(index, n_layers, fan_in, fan_out, float(std))
        with torch.no_grad():
            if zero_readout and role == "readout":
                lin.weight.zero_()
            else:
                lin.weight.normal_(0.0, ws.init_std, generator=generator)
        torch_parametrize.register_parametrization(lin, "weight", _Scale(ws, role, "weight", p))
        if lin.bias is not None:
            bs = p.bias_scales(index, n_layers, fan_out, float(bias_std) if bias_std > 0 else 1.0)
            with torch.no_grad():
                if bias_std > 0 and not (zero_readout and role == "readout"):
                    lin.bias.normal_(0.0, bs.init_std, generator=generator)
                else:
                    lin.bias.zero_()
            torch_parametrize.register_parametrization(lin, "bias", _Scale(bs, role, "bias", p))
    return model


def _scaled(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    check(isinstance(model, nn.Module), "model", type(model).__name__, "a torch.nn.Module")
    out = [(n, m) for n, m in model.named_modules()
           if isinstance(m, nn.Linear) and torch_parametrize.is_parametrized(m, "weight")
           and isinstance(m.parametrizations.weight[0], _Scale)]
    check(bool(out), "model", "a model without an nnft parameterization", "a model returned by parameterize()")
    return out


def describe(model: nn.Module) -> list[LayerInfo]:
    """The role, fans and scales of every parameterized layer of ``model``, in module order."""
    rows = []
    for name, lin in _scaled(model):
        w = lin.parametrizations.weight[0]
        b = lin.parametrizations.bias[0].scales if torch_parametrize.is_parametrized(lin, "bias") else None
        fan_out, fan_in = lin.parametrizations.weight.original.shape
        rows.append(LayerInfo(name, w.role, fan_in, fan_out, w.scales, b))
    return rows


def param_groups(model: nn.Module, lr: float, optimizer: Literal["sgd", "adam"] = "sgd") -> list[dict]:
    """Optimizer parameter groups with per-layer rates: ``lr · sgd_lr`` (SGD) or ``lr · adam_lr`` (Adam).

    Pass the result to ``torch.optim.SGD(groups, lr=lr)`` / ``torch.optim.Adam(groups, lr=lr)``. Each group
    holds one stored tensor and carries ``name`` and ``role`` keys for inspection. Every trainable parameter
    of ``model`` must belong to a parameterized layer.
    """
    check(isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0, "lr", lr,
          "a finite number > 0")
    check(optimizer in ("sgd", "adam"), "optimizer", optimizer, "'sgd' or 'adam'")
    groups, covered = [], set()
    for name, lin in _scaled(model):
        for kind in ("weight", "bias"):
            if not torch_parametrize.is_parametrized(lin, kind):
                continue
            par = getattr(lin.parametrizations, kind)
            scale: _Scale = par[0]
            factor = scale.scales.sgd_lr if optimizer == "sgd" else scale.scales.adam_lr
            groups.append({"params": [par.original], "lr": lr * factor, "name": f"{name}.{kind}",
                           "role": scale.role})
            covered.add(id(par.original))
    stray = [n for n, q in model.named_parameters() if q.requires_grad and id(q) not in covered]
    check(not stray, "model", f"parameters outside parameterized layers {stray[:4]}",
          "every trainable parameter in a layer passed through parameterize()")
    return groups
