"""Coordinate checks and feature-kernel movement vs width (PHYSICS.md §7–8; arXiv:2011.14522, 2203.03466).

Widths 64..1024 (five doublings), fixed base hyperparameters, 1–3 full-batch steps. A slope is the log–log
least-squares slope of the seed-averaged statistic against width; its standard error ``se`` comes from the
scatter of the per-seed slopes. Theory gives the asymptotic slope; finite width adds relative corrections of
order n^{-1/2} (central-limit fluctuations of O(1) coordinates), which tilt a slope fitted from n = 64 by at
most ~ c·64^{-1/2}/2 ≈ 0.06 c. We allow c ≈ 2.5: tolerance = 0.15 + 3 se. The regimes differ by ≥ 0.5 in
slope, so every assertion here fails for the wrong parameterization.

μP / mean-field SGD checks use a zero-initialised readout (Tensor Programs V §D.2 recommends it): with a
random readout the first SGD step is driven by f_0 − y with E|f_0 − y|² = E y² + Var f_0 ∝ 1 + n0/n, an extra
O(n0/n) tilt unrelated to the exponents. Adam is insensitive to the gradient's size, so it uses the plain init.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from nnft import ConfigError
from nnft.dynamics.coordcheck import coord_check, expected_delta_slopes, loglog_slope
from nnft.dynamics.features import feature_kernel, feature_movement, kernel_alignment, kernel_movement
from nnft.spec import Parameterization

WIDTHS = (64, 128, 256, 512, 1024)
ALLOWANCE = 0.15


def _assert_slopes(cc, expected, *, what: str = "delta", step: int = -1) -> None:
    s = cc.slopes(what, step)
    tol = ALLOWANCE + 3 * s.stderr
    assert np.all(np.abs(s.slope - np.asarray(expected)) < tol), (cc.parameterization, s.slope, s.stderr, expected)


def test_ntk_sgd_hidden_updates_fall_as_inverse_sqrt_width() -> None:
    """NTK parameterization (r = ½): Δh^l ∝ n^{-1/2} in the hidden layers, Δφ = Θ(1)."""
    cc = coord_check("ntk", widths=WIDTHS, steps=3, optimizer="sgd", lr=0.01, n_seeds=8, n_points=32)
    _assert_slopes(cc, expected_delta_slopes("ntk", 3))
    assert np.allclose(expected_delta_slopes("ntk", 3), [-0.5, -0.5, 0.0])
    _assert_slopes(cc, [0.0, 0.0, 0.0], what="size")  # the coordinates themselves are O(1)


@pytest.mark.parametrize("name", ["mup", "mean_field"])
def test_mup_and_mean_field_sgd_are_flat(name: str) -> None:
    """μP / MF (r = 0): every layer's update and the output's update are Θ(1)."""
    cc = coord_check(name, widths=WIDTHS, steps=3, optimizer="sgd", lr=0.01, n_seeds=4, n_points=32,
                     zero_readout=True)
    _assert_slopes(cc, expected_delta_slopes(name, 3))
    assert np.allclose(expected_delta_slopes(name, 3), 0.0)


@pytest.mark.parametrize("p,depth", [("mup", 2), (Parameterization("mup", form="multiplier"), 2),
                                     ("mean_field", 1)], ids=["mup", "mup-multiplier-form", "mean-field-L1"])
def test_adam_flat_verifies_starred_adam_exponents(p, depth: int) -> None:
    """The starred PHYSICS.md Adam-LR entries in action: μP (both forms) and mean field (L = 1, Adam LR 0, 0)
    keep Adam's coordinate updates Θ(1) at every width."""
    cc = coord_check(p, widths=WIDTHS, steps=3, optimizer="adam", lr=1e-3, n_seeds=4, n_points=32, depth=depth)
    _assert_slopes(cc, [0.0] * (depth + 1))


@pytest.mark.parametrize("optimizer,lr,expected", [("sgd", 0.01, [-0.5, 0.5, 1.0]), ("adam", 1e-3, [0.0, 1.0, 1.5])])
def test_sp_first_step_grows_with_width(optimizer: str, lr: float, expected: list[float]) -> None:
    """SP with an O(1) learning rate (r = −1, unstable). After one step, by power counting (readout std n^{-1/2},
    hidden activations Θ(1)): SGD moves h^1 by n^{-1/2}, h^2 by n^{1/2} and φ by n; Adam (updates of size η per
    entry) moves h^1 by Θ(1), h^2 by n and φ by n^{3/2}. Under SGD the second step grows faster still (under
    Adam it partly reverses the first: the sign of the gradient flips once the output overshoots)."""
    cc = coord_check("standard", widths=WIDTHS, steps=2, optimizer=optimizer, lr=lr, n_seeds=8, n_points=32)
    _assert_slopes(cc, expected, step=1)
    if optimizer == "sgd":
        assert np.all(cc.slopes("delta", 2).slope > cc.slopes("delta", 1).slope + 0.25)


def test_init_output_scale_is_the_readout_variance_exponent() -> None:
    """At init (no bias) |φ_0| ∝ n^{-1/2} under μP / MF (readout Var(W) ∝ n^{-2}) and Θ(1) under SP / NTK."""
    for name, out in (("standard", 0.0), ("ntk", 0.0), ("mup", -0.5), ("mean_field", -0.5)):
        cc = coord_check(name, widths=WIDTHS, steps=0, n_seeds=10, n_points=16, bias_std=0.0)
        _assert_slopes(cc, [0.0, 0.0, out], what="size", step=0)


def test_user_model_and_bookkeeping() -> None:
    """Any nn.Module of Linear layers runs through model_fn; the result's shapes and slopes are consistent."""
    class Net(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, n), nn.Linear(n, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.tanh(self.a(x)))

    cc = coord_check("mup", widths=(32, 64, 128), steps=2, n_seeds=2, d_in=3, model_fn=Net, optimizer="adam",
                     lr=1e-3)
    assert cc.layers == ("h1", "output") and cc.size.shape == (3, 2, 3, 2) and cc.loss.shape == (3, 2, 3)
    assert np.all(cc.delta[:, :, 0] == 0) and np.all(cc.delta[:, :, 1:] > 0)
    assert np.allclose(cc.slopes().slope, loglog_slope(cc.widths, cc.mean("delta")))
    assert loglog_slope([1, 2, 4], np.array([3.0, 6.0, 12.0])) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs,where", [({"widths": (64,)}, "widths"), ({"optimizer": "rmsprop"}, "optimizer"),
                                          ({"n_seeds": 0}, "n_seeds"), ({"steps": -1}, "steps"),
                                          ({"activation": "swish"}, "activation")])
def test_coord_check_bad_input(kwargs: dict, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        coord_check("mup", **{"widths": (8, 16), **kwargs})
    assert str(e.value).startswith(where)


# ========================================================================================================
# Feature kernels (PHYSICS.md §7)
# ========================================================================================================
def test_feature_kernel_formulas() -> None:
    g = torch.Generator().manual_seed(0)
    f = torch.randn(5, 7, generator=g, dtype=torch.float64)
    phi = feature_kernel(f)
    assert torch.allclose(phi, torch.einsum("am,bm->ab", f, f) / 7)
    assert kernel_movement(phi, phi) == 0.0
    assert kernel_movement(2 * phi, phi) == pytest.approx(1.0)
    y = torch.randn(5, generator=g, dtype=torch.float64)
    assert kernel_alignment(torch.outer(y, y), y) == pytest.approx(1.0)
    assert kernel_alignment(-torch.outer(y, y), y) == pytest.approx(-1.0)


def test_feature_kernel_movement_kernel_regime_vs_mup() -> None:
    """‖Φ_T − Φ_0‖_F/‖Φ_0‖_F after 5 SGD steps: it falls with width under NTK and stays flat under μP.

    PHYSICS.md §7 says "shrinks like N^{-1/2}" in the kernel regime. That is an upper bound: the per-neuron
    first-order updates are ∝ (that neuron's readout weight) · n^{-1/2} with random signs, so in the average
    over N neurons they cancel to O(1/N), and the second-order term is O(1/N) too (Dyer & Gur-Ari
    arXiv:1909.11304; Huang & Yau arXiv:1909.08156). Measured (8 seeds, widths to 2048, experiment
    coord-check): slope −1.0 ± 0.1. Here (cheap) we assert slope < −1/2 + 3 se, and flatness for μP."""
    ntk = feature_movement("ntk", widths=WIDTHS, steps=5, lr=0.01, n_seeds=6)
    mup = feature_movement("mup", widths=WIDTHS, steps=5, lr=0.01, n_seeds=4, zero_readout=True)
    s_ntk, e_ntk = ntk.slopes()
    s_mup, e_mup = mup.slopes()
    assert np.all(s_ntk < -0.5 + 3 * e_ntk), (s_ntk, e_ntk)
    assert np.all(np.abs(s_mup) < ALLOWANCE + 3 * e_mup), (s_mup, e_mup)
    assert np.all(s_mup - s_ntk > 0.5)
    assert ntk.movement.shape == (5, 6, 2) and np.all(np.isfinite(ntk.alignment_T))


# ========================================================================================================
# CLI: nnft coordcheck
# ========================================================================================================
def test_cli_coordcheck_writes_table_result_and_plot(run_cli, tmp_path, capsys) -> None:
    import json

    import nnft._cli_coordcheck  # noqa: F401  (registers the command until the lead imports it in cli.py)

    stem, png = tmp_path / "cc", tmp_path / "cc.png"
    code = run_cli(["coordcheck", "--param", "mup", "--param", "ntk", "--widths", "16,32,64", "--steps", "2",
                    "--seeds", "2", "--optimizer", "adam", "--out", str(stem), "--plot", str(png)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "log–log slope" in captured.out and "mup" in captured.out and "ntk" in captured.out
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["parameterizations"] == ["mup", "ntk"] and meta["widths"] == [16, 32, 64]
    arrays = np.load(stem.with_suffix(".npz"))
    assert arrays["mup_delta"].shape == (3, 2, 3, 3)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv,where", [
    (["--param", "xavier"], "--param"), (["--widths", "64"], "--widths"), (["--widths", "a,b"], "--widths"),
    (["--optimizer", "lion"], "--optimizer"), (["--lr", "-1"], "--lr"), (["--steps", "0"], "--steps"),
])
def test_cli_coordcheck_bad_input(run_cli, tmp_path, capsys, argv: list[str], where: str) -> None:
    import nnft._cli_coordcheck  # noqa: F401

    stem = tmp_path / "out"
    code = run_cli(["coordcheck", "--widths", "8,16", "--out", str(stem), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nnft: error: " + where) and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []
