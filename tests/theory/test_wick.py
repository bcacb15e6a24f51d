"""Wick / Isserlis moments of a zero-mean Gaussian (:mod:`nnft.theory.wick`) against the explicit pairing sums
and against a large Gaussian sample."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nnft import ConfigError
from nnft.correlators import sorted_tuples
from nnft.theory import gaussian_correlators, site_kernel, wick_moments

N_SITES = 4

# The 15 pairings of {0..5}, written out by hand (not generated), for the explicit 6-point formula.
PAIRINGS_6 = [
    ((0, 1), (2, 3), (4, 5)), ((0, 1), (2, 4), (3, 5)), ((0, 1), (2, 5), (3, 4)),
    ((0, 2), (1, 3), (4, 5)), ((0, 2), (1, 4), (3, 5)), ((0, 2), (1, 5), (3, 4)),
    ((0, 3), (1, 2), (4, 5)), ((0, 3), (1, 4), (2, 5)), ((0, 3), (1, 5), (2, 4)),
    ((0, 4), (1, 2), (3, 5)), ((0, 4), (1, 3), (2, 5)), ((0, 4), (1, 5), (2, 3)),
    ((0, 5), (1, 2), (3, 4)), ((0, 5), (1, 3), (2, 4)), ((0, 5), (1, 4), (2, 3)),
]


def _random_psd(n: int, seed: int) -> np.ndarray:
    """A generic, well-conditioned, correlated covariance with unequal variances and signed entries."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    return a @ a.T / n + 0.3 * np.eye(n)


def _colex(n_sites: int, order: int) -> list[tuple[int, ...]]:
    """Sorted site tuples in colex order (compare the last index first), built independently."""
    return sorted(itertools.combinations_with_replacement(range(n_sites), order), key=lambda t: t[::-1])


def test_tuple_order_is_colex() -> None:
    for order in (1, 2, 3, 4, 6):
        assert [tuple(t) for t in sorted_tuples(N_SITES, order)] == _colex(N_SITES, order)


def test_pairings_table_is_the_15_perfect_matchings() -> None:
    """Guard for the hand-written table: 15 distinct perfect matchings of {0..5} (5!! = 15)."""
    assert len({frozenset(p) for p in PAIRINGS_6}) == 15 == math.prod(range(5, 0, -2))
    for p in PAIRINGS_6:
        assert sorted(i for pair in p for i in pair) == list(range(6))


@pytest.mark.parametrize("seed", [0, 1])
def test_order_4_explicit(seed: int) -> None:
    """G^(4)(ijkl) = K_ij K_kl + K_ik K_jl + K_il K_jk."""
    k = _random_psd(N_SITES, seed)
    want = [k[i, j] * k[l, m] + k[i, l] * k[j, m] + k[i, m] * k[j, l] for i, j, l, m in _colex(N_SITES, 4)]
    np.testing.assert_allclose(wick_moments(k, 4), want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_order_6_explicit(seed: int) -> None:
    """G^(6) = Σ over the 15 pairings of the product of three kernel entries."""
    k = _random_psd(N_SITES, seed)
    want = [sum(math.prod(k[t[a], t[b]] for a, b in p) for p in PAIRINGS_6) for t in _colex(N_SITES, 6)]
    np.testing.assert_allclose(wick_moments(k, 6), want, rtol=1e-13, atol=0)


def test_order_2_is_the_kernel() -> None:
    k = _random_psd(N_SITES, 2)
    np.testing.assert_array_equal(wick_moments(k, 2), [k[i, j] for i, j in _colex(N_SITES, 2)])


@pytest.mark.parametrize("order", [1, 3, 5])
def test_odd_orders_vanish(order: int) -> None:
    k = _random_psd(N_SITES, 3)
    out = wick_moments(k, order)
    assert out.shape == (math.comb(N_SITES + order - 1, order),)
    assert np.all(out == 0.0)


@pytest.mark.parametrize("order", [2, 4, 6])
def test_agrees_with_a_gaussian_sample(order: int) -> None:
    """Sample means of φ_{t1}···φ_{tn} over 200k draws of N(0, K) on 3 sites: every tuple within 5 standard
    errors (errors from the per-draw spread; the draws are independent). An independent check of the
    convention (K is the covariance: not a correlation, not 2K) at the 2% level of the moment scale
    (n−1)!!·Π sqrt(K_tt); the explicit-formula tests above are the exact check."""
    n_sites = 3
    k = _random_psd(n_sites, 4)
    rng = np.random.default_rng(123)
    phi = rng.standard_normal((200_000, n_sites)) @ np.linalg.cholesky(k).T
    tup = np.array(_colex(n_sites, order))
    prods = np.ones((phi.shape[0], len(tup)))
    for col in range(order):
        prods *= phi[:, tup[:, col]]
    mean, se = prods.mean(0), prods.std(0, ddof=1) / math.sqrt(phi.shape[0])
    z = (mean - wick_moments(k, order)) / se
    assert np.abs(z).max() < 5.0, z
    scale = math.prod(range(order - 1, 0, -2)) * np.sqrt(np.prod(np.diag(k)[tup], axis=1))
    assert np.max(se / scale) < 0.02


def test_site_kernel_and_gaussian_correlators() -> None:
    """Sites s = m·d_out + a: K_sites = K ⊗ I (independent output components); connected parts vanish
    beyond order 2 and the moments are the Wick sums on the site kernel."""
    k = _random_psd(3, 5)
    ks = site_kernel(k, 2)
    assert ks.shape == (6, 6)
    for s in range(6):
        for t in range(6):
            assert ks[s, t] == (k[s // 2, t // 2] if s % 2 == t % 2 else 0.0)
    moments, connected = gaussian_correlators(k, d_out=2, max_order=6)
    for n in range(1, 7):
        np.testing.assert_array_equal(moments[n].values, wick_moments(ks, n))
        assert moments[n].n_sites == 6 and not moments[n].connected and connected[n].connected
        if n == 2:
            np.testing.assert_array_equal(connected[2].values, [ks[i, j] for i, j in _colex(6, 2)])
        else:
            assert np.all(connected[n].values == 0.0)
    assert moments[4].at(0, 2, 4, 1) == 0.0  # three of component 0, one of component 1: no pairing survives
    assert moments[4].at(0, 0, 2, 2) == pytest.approx(k[0, 0] * k[1, 1] + 2 * k[0, 1] ** 2, rel=1e-14)


def test_rejects_a_non_square_kernel() -> None:
    with pytest.raises(ConfigError, match="kernel.shape"):
        wick_moments(np.ones((3, 2)), 4)
