"""μTransfer (Tensor Programs V, arXiv:2203.03466; PHYSICS.md §8): the optimal learning rate is width-stable
under μP and drifts under SP.

The sweep test trains 11 base learning rates (2^-14..2^-4) × 4 widths (64..512) × 2 parameterizations with
Adam for 40 full-batch steps on 32 points. Theory (asymptotic, power counting of the first step, see
nnft.dynamics.transfer): SP's optimum η* ∝ n^{-3/2} for Adam with two hidden layers (a slope −3/2 of
log2 η* against log2 n; SGD would give −1); μP's slope is 0. The optimum is located to about ±0.3 in log2
(parabola through a grid minimum with spacing 1, curves averaged over the last quarter of training), so with
four widths the fitted slope has an error of ~0.15; finite-width curvature adds a similar amount. We assert
each slope within 0.35 of its theory value — the acceptance regions [−0.35, 0.35] and [−1.85, −1.15] are
far apart — and the total drift across the three doublings: |Δ log2 η*| < 1 (one grid step) for μP,
Δ log2 η* < −2 for SP (under half the asymptotic −4.5).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from nnft import ConfigError
from nnft.dynamics.coordcheck import mlp_model, regression_task
from nnft.dynamics.parameterize import param_groups, parameterize
from nnft.dynamics.transfer import BatchedNet, lr_sweep, optimal_log2_lr, sp_optimum_exponent, train_batched
from nnft.spec import Parameterization


def test_sp_optimum_exponents() -> None:
    assert sp_optimum_exponent("adam", 2) == -1.5 and sp_optimum_exponent("adam", 1) == -1.0
    assert sp_optimum_exponent("sgd", 3) == -1.0
    with pytest.raises(ConfigError, match="optimizer"):
        sp_optimum_exponent("lion", 2)


def test_parabola_vertex_is_exact_for_a_parabola() -> None:
    grid = np.arange(-10.0, -2.0)
    for g0 in (-7.3, -6.0, -5.51):
        value, edge = optimal_log2_lr(grid, 0.7 * (grid - g0) ** 2 - 3.0)
        assert value == pytest.approx(g0, abs=1e-12) and not edge
    # minimum at the edge, or next to a diverged run: reported as the grid point, flagged
    assert optimal_log2_lr(grid, -grid) == (-3.0, True)
    f = (grid + 6.0) ** 2
    f[5] = np.inf
    assert optimal_log2_lr(grid, f) == (-6.0, True)
    with pytest.raises(ConfigError, match="log_loss"):
        optimal_log2_lr(grid, np.full(grid.shape, np.inf))


@pytest.mark.parametrize("name,optimizer", [("mup", "sgd"), ("mup", "adam"), ("ntk", "sgd"),
                                            (Parameterization("mup", form="multiplier", base_width=16), "adam")],
                         ids=["mup-sgd", "mup-adam", "ntk-sgd", "mup-multiplier-adam"])
def test_batched_trainer_matches_torch_optim(name, optimizer: str) -> None:
    """Oracle: the batched trainer (stacked replicas, hand-written SGD/Adam) and parameterize() + param_groups +
    torch.optim follow the same loss trajectory for every replica's learning rate (float32 round-off)."""
    p = Parameterization(name, base_width=16) if name == "mup" else (Parameterization(name) if isinstance(name, str)
                                                                      else name)
    x, y = regression_task(12, 3, seed=4)
    lrs = [0.003, 0.03] if optimizer == "adam" else [0.01, 0.1]
    model0 = parameterize(mlp_model(3, 48, 2), p, generator=torch.Generator().manual_seed(9), std=1.3, bias_std=0.4)
    lins = [model0[0], model0[2], model0[4]]
    stored_w = [l.parametrizations.weight.original.detach() for l in lins]
    stored_b = [l.parametrizations.bias.original.detach() for l in lins]
    ws = [l.parametrizations.weight[0].scales for l in lins]
    bs = [l.parametrizations.bias[0].scales for l in lins]
    net = BatchedNet([w.expand(len(lrs), *w.shape).clone() for w in stored_w],
                     [b.expand(len(lrs), 1, *b.shape).clone() for b in stored_b], ws, bs, "relu")
    batched = train_batched(net, x, y, torch.tensor(lrs), steps=6, optimizer=optimizer)
    for r, lr in enumerate(lrs):
        model = parameterize(mlp_model(3, 48, 2), p, generator=torch.Generator().manual_seed(9), std=1.3,
                             bias_std=0.4)
        groups = param_groups(model, lr, optimizer)
        opt = torch.optim.SGD(groups, lr=lr) if optimizer == "sgd" else torch.optim.Adam(groups, lr=lr)
        ref = []
        for t in range(7):
            loss = 0.5 * (model(x) - y).pow(2).mean()
            ref.append(float(loss.detach()))
            if t < 6:
                opt.zero_grad()
                loss.backward()
                opt.step()
        assert np.allclose(batched[:, r].numpy(), ref, rtol=1e-4, atol=1e-6), (r, batched[:, r], ref)
        assert ref[-1] < 0.9 * ref[0]  # it trained


def test_optimal_lr_transfers_under_mup_and_drifts_under_sp() -> None:
    kw = dict(widths=(64, 128, 256, 512), log2_lrs=tuple(range(-14, -3)), steps=40, optimizer="adam", n_points=32,
              n_seeds=1, seed=0)
    sp, mup = lr_sweep("standard", **kw), lr_sweep("mup", **kw)
    opt_sp, edge_sp = sp.optimum()
    opt_mup, edge_mup = mup.optimum()
    assert not edge_sp.any() and not edge_mup.any(), (opt_sp, opt_mup)
    assert abs(mup.drift_slope()) < 0.35 and abs(mup.drift()) < 1.0, opt_mup
    assert abs(sp.drift_slope() - sp_optimum_exponent("adam", 2)) < 0.35 and sp.drift() < -2.0, opt_sp
    # μP at the base width is SP: identical curves there
    assert np.array_equal(sp.loss[0], mup.loss[0])


@pytest.mark.parametrize("kwargs,where", [({"widths": (64,)}, "widths"), ({"log2_lrs": (1, 0, 2)}, "log2_lrs"),
                                          ({"optimizer": "lion"}, "optimizer"), ({"steps": 0}, "steps"),
                                          ({"average_last": 100}, "average_last")])
def test_lr_sweep_bad_input(kwargs: dict, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        lr_sweep("mup", **{"widths": (8, 16), "steps": 4, **kwargs})
    assert str(e.value).startswith(where)
