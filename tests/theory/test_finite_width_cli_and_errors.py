"""`nnft correlators` (in-process) and the finite-width bad-input cases of the issue."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nnft
from nnft.theory.single_layer import single_layer_correlators


def test_correlators_exact_with_stored_measurement(tmp_path: Path, capsys, run_cli) -> None:
    x = "0.2;0.6;1.0"
    meas = tmp_path / "m"
    assert run_cli(["ensemble", "--preset", "relu-net", "--width", "3", "--x", x, "--n-networks", "40000",
                 "--chunk-size", "2000", "--estimator", "readout", "--out", str(meas)]) == 0
    out = tmp_path / "p"
    assert run_cli(["correlators", "--preset", "relu-net", "--width", "3", "--x", x, "--order", "4",
                 "--compare", str(meas) + ".json", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "max |z|" in text
    zline = [ln for ln in text.splitlines() if ln.startswith("max |z|")][0]
    assert float(zline.split("=")[1].split()[0]) < 5
    meta = json.loads((tmp_path / "p.json").read_text())
    assert meta["method"] == "exact" and meta["order"] == 4
    with np.load(tmp_path / "p.npz") as data:
        want = single_layer_correlators(nnft.relu_net(3), [0.2, 0.6, 1.0], 4).connected[4].values
        np.testing.assert_allclose(data["values"], want, rtol=1e-12)


def test_correlators_one_over_n_for_a_deep_net(tmp_path: Path, run_cli) -> None:
    spec = nnft.mlp(1, [32, 32], activation="tanh", sigma_w=1.0, sigma_b=0.3)
    spec.save(tmp_path / "deep.toml")
    assert run_cli(["correlators", "--config", str(tmp_path / "deep.toml"), "--x", "0.3;0.9", "--order", "4",
                 "--out", str(tmp_path / "d")]) == 0
    meta = json.loads((tmp_path / "d.json").read_text())
    assert meta["method"] == "1/N"  # auto: more than one hidden layer
    with np.load(tmp_path / "d.npz") as data:
        want = nnft.deep_correlators(spec, [0.3, 0.9]).connected4.values
        np.testing.assert_allclose(data["values"], want, rtol=1e-10)
    assert run_cli(["correlators", "--config", str(tmp_path / "deep.toml"), "--x", "0.3;0.9",
                 "--method", "exact"]) == 2


@pytest.mark.parametrize("args,word", [
    (["--order", "7"], "--order"),
    (["--order", "6", "--method", "1/N"], "--order"),
    (["--method", "loop"], "--method"),
])
def test_correlators_bad_input(args: list[str], word: str, capsys, run_cli) -> None:
    assert run_cli(["correlators", "--preset", "erf-net", "--x", "0.1;0.5", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnft: error:") and word in err[0]


def test_activation_without_finite_moments_is_a_named_error(tmp_path: Path, monkeypatch) -> None:
    """Cauchy first-layer weights with exp: E[exp(k w x)] is infinite; the single-neuron Monte Carlo sees it."""
    (tmp_path / "heavy_tails.py").write_text(textwrap.dedent("""
        import torch
        def cauchy(shape, generator):
            u = torch.rand(shape, generator=generator, dtype=torch.float64)
            return torch.tan(torch.pi * (u - 0.5))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    layers = (nnft.Layer(width=3, weight=nnft.spec.Sampled("heavy_tails:cauchy", std=1.0), bias=None),
              nnft.Layer(width=1, weight=nnft.Normal(1.0), bias=None))
    spec = nnft.Architecture(d_in=1, layers=layers, activation=nnft.Activation("exp"))
    with pytest.raises(nnft.ConfigError, match="finite single-neuron moments"):
        single_layer_correlators(spec, [300.0, 500.0], 4, mc_samples=1 << 16)
    sys.modules.pop("heavy_tails", None)
