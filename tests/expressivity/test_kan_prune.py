"""KAN pruning (nnft.expressivity.kan.prune; arXiv:2404.19756 §2.5.1, PHYSICS.md §9).

Checks:
  (a) decisions on given edge norms: hidden node (l, i) is kept iff max incoming |φ|_1 > θ and max outgoing
      |φ|_1 > θ (strictly; inputs and outputs always kept), written out by hand for a [2, 3, 2, 1] network;
      edge thresholds mask only edges between kept nodes; a layer with no node above θ keeps its best;
  (b) on a KAN: the pruned network has the planned shape and computes, to 1e-12 (float64), the same
      function as the original with the removed nodes' edges masked — on the data and off it (symbolic
      edges carried along); edge pruning masks exactly the edges at or below θ_edge.
  (Sparsity training followed by pruning to the one hidden node a target needs is checked in
  test_kan_sparsity.py and, end to end, in test_kan_cli.py.)
"""

from __future__ import annotations

import pytest
import torch

from nnft import ConfigError
from nnft.expressivity.kan import prune as P


def _scores():
    t = lambda rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731
    return [t([[0.5, 0.005, 0.02], [0.001, 0.002, 0.3]]),          # layer 0: 2 -> 3
            t([[0.2, 0.0], [0.9, 0.9], [0.004, 0.03]]),            # layer 1: 3 -> 2
            t([[0.7], [0.01]])]                                     # layer 2: 2 -> 1


def test_node_scores_by_hand() -> None:
    (i1, o1), (i2, o2) = P.node_scores(_scores())
    torch.testing.assert_close(i1, torch.tensor([0.5, 0.005, 0.3], dtype=torch.float64))
    torch.testing.assert_close(o1, torch.tensor([0.2, 0.9, 0.03], dtype=torch.float64))
    torch.testing.assert_close(i2, torch.tensor([0.9, 0.9], dtype=torch.float64))
    torch.testing.assert_close(o2, torch.tensor([0.7, 0.01], dtype=torch.float64))


def test_keep_rule_by_hand() -> None:
    keep = P.keep_nodes(_scores(), threshold=1e-2)
    assert [k.tolist() for k in keep] == [[True, True], [True, False, True], [True, False], [True]]
    # 0.01 is not > 0.01: node (2, 1) goes; at θ = 0.005 it stays, node (1, 1) still goes (0.005 not > 0.005)
    keep = P.keep_nodes(_scores(), threshold=0.005)
    assert [k.tolist() for k in keep] == [[True, True], [True, False, True], [True, True], [True]]
    plan = P.plan_pruning(_scores(), threshold=1e-2, edge_threshold=0.025)
    assert plan.shape_before == (2, 3, 2, 1) and plan.shape_after == (2, 2, 1, 1)
    assert plan.keep == ((0, 1), (0, 2), (0,), (0,))
    assert plan.removed_nodes == ((1, 1), (2, 1))
    # edges in (0, 0.025] between kept nodes: (0, 0, 2) = 0.02, (0, 1, 0) = 0.001 and (1, 2, 0) = 0.004;
    # (0, 0, 1) and (0, 1, 1) end in a removed node, (1, 0, 1) = 0 is already masked
    assert plan.removed_edges == ((0, 0, 2), (0, 1, 0), (1, 2, 0))
    assert "removed nodes" in plan.summary() and "[2, 3, 2, 1] -> [2, 2, 1, 1]" in plan.summary()


def test_dead_layer_keeps_its_best_node() -> None:
    s = [torch.tensor([[1e-4, 2e-3]]), torch.tensor([[5e-3], [1e-3]])]
    keep = P.keep_nodes(s, threshold=1e-2)
    # min(I, O): node 0 = min(1e-4, 5e-3) = 1e-4, node 1 = min(2e-3, 1e-3) = 1e-3: node 1 is kept
    assert [k.tolist() for k in keep] == [[True], [False, True], [True]]
    with pytest.raises(ConfigError, match="threshold"):
        P.keep_nodes(s, threshold=-1.0)
    with pytest.raises(ConfigError, match="scores"):
        P.node_scores([torch.ones(2, 3), torch.ones(2, 1)])


# ------------------------------------------------------------------------------------------ on a KAN
def _with_dead_nodes():
    """A [2, 5, 3, 1] KAN where hidden nodes (1, 2) (no input) and (2, 0) (negligible output) are idle."""
    from nnft.expressivity.kan import KAN

    model = KAN([2, 5, 3, 1], seed=4)
    with torch.no_grad():
        for layer in model.layers[1:]:
            layer.scale_base.mul_(10.0)             # every other node well above θ = 1e-2
        model.layers[0].scale_base[:, 2] = 0.0
        model.layers[0].coef[:, 2] = 0.0            # node (1, 2): every incoming edge is 0
        model.layers[2].scale_base[0, 0] = 1e-4
        model.layers[2].coef[0, 0] = 0.0            # node (2, 0): its one outgoing edge is ~1e-4
    return model


def test_pruned_network_equals_the_masked_original() -> None:
    from nnft.expressivity.kan import symbolic

    model = _with_dead_nodes()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 2, dtype=torch.float64, generator=g) * 2 - 1
    symbolic.fix_symbolic(model, 1, 1, 1, "sin", x)         # a symbolic edge survives pruning
    plan = P.prune_plan(model, x, threshold=1e-2, edge_threshold=1e-3)
    assert plan.removed_nodes == ((1, 2), (2, 0)), plan.summary()
    assert plan.shape_after == (2, 4, 2, 1)
    pruned = P.apply_plan(model, plan)
    assert tuple(pruned.shape) == (2, 4, 2, 1) and pruned.n_params < model.n_params
    masked = P.mask_plan(model, plan)
    off_data = torch.rand(256, 2, dtype=torch.float64, generator=g) * 6 - 3
    for pts in (x, off_data):
        torch.testing.assert_close(pruned(pts), masked(pts), rtol=0, atol=1e-12)
    # what was removed was small on the data: node (1, 2) passed on only the constants φ(0) ~ 1e-2 of its
    # outgoing edges, node (2, 0) an edge of norm 3e-5
    assert float((pruned(x) - model(x)).detach().abs().max()) < 0.05
    assert pruned.layers[1].symbolic_edges.edges() == [(plan.keep[1].index(1), plan.keep[2].index(1), "sin")]
    again = P.prune(model, x, threshold=1e-2, edge_threshold=1e-3)   # prune() = apply_plan(prune_plan(...))
    torch.testing.assert_close(again(x), pruned(x), rtol=0, atol=0)
    assert tuple(model.shape) == (2, 5, 3, 1)                        # the original is untouched


def test_prune_edges_in_place() -> None:
    model = _with_dead_nodes()
    x = torch.rand(128, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    removed = P.prune_edges(model, x, threshold=1e-3)
    # the 3e-5 edge out of node (2, 0) and the 6e-4 edge (1, 2, 1) (the constant φ(0) out of the dead node
    # (1, 2)); the exactly-zero edges into (1, 2) count as masked already
    assert removed == [(1, 2, 1), (2, 0, 0)]
    assert float(model.layers[2].mask[0, 0]) == 0.0 and float(model.layers[1].mask[2, 1]) == 0.0
    assert P.prune_edges(model, x, threshold=1e-3) == []
    with pytest.raises(ConfigError, match="plan"):
        P.apply_plan(model, P.plan_pruning(_scores()))
