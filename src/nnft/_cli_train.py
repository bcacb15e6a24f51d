"""`nnft train`: train an ensemble of networks from a preset or config and compare it with the frozen NTK."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from .cli import _bar, _read_table, _spec, app, out  # noqa: F401
from .errors import ConfigError, check

_N_TRAIN, _N_TEST = 8, 17


def _toy_task(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The built-in task: y = sin(2t) at points x = t (1, ..., 1)/√d, t ∈ [−1, 1] (train, 8 points) and
    t ∈ [−2, 2] (test, 17 points)."""
    direction = np.ones(d) / math.sqrt(d)
    t_tr, t_te = np.linspace(-1, 1, _N_TRAIN), np.linspace(-2, 2, _N_TEST)
    return t_tr[:, None] * direction, np.sin(2 * t_tr), t_te[:, None] * direction, np.sin(2 * t_te)


def _auto_lr(spec, x: np.ndarray, seed: int, init_chunk: int) -> float:
    """|D| / λ_max(Θ_0) over the first networks' empirical NTKs: half the linear stability limit of GD."""
    import torch

    from .dynamics.training import init_networks

    net = init_networks(spec, 0, min(4, init_chunk), seed=seed, init_chunk=init_chunk, dtype=torch.float64)
    lam = torch.linalg.eigvalsh(net.ntk(torch.as_tensor(x))).max()
    return float(x.shape[0] / lam)


def _fmt(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return "nan (diverged)"
    err = v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else float("nan")
    return f"{v.mean():.4g} ± {err:.2g}"


@app.command()
def train(preset: str = typer.Option("erf-net", "--preset", help="erf-net, relu-net, gauss-net or cos-net."),
          width: int = typer.Option(256, help="Hidden width."), d: int = typer.Option(1, help="Input dimension."),
          config: Optional[Path] = typer.Option(None, "--config", help="Architecture TOML/JSON (overrides --preset)."),
          param: Optional[str] = typer.Option(None, "--param",
                                              help="standard, ntk, mean_field or mup (default: the spec's)."),
          n_networks: int = typer.Option(16, "--n-networks"), steps: int = typer.Option(100),
          lr: Optional[float] = typer.Option(None, help="Base learning rate (default: |D|/λ_max(Θ_0) for gd/sgd, "
                                                        "0.01 for adam)."),
          optimizer: str = typer.Option("gd", help="gd (full batch), sgd (minibatches) or adam."),
          batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Minibatch size (sgd, adam)."),
          seed: int = typer.Option(0, help="Seed of the initializations."),
          data_seed: int = typer.Option(0, "--data-seed", help="Seed of the minibatch order."),
          dtype: str = typer.Option("float32", help="float32 or float64."),
          threads: Optional[int] = typer.Option(None, help="torch threads while training (default: torch's; "
                                                           "1 is fastest for small networks on a busy machine)."),
          train_file: Optional[Path] = typer.Option(None, "--train-file",
                                                    help="Training table (.csv/.npy/.txt): inputs, then y."),
          test_file: Optional[Path] = typer.Option(None, "--test-file", help="Test table: inputs, then y."),
          out_stem: Optional[Path] = typer.Option(None, "--out", help="Write STEM.json + STEM.npz.")) -> None:
    """Train an ensemble (vectorized over networks) and compare it with the frozen infinite-width NTK."""
    import torch

    from .dynamics.lazy import frozen_ntk_comparison
    from .dynamics.training import TrainConfig, train as train_ensemble
    from .results import write_result
    from .spec import PARAMETERIZATIONS, Parameterization
    from .theory import kernels

    spec = _spec(preset, width, d, config)
    if param is not None:
        check(param in PARAMETERIZATIONS, "--param", param, ", ".join(PARAMETERIZATIONS))
        spec = replace(spec, parameterization=Parameterization(param))
    check(optimizer in ("gd", "sgd", "adam"), "--optimizer", optimizer, "gd, sgd or adam")
    check(steps >= 0, "--steps", steps, "an integer >= 0")
    check(n_networks >= 1, "--n-networks", n_networks, "an integer >= 1")
    if train_file is not None:
        x_tr, y_tr = _read_table(train_file, "--train-file", spec.d_in, need_y=True)
    if test_file is not None:
        x_te, y_te = _read_table(test_file, "--test-file", spec.d_in, need_y=True)
    if train_file is None:
        x_tr, y_tr, x_def, y_def = _toy_task(spec.d_in)
        if test_file is None:
            x_te, y_te = x_def, y_def
    elif test_file is None:
        x_te, y_te = x_tr, y_tr
    if lr is None:
        from .dynamics.batched_mlp import check_trainable

        check_trainable(spec)
        lr = 0.01 if optimizer == "adam" else _auto_lr(spec, x_tr, seed, 16)
        out.print(f"lr = {lr:.4g} ({'Adam default' if optimizer == 'adam' else 'auto: |D|/λ_max(Θ_0)'})")
    cfg = TrainConfig(steps=steps, lr=lr, optimizer=optimizer,
                      batch_size=None if optimizer == "gd" else batch_size, n_networks=n_networks, seed=seed,
                      data_seed=data_seed, dtype=dtype, threads=threads)
    if optimizer == "gd":  # the frozen-NTK prediction needs a stable rate: fail before training, not after
        lam_max = float(torch.linalg.eigvalsh(kernels(spec, x_tr, ntk=True).ntk).max())
        limit = 2 * x_tr.shape[0] / lam_max
        check(lr < limit, "--lr", lr, f"< 2|D|/λ_max(Θ_∞) = {limit:.4g} with --optimizer gd (gradient descent on "
                                      "the frozen NTK diverges beyond)")
    with _bar(f"training {n_networks} × {spec}", n_networks * max(steps, 1)) as update:
        res = train_ensemble(spec, x_tr, y_tr, cfg, x_test=x_te, progress=lambda done, total: update(done))
    arrays = res.arrays()
    table = Table(title=f"{spec}: {n_networks} networks, {optimizer}, {steps} steps, lr {lr:.4g} "
                        f"({res.wall_time_s:.1f} s)")
    table.add_column("quantity")
    table.add_column("mean ± stderr over networks", justify="right")
    table.add_row("final loss", _fmt(res.final_loss))
    test_mse = 0.5 * ((res.test_predictions[-1] - torch.as_tensor(y_te)) ** 2).mean(1)
    table.add_row("test loss ½⟨(φ − y)²⟩", _fmt(test_mse))
    table.add_row("NTK movement ‖Θ_T − Θ_0‖/‖Θ_0‖", _fmt(res.ntk_movement()))
    for l, mv in enumerate(res.feature_movement()):
        table.add_row(f"feature movement, layer {l + 1}", _fmt(mv))
    cmp, why = None, "gd only" if optimizer != "gd" else "diverged"
    if optimizer == "gd" and bool(torch.isfinite(res.test_predictions).all()):
        try:  # a diagnostic beside the training result: a degenerate kernel is reported, not fatal
            cmp = frozen_ntk_comparison(res)
        except ConfigError as exc:
            why = str(exc)
    if cmp is not None:
        table.add_row("distance to frozen-NTK prediction (RMS per network)", f"{cmp.distance:.4g} ± "
                                                                             f"{cmp.distance_err:.2g}")
        table.add_row("max |z| ensemble mean vs frozen NTK μ_T", f"{float(cmp.z_mean.abs().max()):.2f}")
        arrays.update(linearized=cmp.linearized.numpy(), frozen_mean=cmp.prediction.mean.numpy(),
                      frozen_std=cmp.prediction.std.numpy())
    else:
        table.add_row("distance to frozen-NTK prediction", f"n/a ({why})")
    out.print(table)
    if out_stem is not None:
        js, _ = write_result(out_stem, {**res.meta(), "lr": lr, "test_file": str(test_file) if test_file else None,
                                        "train_file": str(train_file) if train_file else None}, arrays)
        out.print(f"wrote {js}")
