"""Layerwise conditional sampling of deep Gaussian MLPs on a fixed input set (DESIGN.md, "Estimators").

For inputs X = (x_1..x_M) and Gaussian weights W^(l+1)_ij ~ N(0, C_W/n_l), b^(l+1)_i ~ N(0, C_b), the
preactivations of layer l+1 given the post-activations H_l = σ(z^(l)) (n_l × M) are, neuron by neuron,
i.i.d. Gaussian vectors over X:

    z^(l+1)_i | H_l ~ N(0, Σ_l),   Σ_l = C_b + (C_W/n_l) H_lᵀ H_l   (M × M),   i = 1..n_{l+1}

so z^(l+1) = ξ Lᵀ with ξ (n_{l+1} × M) standard normal and L Lᵀ = Σ_l. This is exact in distribution and
costs O(n_{l+1} M²) per layer instead of O(n_{l+1} n_l M) for the matrix product with a sampled W.
L is the Cholesky factor; where Σ_l is numerically singular (rank-deficient inputs, e.g. collinear inputs
of a bias-free ReLU net, or M > n_l + 1) and the Cholesky fails, L = U diag(√max(λ, 0)) from the
eigendecomposition Σ_l = U diag(λ) Uᵀ, which is also an exact factor: no jitter is ever added.
The first layer is sampled directly (any first-layer density or amplitude); every later layer, the readout
included, must have Normal weights with fan-in scaling and a Normal (or no) bias.

Estimators: ``readout`` accumulates the readout-integrated kernel S = C_b + (C_W/n_L) H_Lᵀ H_L and converts
its joint cumulants to those of φ exactly as :func:`nnft.measure` does (φ | S ~ N(0, S ⊗ I_{d_out}));
``plain`` draws φ = S^{1/2} ξ itself. Chunk c draws from ``chunk_generator(seed, c)``: first-layer
parameters as in :func:`nnft.ensemble.sampling.sample_networks`, then ξ layer by layer; results are
bitwise independent of the batch size and the executor, as for ``measure``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch

from ..errors import check
from ..spec import Architecture, Normal
from .measure import EnsembleConfig, Measurement, _Problem, measure
from .sampling import chunk_generator, sample_networks

__all__ = ["ConditionalProblem", "measure_conditional", "psd_factor", "sample_last_hidden"]

Tensor = torch.Tensor


def psd_factor(sigma: Tensor) -> Tensor:
    """L with L Lᵀ = Σ for a batch of PSD matrices (…, M, M): Cholesky, or the eigen-factor where it fails."""
    lmat, info = torch.linalg.cholesky_ex(sigma)
    bad = info != 0
    if bool(bad.any()):
        evals, evecs = torch.linalg.eigh(sigma[bad])
        lmat[bad] = evecs * evals.clamp_min(0).sqrt()[..., None, :]
    return lmat


def _check_spec(spec: Architecture) -> None:
    for i, layer in enumerate(spec.layers[1:], start=1):
        check(isinstance(layer.weight, Normal) and (layer.bias is None or isinstance(layer.bias, Normal))
              and layer.scaling == "fan_in", f"spec.layers[{i}]", layer.to_config(),
              "Normal weight (fan-in scaling) and Normal or no bias after the first layer (conditional "
              "sampling needs Gaussian layers; use nnft.measure otherwise)")


def _empirical_kernel(h: Tensor, layer) -> Tensor:
    """C_b + (C_W/n) hᵀ h for h (B, n, M), in float64."""
    h = h.to(torch.float64)
    return torch.bmm(h.transpose(1, 2), h) * (layer.weight.std ** 2 / h.shape[1]) + layer.bias_var


def sample_last_hidden(spec: Architecture, x: Tensor, n: int, generator: torch.Generator, *,
                       dtype=torch.float32, variances: Optional[list[Tensor]] = None) -> Tensor:
    """Post-activations of the last hidden layer, (n, n_L, M), for n networks by conditional sampling."""
    first = sample_networks(spec, n, generator, dtype=dtype, layers=1)
    act = spec.activation
    z = torch.matmul(first.weights[0], x.to(dtype).T)
    if first.biases[0] is not None:
        z = z + first.biases[0][:, :, None]
    q = (lambda l: None) if variances is None else (lambda l: variances[l].to(dtype)[None, None, :])  # noqa
    h = act(z, q(0))
    if first.amplitude is not None:
        h = h * first.amplitude[:, :, None]
    for l in range(1, spec.depth):
        lmat = psd_factor(_empirical_kernel(h, spec.layers[l])).to(dtype)
        xi = torch.empty((n, spec.layers[l].width, x.shape[0]), dtype=dtype)
        xi.normal_(0.0, 1.0, generator=generator)
        h = act(torch.matmul(xi, lmat.transpose(1, 2)), q(l))
    return h


class ConditionalProblem(_Problem):
    """``measure``'s chunk problem with the layerwise conditional sampler in place of whole networks."""

    def __init__(self, spec: Architecture, x: Tensor, config: EnsembleConfig) -> None:
        _check_spec(spec)
        super().__init__(spec, x, config)

    def chunks(self, indices: list[int]):
        from .accumulator import Accumulator

        return [Accumulator.from_samples(self._features(c), self.order) for c in indices]

    def _features(self, chunk: int):
        n = self.config.chunk_len(chunk)
        gen = chunk_generator(self.config.seed, chunk)
        h = sample_last_hidden(self.spec, self.x, n, gen, dtype=self.dtype, variances=self.variances)
        s = _empirical_kernel(h, self.spec.layers[-1])
        if self.config.estimator == "readout":
            return s[:, self.iu[0], self.iu[1]].numpy()
        xi = torch.empty((n, self.spec.d_out, self.x.shape[0]), dtype=torch.float64)
        xi.normal_(0.0, 1.0, generator=gen)
        phi = torch.matmul(xi, psd_factor(s).transpose(1, 2))  # (n, d_out, M)
        return phi.transpose(1, 2).reshape(n, -1).numpy()


def measure_conditional(spec: Architecture, x, config: EnsembleConfig, **kwargs) -> Measurement:
    """:func:`nnft.measure` with ``config.sampler = "conditional"`` (same errors, checkpoints, result type)."""
    return measure(spec, x, replace(config, sampler="conditional"), **kwargs)
