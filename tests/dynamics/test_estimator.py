"""KernelRegressor (scikit-learn contract), tiled kernel matrices (in-process and Dask), and `nnft ntk`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nnft import _cli_ntk  # registers `nnft ntk` (until the lead imports it from cli.py)
from nnft.dynamics.estimator import KernelRegressor
from nnft.dynamics.predict import infinite_width_prediction
from nnft.dynamics.tiling import kernel_matrices, kernel_matrix
from nnft.errors import ConfigError
from nnft.spec import cos_net, mlp
from nnft.theory.kernels import kernels

SPEC = mlp(2, [256, 256], 1, activation="relu", sigma_w=1.4, sigma_b=0.2, parameterization="ntk")


def _data(n=14, n_test=6, seed=3):
    g = np.random.default_rng(seed)
    x, xt = g.normal(size=(n, 2)), g.normal(size=(n_test, 2))
    return x, np.cos(x[:, 0]) - x[:, 1], xt


# ----------------------------------------------------------------------------------------------------
# tiles
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, tiles", [(SPEC, (1, 4, 5, 11, 50)),
                                         (mlp(2, [8], 1, activation="tanh", parameterization="ntk"), (4,))],
                         ids=["relu-fused", "tanh-quadrature"])
def test_tiles_equal_the_untiled_matrix(spec, tiles):
    x, _, xt = _data(n=11)
    full = kernels(spec, x, ntk=True)
    cross = kernels(spec, x, xt, ntk=True)
    for tile in tiles:
        sym = kernel_matrices(spec, x, ntk=True, tile=tile)
        assert torch.allclose(sym.nngp, full.nngp, rtol=1e-13, atol=0)
        assert torch.allclose(sym.ntk, full.ntk, rtol=1e-13, atol=0)
        assert torch.equal(sym.ntk, sym.ntk.T)
        rect = kernel_matrix(spec, x, xt, kind="ntk", tile=tile)
        assert torch.allclose(rect, cross.ntk, rtol=1e-13, atol=0)


def test_tiles_with_a_monte_carlo_first_layer_reuse_the_same_neurons():
    """A uniform-weight first layer uses the fixed-seed single-neuron Monte Carlo: every tile samples
    the same neurons, so tiling changes nothing (up to round-off)."""
    from nnft.spec import Architecture, Layer, Normal, Uniform

    spec = Architecture(d_in=1, activation="tanh", layers=(Layer(width=8, weight=Uniform(-1.0, 1.0)),
                                                           Layer(width=1, weight=Normal(1.0))))
    x = np.linspace(-1, 1, 7)[:, None]
    full = kernels(spec, x, mc_samples=1 << 14)
    assert full.method == "monte carlo"
    tiled = kernel_matrices(spec, x, tile=3, mc_samples=1 << 14)
    assert torch.allclose(tiled.nngp, full.nngp, rtol=1e-12, atol=0)
    assert tiled.nngp_stderr is not None and tiled.method == "monte carlo"


def test_dask_tiles_equal_in_process_tiles():
    """The Dask path (a LocalCluster of 2 thread workers, processes=False) gives the in-process matrix."""
    from distributed import Client, LocalCluster

    x, _, xt = _data(n=13)
    local = kernel_matrices(SPEC, x, ntk=True, tile=4)
    seen = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = kernel_matrices(SPEC, x, ntk=True, tile=4, executor=client,
                                 progress=lambda done, total: seen.append((done, total)))
        rect = kernel_matrix(SPEC, x, xt, kind="nngp", tile=5, executor=client)
    assert torch.equal(remote.nngp, local.nngp) and torch.equal(remote.ntk, local.ntk)
    assert torch.allclose(rect, kernels(SPEC, x, xt).nngp, rtol=1e-13, atol=0)
    assert seen[-1] == (10, 10)  # 4 row tiles: 4 + 3 + 2 + 1 upper tiles


def test_tiling_bad_input():
    x, _, _ = _data()
    with pytest.raises(ConfigError, match="tile"):
        kernel_matrix(SPEC, x, tile=0)
    with pytest.raises(ConfigError, match="executor"):
        kernel_matrix(SPEC, x, executor="spark")
    with pytest.raises(ConfigError, match="kind"):
        kernel_matrix(SPEC, x, kind="gp")


# ----------------------------------------------------------------------------------------------------
# estimator
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [dict(), dict(t=3.0, lr=0.5), dict(steps=20, lr=0.5),
                                    dict(kind="nngp", noise=0.01), dict(kind="nngp", t=2.0)],
                         ids=["ntk-inf", "ntk-t", "ntk-steps", "nngp-posterior", "nngp-readout-flow"])
def test_estimator_equals_the_functional_api(params):
    x, y, xt = _data()
    est = KernelRegressor(SPEC, **params)
    assert est.fit(x, y) is est
    mean, std = est.predict(xt, return_std=True)
    _, cov = est.predict(xt, return_cov=True)
    ref = infinite_width_prediction(SPEC, x, y, xt, **params)
    assert isinstance(mean, np.ndarray) and mean.shape == (6,)
    np.testing.assert_allclose(est.predict(xt), ref.mean.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean, ref.mean.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov, ref.cov.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(std, ref.std.numpy(), rtol=1e-8, atol=1e-9)


def test_estimator_tiles_interpolation_and_vector_targets():
    x, y, xt = _data()
    y2 = np.stack([y, 2 * y], 1)
    plain = KernelRegressor(SPEC).fit(x, y2)
    tiled = KernelRegressor(SPEC, tile=4).fit(x, y2)
    np.testing.assert_allclose(tiled.predict(xt), plain.predict(xt), rtol=1e-10, atol=1e-12)
    at_train, std = plain.predict(x, return_std=True)
    # t = ∞ interpolates; Θ(x, X) at x = a training point comes from a rectangular kernels() call, whose
    # ReLU arc-cosine loses ~8 digits at coincident points (arccos near ρ = 1), hence 1e-6
    np.testing.assert_allclose(at_train, y2, rtol=0, atol=1e-6)
    assert std.shape == y2.shape and np.all(std < 1e-4)
    assert plain.score(x, y2) == pytest.approx(1.0, abs=1e-12)
    assert plain.score(xt, y2[:6]) < 1.0


def test_estimator_parameters_and_errors():
    x, y, xt = _data()
    est = KernelRegressor(SPEC, kind="nngp")
    assert est.get_params()["kind"] == "nngp" and est.get_params()["spec"] is SPEC
    assert est.set_params(kind="ntk", t=5.0) is est and est.kind == "ntk" and est.t == 5.0
    assert "KernelRegressor(" in repr(est)
    with pytest.raises(ConfigError, match="KernelRegressor.predict: got 'an unfitted estimator'"):
        est.predict(xt)
    with pytest.raises(ConfigError, match="KernelRegressor.set_params"):
        est.set_params(alpha=1.0)
    with pytest.raises(ConfigError, match=r"y: got '13 targets'"):
        est.fit(x, y[:13])
    with pytest.raises(ConfigError, match=r"X.shape"):
        est.fit(x[:, :1], y)
    with pytest.raises(ConfigError, match="KernelRegressor.kind"):
        KernelRegressor(SPEC, kind="rbf").fit(x, y)
    with pytest.raises(ConfigError, match="KernelRegressor.noise"):
        KernelRegressor(SPEC, t=1.0, noise=0.1).fit(x, y)
    est.fit(x, y)
    with pytest.raises(ConfigError, match=r"X.shape: got \(6, 3\)"):
        est.predict(np.ones((6, 3)))
    with pytest.raises(ConfigError, match="return_std/return_cov"):
        est.predict(xt, return_std=True, return_cov=True)


# ----------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------

def test_cli_regression_writes_a_result(tmp_path, monkeypatch, capsys, run_cli):
    assert callable(_cli_ntk.ntk)
    x, y, xt = _data(n=20)
    np.savetxt(tmp_path / "train.csv", np.c_[x, y], delimiter=",")
    np.save(tmp_path / "test.npy", np.c_[xt, np.cos(xt[:, 0]) - xt[:, 1]])
    monkeypatch.chdir(tmp_path)
    code = run_cli(["ntk", "--d", "2", "--train-file", "train.csv", "--test-file", "test.npy", "--t", "4",
                    "--lr", "0.5", "--out", "res"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ntk flow" in out and "test RMSE" in out
    meta = json.loads((tmp_path / "res.json").read_text())
    arrays = np.load(tmp_path / "res.npz")
    from dataclasses import replace

    from nnft.spec import NTK, erf_net

    spec = replace(erf_net(512, 2), parameterization=NTK)
    ref = infinite_width_prediction(spec, x, y, xt, t=4.0, lr=0.5, cov=False)
    np.testing.assert_allclose(arrays["mean"], ref.mean.numpy(), rtol=1e-10)
    np.testing.assert_allclose(arrays["std"], ref.std.numpy(), rtol=1e-8, atol=1e-12)
    assert meta["regression"]["t"] == 4.0 and math.isfinite(meta["test_rmse"])


def test_cli_empirical_ntk(tmp_path, monkeypatch, capsys, run_cli):
    monkeypatch.chdir(tmp_path)
    code = run_cli(["ntk", "--preset", "relu-net", "--width", "2048", "--d", "2", "--x", "1,0;0,1;0.6,0.8",
                    "--empirical", "--seed", "4", "--out", "emp"])
    out = capsys.readouterr().out
    assert code == 0, out
    meta = json.loads((tmp_path / "emp.json").read_text())
    rel = meta["empirical"]["relative_frobenius_difference"]
    assert 0 < rel < 0.1 and "‖Θ_emp − Θ_∞‖_F" in out
    arrays = np.load(tmp_path / "emp.npz")
    assert arrays["empirical_ntk"].shape == arrays["ntk"].shape == (3, 3)


@pytest.mark.parametrize("args, files, words", [
    (["ntk", "--train-file", "missing.csv"], {}, ["--train-file"]),
    (["ntk", "--d", "2", "--train-file", "bad.csv"], {"bad.csv": "1,2\n3,4\n"}, ["--train-file", "3 columns"]),
    (["ntk", "--train-file", "nan.csv"], {"nan.csv": "1,nan\n"}, ["non-finite"]),
    (["ntk", "--kind", "gp"], {}, ["--kind"]),
    (["ntk", "--test-file", "t.csv"], {"t.csv": "1\n"}, ["--test-file"]),
    (["ntk", "--train-file", "ok.csv", "--t", "2", "--noise", "0.1", "--out", "r"], {"ok.csv": "0,1\n1,2\n"},
     ["noise"]),
    (["ntk", "--train-file", "ok.csv", "--steps", "3", "--lr", "1e6", "--out", "r"], {"ok.csv": "0,1\n1,2\n"},
     ["lr"]),
])
def test_cli_bad_input_is_one_line(args, files, words, tmp_path, monkeypatch, capsys, run_cli):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    code = run_cli(args)
    captured = capsys.readouterr()
    lines = [l for l in captured.err.strip("\n").splitlines() if l.startswith("nnft: error")]
    assert code == 2, captured
    assert len(lines) == 1 and all(w in lines[0] for w in words), captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files), "files were written"


def test_cos_net_regression_reads_any_spec():
    """A non-MLP first layer (uniform phase): the kernels come from the spec's own first-layer rule."""
    spec = cos_net(16, 1)
    x = np.linspace(-2, 2, 9)[:, None]
    y = np.sin(x[:, 0])
    est = KernelRegressor(spec, kind="nngp", noise=1e-4).fit(x, y)
    mean = est.predict(np.array([[0.25]]))
    assert abs(mean[0] - math.sin(0.25)) < 0.02
