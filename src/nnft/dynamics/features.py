"""Feature-kernel movement vs width: the feature-learning diagnostic of PHYSICS.md §7–8.

For each hidden layer l with post-activations σ(z^(l)) ∈ R^{N} on a fixed batch X = (x_1..x_P):

    Φ^(l)_{αβ}(t) = (1/N) Σ_m σ(z^(l)_m(x_α; θ_t)) σ(z^(l)_m(x_β; θ_t))           (P × P)
    movement^(l) = ‖Φ^(l)(T) − Φ^(l)(0)‖_F / ‖Φ^(l)(0)‖_F
    alignment^(l)(t) = ⟨Φ^(l)(t), y yᵀ⟩_F / (‖Φ^(l)(t)‖_F ‖y yᵀ‖_F)      (kernel–target alignment)

after T full-batch steps. In the kernel regime (NTK parameterization, SP with LR ∝ 1/N) the features are
frozen up to O(N^{−1/2}) (Lee et al. arXiv:1902.06720; Yang–Hu arXiv:2011.14522 Thm 3.8 with r = ½), so the
movement falls like N^{−1/2}; under μP and mean field (r = 0) it stays O(1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..errors import check
from ..spec import Parameterization
from .coordcheck import ACTIVATIONS, Optimizer, _seeds, loglog_slope, mlp_model, regression_task, train_record
from .parameterize import parameterize

__all__ = ["feature_kernel", "kernel_movement", "kernel_alignment", "FeatureMovement", "feature_movement"]

Tensor = torch.Tensor


def feature_kernel(features: Tensor) -> Tensor:
    """Φ_{αβ} = (1/N) Σ_m f_{αm} f_{βm} for features (P, N) → (P, P), in float64."""
    check(isinstance(features, Tensor) and features.ndim == 2 and features.shape[1] >= 1, "features",
          getattr(features, "shape", type(features).__name__), "a (P, N) tensor")
    f = features.double()
    return f @ f.T / f.shape[1]


def kernel_movement(phi_t: Tensor, phi_0: Tensor) -> float:
    """‖Φ_t − Φ_0‖_F / ‖Φ_0‖_F."""
    return float(torch.linalg.norm(phi_t - phi_0) / torch.linalg.norm(phi_0))


def kernel_alignment(phi: Tensor, y: Tensor) -> float:
    """⟨Φ, y yᵀ⟩_F / (‖Φ‖_F ‖y yᵀ‖_F) for targets y (P,) or (P, 1)."""
    y = y.double().reshape(-1, 1)
    yy = y @ y.T
    return float((phi * yy).sum() / (torch.linalg.norm(phi) * torch.linalg.norm(yy)))


@dataclass(frozen=True)
class FeatureMovement:
    """movement, alignment_0, alignment_T : (W, S, K) per width, seed and hidden layer."""

    parameterization: str
    optimizer: str
    lr: float
    steps: int
    widths: tuple[int, ...]
    layers: tuple[str, ...]
    movement: np.ndarray
    alignment_0: np.ndarray
    alignment_T: np.ndarray
    wall_time_s: float

    def slopes(self) -> tuple[np.ndarray, np.ndarray]:
        """(slope, stderr) per layer of log(seed-mean movement) vs log(width); stderr from per-seed slopes."""
        slope = loglog_slope(self.widths, self.movement.mean(axis=1))
        per_seed = loglog_slope(self.widths, self.movement)
        s = per_seed.shape[0]
        err = per_seed.std(axis=0, ddof=1) / math.sqrt(s) if s > 1 else np.full(slope.shape, np.nan)
        return slope, err


def feature_movement(parameterization: Union[str, Parameterization], *,
                     widths: Sequence[int] = (64, 128, 256, 512, 1024), steps: int = 10,
                     optimizer: Optimizer = "sgd", lr: float = 0.01, n_seeds: int = 3, seed: int = 0,
                     depth: int = 2, d_in: int = 8, n_points: int = 32, activation: str = "relu",
                     std: float = math.sqrt(2.0), bias_std: float = 0.5, base_width: Optional[int] = None,
                     zero_readout: bool = False, model_fn: Optional[Callable[[int], nn.Module]] = None,
                     data_seed: int = 1234) -> FeatureMovement:
    """Feature-kernel movement after ``steps`` steps for each width (defaults as in :func:`coord_check`).

    The features are the outputs of the model's activation modules (``nn.ReLU``, ``nn.Tanh``, ``nn.GELU``).
    """
    check(isinstance(widths, (list, tuple)) and len(widths) >= 2, "widths", widths, ">= 2 integer widths")
    check(isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1, "steps", steps, "an integer >= 1")
    check(isinstance(n_seeds, int) and not isinstance(n_seeds, bool) and n_seeds >= 1, "n_seeds", n_seeds,
          "an integer >= 1")
    p = Parameterization(parameterization) if isinstance(parameterization, str) else parameterization
    base = min(widths) if base_width is None else base_width
    build = model_fn if model_fn is not None else (lambda n: mlp_model(d_in, n, depth, 1, activation))
    act_types = tuple(ACTIVATIONS.values())
    x, y = regression_task(n_points, d_in, seed=data_seed)
    t0 = time.perf_counter()
    mov, al0, alT, layers = [], [], [], ()
    for width in widths:
        rm, r0, rT = [], [], []
        for s in _seeds(seed, n_seeds):
            model = parameterize(build(width), p, generator=torch.Generator().manual_seed(s), base_width=base,
                                 std=std, bias_std=bias_std, zero_readout=zero_readout)
            acts = [m for m in model.modules() if isinstance(m, act_types)]
            check(bool(acts), "model_fn", "a model without activation modules", "nn.ReLU / nn.Tanh / nn.GELU modules")
            outs, _ = train_record(model, x, y, steps=steps, lr=lr, optimizer=optimizer, record=acts)
            phi0 = [feature_kernel(f.reshape(f.shape[0], -1)) for f in outs[0]]
            phiT = [feature_kernel(f.reshape(f.shape[0], -1)) for f in outs[-1]]
            rm.append([kernel_movement(b, a) for a, b in zip(phi0, phiT)])
            r0.append([kernel_alignment(a, y) for a in phi0])
            rT.append([kernel_alignment(b, y) for b in phiT])
            layers = tuple(f"Φ{k + 1}" for k in range(len(acts)))
        mov.append(rm)
        al0.append(r0)
        alT.append(rT)
    return FeatureMovement(str(p), optimizer, float(lr), steps, tuple(widths), layers, np.array(mov), np.array(al0),
                           np.array(alT), time.perf_counter() - t0)
