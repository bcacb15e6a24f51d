"""Registered experiments (one module per lecture result); ``REGISTRY`` maps names to their classes."""

from ._base import REGISTRY as REGISTRY, Check as Check, ExperimentResult as ExperimentResult
from ._base import Figure as Figure, Table as Table
from . import nngp_two_point as _nngp_two_point  # noqa: F401  (registers)
from . import nnqft_scaling as _nnqft_scaling  # noqa: F401  (registers)
from . import coupling_running as _coupling_running  # noqa: F401  (registers)
from . import deep_vertex as _deep_vertex  # noqa: F401  (registers)
from . import free_field as _free_field  # noqa: F401  (registers)
from . import symmetries as _symmetries  # noqa: F401  (registers)
from . import phi4 as _phi4  # noqa: F401  (registers)
from . import phases as _phases  # noqa: F401  (registers)
from . import lazy_training as _lazy_training  # noqa: F401  (registers)
from . import coord_check as _coord_check  # noqa: F401  (registers)
from . import mu_transfer as _mu_transfer  # noqa: F401  (registers)
from . import uat as _uat  # noqa: F401  (registers)
from . import kan_scaling as _kan_scaling  # noqa: F401  (registers)
from . import kan_kernel as _kan_kernel  # noqa: F401  (registers)

__all__ = ["REGISTRY", "Check", "ExperimentResult", "Figure", "Table"]
