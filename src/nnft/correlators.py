"""Correlators: one result type for measured and predicted n-point functions.

A "site" is an (input, output component) pair, s = m·d_out + a. A correlator of order n is stored on the
unique sorted site tuples only (the tensor is symmetric), ordered by their colex rank, and expanded to the
full tensor on request. Moments and cumulants convert through set partitions (PHYSICS.md §1):
    G^(n)(1..n)   = Σ_{π ∈ Part(n)} Π_{B∈π} G_c^(|B|)(x_B)
    G_c^(n)(1..n) = Σ_{π} (−1)^{|π|−1} (|π|−1)! Π_{B∈π} G^(|B|)(x_B)       (Bell(4) = 15, Bell(6) = 203 terms)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Optional

import numpy as np

from .errors import check

__all__ = ["Correlators", "sorted_tuples", "tuple_rank", "set_partitions", "moments_to_cumulants",
           "cumulants_to_moments", "pairings", "MAX_ORDER"]

MAX_ORDER = 6


@lru_cache(maxsize=None)
def set_partitions(n: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """All set partitions of {0..n−1} (sympy's multiset_partitions), blocks as sorted position tuples."""
    from sympy.utilities.iterables import multiset_partitions

    return tuple(tuple(tuple(b) for b in p) for p in multiset_partitions(list(range(n))))


@lru_cache(maxsize=None)
def pairings(n: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Perfect matchings of {0..n−1} ((n−1)!! of them; none for odd n)."""
    return tuple(tuple(b) for b in set_partitions(n) if all(len(x) == 2 for x in b)) if n % 2 == 0 else ()


@lru_cache(maxsize=64)
def _binom_table(top: int, k: int) -> np.ndarray:
    return np.array([[math.comb(a, b) for b in range(k + 1)] for a in range(top + 1)], dtype=np.int64)


def tuple_rank(tuples: np.ndarray, n_sites: int) -> np.ndarray:
    """Colex rank of sorted (non-decreasing) site tuples of length k among all C(n_sites + k − 1, k).

    c_i = t_i + i is strictly increasing; rank = Σ_i C(c_i, i + 1).
    """
    tuples = np.asarray(tuples, dtype=np.int64)
    k = tuples.shape[1]
    if k == 0:
        return np.zeros(len(tuples), dtype=np.int64)
    c = tuples + np.arange(k)
    table = _binom_table(n_sites + k, k)
    return table[c, np.arange(1, k + 1)].sum(axis=1)


@lru_cache(maxsize=64)
def sorted_tuples(n_sites: int, order: int) -> np.ndarray:
    """All sorted site tuples of length ``order``, in colex-rank order: shape (C(S+n−1, n), n)."""
    tup = np.array(list(itertools.combinations_with_replacement(range(n_sites), order)), dtype=np.int64)
    tup = tup.reshape(-1, order)
    out = np.empty_like(tup)
    out[tuple_rank(tup, n_sites)] = tup
    out.setflags(write=False)
    return out


def _convert(parts: dict[int, np.ndarray], n_sites: int, order: int, signed: bool) -> np.ndarray:
    """Σ_π c_π Π_B parts[|B|][rank(t_B)] for every sorted tuple t of ``order``; parts[k] has a leading
    batch axis of any shape, then the tuple axis."""
    tup = sorted_tuples(n_sites, order)
    lead = parts[1].shape[:-1]
    out = np.zeros(lead + (len(tup),))
    for pi in set_partitions(order):
        coef = ((-1) ** (len(pi) - 1) * math.factorial(len(pi) - 1)) if signed else 1
        term = np.full(lead + (len(tup),), float(coef))
        for block in pi:
            term = term * parts[len(block)][..., tuple_rank(tup[:, list(block)], n_sites)]
        out += term
    return out


def moments_to_cumulants(moments: dict[int, np.ndarray], n_sites: int, max_order: int) -> dict[int, np.ndarray]:
    """Joint cumulants (connected correlators, mean included) from raw moments, order by order."""
    return {n: _convert(moments, n_sites, n, True) for n in range(1, max_order + 1)}


def cumulants_to_moments(cumulants: dict[int, np.ndarray], n_sites: int, max_order: int) -> dict[int, np.ndarray]:
    """Raw moments from joint cumulants (the inverse of :func:`moments_to_cumulants`)."""
    return {n: _convert(cumulants, n_sites, n, False) for n in range(1, max_order + 1)}


@dataclass(frozen=True, eq=False)
class Correlators:
    """An n-point function on the unique sorted site tuples — measured or predicted.

    Attributes
    ----------
    order : n.
    connected : True for G_c^(n) (cumulant), False for the moment G^(n).
    values : (T,) values on ``tuples`` (T = C(S + n − 1, n) for S sites).
    n_sites : S = M·d_out; a site is s = m·d_out + a (input m, output component a).
    d_out : number of output components.
    source : "measured" or "predicted".
    label : what produced it ("NNGP (Wick)", "ensemble", ...).
    stderr : (T,) standard error (measurements: jackknife over blocks; MC theory: its own error).
    background : (T,) standard deviation of the block estimates (the NN-QFT "background").
    n_networks : ensemble size, for measurements.
    width_order : the order in 1/N of a prediction ("exact", "N^0", "1/N").
    """

    order: int
    connected: bool
    values: np.ndarray
    n_sites: int
    d_out: int = 1
    source: Literal["measured", "predicted"] = "predicted"
    label: str = ""
    stderr: Optional[np.ndarray] = None
    background: Optional[np.ndarray] = None
    n_networks: Optional[int] = None
    width_order: Optional[str] = None

    def __post_init__(self) -> None:
        check(1 <= self.order <= MAX_ORDER, "order", self.order, f"1..{MAX_ORDER}")
        expected = math.comb(self.n_sites + self.order - 1, self.order)
        check(np.shape(self.values) == (expected,), "Correlators.values.shape", np.shape(self.values),
              f"({expected},) for order {self.order} on {self.n_sites} sites")

    @property
    def tuples(self) -> np.ndarray:
        return sorted_tuples(self.n_sites, self.order)

    def full(self, which: Literal["values", "stderr", "background"] = "values") -> np.ndarray:
        """The symmetric tensor of shape (S,)*n."""
        src = getattr(self, which)
        check(src is not None, "Correlators.full(which)", which, "a field that is set")
        idx = np.indices((self.n_sites,) * self.order).reshape(self.order, -1).T
        ranks = tuple_rank(np.sort(idx, axis=1), self.n_sites)
        return np.asarray(src)[ranks].reshape((self.n_sites,) * self.order)

    def at(self, *sites: int) -> float:
        """Value at one site tuple (any order of the indices)."""
        check(len(sites) == self.order, "sites", sites, f"{self.order} site indices")
        return float(self.values[tuple_rank(np.sort(np.array([sites])), self.n_sites)[0]])

    @property
    def name(self) -> str:
        return f"G{'_c' if self.connected else ''}^({self.order})"

    def __repr__(self) -> str:
        err = "" if self.stderr is None else f" ± {np.median(self.stderr):.2g} (median)"
        return (f"Correlators({self.name}, {self.source}, {self.label!r}, {len(self.values)} tuples, "
                f"|values| median {np.median(np.abs(self.values)):.4g}{err})")
