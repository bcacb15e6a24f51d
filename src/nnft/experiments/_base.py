"""Experiments: each lecture result is a small config with embedded defaults and a ``run()`` that returns
data, tables, figures and pass/fail checks. A registry feeds ``nnft report`` and ``nnft validate``."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import numpy as np

__all__ = ["pyplot", "Check", "Table", "Figure", "ExperimentResult", "Experiment", "REGISTRY", "register", "Progress"]

Progress = Optional[Callable[[float], None]]  # called with the fraction done, 0..1


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (experiments render to PNG, never to a screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Check:
    """One theory-vs-experiment verdict: ``statistic`` compared with ``threshold`` (``kind`` says how)."""

    name: str
    statistic: float
    threshold: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple]


@dataclass(frozen=True)
class Figure:
    title: str
    png: bytes
    caption: str = ""

    @classmethod
    def from_matplotlib(cls, fig, title: str, caption: str = "") -> "Figure":
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        return cls(title, buf.getvalue(), caption)


@dataclass
class ExperimentResult:
    name: str
    title: str
    summary: str
    config: dict
    checks: list[Check] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


class Experiment(Protocol):
    name: str
    title: str

    def run(self, progress: Progress = None) -> ExperimentResult: ...


REGISTRY: dict[str, Callable[[], Experiment]] = {}


def register(name: str):
    """Class decorator: register an experiment (constructed with its embedded defaults) under ``name``."""

    def deco(cls):
        REGISTRY[name] = cls
        return cls

    return deco
