"""`nnft kan fit | plot | symbolic` in-process (nnft._cli_kan), end to end and on bad input.

End to end: fit a [2, 3, 1] KAN to y = x1/2 + x2² from a CSV with a header (sparsity penalty, two grid
stages), prune it to [2, 1, 1], plot it, and snap it to x, x², x; the written formula reproduces the
target to 1e-3 on fresh points. Bad input (missing or malformed files, NaN, a shape that does not match
the data, invalid numbers and lists): exit code 2, exactly one line "nnft: error: ..." naming the option,
and no file written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sympy

import nnft._cli_kan  # noqa: F401  (registers `nnft kan`)


def _target(x: np.ndarray) -> np.ndarray:
    return 0.5 * x[:, 0] + x[:, 1] ** 2


def _csv(n: int = 200, seed: int = 0, nan: bool = False) -> str:
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    y = _target(x)
    if nan:
        y[3] = np.nan
    return "x1,x2,y\n" + "".join(f"{a:.17g},{b:.17g},{c:.17g}\n" for a, b, c in zip(x[:, 0], x[:, 1], y))


def test_fit_plot_symbolic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, run_cli) -> None:
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(_csv())
    code = run_cli(["kan", "fit", "--data", "d.csv", "--shape", "2,3,1", "--grid-schedule", "3,6", "--steps", "5",
                    "--lamb", "0.003", "--prune", "0.02", "--seed", "0", "--out", "m"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "train RMSE" in out and "G=6" in out and "removed nodes (layer, index): (1, 0), (1, 1)" in out
    meta = json.loads(Path("m/model.json").read_text())
    assert meta["kan"]["shape"] == [2, 1, 1] and meta["kan"]["layers"][0]["G"] == 6   # one hidden node is enough
    assert [s["stage"] for s in meta["stages"]] == ["G=3", "G=6", "pruned θ=0.02"]
    assert meta["stages"][-1]["train_rmse"] < 1e-2
    assert Path("m/loss.csv").read_text().splitlines()[0] == "stage,shape,G,steps,train_rmse,seconds"

    assert run_cli(["kan", "plot", "--model", "m", "--data", "d.csv", "--out", "k.png"]) == 0
    assert Path("k.png").read_bytes()[:4] == b"\x89PNG"

    code = run_cli(["kan", "symbolic", "--model", "m", "--data", "d.csv", "--lib", "x,x^2,sin,exp", "--r2", "0.99"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "symbolic candidates" in out and "y = " in out
    line = Path("m/formula.txt").read_text().strip()
    assert line.startswith("y = ")
    x1, x2 = sympy.symbols("x_1 x_2", real=True)
    expr = sympy.sympify(line[4:], locals={"x_1": x1, "x_2": x2})
    pts = np.random.default_rng(7).uniform(-1, 1, (500, 2))
    assert np.abs(sympy.lambdify((x1, x2), expr)(pts[:, 0], pts[:, 1]) - _target(pts)).max() < 1e-3


NPZ_BAD = "npz"  # marker: write an .npz without the y array
BAD = {  # name -> (argv, {file: content}, words of which the error line must name one)
    "data-missing": (["kan", "fit", "--data", "nope.csv", "--out", "m"], {}, ["--data"]),
    "data-nan": (["kan", "fit", "--data", "d.csv", "--shape", "2,1,1", "--out", "m"], {"d.csv": _csv(20, nan=True)},
                 ["--data"]),
    "data-ragged": (["kan", "fit", "--data", "d.csv", "--out", "m"], {"d.csv": "1,2,3\n4,5\n"}, ["--data"]),
    "data-text": (["kan", "fit", "--data", "d.csv", "--out", "m"], {"d.csv": "a,b,c\n1,2,x\n"}, ["--data"]),
    "npz-no-y": (["kan", "fit", "--data", "d.npz", "--out", "m"], {"d.npz": NPZ_BAD}, ["--data"]),
    "shape-mismatch": (["kan", "fit", "--data", "d.csv", "--shape", "3,2,1", "--out", "m"], {"d.csv": _csv(20)},
                       ["--data", "shape"]),
    "shape-malformed": (["kan", "fit", "--data", "d.csv", "--shape", "2,a,1", "--out", "m"], {"d.csv": _csv(20)},
                        ["--shape"]),
    "shape-short": (["kan", "fit", "--data", "d.csv", "--shape", "2", "--out", "m"], {"d.csv": _csv(20)},
                    ["--shape"]),
    "G-zero": (["kan", "fit", "--data", "d.csv", "--G", "0", "--out", "m"], {"d.csv": _csv(20)}, ["--G"]),
    "k-negative": (["kan", "fit", "--data", "d.csv", "--k", "-1", "--out", "m"], {"d.csv": _csv(20)}, ["--k"]),
    "schedule-decreasing": (["kan", "fit", "--data", "d.csv", "--grid-schedule", "5,3", "--out", "m"],
                            {"d.csv": _csv(20)}, ["--grid-schedule"]),
    "schedule-malformed": (["kan", "fit", "--data", "d.csv", "--grid-schedule", "5;10", "--out", "m"],
                           {"d.csv": _csv(20)}, ["--grid-schedule"]),
    "grid-range": (["kan", "fit", "--data", "d.csv", "--grid-range", "1,-1", "--out", "m"], {"d.csv": _csv(20)},
                   ["--grid-range"]),
    "optimizer": (["kan", "fit", "--data", "d.csv", "--optimizer", "sgd", "--out", "m"], {"d.csv": _csv(20)},
                  ["--optimizer"]),
    "lamb": (["kan", "fit", "--data", "d.csv", "--lamb", "-1", "--out", "m"], {"d.csv": _csv(20)}, ["--lamb"]),
    "y-cols": (["kan", "fit", "--data", "d.csv", "--y-cols", "zz", "--out", "m"], {"d.csv": _csv(20)},
               ["--y-cols"]),
    "model-missing": (["kan", "plot", "--model", "nomodel", "--data", "d.csv", "--out", "k.png"],
                      {"d.csv": _csv(20)}, ["--model"]),
    "plot-suffix": (["kan", "plot", "--model", "nomodel", "--data", "d.csv", "--out", "k.jpg"], {"d.csv": _csv(20)},
                    ["--out"]),
    "lib-unknown": (["kan", "symbolic", "--model", "nomodel", "--data", "d.csv", "--lib", "x,cosh"],
                    {"d.csv": _csv(20)}, ["--lib"]),
    "r2": (["kan", "symbolic", "--model", "nomodel", "--data", "d.csv", "--r2", "nan"], {"d.csv": _csv(20)},
           ["--r2"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, run_cli) -> None:
    args, files, words = BAD[name]
    for fname, text in files.items():
        if text == NPZ_BAD:
            np.savez(tmp_path / fname, x=np.zeros((4, 2)))
        else:
            (tmp_path / fname).write_text(text)
    monkeypatch.chdir(tmp_path)
    code = run_cli(args)
    out, err = capsys.readouterr()
    lines = err.strip("\n").splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("nnft: error: "), err
    assert any(w in lines[0] for w in words), f"error line names none of {words}: {lines[0]!r}"
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(files), "files were written"


def test_symbolic_refuses_to_write_a_partial_formula(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                                     run_cli) -> None:
    """An edge whose best fit is below --r2 is named, the exit code is 1 and no formula file appears."""
    from nnft.expressivity.kan import KAN
    from nnft.expressivity.kan.io import save_model

    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text(_csv(60))
    save_model(KAN([2, 1, 1], seed=0), "m")             # untrained: its spline edges are not x or x^2
    code = run_cli(["kan", "symbolic", "--model", "m", "--data", "d.csv", "--lib", "0", "--r2", "0.999"])
    _, err = capsys.readouterr()
    assert code == 1 and "not snapped" in err and "(0,0,0)" not in err and "(0, 0, 0)" in err
    assert not Path("m/formula.txt").exists()
