"""KAN sparsity regularisation (nnft.expressivity.kan.sparsity; arXiv:2404.19756 eqs. 2.17–2.20, PHYSICS.md §9).

Checks:
  (a) |φ|_1, |Φ|_1, S(Φ) and λ(μ_1 Σ|Φ_l|_1 + μ_2 Σ S(Φ_l)) on hand-written edge values against a hand
      computation with plain Python floats and math.log (to 1e-14);
  (b) the entropy's limits (uniform: log n; one edge: 0; all zero: 0) and its gradient: finite (no NaN)
      with pruned (zero) edges, and equal to finite differences (torch.autograd.gradcheck);
  (c) on a KAN: edge scores equal mean |φ| of the layer's own edge activations times its mask, the
      penalty from ``sparsity_penalty`` equals the hand formula on those scores, and training with a
      penalty through ``train.fit`` lowers Σ|Φ|_1 relative to training without one (same seed, same steps).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nnft import ConfigError
from nnft.expressivity.kan import sparsity as SP

# (batch = 3, n_in = 2, n_out = 2) edge values, written out by hand
ACTS = torch.tensor([[[1.0, -2.0], [0.5, 0.0]],
                     [[-3.0, 2.0], [0.5, 0.0]],
                     [[2.0, -2.0], [-2.0, 0.0]]], dtype=torch.float64)


def _hand_l1():
    return [[(1 + 3 + 2) / 3, (2 + 2 + 2) / 3], [(0.5 + 0.5 + 2) / 3, 0.0]]


def _hand_entropy(norms):
    flat = [v for row in norms for v in row]
    total = sum(flat)
    return -sum(v / total * math.log(v / total) for v in flat if v > 0)


def test_hand_computation() -> None:
    norms = _hand_l1()
    torch.testing.assert_close(SP.edge_l1(ACTS), torch.tensor(norms, dtype=torch.float64), rtol=0, atol=1e-15)
    scores = SP.edge_l1(ACTS)
    assert abs(float(SP.layer_l1(scores)) - (2 + 2 + 1)) < 1e-14
    assert abs(float(SP.layer_entropy(scores)) - _hand_entropy(norms)) < 1e-14
    second = torch.tensor([[0.3], [0.1]], dtype=torch.float64)
    hand = 0.7 * (5 + 0.4) + 1.9 * (_hand_entropy(norms) + _hand_entropy([[0.3], [0.1]]))
    assert abs(float(SP.regulariser([scores, second], mu1=0.7, mu2=1.9)) - hand) < 1e-13


def test_entropy_limits_and_gradient() -> None:
    assert abs(float(SP.layer_entropy(torch.full((3, 4), 0.2, dtype=torch.float64))) - math.log(12)) < 1e-14
    one = torch.zeros(3, 4, dtype=torch.float64)
    one[1, 2] = 5.0
    assert float(SP.layer_entropy(one)) == 0.0
    assert float(SP.layer_entropy(torch.zeros(2, 2, dtype=torch.float64))) == 0.0
    pruned = torch.tensor([[0.4, 0.0], [0.1, 0.3]], dtype=torch.float64, requires_grad=True)
    SP.layer_entropy(pruned).backward()
    assert torch.isfinite(pruned.grad).all()  # the 0 log 0 term contributes nothing, not NaN
    # the others: d/ds_m of −Σ p log p = −(log p_m + 1)/T + Σ_k p_k (log p_k + 1)/T, T = Σ s
    p = pruned.detach() / pruned.detach().sum()
    mean = float((p[p > 0] * (p[p > 0].log() + 1)).sum())
    for m in ((0, 0), (1, 0), (1, 1)):
        assert abs(float(pruned.grad[m]) - (-(math.log(p[m]) + 1) + mean) / 0.8) < 1e-14
    positive = torch.rand(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.1
    assert torch.autograd.gradcheck(SP.layer_entropy, (positive.requires_grad_(),))


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="acts"):
        SP.edge_l1(torch.zeros(3, 2))
    for kw in ({"lamb": -1.0}, {"lamb": 1.0, "mu1": float("nan")}, {"lamb": 1.0, "mu2": float("inf")}):
        with pytest.raises(ConfigError):
            SP.sparsity_penalty(**kw)
    with pytest.raises(ConfigError, match="scores"):
        SP.regulariser([])


# ------------------------------------------------------------------------------------------ on a KAN
def _data(n: int = 200):
    x = torch.rand(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return x, 0.5 * x[:, :1] + x[:, 1:] ** 2          # needs one hidden node: x1/2 + x2², then identity


def test_penalty_on_a_kan_matches_the_formula() -> None:
    from nnft.expressivity.kan import KAN, symbolic

    model = KAN([2, 3, 1], seed=1)
    x, _ = _data(64)
    symbolic.fix_symbolic(model, 1, 2, 0, "tanh", params=(1.0, 0.2, 0.5, 0.1))  # a symbolic edge counts too
    acts = [a.detach() for a in model.edge_activations(x)]  # the core's per-edge values (spline edges, masked)
    inputs = model(x, return_activations=True).inputs
    acts[1][:, 2, 0] = 0.5 * torch.tanh(inputs[1][:, 2] + 0.2) + 0.1
    by_hand = 0.0
    for a in acts:
        norms = a.abs().mean(0).tolist()
        by_hand += 0.3 * sum(map(sum, norms)) + 2.0 * _hand_entropy(norms)
    got = SP.sparsity_penalty(0.01, mu1=0.3, mu2=2.0)(model, x)
    assert got.requires_grad and abs(float(got.detach()) - 0.01 * by_hand) < 1e-14
    for s, a in zip(SP.edge_scores(model, x), acts):
        torch.testing.assert_close(s.detach(), a.abs().mean(0), rtol=0, atol=1e-15)


def test_training_with_the_penalty_makes_the_network_sparse() -> None:
    from nnft.expressivity.kan import KAN, fit, prune

    x, y = _data()
    runs = {}
    for lamb in (0.0, 3e-3):
        model = KAN([2, 3, 1], G=3, seed=0)
        hist = fit(model, x, y, steps=5, optimizer="lbfgs", penalty=SP.sparsity_penalty(lamb) if lamb else None)
        scores = [s.detach() for s in SP.edge_scores(model, x)]
        runs[lamb] = (float(sum(s.sum() for s in scores)), prune.plan_pruning(scores, 0.02).shape_after, hist)
    (l1_plain, shape_plain, _), (l1_sparse, shape_sparse, hist) = runs[0.0], runs[3e-3]
    assert np.all(hist.penalty > 0) and hist.final_train_loss < 1e-3
    assert l1_sparse < 0.7 * l1_plain, (l1_sparse, l1_plain)
    assert shape_sparse == (2, 1, 1) and shape_plain[1] > 1, (shape_sparse, shape_plain)
