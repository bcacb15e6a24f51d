"""Architecture specs: the single source of truth for a network family."""

from ._activation import KNOWN_ACTIVATIONS as KNOWN_ACTIVATIONS, Activation as Activation
from ._architecture import Architecture as Architecture, Layer as Layer, Propagator as Propagator, mlp as mlp
from ._architecture import SpectralAmplitude as SpectralAmplitude
from ._density import Normal as Normal, Sampled as Sampled, Uniform as Uniform, UniformBall as UniformBall
from ._density import Spectral as Spectral, Spectrum as Spectrum, density_std as density_std
from ._parameterization import NTK as NTK, STANDARD as STANDARD, Parameterization as Parameterization
from ._parameterization import ABC as ABC, LayerScales as LayerScales, Stability as Stability
from ._parameterization import MEAN_FIELD as MEAN_FIELD, MUP as MUP, PARAMETERIZATIONS as PARAMETERIZATIONS
from ._presets import PRESETS as PRESETS, ball_volume as ball_volume, cos_net as cos_net, erf_net as erf_net
from ._presets import gauss_net as gauss_net, relu_net as relu_net, scalar_net as scalar_net

__all__ = ["Activation", "KNOWN_ACTIVATIONS", "Architecture", "Layer", "Propagator", "mlp", "Normal", "Uniform",
           "UniformBall", "Sampled", "Spectrum", "Spectral", "SpectralAmplitude", "density_std", "Parameterization",
           "STANDARD", "NTK", "MEAN_FIELD", "MUP",
           "PARAMETERIZATIONS", "LayerScales", "ABC", "Stability", "PRESETS",
           "erf_net", "relu_net", "gauss_net", "cos_net", "scalar_net", "ball_volume"]
