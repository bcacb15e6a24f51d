"""Mergeable power-sum accumulators and the canonical reduction tree (nnft.ensemble.accumulator).

Oracles: numpy evaluated directly on the samples (moments), a symbolic record of the merge tree (tree
shape), and float sums whose value depends on the order of addition (bitwise identity of the two tree
builders). DESIGN.md "Scale": accumulators are power sums and counts, tree-reduced.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnft.correlators import cumulants_to_moments, moments_to_cumulants, sorted_tuples
from nnft.ensemble.accumulator import Accumulator, StreamingReducer, tree_reduce


class _Node:
    """A merge-tree recorder: ``a + b`` builds the nested tuple (a, b)."""

    def __init__(self, tree) -> None:
        self.tree = tree

    def __add__(self, other: "_Node") -> "_Node":
        return _Node((self.tree, other.tree))


def _stream(items):
    reducer = StreamingReducer()
    for item in items:
        reducer.push(item)
    return reducer.result()


def _wild_accumulators(n: int, seed: int) -> list[Accumulator]:
    """Accumulators whose sums span 16 decades with random signs, so float addition is far from
    associative: any change of merge order changes the bits of the result."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        sums = [rng.standard_normal(k) * 10.0 ** rng.integers(-8, 9, size=k) for k in (3, 6)]
        out.append(Accumulator(n_features=3, max_order=2, count=int(rng.integers(1, 100)), sums=sums))
    return out


@pytest.mark.parametrize("n", range(1, 41))
def test_streaming_reducer_builds_the_canonical_tree(n):
    items = [_Node(i) for i in range(n)]
    assert _stream(items).tree == tree_reduce(items).tree


def test_canonical_tree_shape():
    """Power-of-two prefix first: 7 = 4 + (2 + 1), 6 = 4 + 2, 5 = 4 + 1."""
    tree = lambda n: tree_reduce([_Node(i) for i in range(n)]).tree  # noqa: E731
    assert tree(7) == (((0, 1), (2, 3)), ((4, 5), 6))
    assert tree(6) == (((0, 1), (2, 3)), (4, 5))
    assert tree(5) == (((0, 1), (2, 3)), 4)
    assert tree(1) == 0


@pytest.mark.parametrize("n", range(1, 41))
def test_tree_reduce_and_streaming_reducer_are_bitwise_identical(n):
    items = _wild_accumulators(n, seed=n)
    a, b = tree_reduce(items), _stream(items)
    assert a.count == b.count == sum(i.count for i in items)
    for sa, sb in zip(a.sums, b.sums):
        assert np.array_equal(sa, sb)


def test_merge_order_matters_for_these_sums():
    """Guard: the bitwise test above could not fail if addition were associative on this data."""
    items = _wild_accumulators(40, seed=40)
    left_fold = items[0]
    for item in items[1:]:
        left_fold = left_fold + item
    tree = tree_reduce(items)
    assert not all(np.array_equal(x, y) for x, y in zip(left_fold.sums, tree.sums))


@pytest.mark.parametrize("n_features,max_order", [(1, 6), (3, 4), (4, 6), (7, 3)])
def test_moments_match_numpy(n_features, max_order):
    rng = np.random.default_rng(100 + n_features)
    f = rng.standard_normal((257, n_features)) + 0.3
    mom = Accumulator.from_samples(f, max_order).moments()
    for k in range(1, max_order + 1):
        tup = sorted_tuples(n_features, k)
        direct = np.array([np.mean(np.prod(f[:, t], axis=1)) for t in tup])
        np.testing.assert_allclose(mom[k], direct, rtol=1e-12, atol=1e-14)


def test_float32_samples_are_accumulated_in_float64():
    f = np.full((4, 1), 1.0 + 2.0 ** -20, dtype=np.float32)
    acc = Accumulator.from_samples(f, 6)
    assert all(s.dtype == np.float64 for s in acc.sums)
    assert acc.moments()[6][0] == pytest.approx(float(np.float32(1.0 + 2.0 ** -20)) ** 6, rel=1e-15)


@pytest.mark.parametrize("split", [1, 50, 199])
def test_merging_equals_accumulating_the_concatenation(split):
    rng = np.random.default_rng(split)
    f = rng.standard_normal((200, 5)) * np.array([1.0, 10.0, 0.1, 3.0, 1.0])
    whole = Accumulator.from_samples(f, 4)
    merged = Accumulator.from_samples(f[:split], 4) + Accumulator.from_samples(f[split:], 4)
    assert merged.count == whole.count == 200
    for a, b in zip(merged.sums, whole.sums):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())


def test_subtraction_undoes_merging():
    """The jackknife takes total − block; check it recovers the other part."""
    rng = np.random.default_rng(7)
    a = Accumulator.from_samples(rng.standard_normal((100, 3)), 4)
    b = Accumulator.from_samples(rng.standard_normal((60, 3)), 4)
    diff = (a + b) - b
    assert diff.count == a.count
    for x, y in zip(diff.sums, a.sums):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * np.abs(y).max())


def test_array_round_trip_is_exact():
    rng = np.random.default_rng(8)
    acc = Accumulator.from_samples(rng.standard_normal((30, 4)), 5)
    back = Accumulator.from_arrays(acc.to_arrays("p_"), "p_")
    assert (back.n_features, back.max_order, back.count) == (4, 5, 30)
    assert all(np.array_equal(x, y) for x, y in zip(back.sums, acc.sums))


def test_cumulants_of_samples_match_numpy_central_moments():
    """moments_to_cumulants on accumulated raw moments: κ1 = mean, κ2 = covariance,
    κ3 = third central moment, κ4 = E[δ⁴] − 3 Var² (PHYSICS.md §1, centred form), on one feature
    and on a mixed tuple; then the inverse conversion restores the raw moments."""
    rng = np.random.default_rng(9)
    f = rng.gamma(2.0, size=(1000, 2)) + np.array([0.5, -1.0])
    mom = Accumulator.from_samples(f, 4).moments()
    cum = moments_to_cumulants(mom, 2, 4)
    d = f - f.mean(0)
    np.testing.assert_allclose(cum[1], f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cum[2][[0, 1, 2]], [np.mean(d[:, 0] ** 2), np.mean(d[:, 0] * d[:, 1]),
                                                   np.mean(d[:, 1] ** 2)], rtol=1e-10)
    t3 = sorted_tuples(2, 3)
    np.testing.assert_allclose(cum[3], [np.mean(np.prod(d[:, t], 1)) for t in t3], rtol=1e-9, atol=1e-12)
    c = np.cov(d.T, bias=True)
    t4 = sorted_tuples(2, 4)
    direct4 = [np.mean(np.prod(d[:, t], 1)) - c[t[0], t[1]] * c[t[2], t[3]] - c[t[0], t[2]] * c[t[1], t[3]]
               - c[t[0], t[3]] * c[t[1], t[2]] for t in t4]
    np.testing.assert_allclose(cum[4], direct4, rtol=1e-9, atol=1e-10)
    back = cumulants_to_moments(cum, 2, 4)
    for k in range(1, 5):
        np.testing.assert_allclose(back[k], mom[k], rtol=1e-10)
