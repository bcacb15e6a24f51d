"""Fused single-hidden-layer erf networks and the batch thread pool for :mod:`nnft.ensemble.sampling`.

Evaluation
----------
The general path is torch (elementwise input layer, matmul / bmm after it; per-network results do not
depend on the batch size or the thread count). A single-hidden-layer float32 erf network without
amplitude takes a fused numba path, whatever its densities. Per network: z_i = Σ_k W_ik x_k + b_i in
float32, in k order; h_i = erf(z_i); φ_o = Σ_i W_oi h_i + b_o accumulated in float64 with 8 interleaved
partial sums combined in a fixed order, rounded to float32 (multiply-adds may be fused into FMAs: that is
fixed at compile time and the same for every network). The fused path reads the parameters from the
counter streams when the batch came from :func:`sample_networks` with Normal densities, and from the
materialized tensors otherwise, with bitwise identical results. erf is a 6/7-degree rational x P(x²)/Q(x²)
evaluated in float64, clamped at |x| = 4 and rounded to float32: |erf32(x) − erf(x)| ≤ 2e-9 (fit) +
1.6e-8 (clamp) + 3e-8 (float32 rounding) < 5e-8 for every float32 x (measured maximum on a dense grid
3.2e-8; torch.erf 6e-8). There, ``evaluate(..., return_hidden=True)`` returns the (exact float32) hidden
values as float64 in (B, M, n) memory order, the layout a Gram product wants, and :func:`hidden_gram`
returns Σ_i h_i(x) h_i(x') without materializing h at all.

The numba kernels release the GIL and run on ``torch.get_num_threads()`` Python threads, which take
contiguous pieces of the batch in turn; networks are independent, so neither the split nor the thread count
changes a bit.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import torch
from numba import njit

from ._counter_rng import _FM, _PAD_PAIRS, _PAD_UNITS, _block_key, _fill_block, _padded


_ERF_P = (1.1283791866769688, 0.19258458578404805, 0.055833595880346566, 0.0042302563201191325,
          0.0004166715786910883, 7.010010437404082e-06)
_ERF_Q = (1.0, 0.5040072522433677, 0.11748240789098258, 0.016321179359972963, 0.0014288580499323968,
          7.414840277996412e-05, 2.722790854501193e-07)
_EP0, _EP1, _EP2, _EP3, _EP4, _EP5 = _ERF_P
_EQ0, _EQ1, _EQ2, _EQ3, _EQ4, _EQ5, _EQ6 = _ERF_Q
_ERF_CLAMP = 4.0


@njit(inline="always")
def _erf32(z):
    """float32 erf: x P(x²)/Q(x²) in float64 on |x| ≤ 4 (clamped), rounded; |error| < 5e-8."""
    x = min(max(np.float64(z), -_ERF_CLAMP), _ERF_CLAMP)
    t = x * x
    p = _EP5
    p = p * t + _EP4
    p = p * t + _EP3
    p = p * t + _EP2
    p = p * t + _EP1
    p = p * t + _EP0
    q = _EQ6
    q = q * t + _EQ5
    q = q * t + _EQ4
    q = q * t + _EQ3
    q = q * t + _EQ2
    q = q * t + _EQ1
    q = q * t + _EQ0
    return np.float32(x * p / q)


@njit(inline="always")
def _hidden(wt, b0, x, h, z):
    """h[m, i] = erf(Σ_k wt[k, i] x[m, k] + b0[i]) in float32, summed in k order, for i < the padded
    width of wt (d, n_pad), b0 (n_pad,), h (M, n_pad); z: float32 scratch (n_pad,)."""
    m_pts, d = x.shape
    n_pad = b0.shape[0]
    w_0 = wt[0]
    for m in range(m_pts):
        hm = h[m]
        x0 = x[m, 0]
        if d == 1:
            for i in range(n_pad):
                hm[i] = _erf32(w_0[i] * x0 + b0[i])
        else:
            for i in range(n_pad):
                z[i] = w_0[i] * x0
            for k in range(1, d):
                xk = x[m, k]
                w_k = wt[k]
                for i in range(n_pad):
                    z[i] = z[i] + w_k[i] * xk
            for i in range(n_pad):
                hm[i] = _erf32(z[i] + b0[i])


@njit(inline="always")
def _load_first_layer(w0, b0, wt, bp, n, d):
    """Padded, transposed first layer: wt[k, i] = w0[i·d + k], bp[i] = b0[i] (zero beyond n)."""
    for k in range(d):
        wk = wt[k]
        for i in range(n):
            wk[i] = w0[i * d + k]
    for i in range(n):
        bp[i] = b0[i]


@njit(inline="always")
def _dot(w, w_off, h, m, n):
    """Σ_i w[w_off + i] h[m, i] in float64 (h float64): 8 interleaved partial sums, combined in a fixed
    order, then the n mod 8 tail in sequence."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    hm = h[m]
    nb = n - n % 8
    for i in range(0, nb, 8):
        s0 += np.float64(w[w_off + i]) * hm[i]
        s1 += np.float64(w[w_off + i + 1]) * hm[i + 1]
        s2 += np.float64(w[w_off + i + 2]) * hm[i + 2]
        s3 += np.float64(w[w_off + i + 3]) * hm[i + 3]
        s4 += np.float64(w[w_off + i + 4]) * hm[i + 4]
        s5 += np.float64(w[w_off + i + 5]) * hm[i + 5]
        s6 += np.float64(w[w_off + i + 6]) * hm[i + 6]
        s7 += np.float64(w[w_off + i + 7]) * hm[i + 7]
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for i in range(nb, n):
        s += np.float64(w[w_off + i]) * hm[i]
    return s


@njit(inline="always")
def _readout(w1, b1, h, out_j, n, d_out):
    """out_j[m, o] = float32(Σ_i w1[o, i] h[m, i] + b1[o])."""
    for m in range(h.shape[0]):
        for o in range(d_out):
            out_j[m, o] = np.float32(_dot(w1, o * n, h, m, n) + np.float64(b1[o]))


@njit(inline="always")
def _gram(h, out_j, n):
    """out_j[m, m'] = Σ_i h[m, i] h[m', i] (float64, symmetric)."""
    m_pts = h.shape[0]
    for m in range(m_pts):
        for mm in range(m, m_pts):
            g = _dot(h[mm], 0, h, m, n)
            out_j[m, mm] = g
            out_j[mm, m] = g


_PLAIN, _HIDDEN, _GRAM = 0, 1, 2


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FM)
def _erf1_streams(keys, x, n, d_out, s_w0, s_b0, s_w1, s_b1, mode, out, j0, j1):
    """Fused sampling + evaluation from the counter streams; a scale < 0 means 'no bias'. ``out`` is φ
    (B, M, d_out) float32 (mode 0), h (B, M, n) float64 (mode 1) or the Gram h hᵀ (B, M, M) (mode 2)."""
    m_pts, d = x.shape
    n_pad = _padded(n, _PAD_UNITS)
    lo = np.empty(_padded((max(n * d, n * d_out) + 1) // 2, _PAD_PAIRS), np.float32)
    hi = np.empty_like(lo)
    w0 = np.empty(n * d, np.float32)
    b0 = np.zeros(n, np.float32)
    wt = np.zeros((d, n_pad), np.float32)
    bp = np.zeros(n_pad, np.float32)
    w1 = np.empty(n * d_out, np.float32)
    b1 = np.zeros(d_out, np.float32)
    h = np.empty((m_pts, n_pad), np.float64)
    z = np.empty(n_pad, np.float32)
    for j in range(j0, j1):
        key = keys[j]
        _fill_block(_block_key(key, 0), s_w0, w0, n * d, lo, hi)
        if s_b0 >= 0.0:
            _fill_block(_block_key(key, 1), s_b0, b0, n, lo, hi)
        _load_first_layer(w0, b0, wt, bp, n, d)
        _hidden(wt, bp, x, h, z)
        _finish(key, h, n, d_out, s_w1, s_b1, mode, w1, b1, lo, hi, out[j], True)


@njit(inline="always")
def _finish(key, h, n, d_out, s_w1, s_b1, mode, w1, b1, lo, hi, out_j, streams):
    """Mode 1: out_j = h[:, :n]; mode 2: out_j = Gram; mode 0: out_j = readout (w1, b1 drawn from the
    streams of ``key`` first when ``streams``)."""
    if mode == _HIDDEN:
        for m in range(h.shape[0]):
            for i in range(n):
                out_j[m, i] = h[m, i]
    elif mode == _GRAM:
        _gram(h, out_j, n)
    else:
        if streams:
            _fill_block(_block_key(key, 2), s_w1, w1, n * d_out, lo, hi)
            if s_b1 >= 0.0:
                _fill_block(_block_key(key, 3), s_b1, b1, d_out, lo, hi)
        _readout(w1, b1, h, out_j, n, d_out)


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FM)
def _erf1_tensors(w0, b0, w1, b1, x, mode, out, j0, j1):
    """The same evaluation from materialized parameters w0 (B, n·d), b0 (B, n), w1 (B, d_out·n), b1."""
    m_pts, d = x.shape
    n = b0.shape[1]
    d_out = b1.shape[1]
    n_pad = _padded(n, _PAD_UNITS)
    wt = np.zeros((d, n_pad), np.float32)
    bp = np.zeros(n_pad, np.float32)
    h = np.empty((m_pts, n_pad), np.float64)
    z = np.empty(n_pad, np.float32)
    lo = np.empty(0, np.float32)
    for j in range(j0, j1):
        _load_first_layer(w0[j], b0[j], wt, bp, n, d)
        _hidden(wt, bp, x, h, z)
        _finish(np.uint64(0), h, n, d_out, 0.0, 0.0, mode, w1[j], b1[j], lo, lo, out[j], False)


_POOL: tuple[int, Optional[ThreadPoolExecutor]] = (0, None)  # (pid, pool): a forked child makes its own


def in_parallel(kernel, n: int, *args, grain: int = 16) -> None:
    """kernel(*args, j0, j1) over contiguous pieces of range(n), run by torch.get_num_threads() Python
    threads that each take the next piece until none is left (the kernels release the GIL). Networks are
    independent, so how the pieces fall changes no value; taking pieces dynamically keeps both cores busy
    when one is slowed down, and plain threads do not spin against torch's OpenMP pool."""
    global _POOL
    n_cpu = os.cpu_count() or 1
    workers = max(1, min(torch.get_num_threads(), n_cpu, n // grain))
    if workers == 1:
        kernel(*args, 0, n)
        return
    if _POOL[0] != os.getpid() or _POOL[1] is None:
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=n_cpu, thread_name_prefix="nnft-sampling"))
    n_pieces = min(n // grain, 8 * workers)
    bounds = [k * n // n_pieces for k in range(n_pieces + 1)]
    ticket = itertools.count()  # next() is atomic under the GIL

    def work() -> None:
        while (k := next(ticket)) < n_pieces:
            kernel(*args, bounds[k], bounds[k + 1])

    futures = [_POOL[1].submit(work) for _ in range(workers - 1)]
    work()
    for f in futures:
        f.result()
