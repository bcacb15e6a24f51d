"""Markov-chain Monte Carlo over network parameters for a deformed density (arXiv:2307.03223; PHYSICS.md §6).

Target: P̃(θ) ∝ P(θ) exp(−g S[φ_θ]), S[φ] = ∫_Ω V(φ) (the region's quadrature rule), for a network with one
hidden layer, φ_θ(x) = Σ_i a_i F_i σ(w_i·x + b_i). Because P(θ) factorizes over neurons, a Metropolis move
that replaces k randomly chosen neurons by fresh draws from their prior has the acceptance probability

    A = min(1, exp(−g (S[φ_θ'] − S[φ_θ])))

(the prior ratio cancels against the proposal ratio) — exact for any neuron density, Gaussian or not. Many
independent chains run vectorised; φ is updated incrementally at the external points and the rule's nodes
(recomputed from scratch every ``refresh`` steps against round-off drift).

Diagnostics: acceptance rate; integrated autocorrelation time τ_int of the action S and of φ(x_1)² (Sokal's
self-consistent window, c = 5, on the chain-averaged autocorrelation function); ESS = (samples)/τ_int with the
larger τ. Errors: delete-one-group jackknife over groups of independent chains.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..correlators import Correlators, moments_to_cumulants
from ..ensemble.accumulator import Accumulator, tree_reduce
from ..ensemble.sampling import NetworkBatch, chunk_generator, evaluate, sample_networks
from ..errors import check
from ..spec import Architecture, Normal
from ..theory.kernels import as_inputs
from .deform import action
from .potential import Box, Polynomial

__all__ = ["MCMCResult", "mcmc", "integrated_autocorrelation_time"]


def integrated_autocorrelation_time(series: np.ndarray, c: float = 5.0) -> float:
    """τ_int = 1 + 2 Σ_{t=1}^{W} ρ(t) of series (n_chains, T), ρ averaged over chains (FFT), with Sokal's
    window: the smallest W ≥ c·τ_int(W) (A. Sokal, "Monte Carlo methods in statistical mechanics", 1996)."""
    x = np.asarray(series, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    t = x.shape[1]
    n = 1 << int(math.ceil(math.log2(2 * t)))
    f = np.fft.rfft(x, n=n, axis=1)
    acf = np.fft.irfft(f * np.conj(f), n=n, axis=1)[:, :t].mean(0)
    if acf[0] <= 0:
        return 1.0
    rho = acf / acf[0]
    taus = 2 * np.cumsum(rho) - 1
    window = np.arange(t) >= c * taus
    w = int(np.argmax(window)) if window.any() else t - 1
    return float(max(taus[w], 1.0))


@dataclass(frozen=True, eq=False)
class MCMCResult:
    """Correlators of the deformed ensemble from MCMC, with the chain diagnostics."""

    spec: Architecture
    inputs: np.ndarray
    potential: Polynomial
    region: Box
    coupling: float
    connected: dict[int, Correlators]
    moments: dict[int, Correlators]
    acceptance: float
    tau: dict[str, float]
    n_chains: int
    n_samples: int
    ess: float
    wall_time_s: float
    settings: dict

    @property
    def effective_samples_per_s(self) -> float:
        return self.ess / max(self.wall_time_s, 1e-12)

    def meta(self) -> dict:
        return {"kind": "deformed-measurement", "method": "mcmc", "architecture": self.spec.to_config(),
                "potential": self.potential.to_config(), "region": self.region.to_config(),
                "coupling": self.coupling, "acceptance": self.acceptance, "tau": self.tau, "ess": self.ess,
                "n_chains": self.n_chains, "n_samples": self.n_samples, "wall_time_s": self.wall_time_s,
                **self.settings}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"inputs": self.inputs}
        for n, c in self.connected.items():
            out[f"connected{n}"], out[f"connected{n}_stderr"] = c.values, c.stderr
        return out


def _proposal_spec(spec: Architecture, k: int) -> Architecture:
    """The same neuron density with k hidden neurons, readout rescaled so each neuron keeps its scale."""
    hidden, readout = spec.layers
    weight = readout.weight
    if readout.scaling == "fan_in":
        weight = Normal(weight.std * math.sqrt(k / hidden.width))
    return dataclasses.replace(spec, layers=(dataclasses.replace(hidden, width=k),
                                             dataclasses.replace(readout, weight=weight)))


def _gather(nets: NetworkBatch, idx: torch.Tensor) -> NetworkBatch:
    """The sub-networks made of neurons idx (C, k) of each chain (readout bias dropped)."""
    w1, w2 = nets.weights
    b1 = nets.biases[0]
    d = w1.shape[-1]
    sub_w1 = torch.gather(w1, 1, idx[:, :, None].expand(-1, -1, d))
    sub_w2 = torch.gather(w2, 2, idx[:, None, :])
    sub_b1 = None if b1 is None else torch.gather(b1, 1, idx)
    amp = None if nets.amplitude is None else torch.gather(nets.amplitude, 1, idx)
    return NetworkBatch([sub_w1, sub_w2], [sub_b1, None], amp)


def _scatter(nets: NetworkBatch, idx: torch.Tensor, new: NetworkBatch, accept: torch.Tensor) -> None:
    """Write the accepted proposals' neurons into the chain state, in place."""
    rows = accept.nonzero()[:, 0]
    if rows.numel() == 0:
        return
    ii = idx[rows]
    r = rows[:, None].expand_as(ii)
    nets.weights[0][r, ii] = new.weights[0][rows]
    nets.weights[1][r, 0, ii] = new.weights[1][rows, 0]
    if nets.biases[0] is not None:
        nets.biases[0][r, ii] = new.biases[0][rows]
    if nets.amplitude is not None:
        nets.amplitude[r, ii] = new.amplitude[rows]


def mcmc(spec: Architecture, x, potential: Polynomial, region: Box, coupling: float, *, n_chains: int = 512,
         n_steps: int = 2000, burn_in: int = 500, thin: int = 5, neurons_per_move: Optional[int] = None,
         n_blocks: int = 16, max_order: int = 4, seed: int = 0, refresh: int = 200,
         progress: Optional[Callable[[int, int], None]] = None) -> MCMCResult:
    """Sample P(θ) exp(−g ∫_Ω V(φ_θ)) by neuron-replacement Metropolis (module docstring) and measure the
    correlators at x (M, d) from every ``thin``-th state after ``burn_in`` steps of each of ``n_chains`` chains.

    ``neurons_per_move`` (default max(1, N/10)) sets the acceptance rate: fewer neurons, higher acceptance,
    longer autocorrelation."""
    check(spec.depth == 1 and spec.d_out == 1, "spec", str(spec), "one hidden layer and d_out = 1 for MCMC")
    hidden, readout = spec.layers
    check(readout.bias is None, "spec.layers[1].bias", readout.bias, "None (MCMC moves neurons, not the readout bias)")
    check(readout.scaling == "none" or isinstance(readout.weight, Normal), "spec.layers[1].weight", readout.weight,
          "a Normal readout when it is fan-in scaled")
    x = as_inputs(x, spec.d_in)
    check(region.d == spec.d_in, "region", f"a box in d = {region.d}", f"a box in the spec's d = {spec.d_in}")
    check(math.isfinite(coupling) and coupling >= 0, "coupling", coupling, "a finite number >= 0")
    for name, v, lo in (("n_chains", n_chains, n_blocks), ("n_steps", n_steps, burn_in + thin),
                        ("thin", thin, 1), ("n_blocks", n_blocks, 2), ("refresh", refresh, 1)):
        check(isinstance(v, int) and v >= lo, name, v, f"an integer >= {lo}")
    check(isinstance(burn_in, int) and burn_in >= 0, "burn_in", burn_in, "an integer >= 0")
    k = neurons_per_move if neurons_per_move is not None else max(1, hidden.width // 10)
    check(isinstance(k, int) and 1 <= k <= hidden.width, "neurons_per_move", k, f"an integer 1..{hidden.width}")

    t0 = time.perf_counter()
    dtype = torch.float64
    z, _ = region.nodes()
    pts = torch.cat([x, torch.as_tensor(z, dtype=dtype)])
    m = x.shape[0]
    nets = sample_networks(spec, n_chains, chunk_generator(seed, 0), dtype=dtype)
    nets = NetworkBatch([w.clone() for w in nets.weights], [None if b is None else b.clone() for b in nets.biases],
                        None if nets.amplitude is None else nets.amplitude.clone())
    prop_spec = _proposal_spec(spec, k)
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))

    def field(batch: NetworkBatch, which: Architecture) -> torch.Tensor:
        return evaluate(which, batch, pts)[:, :, 0]

    phi = field(nets, spec)
    s = torch.as_tensor(action(potential, region, phi[:, m:].numpy()))
    group = np.arange(n_chains) * n_blocks // n_chains
    accs = [Accumulator.empty(m, max_order) for _ in range(n_blocks)]
    s_series, phi2_series = [], []
    accepted = proposed = 0
    for step in range(1, n_steps + 1):
        idx = torch.rand(n_chains, hidden.width, generator=gen, dtype=dtype).argsort(dim=1)[:, :k]
        old = field(_gather(nets, idx), prop_spec)
        new_nets = sample_networks(prop_spec, n_chains, chunk_generator(seed, step), dtype=dtype)
        new = field(new_nets, prop_spec)
        phi_new = phi - old + new
        s_new = torch.as_tensor(action(potential, region, phi_new[:, m:].numpy()))
        u = torch.rand(n_chains, generator=gen, dtype=dtype)
        accept = u < torch.exp(-coupling * (s_new - s))
        _scatter(nets, idx, new_nets, accept)
        phi = torch.where(accept[:, None], phi_new, phi)
        s = torch.where(accept, s_new, s)
        if step % refresh == 0:
            phi = field(nets, spec)
            s = torch.as_tensor(action(potential, region, phi[:, m:].numpy()))
        if step > burn_in:
            accepted += int(accept.sum())
            proposed += n_chains
            if (step - burn_in) % thin == 0:
                f = phi[:, :m].numpy()
                for g in range(n_blocks):
                    accs[g] = accs[g] + Accumulator.from_samples(f[group == g], max_order)
                s_series.append(s.numpy().copy())
                phi2_series.append(f[:, 0] ** 2)
        if progress is not None:
            progress(step, n_steps)
    wall = time.perf_counter() - t0

    tau = {"action": integrated_autocorrelation_time(np.stack(s_series, axis=1)),
           "phi(x1)^2": integrated_autocorrelation_time(np.stack(phi2_series, axis=1))}
    n_samples = n_chains * len(s_series)
    total = tree_reduce(accs)

    def estimates(stack):
        mk = {j: np.stack([a.moments()[j] for a in stack]) for j in range(1, max_order + 1)}
        return mk, moments_to_cumulants(mk, m, max_order)

    mom_t, con_t = estimates([total])
    mom_j, con_j = estimates([total - a for a in accs])

    def jk(a):
        return np.sqrt((n_blocks - 1) / n_blocks * ((a - a.mean(0)) ** 2).sum(0))

    label = f"MCMC, g = {coupling:g}"
    mk = lambda vals, jack, n, conn: Correlators(order=n, connected=conn, values=vals[n][0], n_sites=m,  # noqa: E731
                                                 source="measured", label=label, stderr=jk(jack[n]),
                                                 n_networks=n_samples)
    return MCMCResult(spec, x.numpy(), potential, region, float(coupling),
                      {n: mk(con_t, con_j, n, True) for n in range(1, max_order + 1)},
                      {n: mk(mom_t, mom_j, n, False) for n in range(1, max_order + 1)},
                      accepted / max(proposed, 1), tau, n_chains, n_samples, n_samples / max(tau.values()), wall,
                      {"n_steps": n_steps, "burn_in": burn_in, "thin": thin, "neurons_per_move": k,
                       "n_blocks": n_blocks, "seed": seed})
