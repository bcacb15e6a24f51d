"""`nnft kan fit | plot | symbolic`: Kolmogorov–Arnold networks from the command line (PHYSICS.md §9).

Every option is validated before any work starts, and every output is written at the end through a
temporary file and a rename: invalid input is one line on stderr with exit code 2 and no files.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from .cli import _bar, app, err, out
from .errors import check, fail

kan_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Kolmogorov–Arnold networks: fit to data, plot every edge, read off a formula.")
app.add_typer(kan_app, name="kan")


def _ints(text: str, option: str, low: int, allowed: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise fail(option, text, allowed) from None
    check(len(vals) >= 1 and min(vals) >= low, option, text, allowed)
    return vals


def _floats(text: str, option: str, n: int, allowed: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise fail(option, text, allowed) from None
    check(len(vals) == n and all(math.isfinite(v) for v in vals), option, text, allowed)
    return vals


def _fit_plan(shape: str, G: int, k: int, grid_range: str, grid_schedule: Optional[str], steps: int,
              optimizer: str, lr: float, lamb: float, prune: Optional[float], update_grid_every: Optional[int]):
    widths = _ints(shape, "--shape", 1, "comma-separated widths >= 1 with at least two entries, e.g. 2,5,1")
    check(len(widths) >= 2, "--shape", shape, "at least two widths [n_0, ..., n_L], e.g. 2,5,1")
    check(G >= 1, "--G", G, "an integer >= 1 (grid intervals)")
    check(k >= 0, "--k", k, "an integer >= 0 (spline order)")
    lo, hi = _floats(grid_range, "--grid-range", 2, "two finite numbers a,b with a < b, e.g. -1,1")
    check(lo < hi, "--grid-range", grid_range, "two finite numbers a,b with a < b, e.g. -1,1")
    stages = [G] if grid_schedule is None else _ints(grid_schedule, "--grid-schedule", 1,
                                                     "comma-separated grid sizes >= 1, e.g. 5,10,20")
    check(all(b > a for a, b in zip(stages, stages[1:])), "--grid-schedule", grid_schedule,
          "strictly increasing grid sizes, e.g. 5,10,20")
    check(steps >= 1, "--steps", steps, "an integer >= 1 (optimizer steps per stage)")
    check(optimizer in ("adam", "lbfgs"), "--optimizer", optimizer, "adam or lbfgs")
    check(lr is None or (math.isfinite(lr) and lr > 0), "--lr", lr, "a finite number > 0")
    check(math.isfinite(lamb) and lamb >= 0, "--lamb", lamb, "a finite number >= 0 (sparsity strength λ)")
    check(prune is None or (math.isfinite(prune) and prune >= 0), "--prune", prune, "a number >= 0 (θ)")
    check(update_grid_every is None or update_grid_every >= 1, "--update-grid-every", update_grid_every,
          "an integer >= 1")
    return widths, (lo, hi), stages


def _rmse(model, x, y) -> float:
    import torch

    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))


@kan_app.command("fit")
def kan_fit(data: Path = typer.Option(..., "--data", help="CSV (header optional; targets last) or NPZ (x, y)."),
            shape: str = typer.Option("2,5,1", "--shape", help="Widths n_0,...,n_L, e.g. 2,5,1."),
            G: int = typer.Option(5, "--G", help="Grid intervals (the first stage's, unless --grid-schedule)."),
            k: int = typer.Option(3, "--k", help="Spline order."),
            grid_range: str = typer.Option("-1,1", "--grid-range", help="Initial grid range a,b."),
            grid_schedule: Optional[str] = typer.Option(None, "--grid-schedule",
                                                        help="Grid sizes of successive stages, e.g. 5,10,20: "
                                                             "train, extend the grid, train again."),
            steps: int = typer.Option(20, "--steps", help="Optimizer steps per stage (an L-BFGS step is up to "
                                                          "20 iterations)."),
            optimizer: str = typer.Option("lbfgs", "--optimizer", help="adam or lbfgs."),
            lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default: 1 for L-BFGS, "
                                                                  "0.01 for Adam)."),
            lamb: float = typer.Option(0.0, "--lamb", help="Sparsity strength λ (PHYSICS.md §9)."),
            prune: Optional[float] = typer.Option(None, "--prune", help="After training, remove the hidden nodes "
                                                  "whose largest incoming or outgoing |φ|_1 is <= THRESHOLD, "
                                                  "then retrain --steps."),
            update_grid_every: Optional[int] = typer.Option(None, "--update-grid-every",
                                                            help="Adapt the grids to the data every N steps."),
            y_cols: Optional[str] = typer.Option(None, "--y-cols", help="Target columns of a CSV (indices or "
                                                 "header names, comma separated; default: the last n_L)."),
            seed: int = typer.Option(0, "--seed"),
            out_dir: Path = typer.Option(Path("kan-model"), "--out", help="Checkpoint folder.")) -> None:
    """Fit a KAN to data (optionally sparsify, extend the grid in stages, prune) and save a checkpoint."""
    import torch

    from .expressivity.kan import KAN
    from .expressivity.kan.io import load_data, save_model
    from .expressivity.kan.prune import apply_plan, prune_plan
    from .expressivity.kan.sparsity import sparsity_penalty
    from .expressivity.kan.train import fit
    from .results import atomic_write_text

    widths, (lo, hi), stages = _fit_plan(shape, G, k, grid_range, grid_schedule, steps, optimizer, lr, lamb, prune,
                                         update_grid_every)
    xs, ys = load_data(data, d_in=widths[0], d_out=widths[-1], y_cols=None if y_cols is None else y_cols.split(","))
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    model = KAN(widths, G=stages[0], k=k, grid_range=(lo, hi), seed=seed)
    penalty = sparsity_penalty(lamb) if lamb > 0 else None
    n_stages = len(stages) + (prune is not None)
    rows, losses, t_start = [], [], time.perf_counter()
    with _bar(f"fitting KAN {widths}", n_stages * steps) as update:
        for s in range(n_stages):
            if s >= len(stages):   # the pruning stage
                plan = prune_plan(model, x, prune)
                model = apply_plan(model, plan)
                penalty, label = None, f"pruned θ={prune:g}"
            elif s > 0:
                model.extend_grid(stages[s], x)
                label = f"G={stages[s]}"
            else:
                label = f"G={stages[0]}"
            t0 = time.perf_counter()
            hist = fit(model, x, y, steps=steps, optimizer=optimizer, lr=lr, penalty=penalty, seed=seed + s,
                       update_grid_every=update_grid_every, progress=lambda f, s=s: update((s + f) * steps))
            check(not hist.diverged, "--lr", lr, f"a step size that does not diverge (stage {label}: the loss "
                  "became NaN or inf; lower --lr or --lamb)")
            stage_loss = np.asarray(hist.train_loss, dtype=np.float64)
            losses.append(stage_loss)
            rows.append((label, "x".join(map(str, model.shape)), model.G, len(stage_loss),
                         _rmse(model, x, y), time.perf_counter() - t0))
            update((s + 1) * steps)
    table = Table(title=f"KAN fit on {data.name}: {len(xs)} samples, {time.perf_counter() - t_start:.1f} s")
    for col in ("stage", "shape", "G", "steps", "train RMSE", "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for label, shp, g, n, rmse, sec in rows:
        table.add_row(label, shp, str(g), str(n), f"{rmse:.4e}", f"{sec:.1f}")
    out.print(table)
    if prune is not None:
        out.print(plan.summary())
    csv_text = "stage,shape,G,steps,train_rmse,seconds\n" + "".join(
        f"{label},{shp},{g},{n},{rmse:.10g},{sec:.3f}\n" for label, shp, g, n, rmse, sec in rows)
    meta = {"data": str(data), "n_samples": len(xs),
            "training": {"shape": widths, "k": k, "grid_range": [lo, hi], "grid_schedule": stages, "steps": steps,
                         "optimizer": optimizer, "lr": hist.lr, "lamb": lamb, "prune": prune,
                         "update_grid_every": update_grid_every, "seed": seed},
            "stages": [dict(zip(("stage", "shape", "G", "steps", "train_rmse", "seconds"), r)) for r in rows]}
    arrays = {"loss": np.concatenate(losses), "loss_stage": np.concatenate(
        [np.full(len(v), i) for i, v in enumerate(losses)])}
    js = save_model(model, out_dir, meta=meta, arrays=arrays)
    atomic_write_text(out_dir / "loss.csv", csv_text)
    out.print(f"wrote {js}, {out_dir / 'loss.csv'}")


def _model_and_data(model_dir: Path, data: Path, y_cols: Optional[str]):
    from .expressivity.kan.io import load_data, load_model

    model, meta = load_model(model_dir)
    xs, ys = load_data(data, d_in=model.shape[0], d_out=model.shape[-1],
                       y_cols=None if y_cols is None else y_cols.split(","))
    return model, meta, xs, ys


_OUT_SUFFIX = (".png", ".svg", ".pdf")


@kan_app.command("plot")
def kan_plot(model_dir: Path = typer.Option(..., "--model", help="Checkpoint folder from `nnft kan fit`."),
             data: Path = typer.Option(..., "--data", help="Inputs to draw the edges on (CSV or NPZ)."),
             out_path: Path = typer.Option(Path("kan.png"), "--out", help="Figure file (.png, .svg or .pdf)."),
             diagram: bool = typer.Option(False, "--diagram", help="A node diagram instead of a panel per edge."),
             beta: float = typer.Option(3.0, "--beta", help="Opacity tanh(β |φ|_1 / max |φ|_1)."),
             y_cols: Optional[str] = typer.Option(None, "--y-cols")) -> None:
    """Plot every edge function of a fitted KAN on the data (opacity ∝ importance)."""
    from .expressivity.kan.plot import plot_diagram, plot_edges, save_figure

    check(out_path.suffix.lower() in _OUT_SUFFIX, "--out", str(out_path), "a file name ending in .png, .svg or .pdf")
    check(math.isfinite(beta) and beta > 0, "--beta", beta, "a finite number > 0")
    model, _, xs, _ = _model_and_data(model_dir, data, y_cols)
    fig = (plot_diagram if diagram else plot_edges)(model, xs, beta=beta, title=f"KAN {list(model.shape)}")
    save_figure(fig, out_path)
    out.print(f"wrote {out_path}")


@kan_app.command("symbolic")
def kan_symbolic(model_dir: Path = typer.Option(..., "--model", help="Checkpoint folder from `nnft kan fit`."),
                 data: Path = typer.Option(..., "--data", help="The data (CSV or NPZ) the edges are fitted on."),
                 lib: Optional[str] = typer.Option(None, "--lib", help="Library, e.g. x,x^2,sin,exp (default: all)."),
                 r2: float = typer.Option(0.99, "--r2", help="Snap an edge only if its best fit has R² >= this."),
                 topk: int = typer.Option(3, "--topk", help="Candidates shown per edge."),
                 fine_tune_steps: int = typer.Option(50, "--fine-tune", help="L-BFGS steps on the snapped "
                                                     "affine parameters (0: none)."),
                 digits: int = typer.Option(4, "--digits", help="Significant digits of the displayed formula."),
                 out_path: Optional[Path] = typer.Option(None, "--out", help="Formula file (default: "
                                                         "MODEL/formula.txt)."),
                 save: Optional[Path] = typer.Option(None, "--save", help="Also save the snapped model here."),
                 y_cols: Optional[str] = typer.Option(None, "--y-cols")) -> None:
    """Suggest a symbolic function for every edge, snap those with R² >= --r2, and print the formula."""
    from .expressivity.kan.io import save_model
    from .expressivity.kan.symbolic import LIBRARY, auto_symbolic, fine_tune, formulas, round_floats
    from .results import atomic_write_text

    names = list(LIBRARY) if lib is None else [n.strip() for n in lib.split(",") if n.strip()]
    for n in names:
        check(n in LIBRARY, "--lib", n, ", ".join(LIBRARY))
    check(len(names) >= 1, "--lib", lib, "at least one of " + ", ".join(LIBRARY))
    check(math.isfinite(r2) and r2 <= 1, "--r2", r2, "a number <= 1")
    check(topk >= 1, "--topk", topk, "an integer >= 1")
    check(fine_tune_steps >= 0, "--fine-tune", fine_tune_steps, "an integer >= 0")
    check(digits >= 1, "--digits", digits, "an integer >= 1")
    model, _, xs, ys = _model_and_data(model_dir, data, y_cols)
    n_edges = sum(layer.in_dim * layer.out_dim for layer in model.layers)
    with _bar("fitting edges", n_edges) as update:
        report = auto_symbolic(model, xs, lib=names, r2_threshold=r2, topk=min(topk, len(names)),
                               progress=lambda f: update(round(f * n_edges)))
    table = Table(title=f"symbolic candidates (R² threshold {r2:g}); φ ≈ c f(a x + b) + d")
    for col in ("edge (l,i,j)", "status", "rank", "f", "R²", "a", "b", "c", "d"):
        table.add_column(col, justify="left" if col in ("edge (l,i,j)", "status", "f") else "right")
    for snap in report:
        edge = f"({snap.l},{snap.i},{snap.j})"
        if not snap.candidates:
            table.add_row(edge, snap.status, "", "", "", "", "", "", "")
        for rank, f in enumerate(snap.candidates):
            table.add_row(edge if rank == 0 else "", snap.status if rank == 0 else "", str(rank + 1), f.name,
                          f"{f.r2:.6f}", *(f"{v:.4g}" for v in (f.a, f.b, f.c, f.d)))
    out.print(table)
    kept = [(s.l, s.i, s.j) for s in report if s.status == "kept"]
    if kept:
        err.print(f"nnft: {len(kept)} edge(s) not snapped (best R² < {r2:g}): "
                  + ", ".join(str(e) for e in kept) + "; no formula written (lower --r2, widen --lib, or train "
                  "and prune more)", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if fine_tune_steps and any(s.status == "fixed" for s in report):
        history = fine_tune(model, xs, ys, steps=fine_tune_steps)
        out.print(f"fine-tuned the affine parameters: MSE {history[0]:.3e} -> {history[-1]:.3e}")
    exprs = formulas(model)
    lines = []
    for n, e in enumerate(exprs):
        name = f"y_{n + 1}" if len(exprs) > 1 else "y"
        out.print(f"{name} = {round_floats(e, digits)}", markup=False, highlight=False, soft_wrap=True)
        lines.append(f"{name} = {e}")
    folder = Path(model_dir) if Path(model_dir).is_dir() else Path(model_dir).parent
    target = out_path if out_path is not None else folder / "formula.txt"
    if save is not None:
        save_model(model, save, meta={"snapped_from": str(model_dir), "data": str(data), "formula": lines})
    atomic_write_text(target, "\n".join(lines) + "\n")
    out.print(f"wrote {target}" + (f", {save}" if save is not None else ""))
