"""`nnft uat`: universal approximation measured — error against width, with fitted rates (PHYSICS.md §9)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from .cli import _bar, app, out
from .errors import check, fail


def _parse_widths(text: str) -> list[int]:
    try:
        widths = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise fail("--widths", text, "comma-separated integers, e.g. 4,8,16,32") from None
    check(len(widths) >= 2 and all(w >= 1 for w in widths) and all(a < b for a, b in zip(widths, widths[1:])),
          "--widths", text, "at least two increasing integers >= 1, e.g. 4,8,16,32")
    return widths


def _figure(results: dict, title: str) -> bytes:
    from .experiments._base import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for (method, which), style in zip(((m, w) for m in results for w in ("sup", "l2")), ("o-", "s--", "^-", "v--")):
        res = results[method]
        err_ = getattr(res, which)
        line, = ax.plot(res.widths, np.median(err_, 0), style, ms=4,
                        label=f"{method} {'sup' if which == 'sup' else 'L²'} (median, min–max over seeds)")
        ax.fill_between(res.widths, err_.min(0), err_.max(0), color=line.get_color(), alpha=0.15, lw=0)
    n = np.array(next(iter(results.values())).widths, dtype=float)
    ref = np.median(next(iter(results.values())).l2[:, 0])
    ax.loglog(n, ref * (n / n[0]) ** -0.5, ":", color="gray", label="N^(-1/2) (Barron)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("error")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


@app.command()
def uat(target: str = typer.Option("smooth", help="smooth, abs, max or osc (nnft.expressivity.targets)."),
        d: int = typer.Option(1, help="Input dimension (the cube [-1, 1]^d)."),
        widths: str = typer.Option("4,8,16,32,64,128", help="Hidden widths N, comma separated, increasing."),
        method: str = typer.Option("random-features", help="random-features, trained or both."),
        activation: str = typer.Option("tanh", help="Hidden activation (any nnft activation name)."),
        sigma_w: float = typer.Option(10.0, "--sigma-w", help="First-layer weight scale (W ~ N(0, σ²/d))."),
        sigma_b: float = typer.Option(10.0, "--sigma-b", help="First-layer bias scale."),
        n_seeds: int = typer.Option(4, "--n-seeds", help="Networks per width (rates are fitted over seeds)."),
        seed: int = typer.Option(0),
        steps: int = typer.Option(1000, help="Training steps (method trained)."),
        optimizer: str = typer.Option("adam", help="adam or lbfgs (method trained)."),
        lr: Optional[float] = typer.Option(None, help="Learning rate (method trained; default 1e-2 for adam, "
                                                       "1 for lbfgs)."),
        rcond: float = typer.Option(1e-12, help="Singular-value cutoff of the random-features least squares."),
        ridge: float = typer.Option(0.0, help="Tikhonov ridge of the random-features least squares (relative)."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write a log-log PNG of error vs width."),
        out_stem: Optional[Path] = typer.Option(None, "--out", help="Write STEM.json + STEM.npz.")) -> None:
    """Universal approximation measured: sup and L² error of one-hidden-layer networks vs width N."""
    from .expressivity.targets import TARGETS, target as make_target
    from .expressivity.uat import RandomFeatures, Trained, approximation_errors, uat_spec
    from .results import atomic_write_bytes, write_result

    check(method in ("random-features", "trained", "both"), "--method", method, "random-features, trained or both")
    check(target in TARGETS, "--target", target, ", ".join(TARGETS))
    check(d >= 1, "--d", d, "an integer >= 1")
    ws = _parse_widths(widths)
    f = make_target(target, d)
    spec = uat_spec(d, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b)
    check(n_seeds >= 1, "--n-seeds", n_seeds, "an integer >= 1")
    check(seed >= 0, "--seed", seed, "an integer >= 0")
    methods = {}
    if method in ("random-features", "both"):
        methods["random-features"] = RandomFeatures(ridge=ridge, rcond=rcond)
    if method in ("trained", "both"):
        default_lr = 1.0 if optimizer == "lbfgs" else 1e-2
        methods["trained"] = Trained(steps=steps, optimizer=optimizer, lr=default_lr if lr is None else lr)
    if plot is not None:
        check(plot.suffix.lower() == ".png", "--plot", str(plot), "a .png path")
    results = {}
    t0 = time.perf_counter()
    with _bar(f"uat {f.name} d={d}", len(ws) * len(methods)) as update:
        for i, (name, m) in enumerate(methods.items()):
            results[name] = approximation_errors(f, ws, method=m, spec=spec, n_seeds=n_seeds, seed=seed,
                                                 progress=lambda done, total, i=i: update(i * len(ws) + done))
    wall = time.perf_counter() - t0
    table = Table(title=f"{f} — {activation}, σ_w = {sigma_w:g}, σ_b = {sigma_b:g}; median over {n_seeds} seeds")
    table.add_column("N", justify="right")
    for name in results:
        table.add_column(f"{name} sup", justify="right")
        table.add_column(f"{name} L²", justify="right")
    for j, w in enumerate(ws):
        row = [str(w)]
        for res in results.values():
            row += [f"{np.median(res.sup[:, j]):.3e}", f"{np.median(res.l2[:, j]):.3e}"]
        table.add_row(*row)
    out.print(table)
    rates = Table(title="Fitted rates: error ∝ N^slope (mean ± s.e. over seeds; widths with error > 1e-9)")
    for col in ("method", "error", "slope", "t = slope/s.e.", "widths fitted"):
        rates.add_column(col, justify="right")
    arrays: dict = {"widths": np.array(ws)}
    for name, res in results.items():
        for which in ("sup", "l2"):
            try:
                r = res.rate(which)
                rates.add_row(name, "sup" if which == "sup" else "L²", str(r), f"{r.t:.1f}",
                              ",".join(str(int(v)) for v in r.widths))
                arrays[f"{name}_{which}_slope"] = np.array([r.slope, r.stderr])
            except ValueError:
                rates.add_row(name, which, "—", "—", "fewer than 2 widths above the floor")
            arrays[f"{name}_{which}"] = getattr(res, which)
    out.print(rates)
    out.print("Barron (1993): for targets with ∫|ω||f̂(ω)|dω < ∞ the best L² error is O(N^(-1/2)); "
              "random features give an upper bound on the approximation error at each N.")
    if plot is not None:
        atomic_write_bytes(plot, _figure(results, str(f)))
        out.print(f"wrote {plot}")
    if out_stem is not None:
        meta = {"kind": "uat", "target": f.name, "d": d, "architecture": spec.to_config(), "seed": seed,
                "n_seeds": n_seeds, "methods": {k: vars(v) for k, v in methods.items()}, "wall_time_s": wall}
        js, _ = write_result(out_stem, meta, arrays)
        out.print(f"wrote {js}")
