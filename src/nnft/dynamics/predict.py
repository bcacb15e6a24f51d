"""Infinite-width predictions: frozen-NTK gradient flow and the NNGP posterior (PHYSICS.md §7).

Loss and flow (Jacot et al. arXiv:1806.07572; Lee et al. arXiv:1902.06720, eqs. 9–16):

    L = (1/|D|) Σ_α ½ |φ(x_α) − y_α|²,   dφ_t(x)/dt = −(η/|D|) Σ_α Θ(x, x_α) (φ_t(x_α) − y_α)

|D| = number of training points (a vector output sums its components inside ½|·|²; each component
evolves independently with the same Θ because Θ_ab = δ_ab Θ at infinite width). With Θ = Θ(X, X) and
E_t = I − exp(−ηΘt/|D|), for an initial function φ_0 ~ GP(0, K):

    μ_t(x)     = Θ(x, X) Θ^{-1} E_t Y
    Σ_t(x, x') = K(x, x') + A K(X, X) Aᵀ − [A K(X, x') + (x ↔ x')],     A := Θ(x, X) Θ^{-1} E_t
    t → ∞:       A = Θ(x, X) Θ^{-1}  (kernel regression with the NTK; μ_∞(x_α) = y_α)
    discrete GD: E_k = I − (I − ηΘ/|D|)^k  (stable iff η < 2|D|/λ_max(Θ))

NNGP posterior (Rasmussen & Williams, Gaussian Processes for ML, Alg. 2.1; Lee et al. arXiv:1711.00165):

    mean = K(x, X) (K + σ²I)^{-1} Y,   cov = K(x, x') − K(x, X) (K + σ²I)^{-1} K(X, x')

Θ^{-1} E_t is applied through the eigendecomposition Θ = V diag(λ) Vᵀ, g(λ) = (1 − e^{−ηtλ/|D|})/λ
(→ ηt/|D| as λ → 0, so finite t never needs Θ to be invertible); t = ∞ and the posterior use a Cholesky
factor, with a jitter (ridge) that is reported, never hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch

from ..errors import ConfigError, check, fail

__all__ = ["Prediction", "nngp_posterior", "ntk_flow", "infinite_width_prediction", "MAX_CONDITION"]

Tensor = torch.Tensor
MAX_CONDITION = 1e12  # largest accepted 1-norm condition number of a solved train kernel matrix
_JITTERS = (0.0,) + tuple(10.0 ** e for e in range(-12, -5))  # relative to the mean diagonal


@dataclass(frozen=True)
class Prediction:
    """Mean and covariance of the infinite-width ensemble's function at test inputs (float64).

    mean : (n_test,) or (n_test, d_out) (the shape of y_train's trailing axis).
    cov : (n_test, n_test) covariance, shared by all output components (K_ab = δ_ab K); None when no
        prior kernel was given (NTK flow without the NNGP), or when only the diagonal was asked for.
    var : (n_test,) the diagonal of the covariance (also when ``cov`` was not formed); None with ``cov``.
    kind : "ntk flow" or "nngp posterior".
    t : training time (inf for the converged limit; nan for the posterior and for discrete GD).
    steps : number of discrete GD steps, or None.
    lr : the learning rate η (nan for the posterior).
    jitter : the ridge added to the solved train matrix's diagonal (absolute), 0 if none was needed.
    condition_number : 1-norm condition estimate of the solved train matrix (λ_max/λ_min for an
        eigendecomposition); nan when no inverse was needed.
    """

    mean: Tensor
    cov: Optional[Tensor]
    var: Optional[Tensor]
    kind: str
    t: float
    steps: Optional[int]
    lr: float
    jitter: float = 0.0
    condition_number: float = math.nan

    @property
    def std(self) -> Optional[Tensor]:
        """sqrt of the predictive variance (clamped at 0 against round-off), (n_test,)."""
        return None if self.var is None else torch.sqrt(self.var.clamp_min(0.0))


# ----------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------

def _matrix(a, name: str, shape: Optional[tuple] = None) -> Tensor:
    if isinstance(a, Tensor):
        t = a.detach().to(dtype=torch.float64)
    else:
        try:
            t = torch.as_tensor(np.asarray(a, dtype=np.float64))
        except (TypeError, ValueError):
            raise fail(name, type(a).__name__, "a numeric 2-D array") from None
    check(t.ndim == 2, f"{name}.shape", tuple(t.shape), "a 2-D kernel matrix")
    if shape is not None:
        check(tuple(t.shape) == tuple(shape), f"{name}.shape", tuple(t.shape), f"{tuple(shape)}")
    check(bool(torch.isfinite(t).all()), name, "non-finite values (NaN or inf)", "finite numbers")
    return t


def _square(a, name: str) -> Tensor:
    t = _matrix(a, name)
    check(t.shape[0] == t.shape[1] and t.shape[0] >= 1, f"{name}.shape", tuple(t.shape), "(n, n), n >= 1")
    scale = float(t.abs().max()) or 1.0
    asym = float((t - t.T).abs().max())
    check(asym <= 1e-10 * scale, name, f"an asymmetric matrix (max |K − Kᵀ| = {asym:.3g})", "a symmetric kernel")
    return t


def _targets(y, n: int) -> Tensor:
    if isinstance(y, Tensor):
        t = y.detach().to(dtype=torch.float64)
    else:
        try:
            t = torch.as_tensor(np.asarray(y, dtype=np.float64))
        except (TypeError, ValueError):
            raise fail("y_train", type(y).__name__, "a numeric array (n_train,) or (n_train, d_out)") from None
    check(t.ndim in (1, 2) and t.shape[0] == n, "y_train.shape", tuple(t.shape),
          f"({n},) or ({n}, d_out) to match the {n} training points")
    check(bool(torch.isfinite(t).all()), "y_train", "non-finite values (NaN or inf)", "finite numbers")
    return t


def _nonneg(value, name: str) -> float:
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0,
          name, value, "a finite number >= 0")
    return float(value)


# ----------------------------------------------------------------------------------------------------
# solvers: M = Θ^{-1} E_t (eigendecomposition) or (K + σ² I)^{-1} (Cholesky)
# ----------------------------------------------------------------------------------------------------

def _condition_1norm(chol: Tensor, anorm: float) -> float:
    """1-norm condition number estimate from a lower Cholesky factor (LAPACK dpocon, O(n²))."""
    from scipy.linalg import lapack

    lower = chol.numpy()
    if lower.flags["F_CONTIGUOUS"]:  # torch's LAPACK layout: pass L as is (no copy)
        rcond, info = lapack.dpocon(lower, anorm, uplo="L")
    else:  # C order: its transpose is the upper factor in Fortran order (no copy)
        rcond, info = lapack.dpocon(lower.T, anorm, uplo="U")
    return math.inf if info != 0 or rcond <= 0 else 1.0 / rcond


@dataclass(frozen=True)
class _Cholesky:
    """M = (A + jitter·I)^{-1} through a lower Cholesky factor L."""

    chol: Tensor
    jitter: float
    condition_number: float

    def apply(self, b: Tensor) -> Tensor:
        """M b for b (n, k), by two triangular solves (torch.cholesky_solve would copy the n×n factor)."""
        y = torch.linalg.solve_triangular(self.chol, b, upper=False)
        return torch.linalg.solve_triangular(self.chol.mT, y, upper=True)

    def half(self, b: Tensor) -> Tensor:
        """L^{-1} b (so that bᵀ M b = |L^{-1} b|²)."""
        return torch.linalg.solve_triangular(self.chol, b, upper=False)


def _abs_column_sums(a: Tensor, block: int = 1024) -> Tensor:
    """Σ_i |a_ij| in row blocks (no full-size temporary for a 20 000² matrix)."""
    out = torch.zeros(a.shape[1], dtype=a.dtype)
    for s in range(0, a.shape[0], block):
        out += a[s:s + block].abs().sum(0)
    return out


def _cholesky(a: Tensor, name: str, jitter: Optional[float], extra: float = 0.0) -> _Cholesky:
    """Factor a + (extra + jitter)·I with an accepted condition number (≤ MAX_CONDITION).

    ``jitter=None``: try 0, then 1e-12 … 1e-6 times the mean diagonal, keep the first factor that exists and
    is well conditioned. A float: that absolute jitter only. ConfigError (naming the condition number)
    when no attempt is acceptable.
    """
    n = a.shape[0]
    diag = a.diagonal().clone()
    mean_diag = float((diag + extra).abs().mean()) or 1.0
    tries = [mean_diag * r for r in _JITTERS] if jitter is None else [float(jitter)]
    colsum = _abs_column_sums(a)  # of the matrix as given; the diagonal's share is corrected per attempt
    cond = math.inf
    try:
        for j in tries:
            a.diagonal().copy_(diag + (extra + j))
            anorm = float((colsum - diag.abs() + (diag + (extra + j)).abs()).max())  # ‖a + (extra + j) I‖_1
            chol, info = torch.linalg.cholesky_ex(a)
            if int(info) != 0:
                cond = math.inf
                continue
            cond = _condition_1norm(chol, anorm)
            if cond <= MAX_CONDITION:
                return _Cholesky(chol, j, cond)
    finally:
        a.diagonal().copy_(diag)
    if not math.isfinite(cond) and n <= 4096:  # Cholesky failed: name the spectrum (error path only)
        lam = torch.linalg.eigvalsh(a + (extra + tries[-1]) * torch.eye(n, dtype=a.dtype))
        cond = float(lam[-1] / lam[0]) if float(lam[0]) > 0 else math.inf
        what = f"condition number ≈ {cond:.3g} (λ_min = {float(lam[0]):.3g}, λ_max = {float(lam[-1]):.3g})"
    else:
        what = ("no Cholesky factor (not positive definite)" if not math.isfinite(cond)
                else f"condition number ≈ {cond:.3g}")
    tried = (f"even with jitter up to {tries[-1]:.3g} (1e-6 × mean diagonal)" if jitter is None
             else f"with jitter {tries[-1]:.3g}")
    # built directly: fail() would shorten the "got" part and cut the condition number off
    raise ConfigError(f"{name}: got a {n}×{n} kernel matrix with {what} {tried}; allowed: condition number "
                      f"≤ {MAX_CONDITION:.0e} (add noise/ridge > 0, remove duplicate inputs, or use a finite t)")


@dataclass(frozen=True)
class _Eigen:
    """M = V diag(g(λ)) Vᵀ with g the flow filter."""

    vecs: Tensor
    g: Tensor
    condition_number: float
    jitter: float = 0.0

    def apply(self, b: Tensor) -> Tensor:
        return self.vecs @ (self.g[:, None] * (self.vecs.T @ b))


def _flow_filter(theta: Tensor, n_train: int, lr: float, t: Optional[float], steps: Optional[int]) -> _Eigen:
    """Eigendecomposition of Θ and g(λ) = [1 − e^{−ηtλ/|D|}]/λ or [1 − (1 − ηλ/|D|)^k]/λ."""
    lam, vecs = torch.linalg.eigh(theta)
    lam_max = float(lam.abs().max())
    check(float(lam[0]) >= -1e-10 * max(lam_max, 1e-300), "ntk_train",
          f"a matrix with eigenvalue {float(lam[0]):.3g} < 0", "a positive semi-definite kernel matrix")
    lam = lam.clamp_min(0.0)
    rate = lr / n_train
    pos = lam > 0
    safe = torch.where(pos, lam, torch.ones_like(lam))
    if steps is None:
        g = torch.where(pos, -torch.expm1(-rate * t * safe) / safe, torch.full_like(lam, rate * t))
    else:
        u = rate * lam
        check(float(u.max()) < 2.0, "lr", lr,
              f"< 2|D|/λ_max(Θ) = {2 * n_train / float(lam[-1]):.6g} (discrete gradient descent diverges beyond)")
        low = u < 0.5  # 1 − (1 − u)^k = −expm1(k log1p(−u)) keeps its digits for small u
        power = torch.where(low, -torch.expm1(steps * torch.log1p(-u.clamp(max=0.5))), 1 - (1 - u) ** steps)
        g = torch.where(pos, power / safe, torch.full_like(lam, rate * steps))
    cond = float(lam[-1] / lam[0]) if float(lam[0]) > 0 else math.inf
    return _Eigen(vecs, g, cond)


# ----------------------------------------------------------------------------------------------------
# covariance of φ_0(x) − A φ_0(X) under φ_0 ~ GP(0, K)
# ----------------------------------------------------------------------------------------------------

def _flow_covariance(a: Tensor, k_train: Tensor, k_cross: Tensor, k_test: Tensor) -> tuple[Optional[Tensor], Tensor]:
    """Σ = K_tt + A K_XX Aᵀ − A K_Xt − (A K_Xt)ᵀ; k_test (n_t, n_t) → (cov, diag), k_test (n_t,) → (None, diag)."""
    ak = a @ k_train
    if k_test.ndim == 1:
        var = k_test + (ak * a).sum(1) - 2 * (a * k_cross).sum(1)
        return None, var
    c = a @ k_cross.T
    cov = k_test + ak @ a.T - c - c.T
    cov = 0.5 * (cov + cov.T)
    return cov, cov.diagonal().clone()


def _test_kernel(k_test, n_test: int, name: str) -> Optional[Tensor]:
    if k_test is None:
        return None
    t = k_test.detach().to(torch.float64) if isinstance(k_test, Tensor) else torch.as_tensor(
        np.asarray(k_test, dtype=np.float64))
    check(tuple(t.shape) in ((n_test, n_test), (n_test,)), f"{name}.shape", tuple(t.shape),
          f"({n_test}, {n_test}), or ({n_test},) for the variances only")
    check(bool(torch.isfinite(t).all()), name, "non-finite values (NaN or inf)", "finite numbers")
    return t


def _shape_mean(mean: Tensor, y: Tensor) -> Tensor:
    return mean[:, 0] if y.ndim == 1 else mean


# ----------------------------------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------------------------------

def nngp_posterior(k_train, k_cross, k_test, y_train, *, noise: float = 0.0,
                   jitter: Optional[float] = None) -> Prediction:
    """Gaussian-process posterior of the NNGP: K(x,X)(K + σ²I)^{-1}Y and K(x,x') − K(x,X)(K + σ²I)^{-1}K(X,x').

    Parameters
    ----------
    k_train : (n, n) prior kernel K(X, X) at the training inputs.
    k_cross : (n_test, n) K(x, X).
    k_test : (n_test, n_test) K(x, x'), or (n_test,) its diagonal (then only ``var``), or None (mean only).
    y_train : (n,) or (n, d_out) targets.
    noise : observation-noise variance σ² ≥ 0 added to K(X, X).
    jitter : None → smallest of 0, 1e-12 … 1e-6 × mean diagonal giving a condition number ≤ MAX_CONDITION;
        a float → exactly that absolute ridge. The ridge used is ``Prediction.jitter``.

    References: Rasmussen & Williams (2006) Alg. 2.1; Lee et al. arXiv:1711.00165 eq. (6).
    """
    k = _square(k_train, "k_train")
    n = k.shape[0]
    kx = _matrix(k_cross, "k_cross")
    check(kx.shape[1] == n, "k_cross.shape", tuple(kx.shape), f"(n_test, {n}) to match k_train")
    kt = _test_kernel(k_test, kx.shape[0], "k_test")
    y = _targets(y_train, n)
    noise = _nonneg(noise, "noise")
    if jitter is not None:
        _nonneg(jitter, "jitter")
    solver = _cholesky(k.clone(), "k_train", jitter, extra=noise)
    yy = y[:, None] if y.ndim == 1 else y
    mean = kx @ solver.apply(yy)
    cov = var = None
    if kt is not None:
        v = solver.half(kx.T)  # L^{-1} K(X, x)
        if kt.ndim == 1:
            var = kt - (v * v).sum(0)
        else:
            cov = kt - v.T @ v
            cov = 0.5 * (cov + cov.T)
            var = cov.diagonal().clone()
    return Prediction(_shape_mean(mean, y), cov, var, "nngp posterior", math.nan, None, math.nan,
                      solver.jitter, solver.condition_number)


def _flow_solver(theta: Tensor, n: int, *, t: Optional[float], steps: Optional[int], lr: float, ridge: float,
                 jitter: Optional[float], copy: bool = True):
    """The M = Θ^{-1}E_t of the flow (eigendecomposition), or (Θ + ridge)^{-1} at t = ∞ (Cholesky).

    copy=False lets the Cholesky path use ``theta``'s diagonal as scratch (restored exactly afterwards)."""
    if steps is None and math.isinf(t):
        return _cholesky(theta.clone() if copy else theta, "ntk_train", jitter, extra=ridge)
    check(ridge == 0.0, "ridge", ridge, "0 unless t = inf (the ridge is the t → ∞ limit of weight decay to θ_0)")
    return _flow_filter(theta, n, lr, t, steps)


def _check_time(t, steps, lr) -> tuple[Optional[float], Optional[int], float]:
    check(t is None or steps is None, "t/steps", (t, steps), "one of them (continuous time t or GD steps)")
    if steps is not None:
        check(isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) and steps >= 0, "steps", steps,
              "an integer >= 0")
        steps = int(steps)
    else:
        t = math.inf if t is None else t
        check(isinstance(t, (int, float)) and not isinstance(t, bool) and not math.isnan(t) and t >= 0, "t", t,
              "a number >= 0 (or inf)")
        t = float(t)
    check(isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0, "lr", lr,
          "a finite number > 0")
    return t, steps, float(lr)


def ntk_flow(ntk_train, ntk_cross, y_train, *, t: Optional[float] = None, steps: Optional[int] = None,
             lr: float = 1.0, nngp_train=None, nngp_cross=None, nngp_test=None, ridge: float = 0.0,
             jitter: Optional[float] = None) -> Prediction:
    """Ensemble mean μ_t and covariance Σ_t of a network trained by gradient flow with a frozen NTK.

        μ_t(x) = Θ(x,X) Θ^{-1} E_t Y,   E_t = I − exp(−ηΘt/|D|)   (steps k: E_k = I − (I − ηΘ/|D|)^k)
        Σ_t(x,x') = K(x,x') + A K(X,X) Aᵀ − A K(X,x') − K(x,X) Aᵀ,   A = Θ(x,X) Θ^{-1} E_t

    Parameters
    ----------
    ntk_train : (n, n) Θ(X, X); ntk_cross : (n_test, n) Θ(x, X).
    y_train : (n,) or (n, d_out).
    t : continuous training time ≥ 0 (default inf: kernel regression, μ_∞(x_α) = y_α); steps : discrete GD
        steps instead (stable iff lr < 2n/λ_max(Θ); else ConfigError). Give at most one.
    lr : η. |D| = n (the loss is (1/|D|) Σ_α ½|φ(x_α) − y_α|²).
    nngp_train (n, n), nngp_cross (n_test, n), nngp_test (n_test, n_test) or its diagonal (n_test,):
        the prior NNGP K of φ_0; all three give the covariance (else ``cov`` and ``var`` are None).
    ridge : only at t = ∞: solve with Θ + ridge·I (the converged linearized model with weight decay
        (ridge/2|D|)|θ − θ_0|²).
    jitter : as in :func:`nngp_posterior`, for the t = ∞ solve.

    References: Lee et al. arXiv:1902.06720 eqs. (9)–(16); PHYSICS.md §7.
    """
    t, steps, lr = _check_time(t, steps, lr)
    theta = _square(ntk_train, "ntk_train")
    n = theta.shape[0]
    tx = _matrix(ntk_cross, "ntk_cross")
    check(tx.shape[1] == n, "ntk_cross.shape", tuple(tx.shape), f"(n_test, {n}) to match ntk_train")
    y = _targets(y_train, n)
    ridge = _nonneg(ridge, "ridge")
    if jitter is not None:
        _nonneg(jitter, "jitter")
    given = [v is not None for v in (nngp_train, nngp_cross, nngp_test)]
    check(all(given) or not any(given), "nngp_train/nngp_cross/nngp_test", f"{sum(given)} of 3 given",
          "all three (for the covariance) or none")
    solver = _flow_solver(theta, n, t=t, steps=steps, lr=lr, ridge=ridge, jitter=jitter)
    yy = y[:, None] if y.ndim == 1 else y
    mean = tx @ solver.apply(yy)
    cov = var = None
    if all(given):
        k = _square(nngp_train, "nngp_train")
        check(k.shape[0] == n, "nngp_train.shape", tuple(k.shape), f"({n}, {n}) to match ntk_train")
        kx = _matrix(nngp_cross, "nngp_cross", tx.shape)
        kt = _test_kernel(nngp_test, tx.shape[0], "nngp_test")
        a = solver.apply(tx.T).T  # A = Θ(x,X) M (M symmetric)
        cov, var = _flow_covariance(a, k, kx, kt)
    return Prediction(_shape_mean(mean, y), cov, var, "ntk flow", math.nan if steps is not None else t, steps, lr,
                      solver.jitter, solver.condition_number)


def infinite_width_prediction(spec, x_train, y_train, x_test, *, t: Optional[float] = None,
                              steps: Optional[int] = None, lr: float = 1.0,
                              kind: Literal["ntk", "nngp"] = "ntk", noise: float = 0.0, cov: bool = True,
                              tile: Optional[int] = None, executor=None) -> Prediction:
    """Infinite-width prediction of ``spec``'s ensemble at ``x_test`` after training on (x_train, y_train).

    kind = "ntk": the frozen-NTK flow (:func:`ntk_flow`) with the spec's NTK-parameterization kernels Θ and
        K from :func:`nnft.theory.kernels` (whatever ``spec.parameterization`` says: this is the kernel of
        the same network trained in NTK parameterization); ``noise`` is a ridge, allowed only at t = ∞.
    kind = "nngp": at t = ∞ (default) the NNGP posterior (:func:`nngp_posterior`) with observation noise
        ``noise``; at finite t or steps, gradient flow of the readout layer alone (its kernel is K itself,
        Lee et al. arXiv:1902.06720 §2.3.1), i.e. :func:`ntk_flow` with Θ := K.
    cov : False → only the variances (``var``), O(n_test) memory instead of O(n_test²).
    tile, executor : compute the kernel matrices in tiles (:func:`nnft.dynamics.tiling.kernel_matrices`).
    """
    from ..theory.kernels import as_inputs
    from .tiling import kernel_matrices

    check(kind in ("ntk", "nngp"), "kind", kind, "'ntk' or 'nngp'")
    t, steps, lr = _check_time(t, steps, lr)
    noise = _nonneg(noise, "noise")
    xtr = as_inputs(x_train, spec.d_in, "x_train")
    xte = as_inputs(x_test, spec.d_in, "x_test")
    y = _targets(y_train, xtr.shape[0])
    # train block through the symmetric path: a rectangular call with coincident points loses digits on
    # the diagonal for kinked activations (arccos near ρ = 1), which the solve would amplify
    train = kernel_matrices(spec, xtr, ntk=(kind == "ntk"), tile=tile, executor=executor)
    cross = kernel_matrices(spec, xte, xtr, ntk=(kind == "ntk"), tile=tile, executor=executor)
    k_te = _test_diag_or_full(spec, xte, cov, tile, executor)
    if kind == "nngp" and steps is None and math.isinf(t):
        return nngp_posterior(train.nngp, cross.nngp, k_te, y, noise=noise)
    th_tr, th_x = (train.ntk, cross.ntk) if kind == "ntk" else (train.nngp, cross.nngp)
    return ntk_flow(th_tr, th_x, y, t=None if steps is not None else t, steps=steps, lr=lr,
                    nngp_train=train.nngp, nngp_cross=cross.nngp, nngp_test=k_te, ridge=noise)


def _test_diag_or_full(spec, xte: Tensor, cov: bool, tile, executor) -> Tensor:
    from .tiling import kernel_matrices

    if cov:
        return kernel_matrices(spec, xte, ntk=False, tile=tile, executor=executor).nngp
    from ..theory.kernels import kernels

    # the diagonal only: K(x, x) one point at a time would be slow; blocks of 256 keep memory O(256 n_test)
    out = torch.empty(xte.shape[0], dtype=torch.float64)
    for s in range(0, xte.shape[0], 256):
        blk = xte[s:s + 256]
        out[s:s + 256] = kernels(spec, blk).nngp.diagonal()
    return out

