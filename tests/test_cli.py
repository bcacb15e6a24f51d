"""The command line, end to end, in subprocesses (``python -m nnft.cli`` and the ``nnft`` console script).

One module fixture starts every subprocess at once and they run concurrently (each pays a few seconds of
interpreter and torch start-up; one after another they would take minutes); each test then checks its own
run. Every run has its own empty working directory, so "nothing was written" is checkable. A few more
invalid inputs are checked in-process through ``nnft.cli.main`` (same code path, no start-up cost).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

RUN_TIMEOUT_S = 150  # per process; a hang is reported as a failure, not waited for forever
# An unreachable scheduler must fail within its connect timeout (10 s): its run may take at most this much
# longer than a run that fails at once after the same imports (wall times include start-up under load).
DASK_EXTRA_S = 30
BAD_TOML = "[architecture\nd_in = 1\n"  # unterminated table header
INCOMPLETE_TOML = '[architecture]\nd_in = 1\nactivation = "relu"\n'  # no layers
X3 = "0.2;0.6;1.0"
SCRIPT = Path(sys.executable).with_name("nnft")  # the console script of this environment


@dataclass
class Run:
    args: list[str]
    cwd: Path
    inputs: set[str]
    returncode: int | None  # None: killed after RUN_TIMEOUT_S
    stdout: str
    stderr: str
    seconds: float

    def written(self) -> list[str]:
        """Files and folders in the run's cwd that it created (anything but its input files)."""
        return sorted(str(p.relative_to(self.cwd)) for p in self.cwd.rglob("*")
                      if p.relative_to(self.cwd).parts[0] not in self.inputs)

    def describe(self) -> str:
        return (f"nnft {' '.join(self.args)} -> exit {self.returncode} after {self.seconds:.1f} s\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}")


# name -> (argv, {input file name: content})
GOOD = {
    "kernel": (["kernel", "--preset", "relu-net", "--ntk", "--x", X3, "--out", "out/k"], {}),
    "ensemble": (["ensemble", "--preset", "erf-net", "--width", "10", "--x", X3, "--n-networks", "4000",
                  "--chunk-size", "200", "--seed", "1", "--out", "out/e"], {}),
    "report": (["report", "--only", "g2-vs-nngp", "--out", "tmp"], {}),
}

# name -> (argv, input files, words of which the error line must name one); run as subprocesses
BAD = {
    "preset": (["kernel", "--preset", "foo", "--out", "k"], {}, ["--preset"]),
    "x-nan": (["kernel", "--x", "1,nan", "--out", "k"], {}, ["--x", "x1"]),
    "max-order": (["ensemble", "--max-order", "7", "--n-networks", "4000", "--chunk-size", "200", "--out", "e"],
                  {}, ["--max-order", "max_order"]),
    "width": (["kernel", "--width", "-3", "--out", "k"], {}, ["--width"]),
    "config-malformed": (["kernel", "--config", "bad.toml", "--out", "k"], {"bad.toml": BAD_TOML},
                         ["config", "bad.toml"]),
    "unknown-option": (["kernel", "--bogus", "3"], {}, ["--bogus"]),
    "dask-unreachable": (["ensemble", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1", "--n-networks",
                          "4000", "--chunk-size", "200", "--out", "e"], {}, ["scheduler", "address"]),
}
VIA_SCRIPT = {"width"}  # run through the console script instead of python -m nnft.cli

# more invalid input, checked in-process
BAD_IN_PROCESS = {
    "x-text": (["kernel", "--x", "1;two", "--out", "k"], {}, ["--x"]),
    "x-file-missing": (["kernel", "--x-file", "missing.npy", "--out", "k"], {}, ["--x-file"]),
    "estimator": (["ensemble", "--estimator", "bayes", "--n-networks", "4000", "--chunk-size", "200"], {},
                  ["--estimator", "estimator"]),
    "config-incomplete": (["kernel", "--config", "net.toml", "--out", "k"], {"net.toml": INCOMPLETE_TOML},
                          ["layers"]),
    "resume-with-dask": (["ensemble", "--executor", "dask", "--resume", "--n-networks", "4000", "--chunk-size",
                          "200"], {}, ["--resume"]),
    "unknown-command": (["frobnicate"], {}, ["frobnicate"]),
    "only": (["report", "--only", "no-such-experiment", "--out", "rep"], {}, ["--only"]),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("cli")
    logs = root / "_logs"
    logs.mkdir()
    env = dict(os.environ, COLUMNS="160", PYTHONUNBUFFERED="1")
    env.pop("PYTHONWARNINGS", None)
    cases = {**GOOD, **{k: (a, f) for k, (a, f, _) in BAD.items()}}
    running = {}
    for name, (args, files) in cases.items():
        cwd = root / name
        cwd.mkdir()
        for fname, text in files.items():
            (cwd / fname).write_text(text)
        command = ([str(SCRIPT)] if name in VIA_SCRIPT and SCRIPT.exists() else
                   [sys.executable, "-m", "nnft.cli"])
        out, err = open(logs / f"{name}.out", "w"), open(logs / f"{name}.err", "w")
        proc = subprocess.Popen(command + args, cwd=cwd, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        running[name] = (proc, args, cwd, set(files), out, err)
    t0, ended = time.monotonic(), {}
    while len(ended) < len(running) and time.monotonic() - t0 < RUN_TIMEOUT_S:
        for name, (proc, *_) in running.items():
            if name not in ended and proc.poll() is not None:
                ended[name] = time.monotonic() - t0
        time.sleep(0.05)
    done = {}
    for name, (proc, args, cwd, inputs, out, err) in running.items():
        if name not in ended:
            proc.kill()
            proc.wait()
        out.close()
        err.close()
        done[name] = Run(args, cwd, inputs, proc.returncode if name in ended else None,
                         (logs / f"{name}.out").read_text(), (logs / f"{name}.err").read_text(),
                         ended.get(name, time.monotonic() - t0))
    return done


# -- successful commands ----------------------------------------------------------------------------------


def test_kernel_prints_tables_and_writes_json_npz(runs: dict[str, Run]) -> None:
    r = runs["kernel"]
    assert r.returncode == 0, r.describe()
    assert "NNGP K(x, x')" in r.stdout and "NTK" in r.stdout and "closed form" in r.stdout, r.describe()
    for row in ("x1", "x2", "x3"):
        assert re.search(rf"^\W*{row}\W", r.stdout, re.M), r.describe()
    meta = json.loads((r.cwd / "out/k.json").read_text())
    assert meta["kind"] == "kernel" and meta["method"] == "closed form" and meta["arrays"] == "k.npz"
    assert meta["architecture"]["name"] == "relu-net" and meta["architecture"]["d_in"] == 1
    assert {"wall_time_s", "environment", "written"} <= set(meta)
    with np.load(r.cwd / "out/k.npz") as data:
        assert set(data.files) == {"inputs", "nngp", "ntk"}
        x = data["inputs"][:, 0]
        np.testing.assert_allclose(x, [0.2, 0.6, 1.0])
        # ReLU-net has no biases: for inputs of one sign K = x x'/2 and the NTK is x x'
        np.testing.assert_allclose(data["nngp"], np.outer(x, x) / 2, rtol=1e-12)
        np.testing.assert_allclose(data["ntk"], np.outer(x, x), rtol=1e-12)
    assert sorted(p.name for p in (r.cwd / "out").iterdir()) == ["k.json", "k.npz"]  # no temp files left


def test_ensemble_small_run_writes_results_and_prints_comparison(runs: dict[str, Run]) -> None:
    r = runs["ensemble"]
    assert r.returncode == 0, r.describe()
    for col in ("mean |G_GP|", "mean m_n", "background b_n", "max |z|"):
        assert col in r.stdout, r.describe()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\W*([246])\s*│(.*)$", r.stdout, re.M)}
    assert set(rows) == {"2", "4"}, r.describe()  # default --max-order 4: n = 2 and 4
    assert "4000 networks" in r.stdout
    meta = json.loads((r.cwd / "out/e.json").read_text())
    assert meta["kind"] == "measurement" and meta["arrays"] == "e.npz"
    assert meta["ensemble"]["n_networks"] == 4000 and meta["ensemble"]["chunk_size"] == 200
    assert meta["seed"] == 1 and meta["architecture"]["name"] == "erf-net"
    with np.load(r.cwd / "out/e.npz") as data:
        keys = set(data.files)
        for n in (1, 2, 3, 4):
            assert {f"moment{n}", f"moment{n}_stderr", f"moment{n}_background", f"connected{n}"} <= keys
        assert {"inputs", "nngp"} <= keys
        k, g2, err = data["nngp"], data["moment2"], data["moment2_stderr"]
        # sorted site pairs (i <= j) in colex order: (0,0), (0,1), (1,1), (0,2), ...
        pairs = [(i, j) for j in range(3) for i in range(j + 1)]
        predicted = np.array([k[i, j] for i, j in pairs])
        assert np.all(np.abs(g2 - predicted) < 5 * err)  # one hidden layer: G2 = K at any width
    assert sorted(p.name for p in (r.cwd / "out").iterdir()) == ["e.json", "e.npz"]  # checkpoint removed


def test_report_writes_html_with_embedded_png(runs: dict[str, Run]) -> None:
    r = runs["report"]
    assert r.returncode == 0, r.describe()
    page = (r.cwd / "tmp/index.html").read_text()
    images = re.findall(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert images, "no embedded PNG in the report"
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert 'id="g2-vs-nngp"' in page and "Checks (theory vs experiment)" in page
    assert page.lstrip().lower().startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert (r.cwd / "tmp/g2-vs-nngp.json").exists() and (r.cwd / "tmp/g2-vs-nngp.npz").exists()
    assert "wrote" in r.stdout


# -- invalid input: exit 2, one line on stderr, nothing written -----------------------------------------


@pytest.mark.parametrize("name", [n for n in BAD if n != "dask-unreachable"])
def test_bad_input_is_one_line_and_exit_2(runs: dict[str, Run], name: str) -> None:
    r = runs[name]
    assert r.returncode == 2, r.describe()
    assert "Traceback" not in r.stderr + r.stdout, r.describe()
    lines = r.stderr.strip("\n").splitlines()
    assert len(lines) == 1, r.describe()
    assert lines[0].startswith("nnft: error: "), r.describe()
    words = BAD[name][2]
    assert any(w in lines[0] for w in words), f"error line names none of {words}: {lines[0]!r}"
    assert r.written() == [], f"files written: {r.written()}"


def test_unreachable_dask_scheduler_fails_fast_with_exit_2(runs: dict[str, Run]) -> None:
    r = runs["dask-unreachable"]
    assert r.returncode is not None, f"hung for {RUN_TIMEOUT_S} s\n" + r.describe()
    assert r.returncode == 2, r.describe()
    assert "Traceback" not in r.stderr + r.stdout, r.describe()
    last = r.stderr.strip("\n").splitlines()[-1]
    assert last.startswith("nnft: error: ") and "tcp://127.0.0.1:1" in last, r.describe()
    reference = runs["max-order"]  # same command, fails at once before sampling
    assert r.seconds < reference.seconds + DASK_EXTRA_S, \
        f"{r.seconds:.1f} s vs {reference.seconds:.1f} s for an immediate error\n" + r.describe()
    assert r.written() == [], f"files written: {r.written()}"



def test_unreachable_dask_scheduler_error_is_the_only_stderr_line(runs: dict[str, Run]) -> None:
    r = runs["dask-unreachable"]
    assert len(r.stderr.strip("\n").splitlines()) == 1, r.describe()


def test_width_error_came_through_the_console_script(runs: dict[str, Run]) -> None:
    assert SCRIPT.exists(), "the editable install puts the nnft console script next to the interpreter"
    assert runs["width"].returncode == 2


# -- in-process: the same entry point, without a new interpreter --------------------------------------------


@pytest.mark.parametrize("name", list(BAD_IN_PROCESS))
def test_bad_input_in_process(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture, run_cli) -> None:
    args, files, words = BAD_IN_PROCESS[name]
    for fname, text in files.items():
        (tmp_path / fname).write_text(text)
    monkeypatch.chdir(tmp_path)
    code = run_cli(args)
    out, err = capsys.readouterr()
    lines = err.strip("\n").splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("nnft: error: "), err
    assert any(w in lines[0] for w in words), f"error line names none of {words}: {lines[0]!r}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files), "files were written"


def test_help_lists_commands(capsys: pytest.CaptureFixture, run_cli) -> None:
    assert run_cli(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("kernel", "ensemble", "correlators", "validate", "report"):
        assert cmd in out
