"""φ⁴ by deforming the parameter density of the designed free scalar (m = 1, Λ = 20): network ensembles
against first-order perturbation theory (PHYSICS.md §6), in d = 1 and d = 3, and MCMC against reweighting.

The networks use importance-sampled momenta (every neuron carries the same weight), for which the O(1/N)
non-Gaussian corrections to the first-order response are a few per cent at N = 100 (d = 1: tadpole response
1.003 of the theory at 6·10⁴ networks), well inside the error bars used here.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnft.compare import compare
from nnft.ensemble import EnsembleConfig
from nnft.experiments.phi4 import default_points, default_region
from nnft.fieldtheory.deform import reweight
from nnft.fieldtheory.mcmc import mcmc
from nnft.fieldtheory.perturbation import first_order, propagators_to_region
from nnft.fieldtheory.potential import Box, phi4
from nnft.fieldtheory.spectrum import design, massive

Z_MAX = 4.0  # fixed seeds; a correct estimator exceeds |z| = 4 with probability ~6e-5 per entry


def _setup(d: int, width: int = 100):
    spec = design(massive(1.0), d, cutoff=20.0, width=width)
    side, nq = default_region(d)
    region = Box.cube(side, d, n_quad=32 if d == 1 else nq)
    x = default_points(d)
    props = propagators_to_region(spec, x, region)
    return spec, region, x, {n: first_order(spec, x, phi4(1.0), region, n, propagators=props) for n in (2, 4)}


@pytest.mark.slow
@pytest.mark.parametrize("d, n_networks, resolved", [(1, 30000, 2.5), (3, 30000, 3.0)])
def test_first_order_response_is_tree_level_and_tadpole(d: int, n_networks: int, resolved: float) -> None:
    spec, region, x, pred = _setup(d)
    cfg = EnsembleConfig(n_networks=n_networks, chunk_size=n_networks // 30, n_blocks=30, seed=100 + d, max_order=4)
    res = reweight(spec, x, phi4(1.0), region, (0.0, 0.05), cfg)
    c4 = compare(pred[4], res.response[4])
    assert c4.max_abs_z < Z_MAX, (pred[4].values, res.response[4].values, res.response[4].stderr)
    assert np.median(np.abs(pred[4].values) / res.response[4].stderr) > resolved  # a real signal, not noise
    assert np.all(pred[4].values < 0)  # λ > 0 is repulsive: the 4-point vertex is negative
    if d == 1:
        c2 = compare(pred[2], res.response[2])
        assert c2.max_abs_z < Z_MAX
        assert np.median(np.abs(pred[2].values) / res.response[2].stderr) > 10
        shift = res.shift[1][4]  # λ = 0.05: linear regime, same networks as λ = 0
        assert np.max(np.abs(shift.values - 0.05 * pred[4].values) / shift.stderr) < Z_MAX


def test_effective_sample_size_falls_with_coupling() -> None:
    spec, region, x, _ = _setup(1, width=20)
    cfg = EnsembleConfig(n_networks=4000, chunk_size=500, n_blocks=8, seed=3, max_order=2)
    res = reweight(spec, x, phi4(1.0), region, (0.0, 10.0, 100.0, 1000.0), cfg)
    assert res.ess[0] == pytest.approx(4000)
    assert np.all(np.diff(res.ess) < 0) and res.ess[-1] < 0.5 * 4000
    again = reweight(spec, x, phi4(1.0), region, (0.0, 10.0, 100.0, 1000.0), cfg)
    assert np.array_equal(again.connected[2][2].values, res.connected[2][2].values)  # seeded: bitwise


@pytest.mark.slow
def test_mcmc_agrees_with_reweighting() -> None:
    """Same deformed density, two samplers: neuron-replacement Metropolis vs importance reweighting."""
    spec, region, x, _ = _setup(1, width=10)
    lam = 8.0
    ref = reweight(spec, x, phi4(1.0), region, (lam,),
                   EnsembleConfig(n_networks=40000, chunk_size=1000, n_blocks=40, seed=9, max_order=4))
    mc = mcmc(spec, x, phi4(1.0), region, lam, n_chains=256, n_steps=500, burn_in=100, thin=2, seed=4)
    for n in (2, 4):
        assert compare(ref.connected[0][n], mc.connected[n]).max_abs_z < Z_MAX, n
    # the deformation is visible: G^(2) is lowered by more than the MCMC error
    undeformed = reweight(spec, x, phi4(1.0), region, (0.0,),
                          EnsembleConfig(n_networks=40000, chunk_size=1000, n_blocks=40, seed=9, max_order=2))
    assert np.all(undeformed.connected[0][2].values - mc.connected[2].values > 5 * mc.connected[2].stderr)
    assert 0.1 < mc.acceptance < 0.999
    assert all(t >= 1.0 for t in mc.tau.values()) and 0 < mc.ess <= mc.n_samples
