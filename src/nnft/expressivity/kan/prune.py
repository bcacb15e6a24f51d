"""Pruning a KAN: drop hidden nodes (and edges) whose edge functions are negligible on the data.

KAN paper (Liu et al., arXiv:2404.19756, §2.5.1 "Pruning"; PHYSICS.md §9). With |φ|_1 = mean_s |φ(x_s)|
the L1 norm of an edge on the data (:mod:`.sparsity`), hidden node (l, i), 1 ≤ l ≤ L − 1, has

    incoming score  I_{l,i} = max_j |φ_{l−1,i,j}|_1     (over the edges j → i of layer l − 1)
    outgoing score  O_{l,i} = max_k |φ_{l,k,i}|_1       (over the edges i → k of layer l)

and is kept iff I_{l,i} > θ and O_{l,i} > θ (θ = 1e-2 by default). Input and output nodes are always kept.
Optionally, an edge is also masked iff its |φ|_1 ≤ θ_edge (pykan 0.2.8 ``prune_edge``, default 3e-2 there).

Decisions use the scores of the unpruned network, in one pass (as the reference code does). The pruned
network equals, on every input, the original with the removed nodes' edges masked (:func:`mask_plan`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ...errors import check

__all__ = ["node_scores", "keep_nodes", "PrunePlan", "plan_pruning", "prune_plan", "mask_plan", "apply_plan",
           "prune", "prune_edges"]


def node_scores(scores: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """(I_l, O_l) for each hidden node layer l = 1..L−1, from the per-layer (n_l, n_{l+1}) edge norms:
    I_l = max over rows of scores[l−1] (n_l,), O_l = max over columns of scores[l] (n_l,)."""
    check(len(scores) >= 1, "scores", len(scores), "at least one layer")
    for l in range(1, len(scores)):
        check(scores[l - 1].shape[1] == scores[l].shape[0], f"scores[{l}]", tuple(scores[l].shape),
              f"({scores[l - 1].shape[1]}, n) to follow {tuple(scores[l - 1].shape)}")
    return [(scores[l - 1].max(dim=0).values, scores[l].max(dim=1).values) for l in range(1, len(scores))]


def keep_nodes(scores: Sequence[Tensor], threshold: float = 1e-2) -> list[Tensor]:
    """Bool masks of the kept nodes of every node layer 0..L (inputs and outputs: all True).

    A hidden layer whose every node falls below θ keeps its single best node (largest min(I, O)), so the
    pruned network stays connected; its output then is what the masked original computes."""
    check(isinstance(threshold, (int, float)) and threshold >= 0, "threshold", threshold, "a number >= 0")
    keep = [torch.ones(scores[0].shape[0], dtype=torch.bool)]
    for inc, outg in node_scores(scores):
        k = (inc > threshold) & (outg > threshold)
        if not bool(k.any()):
            k = torch.zeros_like(k)
            k[int(torch.argmax(torch.minimum(inc, outg)))] = True
        keep.append(k.cpu())
    keep.append(torch.ones(scores[-1].shape[1], dtype=torch.bool))
    return keep


@dataclass(frozen=True)
class PrunePlan:
    """What pruning removes. ``keep[l]`` lists the kept node indices of node layer l = 0..L;
    ``removed_nodes`` are (l, i) (node layer, index in the original network); ``removed_edges`` are the
    (l, i, j) edges of layer l (input i, output j, original indices) masked for being below
    ``edge_threshold`` between two kept nodes; ``scores`` are the per-layer edge norms it was decided on."""

    threshold: float
    edge_threshold: Optional[float]
    shape_before: tuple[int, ...]
    keep: tuple[tuple[int, ...], ...]
    removed_nodes: tuple[tuple[int, int], ...]
    removed_edges: tuple[tuple[int, int, int], ...]
    scores: tuple[Tensor, ...] = field(repr=False)

    @property
    def shape_after(self) -> tuple[int, ...]:
        return tuple(len(k) for k in self.keep)

    def summary(self) -> str:
        lines = [f"shape {list(self.shape_before)} -> {list(self.shape_after)} (node threshold {self.threshold:g}"
                 + (f", edge threshold {self.edge_threshold:g})" if self.edge_threshold is not None else ")")]
        if self.removed_nodes:
            lines.append("removed nodes (layer, index): " + ", ".join(str(n) for n in self.removed_nodes))
        if self.removed_edges:
            lines.append("masked edges (layer, in, out): " + ", ".join(str(e) for e in self.removed_edges))
        if not self.removed_nodes and not self.removed_edges:
            lines.append("nothing removed")
        return "\n".join(lines)


def plan_pruning(scores: Sequence[Tensor], threshold: float = 1e-2,
                 edge_threshold: Optional[float] = None) -> PrunePlan:
    """The :class:`PrunePlan` for per-layer (n_l, n_{l+1}) edge norms |φ|_1 (pure: no network needed)."""
    check(edge_threshold is None or (isinstance(edge_threshold, (int, float)) and edge_threshold >= 0),
          "edge_threshold", edge_threshold, "None or a number >= 0")
    scores = tuple(s.detach().cpu() for s in scores)
    keep = keep_nodes(scores, threshold)
    removed_nodes = tuple((l, i) for l in range(1, len(keep) - 1) for i in range(len(keep[l])) if not keep[l][i])
    removed_edges: list[tuple[int, int, int]] = []
    if edge_threshold is not None:
        for l, s in enumerate(scores):
            for i, j in torch.nonzero((s <= edge_threshold) & (s > 0)).tolist():  # 0: already masked
                if keep[l][i] and keep[l + 1][j]:
                    removed_edges.append((l, i, j))
    shape = (scores[0].shape[0],) + tuple(s.shape[1] for s in scores)
    return PrunePlan(float(threshold), None if edge_threshold is None else float(edge_threshold), shape,
                     tuple(tuple(int(i) for i in torch.nonzero(k).flatten()) for k in keep), removed_nodes,
                     tuple(removed_edges), scores)


# ------------------------------------------------------------------------------------ on a network
def prune_plan(model: nn.Module, x, threshold: float = 1e-2, edge_threshold: Optional[float] = None) -> PrunePlan:
    """The :class:`PrunePlan` of ``model`` on the data x (batch, n_0), from its edge norms |φ|_1."""
    from .sparsity import edge_scores

    with torch.no_grad():
        scores = edge_scores(model, model.as_input(x))
    return plan_pruning(scores, threshold, edge_threshold)


def _drop_edge(layer: nn.Module, i: int, j: int) -> None:
    """Mask edge (i, j) of ``layer`` and remove its symbolic function, if any."""
    with torch.no_grad():
        layer.mask[i, j] = 0.0
    sym = layer._modules.get("symbolic_edges")
    if sym is not None and bool(sym.fixed[i, j]):
        sym.set(i, j, None)


def mask_plan(model: nn.Module, plan: PrunePlan) -> nn.Module:
    """A copy of ``model`` with every edge into or out of a removed node, and every removed edge, masked
    (same shape): the function the pruned network computes."""
    check(tuple(model.shape) == plan.shape_before, "plan", plan.shape_before,
          f"a plan made for this network's shape {tuple(model.shape)}")
    masked = copy.deepcopy(model)
    for l, i in plan.removed_nodes:
        for j in range(masked.layers[l - 1].in_dim):
            _drop_edge(masked.layers[l - 1], j, i)
        for j in range(masked.layers[l].out_dim):
            _drop_edge(masked.layers[l], i, j)
    for l, i, j in plan.removed_edges:
        _drop_edge(masked.layers[l], i, j)
    return masked


def apply_plan(model: nn.Module, plan: PrunePlan) -> nn.Module:
    """The smaller KAN of shape ``plan.shape_after``: the kept nodes' grids, coefficients, scales, masks
    and symbolic edges copied (``KANLayer.subset``), removed edges masked. The original is not changed."""
    from .network import KAN
    from .symbolic import symbolic_edges

    check(tuple(model.shape) == plan.shape_before, "plan", plan.shape_before,
          f"a plan made for this network's shape {tuple(model.shape)}")
    layers = []
    for l, layer in enumerate(model.layers):
        keep_in, keep_out = plan.keep[l], plan.keep[l + 1]
        new = layer.subset(keep_in, keep_out)
        sym = layer._modules.get("symbolic_edges")
        if sym is not None and bool(sym.fixed.any()):
            new_sym = symbolic_edges(new)
            for a, i in enumerate(keep_in):
                for b, j in enumerate(keep_out):
                    if sym.names[i][j] is not None:
                        new_sym.set(a, b, sym.names[i][j], sym.affine[i, j].detach().tolist())
        layers.append(new)
    pruned = KAN.from_layers(layers)
    for l, i, j in plan.removed_edges:
        _drop_edge(pruned.layers[l], plan.keep[l].index(i), plan.keep[l + 1].index(j))
    return pruned


def prune(model: nn.Module, x, threshold: float = 1e-2, *, edge_threshold: Optional[float] = None) -> nn.Module:
    """Prune ``model`` on the data x: a new, smaller KAN without the hidden nodes whose max incoming or max
    outgoing |φ|_1 is ≤ θ (and, with ``edge_threshold``, with the edges ≤ θ_edge masked). ``prune_plan``
    with the same arguments says what is removed (:meth:`PrunePlan.summary`)."""
    return apply_plan(model, prune_plan(model, x, threshold, edge_threshold))


def prune_edges(model: nn.Module, x, threshold: float = 3e-2) -> list[tuple[int, int, int]]:
    """Mask, in place, every active edge with 0 < |φ|_1 ≤ θ on the data x; returns the (l, i, j) masked."""
    from .sparsity import edge_scores

    check(isinstance(threshold, (int, float)) and threshold >= 0, "threshold", threshold, "a number >= 0")
    with torch.no_grad():
        scores = edge_scores(model, model.as_input(x))
    removed = [(l, i, j) for l, s in enumerate(scores)
               for i, j in torch.nonzero((s <= threshold) & (s > 0)).tolist()]
    for l, i, j in removed:
        _drop_edge(model.layers[l], i, j)
    return removed
