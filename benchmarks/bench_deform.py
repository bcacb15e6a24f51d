"""Deformed-density samplers (issue "Neural network field theory", item 6): effective samples per second of
importance reweighting (several λ on the same networks) and of neuron-replacement MCMC, for the designed free
scalar (m = 1, Λ = 20, importance-sampled momenta) deformed by (λ/4!)∫_Ω φ⁴.
Usage: python benchmarks/bench_deform.py [n_networks]"""

from __future__ import annotations

import sys

import torch

from nnft.ensemble import EnsembleConfig
from nnft.experiments.phi4 import default_points, default_region
from nnft.fieldtheory.deform import reweight
from nnft.fieldtheory.mcmc import mcmc
from nnft.fieldtheory.potential import Box, phi4
from nnft.fieldtheory.spectrum import design, massive


def main() -> None:
    torch.set_num_threads(2)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| d | width | nodes | sampler | λ | ESS | wall s | effective samples/s |")
    print("|---|---|---|---|---|---|---|---|")
    for d, width, couplings in ((1, 100, (0.0, 1.0, 10.0, 100.0)), (3, 100, (0.0, 10.0, 100.0, 1000.0))):
        spec = design(massive(1.0), d, cutoff=20.0, width=width)
        side, nq = default_region(d)
        region, x = Box.cube(side, d, n_quad=nq), default_points(d)
        res = reweight(spec, x, phi4(1.0), region, couplings,
                       EnsembleConfig(n_networks=n, chunk_size=n // 40, n_blocks=40, seed=1, max_order=4))
        for g, ess, rate in zip(res.couplings, res.ess, res.effective_samples_per_s):
            print(f"| {d} | {width} | {nq ** d} | reweighting (all λ in one pass) | {g:g} | {ess:.0f} | "
                  f"{res.wall_time_s:.1f} | {rate:,.0f} |")
        for g in couplings[1:3]:
            mc = mcmc(spec, x, phi4(1.0), region, g, n_chains=512, n_steps=600, burn_in=100, thin=2, seed=2)
            print(f"| {d} | {width} | {nq ** d} | MCMC (acceptance {mc.acceptance:.2f}, τ {max(mc.tau.values()):.1f}) "
                  f"| {g:g} | {mc.ess:.0f} | {mc.wall_time_s:.1f} | {mc.effective_samples_per_s:,.0f} |")


if __name__ == "__main__":
    main()
