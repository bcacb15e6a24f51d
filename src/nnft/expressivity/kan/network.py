"""Kolmogorov–Arnold networks: KAN = Φ_{L−1} ∘ … ∘ Φ_0 with shape [n_0, …, n_L] (arXiv:2404.19756, §2).

Each Φ_l is a :class:`~nnft.expressivity.kan.layer.KANLayer`, x_{l+1,j} = Σ_i φ_{l,j,i}(x_{l,i}) with
φ(x) = scale_base · SiLU(x) + scale_sp · Σ_m c_m B_m(x) (PHYSICS.md §9). The Kolmogorov–Arnold
representation theorem is the shape [n, 2n + 1, 1].

Conventions mapped to pykan 0.2.8 (the paper's reference code): ``G`` = ``grid``, ``k`` = ``k``,
``shape`` = ``width`` (no multiplication nodes), ``scale_base`` = ``scale_base_sigma``,
``scale_base_mu``, ``scale_sp``, ``noise_scale`` and ``grid_eps`` as there. pykan's extra per-node affine
parameters (subnode/node scale and bias, fixed at 1 and 0 unless ``affine_trainable``) and its
symbolic branch are not part of this network.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ...errors import check, fail
from .layer import BaseFn, KANLayer, OutOfRange

__all__ = ["KAN", "KANTrace"]

Tensor = torch.Tensor


class KANTrace(NamedTuple):
    """What ``KAN.forward(x, return_activations=True)`` returns.

    output : (batch, n_L), the network output.
    inputs : tuple of L tensors; inputs[l] (batch, n_l) is the input of ``layers[l]`` (inputs[0] = x).
    Per-edge values of layer l: ``model.layers[l].edge_activations(inputs[l])`` (batch, n_l, n_{l+1}).
    """

    output: Tensor
    inputs: tuple[Tensor, ...]


class KAN(nn.Module):
    """A Kolmogorov–Arnold network of the given shape (see the module docstring).

    Parameters
    ----------
    shape : [n_0, ..., n_L], L >= 1 layers, every n_l >= 1.
    G, k : grid intervals (>= 1) and spline order (>= 0); defaults 5 and 3 (PHYSICS.md §9).
    grid_range : (a, b), the initial uniform grid of every layer.
    seed : integer seed of the torch.Generator used for all initial draws (layer by layer).
    scale_base_mu, scale_base, scale_sp, noise_scale, base_fn, grid_eps, out_of_range :
        see :class:`KANLayer` (pykan 0.2.8 defaults: 0, 1, 1, 0.3, "silu", 0.02, "extend").
    dtype : torch.float64 (default) or torch.float32.

    Examples
    --------
    >>> model = KAN([2, 5, 1], G=5, k=3, seed=0)
    >>> model(torch.zeros(4, 2, dtype=torch.float64)).shape
    torch.Size([4, 1])
    """

    def __init__(self, shape: Sequence[int], G: int = 5, k: int = 3, grid_range: Sequence[float] = (-1.0, 1.0), *,
                 seed: int = 0, scale_base_mu: float = 0.0, scale_base: float = 1.0, scale_sp: float = 1.0,
                 noise_scale: float = 0.3, base_fn: BaseFn = "silu", grid_eps: float = 0.02,
                 out_of_range: OutOfRange = "extend", dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        try:
            widths = [int(n) for n in shape] if all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                                     for n in shape) else None
        except TypeError:
            widths = None
        check(widths is not None and len(widths) >= 2 and min(widths) >= 1, "KAN.shape", shape,
              "a sequence of >= 2 positive integers [n_0, ..., n_L]")
        check(isinstance(seed, (int, np.integer)) and not isinstance(seed, bool), "KAN.seed", seed, "an integer")
        generator = torch.Generator().manual_seed(int(seed))
        layers = []
        for l, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            layer = KANLayer(n_in, n_out, G, k, grid_range, generator=generator, scale_base_mu=scale_base_mu,
                             scale_base=scale_base, scale_sp=scale_sp, noise_scale=noise_scale, base_fn=base_fn,
                             grid_eps=grid_eps, out_of_range=out_of_range, dtype=dtype)
            layer.name = f"KAN.layers[{l}]"
            layers.append(layer)
        self.layers = nn.ModuleList(layers)
        self.seed = int(seed)

    @classmethod
    def from_layers(cls, layers: Sequence[KANLayer]) -> "KAN":
        """A KAN made of existing layers (e.g. after pruning with ``KANLayer.subset``); widths must chain."""
        layers = list(layers)
        check(len(layers) >= 1 and all(isinstance(l, KANLayer) for l in layers), "KAN.from_layers.layers",
              f"{len(layers)} objects", "a non-empty sequence of KANLayer")
        for l in range(1, len(layers)):
            check(layers[l].in_dim == layers[l - 1].out_dim, f"KAN.from_layers.layers[{l}].in_dim",
                  layers[l].in_dim, f"{layers[l - 1].out_dim} (the previous layer's out_dim)")
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        for l, layer in enumerate(layers):
            layer.name = f"KAN.layers[{l}]"
        model.layers = nn.ModuleList(layers)
        model.seed = -1
        return model

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        """(n_0, ..., n_L)."""
        return (self.layers[0].in_dim,) + tuple(layer.out_dim for layer in self.layers)

    @property
    def G(self) -> int:
        """Grid intervals of the first layer (all layers share G unless edited by hand)."""
        return self.layers[0].G

    @property
    def k(self) -> int:
        return self.layers[0].k

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].coef.dtype

    @property
    def n_params(self) -> int:
        """Trainable numbers: Σ_l n_l n_{l+1} (G + k + 2)."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"shape={list(self.shape)}, G={self.G}, k={self.k}, dtype={self.dtype}"

    # ------------------------------------------------------------------ evaluation
    def as_input(self, x, name: str = "x") -> Tensor:
        """Validate and convert inputs: (batch, n_0) array (1-D allowed when n_0 = 1), no NaN."""
        if not isinstance(x, Tensor):
            try:
                x = torch.as_tensor(np.asarray(x, dtype=np.float64))
            except (TypeError, ValueError):
                raise fail(name, type(x).__name__, f"a numeric array of shape (batch, {self.shape[0]})") from None
        check(not x.is_complex(), name, x.dtype, "a real array")
        x = x.to(dtype=self.dtype, device=self.layers[0].coef.device)
        if x.ndim == 1 and self.shape[0] == 1:
            x = x[:, None]
        check(x.ndim == 2 and x.shape[1] == self.shape[0], f"{name}.shape", tuple(x.shape),
              f"(batch, {self.shape[0]}) to match shape[0] = {self.shape[0]}")
        check(not bool(torch.isnan(x).any()), name, "NaN values", "no NaN")
        return x

    def forward(self, x: Tensor, return_activations: bool = False) -> Union[Tensor, KANTrace]:
        """The network output (batch, n_L); with ``return_activations`` a :class:`KANTrace`."""
        x = self.as_input(x)
        if not return_activations:
            for layer in self.layers:
                x = layer(x)
            return x
        inputs = []
        for layer in self.layers:
            inputs.append(x)
            x = layer(x)
        return KANTrace(x, tuple(inputs))

    def edge_activations(self, x: Tensor) -> list[Tensor]:
        """φ_{l,ij}(x_{l,i}) for every layer: list of (batch, n_l, n_{l+1}) tensors."""
        trace = self.forward(x, return_activations=True)
        return [layer.edge_activations(h) for layer, h in zip(self.layers, trace.inputs)]

    # ------------------------------------------------------------------ grids
    def update_grid(self, x: Tensor, grid_eps: Optional[float] = None) -> list[float]:
        """Adapt every layer's grid to the samples x (batch, n_0) (``KANLayer.update_grid``).

        Layer by layer: the samples are pushed through the already-updated earlier layers, the grid of
        layer l is set from their quantiles (mixed with a uniform grid by ``grid_eps``; default: each
        layer's own), and its coefficients are refitted so each edge's spline is preserved on the samples.
        Returns the refit residual (max |Δ spline| on the samples) per layer.
        """
        h = self.as_input(x)
        check(h.shape[0] >= 2, "x.shape", tuple(h.shape), "at least 2 samples to place a grid")
        residuals = []
        with torch.no_grad():
            for layer in self.layers:
                residuals.append(layer.update_grid(h, grid_eps))
                h = layer(h)
        return residuals

    def extend_grid(self, G_new: int, x: Optional[Tensor] = None) -> list[float]:
        """Refine every layer's grid to G_new intervals on its current range (``KANLayer.extend_grid``).

        With x (batch, n_0), the least-squares fit uses each layer's inputs on the samples (computed
        with the coarse network); without x it is the L²([a, b]) projection on each layer's range.
        Parameters are replaced (new shapes): build optimisers after this call.
        Returns the fit residual per layer.
        """
        with torch.no_grad():
            inputs = self.forward(x, return_activations=True).inputs if x is not None else [None] * len(self.layers)
            return [layer.extend_grid(G_new, h) for layer, h in zip(self.layers, inputs)]
