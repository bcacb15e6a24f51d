"""KANs in the statistics pillar: a random-initialised KAN is an ensemble like any other (arXiv:2404.19756;
PHYSICS.md §3, §4, §9). Measured G^(2) against the KAN NNGP kernel — exact for one layer and for a
two-layer Gaussian KAN at every width, the infinite-width recursion (Gauss–Hermite + piecewise
Gauss–Legendre quadrature) for deeper ones — and the connected 4-point function against width.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..compare import compare
from ..ensemble import EnsembleConfig
from ..expressivity.kan.ensemble import measure_kan
from ..expressivity.kan.kernel import kan_kernel, kan_two_point
from ..expressivity.kan.spec import KANSpec
from ._base import Check, ExperimentResult, Figure, Progress, Table, pyplot, register

__all__ = ["KANKernelExperiment", "weighted_loglog_slope"]


def weighted_loglog_slope(n: np.ndarray, y: np.ndarray, err: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares slope of log y on log n with σ_log y = err/y: (slope, standard error)."""
    lx, ly, w = np.log(n), np.log(y), (y / err) ** 2
    xm = (w * lx).sum() / w.sum()
    sxx = (w * (lx - xm) ** 2).sum()
    return float((w * (lx - xm) * ly).sum() / sxx), float(1 / math.sqrt(sxx))


def _slice_inputs(m: int) -> np.ndarray:
    """m points on the segment from (−1.4, 0.9) to (1.4, −0.5) in d = 2 (it leaves the grid [−1, 1]²)."""
    t = np.linspace(0.0, 1.0, m)[:, None]
    return (1 - t) * np.array([-1.4, 0.9]) + t * np.array([1.4, -0.5])


@register("kan-kernel")
@dataclass(frozen=True)
class KANKernelExperiment:
    """Gaussian KAN (β, c ~ N(0, 1), γ = 1, fan-in normalised; G = 5, k = 3 on [−1, 1]) in d = 2."""

    n_inputs: int = 6
    width_exact: int = 32
    deep_widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    four_point_widths: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    n_networks: int = 10000
    deep_budget: int = 320000  # networks × width for the deep ensembles (capped at 40000 networks)
    n_blocks: int = 20
    seed: int = 17
    z_threshold: float = 5.0
    name: str = "kan-kernel"
    title: str = "Random KANs: NNGP kernel vs ensembles, and the 1/N 4-point function"

    def _measure(self, spec: KANSpec, x: np.ndarray, n: int, seed: int, order: int, estimator: str = "readout"):
        return measure_kan(spec, x, EnsembleConfig(n_networks=n, chunk_size=n // self.n_blocks, n_blocks=self.n_blocks,
                                                   seed=seed, max_order=order, estimator=estimator, dtype="float64"))

    def run(self, progress: Progress = None) -> ExperimentResult:
        plt = pyplot()
        t0 = time.perf_counter()
        x = _slice_inputs(self.n_inputs)
        checks, rows, arrays = [], [], {"inputs": x}
        n_jobs = 2 + len(self.deep_widths) + len(self.four_point_widths)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress:
                progress(done / n_jobs)

        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        # (a) exact kernels: one layer, and a two-layer Gaussian KAN at finite width
        ax = axes[0]
        for j, spec in enumerate((KANSpec(shape=(2, 1)), KANSpec(shape=(2, self.width_exact, 1)))):
            # one layer: the readout estimator would return the kernel itself (no randomness left), so the
            # plain estimator samples the outputs
            meas = self._measure(spec, x, self.n_networks, self.seed + j, 2, "plain" if j == 0 else "readout")
            pred = kan_two_point(spec, x)
            c = compare(pred, meas.moments[2])
            g, e = meas.moments[2].full(), meas.moments[2].full("stderr")
            p = pred.full()
            ax.errorbar(np.arange(len(x)), g[0], yerr=e[0], fmt="o", ms=4, color=f"C{j}",
                        label=f"{spec}: measured G(x_0, x_t)")
            ax.plot(np.arange(len(x)), p[0], "-", color=f"C{j}", lw=1, label="exact kernel")
            checks.append(Check(f"{spec}: measured G^(2) = exact KAN kernel", c.max_abs_z,
                                f"max|z| < {self.z_threshold:g}", c.max_abs_z < self.z_threshold,
                                f"{len(c.z)} tuples, {self.n_networks} networks, {meas.config.estimator} estimator"))
            rows.append((str(spec), "exact", f"{c.max_abs_z:.2f}", f"{c.mean_m:.2e}", f"{c.mean_b:.2e}"))
            arrays[f"exact{j}_measured"], arrays[f"exact{j}_predicted"] = meas.moments[2].values, pred.values
            tick()
        ax.set_xlabel("input index t along the slice")
        ax.set_title("exact kernels (one layer; [2, N, 1] at N = %d)" % self.width_exact, fontsize=9)
        ax.legend(fontsize=6)
        # (b) deep KAN: signed deviation from the infinite-width recursion against width
        dev, dev_err, zmax = [], [], []
        for w in self.deep_widths:
            spec = KANSpec(shape=(2, w, w, 1))
            n_nets = min(40000, self.deep_budget // w) // self.n_blocks * self.n_blocks
            meas = self._measure(spec, x, n_nets, self.seed + 100 + w, 2)
            pred = kan_two_point(spec, x)
            c = compare(pred, meas.moments[2])
            # D = mean over tuples of (G_meas − K_rec)/K_rec; error: the mean relative standard error (the
            # tuples' errors are strongly correlated, so this is close to the error of D and not smaller)
            dev.append(float(np.mean((meas.moments[2].values - pred.values) / pred.values)))
            dev_err.append(float(np.mean(meas.moments[2].stderr / np.abs(pred.values))))
            zmax.append(c.max_abs_z)
            rows.append((str(spec), "N → ∞ recursion", f"{c.max_abs_z:.2f}", f"{c.mean_m:.2e}", f"{c.mean_b:.2e}"))
            tick()
        dw, dev, dev_err, zmax = np.array(self.deep_widths), np.array(dev), np.array(dev_err), np.array(zmax)
        arrays.update(deep_widths=dw, deep_deviation=dev, deep_deviation_err=dev_err, deep_zmax=zmax)
        ax = axes[1]
        ax.errorbar(dw, np.abs(dev), yerr=dev_err, fmt="o", ms=4, label="|D|: mean (G_meas − K_rec)/K_rec")
        ax.loglog(dw, dev_err, ":", label="its standard error")
        ax.loglog(dw, abs(dev[0]) * dw[0] / dw, "--", color="gray", label="∝ 1/N")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(dw, [str(int(w)) for w in dw])
        ax.minorticks_off()
        ax.set_xlabel("width N")
        ax.set_title("[2, N, N, 1]: G^(2) vs the N → ∞ recursion", fontsize=9)
        ax.legend(fontsize=6)
        sel = dev > 3 * dev_err
        if sel.sum() >= 2:
            slope, serr = weighted_loglog_slope(dw[sel], dev[sel], dev_err[sel])
            checks.append(Check("[2, N, N, 1]: deviation of G^(2) from the recursion falls like 1/N", slope,
                                f"|slope + 1| < max(3 s.e., 0.15) (s.e. = {serr:.3f})",
                                abs(slope + 1) < max(3 * serr, 0.15),
                                f"weighted fit over N = {list(map(int, dw[sel]))} (deviation > 3 s.e.)"))
        checks.append(Check(f"[2, N, N, 1] at N = {int(dw[0])}: finite-width deviation resolved", float(zmax[0]),
                            f"max|z| > {self.z_threshold:g}", bool(zmax[0] > self.z_threshold),
                            f"D = {dev[0]:.3f} ± {dev_err[0]:.3f}"))
        checks.append(Check(f"[2, N, N, 1] at N = {int(dw[-1])}: measured G^(2) = recursion", float(zmax[-1]),
                            f"max|z| < {self.z_threshold:g}", bool(zmax[-1] < self.z_threshold),
                            f"D = {dev[-1]:.4f} ± {dev_err[-1]:.4f}"))
        # (c) connected 4-point function of [2, N, 1] against width
        fw = np.array(self.four_point_widths)
        g4, g4e = [], []
        for w in fw:
            spec = KANSpec(shape=(2, int(w), 1))
            meas = self._measure(spec, x[:2], self.n_networks, self.seed + 200 + int(w), 4)
            conn = meas.connected[4]
            g4.append(conn.at(0, 0, 0, 0))
            g4e.append(conn.full("stderr")[0, 0, 0, 0])
            tick()
        g4, g4e = np.array(g4), np.array(g4e)
        slope, slope_err = weighted_loglog_slope(fw, g4, g4e)
        arrays.update(four_point_widths=fw, four_point=g4, four_point_stderr=g4e)
        ax = axes[2]
        ax.errorbar(fw, g4, yerr=g4e, fmt="o", ms=4, label="G_c^(4)(x_0, x_0, x_0, x_0), measured")
        ax.loglog(fw, g4[0] * fw[0] / fw, "--", color="gray", label="∝ 1/N")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(fw, [str(int(w)) for w in fw])
        ax.minorticks_off()
        ax.set_xlabel("width N")
        ax.set_title(f"[2, N, 1]: connected 4-point, slope {slope:.3f} ± {slope_err:.3f}", fontsize=9)
        ax.legend(fontsize=6)
        checks.append(Check("[2, N, 1]: connected 4-point function ∝ 1/N", slope,
                            f"|slope + 1| < 3 s.e. (s.e. = {slope_err:.3f})", abs(slope + 1) < 3 * slope_err,
                            f"weighted log–log fit, N = {list(map(int, fw))}, {self.n_networks} networks each"))
        fig.tight_layout()
        kk = kan_kernel(KANSpec(shape=(2, 4, 4, 1)), x)
        return ExperimentResult(
            self.name, self.title,
            "A KAN at random initialisation is a field ensemble like an MLP. One KAN layer sums independent "
            "edges, so its kernel is exact at any width; with Gaussian edges (β, c normal, γ fixed) the "
            "layer's outputs are Gaussian processes and the next layer's kernel is again exact at every width — "
            "no 1/N correction to G^(2), as for one hidden MLP layer. Deeper KANs approach the infinite-width "
            "recursion K^(l+1) = E_{N(0, K^(l))}[φ(u)φ(v)] with a deviation ∝ 1/N, and the connected 4-point "
            "function of [2, N, 1] falls exactly like 1/N: finite width = interactions, for KANs too. "
            f"Kernel quadrature: {kk.method}.",
            asdict(self), checks=checks,
            tables=[Table("Measured G^(2) vs KAN kernel", ("spec", "theory", "max|z|", "mean m_2", "background b_2"),
                          rows)],
            figures=[Figure.from_matplotlib(fig, "KAN kernel and 4-point function",
                                            "Inputs on a segment in d = 2 leaving the grid range; readout "
                                            "(Rao–Blackwell) estimator; error bars: jackknife over blocks.")],
            arrays=arrays, wall_time_s=time.perf_counter() - t0)
