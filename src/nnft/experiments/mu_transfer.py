"""μTransfer: the optimal learning rate is width-stable under μP and drifts under SP — ∝ n^{-3/2} for Adam on a
two-hidden-layer MLP (Tensor Programs V, arXiv:2203.03466; PHYSICS.md §8; exponent: nnft.dynamics.transfer)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..dynamics.transfer import lr_sweep, sp_optimum_exponent
from ._base import Check, ExperimentResult, Figure, Progress, Table, pyplot, register

__all__ = ["MuTransfer"]


@register("mu-transfer")
@dataclass(frozen=True)
class MuTransfer:
    """Adam, 40 full-batch steps on 32 regression points, ReLU MLP with 2 hidden layers of width 64..2048,
    base learning rates 2^-16..2^-4; μP anchored at width 64 (where it equals SP)."""

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    log2_lrs: tuple[float, ...] = tuple(float(g) for g in range(-16, -3))
    depth: int = 2
    steps: int = 40
    n_points: int = 32
    n_seeds: int = 1
    optimizer: str = "adam"
    seed: int = 0
    slope_tolerance: float = 0.35
    name: str = "mu-transfer"
    title: str = "μTransfer: optimal learning rate across widths, SP vs μP"

    def run(self, progress: Progress = None) -> ExperimentResult:
        plt = pyplot()
        t0 = time.perf_counter()
        kw = dict(widths=self.widths, log2_lrs=self.log2_lrs, steps=self.steps, optimizer=self.optimizer,
                  n_points=self.n_points, n_seeds=self.n_seeds, seed=self.seed, depth=self.depth)
        theory = sp_optimum_exponent(self.optimizer, self.depth)
        sweeps = {}
        for k, name in enumerate(("standard", "mup")):
            sweeps[name] = lr_sweep(name, **kw, progress=(lambda f, k=k: progress((k + f) / 2)) if progress else None)
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        cmap = plt.get_cmap("viridis")
        rows, arrays = [], {"widths": np.array(self.widths), "log2_lrs": np.array(self.log2_lrs)}
        optima = {}
        for ax, (name, sw) in zip(axes[:2], sweeps.items()):
            opt, edge = sw.optimum()
            optima[name] = (opt, edge)
            curves = sw.log_loss()
            for i, n in enumerate(sw.widths):
                color = cmap(i / max(1, len(sw.widths) - 1))
                ax.plot(sw.log2_lrs, curves[i], "o-", ms=3, color=color, label=f"n = {n}")
                ax.axvline(opt[i], color=color, lw=0.8, ls=":")
            ax.set_xlabel("log2 base learning rate")
            ax.set_ylabel("log training loss (last quarter of training)")
            ax.set_title({"standard": "SP", "mup": "μP"}[name], fontsize=10)
            ax.legend(fontsize=7)
            arrays[f"loss_{name}"] = sw.loss
            arrays[f"optimum_{name}"] = opt
        ax = axes[2]
        for name, style in (("standard", "o-"), ("mup", "s-")):
            ax.plot(np.log2(self.widths), optima[name][0], style, label={"standard": "SP", "mup": "μP"}[name])
        lw = np.log2(np.array(self.widths, dtype=float))
        ax.plot(lw, optima["standard"][0][0] + theory * (lw - lw[0]), ":", color="gray",
                label=f"SP theory ∝ n^{theory:g}")
        ax.set_xlabel("log2 width")
        ax.set_ylabel("log2 η*")
        ax.set_title("Optimal learning rate vs width", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        for i, n in enumerate(self.widths):
            rows.append((n, *(f"{optima[p][0][i]:+.2f}{' (edge)' if optima[p][1][i] else ''}" for p in optima),
                         *(f"{np.nanmin(sweeps[p].log_loss()[i]):.2f}" for p in optima)))
        sp, mup = sweeps["standard"], sweeps["mup"]
        tol = self.slope_tolerance
        checks = [
            Check("μP: optimal LR is width-stable (slope of log2 η* vs log2 n)", mup.drift_slope(),
                  f"|slope| < {tol:g}", abs(mup.drift_slope()) < tol,
                  f"Δ log2 η* = {mup.drift():+.2f} from n = {self.widths[0]} to {self.widths[-1]}"),
            Check(f"SP: optimal LR drifts ∝ n^{theory:g}", sp.drift_slope(), f"|slope − ({theory:g})| < {tol:g}",
                  abs(sp.drift_slope() - theory) < tol,
                  f"Δ log2 η* = {sp.drift():+.2f} from n = {self.widths[0]} to {self.widths[-1]}"),
            Check("μP: total drift below one grid step", abs(mup.drift()), "|Δ log2 η*| < 1", abs(mup.drift()) < 1,
                  ""),
            Check("no optimum at the edge of the LR grid", float(sum(e.sum() for _, e in optima.values())),
                  "0 edge optima", not any(e.any() for _, e in optima.values()), ""),
        ]
        if progress:
            progress(1.0)
        return ExperimentResult(
            self.name, self.title,
            "Training loss after a fixed budget against the base learning rate, one curve per width. Under μP the "
            "curves keep their minimum as the width grows (and the best loss improves), so a rate tuned at "
            "width 64 transfers; under SP the optimum moves to smaller rates, ∝ n^-3/2 for Adam with two hidden "
            "layers (one Adam step moves a hidden pre-activation by η n and the output by η n^3/2).",
            asdict(self), checks=checks,
            tables=[Table("Optimal log2 learning rate and best log loss per width",
                          ("width", "SP log2 η*", "μP log2 η*", "SP best log L", "μP best log L"), rows)],
            figures=[Figure.from_matplotlib(fig, "Loss vs learning rate per width; optimum vs width")],
            arrays=arrays, wall_time_s=time.perf_counter() - t0)
