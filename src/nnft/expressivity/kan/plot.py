"""Pictures of a KAN: every edge function φ_{l,j,i} on the data, and a node diagram.

Each edge is drawn on its own inputs x_{l,i} (the layer inputs the data produce) with line opacity

    alpha = tanh(β |φ|_1 / max_edges |φ|_1),        |φ|_1 = mean_s |φ(x_s)|  (PHYSICS.md §9),

so important edges are dark and negligible ones fade out, as in the KAN paper's figures (Liu et al.,
arXiv:2404.19756, Fig. 2.4; pykan 0.2.8 ``MultKAN.plot`` uses tanh(β·score) with β = 3). Spline edges are
black, symbolic edges red and titled with their function, pruned edges (mask 0) are left empty.

Figures are ``matplotlib.figure.Figure`` objects built without pyplot: no backend is selected and no global
state is touched; :func:`save_figure` writes PNG, SVG or PDF atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from ...errors import check

__all__ = ["EdgeData", "edge_data", "edges_figure", "plot_edges", "diagram_figure", "plot_diagram",
           "save_figure"]


@dataclass(frozen=True)
class EdgeData:
    """One layer's edges on the data: inputs (batch, n_in), values (batch, n_in, n_out), |φ|_1 scores
    (n_in, n_out), ``names[i][j]`` the symbolic function of a fixed edge (None: spline) and ``active``
    (n_in, n_out) bool (False: pruned)."""

    inputs: np.ndarray
    values: np.ndarray
    scores: np.ndarray
    names: Sequence[Sequence[Optional[str]]]
    active: np.ndarray

    @property
    def n_in(self) -> int:
        return self.values.shape[1]

    @property
    def n_out(self) -> int:
        return self.values.shape[2]


def edge_data(model: nn.Module, x) -> list[EdgeData]:
    """The :class:`EdgeData` of every layer of ``model`` on the inputs x (batch, n_0)."""
    from .sparsity import edge_l1, layer_edge_values, layer_inputs

    ref = model.layers[0].coef
    x = torch.as_tensor(x, dtype=ref.dtype, device=ref.device)
    check(x.ndim == 2 and x.shape[1] == model.layers[0].in_dim and x.shape[0] >= 1, "x", tuple(x.shape),
          f"shape (batch >= 1, {model.layers[0].in_dim})")
    out = []
    with torch.no_grad():
        for layer, xl in zip(model.layers, layer_inputs(model, x)):
            vals = layer_edge_values(layer, xl)
            sym = layer._modules.get("symbolic_edges")
            names = sym.names if sym is not None else [[None] * layer.out_dim for _ in range(layer.in_dim)]
            fixed = sym.fixed.cpu().numpy() if sym is not None else np.zeros((layer.in_dim, layer.out_dim), bool)
            out.append(EdgeData(xl.double().cpu().numpy(), vals.double().cpu().numpy(),
                                edge_l1(vals).double().cpu().numpy(), [list(r) for r in names],
                                (layer.mask.cpu().numpy() != 0) | fixed))
    return out


def _alphas(layers: Sequence[EdgeData], beta: float) -> list[np.ndarray]:
    top = max((float(d.scores.max()) for d in layers if d.scores.size), default=0.0)
    return [np.tanh(beta * d.scores / top) if top > 0 else np.zeros_like(d.scores) for d in layers]


def edges_figure(layers: Sequence[EdgeData], *, beta: float = 3.0, columns: int = 6, panel: float = 1.5,
                 title: Optional[str] = None):
    """A grid of panels, one per edge, layer 0 first: layer l fills ceil(n_in n_out / columns) rows with its
    edges in the order (j, i); panel "φl,j,i" shows φ_{l,j,i} against x_{l,i}. Returns the Figure."""
    from matplotlib.figure import Figure

    check(len(layers) >= 1, "layers", len(layers), "at least one layer")
    check(beta > 0, "beta", beta, "a number > 0")
    check(isinstance(columns, int) and columns >= 1, "columns", columns, "an integer >= 1")
    alphas = _alphas(layers, beta)
    n_cols = max(min(d.n_in * d.n_out, columns) for d in layers)
    rows = [-(-d.n_in * d.n_out // n_cols) for d in layers]
    fig = Figure(figsize=(panel * n_cols + 0.4, 1.1 * panel * sum(rows) + (0.4 if title else 0.1)))
    grid = fig.add_gridspec(sum(rows), n_cols, left=0.06, right=0.98, bottom=0.05,
                            top=1 - (0.35 if title else 0.15) / (1.1 * panel * sum(rows)), wspace=0.45, hspace=0.6)
    row = 0
    for l, (d, alpha) in enumerate(zip(layers, alphas)):
        for k, (j, i) in enumerate((j, i) for j in range(d.n_out) for i in range(d.n_in)):
            ax = fig.add_subplot(grid[row + k // n_cols, k % n_cols])
            name = d.names[i][j]
            color = "tab:red" if name else "black"
            if d.active[i, j]:
                order = np.argsort(d.inputs[:, i], kind="stable")
                ax.plot(d.inputs[order, i], d.values[order, i, j], color=color,
                        alpha=float(max(alpha[i, j], 0.0)), lw=1.5)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(f"φ{l},{j},{i}" + (f" {name}" if name else "" if d.active[i, j] else " pruned"),
                         fontsize=7, color=color, pad=2)
            ax.tick_params(labelsize=5, length=2, pad=1)
        row += rows[l]
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_edges(model: nn.Module, x, *, beta: float = 3.0, title: Optional[str] = None):
    """Figure of every edge function of ``model`` on the data x (see :func:`edges_figure`)."""
    return edges_figure(edge_data(model, x), beta=beta, title=title)


def diagram_figure(layers: Sequence[EdgeData], *, beta: float = 3.0, insets: bool = True,
                   title: Optional[str] = None):
    """Node diagram in the style of pykan: node layer l on the line y = l (inputs at the bottom); between
    layers l and l + 1 a row of small pictures of the edge functions (``insets``), each wired from its input
    node to its output node with opacity alpha. Without insets, edges are straight lines."""
    from matplotlib.figure import Figure

    check(len(layers) >= 1, "layers", len(layers), "at least one layer")
    check(beta > 0, "beta", beta, "a number > 0")
    alphas = _alphas(layers, beta)
    widths = [layers[0].n_in] + [d.n_out for d in layers]
    most = max(d.n_in * d.n_out for d in layers)
    pos = [np.array([0.5]) if n == 1 else np.linspace(0.05, 0.95, n) for n in widths]
    fig = Figure(figsize=(max(4.0, 0.45 * most + 1.5) if insets else max(4.0, 0.9 * max(widths) + 2),
                          2.0 * len(layers) + 0.6))
    ax = fig.add_axes((0.1, 0.04, 0.88, 0.9 if title else 0.94))
    for l, (d, alpha) in enumerate(zip(layers, alphas)):
        edges = [(i, j) for i in range(d.n_in) for j in range(d.n_out)]
        slots = np.array([0.5]) if len(edges) == 1 else np.linspace(0.0, 1.0, len(edges))
        w = min(0.08, 0.8 / len(edges))
        for (i, j), xm in zip(edges, slots):
            if not d.active[i, j]:
                continue
            color = "tab:red" if d.names[i][j] else "black"
            a = float(alpha[i, j])
            if not insets:
                ax.plot([pos[l][i], pos[l + 1][j]], [l, l + 1], color=color, alpha=a, lw=1.2)
                continue
            ax.plot([pos[l][i], xm], [l, l + 0.35], color=color, alpha=a, lw=1.0)
            ax.plot([xm, pos[l + 1][j]], [l + 0.65, l + 1], color=color, alpha=a, lw=1.0)
            ins = ax.inset_axes((xm - w / 2, l + 0.35, w, 0.3), transform=ax.transData)
            order = np.argsort(d.inputs[:, i], kind="stable")
            ins.plot(d.inputs[order, i], d.values[order, i, j], color=color, alpha=a, lw=1.0)
            ins.set_xticks([])
            ins.set_yticks([])
            for spine in ins.spines.values():
                spine.set_alpha(max(a, 0.15))
    for l, p in enumerate(pos):
        ax.scatter(p, np.full_like(p, l), s=40, color="black", zorder=3)
    ax.set_xlim(-0.06, 1.06)
    ax.set_ylim(-0.2, len(layers) + 0.2)
    ax.set_yticks(range(len(pos)), [f"nodes {l}" for l in range(len(pos))], fontsize=7)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_diagram(model: nn.Module, x, *, beta: float = 3.0, insets: bool = True, title: Optional[str] = None):
    """Node diagram of ``model`` on the data x (see :func:`diagram_figure`)."""
    return diagram_figure(edge_data(model, x), beta=beta, insets=insets, title=title)


_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def save_figure(fig, path, *, dpi: int = 130) -> Path:
    """Write ``fig`` to ``path`` (.png, .svg or .pdf, by suffix) through a temporary file and a rename."""
    from ...results import atomic_path

    path = Path(path)
    check(path.suffix.lower() in _FORMATS, "path", str(path), "a file name ending in .png, .svg or .pdf")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=_FORMATS[path.suffix.lower()], dpi=dpi)
    return path
