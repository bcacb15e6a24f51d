"""A batch of B MLPs held as stacked tensors, in any parameterization, with its structured empirical NTK.

Layer l = 0..L (0 = input layer, L = readout) of network n has a *stored* (trained) weight w^l[n] of shape
(n_l, n_{l−1}) and bias b^l[n] of shape (n_l,), and fixed forward multipliers m_w^l, m_b^l:

    z^l = m_w^l w^l a^{l−1} + m_b^l b^l,   a^l = σ(z^l) (l < L),   a^{−1} := x,   φ = z^L  (scalar, d_out = 1)

The multipliers, the init std of the stored parameters and the per-layer SGD / Adam learning-rate factors
come from the spec's parameterization (Yang–Hu abc form, arXiv:2011.14522; PHYSICS.md §8) through
:meth:`Parameterization.layer_scales` and :meth:`Parameterization.bias_scales` (a bias is a weight on the
constant input 1: it follows the input column of the PHYSICS.md §8 table).

Structured empirical NTK (PHYSICS.md §7, arXiv:1806.07572), with per-parameter rates λ = the SGD factors:

    Θ(x, x') = Σ_i λ_i ∂φ(x)/∂θ_i ∂φ(x')/∂θ_i
             = Σ_l [ λ_w^l (m_w^l)² a^{l−1}(x)·a^{l−1}(x') + λ_b^l (m_b^l)² ] · δ^l(x)·δ^l(x')
    δ^L = 1,   δ^l = σ'(z^l) ⊙ (m_w^{l+1} w^{l+1ᵀ} δ^{l+1})      (δ^l := ∂φ/∂z^l)

computed batched over networks with matrix products (no per-network Jacobian). Feature kernels
Φ^(l)(x, x') = (1/n_l) Σ_m σ(z^l_m(x)) σ(z^l_m(x')) for the hidden layers l = 0..L−1 (PHYSICS.md §7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..errors import check
from ..spec import Architecture
from ..spec._density import density_std

__all__ = ["LayerRates", "layer_rates", "BatchedMLP"]

Tensor = torch.Tensor


@dataclass(frozen=True)
class LayerRates:
    """Per-layer constants of one parameterization: forward multipliers, init stds of the stored
    parameters, and the SGD / Adam learning-rate factors (weights ``_w``, bias ``_b``)."""

    multiplier_w: float
    multiplier_b: float
    init_w: float
    init_b: float
    sgd_w: float
    sgd_b: float
    adam_w: float
    adam_b: float


def layer_rates(spec: Architecture) -> list[LayerRates]:
    """The :class:`LayerRates` of every layer of ``spec`` from its parameterization
    (:meth:`Parameterization.layer_scales` with σ_W = the weight density's std, and
    :meth:`Parameterization.bias_scales` with σ_b; a layer without bias gets zeros there)."""
    p, n_layers = spec.parameterization, len(spec.layers)
    out = []
    for l, (layer, fan_in) in enumerate(zip(spec.layers, spec.fan_ins)):
        w = p.layer_scales(l, n_layers, fan_in, layer.width, std=density_std(layer.weight, fan_in))
        if layer.bias is None or layer.bias_var == 0.0:
            b = None
        else:
            b = p.bias_scales(l, n_layers, layer.width, std=math.sqrt(layer.bias_var))
        out.append(LayerRates(float(w.multiplier), 0.0 if b is None else float(b.multiplier), float(w.init_std),
                              0.0 if b is None else float(b.init_std), float(w.sgd_lr),
                              0.0 if b is None else float(b.sgd_lr), float(w.adam_lr),
                              0.0 if b is None else float(b.adam_lr)))
    return out


def check_trainable(spec: Architecture) -> None:
    """Raise ConfigError unless the trainer supports ``spec``."""
    check(isinstance(spec, Architecture), "spec", type(spec).__name__, "an nnft Architecture")
    check(spec.d_out == 1, "spec.d_out", spec.d_out, "1 (training and the NTK here are for a scalar output)")
    check(spec.amplitude is None, "spec.amplitude", spec.amplitude,
          "None (a neuron amplitude F(|w|) is not trainable here; Scalar-net is a fixed-feature model)")
    for l, layer in enumerate(spec.layers):
        check(layer.scaling == "fan_in", f"spec.layers[{l}].scaling", layer.scaling,
              "'fan_in' (the parameterization sets the width scaling of every trained layer)")
    check(spec.activation.has_derivative, "spec.activation", spec.activation.name,
          "an activation with a derivative (not 'step')")


class BatchedMLP:
    """B networks of one spec: stored weights ``w[l]`` (B, n_l, n_{l−1}) and biases ``b[l]`` (B, n_l) or None.

    The forward pass and the NTK use the multipliers in ``rates``; the optimizer reads their LR factors.
    Inputs x are (M, d), shared by all networks, or (B, M, d), one set per network (minibatches). Gauss-net's
    neuron σ(z; q) reads the pre-activation variance: the methods then take ``q``, one (M,) (or (B, M))
    tensor of q_l(x) per hidden layer, by default the spec's infinite-width values at shared inputs
    (:func:`nnft.theory.kernels.preactivation_variances`); every other activation ignores it.
    """

    def __init__(self, spec: Architecture, weights: Sequence[Tensor], biases: Sequence[Optional[Tensor]],
                 rates: Sequence[LayerRates]) -> None:
        self.spec = spec
        self.w = list(weights)
        self.b = list(biases)
        self.rates = list(rates)
        self.act = spec.activation

    @property
    def n_networks(self) -> int:
        return self.w[0].shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.w[0].dtype

    def parameters(self) -> list[tuple[Tensor, float, float]]:
        """(tensor, SGD factor, Adam factor) of every trained tensor, in a fixed order."""
        out = []
        for w, b, r in zip(self.w, self.b, self.rates):
            out.append((w, r.sgd_w, r.adam_w))
            if b is not None:
                out.append((b, r.sgd_b, r.adam_b))
        return out

    # -- forward ---------------------------------------------------------------------------------------
    def _variances(self, x: Tensor, q: Optional[list[Tensor]]) -> Optional[list[Tensor]]:
        """q as given; for Gauss-net without q, the spec's infinite-width q_l(x) (shared inputs only)."""
        if q is not None or not self.act.normalized:
            return q
        check(x.ndim == 2, "q", None, "per-layer pre-activation variances for per-network inputs (Gauss-net)")
        from ..theory.kernels import preactivation_variances

        return [v.to(x.device) for v in preactivation_variances(self.spec, x.detach().cpu().to(torch.float64))]

    def _layers(self, x: Tensor, q: Optional[list[Tensor]]):
        """Yield (z^l, a^{l−1}) for l = 0..L; x is (M, d) shared or (B, M, d) per network."""
        q = self._variances(x, q)
        h = x.to(self.dtype)
        n_hidden = len(self.w) - 1
        for l, (w, b, r) in enumerate(zip(self.w, self.b, self.rates)):
            z = torch.matmul(h, w.transpose(1, 2))
            if r.multiplier_w != 1.0:
                z = z * r.multiplier_w
            if b is not None:
                z = z + (b * r.multiplier_b)[:, None, :]
            yield z, h
            if l < n_hidden:
                h = self.act(z, None if q is None else q[l].to(self.dtype)[..., None])

    def forward(self, x: Tensor, q: Optional[list[Tensor]] = None) -> Tensor:
        """φ(x) for every network: (B, M)."""
        for z, _ in self._layers(x, q):
            pass
        return z[..., 0]

    __call__ = forward

    def hidden(self, x: Tensor, q: Optional[list[Tensor]] = None) -> list[Tensor]:
        """Post-activations a^l (B, M, n_l) of the hidden layers l = 0..L−1."""
        out = [h for _, h in self._layers(x, q)]
        return out[1:]

    # -- backward -------------------------------------------------------------------------------------
    def _backward(self, zs: list[Tensor], seed: Tensor, q: Optional[list[Tensor]]) -> list[Tensor]:
        """δ^l = ∂(seed·φ)/∂z^l for every layer, from δ^L = seed (B, M, 1):
        δ^l = σ'(z^l) ⊙ (m_w^{l+1} δ^{l+1} w^{l+1})."""
        deltas: list[Tensor] = [seed]
        for l in range(len(zs) - 2, -1, -1):
            back = torch.matmul(deltas[0], self.w[l + 1])
            if self.rates[l + 1].multiplier_w != 1.0:
                back = back * self.rates[l + 1].multiplier_w
            qq = None if q is None else q[l].to(self.dtype)[..., None]
            deltas.insert(0, self.act.derivative(zs[l], qq) * back)
        return deltas

    @torch.no_grad()
    def loss_and_grads(self, x: Tensor, y: Tensor, q: Optional[list[Tensor]] = None) -> tuple[Tensor, list[Tensor]]:
        """Per-network loss L_n = (1/M) Σ_α ½ (φ_n(x_α) − y_α)² (B,) and its gradients with respect to the
        stored parameters, in the order of :meth:`parameters`:
        ∂L/∂w^l = m_w^l δ^lᵀ a^{l−1},  ∂L/∂b^l = m_b^l Σ_α δ^l_α,  δ^L = (φ − y)/M.

        Hand-written (two batched products per layer) rather than autograd: it is the same δ recursion as
        the NTK below and about twice as fast for the small per-network problems of ensemble training;
        tests check it against torch.autograd."""
        q = self._variances(x, q)
        zs, hs = [], []
        for z, h in self._layers(x, q):
            zs.append(z)
            hs.append(h)
        resid = zs[-1][..., 0] - y.to(self.dtype)
        m = resid.shape[-1]
        loss = 0.5 * (resid * resid).mean(-1)
        deltas = self._backward(zs, (resid / m)[..., None], q)
        grads = []
        for l, r in enumerate(self.rates):
            gw = torch.matmul(deltas[l].transpose(-1, -2), hs[l])
            grads.append(gw * r.multiplier_w if r.multiplier_w != 1.0 else gw)
            if self.b[l] is not None:
                grads.append(deltas[l].sum(-2) * r.multiplier_b)
        return loss, grads

    # -- kernels ---------------------------------------------------------------------------------------
    def _tangent_parts(self, x: Tensor, q: Optional[list[Tensor]]):
        """Per layer: (a^{l−1} (B|·, M, n_{l−1}), δ^l (B, M, n_l)), δ^l = ∂φ/∂z^l."""
        q = self._variances(x, q)
        zs, hs = [], []
        for z, h in self._layers(x, q):
            zs.append(z)
            hs.append(h)
        return hs, self._backward(zs, torch.ones_like(zs[-1]), q)

    @torch.no_grad()
    def ntk(self, x1: Tensor, x2: Optional[Tensor] = None, q1: Optional[list[Tensor]] = None,
            q2: Optional[list[Tensor]] = None) -> Tensor:
        """Empirical NTK Θ(x1, x2) of every network, (B, M1, M2), rates λ = the SGD factors (module docstring)."""
        h1, d1 = self._tangent_parts(x1, q1)
        h2, d2 = (h1, d1) if x2 is None else self._tangent_parts(x2, q2)
        theta = None
        for l, r in enumerate(self.rates):
            a1, a2 = h1[l], h2[l]
            inner = torch.matmul(a1, a2.transpose(-1, -2)) * (r.sgd_w * r.multiplier_w ** 2)
            if self.b[l] is not None:
                inner = inner + r.sgd_b * r.multiplier_b ** 2
            term = inner * torch.matmul(d1[l], d2[l].transpose(-1, -2))
            theta = term if theta is None else theta + term
        return theta

    @torch.no_grad()
    def feature_kernels(self, x: Tensor, q: Optional[list[Tensor]] = None) -> list[Tensor]:
        """Φ^(l)(x, x') = (1/n_l) Σ_m a^l_m(x) a^l_m(x') for each hidden layer: list of (B, M, M)."""
        return [torch.matmul(a, a.transpose(-1, -2)) / a.shape[-1] for a in self.hidden(x, q)]
