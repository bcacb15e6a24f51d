"""Seeded, vectorized sampling and evaluation of whole batches of networks.

A chunk of networks is generated from its own torch.Generator, seeded from (seed, chunk index) through
numpy's SeedSequence (:func:`chunk_generator`), so the k-th chunk is the same network set whatever the batch
size, thread count or executor. Normal parameters come from counter-based streams (one value per
(seed, chunk, network, layer, block, entry); :mod:`._counter_rng`); other densities draw from the chunk's
generator in a fixed order (per layer: weights, then bias). Evaluation is torch in general, and a fused
numba kernel for one-hidden-layer float32 erf networks (:mod:`._fused_erf`); neither depends on the batch
size or the thread count.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..spec import Architecture, Normal
from ._counter_rng import _materialize, _network_keys
from ._fused_erf import _GRAM, _HIDDEN, _PLAIN, _erf1_streams, _erf1_tensors, in_parallel

__all__ = ["chunk_generator", "NetworkBatch", "sample_networks", "evaluate", "hidden_gram",
           "sample_first_layer_features"]

Tensor = torch.Tensor


def chunk_generator(seed: int, chunk_index: int) -> torch.Generator:
    """A torch.Generator for chunk ``chunk_index`` of a run with ``seed`` (SeedSequence spawn key)."""
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(chunk_index),)).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


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
        nets.amplitude = spec.amplitude.evaluate(nets.weights[0]).to(dtype)
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
        amp = spec.amplitude.evaluate(w)[:, None]
    out = []
    for x in (x1, x2):
        z = w @ x.T + b[:, None]
        q = first.bias_var + first.weight_var(spec.d_in) * (x * x).sum(1)
        g = spec.activation.derivative(z, q[None, :]) if derivative else spec.activation(z, q[None, :])
        out.append(g * amp)
    return out[0], out[1]
