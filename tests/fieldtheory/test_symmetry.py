"""Symmetry tests from invariances of P(θ) (arXiv:2106.00694; PHYSICS.md §2 table, §6).

Each test runs K = 20 independent replicate ensembles (fixed seeds) and uses the max-|z| statistic with a
Bonferroni p-value. Thresholds: a symmetry that holds must give p > 0.01; a broken one must give p < 1e-3.
Every test can fail: a wrong transform, a sign error in the output contraction, or a mis-sampled density
changes the p-value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnft
from nnft.fieldtheory.symmetry import (SymmetryTest, output_rotation, random_rotation, reflection_z2, rotation,
                                       symmetry_test, translation)

HOLDS, BROKEN = 0.01, 1e-3
CFG = nnft.EnsembleConfig(n_networks=100_000, chunk_size=5_000, n_blocks=20, seed=7, max_order=4)
X2 = np.random.default_rng(0).normal(size=(5, 2)) * 0.5
X3 = np.random.default_rng(1).normal(size=(4, 3)) * 0.5
R2 = random_rotation(2, seed=3)
R3 = random_rotation(3, seed=4)


def _holds(r: SymmetryTest) -> None:
    assert r.n_tuples > 0 and np.isfinite(r.statistic)
    assert r.p_value > HOLDS and r.passed(HOLDS), r


def _broken(r: SymmetryTest) -> None:
    assert r.p_value < BROKEN and not r.passed(BROKEN), r


@pytest.mark.parametrize("spec", [nnft.cos_net(5, 2), nnft.scalar_net(5, 2, mass=1.0, cutoff=5.0)],
                         ids=["cos-net", "scalar-net"])
@pytest.mark.parametrize("transform", [translation([0.7, -0.4]), rotation(R2)], ids=["translation", "rotation"])
@pytest.mark.parametrize("order", [2, 4])
def test_cos_and_scalar_net_euclidean_invariant(spec, transform, order):
    _holds(symmetry_test(spec, X2, transform, order=order, config=CFG))


def test_gauss_net_translation_broken_at_four_points_only():
    """Gauss-net: G^(2) is translation invariant at every N (its exact kernel depends on x − x'), but the
    finite-N G^(4) depends on |x_k| (ρ^4 moments ∝ exp(4σ_W0²|x|²/d)). Small width N = 5, σ_b0 = 0.5
    (lighter tails), shift c = (0.6, 0)."""
    spec = nnft.gauss_net(5, 2, sigma_b0=0.5)
    x = np.random.default_rng(0).normal(size=(4, 2)) * 0.2
    cfg = nnft.EnsembleConfig(n_networks=200_000, chunk_size=10_000, n_blocks=20, seed=1, max_order=4)
    _holds(symmetry_test(spec, x, translation([0.6, 0.0]), order=2, config=cfg))
    _broken(symmetry_test(spec, x, translation([0.6, 0.0]), order=4, config=cfg))
    _holds(symmetry_test(spec, x, rotation(R2), order=4, config=cfg))


@pytest.mark.parametrize("activation", ["erf", "relu"])
@pytest.mark.parametrize("order", [2, 4])
def test_mlp_rotation_invariant(activation, order):
    spec = nnft.mlp(3, [8, 8], 1, activation=activation)
    _holds(symmetry_test(spec, X3, rotation(R3), order=order, config=CFG))


def test_mlp_not_translation_invariant():
    """Deep MLPs have no translation symmetry (PHYSICS.md §2): even G^(2) changes under x → x + c."""
    spec = nnft.mlp(3, [8, 8], 1, activation="erf")
    _broken(symmetry_test(spec, X3, translation([2.0, 0.0, 0.0]), order=2, config=CFG))


def _relu_net(readout: nnft.Normal | nnft.Uniform, first=None) -> nnft.Architecture:
    first = nnft.Normal(1.0) if first is None else first
    return nnft.Architecture(d_in=2, activation="relu",
                             layers=(nnft.Layer(width=4, weight=first, bias=nnft.Normal(1.0)),
                                     nnft.Layer(width=1, weight=readout, bias=None)))


@pytest.mark.parametrize("order", [1, 3])
def test_z2_holds_for_even_readout_and_breaks_for_nonzero_mean(order):
    _holds(symmetry_test(_relu_net(nnft.Normal(1.0)), X2, reflection_z2(), order=order, config=CFG))
    _broken(symmetry_test(_relu_net(nnft.Uniform(0.2, 1.0)), X2, reflection_z2(), order=order, config=CFG))


def test_nonzero_mean_first_layer_breaks_rotations():
    """First-layer weights ~ U(0.2, 1.0) are not isotropic: G^(2) is not rotation invariant."""
    spec = _relu_net(nnft.Normal(1.0), first=nnft.Uniform(0.2, 1.0))
    _broken(symmetry_test(spec, X2, rotation(R2), order=2, config=CFG))


def test_output_rotation():
    """i.i.d. Gaussian readout: G^(2)_{ab} ∝ δ_ab and G^(4) are O(d_out)-invariant tensors; a readout with
    nonzero mean adds μ² J_ab (all-ones), which a rotation does not preserve."""
    theta = 0.9
    R = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    x = X2[:3]
    spec = nnft.mlp(2, [6], 2, activation="erf")
    _holds(symmetry_test(spec, x, output_rotation(R), order=2, config=CFG))
    _holds(symmetry_test(spec, x, output_rotation(R), order=4, config=CFG))
    biased = nnft.Architecture(d_in=2, activation="relu",
                               layers=(nnft.Layer(width=4, weight=nnft.Normal(1.0), bias=nnft.Normal(1.0)),
                                       nnft.Layer(width=2, weight=nnft.Uniform(0.2, 1.0), bias=None)))
    _broken(symmetry_test(biased, x, output_rotation(R), order=2, config=CFG))


def test_hotelling_and_edge_cases():
    spec = nnft.cos_net(5, 2)
    cfg = nnft.EnsembleConfig(n_networks=60_000, chunk_size=1_000, n_blocks=30, seed=2, max_order=2)
    x = X2[:3]
    r = symmetry_test(spec, x, translation([0.7, -0.4]), order=2, config=cfg, method="hotelling")
    assert r.method == "hotelling" and r.dof == r.n_tuples == 6 and r.p_value > HOLDS
    # a rotation fixing x = 0 leaves G(0, 0) identical network by network: that tuple is uninformative
    r0 = symmetry_test(spec, np.zeros((1, 2)), rotation(R2), order=2, config=cfg)
    assert r0.n_tuples == 0 and r0.p_value == 1.0
    # Hotelling rejects a broken symmetry too (Z2 with a nonzero-mean readout, G^(1) on 3 inputs)
    rb = symmetry_test(_relu_net(nnft.Uniform(0.2, 1.0)), x, reflection_z2(), order=1, config=cfg, method="hotelling")
    assert rb.n_tuples == 3 and rb.p_value < BROKEN
    few = nnft.EnsembleConfig(n_networks=20_000, chunk_size=1_000, n_blocks=10, seed=2, max_order=2)
    with pytest.raises(nnft.ConfigError):  # K = 10 replicates <= T = 15 tuples: no covariance estimate
        symmetry_test(spec, X2, translation([0.1, 0.1]), order=2, config=few, method="hotelling")
    with pytest.raises(nnft.ConfigError):
        symmetry_test(spec, X2, reflection_z2(2), order=1, config=cfg)


def test_reproducible():
    spec = nnft.cos_net(5, 2)
    a = symmetry_test(spec, X2, rotation(R2), order=2, config=CFG)
    b = symmetry_test(spec, X2, rotation(R2), order=2, config=CFG)
    assert a.statistic == b.statistic and a.p_value == b.p_value
