"""The network families of PHYSICS.md §2, exactly as defined there.

One hidden layer of width N:  f(x) = b1 + Σ_i W1_i σ(W0_i·x + b0_i),
W0_i ~ N(0, σ_W0² I/d), b0 ~ N(0, σ_b0²), W1 ~ N(0, σ_W1²/N), b1 ~ N(0, σ_b1²).
The NN-QFT experiments (arXiv:2008.08601) use σ = 1 in both layers, except ReLU-net with σ_b = 0.
"""

from __future__ import annotations

import math

from scipy.special import gamma

from ..errors import check
from ._activation import Activation
from ._architecture import Architecture, Layer, Propagator
from ._density import Normal, Uniform, UniformBall

__all__ = ["erf_net", "relu_net", "gauss_net", "cos_net", "scalar_net", "PRESETS", "ball_volume"]


def _one_hidden(name: str, activation: str, width: int, d: int, sigma_w0: float, sigma_b0: float,
                sigma_w1: float, sigma_b1: float) -> Architecture:
    bias0 = Normal(sigma_b0) if sigma_b0 > 0 else None
    bias1 = Normal(sigma_b1) if sigma_b1 > 0 else None
    return Architecture(d_in=d, activation=Activation(activation), name=name,
                        layers=(Layer(width=width, weight=Normal(sigma_w0), bias=bias0),
                                Layer(width=1, weight=Normal(sigma_w1), bias=bias1)))


def erf_net(width: int = 100, d: int = 1, *, sigma_w0: float = 1.0, sigma_b0: float = 1.0,
            sigma_w1: float = 1.0, sigma_b1: float = 1.0) -> Architecture:
    """Erf-net: K = σ_b1² + σ_W1² (2/π) arcsin[2K0(x,x') / sqrt((1 + 2K0(x,x))(1 + 2K0(x',x')))]."""
    return _one_hidden("erf-net", "erf", width, d, sigma_w0, sigma_b0, sigma_w1, sigma_b1)


def relu_net(width: int = 100, d: int = 1, *, sigma_w0: float = 1.0, sigma_b0: float = 0.0,
             sigma_w1: float = 1.0, sigma_b1: float = 0.0) -> Architecture:
    """ReLU-net (σ_b = 0 by default, as in arXiv:2008.08601): arc-cosine kernel of K0."""
    return _one_hidden("relu-net", "relu", width, d, sigma_w0, sigma_b0, sigma_w1, sigma_b1)


def gauss_net(width: int = 100, d: int = 1, *, sigma_w0: float = 1.0, sigma_b0: float = 1.0,
              sigma_w1: float = 1.0, sigma_b1: float = 1.0) -> Architecture:
    """Gauss-net: ρ_i(x) = exp(W0_i·x + b0_i) / exp(σ_b0² + σ_W0²|x|²/d);
    K = σ_b1² + σ_W1² exp(−σ_W0² |x − x'|²/(2d)), independent of σ_b0."""
    return _one_hidden("gauss-net", "gauss", width, d, sigma_w0, sigma_b0, sigma_w1, sigma_b1)


def cos_net(width: int = 100, d: int = 1, *, sigma_a: float = 1.0, sigma_w: float = 1.0) -> Architecture:
    """Cos-net: φ(x) = N^{−1/2} Σ_i a_i cos(w_i·x + b_i), a ~ N(0, σ_a²), w ~ N(0, σ_w² I/d), b ~ U[−π, π].
    G^(2)(x, y) = (σ_a²/2) exp(−σ_w² |x − y|²/(2d)) at every N (arXiv:2112.04527)."""
    return Architecture(d_in=d, activation=Activation("cos"), name="cos-net",
                        layers=(Layer(width=width, weight=Normal(sigma_w), bias=Uniform(-math.pi, math.pi)),
                                Layer(width=1, weight=Normal(sigma_a), bias=None)))


def ball_volume(d: int, radius: float) -> float:
    """vol(B_Λ^d) = π^{d/2} Λ^d / Γ(d/2 + 1)."""
    return math.pi ** (d / 2) * radius**d / gamma(d / 2 + 1)


def scalar_net(width: int = 1000, d: int = 1, *, mass: float = 1.0, cutoff: float = 10.0) -> Architecture:
    """Scalar-net, a free massive scalar with a momentum cutoff Λ (arXiv:2112.04527, PHYSICS.md §2):

        φ(x) = sqrt(2 vol / (σ_a² (2π)^d)) Σ_i a_i cos(b_i·x + c_i) / sqrt(b_i² + m²),
        a ~ N(0, σ_a²/N), b ~ U(ball |b| < Λ), c ~ U[−π, π],
        G^(2)(x, y) = ∫_{|p|<Λ} d^dp/(2π)^d e^{ip·(x−y)} / (p² + m²)   at every N.

    σ_a cancels: the readout is N(0, (2 vol/(2π)^d)/N).
    """
    check(isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0, "cutoff", cutoff,
          "a finite number > 0")
    readout_std = math.sqrt(2 * ball_volume(d, cutoff) / (2 * math.pi) ** d)
    return Architecture(d_in=d, activation=Activation("cos"), name="scalar-net", amplitude=Propagator(mass),
                        layers=(Layer(width=width, weight=UniformBall(cutoff), bias=Uniform(-math.pi, math.pi),
                                      scaling="none"),
                                Layer(width=1, weight=Normal(readout_std), bias=None)))


PRESETS = {"erf-net": erf_net, "relu-net": relu_net, "gauss-net": gauss_net, "cos-net": cos_net,
           "scalar-net": scalar_net}
