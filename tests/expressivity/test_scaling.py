"""The KAN scaling law (reduced): spline reference ∝ G^-4, a trained KAN gaining ~G^-4 over one grid
extension, MLP baseline bookkeeping, and the kan-scaling experiment on a short schedule."""

from __future__ import annotations

import numpy as np
import pytest

from nnft.errors import ConfigError
from nnft.expressivity.scaling import (fit_exponent, kan_scaling, matching_mlp_width, mlp_n_params, mlp_scaling,
                                       pre_floor_range, spline_reference)


def test_spline_reference_follows_g_to_the_minus_four() -> None:
    """Least-squares cubic splines of the components (no optimizer): RMSE ∝ G^-(k+1), k = 3 and k = 2."""
    grids = np.array([5, 10, 20, 40])
    slope, err = fit_exponent(grids, spline_reference(grids, k=3))
    assert abs(slope + 4) < 0.3 and err < 0.1, (slope, err)
    slope2, _ = fit_exponent(grids, spline_reference(grids, k=2))
    assert abs(slope2 + 3) < 0.3, slope2


def test_trained_kan_gains_about_g_to_the_minus_four_per_extension() -> None:
    """[2, 1, 1] trained at G = 3, extended to 5 and 10: from 5 to 10 the test RMSE drops by ≥ 8× (2^4 = 16
    for the law), and it stays within 2× of the spline reference (no optimizer floor yet)."""
    curve = kan_scaling((2, 1, 1), (3, 5, 10), steps=30, grid_update_steps=10)
    ref = spline_reference((3, 5, 10))
    assert list(curve.n_params) == [3 * (3 + 5), 3 * (5 + 5), 3 * (10 + 5)]
    assert curve.test_rmse[1] / curve.test_rmse[2] > 8, curve.test_rmse
    assert np.all(curve.test_rmse < 2 * ref), (curve.test_rmse, ref)
    a, b = (kan_scaling((2, 1, 1), (3, 5), steps=3, grid_update_steps=1, restarts=2, restart_steps=1)
            for _ in range(2))
    assert np.array_equal(a.test_rmse, b.test_rmse)  # seeded: reproducible to the bit


def test_mlp_baseline_bookkeeping() -> None:
    assert mlp_n_params(4) == 4 * 3 + 4 * 5 + 4 + 1
    for p in (24, 45, 165):
        h = matching_mlp_width(p)
        assert abs(mlp_n_params(h) - p) <= min(abs(mlp_n_params(h + 1) - p), abs(mlp_n_params(max(h - 1, 1)) - p))
    a = mlp_scaling([3, 6], steps=3)
    b = mlp_scaling([3, 6], steps=3)
    assert list(a.n_params) == [mlp_n_params(3), mlp_n_params(6)]
    assert np.array_equal(a.test_rmse, b.test_rmse) and np.all(np.isfinite(a.test_rmse))


def test_fit_range_and_exponent_helpers() -> None:
    g = np.array([3, 5, 10, 20, 50])
    ref = 2.0 * g ** -4.0
    rmse = np.maximum(ref * 1.2, 1e-4)  # tracks the reference, then a floor at 1e-4
    mask = pre_floor_range(g, rmse, ref, fit_from=5)
    assert list(g[mask]) == [5, 10]
    slope, err = fit_exponent(g[mask], rmse[mask])
    assert slope == pytest.approx(-4.0) and err == 0.0
    slope3, err3 = fit_exponent(g, ref)
    assert slope3 == pytest.approx(-4.0) and err3 < 1e-12
    with pytest.raises(ConfigError, match="fit_exponent"):
        fit_exponent(g[:1], ref[:1])
    with pytest.raises(ConfigError, match="grids"):
        kan_scaling((2, 1, 1), (10, 5))


def test_kan_scaling_experiment_short_schedule() -> None:
    from nnft.experiments.kan_scaling import KANScaling

    res = KANScaling(grids=(3, 5, 10), steps=30, grid_update_steps=10).run()
    by_name = {c.name: c for c in res.checks}
    assert set(by_name) == {"least-squares splines of the components: RMSE ∝ G^-(k+1)",
                            "trained KAN: test RMSE ∝ G^-(k+1) before the optimizer floor",
                            "KAN beats the equal-size MLP at the largest grid"}
    assert by_name["KAN beats the equal-size MLP at the largest grid"].passed
    assert res.figures and res.arrays["kan_test_rmse"].shape == (3,)
