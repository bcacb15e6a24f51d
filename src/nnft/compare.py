"""Theory beside experiment: one function for every prediction-vs-measurement comparison.

Per tuple: predicted value, measured value ± standard error, z = (measured − predicted)/stderr, the NN-QFT
relative deviation m_n = |G_exp − G_pred| / |G_pred| and background b_n = (block spread)/|G_pred|
(arXiv:2008.08601; PHYSICS.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .correlators import Correlators
from .errors import check

__all__ = ["Comparison", "compare"]


@dataclass(frozen=True)
class Comparison:
    """Side-by-side table of a prediction and a measurement of the same correlator.

    z : per-tuple z-scores; m : per-tuple relative deviations; b : per-tuple background levels.
    ``passed(threshold)`` is the test: max |z| below ``threshold`` (z-scores from jackknife errors).
    """

    name: str
    predicted: Correlators
    measured: Correlators
    z: np.ndarray
    m: np.ndarray
    b: np.ndarray

    @property
    def max_abs_z(self) -> float:
        return float(np.max(np.abs(self.z)))

    @property
    def mean_m(self) -> float:
        """Average relative deviation m_n over tuples."""
        return float(np.mean(self.m))

    @property
    def mean_b(self) -> float:
        return float(np.mean(self.b))

    def passed(self, threshold: float = 5.0) -> bool:
        return self.max_abs_z < threshold

    def rows(self, limit: int | None = None):
        """(tuple, predicted, measured, stderr, z, m) rows for tables."""
        tup = self.measured.tuples
        n = len(tup) if limit is None else min(limit, len(tup))
        order = np.argsort(-np.abs(self.z))[:n]
        for i in order:
            yield (tuple(int(v) for v in tup[i]), float(self.predicted.values[i]), float(self.measured.values[i]),
                   float(self.measured.stderr[i]), float(self.z[i]), float(self.m[i]))


def compare(predicted: Correlators, measured: Correlators, *, name: str | None = None,
            min_stderr: float = 1e-300) -> Comparison:
    """Compare a prediction with a measurement of the same order, kind and sites."""
    check(predicted.order == measured.order and predicted.connected == measured.connected
          and predicted.n_sites == measured.n_sites, "compare", (predicted.name, measured.name),
          "two correlators of the same order, kind (moment/connected) and sites")
    check(measured.stderr is not None, "compare(measured)", measured.label, "a measurement with standard errors")
    diff = measured.values - predicted.values
    err = measured.stderr if predicted.stderr is None else np.hypot(measured.stderr, predicted.stderr)
    z = diff / np.maximum(err, min_stderr)
    scale = np.abs(predicted.values)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.abs(diff) / scale
        b = (measured.background if measured.background is not None else np.zeros_like(scale)) / scale
    return Comparison(name or measured.name, predicted, measured, z, m, b)
