"""Mergeable float64 power-sum accumulators of monomials, and the canonical reduction tree.

For F features f_1..f_F per sample, the accumulator keeps, for every order k ≤ R and every sorted index
tuple t = (t_1 ≤ .. ≤ t_k), the power sum Σ_samples Π_j f_{t_j}, plus the count. Merging is addition, so
accumulators from different chunks, workers or machines combine exactly. To make results bitwise
independent of the executor, chunks are always combined along one canonical binary tree (see
:func:`tree_reduce` and :class:`StreamingReducer`, which build the same tree).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from ..correlators import sorted_tuples, tuple_rank

__all__ = ["Accumulator", "StreamingReducer", "tree_reduce"]


@lru_cache(maxsize=64)
def _flat_plan(n_features: int, max_order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All orders' monomials in one flat array: for flat index i ≥ F, mono[i] = mono[parents[i]] · f[lasts[i]]
    (parents index the previous order's block); order-1 entries are f itself."""
    sizes = np.array([len(sorted_tuples(n_features, k)) for k in range(1, max_order + 1)], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    parents = np.arange(offsets[-1], dtype=np.int64)
    lasts = np.concatenate([np.arange(n_features)] + [np.zeros(sizes[k], np.int64) for k in range(1, max_order)])
    for k in range(2, max_order + 1):
        parent, last = _plan(n_features, k)
        parents[offsets[k - 1]:offsets[k]] = offsets[k - 2] + parent
        lasts[offsets[k - 1]:offsets[k]] = last
    return parents, lasts, sizes


_ROWS = 16


@njit(cache=True, nogil=True)
def _accumulate_rows(f, w, parents, lasts, out):  # pragma: no cover - compiled
    """out[i] += Σ_rows w_r mono_r[i], rows added in order. Monomials are built for 16 rows at a time
    (vectorized across rows); the sum still runs over rows in order, so the result is a fixed function
    of the rows. Hand-written because numpy needs a temporary and a fancy-indexing pass per order (3–4×
    slower at these sizes) and no library sums monomials."""
    n, n_features = f.shape
    total = out.shape[0]
    mono = np.empty((_ROWS, total))
    for r0 in range(0, n, _ROWS):
        rows = min(_ROWS, n - r0)
        for r in range(rows):
            for i in range(n_features):
                mono[r, i] = f[r0 + r, i]
        for i in range(n_features, total):
            p, q = parents[i], lasts[i]
            for r in range(rows):
                mono[r, i] = mono[r, p] * f[r0 + r, q]
        for r in range(rows):  # row by row: each out[i] sums its rows in order; vectorized over i
            wr = w[r0 + r]
            for i in range(total):
                out[i] += wr * mono[r, i]


@lru_cache(maxsize=64)
def _plan(n_features: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """For each sorted tuple of ``order``: the rank of its prefix (order − 1) and its last index."""
    tup = sorted_tuples(n_features, order)
    return tuple_rank(tup[:, :-1], n_features), tup[:, -1].copy()


@dataclass
class Accumulator:
    """Power sums ``sums[k−1]`` (length C(F + k − 1, k)) for k = 1..R, and ``count``."""

    n_features: int
    max_order: int
    count: int
    sums: list[np.ndarray]

    @classmethod
    def empty(cls, n_features: int, max_order: int) -> "Accumulator":
        return cls(n_features, max_order, 0,
                   [np.zeros(len(sorted_tuples(n_features, k))) for k in range(1, max_order + 1)])

    @classmethod
    def from_samples(cls, f: np.ndarray, max_order: int, *, weights: np.ndarray | None = None) -> "Accumulator":
        """Accumulate samples f (B, F) float64: Σ_b w_b Π_{j∈t} f[b, t_j] for every sorted tuple t.

        A compiled loop over rows in order (deterministic, thread-free); with ``weights`` (B,) the sums are
        weighted (quadrature rules) and ``count`` stays B."""
        f = np.ascontiguousarray(f, dtype=np.float64)
        n, n_features = f.shape
        w = np.ones(n) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
        parents, lasts, sizes = _flat_plan(n_features, max_order)
        flat = np.zeros(int(sizes.sum()))
        _accumulate_rows(f, w, parents, lasts, flat)
        return cls(n_features, max_order, n, np.split(flat, np.cumsum(sizes)[:-1]))

    def __add__(self, other: "Accumulator") -> "Accumulator":
        return Accumulator(self.n_features, self.max_order, self.count + other.count,
                           [a + b for a, b in zip(self.sums, other.sums)])

    def __sub__(self, other: "Accumulator") -> "Accumulator":
        return Accumulator(self.n_features, self.max_order, self.count - other.count,
                           [a - b for a, b in zip(self.sums, other.sums)])

    def moments(self) -> dict[int, np.ndarray]:
        """Raw moments E[Π f] per order."""
        return {k: s / self.count for k, s in enumerate(self.sums, start=1)}

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}count": np.array(self.count), f"{prefix}meta": np.array([self.n_features, self.max_order])}
        out.update({f"{prefix}s{k}": s for k, s in enumerate(self.sums, start=1)})
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> "Accumulator":
        n_features, max_order = (int(v) for v in arrays[f"{prefix}meta"])
        return cls(n_features, max_order, int(arrays[f"{prefix}count"]),
                   [np.array(arrays[f"{prefix}s{k}"]) for k in range(1, max_order + 1)])


def tree_reduce(items: list, merge=lambda a, b: a + b):
    """Combine items[0..n) along the canonical tree: a balanced binary tree for n = 2^j, otherwise
    merge(tree(first 2^j), tree(rest)) with 2^j the largest power of two below n."""
    n = len(items)
    if n == 1:
        return items[0]
    half = n // 2 if n & (n - 1) == 0 else 1 << (n.bit_length() - 1)
    return merge(tree_reduce(items[:half], merge), tree_reduce(items[half:], merge))


class StreamingReducer:
    """Builds :func:`tree_reduce`'s tree in streaming order with O(log n) memory (a binary counter)."""

    def __init__(self, stack: list | None = None) -> None:
        self.stack: list[tuple[int, Accumulator]] = list(stack or [])

    def push(self, acc: Accumulator) -> None:
        self.stack.append((1, acc))
        while len(self.stack) >= 2 and self.stack[-1][0] == self.stack[-2][0]:
            (s1, a1), (s2, a2) = self.stack.pop(-2), self.stack.pop()
            self.stack.append((s1 + s2, a1 + a2))

    def result(self) -> Accumulator:
        acc = self.stack[-1][1]
        for _, entry in reversed(self.stack[:-1]):
            acc = entry + acc
        return acc
