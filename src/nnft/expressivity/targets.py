"""Continuous target functions on the cube [−1, 1]^d for approximation experiments (PHYSICS.md §9).

Each target is a continuous f: [−1, 1]^d → R of a stated regularity, so the universal approximation
theorem (Cybenko 1989; Hornik 1991) applies to all of them, while the *rate* at which the error falls with
the width N depends on the regularity:

    smooth  f(x) = exp(−|x|²)                       analytic; Barron class (∫|ω||f̂(ω)| dω < ∞)
    abs     f(x) = |x| = sqrt(Σ_i x_i²)             Lipschitz, a kink at the origin (a cone in d = 2)
    max     f(x) = max(0, x_1, ..., x_d)            Lipschitz, kinks along hyperplanes (a ReLU in d = 1)
    osc     f(x) = Π_i sin(ω x_i), ω = 5π            analytic, but oscillatory: 5 periods per axis

The L² errors below are root-mean-square over the uniform measure on the cube (estimated on a grid);
the sup error is the maximum over a dense grid, a lower bound on sup_{x ∈ [−1,1]^d} that converges as
the grid is refined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import check

__all__ = ["Target", "TARGETS", "target", "cube_grid"]

Tensor = torch.Tensor


def _smooth(x: Tensor) -> Tensor:
    return torch.exp(-(x * x).sum(-1))


def _abs(x: Tensor) -> Tensor:
    return torch.sqrt((x * x).sum(-1))


def _max(x: Tensor) -> Tensor:
    return torch.clamp(x.max(-1).values, min=0.0)


def _osc(x: Tensor) -> Tensor:
    return torch.sin(5 * math.pi * x).prod(-1)


_FUNCTIONS: dict[str, tuple[Callable[[Tensor], Tensor], str, str]] = {
    "smooth": (_smooth, "exp(−|x|²)", "analytic (Barron class)"),
    "abs": (_abs, "|x|", "Lipschitz, kink at 0"),
    "max": (_max, "max(0, x_1, ..., x_d)", "Lipschitz, kinks on hyperplanes"),
    "osc": (_osc, "Π_i sin(5π x_i)", "analytic, oscillatory (5 periods per axis)"),
}

TARGETS: tuple[str, ...] = tuple(_FUNCTIONS)


@dataclass(frozen=True)
class Target:
    """A named continuous target f: [−1, 1]^d → R.

    name : one of :data:`TARGETS`.  d : the input dimension (1 or more).
    ``target(x)`` maps x (M, d) to f(x) (M,) in the dtype of x.
    """

    name: str
    d: int

    def __post_init__(self) -> None:
        check(self.name in _FUNCTIONS, "target", self.name, ", ".join(TARGETS))
        check(isinstance(self.d, int) and not isinstance(self.d, bool) and self.d >= 1, "d", self.d,
              "an integer >= 1")

    def __call__(self, x) -> Tensor:
        x = torch.as_tensor(x)
        check(x.ndim == 2 and x.shape[1] == self.d, "x.shape", tuple(x.shape), f"(M, {self.d})")
        return _FUNCTIONS[self.name][0](x)

    @property
    def formula(self) -> str:
        return _FUNCTIONS[self.name][1]

    @property
    def regularity(self) -> str:
        return _FUNCTIONS[self.name][2]

    def __str__(self) -> str:
        return f"{self.name}: f(x) = {self.formula} on [−1, 1]^{self.d}"


def target(name: str, d: int = 1) -> Target:
    """The target ``name`` (see :data:`TARGETS`) in dimension ``d``."""
    return Target(name, d)


def cube_grid(d: int, n_per_axis: int, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """The tensor grid of n_per_axis equispaced points per axis on [−1, 1]^d, endpoints included:
    shape (n_per_axis^d, d)."""
    check(isinstance(d, int) and d >= 1, "d", d, "an integer >= 1")
    check(isinstance(n_per_axis, int) and n_per_axis >= 2, "n_per_axis", n_per_axis, "an integer >= 2")
    axis = torch.as_tensor(np.linspace(-1.0, 1.0, n_per_axis), dtype=dtype)
    mesh = torch.meshgrid(*([axis] * d), indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)
