"""Lazy training vs feature learning (PHYSICS.md §7–8): real ensembles of Erf-nets trained by full-batch
gradient descent in the NTK parameterization and in μP, against the frozen infinite-width NTK.

(a) NTK parameterization: trained functions converge to the frozen-NTK prediction
    φ^lin = φ_0 + Θ(x,X)Θ^{-1}E_k(Y − φ_0(X)) (Jacot et al. arXiv:1806.07572; Lee et al. arXiv:1902.06720); per
    network the distance falls like N^{-1/2} (the empirical NTK fluctuates by O(N^{-1/2}) around Θ_∞), and the
    ensemble mean and std agree with μ_k, Σ_k.
(b) NTK parameterization: the NTK and the feature kernels move by O(1/N) at fixed training time (Dyer &
    Gur-Ari arXiv:1909.11304; Lee et al.'s O(N^{-1/2}) is an upper bound).
(c) μP (Yang & Hu arXiv:2011.14522): the NTK and the features move by O(1) at every width — feature learning.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..dynamics.lazy import LazyScan, width_scan
from ..dynamics.training import TrainConfig
from ..spec import Parameterization, erf_net
from ._base import Check, ExperimentResult, Figure, Progress, Table, pyplot, register

__all__ = ["LazyVsFeature"]


@register("lazy-vs-feature")
@dataclass(frozen=True)
class LazyVsFeature:
    """Width scans of Erf-net ensembles (GD on y = sin(2x), 8 points) in NTK parameterization and μP."""

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    n_networks: int = 64
    steps: int = 100
    lr: float = 0.5
    n_train: int = 8
    n_test: int = 41
    seed: int = 0
    distance_tolerance: float = 0.15  # |slope + 1/2|: 3 × the fit's standard error (≈ 0.045) at 64 networks
    movement_tolerance: float = 0.2  # |slope + 1|: 3 σ (≈ 0.04) + finite-width curvature (≈ 0.07 at N ≤ 1024)
    mup_tolerance: float = 0.1  # |slope| under μP: > 10 σ of the fit (≈ 0.003–0.009), ≪ the lazy slopes
    z_threshold: float = 4.0
    threads: int = 1  # torch threads while training: tiny per-op work, vectorized over networks (TrainConfig)
    name: str = "lazy-vs-feature"
    title: str = "Lazy training vs feature learning: trained ensembles against the frozen NTK"

    def _task(self):
        x = np.linspace(-1, 1, self.n_train)[:, None]
        xt = np.linspace(-2, 2, self.n_test)[:, None]
        return x, np.sin(2 * x[:, 0]), xt

    def _checks(self, lazy: LazyScan, mup: LazyScan) -> list[Check]:
        d, ntk, feat = lazy.distance_slope(), lazy.ntk_slope(), lazy.feature_slope()
        m_ntk, m_feat = mup.ntk_slope(), mup.feature_slope()
        last = lazy.points[-1]
        fT = last.result.test_predictions[-1]
        s = fT.std(0)
        se = s / math.sqrt(2 * (fT.shape[0] - 1))
        excess = float((((s - last.prediction.std).abs() - last.std_slack) / se).max())
        zmax = float(last.z_mean.abs().max())
        top = mup.points[-1]
        n = lazy.widths[-1]
        return [
            Check("(a) NTK param: distance to frozen-NTK prediction ∝ N^slope", d.slope,
                  f"|slope + 1/2| < {self.distance_tolerance}", abs(d.slope + 0.5) < self.distance_tolerance,
                  f"slope {d}, reduced χ² {d.chi2_dof:.2f}; widths {lazy.widths}"),
            Check(f"(a) N = {n}: ensemble mean = frozen-NTK μ_T", zmax, f"max|z| < {self.z_threshold:g}",
                  zmax < self.z_threshold, f"{len(last.z_mean)} test inputs, {fT.shape[0]} networks"),
            Check(f"(a) N = {n}: ensemble std = sqrt Σ_T", excess,
                  f"max (|Δstd| − finite-width slack)/stderr < {self.z_threshold:g}", excess < self.z_threshold,
                  "slack = rms over networks of φ − φ^lin (triangle inequality)"),
            Check("(b) NTK param: NTK movement ∝ N^slope", ntk.slope, f"|slope + 1| < {self.movement_tolerance}",
                  abs(ntk.slope + 1) < self.movement_tolerance,
                  f"slope {ntk}; O(1/N) (arXiv:1909.11304), faster than the O(N^-1/2) bound"),
            Check("(b) NTK param: feature-kernel movement ∝ N^slope", feat.slope,
                  f"|slope + 1| < {self.movement_tolerance}", abs(feat.slope + 1) < self.movement_tolerance,
                  f"slope {feat}"),
            Check("(c) μP: NTK movement width-independent", m_ntk.slope, f"|slope| < {self.mup_tolerance}",
                  abs(m_ntk.slope) < self.mup_tolerance, f"slope {m_ntk}"),
            Check(f"(c) μP: NTK movement O(1) at N = {n}", top.ntk_movement[0], "> 0.1",
                  top.ntk_movement[0] > 0.1, f"{top.ntk_movement[0]:.3f} ± {top.ntk_movement[1]:.1g} "
                                               f"(NTK param: {last.ntk_movement[0]:.2g})"),
            Check("(c) μP: feature movement width-independent and O(1)", m_feat.slope,
                  f"|slope| < {self.mup_tolerance} and value > 0.1",
                  abs(m_feat.slope) < self.mup_tolerance and top.feature_movement[-1][0] > 0.1,
                  f"slope {m_feat}, value {top.feature_movement[-1][0]:.3f}")]

    def run(self, progress: Progress = None) -> ExperimentResult:
        t0 = time.perf_counter()
        x, y, xt = self._task()
        cfg = TrainConfig(steps=self.steps, lr=self.lr, n_networks=self.n_networks, seed=self.seed,
                          threads=self.threads)
        scans = {}
        for k, p in enumerate(("ntk", "mup")):
            spec = replace(erf_net(self.widths[0]), parameterization=Parameterization(p))
            cb = None if progress is None else (lambda f, k=k: progress((k + f) / 2))
            scans[p] = width_scan(spec, self.widths, x, y, xt, cfg, progress=cb)
        lazy, mup = scans["ntk"], scans["mup"]
        checks = self._checks(lazy, mup)
        figures = [self._scaling_figure(lazy, mup), self._function_figure(lazy, mup, x, y, xt)]
        rows = []
        for p, scan in scans.items():
            for q in scan.points:
                rows.append((p, q.width, f"{q.distance:.4g} ± {q.distance_err:.2g}", f"{q.mean_deviation:.3g}",
                             f"{float(q.z_mean.abs().max()):.2f}",
                             f"{q.ntk_movement[0]:.4g} ± {q.ntk_movement[1]:.2g}",
                             f"{q.feature_movement[0][0]:.4g} ± {q.feature_movement[0][1]:.2g}",
                             f"{float(q.result.final_loss.mean()):.3g}"))
        slopes = [(p, str(s.distance_slope()), str(s.ntk_slope()), str(s.feature_slope())) for p, s in scans.items()]
        arrays = {"widths": np.array(lazy.widths), "x_train": x, "y_train": y, "x_test": xt}
        for p, scan in scans.items():
            for key in ("distance", "distance_err", "mean_deviation", "mean_distance", "std_distance"):
                arrays[f"{p}_{key}"] = np.array([getattr(q, key) for q in scan.points])
            arrays[f"{p}_ntk_movement"] = np.array([q.ntk_movement for q in scan.points])
            arrays[f"{p}_feature_movement"] = np.array([q.feature_movement[0] for q in scan.points])
            last = scan.points[-1]
            arrays[f"{p}_trained_largest"] = last.result.test_predictions[-1].numpy()
            arrays[f"{p}_frozen_mean"] = last.prediction.mean.numpy()
            arrays[f"{p}_frozen_std"] = last.prediction.std.numpy()
        if progress:
            progress(1.0)
        return ExperimentResult(
            self.name, self.title,
            "Ensembles of one-hidden-layer Erf-nets are trained by full-batch gradient descent on 8 points of "
            "sin(2x). In the NTK parameterization each trained network approaches the frozen infinite-width NTK "
            "prediction φ_0 + Θ(x,X)Θ⁻¹E_T(Y − φ_0(X)) at distance ∝ N^-1/2, the ensemble mean and spread match "
            "μ_T and Σ_T, and the NTK and feature kernels barely move (∝ 1/N): lazy training. In μP the same "
            "networks move their NTK and features by O(1) at every width: feature learning.",
            asdict(self), checks=checks,
            tables=[Table("Per width: trained ensemble vs frozen NTK", ("param", "N", "distance D(N)",
                                                                       "mean deviation", "max|z| mean",
                                                                       "NTK movement", "feature movement",
                                                                       "final loss"), rows),
                    Table("Fitted exponents (value ∝ N^slope)", ("param", "distance", "NTK movement",
                                                                 "feature movement"), slopes)],
            figures=figures, arrays=arrays, wall_time_s=time.perf_counter() - t0)

    def _scaling_figure(self, lazy: LazyScan, mup: LazyScan) -> Figure:
        plt = pyplot()
        n = np.array(lazy.widths, dtype=float)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4))
        for scan, label, color in ((lazy, "NTK param", "C0"), (mup, "μP", "C3")):
            d = np.array([q.distance for q in scan.points])
            ax1.errorbar(n, d, yerr=[q.distance_err for q in scan.points], fmt="o-", color=color,
                         label=f"{label}: per-network distance (slope {scan.distance_slope()})")
        md = np.array([q.mean_deviation for q in lazy.points])
        ax1.plot(n, md, "s--", color="C0", alpha=0.6, ms=4, label="NTK param: ensemble-mean deviation")
        floor = np.array([q.distance for q in lazy.points]) / math.sqrt(self.n_networks)
        ax1.plot(n, floor, "-", color="C0", alpha=0.3, lw=3, label="its noise level D(N)/√M")
        d0 = lazy.points[0].distance
        ax1.plot(n, d0 * (n / n[0]) ** -0.5, "k:", label="∝ N^-1/2")
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_xlabel("width N")
        ax1.set_ylabel("RMS distance to frozen-NTK prediction")
        ax1.legend(fontsize=7)
        for scan, label, color in ((lazy, "NTK param", "C0"), (mup, "μP", "C3")):
            ax2.errorbar(n, [q.ntk_movement[0] for q in scan.points], yerr=[q.ntk_movement[1] for q in scan.points],
                         fmt="o-", color=color, label=f"{label}: NTK ({scan.ntk_slope()})")
            ax2.errorbar(n, [q.feature_movement[0][0] for q in scan.points],
                         yerr=[q.feature_movement[0][1] for q in scan.points], fmt="^--", color=color, alpha=0.7,
                         label=f"{label}: feature kernel ({scan.feature_slope()})")
        m0 = lazy.points[0].ntk_movement[0]
        ax2.plot(n, m0 * (n / n[0]) ** -1.0, "k:", label="∝ 1/N")
        ax2.plot(n, m0 * (n / n[0]) ** -0.5, "k-.", alpha=0.5, label="∝ N^-1/2 (Lee et al. bound)")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("width N")
        ax2.set_ylabel("‖K_T − K_0‖_F / ‖K_0‖_F")
        ax2.legend(fontsize=7)
        fig.tight_layout()
        return Figure.from_matplotlib(fig, "Distance to the frozen NTK and kernel movement vs width",
                                      "Left: RMS over networks and test inputs of trained − frozen-NTK prediction. "
                                      "Right: relative movement of the empirical NTK and feature kernel.")

    def _function_figure(self, lazy: LazyScan, mup: LazyScan, x, y, xt) -> Figure:
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 4), sharey=True)
        t = xt[:, 0]
        for ax, scan, label in ((axes[0], lazy, "NTK param"), (axes[1], mup, "μP")):
            last = scan.points[-1]
            fT = last.result.test_predictions[-1].numpy()
            mu, sd = last.prediction.mean.numpy(), last.prediction.std.numpy()
            ax.fill_between(t, mu - 2 * sd, mu + 2 * sd, color="0.85", label="frozen NTK: μ_T ± 2σ_T")
            ax.plot(t, mu, "k-", lw=1.5, label="frozen NTK μ_T")
            m, s = fT.mean(0), fT.std(0, ddof=1)
            ax.errorbar(t, m, yerr=2 * s, fmt="o", ms=3, color="C0" if scan is lazy else "C3", alpha=0.8,
                        label="trained ensemble: mean ± 2 std")
            for i in range(2):
                ax.plot(t, fT[i], "-", lw=0.8, color=f"C{i + 1}", alpha=0.8)
                ax.plot(t, last.linearized[i].numpy(), "--", lw=0.8, color=f"C{i + 1}", alpha=0.8)
            ax.plot(x[:, 0], y, "kx", ms=7, mew=2, label="training data")
            ax.set_title(f"{label}, N = {last.width}: trained (solid) vs frozen NTK (dashed)", fontsize=9)
            ax.set_xlabel("x")
            ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        return Figure.from_matplotlib(fig, "Trained vs frozen-NTK functions (1-D task)",
                                      "Two individual networks: trained (solid) and their own frozen-NTK "
                                      "prediction from the same initialization (dashed).")
