"""Lazy training vs feature learning: trained ensembles against the frozen infinite-width NTK (PHYSICS.md §7–8).

Frozen-NTK prediction (Jacot et al. arXiv:1806.07572; Lee et al. arXiv:1902.06720), discrete GD with k steps
of rate η on L = (1/|D|) Σ_α ½(φ(x_α) − y_α)², Θ = Θ_∞ the infinite-width NTK (NTK parameterization):

    per network:  φ_k^lin(x) = φ_0(x) + Θ(x, X) Θ^{-1} E_k (Y − φ_0(X)),   E_k = I − (I − ηΘ/|D|)^k
    ensemble:     μ_k(x) = Θ(x, X) Θ^{-1} E_k Y,   Σ_k from :func:`nnft.dynamics.predict.ntk_flow`

(φ_0 is the network's own initial function). Diagnostics of a trained ensemble of width N:

  * distance  D(N) = sqrt(mean_{n, x} (φ_k^(n)(x) − φ_k^lin,(n)(x))²): per network, the deviation comes from
    the O(N^{-1/2}) fluctuation of the empirical NTK Θ_0 around Θ_∞ (Θ_0 is a mean of N i.i.d. neuron terms),
    so D(N) ∝ N^{-1/2};
  * mean deviation  sqrt(mean_x (mean_n [φ_k − φ_k^lin](x))²): the init noise cancels; its expectation is
    O(1/N) (second-order effects of the NTK fluctuation and drift), its noise O(N^{-1/2}/√M) for M networks;
  * z-scores of the ensemble mean against μ_k, and of the ensemble std against sqrt(Σ_k(x, x));
  * NTK movement ‖Θ_T − Θ_0‖_F/‖Θ_0‖_F and feature-kernel movement ‖Φ_T − Φ_0‖_F/‖Φ_0‖_F. In the NTK
    parameterization each hidden coordinate moves by O(N^{-1/2}) (Yang–Hu r = 1/2), but the kernels are sums
    over N neurons whose first-order changes have random signs (they carry a factor of the zero-mean readout
    weight), so they move by O(1/N) at fixed training time (Dyer & Gur-Ari arXiv:1909.11304, dΘ/dt = O(1/N));
    Lee et al.'s O(N^{-1/2}) is an upper bound. Under μP / mean field (r = 0) both stay O(1) (Yang & Hu
    arXiv:2011.14522).

Slopes come from a weighted least-squares fit of log(value) against log(N) (:func:`fit_power_law`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import check
from ..spec import Architecture
from .predict import Prediction, ntk_flow
from .training import TrainConfig, TrainResult, train

__all__ = ["Slope", "fit_power_law", "LazyPoint", "frozen_ntk_comparison", "LazyScan", "width_scan"]

Tensor = torch.Tensor


@dataclass(frozen=True)
class Slope:
    """Fitted exponent of value ∝ N^slope with its standard error; ``chi2_dof`` is the reduced χ² of the fit
    (the error is inflated by sqrt(χ²/dof) when that exceeds 1)."""

    slope: float
    stderr: float
    intercept: float
    chi2_dof: float

    def __str__(self) -> str:
        return f"{self.slope:.3f} ± {self.stderr:.3f}"

    def z(self, expected: float) -> float:
        """(slope − expected)/stderr."""
        return (self.slope - expected) / self.stderr if self.stderr > 0 else math.inf


def fit_power_law(widths: Sequence[float], values: Sequence[float], errors: Sequence[float]) -> Slope:
    """Weighted least squares of log v = a + s log N, weights 1/σ_log², σ_log = err/v (delta method)."""
    n = np.asarray(widths, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    check(n.shape == v.shape == e.shape and n.size >= 2, "fit_power_law", (n.shape, v.shape, e.shape),
          "widths, values and errors of one length >= 2")
    check(bool(np.all(n > 0) and np.all(v > 0) and np.all(e > 0)), "fit_power_law", "non-positive entries",
          "positive widths, values and errors")
    x, y, w = np.log(n), np.log(v), (v / e) ** 2
    sw, sx, sy = w.sum(), (w * x).sum(), (w * y).sum()
    sxx, sxy = (w * x * x).sum(), (w * x * y).sum()
    det = sw * sxx - sx * sx
    slope = (sw * sxy - sx * sy) / det
    intercept = (sxx * sy - sx * sxy) / det
    dof = n.size - 2
    chi2 = float((w * (y - intercept - slope * x) ** 2).sum())
    chi2_dof = chi2 / dof if dof > 0 else math.nan
    err = math.sqrt(sw / det) * (math.sqrt(chi2_dof) if dof > 0 and chi2_dof > 1 else 1.0)
    return Slope(float(slope), float(err), float(intercept), float(chi2_dof))


def _mean_err(v: Tensor) -> tuple[float, float]:
    v = v.to(torch.float64)
    n = v.numel()
    return float(v.mean()), float(v.std() / math.sqrt(n)) if n > 1 else math.nan


@dataclass(frozen=True, eq=False)
class LazyPoint:
    """One width's comparison of a trained ensemble with the frozen-NTK prediction (module docstring).

    linearized : (n_networks, M) per-network frozen-NTK predictions at the test inputs.
    prediction : the ensemble prediction (μ_k, Σ_k) at the test inputs.
    distance, distance_err : per-network RMS distance D(N) and its standard error (delta method over networks).
    mean_deviation : RMS over x of the network-averaged φ − φ^lin.
    mean_distance, std_distance : RMS over x of (ensemble mean − μ_k) and (ensemble std − sqrt Σ_k(x, x)).
    z_mean, z_std : per test input z-scores of the ensemble mean and std (std error sqrt(s²/(2(M−1)))).
    std_slack : (M,) rms over networks of φ − φ^lin at each test input. By the triangle inequality
        |std(φ) − std(φ^lin)| ≤ std(φ − φ^lin), and std(φ^lin) = sqrt(Σ_k(x, x)) up to sampling error at any
        width for one hidden layer (φ^lin is linear in φ_0, whose covariance is K exactly), so the ensemble std
        may differ from the prediction by sampling error plus this finite-width slack (it dominates where
        Σ_k(x, x) is tiny, at the training inputs).
    ntk_movement, feature_movement : (mean, stderr) over networks; feature_movement one pair per layer.
    """

    width: int
    result: TrainResult
    linearized: Tensor
    prediction: Prediction
    distance: float
    distance_err: float
    mean_deviation: float
    mean_distance: float
    std_distance: float
    z_mean: Tensor
    z_std: Tensor
    std_slack: Tensor
    ntk_movement: tuple[float, float]
    feature_movement: tuple[tuple[float, float], ...]


@contextmanager
def _torch_threads_kept():
    """Restore torch's intra-op thread count after calling the kernel theory: its numba ``parallel=True``
    kernels (OpenMP threading layer) reset the shared OpenMP runtime's thread count, which silently changes
    torch.get_num_threads() (e.g. 1 → 2 under OMP_NUM_THREADS=1) for the training that follows."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def frozen_ntk_comparison(result: TrainResult) -> LazyPoint:
    """Compare a trained ensemble with the frozen infinite-width NTK prediction at the same steps and η.

    Needs full-batch gradient descent (``optimizer="gd"``) and test inputs. Θ_∞ and K are the spec's
    NTK-parameterization kernels (:func:`nnft.theory.kernels`), whatever its parameterization: the
    comparison says how far the trained networks are from the kernel regime of that limit.
    """
    from ..theory.kernels import kernels

    cfg = result.config
    check(cfg.optimizer == "gd", "TrainConfig.optimizer", cfg.optimizer,
          "'gd' (the frozen-NTK prediction is for full-batch gradient descent)")
    check(result.x_test is not None, "x_test", None, "test inputs (train with x_test=...)")
    spec, xtr, xte, y = result.spec, result.x_train, result.x_test, result.y_train
    with _torch_threads_kept():  # the train and test blocks from the symmetric path (exactly symmetric)
        train_k, cross_k = kernels(spec, xtr, ntk=True), kernels(spec, xte, xtr, ntk=True)
        k_test = kernels(spec, xte).nngp
    theta_tr, theta_x, k_tr, k_x = train_k.ntk, cross_k.ntk, train_k.nngp, cross_k.nngp
    f0_train, f0_test = result.train_predictions[0], result.test_predictions[0]  # (n_nets, ·) at step 0
    fT = result.test_predictions[-1]
    flow = dict(steps=cfg.steps, lr=cfg.lr)
    shift = ntk_flow(theta_tr, theta_x, (y[None, :] - f0_train).T, **flow).mean  # (M, n_nets)
    linearized = f0_test + shift.T
    pred = ntk_flow(theta_tr, theta_x, y, nngp_train=k_tr, nngp_cross=k_x, nngp_test=k_test, **flow)
    diff = fT - linearized
    per_net = (diff * diff).mean(1)  # (n_nets,)
    m = fT.shape[0]
    ms, ms_err = _mean_err(per_net)
    dist = math.sqrt(ms)
    mean, std = fT.mean(0), fT.std(0)
    th_std = pred.std
    z_mean = (mean - pred.mean) / (std / math.sqrt(m))
    z_std = (std - th_std) / (std / math.sqrt(2 * (m - 1)))
    rms = lambda v: float(torch.sqrt((v * v).mean()))  # noqa: E731
    ntk = _mean_err(result.ntk_movement()) if result.ntk_initial is not None else (math.nan, math.nan)
    feats = tuple(_mean_err(f) for f in result.feature_movement()) if result.features_initial else ()
    return LazyPoint(width=spec.hidden_widths[-1], result=result, linearized=linearized, prediction=pred,
                     distance=dist, distance_err=ms_err / (2 * dist) if dist > 0 else math.nan,
                     mean_deviation=rms(diff.mean(0)), mean_distance=rms(mean - pred.mean),
                     std_distance=rms(std - th_std), z_mean=z_mean, z_std=z_std,
                     std_slack=torch.sqrt((diff * diff).mean(0)), ntk_movement=ntk,
                     feature_movement=feats)


@dataclass(frozen=True, eq=False)
class LazyScan:
    """A width scan: one :class:`LazyPoint` per width, with fitted exponents of the distance D(N), the NTK
    movement and each layer's feature-kernel movement."""

    spec: Architecture
    points: tuple[LazyPoint, ...]

    @property
    def widths(self) -> list[int]:
        return [p.width for p in self.points]

    def distance_slope(self) -> Slope:
        return fit_power_law(self.widths, [p.distance for p in self.points], [p.distance_err for p in self.points])

    def ntk_slope(self) -> Slope:
        return fit_power_law(self.widths, [p.ntk_movement[0] for p in self.points],
                             [p.ntk_movement[1] for p in self.points])

    def feature_slope(self, layer: int = -1) -> Slope:
        return fit_power_law(self.widths, [p.feature_movement[layer][0] for p in self.points],
                             [p.feature_movement[layer][1] for p in self.points])


def width_scan(spec: Architecture, widths: Sequence[int], x_train, y_train, x_test, config: TrainConfig, *,
               progress: Optional[Callable[[float], None]] = None) -> LazyScan:
    """Train ``config.n_networks`` networks of ``spec.with_width(N)`` for every N in ``widths`` (same data,
    steps and rates) and compare each with the frozen-NTK prediction (:func:`frozen_ntk_comparison`).

    Width N's ensemble is initialized from its own seed, derived from (``config.seed``, N) by
    ``numpy.random.SeedSequence``, so that the widths are independent samples (with one seed the counter
    streams would share first-layer neurons between widths and correlate their errors).

    ``progress(fraction)`` is called with the fraction of network-steps done (work ∝ width is assumed).
    """
    widths = [int(w) for w in widths]
    check(len(widths) >= 2 and all(w >= 1 for w in widths), "widths", widths, "at least two widths >= 1")
    total = float(sum(widths))
    done = 0.0
    points = []
    for w in widths:
        cb = None
        if progress is not None:
            cb = lambda k, tot, w=w, base=done: progress((base + w * k / max(tot, 1)) / total)  # noqa: E731
        seed = int(np.random.SeedSequence(entropy=config.seed, spawn_key=(w,)).generate_state(1)[0] >> 1)
        res = train(spec.with_width(w), x_train, y_train, replace(config, seed=seed), x_test=x_test, progress=cb)
        points.append(frozen_ntk_comparison(res))
        done += w
        if progress is not None:
            progress(done / total)
    return LazyScan(spec, tuple(points))
