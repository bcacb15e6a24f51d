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

from ..correlators import sorted_tuples, tuple_rank

__all__ = ["Accumulator", "StreamingReducer", "tree_reduce"]


@lru_cache(maxsize=64)
def _plan(n_features: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """For each sorted tuple of ``order``: the rank of its prefix (order − 1) and its last index."""
    tup = sorted_tuples(n_features, order)
    return tuple_rank(tup[:, :-1], n_features), tup[:, -1].copy()


_ROWS = 256


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
        """Accumulate samples f (B, F) float64. Row-wise numpy reduction: deterministic, thread-free.

        With ``weights`` (B,) the sums are Σ_b w_b Π f (quadrature rules); ``count`` stays B."""
        f = np.ascontiguousarray(f, dtype=np.float64)
        n, n_features = f.shape
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        sums = [np.zeros(len(sorted_tuples(n_features, k))) for k in range(1, max_order + 1)]
        # fixed row blocks keep the monomial arrays in cache; the summation order depends only on the rows
        for r in range(0, n, _ROWS):
            fr = f[r:r + _ROWS]
            wr = None if w is None else w[r:r + _ROWS, None]
            mono = fr
            for k in range(1, max_order + 1):
                if k > 1:
                    parent, last = _plan(n_features, k)
                    mono = mono[:, parent] * fr[:, last]
                sums[k - 1] += np.add.reduce(mono if wr is None else mono * wr, axis=0)
        return cls(n_features, max_order, n, sums)

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
