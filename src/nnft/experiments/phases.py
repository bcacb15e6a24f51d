"""Phases in hyperparameter space: the order/chaos diagram of deep tanh, erf and ReLU MLPs in (σ_w², σ_b²)
(Poole et al. arXiv:1606.05340; Schoenholz et al. arXiv:1611.01232; PHYSICS.md §10), and the propagation of
input correlations through sampled deep networks on both sides of the critical line and on it.

Theory: the fixed point q*, χ_1 = σ_w² ∫Dz σ'(√q* z)², the critical line χ_1 = 1 and the correlation depth
scale ξ_c = −1/log χ_c (:mod:`nnft.dynamics.phases`). Experiment: c^l = K̄_12/sqrt(K̄_11 K̄_22) per layer,
averaged over neurons and networks (layerwise conditional sampling), with jackknife errors.

Thresholds. Finite width shifts the mean kernel at O(1/N) with a coefficient that grows with depth
(Roberts–Yaida–Hanin arXiv:2106.10165 ch. 4), so at N = 512, L = 30 the infinite-width c^l is off by up to
~0.01 — about 10σ at ReLU criticality — while the O(1/N)-corrected prediction K + K1/N leaves O(L²/N²)
≈ 3e-3 × O(1) coefficients, below the errors here. The checks therefore compare with the corrected
prediction: max over the L layers of |z| < 4 (jackknife over 16 chunks ~ t_15 per layer, 30 correlated
layers; |z| up to ~3 is routine), and the infinite-width max |z| is shown beside it. The decay fit is on the
layers where the predicted decay is already exponential (local rate within 5 % of 1/ξ_c) and compared, with
its jackknife error, to the same fit of the corrected prediction. The z is taken on the rate 1/ξ, which
is linear in the data (in 20 repeated runs its z had standard deviation 1.0, while ξ itself is skewed in
the chaotic phase); |z| < 4. ξ_c is shown beside it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..dynamics.phases import (PhaseDiagram, critical_sigma_w2, fit_depth_scale, measure_correlation,
                               phase_diagram, phase_spec)
from ._base import Check, ExperimentResult, Figure, Progress, Table, register, pyplot

__all__ = ["Phases", "DEFAULT_POINTS"]

# (activation, σ_w² or None = on the critical line at this σ_b², σ_b², c0)
DEFAULT_POINTS: tuple[tuple[str, float | None, float, float], ...] = (
    ("tanh", 1.3, 0.05, 0.3), ("tanh", None, 0.05, 0.3), ("tanh", 3.0, 0.05, 0.45),
    ("erf", 1.0, 0.05, 0.3), ("erf", None, 0.05, 0.3), ("erf", 2.5, 0.05, 0.45),
    ("relu", 1.5, 0.05, 0.3), ("relu", 2.0, 0.0, 0.3),
)


def _draw_diagram(ax, diag: PhaseDiagram, values: np.ndarray, label: str, cmap: str, norm, points) -> None:
    sw, sb = diag.sigma_w2, diag.sigma_b2
    shown = np.where(diag.phase == "exploding", np.nan, values)
    im = ax.pcolormesh(sw, sb, shown, cmap=cmap, norm=norm, shading="nearest")
    ax.figure.colorbar(im, ax=ax, label=label, fraction=0.046)
    if np.any(diag.phase == "exploding"):
        ax.contourf(sw, sb, (diag.phase == "exploding").astype(float), levels=[0.5, 1.5], colors="none",
                    hatches=["//"])
        ax.text(0.97, 0.95, "q* = ∞ (exploding)", transform=ax.transAxes, ha="right", va="top", fontsize=7)
    if diag.activation == "relu":
        ax.plot([2.0], [0.0], "ko", ms=7, clip_on=False, label="critical point (2, 0)")
    else:  # the line rises like a power of σ_b² at 0: draw it on a grid dense there
        fine = np.unique(np.concatenate([sb, np.geomspace(1e-5, max(sb.max(), 1e-4), 40)]))
        fine = fine[fine <= sb.max()]
        ax.plot(critical_sigma_w2(diag.activation, fine), fine, "k-", lw=1.5, label="χ_1 = 1 (critical)")
    for w2, b2 in points:
        ax.plot([w2], [b2], "w*", ms=10, mec="k")
    ax.set_xlabel("σ_w²")
    ax.set_ylabel("σ_b²")
    ax.set_title(diag.activation, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")


@register("phases")
@dataclass(frozen=True)
class Phases:
    """Order/chaos phase diagrams (χ_1, ξ_c) of tanh, erf and ReLU MLPs, and measured c^l vs prediction."""

    activations: tuple[str, ...] = ("tanh", "erf", "relu")
    sigma_w2_grid: tuple[float, float, int] = (0.05, 4.0, 60)
    sigma_b2_grid: tuple[float, float, int] = (0.0, 1.0, 41)
    points: tuple[tuple[str, float | None, float, float], ...] = DEFAULT_POINTS
    width: int = 512
    depth: int = 30
    n_networks: int = 400
    chunk_size: int = 25
    seed: int = 5
    z_threshold: float = 4.0
    name: str = "phases"
    title: str = "Phases in hyperparameter space: order, chaos and the critical line"

    def _resolved_points(self) -> list[tuple[str, float, float, float]]:
        return [(a, float(critical_sigma_w2(a, b2)) if w2 is None else w2, b2, c0) for a, w2, b2, c0 in self.points]

    def run(self, progress: Progress = None) -> ExperimentResult:
        plt = pyplot()
        t0 = time.perf_counter()
        points = self._resolved_points()
        sw = np.linspace(*self.sigma_w2_grid[:2], int(self.sigma_w2_grid[2]))
        sb = np.linspace(*self.sigma_b2_grid[:2], int(self.sigma_b2_grid[2]))
        n_steps = len(self.activations) + len(points)
        arrays: dict[str, np.ndarray] = {}
        diagrams = {}
        for i, act in enumerate(self.activations):
            diagrams[act] = phase_diagram(act, sw, sb)
            arrays.update({f"{act}_{k}": v for k, v in diagrams[act].arrays().items()})
            if progress:
                progress((i + 1) / n_steps)
        figures = self._diagram_figures(plt, diagrams, points)
        checks, rows, fit_rows, measured, fits = [], [], [], [], []
        for j, (act, w2, b2, c0) in enumerate(points):
            meas = measure_correlation(phase_spec(act, w2, b2, width=self.width, depth=self.depth), c0,
                                       n_networks=self.n_networks, seed=self.seed + 17 * j,
                                       chunk_size=self.chunk_size)
            measured.append(meas)
            p, label = meas.point, f"{act} ({w2:.4g}, {b2:g})"
            zc, zi = float(np.max(np.abs(meas.z_corrected))), float(np.max(np.abs(meas.z)))
            checks.append(Check(f"{label} {p.phase}: c^l = O(1/N)-corrected prediction", zc,
                                f"max|z| < {self.z_threshold:g} over {self.depth} layers", zc < self.z_threshold,
                                f"infinite-width max|z| = {zi:.2f}; N = {self.width}, {self.n_networks} networks"))
            rows.append((label, p.phase, f"{p.q_star:.4g}", f"{p.chi_1:.4f}", f"{p.c_star:.4f}", f"{p.xi_c:.3g}",
                         f"{c0:g}", f"{zi:.2f}", f"{zc:.2f}"))
            fit = fit_depth_scale(meas)
            fits.append(fit)
            if fit is not None:
                window = f"layers {fit.window[0]}–{fit.window[1]}"
                checks.append(Check(f"{label}: fitted 1/ξ = predicted decay rate, {window}",
                                    float(abs(fit.z)), f"|z| < {self.z_threshold:g}",
                                    bool(abs(fit.z) < self.z_threshold),
                                    f"ξ = {fit.xi:.3f} ± {fit.xi_stderr:.3f}, theory {fit.xi_theory:.3f}, "
                                    f"ξ_c = {fit.xi_c:.3f}"))
                fit_rows.append((label, p.phase, f"{fit.xi:.3f} ± {fit.xi_stderr:.3f}", f"{fit.xi_theory:.3f}",
                                 f"{fit.xi_c:.3f}", f"{fit.window[0]}–{fit.window[1]}", f"{fit.z:.2f}"))
            else:
                fit_rows.append((label, p.phase, "—", "—", f"{p.xi_c:.3g}", "—", "—"))
            tag = f"point{j}"
            arrays.update({f"{tag}_c": meas.c, f"{tag}_stderr": meas.stderr, f"{tag}_predicted": meas.predicted,
                           f"{tag}_corrected": meas.corrected, f"{tag}_hyper": np.array([w2, b2, c0])})
            if progress:
                progress((len(self.activations) + j + 1) / n_steps)
        figures.append(self._curves_figure(plt, measured, points))
        figures.append(self._decay_figure(plt, measured, points, fits))
        crit = {a: float(critical_sigma_w2(a, 0.05)) for a in self.activations if a != "relu"}
        return ExperimentResult(
            self.name, self.title,
            "Mean-field signal propagation: χ_1 = 1 separates the ordered phase (inputs become perfectly correlated, "
            "c* = 1) from the chaotic one (c* < 1); the correlation depth ξ_c diverges on the critical line "
            f"({', '.join(f'{a}: σ_w² = {v:.5f}' for a, v in crit.items())} at σ_b² = 0.05; "
            "ReLU: σ_w² = 2 at σ_b = 0). "
            f"Sampled MLPs (N = {self.width}, L = {self.depth}) follow the predicted c^l once the O(1/N) correction "
            "of the mean kernel is included.",
            asdict(self), checks=checks,
            tables=[Table("Measured points: theory and max |z| of c^l", ("point (σ_w², σ_b²)", "phase", "q*", "χ_1",
                                                                       "c*", "ξ_c", "c0", "max|z| N=∞",
                                                                       "max|z| O(1/N)"), rows),
                    Table("Depth scale: fitted decay of |c^l − c*| vs prediction",
                          ("point", "phase", "ξ fitted", "ξ theory (same layers)", "ξ_c (asymptotic)", "layers",
                           "z (on 1/ξ)"), fit_rows)],
            figures=figures, arrays=arrays, wall_time_s=time.perf_counter() - t0)

    def _diagram_figures(self, plt, diagrams, points) -> list[Figure]:
        out = []
        from matplotlib.colors import Normalize, TwoSlopeNorm

        for key, label, cmap, norm, hi, title in (
                ("chi_1", "log χ_1", "RdBu_r", TwoSlopeNorm(0.0, -1.5, 0.5), None,
                 "χ_1 (blue: ordered, red: chaotic) and the critical line"),
                ("xi_c", "log10 ξ_c", "viridis", Normalize(0.0, 2.5), 2.5, "correlation depth scale ξ_c")):
            fig, axes = plt.subplots(1, len(diagrams), figsize=(4.6 * len(diagrams), 3.8))
            axes = np.atleast_1d(axes)
            for ax, (act, diag) in zip(axes, diagrams.items()):
                vals = getattr(diag, key)
                with np.errstate(divide="ignore"):
                    shown = np.log(vals) if key == "chi_1" else np.log10(np.minimum(vals, 10 ** hi))
                _draw_diagram(ax, diag, shown, label, cmap, norm, [(w, b) for a, w, b, _ in points if a == act])
            fig.tight_layout()
            out.append(Figure.from_matplotlib(fig, f"Phase diagram: {title}",
                                              "Stars: the measured points. Hatched: no fixed point q* (ReLU). "
                                              "On σ_b = 0 below the critical point q* = 0 and ξ_c = ∞ (the "
                                              "correlation map stops contracting as the signal dies)."))
        return out

    def _curves_figure(self, plt, measured, points) -> Figure:
        cols = 4
        rows = math.ceil(len(measured) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
        for ax, meas, (act, w2, b2, c0) in zip(axes.ravel(), measured, points):
            ax.errorbar(meas.layers, meas.c, yerr=meas.stderr, fmt="o", ms=3, label="measured")
            ax.plot(meas.layers, meas.predicted, "-", lw=1, label="N = ∞")
            ax.plot(meas.layers, meas.corrected, "--", lw=1, label="with O(1/N)")
            if np.isfinite(meas.point.c_star):
                ax.axhline(meas.point.c_star, color="grey", lw=0.8, ls=":", label="c*")
            ax.set_title(f"{act} σ_w²={w2:.4g} σ_b²={b2:g} ({meas.point.phase})", fontsize=8)
            ax.set_xlabel("layer l")
        for ax in axes.ravel()[len(measured):]:
            ax.axis("off")
        axes[0, 0].set_ylabel("c^l")
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        return Figure.from_matplotlib(fig, "Correlation propagation c^l: measured vs predicted",
                                      f"N = {self.width}, {self.n_networks} networks per point, jackknife errors.")

    def _decay_figure(self, plt, measured, points, fits) -> Figure:
        chosen = [(m, p, f) for m, p, f in zip(measured, points, fits) if f is not None]
        fig, axes = plt.subplots(1, max(len(chosen), 1), figsize=(3.6 * max(len(chosen), 1), 3.2), squeeze=False)
        for ax, (meas, (act, w2, b2, _), fit) in zip(axes.ravel(), chosen):
            cs = meas.point.c_star
            ax.errorbar(meas.layers, np.abs(meas.c - cs), yerr=meas.stderr, fmt="o", ms=3, label="measured")
            ax.plot(meas.layers, np.abs(meas.corrected - cs), "--", lw=1, label="theory, O(1/N)")
            lo, hi = fit.window
            ll = np.arange(lo, hi + 1)
            k = lo - 1
            ax.plot(ll, np.abs(meas.c[k] - cs) * np.exp(-(ll - lo) / fit.xi), "k-", lw=1.5,
                    label=f"fit ξ = {fit.xi:.2f} ± {fit.xi_stderr:.2f}")
            ax.set_yscale("log")
            ax.set_title(f"{act} ({w2:g}, {b2:g}): ξ_c = {fit.xi_c:.2f}", fontsize=8)
            ax.set_xlabel("layer l")
            ax.legend(fontsize=6)
        axes[0, 0].set_ylabel("|c^l − c*|")
        fig.tight_layout()
        return Figure.from_matplotlib(fig, "Depth scale: exponential decay of |c^l − c*|",
                                      "Fit window: layers where the predicted decay is exponential to 5 % and the "
                                      "measured deviation exceeds 5 standard errors.")
