"""Parameterizations: where the width scaling of a layer lives (arXiv:2011.14522, Yang & Hu).

A layer's effective weight is W = std · ŵ / sqrt(fan_in) with ŵ of unit scale. The parameterization says
which part is the *trained, stored* parameter and which part is a fixed forward multiplier:

    =========  =====================  ====================  =========================================
    name       stored parameter        forward multiplier    infinite-width NTK
    =========  =====================  ====================  =========================================
    standard   W = std ŵ/sqrt(fan_in)  1                     grows ∝ width (no finite limit)
    ntk        ŵ (unit variance)       std/sqrt(fan_in)      finite, PHYSICS.md §7 recursion
    =========  =====================  ====================  =========================================

Both give the same forward ensemble at initialisation, so sampled correlators and the NNGP kernel do not
depend on the choice; training and the NTK do. In Yang–Hu's abc form (multiplier n^{−a}, init std n^{−b})
the two are (a, b) = (0, 1/2) and (1/2, 0) on hidden and readout layers. μP and mean-field change the
*effective* variance exponent a + b of the readout and arrive with the dynamics module as further presets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import check

__all__ = ["Parameterization", "STANDARD", "NTK"]


@dataclass(frozen=True)
class Parameterization:
    """A named parameterization; see the module docstring for the table."""

    name: Literal["standard", "ntk"] = "standard"

    def __post_init__(self) -> None:
        check(self.name in ("standard", "ntk"), "parameterization", self.name, "'standard' or 'ntk'")

    @property
    def multiplier_exponent(self) -> float:
        """Yang–Hu a for hidden and readout layers."""
        return 0.5 if self.name == "ntk" else 0.0

    @property
    def init_exponent(self) -> float:
        """Yang–Hu b (a standard-deviation exponent) for hidden and readout layers."""
        return 0.0 if self.name == "ntk" else 0.5


STANDARD = Parameterization("standard")
NTK = Parameterization("ntk")
