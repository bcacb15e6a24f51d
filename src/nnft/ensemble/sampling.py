"""Seeded, vectorized sampling and evaluation of whole batches of networks.

Random streams
--------------
A chunk of networks is generated from its own torch.Generator, seeded from (seed, chunk index) through
numpy's SeedSequence (:func:`chunk_generator`), so the k-th chunk is the same network set whatever the batch
size, thread count or executor. :func:`sample_networks` first draws a 64-bit chunk key from that generator;
network j of the chunk gets the key k_j = mix(chunk key + (j + 1) γ) and each parameter block (layer l:
block 2l = weights, 2l + 1 = bias) its own key k_jb = mix(k_j + (b + 1) γ'). Normal-density entries are
a counter-based stream: hash t of a block of P entries is h_t = mix(k_jb + (t + 1) γ) (SplitMix64: γ the
golden gamma, ``mix`` Stafford's variant-13 finalizer), and one Box–Muller pair (r cos θ, r sin θ),
r = sqrt(−2 ln u₁), θ = 2π u₂ with u₁, u₂ from the high and low 32 bits of h_t, gives entries t and
t + ⌈P/2⌉. The transform is branch-free (float64 polynomial log / sin / cos, |error| < 2e-15 · r), so it
vectorizes. Every Normal entry is a pure function of (seed, chunk index, network index, layer, weight or
bias, entry index): it does not depend on the batch, the thread count, the chunk size or on which other
parameters are generated, so the fused evaluation below generates the parameters it needs on the fly
(and the readout estimator never generates readout weights). An entry is stored as ``dtype(z · s)`` with
s = std · weight_scale (float64); the float32 and float64 networks of a seed agree to float32 rounding.
Non-Normal densities (Uniform, UniformBall, Sampled) draw from the chunk's torch.Generator after the key,
in the fixed order: for each layer, weights then bias.

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
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import torch
from numba import njit, types
from numba.extending import intrinsic

from ..spec import Architecture, Normal

__all__ = ["chunk_generator", "NetworkBatch", "sample_networks", "evaluate", "hidden_gram",
           "sample_first_layer_features"]

Tensor = torch.Tensor


def chunk_generator(seed: int, chunk_index: int) -> torch.Generator:
    """A torch.Generator for chunk ``chunk_index`` of a run with ``seed`` (SeedSequence spawn key)."""
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(chunk_index),)).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# ------------------------------------------------------------------------------------------------------
# Counter-based Gaussian streams (numba)
# ------------------------------------------------------------------------------------------------------

@intrinsic
def _f64_bits(typingctx, x):
    sig = types.uint64(types.float64)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint64))

    return sig, codegen


@intrinsic
def _bits_f64(typingctx, x):
    sig = types.float64(types.uint64)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


# Kernels may fuse a multiply and an add into one FMA ('contract' only: no reassociation, no finite-math
# assumptions), which changes no result's dependence on the batch: every network runs the same loops.
_FM = {"contract"}
_GAMMA = np.uint64(0x9E3779B97F4A7C15)        # SplitMix64 golden gamma
_GAMMA_BLOCK = np.uint64(0xD1B54A32D192ED03)  # a second odd constant, for block keys
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_U1, _U27, _U30, _U31, _U32, _U52 = (np.uint64(v) for v in (1, 27, 30, 31, 32, 52))
_LO32 = np.uint64(0xFFFFFFFF)
_LO30 = np.uint64((1 << 30) - 1)
_MANT = np.uint64((1 << 52) - 1)
_EXP1 = np.uint64(1023 << 52)
_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_HALF_PI = 0.5 * math.pi
_2M32 = 2.0 ** -32
_2M30 = 2.0 ** -30
# log(m) = 2 atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172: Σ s^(2k+1)/(2k+1), k ≤ 10 (truncation < 1e-17).
_L3, _L5, _L7, _L9, _L11, _L13, _L15, _L17, _L19, _L21 = (1.0 / k for k in range(3, 23, 2))
# sin, cos Taylor series on |a| ≤ π/4 (truncation < 1e-17).
_S3, _S5, _S7, _S9, _S11, _S13, _S15, _S17 = ((-1) ** k / math.factorial(2 * k + 1) for k in range(1, 9))
_C2, _C4, _C6, _C8, _C10, _C12, _C14, _C16, _C18 = ((-1) ** k / math.factorial(2 * k) for k in range(1, 10))


@njit(inline="always")
def _mix(z):
    z = (z ^ (z >> _U30)) * _M1
    z = (z ^ (z >> _U27)) * _M2
    return z ^ (z >> _U31)


@njit(inline="always")
def _block_key(net_key, block):
    return _mix(net_key + np.uint64(block + 1) * _GAMMA_BLOCK)


@njit(inline="always")
def _neg2log(u):
    """−2 ln u for u in (0, 1), branch-free."""
    bits = _f64_bits(u)
    e = np.float64(np.int64(bits >> _U52) - 1023)
    m = _bits_f64((bits & _MANT) | _EXP1)  # [1, 2)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1.0 if big else e
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = _L21
    p = p * s2 + _L19
    p = p * s2 + _L17
    p = p * s2 + _L15
    p = p * s2 + _L13
    p = p * s2 + _L11
    p = p * s2 + _L9
    p = p * s2 + _L7
    p = p * s2 + _L5
    p = p * s2 + _L3
    p = p * s2 + 1.0
    return -2.0 * (e * _LN2 + 2.0 * s * p)


@njit(inline="always")
def _box_muller(h):
    """Two independent N(0, 1) (float64) from one 64-bit hash."""
    r = math.sqrt(_neg2log((np.float64(np.int64(h >> _U32)) + 0.5) * _2M32))
    k2 = h & _LO32
    q = k2 >> _U30  # quadrant
    a = ((np.float64(np.int64(k2 & _LO30)) + 0.5) * _2M30 - 0.5) * _HALF_PI  # |a| < π/4
    a2 = a * a
    s = _S17
    s = s * a2 + _S15
    s = s * a2 + _S13
    s = s * a2 + _S11
    s = s * a2 + _S9
    s = s * a2 + _S7
    s = s * a2 + _S5
    s = s * a2 + _S3
    s = a + a * (s * a2)
    c = _C18
    c = c * a2 + _C16
    c = c * a2 + _C14
    c = c * a2 + _C12
    c = c * a2 + _C10
    c = c * a2 + _C8
    c = c * a2 + _C6
    c = c * a2 + _C4
    c = c * a2 + _C2
    c = 1.0 + c * a2
    # rotate (c, s) by q π/2
    odd = (q & _U1) == _U1
    cx = s if odd else c
    sx = c if odd else s
    sign_c = 1.0 - 2.0 * np.float64(np.int64((q ^ (q >> _U1)) & _U1))
    sign_s = 1.0 - 2.0 * np.float64(np.int64(q >> _U1))
    return r * (cx * sign_c), r * (sx * sign_s)


# Loops run over padded lengths (scratch arrays are padded) so that they vectorize without a scalar
# remainder: Box–Muller pairs in multiples of _PAD_PAIRS, hidden units in multiples of _PAD_UNITS.
_PAD_PAIRS = 8
_PAD_UNITS = 16


@njit(inline="always")
def _padded(n, pad):
    return (n + pad - 1) // pad * pad


@njit(inline="always")
def _fill_block(key, scale, out, size, lo, hi):
    """out[0:size] = dtype(scale · z_t), z_t the t-th normal of the block stream ``key``: hash t gives
    entries t (cos) and t + ⌈size/2⌉ (sin). lo, hi: scratch of out's dtype, of length at least
    _padded(⌈size/2⌉, _PAD_PAIRS) (the pair loop runs over that length: no scalar remainder)."""
    half = (size + 1) // 2
    for t in range(_padded(half, _PAD_PAIRS)):
        z0, z1 = _box_muller(_mix(key + np.uint64(t + 1) * _GAMMA))
        lo[t] = z0 * scale
        hi[t] = z1 * scale
    for t in range(half):
        out[t] = lo[t]
    for t in range(size - half):
        out[half + t] = hi[t]


@njit(cache=True, error_model="numpy")
def _network_keys(chunk_key, n):
    out = np.empty(n, dtype=np.uint64)
    for j in range(n):
        out[j] = _mix(chunk_key + np.uint64(j + 1) * _GAMMA)
    return out


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FM)
def _materialize(keys, block, scale, out, j0, j1):
    """out[j, :] = the Normal block ``block`` of network j, j0 <= j < j1 (out (B, P) float32 or float64)."""
    size = out.shape[1]
    lo = np.empty(_padded((size + 1) // 2, _PAD_PAIRS), out.dtype)
    hi = np.empty_like(lo)
    for j in range(j0, j1):
        _fill_block(_block_key(keys[j], block), scale, out[j], size, lo, hi)


# ------------------------------------------------------------------------------------------------------
# Fused single-hidden-layer erf network (numba)
# ------------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------------
# Network batches
# ------------------------------------------------------------------------------------------------------

def _normal_scale(density, scale: float) -> Optional[float]:
    """s with entry = s · N(0, 1) if the density is Normal, else None."""
    return float(density.std) * float(scale) if isinstance(density, Normal) else None


class NetworkBatch:
    """Effective parameters of a batch of B networks: weights[l] (B, n_l, n_{l−1}), biases[l] (B, n_l) or
    None, and the first-layer neuron amplitudes (B, n_1) or None.

    Batches from :func:`sample_networks` keep Normal blocks as counter streams (per-network keys) and
    materialize them on first access of ``weights`` / ``biases``; :func:`evaluate` may read them from the
    streams directly. ``NetworkBatch(weights, biases, amplitude)`` builds a plain, materialized batch.
    """

    def __init__(self, weights: list[Tensor], biases: list[Optional[Tensor]], amplitude: Optional[Tensor], *,
                 keys: Optional[np.ndarray] = None, streams: Optional[tuple] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        # streams: per layer ((shape_w, scale_w or None), (shape_b, scale_b or None) or None)
        self._weights = list(weights)
        self._biases = list(biases)
        self.amplitude = amplitude
        self._keys = keys
        self._streams = streams
        self._dtype = dtype

    # -- lazily materialized parameters ------------------------------------------------------------------
    def _block(self, l: int, kind: int) -> Optional[Tensor]:
        store = self._weights if kind == 0 else self._biases
        if store[l] is None and self._streams is not None:
            entry = self._streams[l][kind]
            if entry is not None and entry[1] is not None:
                shape, scale = entry
                b = self._keys.shape[0]
                np_dtype = np.float32 if self._dtype == torch.float32 else np.float64
                out = np.empty((b, math.prod(shape)), dtype=np_dtype)
                if b:
                    in_parallel(_materialize, b, self._keys, 2 * l + kind, scale, out)
                store[l] = torch.from_numpy(out).reshape((b, *shape)).to(self._dtype)
        return store[l]

    @property
    def weights(self) -> list[Tensor]:
        for l in range(len(self._weights)):
            self._block(l, 0)
        return self._weights

    @property
    def biases(self) -> list[Optional[Tensor]]:
        for l in range(len(self._biases)):
            self._block(l, 1)
        return self._biases

    @property
    def size(self) -> int:
        if self._keys is not None:
            return int(self._keys.shape[0])
        return self._weights[0].shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype if self._dtype is not None else self._weights[0].dtype

    @property
    def n_layers(self) -> int:
        return len(self._weights)

    def _stream_scale(self, l: int, kind: int) -> Optional[float]:
        """The Normal scale of block (l, kind) if it is a counter stream, else None."""
        if self._streams is None:
            return None
        entry = self._streams[l][kind]
        return None if entry is None else entry[1]

    @staticmethod
    def concat(batches: list["NetworkBatch"]) -> "NetworkBatch":
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        if first._keys is not None and all(b._keys is not None and b._streams == first._streams
                                           and b._dtype == first._dtype for b in batches):
            def cat_eager(store: str, l: int, kind: int):
                if first._stream_scale(l, kind) is not None:
                    return None  # stays a stream
                xs = [getattr(b, store)[l] for b in batches]
                return None if xs[0] is None else torch.cat(xs)

            n_layers = first.n_layers
            amp = None if first.amplitude is None else torch.cat([b.amplitude for b in batches])
            return NetworkBatch([cat_eager("_weights", l, 0) for l in range(n_layers)],
                                [cat_eager("_biases", l, 1) for l in range(n_layers)], amp,
                                keys=np.concatenate([b._keys for b in batches]), streams=first._streams,
                                dtype=first._dtype)
        cat = lambda xs: None if xs[0] is None else torch.cat(xs)  # noqa: E731
        ws = [b.weights for b in batches]
        bs = [b.biases for b in batches]
        n_layers = len(ws[0])
        return NetworkBatch([torch.cat([w[l] for w in ws]) for l in range(n_layers)],
                            [cat([b[l] for b in bs]) for l in range(n_layers)],
                            cat([b.amplitude for b in batches]))


def _draw_key(generator: torch.Generator) -> np.uint64:
    hi, lo = torch.randint(0, 1 << 32, (2,), generator=generator, dtype=torch.int64).tolist()
    return np.uint64((hi << 32) | lo)


def sample_networks(spec: Architecture, n: int, generator: torch.Generator, *, dtype=torch.float32,
                    layers: Optional[int] = None) -> NetworkBatch:
    """Draw n networks' effective parameters (the first ``layers`` layers only, if given).

    Normal blocks are counter streams keyed by a 64-bit key drawn first from ``generator`` (materialized
    on access); other densities are drawn from ``generator`` in order (per layer: weights, then bias).
    """
    keys = _network_keys(_draw_key(generator), n)
    weights, biases, streams = [], [], []
    amplitude = None
    for l, (layer, fan_in) in enumerate(zip(spec.layers, spec.fan_ins)):
        if layers is not None and l >= layers:
            break
        shape_w = (layer.width, fan_in)
        s_w = _normal_scale(layer.weight, layer.weight_scale(fan_in))
        if s_w is None:
            w = layer.weight.sample((n, *shape_w), generator, dtype)
            w.mul_(layer.weight_scale(fan_in))
        else:
            w = None
        b, entry_b = None, None
        if layer.bias is not None:
            s_b = _normal_scale(layer.bias, 1.0)
            entry_b = ((layer.width,), s_b)
            if s_b is None:
                b = layer.bias.sample((n, layer.width), generator, dtype)
        weights.append(w)
        biases.append(b)
        streams.append(((shape_w, s_w), entry_b))
    nets = NetworkBatch(weights, biases, None, keys=keys, streams=tuple(streams), dtype=dtype)
    if spec.amplitude is not None:
        w = nets.weights[0]
        m2 = spec.amplitude.mass ** 2
        nets.amplitude = torch.rsqrt((w.double() ** 2).sum(-1) + m2).to(dtype)
    return nets


# ------------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------------

def _affine(w: Tensor, h: Tensor, b: Optional[Tensor]) -> Tensor:
    """z[n, i, m] = Σ_k w[n, i, k] h[n, k, m] + b[n, i]; h may be shared (k, m)."""
    if h.ndim == 2:
        if w.shape[-1] <= 4:  # tiny fan-in (the input layer): exact elementwise sum, no GEMM
            z = w[:, :, 0:1] * h[0]
            for k in range(1, w.shape[-1]):
                z = z + w[:, :, k:k + 1] * h[k]
        else:
            z = torch.matmul(w, h)
    else:
        z = torch.bmm(w, h)
    return z if b is None else z + b[:, :, None]


def _fused_erf(spec: Architecture, nets: NetworkBatch) -> bool:
    return (spec.depth == 1 and spec.activation.name == "erf" and spec.amplitude is None and nets.amplitude is None
            and nets.dtype == torch.float32 and nets.n_layers == 2)


def _evaluate_erf1(spec: Architecture, nets: NetworkBatch, x: Tensor, mode: int) -> Tensor:
    """The fused single-hidden-layer erf evaluation: φ as float32 (B, M, d_out) (mode 0); the hidden
    post-activations (exact float32 values) as float64 (B, n, M) stored in (B, M, n) order (mode 1), the
    layout a Gram product wants; or their Gram matrix Σ_i h_i(x) h_i(x') as float64 (B, M, M) (mode 2)."""
    b = nets.size
    n, d_out = spec.layers[0].width, spec.d_out
    xs = np.ascontiguousarray(x.to(torch.float32).numpy())
    m_pts = xs.shape[0]
    shape, np_dtype = {_PLAIN: ((b, m_pts, d_out), np.float32), _HIDDEN: ((b, m_pts, n), np.float64),
                       _GRAM: ((b, m_pts, m_pts), np.float64)}[mode]
    out = np.empty(shape, dtype=np_dtype)
    if b > 0:
        has_bias = (spec.layers[0].bias is not None, spec.layers[1].bias is not None)
        blocks = [(0, 0), (0, 1)] + ([(1, 0), (1, 1)] if mode == _PLAIN else [])
        scales = [-1.0 if kind == 1 and not has_bias[l] else nets._stream_scale(l, kind) for l, kind in blocks]
        if all(s is not None for s in scales):
            scales += [0.0] * (4 - len(scales))
            in_parallel(_erf1_streams, b, nets._keys, xs, n, d_out, *scales, mode, out)
        else:
            def flat(t: Optional[Tensor], size: int) -> np.ndarray:
                if t is None:
                    return np.zeros((b, size), np.float32)
                return np.ascontiguousarray(t.reshape(b, size).to(torch.float32).numpy())

            w, bias = nets.weights, nets.biases
            w1 = flat(w[1], d_out * n) if mode == _PLAIN else np.zeros((b, 0), np.float32)
            in_parallel(_erf1_tensors, b, flat(w[0], n * spec.d_in), flat(bias[0], n), w1, flat(bias[1], d_out),
                         xs, mode, out)
    out = torch.from_numpy(out)
    return out.transpose(1, 2) if mode == _HIDDEN else out


def evaluate(spec: Architecture, nets: NetworkBatch, x: Tensor, *, variances: Optional[list[Tensor]] = None,
             return_hidden: bool = False):
    """φ for every network at inputs x (M, d): returns (B, M, d_out), or the last hidden layer's
    post-activations (B, n_L, M) when ``return_hidden`` (for the readout-integrated estimator).

    ``variances[l]`` (M,) is the pre-activation variance q of hidden layer l, needed only by activations
    that read it (Gauss-net).
    """
    if _fused_erf(spec, nets):
        return _evaluate_erf1(spec, nets, x, _HIDDEN if return_hidden else _PLAIN)
    weights, biases = nets.weights, nets.biases
    dtype = weights[0].dtype
    h = x.to(dtype).T.contiguous()  # (d, M)
    act = spec.activation
    n_hidden = spec.depth
    for l in range(n_hidden):
        z = _affine(weights[l], h, biases[l])
        q = None if not act.normalized else variances[l].to(dtype)[None, None, :]
        h = act(z, q)
        if l == 0 and nets.amplitude is not None:
            h = h * nets.amplitude[:, :, None]
    if return_hidden:
        return h
    out = _affine(weights[-1], h, biases[-1])  # (B, d_out, M)
    return out.transpose(1, 2)


def hidden_gram(spec: Architecture, nets: NetworkBatch, x: Tensor, *,
                variances: Optional[list[Tensor]] = None) -> Tensor:
    """Gram matrix of the last hidden layer, K[b, m, m'] = Σ_i h_i(x_m) h_i(x_m') (B, M, M) float64: what
    the readout-integrated estimator needs, S = σ_b² + (σ_W²/n_L) K, without materializing h when the
    fused path applies (it then equals the float64 Gram of ``evaluate(..., return_hidden=True)`` up to
    summation order)."""
    if _fused_erf(spec, nets):
        return _evaluate_erf1(spec, nets, x, _GRAM)
    h = evaluate(spec, nets, x, variances=variances, return_hidden=True).to(torch.float64)
    return torch.bmm(h.transpose(1, 2), h)


def sample_first_layer_features(spec: Architecture, x1: Tensor, x2: Tensor, n: int, generator: torch.Generator,
                                *, derivative: bool = False) -> tuple[Tensor, Tensor]:
    """n i.i.d. first-layer neurons evaluated at x1 and x2: g(z(x)) F(w) with g = σ or σ' (float64).

    Used by the single-neuron Monte Carlo fallback of the first-layer expectation.
    """
    first = spec.layers[0]
    w = first.weight.sample((n, spec.d_in), generator, torch.float64) * first.weight_scale(spec.d_in)
    b = torch.zeros(n, dtype=torch.float64) if first.bias is None else first.bias.sample((n,), generator,
                                                                                        torch.float64)
    amp = 1.0
    if spec.amplitude is not None:
        amp = torch.rsqrt((w * w).sum(-1) + spec.amplitude.mass ** 2)[:, None]
    out = []
    for x in (x1, x2):
        z = w @ x.T + b[:, None]
        q = first.bias_var + first.weight_var(spec.d_in) * (x * x).sum(1)
        g = spec.activation.derivative(z, q[None, :]) if derivative else spec.activation(z, q[None, :])
        out.append(g * amp)
    return out[0], out[1]
