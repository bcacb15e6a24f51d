"""`nnft ntk`: infinite-width NTK/NNGP regression and the empirical NTK of a sampled network."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from .cli import _bar, _parse_inputs, _read_table, _spec, app, out
from .errors import check

PresetOpt = typer.Option("erf-net", "--preset", help="erf-net, relu-net, gauss-net, cos-net or scalar-net.")
ConfigOpt = typer.Option(None, "--config", help="Architecture TOML/JSON file (overrides --preset).")


def _matrix_table(title: str, mat: np.ndarray, limit: int = 8) -> Table:
    table = Table(title=title)
    table.add_column("")
    m = min(mat.shape[1], limit)
    for j in range(m):
        table.add_column(f"x{j + 1}", justify="right")
    for i in range(min(mat.shape[0], limit)):
        table.add_row(f"x{i + 1}", *(f"{float(v):.6g}" for v in mat[i, :m]))
    return table


def _executor(executor: str, scheduler: Optional[str], workers: int):
    from .ensemble import DaskExecutor

    check(executor in ("inprocess", "dask"), "--executor", executor, "inprocess or dask")
    if executor == "inprocess":
        return None
    ex = DaskExecutor(scheduler, workers)
    if scheduler is not None:
        ex.ensure_reachable()
    return ex


@app.command()
def ntk(preset: str = PresetOpt, width: int = typer.Option(512, help="Hidden width of the sampled network."),
        d: int = typer.Option(1, help="Input dimension."), config: Optional[Path] = ConfigOpt,
        x: Optional[str] = typer.Option(None, "--x", help="Inputs for the kernel table: '0.1;0.5' or '0,1;1,0'."),
        x_file: Optional[Path] = typer.Option(None, "--x-file"),
        empirical: bool = typer.Option(False, "--empirical",
                                       help="Also sample one network (--seed) and show its empirical NTK."),
        seed: int = typer.Option(0, help="Seed of the sampled network (--empirical)."),
        train_file: Optional[Path] = typer.Option(None, "--train-file",
                                                  help="Training table (.csv/.npy/.txt): inputs, then y."),
        test_file: Optional[Path] = typer.Option(None, "--test-file",
                                                 help="Test table: inputs (and optionally y, for the error)."),
        kind: str = typer.Option("ntk", help="ntk (gradient flow) or nngp (posterior / readout flow)."),
        t: float = typer.Option(math.inf, "--t", help="Training time (inf: converged)."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Discrete GD steps instead of --t."),
        lr: float = typer.Option(1.0, "--lr", help="Learning rate η (loss averaged over the training set)."),
        noise: float = typer.Option(0.0, "--noise", help="NNGP noise variance / NTK ridge (t = inf only)."),
        tile: Optional[int] = typer.Option(None, "--tile", help="Kernel-matrix tile size (default: one block)."),
        executor: str = typer.Option("inprocess", help="inprocess or dask (tiles as Dask tasks)."),
        scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address (default: a LocalCluster)."),
        workers: int = typer.Option(2, help="LocalCluster workers."),
        out_stem: Optional[Path] = typer.Option(None, "--out", help="Write STEM.json + STEM.npz.")) -> None:
    """Infinite-width NTK (NTK parameterization): kernel table, empirical NTK of a sampled network, and
    NTK/NNGP regression on a training table."""
    from .dynamics.estimator import KernelRegressor
    from .results import write_result
    from .spec import NTK
    from .theory import kernels

    spec = replace(_spec(preset, width, d, config), parameterization=NTK)
    check(kind in ("ntk", "nngp"), "--kind", kind, "ntk or nngp")
    check(test_file is None or train_file is not None, "--test-file", str(test_file), "together with --train-file")
    regression = train_file is not None
    ex = _executor(executor, scheduler, workers)
    meta: dict = {"kind": "ntk", "architecture": spec.to_config()}
    arrays: dict = {}
    t0 = time.perf_counter()
    if regression:
        xtr, ytr = _read_table(train_file, "--train-file", spec.d_in, need_y=True)
        if test_file is not None:
            xte, yte = _read_table(test_file, "--test-file", spec.d_in, need_y=False)
        else:
            xte, yte = _parse_inputs(x, x_file, spec.d_in), None
        model = KernelRegressor(spec, kind=kind, t=t, steps=steps, lr=lr, noise=noise, tile=tile, executor=ex)
        with _bar(f"{kind} regression on {len(xtr)} points", 2) as update:
            model.fit(xtr, ytr)
            update(1)
            pred = model.predict_distribution(xte, cov=False)
            update(2)
        mean, std = pred.mean.numpy(), pred.std.numpy()
        when = f"{steps} GD steps" if steps is not None else f"t = {t:g}"
        table = Table(title=f"{pred.kind} of {spec} ({when}, lr = {lr:g}; jitter {pred.jitter:.2g}, "
                            f"cond ≈ {pred.condition_number:.3g})")
        for col in ("x", "mean", "± std") + (("y", "z") if yte is not None else ()):
            table.add_column(col, justify="right")
        for i in range(min(len(xte), 12)):
            row = [", ".join(f"{v:.3g}" for v in xte[i]), f"{mean[i]:.6g}", f"{std[i]:.3g}"]
            if yte is not None:
                row += [f"{yte[i]:.6g}", f"{(yte[i] - mean[i]) / max(std[i], 1e-300):.2f}"]
            table.add_row(*row)
        out.print(table)
        if len(xte) > 12:
            out.print(f"({len(xte) - 12} more test points in the result file)")
        if yte is not None:
            rmse = float(np.sqrt(np.mean((yte - mean) ** 2)))
            out.print(f"test RMSE = {rmse:.6g} over {len(yte)} points")
            meta["test_rmse"] = rmse
            arrays["y_test"] = yte
        arrays.update(x_train=xtr, y_train=ytr, x_test=xte, mean=mean, std=std)
        meta.update(regression={"kind": kind, "t": t, "steps": steps, "lr": lr, "noise": noise,
                                "jitter": pred.jitter, "condition_number": pred.condition_number})
    if not regression or empirical:
        xs = xte if (regression and x is None and x_file is None) else _parse_inputs(x, x_file, spec.d_in)
        k = kernels(spec, xs, ntk=True)
        theory = k.ntk.numpy()
        out.print(_matrix_table(f"infinite-width NTK Θ_∞(x, x') — {spec} ({k.method})", theory))
        arrays.update(inputs=xs, ntk=theory, nngp=k.nngp.numpy())
        if empirical:
            from .dynamics.ntk import MLPParams, mlp_ntk

            net = MLPParams.from_spec(spec, seed=seed)
            emp = mlp_ntk(net, xs).numpy()
            rel = float(np.linalg.norm(emp - theory) / np.linalg.norm(theory))
            out.print(_matrix_table(f"empirical NTK of network seed {seed}, hidden widths {spec.hidden_widths}", emp))
            out.print(f"‖Θ_emp − Θ_∞‖_F / ‖Θ_∞‖_F = {rel:.4g}  (falls like width^(-1/2))")
            arrays["empirical_ntk"] = emp
            meta.update(empirical={"seed": seed, "relative_frobenius_difference": rel})
    meta["wall_time_s"] = time.perf_counter() - t0
    if out_stem is not None:
        js, _ = write_result(out_stem, meta, arrays)
        out.print(f"wrote {js}")
