"""Pictures of a KAN (nnft.expressivity.kan.plot).

Checks: one panel per edge, laid out by layer; each line is the edge's (sorted input, value) curve with
opacity tanh(β |φ|_1 / max |φ|_1); symbolic edges are red and titled with their function; pruned edges have
no line; the diagram has one inset per active edge; PNG/SVG/PDF files are written atomically with the
right signature, a bad suffix is a ConfigError that writes nothing; pyplot's global state is untouched.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nnft import ConfigError
from nnft.expressivity.kan import plot as PL


def _layers():
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (60, 2))
    v0 = np.stack([np.sin(3 * x0[:, [0]] * np.arange(1, 4)), x0[:, [1]] ** 2 * np.arange(3)], axis=1)
    x1 = rng.uniform(-1, 1, (60, 3))
    v1 = 0.1 * np.exp(x1)[:, :, None]
    names0 = [[None, None, None], ["x^2", None, None]]
    active1 = np.array([[True], [False], [True]])
    return [PL.EdgeData(x0, v0, np.abs(v0).mean(0), names0, np.ones((2, 3), bool)),
            PL.EdgeData(x1, v1 * active1, np.abs(v1 * active1).mean(0), [[None]] * 3, active1)]


def test_edges_figure_panels_and_alphas() -> None:
    layers = _layers()
    fig = PL.edges_figure(layers, beta=3.0, title="test")
    axes = fig.axes
    assert len(axes) == 2 * 3 + 3 * 1
    top = max(float(d.scores.max()) for d in layers)
    titles = [ax.get_title() for ax in axes]
    assert titles[:3] == ["φ0,0,0", "φ0,0,1 x^2", "φ0,1,0"]      # order (j, i) within a layer
    assert titles[-2] == "φ1,0,1 pruned" and not axes[-2].lines
    for ax, (l, j, i) in zip(axes, [(0, j, i) for j in range(3) for i in range(2)] + [(1, 0, i) for i in range(3)]):
        d = layers[l]
        if not d.active[i, j]:
            continue
        (line,) = ax.lines
        order = np.argsort(d.inputs[:, i], kind="stable")
        np.testing.assert_array_equal(line.get_xdata(), d.inputs[order, i])
        np.testing.assert_array_equal(line.get_ydata(), d.values[order, i, j])
        assert line.get_alpha() == pytest.approx(math.tanh(3.0 * d.scores[i, j] / top), abs=1e-12)
        assert line.get_color() == ("tab:red" if d.names[i][j] else "black")


def test_diagram_and_files(tmp_path) -> None:
    import matplotlib.pyplot as plt

    n_figs = len(plt.get_fignums())
    layers = _layers()
    fig = PL.diagram_figure(layers)
    assert len(fig.axes) == 1 and len(fig.axes[0].child_axes) == 6 + 2    # one inset per active edge
    plain = PL.diagram_figure(layers, insets=False).axes[0]
    assert not plain.child_axes and len(plain.lines) == 6 + 2
    png, svg, pdf = PL.save_figure(fig, tmp_path / "d.png"), PL.save_figure(fig, tmp_path / "d.svg"), \
        PL.save_figure(PL.edges_figure(layers), tmp_path / "sub" / "e.pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:2000]
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ConfigError, match="path"):
        PL.save_figure(fig, tmp_path / "d.jpg")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["d.png", "d.svg", "e.pdf"]
    assert len(plt.get_fignums()) == n_figs                   # no pyplot figures were opened


def test_plot_a_kan_with_symbolic_and_pruned_edges() -> None:
    from nnft.expressivity.kan import KAN, symbolic

    model = KAN([2, 3, 1], seed=0)
    x = torch.rand(100, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    symbolic.fix_symbolic(model, 0, 1, 2, "sin", x)
    with torch.no_grad():
        model.layers[1].mask[0, 0] = 0.0
    data = PL.edge_data(model, x)
    assert [d.values.shape for d in data] == [(100, 2, 3), (100, 3, 1)]
    assert data[0].names[1][2] == "sin" and data[0].active[1, 2] and not data[1].active[0, 0]
    np.testing.assert_allclose(data[0].values.sum(axis=1), model.layers[0](x).detach().numpy(), atol=1e-12)
    fig = PL.plot_edges(model, x)
    assert len(fig.axes) == 9 and "φ0,2,1 sin" in [ax.get_title() for ax in fig.axes]
    assert len(PL.plot_diagram(model, x).axes[0].child_axes) == 8
    with pytest.raises(ConfigError, match="x"):
        PL.plot_edges(model, torch.zeros(5, 3))
