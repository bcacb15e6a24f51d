"""B-spline bases of KAN grids (nnft.expressivity.kan.basis; PHYSICS.md §9, arXiv:2404.19756 §2.2).

Oracle: scipy.interpolate.BSpline (design_matrix on the base interval, basis_element on the whole
extended grid), in float64 to 1e-12, for k = 0..5, several G and ranges, at points on, next to and
between the knots and at the boundaries. Both the closed form (uniform knots) and the general
Cox–de Boor scheme (any knots) are checked, plus partition of unity on [a, b] and vanishing outside
[a − kh, b + kh].
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from nnft import ConfigError
from nnft.expressivity.kan.basis import (bspline_basis, bspline_basis_recursive, bspline_local, cardinal_matrix,
                                         is_uniform, local_to_dense, uniform_grid)

F64 = torch.float64
RANGES = [(-1.0, 1.0), (-0.7, 1.3), (0.0, 10.0)]


def _points(knots: torch.Tensor, lo: float, hi: float, n: int = 401) -> torch.Tensor:
    """Dense points on [lo, hi] plus every knot inside, and the knots ± 1e-13 (clamped to [lo, hi])."""
    t = knots[(knots >= lo) & (knots <= hi)]
    pts = [torch.linspace(lo, hi, n, dtype=F64), t, t + 1e-13, t - 1e-13]
    return torch.cat(pts).clamp(lo, hi)


@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("G", [1, 3, 7])
@pytest.mark.parametrize("rng", RANGES)
def test_matches_scipy_design_matrix_on_base_interval(k: int, G: int, rng) -> None:
    knots = uniform_grid(G, k, *rng)
    a, b = float(knots[k]), float(knots[k + G])
    assert (a, b) == rng  # t_0 = a and t_G = b exactly
    x = _points(knots, a, b)
    ref = BSpline.design_matrix(x.numpy(), knots.numpy(), k, extrapolate=False).toarray()
    for uniform in (True, False):
        got = bspline_basis(x, knots, k, uniform=uniform).numpy()
        assert got.shape == (x.shape[0], G + k)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bspline_basis_recursive(x, knots, k).numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", range(1, 6))
@pytest.mark.parametrize("G", [1, 4])
def test_matches_scipy_basis_elements_on_extended_grid(k: int, G: int) -> None:
    """Beyond [a, b] (the k boundary cells and outside [a − kh, b + kh]) each B_m is scipy's element."""
    knots = uniform_grid(G, k, -0.7, 1.3)
    h = 2.0 / G
    x = _points(knots, -0.7 - (k + 1) * h, 1.3 + (k + 1) * h, 801)
    ref = np.stack([np.nan_to_num(BSpline.basis_element(knots[m:m + k + 2].numpy(), extrapolate=False)(x.numpy()))
                    for m in range(G + k)], axis=1)
    for uniform in (True, False):
        np.testing.assert_allclose(bspline_basis(x, knots, k, uniform=uniform).numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", range(6))
def test_nonuniform_knots_match_scipy(k: int) -> None:
    gen = np.random.default_rng(k)
    inner = np.sort(np.concatenate([[-1.0, 1.0], gen.uniform(-1, 1, 6)]))
    knots = torch.as_tensor(np.concatenate([-1 - np.arange(k, 0, -1) * 0.3, inner, 1 + np.arange(1, k + 1) * 0.2]))
    assert not is_uniform(knots)
    x = _points(knots, float(knots[k]), float(knots[-k - 1]))
    ref = BSpline.design_matrix(x.numpy(), knots.numpy(), k, extrapolate=False).toarray()
    np.testing.assert_allclose(bspline_basis(x, knots, k).numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", range(6))
def test_partition_of_unity_and_support(k: int) -> None:
    G, lo, hi = 6, -0.7, 1.3
    h = (hi - lo) / G
    knots = uniform_grid(G, k, lo, hi)
    inside = _points(knots, lo, hi)
    for uniform in (True, False):
        total = bspline_basis(inside, knots, k, uniform=uniform).sum(-1)
        assert float((total - 1).abs().max()) < 1e-12
        outside = torch.cat([torch.linspace(lo - k * h - 3, lo - k * h - 1e-12, 50, dtype=F64),
                             torch.linspace(hi + k * h + 1e-12, hi + k * h + 3, 50, dtype=F64)])
        assert float(bspline_basis(outside, knots, k, uniform=uniform).abs().max()) == 0.0
        if k >= 1:  # the boundary cells are not a partition of unity
            edge = torch.tensor([lo - (k - 0.5) * h, hi + (k - 0.5) * h], dtype=F64)  # outermost cells
            assert float(bspline_basis(edge, knots, k, uniform=uniform).sum(-1).max()) < 0.6


def test_uniform_grid_values_and_shapes() -> None:
    t = uniform_grid(4, 2, -1.0, 1.0)
    np.testing.assert_allclose(t.numpy(), -1 + 0.5 * np.arange(-2, 7), rtol=0, atol=1e-15)
    assert uniform_grid(5, 3).shape == (12,)
    assert uniform_grid(5, 3, n=4).shape == (4, 12)
    assert uniform_grid(5, 3, dtype=torch.float32).dtype == torch.float32
    assert is_uniform(uniform_grid(5, 3, n=2))


def test_cardinal_matrix_known_values() -> None:
    np.testing.assert_array_equal(cardinal_matrix(0), [[1.0]])
    np.testing.assert_array_equal(cardinal_matrix(1), [[1.0, 0.0], [-1.0, 1.0]])
    # cubic: (1 − s)^3/6, (3s^3 − 6s^2 + 4)/6, (−3s^3 + 3s^2 + 3s + 1)/6, s^3/6
    m3 = np.array([[1, 4, 1, 0], [-3, 0, 3, 0], [3, -6, 3, 0], [-1, 3, -3, 1]]) / 6
    np.testing.assert_allclose(cardinal_matrix(3), m3, rtol=0, atol=1e-16)
    for k in range(6):
        np.testing.assert_allclose(cardinal_matrix(k).sum(1), [1.0] + [0.0] * k, atol=1e-14)  # Σ_r B = 1


def test_per_input_knots_and_local_values() -> None:
    knots = torch.stack([uniform_grid(5, 3, -1, 1), uniform_grid(5, 3, 0, 4)])
    x = torch.stack([torch.linspace(-2, 2, 50, dtype=F64), torch.linspace(-1, 6, 50, dtype=F64)], 1)
    dense = bspline_basis(x, knots, 3)
    assert dense.shape == (50, 2, 8)
    for i in range(2):
        np.testing.assert_allclose(dense[:, i].numpy(), bspline_basis(x[:, i], knots[i], 3).numpy(), atol=1e-15)
    cell, vals = bspline_local(x, knots, 3)
    assert cell.shape == (50, 2) and vals.shape == (50, 2, 4)
    np.testing.assert_allclose(local_to_dense(cell, vals, 8, 3).numpy(), dense.numpy(), atol=0)


def test_float32_close_to_float64() -> None:
    knots = uniform_grid(7, 3, -1, 1)
    x = torch.linspace(-2, 2, 999, dtype=F64)
    d64 = bspline_basis(x, knots, 3)
    d32 = bspline_basis(x.float(), knots.float(), 3)
    assert d32.dtype == torch.float32
    assert float((d32.double() - d64).abs().max()) < 2e-6


def test_bad_input_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="uniform_grid.G"):
        uniform_grid(0, 3)
    with pytest.raises(ConfigError, match="uniform_grid.k"):
        uniform_grid(5, -1)
    with pytest.raises(ConfigError, match=r"uniform_grid.\(lo, hi\)"):
        uniform_grid(5, 3, 1.0, 1.0)
    knots = uniform_grid(5, 3)
    with pytest.raises(ConfigError, match="bspline_basis.x: got 'NaN values'"):
        bspline_basis(torch.tensor([0.0, float("nan")], dtype=F64), knots, 3)
    with pytest.raises(ConfigError, match="bspline_basis.knots"):
        bspline_basis(torch.zeros(3, dtype=F64), knots.flip(0), 3)
    with pytest.raises(ConfigError, match="bspline_basis.knots.shape"):
        bspline_basis(torch.zeros(3, 2, dtype=F64), uniform_grid(5, 3, n=3), 3)
    with pytest.raises(ConfigError, match="bspline_basis.k"):
        bspline_basis(torch.zeros(3, dtype=F64), knots, -1)
