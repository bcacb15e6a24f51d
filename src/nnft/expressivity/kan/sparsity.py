"""Sparsity of a KAN: edge L1 norms, their entropy, and the regularised training loss.

KAN paper (Liu et al., arXiv:2404.19756, §2.5.1 eqs. 2.17–2.20; PHYSICS.md §9). For the edge φ of a
layer, evaluated on the layer's inputs x_s of a batch of S samples,

    |φ|_1   = (1/S) Σ_s |φ(x_s)|                                     (edge L1 norm, eq. 2.17)
    |Φ|_1   = Σ_{edges of the layer} |φ|_1                           (layer L1 norm, eq. 2.18)
    S(Φ)    = − Σ_{edges} (|φ|_1/|Φ|_1) log(|φ|_1/|Φ|_1)             (layer entropy, eq. 2.19; natural log)
    loss    = ℓ_pred + λ (μ_1 Σ_l |Φ_l|_1 + μ_2 Σ_l S(Φ_l))           (eq. 2.20; μ_1 = μ_2 = 1)

Conventions: an edge's value is the whole edge function actually used by the forward pass — the masked
spline edge mask·(scale_base·SiLU + scale_sp·spline) plus, for a symbolically fixed edge, its symbolic
function c f(a x + b) + d. A pruned edge (mask 0) has |φ|_1 = 0 and contributes 0 log 0 = 0 to the
entropy. The reference code (pykan 0.2.8 ``MultKAN.reg``) differs: log2, and row- and column-wise
entropies of normalised scores; we follow the paper's formula.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ...errors import check

__all__ = ["edge_l1", "layer_l1", "layer_entropy", "regulariser", "layer_edge_values", "layer_inputs",
           "edge_scores", "sparsity_penalty"]


def edge_l1(acts: Tensor) -> Tensor:
    """|φ|_1 = mean_s |φ(x_s)| of every edge: (batch, n_in, n_out) edge values -> (n_in, n_out)."""
    check(acts.ndim == 3 and acts.shape[0] >= 1, "acts", tuple(acts.shape), "shape (batch >= 1, n_in, n_out)")
    return acts.abs().mean(dim=0)


def layer_l1(scores: Tensor) -> Tensor:
    """|Φ|_1 = Σ_edges |φ|_1 of one layer's (n_in, n_out) edge norms."""
    return scores.sum()


def layer_entropy(scores: Tensor) -> Tensor:
    """S(Φ) = −Σ_edges p log p with p = |φ|_1/|Φ|_1 (0 log 0 = 0; S = 0 if every edge is 0).

    Differentiable everywhere the scores are: zero scores (pruned edges) get a zero gradient, not NaN.
    """
    total = scores.sum()
    p = scores / torch.where(total > 0, total, torch.ones_like(total))
    safe = torch.where(p > 0, p, torch.ones_like(p))
    return -torch.where(p > 0, p * torch.log(safe), torch.zeros_like(p)).sum()


def regulariser(scores: Sequence[Tensor], mu1: float = 1.0, mu2: float = 1.0) -> Tensor:
    """μ_1 Σ_l |Φ_l|_1 + μ_2 Σ_l S(Φ_l) over the layers' (n_in, n_out) edge norms (without λ)."""
    check(len(scores) >= 1, "scores", len(scores), "at least one layer")
    return sum(mu1 * layer_l1(s) + mu2 * layer_entropy(s) for s in scores)


def layer_edge_values(layer: nn.Module, x: Tensor) -> Tensor:
    """(batch, n_in, n_out) values of a layer's edges as the forward pass uses them: the masked spline
    edges plus the symbolic edges (if a :class:`~nnft.expressivity.kan.symbolic.SymbolicEdges` is attached)."""
    vals = layer.edge_activations(x) * layer.mask
    sym = layer._modules.get("symbolic_edges")
    if sym is not None and bool(sym.fixed.any()):
        vals = vals + sym.edge_values(x).to(vals.dtype)
    return vals


def layer_inputs(model: nn.Module, x: Tensor) -> list[Tensor]:
    """The inputs x_l (batch, n_l) of every layer l = 0..L−1 of the model on the batch x."""
    return list(model(x, return_activations=True).inputs)


def edge_scores(model: nn.Module, x: Tensor) -> list[Tensor]:
    """|φ|_1 of every edge of every layer on the batch x: a list of (n_in, n_out) tensors, with autograd.

    One pass: layer l's edge values (batch, n_l, n_{l+1}) give its scores, and their sum over inputs is
    the next layer's input (x_{l+1,j} = Σ_i φ_{l,j,i}(x_{l,i})), so no separate forward pass is needed.
    """
    h = model.as_input(x)
    scores = []
    for layer in model.layers:
        vals = layer_edge_values(layer, h)
        scores.append(edge_l1(vals))
        h = vals.sum(dim=1)
    return scores


def sparsity_penalty(lamb: float, mu1: float = 1.0, mu2: float = 1.0) -> Callable[[nn.Module, Tensor], Tensor]:
    """penalty(model, x_batch) = λ (μ_1 Σ_l |Φ_l|_1 + μ_2 Σ_l S(Φ_l)), for ``train.fit(..., penalty=...)``.

    Example: ``fit(model, x, y, steps=50, penalty=sparsity_penalty(1e-2))`` trains on ℓ_pred + penalty.
    """
    for name, v in (("lamb", lamb), ("mu1", mu1), ("mu2", mu2)):
        check(isinstance(v, (int, float)) and v >= 0 and v == v and v != float("inf"), name, v,
              "a finite number >= 0")

    def penalty(model: nn.Module, x: Tensor) -> Tensor:
        return lamb * regulariser(edge_scores(model, x), mu1, mu2)

    return penalty
