"""Fused float64 CPU NNGP + NTK recursion for deep fully connected ReLU / erf networks.

Conventions (NTK parameterization, PHYSICS conventions).  Inputs x of shape (n, d); L hidden
layers; sw2[l], sb2[l] (l = 0..L) are the weight and bias variances of layer l (l = L: readout):

    Sigma^(1)(x, x') = sb2[0] + sw2[0] * x.x' / d,            Theta^(1) = Sigma^(1)
    for l = 1..L, with a = Sigma^(l)(x, x), b = Sigma^(l)(x', x'), c = Sigma^(l)(x, x'):
        Sigma^(l+1)    = sb2[l] + sw2[l] * k(a, b, c)
        Sigmadot^(l+1) = sw2[l] * k'(a, b, c)
        Theta^(l+1)    = Theta^(l) * Sigmadot^(l+1) + Sigma^(l+1)
    NNGP = Sigma^(L+1),  NTK = Theta^(L+1).

Dual kernels, rho = clip(c / sqrt(a b), -1, 1), theta = arccos(rho):
    relu (arc-cosine kernel of degree 1, Cho & Saul 2009):
        k  = sqrt(a b) / (2 pi) * [sqrt(1 - rho^2) + (pi - theta) rho],   k' = (pi - theta) / (2 pi)
    erf (Williams 1997):
        k  = (2/pi) * arcsin(u),  u = clip(2c / sqrt((1 + 2a)(1 + 2b)), -1, 1)
        k' = (4/pi) / sqrt((1 + 2a)(1 + 2b) - 4c^2)

References: Jacot, Gabriel, Hongler, arXiv:1806.07572 (NTK); Lee et al., arXiv:1711.00165 (NNGP);
Cho & Saul, "Kernel methods for deep learning", NIPS 2009 (arc-cosine kernels).
"""
# Why hand-written: no library fuses this recursion on the CPU.  neural-tangents (JAX/XLA) and a
# plain torch recursion materialise several n1 x n2 intermediates per layer and call libm acos /
# asin entry by entry.  Here the diagonal recursion runs first (O(n L)), so sqrt(a b) and
# sqrt((1+2a)(1+2b)) factorise into per-row numbers; each entry is then carried through all layers
# in one pass over memory, with a branch-free, SIMD-vectorised arcsin/arccos (fdlibm's rational
# approximation, a few ulp), the i <= j symmetry when x2 is None, and threads over tiles (prange).

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["fused_nngp_ntk"]

_TILE = 128
# Only value-preserving fast-math: with 'contract'/'reassoc' LLVM fused differently in the several
# compiled copies of a loop (vector body, fallbacks), and which copy ran varied from call to call, so
# results differed by 1 ulp between identical calls.  FMAs are explicit instead (_fma): results are
# bitwise reproducible.  Accuracy against a plain numpy reference: ~1e-15 of the matrix scale.
_FM = {"nsz"}


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma.f64; vectorises to vfmadd)."""
    def codegen(context, builder, sig, args):
        f64 = ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f64, [f64] * 3), "llvm.fma.f64")
        return builder.call(fn, args)
    return types.float64(types.float64, types.float64, types.float64), codegen

# fdlibm e_asin.c / e_acos.c: asin(x) = x + x R(x^2) on [0, 1/2], R(z) = z P(z) / Q(z).
_P0, _P1, _P2 = 1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01
_P3, _P4, _P5 = -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05
_Q1, _Q2 = -2.40339491173441421878e00, 2.02094576023350569471e00
_Q3, _Q4 = -6.88283971605453293030e-01, 7.70381505559019352791e-02
_HALF_PI = 0.5 * math.pi


@njit(cache=True, fastmath=_FM, error_model="numpy", inline="always")
def _asin_parts(v):
    """For v in [-1, 1]: (small, p, q, s, om); with r = p/q, w = s + s r:
    asin(|v|) = |v| + |v| r if small (|v| <= 1/2) else pi/2 - 2 w;  om = 1 - v^2 (no cancellation)."""
    x = abs(v)
    small = x <= 0.5
    z = v * v if small else 0.5 * (1.0 - x)
    p = z * _fma(z, _fma(z, _fma(z, _fma(z, _fma(z, _P5, _P4), _P3), _P2), _P1), _P0)
    q = _fma(z, _fma(z, _fma(z, _fma(z, _Q4, _Q3), _Q2), _Q1), 1.0)
    s = math.sqrt(z)
    om = 1.0 - z if small else 2.0 * z * (1.0 + x)
    return small, p, q, s, om


@njit(parallel=True, cache=True, fastmath=_FM, error_model="numpy")
def _fused(x1, x2t, A1, B1, A2, B2, sw2, sb2, relu, sym, tiles_i, tiles_j, tile, K, T, want_ntk):
    n1, d = x1.shape
    n2 = x2t.shape[1]
    L = A1.shape[0]
    inv_2pi = 0.5 / math.pi
    two_pi = 2.0 / math.pi
    four_pi = 4.0 / math.pi
    w0 = sw2[0] / d
    b0 = sb2[0]
    for t in prange(tiles_i.shape[0]):
        i0 = tiles_i[t] * tile
        j0 = tiles_j[t] * tile
        i1 = min(i0 + tile, n1)
        m = min(j0 + tile, n2) - j0
        diag = sym and tiles_i[t] == tiles_j[t]
        mirror = sym and not diag
        c = np.empty(tile)
        th = np.empty(tile)
        bk = np.empty((tile, tile)) if mirror else np.empty((1, 1))
        bt = np.empty((tile, tile)) if mirror and want_ntk else np.empty((1, 1))
        for i in range(i0, i1):
            for jj in range(m):
                c[jj] = 0.0
            for k in range(d):
                xik = x1[i, k]
                for jj in range(m):
                    c[jj] += xik * x2t[k, j0 + jj]
            for jj in range(m):
                c[jj] = b0 + w0 * c[jj]
                th[jj] = c[jj]
            for l in range(L):
                sw = sw2[l + 1]
                sb = sb2[l + 1]
                ai = A1[l, i]
                bi = B1[l, i]
                swn = sw * (inv_2pi if relu else two_pi)
                swd = sw * four_pi
                if relu:
                    # A = sqrt(a), B = 1/sqrt(a);  phi = pi - theta
                    for jj in range(m):
                        cj = c[jj]
                        rho = cj * bi * B2[l, j0 + jj]
                        rho = -1.0 if rho < -1.0 else (1.0 if rho > 1.0 else rho)
                        small, p, q, s, om = _asin_parts(rho)
                        r = p / q
                        w = _fma(s, r, s)
                        phi = _HALF_PI + _fma(rho, r, rho) if small else (math.pi - 2.0 * w if rho > 0.0 else 2.0 * w)
                        cn = _fma(swn, _fma(ai * A2[l, j0 + jj], math.sqrt(om), phi * cj), sb)
                        th[jj] = _fma(th[jj] * swn, phi, cn)
                        c[jj] = cn
                else:
                    # A = 1/sqrt(1 + 2a)
                    for jj in range(m):
                        g = ai * A2[l, j0 + jj]
                        u = 2.0 * c[jj] * g
                        u = -1.0 if u < -1.0 else (1.0 if u > 1.0 else u)
                        small, p, q, s, om = _asin_parts(u)
                        sq = math.sqrt(max(om, 1e-300))  # |u| = 1: huge k', not NaN
                        inv = 1.0 / (q * sq)  # one division for both p/q and 1/sqrt(om)
                        r = p * sq * inv
                        w = _fma(s, r, s)
                        asn = _fma(u, r, u) if small else (_HALF_PI - 2.0 * w if u > 0.0 else 2.0 * w - _HALF_PI)
                        cn = _fma(swn, asn, sb)
                        th[jj] = _fma(th[jj], swd * g * q * inv, cn)
                        c[jj] = cn
            # diagonal tile: keep j >= i only and mirror it (exact symmetry; the full row is computed
            # above because a variable loop start stops LLVM from vectorising)
            js = i - j0 if diag else 0
            for jj in range(js, m):
                K[i, j0 + jj] = c[jj]
            if want_ntk:
                for jj in range(js, m):
                    T[i, j0 + jj] = th[jj]
            if diag:
                for jj in range(js, m):
                    K[j0 + jj, i] = c[jj]
                    if want_ntk:
                        T[j0 + jj, i] = th[jj]
            if mirror:  # buffer the tile; written transposed below, row by row
                for jj in range(m):
                    bk[jj, i - i0] = c[jj]
                if want_ntk:
                    for jj in range(m):
                        bt[jj, i - i0] = th[jj]
        if mirror:
            for jj in range(m):
                for ii in range(i1 - i0):
                    K[j0 + jj, i0 + ii] = bk[jj, ii]
                if want_ntk:
                    for ii in range(i1 - i0):
                        T[j0 + jj, i0 + ii] = bt[jj, ii]


def _diag(x, sw2, sb2, relu):
    """Per-row diagonal recursion: a^(l) for l = 1..L+1 (shape (L+1, n)) and Theta^(L+1)(x, x)."""
    L = len(sw2) - 1
    a = np.empty((L + 1, x.shape[0]))
    a[0] = sb2[0] + sw2[0] * np.einsum("ij,ij->i", x, x) / x.shape[1]
    th = a[0].copy()
    for l in range(1, L + 1):
        if relu:  # rho = 1: k = a / 2, k' = 1/2
            a[l] = sb2[l] + sw2[l] * 0.5 * a[l - 1]
            sd = sw2[l] * 0.5
        else:  # u = 2a / (1 + 2a), (1+2a)^2 - 4a^2 = 1 + 4a
            a[l] = sb2[l] + sw2[l] * (2.0 / np.pi) * np.arcsin(2.0 * a[l - 1] / (1.0 + 2.0 * a[l - 1]))
            sd = sw2[l] * (4.0 / np.pi) / np.sqrt(1.0 + 4.0 * a[l - 1])
        th = th * sd + a[l]
    return a, th


def _row_params(a, relu):
    if relu:
        s = np.ascontiguousarray(np.sqrt(a))  # a = 0 (constant-zero unit): rho := 0, k = 0
        return s, np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    g = np.ascontiguousarray(1.0 / np.sqrt(1.0 + 2.0 * a))
    return g, g


def fused_nngp_ntk(
    x1: np.ndarray,
    x2: Optional[np.ndarray],
    sw2: Sequence[float],
    sb2: Sequence[float],
    activation: str,
    *,
    ntk: bool = True,
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """NNGP kernel Sigma^(L+1) and NTK Theta^(L+1) between x1 (n1, d) and x2 (n2, d), float64.

    x2 = None means x2 = x1 (symmetric; only i <= j is computed).  sw2 and sb2 have length L + 1
    (L hidden layers plus the readout); activation is "relu" or "erf".  Returns (K, Theta) of
    shape (n1, n2); Theta is None when ntk=False.  The formulas are in the module docstring
    (arXiv:1806.07572, arXiv:1711.00165, Cho & Saul 2009).  The first call compiles (seconds;
    cached on disk afterwards).
    """
    if activation not in ("relu", "erf"):
        raise ValueError(f"activation must be 'relu' or 'erf', got {activation!r}")
    relu = activation == "relu"
    sw2 = np.ascontiguousarray(sw2, dtype=np.float64).ravel()
    sb2 = np.ascontiguousarray(sb2, dtype=np.float64).ravel()
    if sw2.size < 1 or sw2.shape != sb2.shape:
        raise ValueError(f"sw2 and sb2 need the same length L + 1 >= 1, got {sw2.size} and {sb2.size}")
    if not (np.all(np.isfinite(sw2)) and np.all(sw2 >= 0) and np.all(np.isfinite(sb2)) and np.all(sb2 >= 0)):
        raise ValueError("sw2 and sb2 must be finite and non-negative")
    x1 = np.ascontiguousarray(x1, dtype=np.float64)
    sym = x2 is None
    x2 = x1 if sym else np.ascontiguousarray(x2, dtype=np.float64)
    for name, x in (("x1", x1), ("x2", x2)):
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1 or not np.all(np.isfinite(x)):
            raise ValueError(f"{name} must be a finite (n, d) array with n, d >= 1, got shape {x.shape}")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1 and x2 need the same d, got {x1.shape[1]} and {x2.shape[1]}")
    n1, n2 = x1.shape[0], x2.shape[0]
    a1, th1 = _diag(x1, sw2, sb2, relu)
    A1, B1 = _row_params(a1[:-1], relu)
    A2, B2 = (A1, B1) if sym else _row_params(_diag(x2, sw2, sb2, relu)[0][:-1], relu)
    nb1, nb2 = -(-n1 // _TILE), -(-n2 // _TILE)
    ti, tj = np.triu_indices(nb1) if sym else np.divmod(np.arange(nb1 * nb2), nb2)
    K, T = np.empty((n1, n2)), np.empty((n1, n2) if ntk else (1, 1))
    _fused(x1, np.ascontiguousarray(x2.T), A1, B1, A2, B2, sw2, sb2, relu, sym,
           ti.astype(np.int64), tj.astype(np.int64), _TILE, K, T, ntk)
    if sym:  # exact diagonal (rho = 1) from the per-row recursion
        idx = np.arange(n1)
        K[idx, idx] = a1[-1]
        if ntk:
            T[idx, idx] = th1
    return K, (T if ntk else None)
