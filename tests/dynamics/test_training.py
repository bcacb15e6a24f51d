"""Ensemble training (:mod:`nnft.dynamics.training`, :mod:`nnft.dynamics.batched_mlp`) and ``nnft train``.

Oracles: torch.autograd for the hand-written gradients, torch.func.jacrev (and the ntk helper's
``empirical_ntk``) for the structured NTK, torch.optim.Adam for the vectorized Adam, the ensemble sampler
for the initialization, and the first-order relation f_1 − f_0 = −(η/|D|) Θ_0 (f_0 − Y) between one GD step
and the recorded NTK (which ties the trainer's learning-rate factors to the NTK's rates λ).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from nnft.errors import ConfigError
from nnft.spec import Parameterization, mlp
from nnft.dynamics.batched_mlp import layer_rates
from nnft.dynamics.training import TrainConfig, init_networks, minibatch_indices, train

PARAMS = ("standard", "ntk", "mean_field", "mup")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: torch's intra-op threads only contend on a shared 2-core machine. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _deep(param: str, act: str = "tanh", width: int = 7):
    return mlp(2, [width, width + 2], activation=act, sigma_w=1.3, sigma_b=0.4, parameterization=param)


def _data(n: int = 6, d: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, np.sin(x.sum(1))


def _functional(net, i: int):
    """Network i of a BatchedMLP as (params dict, f(params, x) -> (M,)), for autograd / torch.func."""
    params = {}
    for l, (w, b) in enumerate(zip(net.w, net.b)):
        params[f"w{l}"] = w[i].detach().clone()
        if b is not None:
            params[f"b{l}"] = b[i].detach().clone()

    def f(p, x):
        h = x
        for l, r in enumerate(net.rates):
            z = r.multiplier_w * h @ p[f"w{l}"].T
            if f"b{l}" in p:
                z = z + r.multiplier_b * p[f"b{l}"]
            h = net.act(z) if l < len(net.rates) - 1 else z
        return h[..., 0]

    return params, f


def _lambdas(net):
    out = {}
    for l, r in enumerate(net.rates):
        out[f"w{l}"], out[f"b{l}"] = r.sgd_w, r.sgd_b
    return out


# ------------------------------------------------------------------------------------------------------
# gradients and the structured NTK
# ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("param", PARAMS)
def test_gradients_match_autograd(param: str) -> None:
    spec = _deep(param)
    net = init_networks(spec, 0, 3, seed=5, dtype=torch.float64)
    x, y = _data()
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    loss, grads = net.loss_and_grads(xt, yt)
    names = [k for k in _functional(net, 0)[0]]
    for i in range(3):
        p, f = _functional(net, i)
        for v in p.values():
            v.requires_grad_(True)
        li = 0.5 * ((f(p, xt) - yt) ** 2).mean()
        auto = torch.autograd.grad(li, list(p.values()))
        assert torch.allclose(loss[i], li.detach(), rtol=1e-14, atol=0)
        for name, g_auto, g in zip(names, auto, grads):
            assert torch.allclose(g[i], g_auto, rtol=1e-11, atol=1e-14), (param, name)


@pytest.mark.parametrize("param,act", [("ntk", "erf"), ("standard", "relu"), ("mup", "tanh"),
                                       ("mean_field", "gelu")])
def test_structured_ntk_matches_jacrev(param: str, act: str) -> None:
    """Θ = Σ_i λ_i ∂φ(x)/∂θ_i ∂φ(x')/∂θ_i with torch.func Jacobians of one network at a time."""
    from torch.func import jacrev

    spec = _deep(param, act)
    net = init_networks(spec, 0, 2, seed=1, dtype=torch.float64)
    x1 = torch.as_tensor(_data(5, seed=2)[0])
    x2 = torch.as_tensor(_data(4, seed=3)[0])
    theta = net.ntk(x1, x2)
    lam = _lambdas(net)
    for i in range(2):
        p, f = _functional(net, i)
        j1, j2 = jacrev(f)(p, x1), jacrev(f)(p, x2)
        ref = sum(lam[k] * j1[k].reshape(5, -1) @ j2[k].reshape(4, -1).T for k in p)
        assert torch.allclose(theta[i], ref, rtol=1e-11, atol=1e-13), (param, act)
    sym = net.ntk(x1)
    assert torch.allclose(sym, sym.transpose(1, 2), rtol=0, atol=1e-13)


def test_structured_ntk_matches_empirical_ntk_module() -> None:
    """Second oracle: the ntk helper's torch.func ``empirical_ntk`` on an ``nn.Module`` with the same
    multipliers and rates."""
    from nnft.dynamics.ntk import MLPParams, ScaledMLP, empirical_ntk

    spec = _deep("mup", "erf")
    net = init_networks(spec, 0, 1, seed=4, dtype=torch.float64)
    params = MLPParams(weights=tuple(w[0] for w in net.w), biases=tuple(b[0] for b in net.b), activations="erf",
                       weight_multipliers=tuple(r.multiplier_w for r in net.rates),
                       bias_multipliers=tuple(r.multiplier_b for r in net.rates))
    rates = {}
    for l, r in enumerate(net.rates):
        rates[f"layers.{l}.weight"], rates[f"layers.{l}.bias"] = r.sgd_w, r.sgd_b
    x = torch.as_tensor(_data(6, seed=9)[0])
    ref = empirical_ntk(ScaledMLP(params), x, rates=rates)
    assert torch.allclose(net.ntk(x)[0], ref, rtol=1e-11, atol=1e-13)


def test_feature_kernels_by_hand() -> None:
    spec = _deep("ntk", "relu")
    net = init_networks(spec, 0, 2, seed=0, dtype=torch.float64)
    x = torch.as_tensor(_data(5)[0])
    phis = net.feature_kernels(x)
    r0, r1 = net.rates[0], net.rates[1]
    a1 = torch.relu(r0.multiplier_w * x @ net.w[0][1].T + r0.multiplier_b * net.b[0][1])
    a2 = torch.relu(r1.multiplier_w * a1 @ net.w[1][1].T + r1.multiplier_b * net.b[1][1])
    assert torch.allclose(phis[0][1], a1 @ a1.T / a1.shape[1], rtol=1e-13)
    assert torch.allclose(phis[1][1], a2 @ a2.T / a2.shape[1], rtol=1e-13)


# ------------------------------------------------------------------------------------------------------
# parameterization, initialization, seeds
# ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("param", PARAMS)
def test_layer_rates_read_the_parameterization(param: str) -> None:
    spec = _deep(param)
    p = Parameterization(param)
    rates = layer_rates(spec)
    for l, (layer, fan_in) in enumerate(zip(spec.layers, spec.fan_ins)):
        s = p.layer_scales(l, 3, fan_in, layer.width, std=1.3)
        b = p.bias_scales(l, 3, layer.width, std=0.4)
        assert (rates[l].multiplier_w, rates[l].init_w, rates[l].sgd_w, rates[l].adam_w) == \
            (s.multiplier, s.init_std, s.sgd_lr, s.adam_lr)
        assert (rates[l].multiplier_b, rates[l].init_b, rates[l].sgd_b, rates[l].adam_b) == \
            (b.multiplier, b.init_std, b.sgd_lr, b.adam_lr)


@pytest.mark.parametrize("param", ("standard", "ntk"))
def test_init_is_the_sampled_ensemble(param: str) -> None:
    """Standard/NTK: step-0 outputs = the networks nnft.measure samples (chunk_generator(seed, c), chunk C)."""
    from nnft.ensemble.sampling import chunk_generator, evaluate, sample_networks

    spec = _deep(param, "erf")
    x, _ = _data(5)
    net = init_networks(spec, 0, 20, seed=3, init_chunk=8, dtype=torch.float64)
    got = net(torch.as_tensor(x))
    ref = torch.cat([evaluate(spec, sample_networks(spec, 8, chunk_generator(3, c), dtype=torch.float64),
                              torch.as_tensor(x))[..., 0] for c in range(3)])[:20]
    assert torch.allclose(got, ref, rtol=1e-12, atol=1e-13)


def test_network_i_independent_of_batching() -> None:
    """Network i's init and trajectory do not depend on n_networks or network_batch (also per-network SGD)."""
    spec = _deep("mup", "erf")
    x, y = _data(8)
    base = dict(steps=6, lr=0.05, optimizer="sgd", batch_size=3, shuffle="per_network", seed=11, data_seed=2,
                dtype="float64", init_chunk=4)
    full = train(spec, x, y, TrainConfig(n_networks=7, **base), x_test=x[:2])
    for extra in (dict(n_networks=7, network_batch=1), dict(n_networks=7, network_batch=3),
                  dict(n_networks=5, network_batch=2)):
        part = train(spec, x, y, TrainConfig(**base, **extra), x_test=x[:2])
        n = extra["n_networks"]
        assert torch.allclose(part.train_predictions[0], full.train_predictions[0][:n], rtol=1e-14, atol=1e-15)
        assert torch.allclose(part.test_predictions, full.test_predictions[:, :n], rtol=1e-12, atol=1e-14)
        assert torch.allclose(part.loss, full.loss[:n], rtol=1e-12, atol=1e-15)
        assert torch.allclose(part.ntk_final, full.ntk_final[:n], rtol=1e-12, atol=1e-14)


def test_init_slices_are_bitwise_identical() -> None:
    """The stored parameters of networks start..stop−1 are the same bits whatever else is initialized."""
    spec = _deep("mup", "erf")
    full = init_networks(spec, 0, 13, seed=2, init_chunk=4)
    for start, stop in ((0, 1), (3, 9), (12, 13)):
        part = init_networks(spec, start, stop, seed=2, init_chunk=4)
        for a, b in zip(full.w + full.b, part.w + part.b):
            assert torch.equal(a[start:stop], b)


def test_seeds_change_networks() -> None:
    spec = _deep("ntk")
    x, _ = _data()
    a = init_networks(spec, 0, 2, seed=0)(torch.as_tensor(x))
    b = init_networks(spec, 0, 2, seed=1)(torch.as_tensor(x))
    assert not torch.allclose(a, b)
    assert not torch.allclose(a[0], a[1])


def test_minibatch_indices_are_epoch_permutations() -> None:
    idx = np.concatenate([minibatch_indices(7, [0, 1, 2], k, 10, 3) for k in range(3)], axis=1)  # one epoch
    assert idx.shape == (3, 9)
    for row in idx:
        assert len(set(row.tolist())) == 9 and set(row.tolist()) <= set(range(10))
    assert not np.array_equal(idx[0], idx[1])  # per-network streams differ
    nxt = minibatch_indices(7, [0], 3, 10, 3)  # next epoch: a new order
    assert not np.array_equal(nxt[0], idx[0, :3])
    assert np.array_equal(minibatch_indices(7, [2], 1, 10, 3)[0], idx[2, 3:6])  # a pure function of indices


# ------------------------------------------------------------------------------------------------------
# optimizers
# ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("param", PARAMS)
def test_one_gd_step_is_the_ntk_step(param: str) -> None:
    """f_1(X) − f_0(X) = −(η/|D|) Θ_0(X, X)(f_0(X) − Y) + O(η²): the recorded NTK's rates are the trainer's."""
    spec = _deep(param, "erf", width=12)
    x, y = _data(6)
    eta = 1e-5
    res = train(spec, x, y, TrainConfig(steps=1, lr=eta, n_networks=3, dtype="float64"))
    f0, f1 = res.train_predictions
    pred = -(eta / 6) * torch.einsum("nab,nb->na", res.ntk_initial, f0 - res.y_train)
    assert torch.allclose(f1 - f0, pred, rtol=1e-4, atol=1e-14 * float(pred.abs().max())), param


def test_sgd_full_batch_equals_gd() -> None:
    spec = _deep("ntk")
    x, y = _data(6)
    gd = train(spec, x, y, TrainConfig(steps=5, lr=0.3, n_networks=2, dtype="float64"))
    sgd = train(spec, x, y, TrainConfig(steps=5, lr=0.3, n_networks=2, dtype="float64", optimizer="sgd"))
    assert torch.allclose(gd.loss, sgd.loss, rtol=1e-13)


def test_shared_minibatches_by_hand() -> None:
    """Shared SGD: every network steps on the same minibatch; check step 1 against a by-hand update."""
    spec = _deep("standard")
    x, y = _data(8)
    cfg = TrainConfig(steps=1, lr=0.1, n_networks=2, optimizer="sgd", batch_size=4, data_seed=5, dtype="float64")
    res = train(spec, x, y, cfg)
    net = init_networks(spec, 0, 2, seed=0, dtype=torch.float64)
    idx = torch.as_tensor(minibatch_indices(5, [0], 0, 8, 4)[0])
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    _, grads = net.loss_and_grads(xt[idx], yt[idx])
    for (p, factor, _), g in zip(net.parameters(), grads):
        p.sub_(g, alpha=0.1 * factor)
    assert torch.allclose(res.train_predictions[-1], net(xt), rtol=1e-13)


def test_adam_matches_torch_optim() -> None:
    """Vectorized Adam with per-layer factors = torch.optim.Adam with one param group per tensor (μP)."""
    spec = _deep("mup", "tanh", width=9)
    x, y = _data(6)
    cfg = TrainConfig(steps=5, lr=0.02, n_networks=2, optimizer="adam", dtype="float64", betas=(0.8, 0.95),
                      eps=1e-7)
    res = train(spec, x, y, cfg)
    net = init_networks(spec, 0, 2, seed=0, dtype=torch.float64)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for i in range(2):
        p, f = _functional(net, i)
        factors = {}
        for l, r in enumerate(net.rates):
            factors[f"w{l}"], factors[f"b{l}"] = r.adam_w, r.adam_b
        for v in p.values():
            v.requires_grad_(True)
        opt = torch.optim.Adam([{"params": [v], "lr": 0.02 * factors[k]} for k, v in p.items()], betas=(0.8, 0.95),
                               eps=1e-7)
        for _ in range(5):
            opt.zero_grad()
            (0.5 * ((f(p, xt) - yt) ** 2).mean()).backward()
            opt.step()
        with torch.no_grad():
            assert torch.allclose(res.train_predictions[-1][i], f(p, xt), rtol=1e-11, atol=1e-13)


def test_float32_agrees_with_float64() -> None:
    spec = _deep("ntk", "erf")
    x, y = _data(6)
    r64 = train(spec, x, y, TrainConfig(steps=20, lr=0.5, n_networks=3, dtype="float64"), x_test=x[:3])
    r32 = train(spec, x, y, TrainConfig(steps=20, lr=0.5, n_networks=3, dtype="float32"), x_test=x[:3])
    assert torch.allclose(r32.test_predictions, r64.test_predictions, rtol=1e-4, atol=1e-5)
    assert float(r64.loss[:, -1].max()) < float(r64.loss[:, 0].min())  # it trains


def test_history_shapes_and_progress() -> None:
    spec = _deep("ntk")
    x, y = _data(6)
    calls = []
    res = train(spec, x, y, TrainConfig(steps=4, lr=0.1, n_networks=3, network_batch=2), x_test=x[:5],
                probe=x[:4], record_steps=[2], progress=lambda done, total: calls.append((done, total)))
    assert res.record_steps == (0, 2, 4)
    assert res.loss.shape == (3, 5) and res.train_predictions.shape == (3, 3, 6)
    assert res.test_predictions.shape == (3, 3, 5) and res.ntk_initial.shape == (3, 4, 4)
    assert len(res.features_final) == 2 and res.feature_movement().shape == (2, 3)
    assert calls[-1] == (12, 12) and all(a[0] < b[0] for a, b in zip(calls, calls[1:]))
    arrays = res.arrays()
    assert {"loss", "test_predictions", "ntk_final", "features1_initial"} <= set(arrays)
    json.dumps(res.meta())


def test_threads_option_is_restored() -> None:
    spec = _deep("ntk")
    x, y = _data(6)
    seen = []
    before = torch.get_num_threads()
    train(spec, x, y, TrainConfig(steps=2, lr=0.1, threads=2),
          progress=lambda done, total: seen.append(torch.get_num_threads()))
    assert seen == [2, 2] and torch.get_num_threads() == before


def test_gauss_net_trains() -> None:
    """Gauss-net's neuron reads the pre-activation variance q(x): training (also minibatches) must carry it."""
    from nnft.spec import gauss_net

    spec = replace(gauss_net(16), parameterization=Parameterization("ntk"))
    x = np.linspace(-0.5, 0.5, 6)[:, None]
    res = train(spec, x, np.cos(3 * x[:, 0]), TrainConfig(steps=30, lr=0.3, n_networks=2, optimizer="sgd",
                                                         batch_size=3, dtype="float64"))
    assert bool(torch.isfinite(res.loss).all()) and float(res.loss[:, -1].mean()) < float(res.loss[:, 0].mean())
    from nnft.theory.kernels import preactivation_variances

    net = init_networks(spec, 0, 2, seed=0, dtype=torch.float64)
    xt = torch.as_tensor(x)
    q = preactivation_variances(spec, x)
    assert torch.equal(net.ntk(xt), net.ntk(xt, q1=q))  # default q: the spec's variances at the inputs
    z = net.rates[0].multiplier_w * xt @ net.w[0][0].T + net.rates[0].multiplier_b * net.b[0][0]
    h = torch.exp(z - q[0][:, None])  # σ(z; q) = exp(z − q)
    ref = net.rates[1].multiplier_w * h @ net.w[1][0].T + net.rates[1].multiplier_b * net.b[1][0]
    assert torch.allclose(net(xt)[0], ref[:, 0], rtol=1e-13)


@pytest.mark.parametrize("kwargs,param", [
    (dict(steps=-1, lr=0.1), "TrainConfig.steps"), (dict(steps=1, lr=0.0), "TrainConfig.lr"),
    (dict(steps=1, lr=0.1, optimizer="lbfgs"), "TrainConfig.optimizer"),
    (dict(steps=1, lr=0.1, batch_size=2), "TrainConfig.batch_size"),
    (dict(steps=1, lr=0.1, shuffle="random"), "TrainConfig.shuffle"),
    (dict(steps=1, lr=0.1, dtype="float16"), "TrainConfig.dtype"),
    (dict(steps=1, lr=0.1, betas=(0.9, 1.0)), "TrainConfig.betas"),
    (dict(steps=1, lr=0.1, device="gpu!"), "TrainConfig.device"),
    (dict(steps=1, lr=0.1, threads=0), "TrainConfig.threads")])
def test_bad_config(kwargs: dict, param: str) -> None:
    with pytest.raises(ConfigError, match=param.replace(".", r"\.")):
        TrainConfig(**kwargs)


def test_bad_inputs() -> None:
    from nnft.spec import scalar_net

    spec = _deep("ntk")
    x, y = _data(6)
    cfg = TrainConfig(steps=1, lr=0.1)
    with pytest.raises(ConfigError, match="y_train.shape"):
        train(spec, x, y[:4], cfg)
    with pytest.raises(ConfigError, match="x_train"):
        train(spec, x[:, :1], y, cfg)
    with pytest.raises(ConfigError, match="y_train"):
        train(spec, x, np.full(6, np.nan), cfg)
    with pytest.raises(ConfigError, match="batch_size"):
        train(spec, x, y, TrainConfig(steps=1, lr=0.1, optimizer="sgd", batch_size=7))
    with pytest.raises(ConfigError, match="spec.amplitude"):
        train(scalar_net(8), x[:, :1], y, cfg)
    with pytest.raises(ConfigError, match="spec.d_out"):
        train(mlp(2, [4], 2), x, y, cfg)
    with pytest.raises(ConfigError, match="record_steps"):
        train(spec, x, y, cfg, record_steps=[5])


# ------------------------------------------------------------------------------------------------------
# CLI: nnft train
# ------------------------------------------------------------------------------------------------------

def test_cli_train_toy(run_cli, tmp_path, capsys) -> None:
    import nnft._cli_train  # noqa: F401  (registers the command)

    stem = tmp_path / "out" / "run"
    code = run_cli(["train", "--preset", "erf-net", "--width", "64", "--param", "ntk", "--n-networks", "4",
                    "--steps", "20", "--lr", "0.5", "--seed", "3", "--out", str(stem)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "final loss" in captured.out and "NTK movement" in captured.out and "frozen" in captured.out
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["kind"] == "training" and meta["training"]["seed"] == 3
    assert meta["architecture"]["parameterization"] == "ntk"
    with np.load(stem.with_suffix(".npz")) as data:
        assert data["loss"].shape == (4, 21) and "linearized" in data.files


def test_cli_train_files(run_cli, tmp_path, capsys) -> None:
    import nnft._cli_train  # noqa: F401

    rng = np.random.default_rng(0)
    xy = np.column_stack([rng.standard_normal((10, 2)), rng.standard_normal(10)])
    np.savetxt(tmp_path / "train.csv", xy, delimiter=",")
    np.save(tmp_path / "test.npy", xy[:4])
    code = run_cli(["train", "--preset", "relu-net", "--d", "2", "--width", "32", "--param", "mup", "--optimizer",
                    "adam", "--lr", "0.01", "--steps", "10", "--n-networks", "2", "--batch-size", "5",
                    "--train-file", str(tmp_path / "train.csv"), "--test-file", str(tmp_path / "test.npy")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "test loss" in captured.out and "n/a" in captured.out  # no frozen-NTK prediction for Adam


@pytest.mark.parametrize("argv,message", [
    (["--param", "sp"], "--param"), (["--optimizer", "newton"], "--optimizer"),
    (["--train-file", "missing.csv"], "--train-file"), (["--steps", "-3"], "--steps"),
    (["--lr", "1000", "--param", "ntk"], "lr"), (["--preset", "scalar-net"], "spec.amplitude")])
def test_cli_train_bad_input(run_cli, tmp_path, capsys, monkeypatch, argv, message) -> None:
    import nnft._cli_train  # noqa: F401

    monkeypatch.chdir(tmp_path)
    code = run_cli(["train", "--steps", "2", "--n-networks", "2", "--out", "res", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert err.strip().count("\n") == 0  # one line
    assert not list(tmp_path.iterdir())  # no partial output
