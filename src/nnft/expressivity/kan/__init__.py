"""Kolmogorov–Arnold networks (PHYSICS.md §9; Liu et al., arXiv:2404.19756).

basis    B-spline grids and bases (uniform closed form + general Cox–de Boor)
layer    KANLayer: φ_ij(x) = scale_base SiLU(x) + scale_sp Σ_m c_m B_m(x) on every edge
network  KAN: a stack of layers, grid update / extension
grid     adaptive grids, grid refinement, least-squares transfer between spline spaces
train    fit: Adam or LBFGS on the mean-squared error with an optional penalty hook
"""

from .basis import bspline_basis as bspline_basis
from .basis import bspline_local as bspline_local
from .basis import uniform_grid as uniform_grid
from .layer import KANLayer as KANLayer
from .network import KAN as KAN
from .network import KANTrace as KANTrace
from .train import History as History
from .train import fit as fit

__all__ = ["KAN", "KANLayer", "KANTrace", "History", "fit", "bspline_basis", "bspline_local", "uniform_grid"]
