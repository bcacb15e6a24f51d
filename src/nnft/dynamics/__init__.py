"""Dynamics (PHYSICS.md §7–8, §10): empirical and infinite-width NTK, kernel-regression and gradient-flow
predictions, training of network ensembles, parameterizations (SP/NTK/MF/μP) for specs and users' models,
coordinate checks, μTransfer, feature-kernel diagnostics, order/chaos phases."""

from .ntk import MLPParams as MLPParams, ScaledMLP as ScaledMLP, empirical_ntk as empirical_ntk
from .ntk import mlp_ntk as mlp_ntk, parameterization_rates as parameterization_rates
from .predict import Prediction as Prediction, infinite_width_prediction as infinite_width_prediction
from .predict import nngp_posterior as nngp_posterior, ntk_flow as ntk_flow
from .estimator import KernelRegressor as KernelRegressor
from .tiling import kernel_matrices as kernel_matrices, kernel_matrix as kernel_matrix
from .batched_mlp import BatchedMLP as BatchedMLP
from .training import TrainConfig as TrainConfig, TrainResult as TrainResult, init_networks as init_networks
from .training import train as train
from .lazy import LazyScan as LazyScan, fit_power_law as fit_power_law, frozen_ntk_comparison as frozen_ntk_comparison
from .lazy import width_scan as width_scan
from .parameterize import param_groups as param_groups, parameterize as parameterize
from .coordcheck import CoordCheck as CoordCheck, coord_check as coord_check
from .features import feature_kernel as feature_kernel, feature_movement as feature_movement
from .features import kernel_alignment as kernel_alignment
from .transfer import TransferSweep as TransferSweep, lr_sweep as lr_sweep
from .phases import correlation_propagation as correlation_propagation, critical_sigma_w2 as critical_sigma_w2
from .phases import measure_correlation as measure_correlation, phase_diagram as phase_diagram
from .phases import phase_point as phase_point

__all__ = ["MLPParams", "ScaledMLP", "empirical_ntk", "mlp_ntk", "parameterization_rates", "Prediction",
           "infinite_width_prediction", "nngp_posterior", "ntk_flow", "KernelRegressor", "kernel_matrices",
           "kernel_matrix", "BatchedMLP", "TrainConfig", "TrainResult", "init_networks", "train", "LazyScan",
           "fit_power_law", "frozen_ntk_comparison", "width_scan", "param_groups", "parameterize", "CoordCheck",
           "coord_check", "feature_kernel", "feature_movement", "kernel_alignment", "TransferSweep", "lr_sweep",
           "correlation_propagation", "critical_sigma_w2", "measure_correlation", "phase_diagram", "phase_point"]
