"""Experiment face: seeded chunked sampling, vectorized evaluation, mergeable moment accumulators."""

from .accumulator import Accumulator as Accumulator, tree_reduce as tree_reduce
from .executors import DaskExecutor as DaskExecutor, InProcess as InProcess
from .measure import EnsembleConfig as EnsembleConfig, Measurement as Measurement, measure as measure
from .conditional import measure_conditional as measure_conditional
from .sampling import chunk_generator as chunk_generator, evaluate as evaluate, sample_networks as sample_networks

__all__ = ["Accumulator", "tree_reduce", "DaskExecutor", "InProcess", "EnsembleConfig", "Measurement", "measure",
           "measure_conditional", "chunk_generator", "evaluate", "sample_networks"]
