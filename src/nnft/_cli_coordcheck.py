"""`nnft coordcheck`: the coordinate check of PHYSICS.md §8 (nnft.dynamics.coordcheck) on the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.table import Table

from .cli import _bar, app, out
from .errors import check, fail

__all__ = ["coordcheck"]


def _parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise fail("--widths", text, "comma-separated integers, e.g. 64,128,256,512") from None
    check(len(widths) >= 2 and all(w >= 1 for w in widths) and len(set(widths)) == len(widths), "--widths", text,
          ">= 2 distinct integer widths >= 1, e.g. 64,128,256,512")
    return widths


def _figure(path: Path, results: list) -> None:
    from .experiments._base import pyplot
    from .results import atomic_path

    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, cc in zip(axes[0], results):
        slopes, mean = cc.slopes("delta").slope, cc.mean("delta")
        for j, layer in enumerate(cc.layers):
            ax.loglog(cc.widths, mean[:, j], "o-", label=f"{layer} (slope {slopes[j]:+.2f})")
        ax.set_title(f"{cc.parameterization}, {cc.optimizer}, {cc.steps} step(s)", fontsize=9)
        ax.set_xlabel("width n")
        ax.set_ylabel("mean |h_t − h_0|")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


@app.command()
def coordcheck(param: List[str] = typer.Option(["standard", "ntk", "mup"], "--param",
                                               help="standard, ntk, mup or mean_field (repeat for several)."),
               widths: str = typer.Option("64,128,256,512,1024", "--widths", help="Comma-separated widths."),
               steps: int = typer.Option(3, "--steps", help="Optimizer steps (1-5 is usual)."),
               optimizer: str = typer.Option("sgd", "--optimizer", help="sgd or adam."),
               lr: Optional[float] = typer.Option(None, "--lr",
                                                  help="Base learning rate (default 0.01 SGD, 1e-3 Adam)."),
               seed: int = typer.Option(0, "--seed"),
               seeds: int = typer.Option(4, "--seeds", help="Networks per width (slopes get seed-to-seed errors)."),
               depth: int = typer.Option(2, "--depth", help="Hidden layers of the ReLU MLP."),
               base_width: Optional[int] = typer.Option(None, "--base-width",
                                                        help="μP / mean-field base width (default: smallest width)."),
               zero_readout: bool = typer.Option(False, "--zero-readout", help="Zero-initialise the readout."),
               out_stem: Optional[Path] = typer.Option(None, "--out", help="Write STEM.json + STEM.npz."),
               plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of |Δh| vs width.")) -> None:
    """Coordinate check: per-layer mean |h_t − h_0| vs width and its log–log slope (flat under μP)."""
    from .dynamics.coordcheck import coord_check, expected_delta_slopes
    from .results import write_result
    from .spec import Parameterization

    ws = _parse_widths(widths)
    check(optimizer in ("sgd", "adam"), "--optimizer", optimizer, "sgd or adam")
    check(1 <= steps <= 100, "--steps", steps, "an integer in [1, 100]")
    check(1 <= seeds <= 1000, "--seeds", seeds, "an integer in [1, 1000]")
    check(1 <= depth <= 16, "--depth", depth, "an integer in [1, 16]")
    check(base_width is None or base_width >= 1, "--base-width", base_width, "an integer >= 1")
    rate = lr if lr is not None else (0.01 if optimizer == "sgd" else 1e-3)
    check(bool(np.isfinite(rate)) and rate > 0, "--lr", lr, "a finite number > 0")
    check(len(param) >= 1, "--param", param, "at least one parameterization")
    params = []
    for name in param:
        try:
            params.append(Parameterization(name))
        except ValueError:
            raise fail("--param", name, "standard, ntk, mup or mean_field") from None
    check(out_stem is None or out_stem.parent.exists(), "--out", str(out_stem), "a path in an existing folder")
    check(plot is None or plot.parent.exists(), "--plot", str(plot), "a path in an existing folder")
    t0 = time.perf_counter()
    results = []
    with _bar("coordinate check", len(params)) as update:
        for k, p in enumerate(params):
            results.append(coord_check(p, widths=ws, steps=steps, optimizer=optimizer, lr=rate, n_seeds=seeds,
                                       seed=seed, depth=depth, base_width=base_width, zero_readout=zero_readout,
                                       progress=lambda f, k=k: update(k + f)))
    table = Table(title=f"log–log slope of mean |h_t − h_0| vs width ({optimizer}, lr {rate:g}, {steps} steps, "
                        f"widths {ws[0]}..{ws[-1]}, {seeds} seeds)")
    table.add_column("parameterization")
    for layer in results[0].layers:
        table.add_column(layer, justify="right")
    table.add_column("theory (SGD)", justify="right")
    for cc in results:
        s = cc.slopes("delta")
        theory = expected_delta_slopes(cc.parameterization.split("(")[0], len(cc.layers))
        cells = [f"{a:+.3f} ± {e:.3f}" if np.isfinite(e) else f"{a:+.3f}" for a, e in zip(s.slope, s.stderr)]
        table.add_row(cc.parameterization, *cells, "grows" if theory is None else ", ".join(f"{v:+g}" for v in theory))
    out.print(table)
    if plot is not None:
        _figure(plot, results)
        out.print(f"wrote {plot}")
    if out_stem is not None:
        arrays = {"widths": np.array(ws)}
        for cc in results:
            arrays[f"{cc.parameterization}_size"] = cc.size
            arrays[f"{cc.parameterization}_delta"] = cc.delta
            arrays[f"{cc.parameterization}_slopes"] = cc.slopes("delta").slope
        meta = {"kind": "coordcheck", "parameterizations": [c.parameterization for c in results], "widths": list(ws),
                "steps": steps, "optimizer": optimizer, "lr": rate, "seed": seed, "seeds": seeds, "depth": depth,
                "zero_readout": zero_readout, "layers": list(results[0].layers),
                "wall_time_s": time.perf_counter() - t0}
        js, _ = write_result(out_stem, meta, arrays)
        out.print(f"wrote {js}")
