"""Counter-based Gaussian parameter streams for :mod:`nnft.ensemble.sampling` (numba).

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

Hand-written because no library offers a counter-based Normal stream callable from numba kernels: the fused
evaluation must generate any parameter from its indices alone, without the generator's sequential state.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


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
