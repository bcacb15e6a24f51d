"""Universal approximation measured: targets, random features, training, rate fits and the `nnft uat` CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nnft._cli_uat  # noqa: F401  (registers `nnft uat` before the lead wires it into nnft.cli)
from nnft.errors import ConfigError
from nnft.expressivity.targets import TARGETS, cube_grid, target
from nnft.expressivity.uat import (RandomFeatures, Trained, approximation_errors, fit_rate, uat_spec)
from nnft.ensemble.sampling import chunk_generator, sample_networks


def test_targets_and_grid() -> None:
    x = torch.tensor([[0.0, 0.0], [0.5, -0.5], [-1.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(target("smooth", 2)(x), torch.exp(-(x * x).sum(1)))
    assert torch.allclose(target("abs", 2)(x), torch.tensor([0.0, math.sqrt(0.5), math.sqrt(2.0)], dtype=torch.float64))
    assert torch.allclose(target("max", 2)(x), torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert torch.allclose(target("osc", 1)(torch.tensor([[0.1]], dtype=torch.float64)),
                          torch.tensor([math.sin(0.5 * math.pi)], dtype=torch.float64))
    g = cube_grid(2, 5)
    assert g.shape == (25, 2) and float(g.min()) == -1.0 and float(g.max()) == 1.0
    assert set(TARGETS) == {"smooth", "abs", "max", "osc"}
    with pytest.raises(ConfigError, match="target"):
        target("tent", 1)


def test_random_features_readout_is_the_least_squares_solution() -> None:
    """The readout against an independent solve (numpy SVD least squares on the same features). Both cut
    singular values below 1e-12 σ_max; the discarded near-null directions make the two agree to ~1e-8
    relative (thread-count dependent), hence rel = 1e-6."""
    f, n = target("abs", 1), 24
    res = approximation_errors(f, [n], n_seeds=2, seed=3, fit_points=257, eval_points=257)
    spec = uat_spec(1).with_width(n)
    nets = sample_networks(spec, 2, chunk_generator(3, n), dtype=torch.float64)
    x = cube_grid(1, 257).numpy()
    for s in range(2):
        w, c = nets.weights[0][s].numpy(), nets.biases[0][s].numpy()
        h = np.concatenate([np.tanh(x @ w.T + c), np.ones((len(x), 1))], axis=1)
        coef = np.linalg.lstsq(h, np.abs(x[:, 0]), rcond=1e-12)[0]
        resid = h @ coef - np.abs(x[:, 0])
        assert res.sup[s, 0] == pytest.approx(np.abs(resid).max(), rel=1e-6)
        assert res.l2[s, 0] == pytest.approx(np.sqrt((resid**2).mean()), rel=1e-6)


def test_random_features_error_falls_with_width() -> None:
    """exp(−x²) in d = 1: spectral convergence (slope far below Barron's −1/2), sup < 1e-6 at N = 128;
    |x|: algebraic, about N^(−1) in sup norm."""
    smooth = approximation_errors(target("smooth", 1), [8, 16, 32, 64, 128], n_seeds=3, fit_points=513,
                                  eval_points=2049)
    rate = smooth.rate("l2")
    assert rate.slope + 3 * rate.stderr < -2.0 and rate.t < -3
    assert smooth.sup[:, -1].max() < 1e-6
    kink = approximation_errors(target("abs", 1), [8, 16, 32, 64, 128], n_seeds=3, fit_points=513,
                                eval_points=2049)
    r = kink.rate("sup")
    assert -1.5 < r.slope < -0.7 and r.t < -3, r


def test_fit_rate_recovers_a_known_power_law() -> None:
    rng = np.random.default_rng(0)
    n = np.array([4, 8, 16, 32, 64, 128])
    errors = 2.0 * n[None, :] ** -1.5 * np.exp(0.05 * rng.standard_normal((6, len(n))))
    r = fit_rate(n, errors)
    assert abs(r.slope + 1.5) < 3 * r.stderr and r.stderr < 0.05
    single = fit_rate(n, errors[:1])  # one seed: the regression standard error
    assert abs(single.slope + 1.5) < 4 * single.stderr
    floored = fit_rate(n, np.maximum(errors, 5e-3), floor=6e-3)  # the floor drops the flat tail
    assert int(floored.widths[-1]) == 32
    with pytest.raises(ConfigError, match="fit_rate"):
        fit_rate(n, np.full((2, len(n)), 1e-12))


def test_vectorized_adam_equals_independent_runs() -> None:
    """Adam on the stacked parameters of S networks (summed loss) is S independent Adams."""
    m = Trained(steps=60, lr=1e-2)
    both = approximation_errors(target("smooth", 1), [6], method=m, n_seeds=2, seed=1, fit_points=65,
                                eval_points=129)
    alone = approximation_errors(target("smooth", 1), [6], method=m, n_seeds=1, seed=1, fit_points=65,
                                 eval_points=129)
    assert both.sup[0, 0] == pytest.approx(alone.sup[0, 0], rel=1e-9)
    assert both.train_loss[0, 0] == pytest.approx(alone.train_loss[0, 0], rel=1e-9)


def test_training_reduces_the_error() -> None:
    init = approximation_errors(target("abs", 1), [16], method=Trained(steps=1, lr=1e-12), n_seeds=2,
                                fit_points=129, eval_points=257)
    adam = approximation_errors(target("abs", 1), [16], method=Trained(steps=300), n_seeds=2, fit_points=129,
                                eval_points=257)
    lbfgs = approximation_errors(target("abs", 1), [16], method=Trained(steps=40, optimizer="lbfgs", lr=1.0),
                                 n_seeds=2, fit_points=129, eval_points=257)
    assert np.all(adam.l2 < 0.2 * init.l2) and np.all(lbfgs.l2 < 0.2 * init.l2)


def test_bad_input() -> None:
    f = target("smooth", 1)
    for kw, param in ((dict(widths=[8, 4]), "widths"), (dict(widths=[4], n_seeds=0), "n_seeds"),
                      (dict(widths=[4], spec=uat_spec(2)), "spec.d_in"),
                      (dict(widths=[64], fit_points=17), "fit_points")):
        with pytest.raises(ConfigError, match=param):
            approximation_errors(f, **kw)
    with pytest.raises(ConfigError, match="RandomFeatures.rcond"):
        RandomFeatures(rcond=0.0)
    with pytest.raises(ConfigError, match="Trained.optimizer"):
        Trained(optimizer="sgd")


def test_cli_uat(run_cli, tmp_path, capsys) -> None:
    stem, png = tmp_path / "u", tmp_path / "u.png"
    code = run_cli(["uat", "--target", "abs", "--widths", "4,8,16,32", "--n-seeds", "2", "--method", "both",
                    "--steps", "30", "--out", str(stem), "--plot", str(png)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Fitted rates" in captured.out and "random-features" in captured.out
    assert stem.with_suffix(".json").exists() and stem.with_suffix(".npz").exists()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad"
    for argv, word in ((["uat", "--target", "tent"], "--target"), (["uat", "--widths", "8,4"], "--widths"),
                       (["uat", "--method", "sgd"], "--method"), (["uat", "--plot", str(bad / "x.pdf")], "--plot")):
        assert run_cli(argv + ["--out", str(bad / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and word in err, err
    assert not bad.exists()
