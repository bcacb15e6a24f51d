"""nnft: neural-network field theory — theory beside experiment for ensembles of neural networks.

Importing nnft has no side effects: nothing is printed, no global state or seed is touched.
"""

from importlib.metadata import PackageNotFoundError, version

from .compare import Comparison as Comparison, compare as compare
from .correlators import Correlators as Correlators
from .ensemble import DaskExecutor as DaskExecutor, EnsembleConfig as EnsembleConfig, InProcess as InProcess
from .ensemble import Measurement as Measurement, measure as measure
from .errors import ConfigError as ConfigError, NonGaussianInputError as NonGaussianInputError
from .spec import NTK as NTK, STANDARD as STANDARD, Activation as Activation, Architecture as Architecture
from .spec import Layer as Layer, Normal as Normal, Uniform as Uniform, UniformBall as UniformBall, mlp as mlp
from .spec import cos_net as cos_net, erf_net as erf_net, gauss_net as gauss_net, relu_net as relu_net
from .spec import scalar_net as scalar_net
from .theory import deep_correlators as deep_correlators, single_layer_correlators as single_layer_correlators
from .theory import gaussian_correlators as gaussian_correlators, kernels as kernels, nngp as nngp, ntk as ntk

try:
    __version__ = version("nnft")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["Comparison", "compare", "Correlators", "DaskExecutor", "EnsembleConfig", "InProcess", "Measurement",
           "measure", "ConfigError", "NonGaussianInputError", "NTK", "STANDARD", "Activation", "Architecture",
           "Layer", "Normal", "Uniform", "UniformBall", "mlp", "cos_net", "erf_net", "gauss_net", "relu_net",
           "scalar_net", "gaussian_correlators", "kernels", "nngp", "ntk", "deep_correlators",
           "single_layer_correlators", "__version__"]
