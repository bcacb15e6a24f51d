"""Theory face: Gaussian expectations, infinite-width kernels, Wick n-point functions, finite-width
correlators (exact single layer, deep O(1/N)) and effective actions."""

from .gaussian import dual_kernel as dual_kernel, gauss_hermite_pair as gauss_hermite_pair
from .kernels import Kernels as Kernels, first_layer_expectation as first_layer_expectation
from .kernels import kernels as kernels, nngp as nngp, ntk as ntk, preactivation_variances as preactivation_variances
from .deep import DeepTheory as DeepTheory, deep_correlators as deep_correlators
from .single_layer import SingleLayerTheory as SingleLayerTheory, single_layer_correlators as single_layer_correlators
from .wick import gaussian_correlators as gaussian_correlators, site_kernel as site_kernel, wick_moments as wick_moments

__all__ = ["dual_kernel", "gauss_hermite_pair", "Kernels", "kernels", "nngp", "ntk", "first_layer_expectation",
           "preactivation_variances", "gaussian_correlators", "site_kernel", "wick_moments", "DeepTheory",
           "deep_correlators", "SingleLayerTheory", "single_layer_correlators"]
