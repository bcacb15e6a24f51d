"""`nnft phases`: the order/chaos phase diagram of deep MLPs (nnft.dynamics.phases) on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from .cli import _bar, app, out
from .errors import check, fail

__all__ = ["phases"]


def _parse_grid(text: str, param: str, minimum: float) -> np.ndarray:
    """'START,STOP,N' → N evenly spaced values."""
    try:
        lo, hi, n = (v.strip() for v in text.split(","))
        lo, hi, n = float(lo), float(hi), int(n)
    except ValueError:
        raise fail(param, text, "START,STOP,N (e.g. 0.1,4,40)") from None
    check(np.isfinite(lo) and np.isfinite(hi) and minimum <= lo < hi and 2 <= n <= 2000, param, text,
          f"START,STOP,N with {minimum:g} <= START < STOP and 2 <= N <= 2000")
    return np.linspace(lo, hi, n)


def _parse_point(text: str) -> tuple[float, float]:
    try:
        w2, b2 = (float(v) for v in text.split(","))
    except ValueError:
        raise fail("--point", text, "SIGMA_W2,SIGMA_B2 (e.g. 1.5,0.05)") from None
    return w2, b2


def _print_point(p) -> None:
    table = Table(title=f"{p.activation} at σ_w² = {p.sigma_w2:g}, σ_b² = {p.sigma_b2:g}: {p.phase}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name, value in (("q*", p.q_star), ("χ_1", p.chi_1), ("c*", p.c_star), ("χ_c", p.chi_c),
                        ("ξ_q", p.xi_q), ("ξ_c", p.xi_c)):
        table.add_row(name, f"{value:.10g}")
    out.print(table)
    out.print(f"phase: {p.phase} — {p.status}")


def _point_figure(path: Path, meas) -> None:
    from .experiments._base import pyplot
    from .results import atomic_path

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(meas.layers, meas.c, yerr=meas.stderr, fmt="o", ms=3, label="measured")
    ax.plot(meas.layers, meas.predicted, "-", label="N = ∞")
    if meas.corrected is not None:
        ax.plot(meas.layers, meas.corrected, "--", label="with O(1/N)")
    ax.set_xlabel("layer l")
    ax.set_ylabel("c^l")
    p = meas.point
    ax.set_title(f"{p.activation} σ_w²={p.sigma_w2:g} σ_b²={p.sigma_b2:g} ({p.phase}), N={meas.width}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _diagram_figure(path: Path, diag) -> None:
    from .experiments._base import pyplot
    from .results import atomic_path

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    with np.errstate(divide="ignore"):
        vals = np.where(diag.phase == "exploding", np.nan, np.log(diag.chi_1))
    im = ax.pcolormesh(diag.sigma_w2, diag.sigma_b2, vals, cmap="RdBu_r", vmin=-1.5, vmax=1.5, shading="nearest")
    fig.colorbar(im, ax=ax, label="log χ_1")
    ok = np.isfinite(diag.critical_sigma_w2)
    ax.plot(diag.critical_sigma_w2[ok], diag.sigma_b2[ok], "k-", label="χ_1 = 1")
    ax.set_xlabel("σ_w²")
    ax.set_ylabel("σ_b²")
    ax.set_title(f"{diag.activation}: ordered (blue) / chaotic (red)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _measure(activation: str, w2: float, b2: float, c0: float, width: int, depth: int, n_networks: int,
             chunk_size: int, seed: int, finite_width: bool):
    from .dynamics.phases import _prepare, fit_depth_scale, measure_correlation, phase_spec

    spec = phase_spec(activation, w2, b2, width=width, depth=depth)
    _prepare(spec, c0, n_networks, seed, chunk_size, None)  # bad input fails here, before the progress bar
    with _bar(f"sampling {spec}", n_networks) as update:
        meas = measure_correlation(spec, c0, n_networks=n_networks, seed=seed, chunk_size=chunk_size,
                                   finite_width=finite_width, progress=lambda done, total: update(done))
    table = Table(title=f"c^l: {n_networks} networks of width {width} (jackknife errors)")
    cols = ["l", "measured", "± err", "N = ∞", "z"] + (["O(1/N)", "z"] if meas.corrected is not None else [])
    for col in cols:
        table.add_column(col, justify="right")
    for i, l in enumerate(meas.layers):
        row = [str(l), f"{meas.c[i]:.6f}", f"{meas.stderr[i]:.1e}", f"{meas.predicted[i]:.6f}", f"{meas.z[i]:.2f}"]
        if meas.corrected is not None:
            row += [f"{meas.corrected[i]:.6f}", f"{meas.z_corrected[i]:.2f}"]
        table.add_row(*row)
    out.print(table)
    line = f"max |z| vs N = ∞: {np.max(np.abs(meas.z)):.2f}"
    if meas.corrected is not None:
        line += f"; vs O(1/N)-corrected: {np.max(np.abs(meas.z_corrected)):.2f}"
    out.print(line)
    fit = fit_depth_scale(meas)
    if fit is None:
        out.print(f"depth scale: no exponential window (ξ_c = {meas.point.xi_c:.4g})")
    else:
        out.print(f"depth scale: fitted ξ = {fit.xi:.4g} ± {fit.xi_stderr:.2g} on layers {fit.window[0]}–"
                  f"{fit.window[1]}; theory on those layers {fit.xi_theory:.4g} (z on 1/ξ = {fit.z:.2f}); "
                  f"ξ_c = {fit.xi_c:.4g}")
    return meas, fit


@app.command()
def phases(activation: str = typer.Option("tanh", "--activation", help="tanh, erf or relu."),
           sigma_b2: float = typer.Option(0.05, "--sigma-b2", help="σ_b² at which to report the critical σ_w²."),
           sigma_w2_grid: str = typer.Option("0.05,4,60", "--sigma-w2-grid", help="Diagram grid: START,STOP,N."),
           sigma_b2_grid: str = typer.Option("0,1,31", "--sigma-b2-grid", help="Diagram grid: START,STOP,N."),
           point: Optional[str] = typer.Option(None, "--point", help="SIGMA_W2,SIGMA_B2: print q*, χ_1, c*, ξ_q, "
                                                                     "ξ_c and the phase there."),
           measure: bool = typer.Option(False, "--measure", help="With --point: sample deep MLPs and compare c^l."),
           c0: float = typer.Option(0.3, "--c0", help="First-layer correlation of the two inputs (--measure)."),
           width: int = typer.Option(512, "--width", help="Hidden width (--measure)."),
           depth: int = typer.Option(30, "--depth", help="Number of hidden layers (--measure)."),
           n_networks: int = typer.Option(400, "--n-networks", help="Networks to sample (--measure)."),
           chunk_size: int = typer.Option(25, "--chunk-size", help="Networks per seeded chunk (--measure)."),
           seed: int = typer.Option(0, "--seed"),
           finite_width: bool = typer.Option(True, "--finite-width/--no-finite-width",
                                             help="Also predict c^l at O(1/N) (--measure)."),
           plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: the diagram, or c^l with --measure."),
           out_stem: Optional[Path] = typer.Option(None, "--out", help="Write STEM.json + STEM.npz.")) -> None:
    """Order/chaos phases of deep MLPs in (σ_w², σ_b²): critical line, fixed points, depth scales."""
    from .dynamics.phases import PHASE_ACTIVATIONS, critical_sigma_w2, phase_diagram, phase_point
    from .results import write_result

    check(activation in PHASE_ACTIVATIONS, "--activation", activation, ", ".join(PHASE_ACTIVATIONS))
    check(not measure or point is not None, "--measure", True, "together with --point SIGMA_W2,SIGMA_B2")
    check(plot is None or plot.suffix == ".png", "--plot", str(plot), "a .png path")
    check(plot is None or point is None or measure, "--plot", str(plot),
          "with --measure (the c^l curves) or without --point (the diagram)")
    if point is not None:
        w2, b2 = _parse_point(point)
        p = phase_point(activation, w2, b2)
        _print_point(p)
        meta = {"kind": "phase-point", **{k: getattr(p, k) for k in ("activation", "sigma_w2", "sigma_b2", "q_star",
                                                                     "chi_1", "c_star", "chi_c", "xi_q", "xi_c",
                                                                     "phase", "status")}}
        arrays: dict[str, np.ndarray] = {}
        if measure:
            meas, fit = _measure(activation, w2, b2, c0, width, depth, n_networks, chunk_size, seed, finite_width)
            meta.update(kind="phase-measurement", c0=c0, q0=meas.q0, width=width, depth=depth,
                        n_networks=n_networks, chunk_size=chunk_size, seed=seed,
                        fit=None if fit is None else {"xi": fit.xi, "xi_stderr": fit.xi_stderr,
                                                      "xi_theory": fit.xi_theory, "window": list(fit.window)})
            arrays = {"layers": meas.layers, "c": meas.c, "stderr": meas.stderr, "predicted": meas.predicted,
                      "q": meas.q, "q_stderr": meas.q_stderr}
            if meas.corrected is not None:
                arrays["corrected"] = meas.corrected
            if plot is not None:
                _point_figure(plot, meas)
                out.print(f"wrote {plot}")
    else:
        sw = _parse_grid(sigma_w2_grid, "--sigma-w2-grid", 1e-12)
        sb = _parse_grid(sigma_b2_grid, "--sigma-b2-grid", 0.0)
        crit = float(critical_sigma_w2(activation, sigma_b2))
        diag = phase_diagram(activation, sw, sb)
        out.print(f"{activation}: critical σ_w² at σ_b² = {sigma_b2:g}: "
                  + (f"{crit:.10g}" if np.isfinite(crit) else "none (χ_1 = σ_w²/2 < 1 wherever q* is finite; "
                                                              "the critical point is σ_w² = 2, σ_b = 0)"))
        table = Table(title=f"{activation}: phases on {sw.size} × {sb.size} grid")
        for col in ("phase", "cells", "fraction"):
            table.add_column(col, justify="right")
        for name in ("ordered", "critical", "chaotic", "exploding"):
            count = int(np.sum(diag.phase == name))
            if count:
                table.add_row(name, str(count), f"{count / diag.phase.size:.3f}")
        out.print(table)
        meta = {"kind": "phase-diagram", "activation": activation, "sigma_b2": sigma_b2, "critical_sigma_w2": crit}
        arrays = diag.arrays()
        if plot is not None:
            _diagram_figure(plot, diag)
            out.print(f"wrote {plot}")
    if out_stem is not None:
        js, _ = write_result(out_stem, meta, arrays)
        out.print(f"wrote {js}")
