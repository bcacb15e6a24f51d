"""The nnft command line: parse, call the library, print. Invalid input is one line on stderr, exit 2."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import click
import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .errors import ConfigError, check, fail

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Neural-network field theory: infinite-width theory beside sampled-network experiments.")
out = Console()
err = Console(stderr=True)


@contextmanager
def _bar(description: str, total: float) -> Iterator:
    """A rich progress bar on stderr; yields update(completed)."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)


def _parse_inputs(text: Optional[str], path: Optional[Path], d_in: int) -> np.ndarray:
    """--x "0.1,0.2;0.3,0.4" (points separated by ';', coordinates by ',') or --x-file (.npy or text)."""
    check(text is None or path is None, "--x/--x-file", "both", "one of them")
    if path is not None:
        check(path.exists(), "--x-file", str(path), "an existing .npy or whitespace-separated text file")
        try:
            arr = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
        except ValueError as exc:
            raise fail("--x-file", str(path), f"a numeric array ({exc})") from None
    elif text is not None:
        try:
            arr = np.array([[float(v) for v in pt.split(",")] for pt in text.split(";") if pt.strip()])
        except ValueError:
            raise fail("--x", text, "numbers: points separated by ';', coordinates by ','") from None
        if d_in == 1 and arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr.T
    else:
        base = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])
        arr = np.stack([base] * d_in, axis=1) / np.sqrt(d_in)
    arr = np.asarray(arr, dtype=np.float64)
    name = "--x-file" if path is not None else "--x"
    check(bool(np.all(np.isfinite(arr))), name, "non-finite values (NaN or inf)", "finite numbers")
    check(arr.ndim == 2 and arr.shape[1] == d_in, name, f"points of dimension {arr.shape[-1] if arr.ndim else 0}",
          f"points of dimension d = {d_in} (separate coordinates by ',')")
    return arr


def _read_table(path: Path, option: str, d_in: int, *, need_y: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Rows of a .npy / .csv / whitespace text file: d_in input columns, then y (required if need_y)."""
    check(path.exists(), option, str(path), "an existing .npy, .csv or whitespace-separated text file")
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
        arr = np.asarray(arr, dtype=np.float64)
    except (ValueError, OSError) as exc:
        raise fail(option, str(path), f"a numeric table ({type(exc).__name__})") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    allowed = f"{d_in + 1} columns (d = {d_in} inputs, then y)" + ("" if need_y else f" or {d_in} (inputs only)")
    ok_cols = (d_in + 1,) if need_y else (d_in, d_in + 1)
    check(arr.ndim == 2 and arr.shape[1] in ok_cols and arr.shape[0] >= 1, option,
          f"a table of shape {arr.shape}", allowed)
    check(bool(np.all(np.isfinite(arr))), option, "non-finite values (NaN or inf)", "finite numbers")
    if arr.shape[1] == d_in + 1:
        return arr[:, :d_in], arr[:, d_in]
    return arr, None


def _spec(preset: str, width: int, d: int, config: Optional[Path]):
    from .spec import PRESETS, Architecture

    if config is not None:
        return Architecture.load(config)
    check(preset in PRESETS, "--preset", preset, ", ".join(PRESETS))
    check(width >= 1, "--width", width, "an integer >= 1")
    check(d >= 1, "--d", d, "an integer >= 1")
    return PRESETS[preset](width, d)


PresetOpt = typer.Option("erf-net", "--preset", help="erf-net, relu-net, gauss-net, cos-net or scalar-net.")
ConfigOpt = typer.Option(None, "--config", help="Architecture TOML/JSON file (overrides --preset).")


@app.command()
def kernel(preset: str = PresetOpt, width: int = typer.Option(100, help="Hidden width (irrelevant at N = ∞)."),
           d: int = typer.Option(1, help="Input dimension."), config: Optional[Path] = ConfigOpt,
           x: Optional[str] = typer.Option(None, "--x", help="Inputs: '0.1;0.5' (d = 1) or '0,1;1,0'."),
           x_file: Optional[Path] = typer.Option(None, "--x-file"),
           ntk: bool = typer.Option(False, "--ntk", help="Also the infinite-width NTK (NTK parameterization)."),
           out_stem: Optional[Path] = typer.Option(None, "--out", help="Write STEM.json + STEM.npz.")) -> None:
    """Infinite-width NNGP kernel (and NTK) of a spec at a set of inputs."""
    from .results import write_result
    from .theory import kernels

    spec = _spec(preset, width, d, config)
    xs = _parse_inputs(x, x_file, spec.d_in)
    t0 = time.perf_counter()
    k = kernels(spec, xs, ntk=ntk)
    wall = time.perf_counter() - t0
    for name, mat in (("NNGP K(x, x')", k.nngp), ("NTK Θ(x, x')", k.ntk)):
        if mat is None:
            continue
        table = Table(title=f"{name} — {spec} ({k.method})")
        table.add_column("")
        for j in range(mat.shape[1]):
            table.add_column(f"x{j + 1}", justify="right")
        for i in range(mat.shape[0]):
            table.add_row(f"x{i + 1}", *(f"{float(v):.6g}" for v in mat[i]))
        out.print(table)
    if out_stem is not None:
        arrays = {"inputs": xs, "nngp": k.nngp.numpy()}
        if k.ntk is not None:
            arrays["ntk"] = k.ntk.numpy()
        js, _ = write_result(out_stem, {"kind": "kernel", "architecture": spec.to_config(), "method": k.method,
                                        "wall_time_s": wall}, arrays)
        out.print(f"wrote {js}")


@app.command()
def ensemble(preset: str = PresetOpt, width: int = typer.Option(100), d: int = typer.Option(1),
             config: Optional[Path] = ConfigOpt, x: Optional[str] = typer.Option(None, "--x"),
             x_file: Optional[Path] = typer.Option(None, "--x-file"),
             n_networks: int = typer.Option(100000, "--n-networks"), chunk_size: int = typer.Option(1000),
             n_blocks: int = typer.Option(10), seed: int = typer.Option(0), max_order: int = typer.Option(4),
             estimator: str = typer.Option("plain", help="plain, or readout (Rao–Blackwell over a Gaussian readout)."),
             executor: str = typer.Option("inprocess", help="inprocess or dask."),
             scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address (default: a LocalCluster)."),
             workers: int = typer.Option(2, help="LocalCluster workers."),
             batch_chunks: int = typer.Option(4, help="Chunks per vectorized batch (speed only)."),
             sampler: str = typer.Option("networks", help="networks, or conditional (deep Gaussian MLPs, "
                                                          "layer by layer on the fixed inputs)."),
             out_stem: Path = typer.Option(Path("results/ensemble"), "--out", help="Write STEM.json + STEM.npz."),
             resume: bool = typer.Option(False, "--resume", help="Continue from STEM.ckpt.npz after an interruption."),
             ) -> None:
    """Sample an ensemble, measure its correlators and compare G^(2), G^(4), G^(6) with the NNGP (Wick)."""
    from .compare import compare
    from .ensemble import DaskExecutor, EnsembleConfig, InProcess, measure
    from .results import write_result
    from .theory import gaussian_correlators, kernels

    spec = _spec(preset, width, d, config)
    xs = _parse_inputs(x, x_file, spec.d_in)
    cfg = EnsembleConfig(n_networks=n_networks, chunk_size=chunk_size, n_blocks=n_blocks, seed=seed,
                         max_order=max_order, estimator=estimator, sampler=sampler)
    check(executor in ("inprocess", "dask"), "--executor", executor, "inprocess or dask")
    ex = InProcess(batch_chunks) if executor == "inprocess" else DaskExecutor(scheduler, workers)
    check(not (resume and executor == "dask"), "--resume", True, "the inprocess executor only")
    k = kernels(spec, xs)
    if isinstance(ex, DaskExecutor) and scheduler is not None:
        ex.ensure_reachable()  # before the progress bar: an unreachable scheduler is one clean error line
    ckpt = Path(str(out_stem) + ".ckpt.npz")
    with _bar(f"sampling {spec}", n_networks) as update:
        meas = measure(spec, xs, cfg, executor=ex, checkpoint=ckpt if executor == "inprocess" else None,
                       resume=resume, progress=lambda done, total: update(done))
    gp = gaussian_correlators(k.nngp, spec.d_out, max_order)[0]
    table = Table(title=f"{spec}: {n_networks} networks ({estimator}), {meas.wall_time_s:.1f} s")
    for col in ("n", "mean |G_GP|", "mean m_n", "background b_n", "max |z|"):
        table.add_column(col, justify="right")
    for n in range(2, max_order + 1, 2):
        c = compare(gp[n], meas.moments[n])
        table.add_row(str(n), f"{np.mean(np.abs(gp[n].values)):.4g}", f"{c.mean_m:.3e}", f"{c.mean_b:.3e}",
                      f"{c.max_abs_z:.2f}")
    out.print(table)
    arrays = meas.arrays()
    arrays["nngp"] = k.nngp.numpy()
    js, _ = write_result(out_stem, meas.meta(), arrays)
    out.print(f"wrote {js}")


def _stored_measurement(path: Path, order: int, inputs: np.ndarray):
    """Measured connected correlator of ``order`` from a stored `nnft ensemble` result."""
    from .correlators import Correlators
    from .results import read_result

    meta, arrays = read_result(path)
    check(meta.get("kind") == "measurement", "--compare", str(path), "a result written by `nnft ensemble`")
    check(f"connected{order}" in arrays, "--order", order,
          f"an order the stored measurement has (max_order = {meta['ensemble']['max_order']})")
    check(arrays["inputs"].shape == inputs.shape and np.allclose(arrays["inputs"], inputs), "--compare",
          str(path), "a measurement at the same inputs (--x/--x-file) as the prediction")
    d_out = meta["architecture"]["layers"][-1]["width"]
    return Correlators(order=order, connected=True, values=arrays[f"connected{order}"], n_sites=len(inputs) * d_out,
                       d_out=d_out, source="measured", label=str(path), stderr=arrays[f"connected{order}_stderr"],
                       background=arrays[f"connected{order}_background"])


@app.command()
def correlators(preset: str = PresetOpt, width: int = typer.Option(10), d: int = typer.Option(1),
                config: Optional[Path] = ConfigOpt, x: Optional[str] = typer.Option(None, "--x"),
                x_file: Optional[Path] = typer.Option(None, "--x-file"),
                order: int = typer.Option(4, help="Connected correlator order, 2..6 (1/N method: 2 or 4)."),
                method: str = typer.Option("auto", help="exact (one hidden layer), 1/N (deep), or auto."),
                compare_with: Optional[Path] = typer.Option(None, "--compare",
                                                            help="A stored `nnft ensemble` result to compare with."),
                out_stem: Optional[Path] = typer.Option(None, "--out", help="Write STEM.json + STEM.npz.")) -> None:
    """Finite-width theory: connected correlators at width N, exact or at O(1/N)."""
    from .compare import compare
    from .results import write_result

    spec = _spec(preset, width, d, config)
    xs = _parse_inputs(x, x_file, spec.d_in)
    check(method in ("auto", "exact", "1/N"), "--method", method, "auto, exact or 1/N")
    check(isinstance(order, int) and 2 <= order <= 6, "--order", order, "an integer 2..6")
    chosen = ("exact" if spec.depth == 1 else "1/N") if method == "auto" else method
    t0 = time.perf_counter()
    if chosen == "exact":
        from .theory.single_layer import single_layer_correlators

        check(spec.depth == 1, "--method", "exact", "1/N for networks with more than one hidden layer")
        pred = single_layer_correlators(spec, xs, order).connected[order]
    else:
        from .theory.deep import deep_correlators

        check(order in (2, 4), "--order", order, "2 or 4 with --method 1/N (the O(1/N) theory)")
        deep = deep_correlators(spec, xs)
        pred = deep.two_point if order == 2 else deep.connected4
    wall = time.perf_counter() - t0
    table = Table(title=f"G_c^({order}) of {spec}: {pred.label} ({wall:.2f} s)")
    for col in ("tuple", "predicted") + (("measured", "± err", "z") if compare_with else ()):
        table.add_column(col, justify="right")
    meas = _stored_measurement(compare_with, order, xs) if compare_with is not None else None
    cmp = compare(pred, meas) if meas is not None else None
    shown = range(min(len(pred.values), 12))
    for i in shown:
        row = [str(tuple(int(v) + 1 for v in pred.tuples[i])), f"{pred.values[i]:.6g}"]
        if cmp is not None:
            row += [f"{meas.values[i]:.6g}", f"{meas.stderr[i]:.2g}", f"{cmp.z[i]:.2f}"]
        table.add_row(*row)
    out.print(table)
    if len(pred.values) > len(shown):
        out.print(f"({len(pred.values) - len(shown)} more tuples in the result file)")
    if cmp is not None:
        out.print(f"max |z| = {cmp.max_abs_z:.2f} over {len(pred.values)} tuples; mean relative deviation "
                  f"{np.mean(np.abs(cmp.z * meas.stderr) / np.maximum(np.abs(pred.values), 1e-300)):.3e}")
    if out_stem is not None:
        arrays = {"inputs": xs, "tuples": pred.tuples, "values": pred.values}
        if pred.stderr is not None:
            arrays["stderr"] = pred.stderr
        js, _ = write_result(out_stem, {"kind": "prediction", "architecture": spec.to_config(), "order": order,
                                        "method": chosen, "label": pred.label, "wall_time_s": wall}, arrays)
        out.print(f"wrote {js}")


field_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Field theories by design: free scalars from cosine networks.")
app.add_typer(field_app, name="field")


def _designed_spec(spectrum: str, d: int, mass: float, alpha: float, sigma: float, cutoff: float, width: int,
                   momenta: str):
    """The cos network of a spectrum family (massive + uniform momenta is Scalar-net)."""
    from .fieldtheory import design, free_scalar, gaussian, massive, power

    check(spectrum in ("massive", "power", "gaussian"), "--spectrum", spectrum, "massive, power or gaussian")
    check(momenta in ("uniform", "importance"), "--momenta", momenta, "uniform or importance")
    check(np.isfinite(cutoff) and cutoff >= 0, "--cutoff", cutoff, "a number > 0, or 0 for no cutoff")
    lam = None if cutoff == 0 else float(cutoff)
    if spectrum == "massive" and momenta == "uniform" and lam is not None:
        return free_scalar(d, mass=mass, cutoff=lam, width=width)
    family = {"massive": lambda: massive(mass), "power": lambda: power(alpha, mass),
              "gaussian": lambda: gaussian(sigma)}[spectrum]()
    return design(family, d, cutoff=lam, width=width, momenta=momenta)


SpectrumOpt = typer.Option("massive", help="massive 1/(p² + m²), power (p² + m²)^(-α) or gaussian e^(-p²/(2σ²)).")
MomentaOpt = typer.Option("uniform", help="uniform (Scalar-net: momenta uniform in |p| < Λ, amplitude "
                                          "sqrt(G̃)) or importance (momenta ~ G̃, equal amplitudes).")


@field_app.command("design")
def field_design(d: int = typer.Option(3, help="Euclidean dimension, 1..4."),
                 spectrum: str = SpectrumOpt, mass: float = typer.Option(1.0),
                 alpha: float = typer.Option(2.0, help="Power α of the power spectrum."),
                 sigma: float = typer.Option(1.0, help="Width σ of the Gaussian spectrum."),
                 cutoff: float = typer.Option(20.0, help="Momentum cutoff Λ (0: none, where finite)."),
                 momenta: str = MomentaOpt, width: int = typer.Option(100),
                 out_path: Path = typer.Option(Path("free-scalar.toml"), "--out", help="Spec file (.toml/.json).")
                 ) -> None:
    """Write the spec of the cos network whose ensemble is the free field with momentum propagator G̃(p)."""
    check(isinstance(d, int) and 1 <= d <= 4, "--d", d, "1, 2, 3 or 4")
    spec = _designed_spec(spectrum, d, mass, alpha, sigma, cutoff, width, momenta)
    spec.save(out_path)
    out.print(f"{spec}: {spectrum} spectrum, {momenta} momenta"
              + (f" in |p| < {cutoff:g}" if cutoff else " (no cutoff)") + ", uniform phase")
    out.print(f"wrote {out_path}")


@field_app.command("measure")
def field_measure(d: int = typer.Option(3), spectrum: str = SpectrumOpt, mass: float = typer.Option(1.0),
                  alpha: float = typer.Option(2.0), sigma: float = typer.Option(1.0),
                  cutoff: float = typer.Option(20.0), momenta: str = MomentaOpt, width: int = typer.Option(100),
                  spec_file: Optional[Path] = typer.Option(None, "--spec", help="A designed spec (overrides the "
                                                                               "spectrum options)."),
                  n_networks: int = typer.Option(40000, "--n-networks"),
                  separations: str = typer.Option("0,0.1,0.2,0.5,1,2", help="Distances r, comma separated."),
                  momentum: bool = typer.Option(False, "--momentum", help="Measure the lattice power spectrum "
                                                "instead, against the windowed prediction and the bare G̃."),
                  box: float = typer.Option(16.0, help="--momentum: side L of the lattice box."),
                  points: int = typer.Option(128, help="--momentum: lattice points per axis."),
                  seed: int = typer.Option(0),
                  out_stem: Optional[Path] = typer.Option(None, "--out", help="Write STEM.json + STEM.npz.")) -> None:
    """Measure a designed free field's propagator G(0, r), or its momentum spectrum, against the exact one."""
    from .ensemble import EnsembleConfig, measure
    from .fieldtheory import momentum_spectrum
    from .results import write_result
    from .spec import Architecture
    from .theory import nngp

    if spec_file is not None:
        spec = Architecture.load(spec_file)
    else:
        check(isinstance(d, int) and 1 <= d <= 4, "--d", d, "1, 2, 3 or 4")
        spec = _designed_spec(spectrum, d, mass, alpha, sigma, cutoff, width, momenta)
    if momentum:
        res = momentum_spectrum(spec, box=box, points=points, n_networks=n_networks, seed=seed,
                                chunk_size=max(1, n_networks // 20))
        ok = res.trusted()
        table = Table(title=f"{spec}: lattice power spectrum, L = {box:g}, {points}^{spec.d_in} points, Hann window "
                            f"({int(ok.sum())} trusted momentum classes below the cutoff)")
        for col in ("|p|", "measured", "± err", "windowed prediction", "bare G̃(p)", "z"):
            table.add_column(col, justify="right")
        for j in np.flatnonzero(ok)[:: max(1, int(ok.sum()) // 16)]:
            table.add_row(f"{res.p[j]:.4g}", f"{res.measured[j]:.6g}", f"{res.stderr[j]:.2g}",
                          f"{res.predicted[j]:.6g}", f"{res.bare[j]:.6g}", f"{res.z()[j]:.2f}")
        out.print(table)
        out.print(f"max |z| = {np.max(np.abs(res.z()[ok])):.2f} over {int(ok.sum())} classes")
        if out_stem is not None:
            js, _ = write_result(out_stem, {"kind": "momentum-spectrum", "architecture": spec.to_config(),
                                            "box": box, "points": points, "n_networks": n_networks, "seed": seed},
                                 res.arrays())
            out.print(f"wrote {js}")
        return
    try:
        r = np.array([float(v) for v in separations.split(",") if v.strip()])
    except ValueError:
        raise fail("--separations", separations, "comma-separated numbers") from None
    check(r.size >= 1 and bool(np.all(np.isfinite(r))) and bool(np.all(r >= 0)), "--separations", separations,
          "finite distances >= 0")
    x = np.zeros((len(r), spec.d_in))
    x[:, 0] = r
    cfg = EnsembleConfig(n_networks=n_networks, chunk_size=max(1, n_networks // 20), n_blocks=20, seed=seed,
                         max_order=2, estimator="readout")
    exact = nngp(spec, x[:1], x).numpy()[0]  # exact Fourier–Bessel kernel of the cos layer
    with _bar(f"sampling {spec}", n_networks) as update:
        meas = measure(spec, x, cfg, progress=lambda done, total: update(done))
    g, err = meas.moments[2], meas.moments[2].full("stderr")
    table = Table(title=f"{spec}: G(0, r)")
    for col in ("r", "measured", "± err", "exact", "z"):
        table.add_column(col, justify="right")
    for j, rj in enumerate(r):
        table.add_row(f"{rj:g}", f"{g.at(0, j):.6g}", f"{err[0, j]:.2g}", f"{exact[j]:.6g}",
                      f"{(g.at(0, j) - exact[j]) / err[0, j]:.2f}")
    out.print(table)
    if out_stem is not None:
        js, _ = write_result(out_stem, {**meas.meta(), "kind": "propagator"},
                             {**meas.arrays(), "r": r, "exact": exact})
        out.print(f"wrote {js}")


def _float_list(text: str, name: str) -> list[float]:
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise fail(name, text, "comma-separated numbers") from None
    check(len(vals) >= 1 and all(np.isfinite(vals)), name, text, "one or more finite numbers")
    return vals


@field_app.command("deform")
def field_deform(config: Optional[Path] = typer.Option(None, "--config", help="TOML/JSON with any of the options "
                                                      "below as keys (options given here override it)."),
                 spec_file: Optional[Path] = typer.Option(None, "--spec", help="Undeformed spec (else the designed "
                                                          "free scalar from --d/--mass/--cutoff/--width)."),
                 d: Optional[int] = typer.Option(None, help="Euclidean dimension (default 3)."),
                 mass: Optional[float] = typer.Option(None, help="Mass m (default 1)."),
                 cutoff: Optional[float] = typer.Option(None, help="Momentum cutoff Λ (default 20)."),
                 width: Optional[int] = typer.Option(None, help="Width N (default 100)."),
                 potential: Optional[str] = typer.Option(None, help="Unit potential coefficients g0,g1,...,gk "
                                                         "(V = Σ g_k φ^k); default φ⁴/4!."),
                 couplings: Optional[str] = typer.Option(None, help="Couplings λ (multiplying the unit potential), "
                                                         "comma separated; default 0,1,3,10."),
                 side: Optional[float] = typer.Option(None, help="Side of the cube Ω centred at the origin."),
                 n_quad: Optional[int] = typer.Option(None, "--n-quad", help="Gauss–Legendre nodes per axis."),
                 x: Optional[str] = typer.Option(None, "--x", help="External points (default: 4 near the origin)."),
                 n_networks: Optional[int] = typer.Option(None, "--n-networks", help="Networks (reweighting)."),
                 sampler: Optional[str] = typer.Option(None, help="reweight (default) or mcmc."),
                 chains: Optional[int] = typer.Option(None, help="MCMC chains (default 256)."),
                 steps: Optional[int] = typer.Option(None, help="MCMC steps per chain (default 1000)."),
                 seed: Optional[int] = typer.Option(None),
                 out_stem: Optional[Path] = typer.Option(None, "--out", help="Write STEM.json + STEM.npz.")) -> None:
    """Switch on V(φ) (default λφ⁴/4!) by deforming the parameter density; compare with first-order theory."""
    from .compare import compare
    from .ensemble import EnsembleConfig
    from .experiments.phi4 import default_points, default_region
    from .fieldtheory.deform import reweight
    from .fieldtheory.mcmc import mcmc
    from .fieldtheory.perturbation import first_order, propagators_to_region
    from .fieldtheory.potential import Box, Polynomial, phi4
    from .fieldtheory.spectrum import design, massive
    from .results import load_config, write_result
    from .spec import Architecture

    cfg = load_config(config) if config is not None else {}
    known = {"spec", "d", "mass", "cutoff", "width", "potential", "couplings", "side", "n_quad", "x", "n_networks",
             "sampler", "chains", "steps", "seed"}
    check(set(cfg) <= known, "--config", ", ".join(sorted(set(cfg) - known)), "keys " + ", ".join(sorted(known)))

    def opt(value, key, default):
        return value if value is not None else cfg.get(key, default)

    spec_path = opt(spec_file, "spec", None)
    if spec_path is not None:
        spec = Architecture.load(Path(spec_path))
    else:
        dd = opt(d, "d", 3)
        check(isinstance(dd, int) and 1 <= dd <= 4, "--d", dd, "1, 2, 3 or 4")
        spec = design(massive(float(opt(mass, "mass", 1.0))), dd, cutoff=float(opt(cutoff, "cutoff", 20.0)),
                      width=opt(width, "width", 100))
    dim = spec.d_in
    pot = opt(potential, "potential", None)
    unit = phi4(1.0) if pot is None else Polynomial(tuple(_float_list(pot, "--potential")) if isinstance(pot, str)
                                                    else tuple(pot))
    g = opt(couplings, "couplings", "0,1,3,10")
    g = _float_list(g, "--couplings") if isinstance(g, str) else [float(v) for v in g]
    check(all(v >= 0 for v in g), "--couplings", g, "numbers >= 0")
    side0, nq0 = default_region(dim)
    region = Box.cube(float(opt(side, "side", side0)), dim, n_quad=int(opt(n_quad, "n_quad", nq0)))
    xv = opt(x, "x", None)
    xs = default_points(dim) if xv is None else (_parse_inputs(xv, None, dim) if isinstance(xv, str)
                                                  else np.asarray(xv, dtype=np.float64).reshape(-1, dim))
    how = opt(sampler, "sampler", "reweight")
    check(how in ("reweight", "mcmc"), "--sampler", how, "reweight or mcmc")
    rng_seed = int(opt(seed, "seed", 0))
    props = propagators_to_region(spec, xs, region)
    pred = {n: first_order(spec, xs, unit, region, n, propagators=props) for n in (2, 4)}
    title = f"{spec} deformed by g·V, V = {unit}, Ω = cube of side {region.hi[0] - region.lo[0]:g} " \
            f"({region.n_quad}^{dim} nodes)"
    if how == "reweight":
        n = int(opt(n_networks, "n_networks", 60000))
        ens = EnsembleConfig(n_networks=n, chunk_size=max(1, n // 40), n_blocks=40, seed=rng_seed, max_order=4)
        with _bar(f"reweighting {spec}", n) as update:
            res = reweight(spec, xs, unit, region, g, ens, progress=lambda done, total: update(done))
        table = Table(title=title + f": {n} networks, importance reweighting ({res.wall_time_s:.1f} s)")
        for col in ("g", "ESS", "⟨ΔG_c^(4) / (g·tree)⟩", "max|z| vs g·tree", "⟨ΔG^(2) / (g·tadpole)⟩",
                    "max|z| vs g·tadpole"):
            table.add_column(col, justify="right")
        for j, gj in enumerate(res.couplings):
            if gj == 0:
                continue
            cells = []
            for k in (4, 2):
                sh = res.shift[j][k]
                cells += [f"{np.mean(sh.values / (gj * pred[k].values)):.3f}",
                          f"{np.max(np.abs(sh.values - gj * pred[k].values) / sh.stderr):.2f}"]
            table.add_row(f"{gj:g}", f"{res.ess[j]:.0f}", *cells)
        z4, z2 = compare(pred[4], res.response[4]), compare(pred[2], res.response[2])
        table.add_row("→ 0", "—", f"{np.mean(res.response[4].values / pred[4].values):.3f}", f"{z4.max_abs_z:.2f}",
                      f"{np.mean(res.response[2].values / pred[2].values):.3f}", f"{z2.max_abs_z:.2f}")
        out.print(table)
        out.print(f"first-order response at g = 0: max |z| = {z4.max_abs_z:.2f} (G_c^(4)), {z2.max_abs_z:.2f} "
                  f"(G^(2)); effective samples/s at the largest g: {res.effective_samples_per_s[-1]:.0f}")
        meta, arrays = res.meta(), res.arrays()
    else:
        check(len(g) == 1, "--couplings", g, "exactly one coupling with --sampler mcmc")
        n_ch, n_st = int(opt(chains, "chains", 256)), int(opt(steps, "steps", 1000))
        with _bar(f"MCMC {spec}", n_st) as update:
            res = mcmc(spec, xs, unit, region, g[0], n_chains=n_ch, n_steps=n_st, burn_in=n_st // 5, seed=rng_seed,
                       progress=lambda done, total: update(done))
        table = Table(title=title + f": MCMC at g = {g[0]:g} ({res.wall_time_s:.1f} s)")
        for col in ("tuple", "G_c measured", "± err", "N = ∞ first order: free + g·δG_c"):
            table.add_column(col, justify="right")
        from .theory import nngp

        free = {2: nngp(spec, xs).numpy()[tuple(pred[2].tuples.T)], 4: np.zeros(len(pred[4].values))}
        for k in (2, 4):
            for i in range(min(len(pred[k].values), 6)):
                table.add_row(str(tuple(int(v) + 1 for v in pred[k].tuples[i])), f"{res.connected[k].values[i]:.5g}",
                              f"{res.connected[k].stderr[i]:.2g}", f"{free[k][i] + g[0] * pred[k].values[i]:.5g}")
        out.print(table)
        out.print(f"acceptance {res.acceptance:.3f}; τ_int " + ", ".join(f"{k} {v:.1f}" for k, v in res.tau.items())
                  + f"; ESS {res.ess:.0f} of {res.n_samples} ({res.effective_samples_per_s:.0f}/s)")
        meta, arrays = res.meta(), res.arrays()
    if out_stem is not None:
        arrays.update({f"first_order{k}": pred[k].values for k in (2, 4)})
        js, _ = write_result(out_stem, meta, arrays)
        out.print(f"wrote {js}")


def _run_experiments(names: List[str], what: str):
    from .experiments import REGISTRY

    for n in names:
        check(n in REGISTRY, "--only", n, ", ".join(REGISTRY))
    chosen = names or list(REGISTRY)
    results = []
    with _bar(what, len(chosen)) as update:
        for i, name in enumerate(chosen):
            results.append(REGISTRY[name]().run(progress=lambda f, i=i: update(i + f)))
            update(i + 1)
    return results


def _checks_table(results) -> Table:
    table = Table(title="Theory vs experiment")
    for col in ("experiment", "check", "statistic", "criterion", "verdict"):
        table.add_column(col, justify="left" if col in ("experiment", "check", "criterion") else "right")
    for r in results:
        for c in r.checks:
            table.add_row(r.name, c.name, f"{c.statistic:.4g}", c.threshold,
                          "[green]pass[/green]" if c.passed else "[red]FAIL[/red]")
    return table


@app.command()
def validate(only: List[str] = typer.Option([], "--only", help="Run only these experiments.")) -> None:
    """Run every registered theory-vs-experiment check; exit 1 if any fails."""
    results = _run_experiments(only, "validating")
    out.print(_checks_table(results))
    n_fail = sum(not c.passed for r in results for c in r.checks)
    n_all = sum(len(r.checks) for r in results)
    out.print(f"{n_all - n_fail} passed, {n_fail} failed")
    if n_fail:
        raise typer.Exit(1)


@app.command()
def report(out_dir: Path = typer.Option(Path("nnft-report"), "--out", help="Folder for index.html and results."),
           only: List[str] = typer.Option([], "--only", help="Run only these experiments.")) -> None:
    """The main job: run the registered experiments on their embedded defaults and write an HTML report."""
    from .report import render_report
    from .results import atomic_write_text, environment, write_result

    results = _run_experiments(only, "running experiments")
    for r in results:
        write_result(out_dir / r.name, {"kind": "experiment", "name": r.name, "config": r.config,
                                        "checks": [c.__dict__ for c in r.checks], "wall_time_s": r.wall_time_s},
                     r.arrays)
    page = out_dir / "index.html"
    atomic_write_text(page, render_report(results, environment()))
    out.print(_checks_table(results))
    out.print(f"wrote {page.resolve()}")


# Commands that live in their own modules register themselves on ``app`` when imported.
from . import _cli_coordcheck, _cli_kan, _cli_ntk, _cli_phases, _cli_train, _cli_uat  # noqa: E402,F401

# Typer >= 0.20 vendors click, so its exceptions are not click's; accept both families.
_USAGE_ERRORS = tuple({click.ClickException, getattr(typer, "TyperException", click.ClickException)})
_EXITS = tuple({click.exceptions.Exit, typer.Exit})
_ABORTS = tuple({click.exceptions.Abort, typer.Abort})


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: ConfigError and usage errors become one line on stderr and exit code 2."""
    try:
        code = app(args=argv, standalone_mode=False)  # without standalone mode, click returns Exit codes
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except ConfigError as exc:
        err.print(f"nnft: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except _EXITS as exc:
        sys.exit(exc.exit_code)
    except _ABORTS:
        err.print("nnft: aborted", markup=False)
        sys.exit(130)
    except _USAGE_ERRORS as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if not message:  # bare `nnft`: the help was printed
            sys.exit(0)
        err.print(f"nnft: error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
