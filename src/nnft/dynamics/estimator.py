"""A scikit-learn-style regressor for infinite-width networks: NTK gradient flow or the NNGP posterior.

    KernelRegressor(spec, kind="ntk", t=inf).fit(X, y).predict(X_test)
        = Θ(x, X) Θ^{-1} (I − e^{−ηΘt/|D|}) Y          (kind="ntk"; t = ∞: NTK kernel regression)
        = K(x, X) (K + σ² I)^{-1} Y                    (kind="nngp", t = ∞: the NNGP posterior mean)

The formulas, conventions and covariances are those of :mod:`nnft.dynamics.predict` (PHYSICS.md §7). The
estimator follows scikit-learn's contract without depending on it: constructor arguments are stored
unchanged and validated in ``fit``; ``get_params`` / ``set_params``; fitted state ends in ``_``;
``predict`` returns NumPy arrays, as scikit-learn pipelines expect (``return_std`` / ``return_cov`` switch
the return to a tuple, as in ``GaussianProcessRegressor``). :meth:`KernelRegressor.predict_distribution`
returns one type, a :class:`nnft.dynamics.predict.Prediction` of torch tensors, for everything else.

The train matrix is factorized once in ``fit`` (Cholesky at t = ∞, eigendecomposition at finite t). For
kind="ntk" only Θ(X, X) is kept; the NNGP K(X, X) that the covariance needs is computed on the first
request of ``return_std`` / ``return_cov``.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..errors import check, fail
from .predict import (Prediction, _check_time, _cholesky, _flow_covariance, _flow_solver, _nonneg, _targets)

__all__ = ["KernelRegressor"]

Tensor = torch.Tensor
_PARAMS = ("spec", "kind", "t", "steps", "lr", "noise", "tile", "executor")


class KernelRegressor:
    """Infinite-width regression with a spec's NTK or NNGP kernel.

    Parameters
    ----------
    spec : the :class:`nnft.spec.Architecture` whose infinite-width kernels are used.
    kind : "ntk" (frozen-NTK gradient flow of the network in NTK parameterization) or "nngp" (Bayesian
        posterior at t = ∞; readout-only gradient flow at finite t).
    t : training time (default inf); steps : discrete gradient-descent steps instead of t.
    lr : learning rate η (|D| = number of training points).
    noise : observation-noise variance σ² of the NNGP posterior, or a ridge on Θ for kind="ntk" (t = ∞ only).
    tile, executor : tiled kernel matrices (:func:`nnft.dynamics.tiling.kernel_matrices`); None = one block.
    """

    def __init__(self, spec, kind: str = "ntk", t: float = math.inf, steps: Optional[int] = None, lr: float = 1.0,
                 noise: float = 0.0, tile: Optional[int] = None, executor=None) -> None:
        self.spec = spec
        self.kind = kind
        self.t = t
        self.steps = steps
        self.lr = lr
        self.noise = noise
        self.tile = tile
        self.executor = executor

    # -- scikit-learn parameter protocol ---------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments, as given."""
        return {k: getattr(self, k) for k in _PARAMS}

    def set_params(self, **params) -> "KernelRegressor":
        """Set constructor arguments (validated at the next ``fit``); unknown names are a ConfigError."""
        unknown = sorted(set(params) - set(_PARAMS))
        check(not unknown, "KernelRegressor.set_params", unknown, f"parameters among {list(_PARAMS)}")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in _PARAMS if k != "spec")
        return f"KernelRegressor({self.spec}, {args})"

    # -- fit ---------------------------------------------------------------------------------------------
    def _validate(self):
        from ..spec import Architecture

        check(isinstance(self.spec, Architecture), "KernelRegressor.spec", type(self.spec).__name__,
              "an nnft Architecture")
        check(self.kind in ("ntk", "nngp"), "KernelRegressor.kind", self.kind, "'ntk' or 'nngp'")
        t, steps, lr = _check_time(None if self.steps is not None else self.t, self.steps, self.lr)
        noise = _nonneg(self.noise, "KernelRegressor.noise")
        converged = steps is None and math.isinf(t)
        check(noise == 0.0 or converged, "KernelRegressor.noise", noise, "0 unless t = inf and steps = None")
        return t, steps, lr, noise, converged

    def fit(self, X, y) -> "KernelRegressor":
        """Compute and factorize the train kernel matrix. X (n, d), y (n,) or (n, d_out)."""
        from ..theory.kernels import as_inputs
        from .tiling import kernel_matrix

        t, steps, lr, noise, converged = self._validate()
        x = as_inputs(X, self.spec.d_in, "X")
        check(_len(y) == x.shape[0], "y", f"{_len(y)} targets", f"one per row of X ({x.shape[0]})")
        yt = _targets(y, x.shape[0])
        matrix = kernel_matrix(self.spec, x, kind=self.kind, tile=self.tile, executor=self.executor)
        if self.kind == "nngp" and converged:
            solver = _cholesky(matrix, "K(X, X)", None, extra=noise)
        else:
            solver = _flow_solver(matrix, x.shape[0], t=t, steps=steps, lr=lr, ridge=noise, jitter=None, copy=False)
        del matrix
        yy = yt[:, None] if yt.ndim == 1 else yt
        self.X_train_ = x
        self.y_train_ = yt
        self.solver_ = solver
        self.alpha_ = solver.apply(yy)
        self.posterior_ = self.kind == "nngp" and converged
        self.nngp_train_ = None  # computed on the first covariance request (kind="ntk")
        self.n_features_in_ = x.shape[1]
        self._fit_state = (t, steps, lr)
        return self

    # -- predict -----------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        check(hasattr(self, "solver_"), "KernelRegressor.predict", "an unfitted estimator", "call fit(X, y) first")

    def predict_distribution(self, X, *, cov: bool = True, var: bool = True) -> Prediction:
        """Mean and (co)variance at X (n_test, d) as a :class:`Prediction` (torch float64).

        cov=False keeps only the variances (O(n_test) memory); var=False as well skips the prior kernels."""
        from ..theory.kernels import as_inputs
        from .tiling import kernel_matrices, kernel_matrix

        self._check_fitted()
        x = as_inputs(X, self.n_features_in_, "X")
        check(x.shape[1] == self.n_features_in_, "X.shape", tuple(x.shape), f"(n, {self.n_features_in_})")
        tkw = dict(tile=self.tile, executor=self.executor)
        need_prior = cov or var
        if self.kind == "ntk" and need_prior:
            both = kernel_matrices(self.spec, x, self.X_train_, ntk=True, **tkw)
            cross, k_cross = both.ntk, both.nngp
        else:
            cross = kernel_matrix(self.spec, x, self.X_train_, kind=self.kind, **tkw)
            k_cross = cross
        mean = cross @ self.alpha_
        mean = mean[:, 0] if self.y_train_.ndim == 1 else mean
        t, steps, lr = self._fit_state
        kind = "nngp posterior" if self.posterior_ else "ntk flow"
        out = dict(kind=kind, t=math.nan if (self.posterior_ or steps is not None) else t, steps=steps,
                   lr=math.nan if self.posterior_ else lr, jitter=self.solver_.jitter,
                   condition_number=self.solver_.condition_number)
        if not need_prior:
            return Prediction(mean, None, None, **out)
        k_test = (kernel_matrix(self.spec, x, kind="nngp", **tkw) if cov
                  else _prior_diagonal(self.spec, x))
        if self.posterior_:
            v = self.solver_.half(k_cross.T)
            if cov:
                c = k_test - v.T @ v
                c = 0.5 * (c + c.T)
                return Prediction(mean, c, c.diagonal().clone(), **out)
            return Prediction(mean, None, k_test - (v * v).sum(0), **out)
        if self.nngp_train_ is None:
            self.nngp_train_ = (kernel_matrix(self.spec, self.X_train_, kind="nngp", **tkw)
                                if self.kind == "ntk" else None)
        k_train = self.nngp_train_ if self.kind == "ntk" else _nngp_train(self)
        a = self.solver_.apply(cross.T).T
        c, v = _flow_covariance(a, k_train, k_cross, k_test)
        return Prediction(mean, c, v, **out)

    def predict(self, X, return_std: bool = False, return_cov: bool = False):
        """Predictive mean at X (n_test, d) as a NumPy array, (n_test,) or (n_test, d_out).

        return_std → (mean, std) with std shaped like mean; return_cov → (mean, cov (n_test, n_test)),
        the covariance shared by all output components. Not both."""
        check(not (return_std and return_cov), "return_std/return_cov", (return_std, return_cov), "at most one")
        if not (return_std or return_cov):
            return self.predict_distribution(X, cov=False, var=False).mean.numpy()
        p = self.predict_distribution(X, cov=return_cov, var=True)
        mean = p.mean.numpy()
        if return_cov:
            return mean, p.cov.numpy()
        std = p.std.numpy()
        return mean, (std if mean.ndim == 1 else np.repeat(std[:, None], mean.shape[1], axis=1))

    def score(self, X, y) -> float:
        """Coefficient of determination R² = 1 − Σ(y − ŷ)²/Σ(y − ȳ)² (averaged over outputs)."""
        self._check_fitted()
        pred = self.predict(X)
        yt = np.asarray(y, dtype=np.float64)
        check(yt.shape == pred.shape, "y.shape", yt.shape, f"{pred.shape} to match X")
        ss_res = ((yt - pred) ** 2).sum(0)
        ss_tot = ((yt - yt.mean(0)) ** 2).sum(0)
        return float(np.mean(1 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)))


def _len(y) -> int:
    try:
        return len(y)
    except TypeError:
        raise fail("y", type(y).__name__, "an array of targets (n,) or (n, d_out)") from None


def _nngp_train(est: KernelRegressor) -> Tensor:
    """K(X, X) for the readout-only (kind="nngp") flow at finite t (cached)."""
    from .tiling import kernel_matrix

    if est.nngp_train_ is None:
        est.nngp_train_ = kernel_matrix(est.spec, est.X_train_, kind="nngp", tile=est.tile, executor=est.executor)
    return est.nngp_train_


def _prior_diagonal(spec, x: Tensor) -> Tensor:
    from .predict import _test_diag_or_full

    return _test_diag_or_full(spec, x, False, None, None)
