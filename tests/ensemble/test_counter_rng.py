"""The counter-based Normal streams of nnft.ensemble.sampling (SplitMix64 + Box–Muller): statistics and
the identity of each entry (a pure function of seed, chunk, network, layer, block and entry index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import nnft
from nnft.ensemble.sampling import chunk_generator, sample_networks


def _draws(n_nets: int = 4000, width: int = 1000, seed: int = 0, chunk: int = 0) -> np.ndarray:
    spec = nnft.erf_net(width, sigma_w0=1.0, sigma_b0=1.0)
    nets = sample_networks(spec, n_nets, chunk_generator(seed, chunk), dtype=torch.float64)
    return nets.weights[0].reshape(-1).numpy()  # W0 ~ N(0, 1) entries (d = 1: fan-in scaling 1)


def test_moments_are_those_of_a_standard_normal() -> None:
    z = _draws()
    n = len(z)
    # E z^k for k = 1..6 with the sample standard error of z^k; 5σ over six correlated statistics
    for k, want in zip(range(1, 7), (0, 1, 0, 3, 0, 15)):
        zk = z**k
        assert abs(zk.mean() - want) < 5 * zk.std() / np.sqrt(n), (k, zk.mean())


def test_distribution_and_tails() -> None:
    z = _draws()
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # tail counts beyond 4σ and 5σ: Poisson z-scores
    for c in (4.0, 5.0):
        expected = len(z) * 2 * stats.norm.sf(c)
        assert abs(np.sum(np.abs(z) > c) - expected) < 5 * np.sqrt(expected) + 1


def test_no_correlation_between_neighbouring_entries_networks_and_chunks() -> None:
    z = _draws(1000, 1000).reshape(1000, 1000)
    limit = 5 / np.sqrt(z.size)
    assert abs(np.mean(z[:, 1:] * z[:, :-1])) < limit       # neighbouring neurons
    assert abs(np.mean(z[1:] * z[:-1])) < limit              # neighbouring networks
    other = _draws(1000, 1000, chunk=1).reshape(1000, 1000)
    assert abs(np.mean(z * other)) < 5 / np.sqrt(z.size)    # neighbouring chunks
    assert abs(np.mean(z[:, : z.shape[1] // 2] * z[:, z.shape[1] // 2:])) < 2 * limit  # Box–Muller partners


def test_an_entry_does_not_depend_on_the_chunk_size() -> None:
    small = _draws(5, 50)
    large = _draws(10, 50)
    np.testing.assert_array_equal(small, large[: small.size])


def test_float32_and_float64_networks_agree_to_float32_rounding() -> None:
    spec = nnft.erf_net(100)
    a = sample_networks(spec, 50, chunk_generator(3, 2), dtype=torch.float32).weights[1].double()
    b = sample_networks(spec, 50, chunk_generator(3, 2), dtype=torch.float64).weights[1]
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=6e-8, atol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_different_seeds_give_independent_streams(seed: int) -> None:
    a, b = _draws(500, 200, seed=seed), _draws(500, 200, seed=seed + 10)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size)
