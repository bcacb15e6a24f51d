"""Phases in hyperparameter space: the order/chaos diagram of deep MLPs in (σ_w², σ_b²).

Deep Gaussian MLP, standard convention (PHYSICS.md §2): W_ij ~ N(0, σ_w²/n), b_i ~ N(0, σ_b²) in every
layer. Two inputs of equal length give pre-activations with per-layer variance q^l and correlation c^l
(Poole et al. arXiv:1606.05340 eqs. 3–5; Schoenholz et al. arXiv:1611.01232 §2–3; PHYSICS.md §10):

    length map       q^{l+1} = Q(q^l) = σ_w² V(q^l) + σ_b²,            V(q) = ∫Dz σ(√q z)²
    fixed point      q* = Q(q*)   (the attracting one; Q'(q*) < 1)
    gradient factor  χ_1 = σ_w² D(q*),                                D(q) = ∫Dz σ'(√q z)²
    correlation map  c^{l+1} = C(c^l) = [σ_w² k(q*, c^l) + σ_b²] / q*,
                     k(q, c) = ∫Dz_1 Dz_2 σ(u_1) σ(u_2),  u_1 = √q z_1,  u_2 = √q (c z_1 + √(1 − c²) z_2)
    slope            χ_c = C'(c*) = σ_w² k'(q*, c*),                   k'(q, c) = ∫Dz_1 Dz_2 σ'(u_1) σ'(u_2)
    depth scales     ξ_q^{-1} = −log[χ_1 + σ_w² ∫Dz σ''(√q* z) σ(√q* z)] = −log Q'(q*)
                     ξ_c = −1 / log χ_c

(Dz is the standard Gaussian measure.) C(1) = 1 always and C'(1) = χ_1, so c* = 1 is the attracting fixed
point when χ_1 < 1 (ordered: inputs become perfectly correlated), and when χ_1 > 1 it repels and c^l flows
to c* < 1 (chaotic). χ_1 = 1 is the critical line, where ξ_c = ∞. Near it ξ_c ≈ 1/|χ_1 − 1| on both sides,
while ξ_q stays finite (arXiv:1611.01232 Fig. 1). The identities used are Price's theorem
∂k/∂c = q k'(q, c) and Stein's lemma dV/dq = D(q) + ∫Dz σ''σ, which make χ_c the derivative of C and
the bracket in ξ_q equal to Q'(q*).

Activations (``PHASE_ACTIVATIONS``):
  * erf — closed forms (Williams; PHYSICS.md §3): V = (2/π) asin(2q/(1+2q)), D = (4/π)/√(1+4q),
    ∫Dz σ''σ = −8q / (π (1+2q) √(1+4q)), k = (2/π) asin(2qc/(1+2q)), k' = (4/π)/√((1+2q)² − 4q²c²).
  * relu — closed forms (Cho–Saul): V = q/2, D = 1/2, k = q J(c), k' = (π − arccos c)/(2π),
    J(c) = [√(1−c²) + (π − arccos c) c]/(2π). σ'' = δ(z): ∫Dz δ(√q z) relu(√q z) = relu(0)/√(2πq) = 0,
    so ξ_q^{-1} = −log χ_1 exactly.
  * tanh — no closed form: the trapezoidal rule on z ∈ [−9, 9] (1-D), and in the rotated coordinates
    u_{1,2} = √q (√((1+c)/2) s ± √((1−c)/2) t) on [−9, 9]² (2-D), with step h ≤ 0.2/√q (1-D) and
    ≤ 0.3/√q (2-D). Hand-written because no library rule fits: Gauss–Hermite converges slowly for tanh at
    large q (poles at ±iπ/2; ~1e-5 at q = 8 with 160 nodes), while the trapezoidal rule is exponentially
    accurate for integrands analytic in a strip, error ~ exp(−π²/(√q h)) ≤ 1e-13 here (checked against
    scipy.integrate.quad in the tests). The node count is fixed per q-band, so a point's value never
    depends on the other points of a grid. In 2-D the addition theorem, with A = tanh²(√q a s),
    B = tanh²(√q b t), a, b = √((1 ± c)/2),
        tanh(u_1) tanh(u_2) = (A − B)/(1 − AB),   sech²(u_1) sech²(u_2) = (1 − A)²(1 − B)²/(1 − AB)²,
    turns the m² tanh evaluations into 2m (1 − AB = (1 − A) + A(1 − B) avoids cancellation); the
    integrand is even in s and in t, so only the quarter plane is summed. Supported for q ≤ 400
    (beyond, sech² underflows on the grid): tanh inputs need σ_w² + σ_b² ≤ 400 and q0 ≤ 400.

Degenerate cases are reported, never papered over (``PhasePoint.status``):
  * σ_b = 0 and Q'(0) ≤ 1 (tanh σ_w² ≤ 1, erf σ_w² ≤ π/4, relu σ_w² < 2): q* = 0 and the signal dies
    with depth scale ξ_q = −1/log Q'(0). At q → 0 the normalised correlation map no longer contracts
    (smooth σ: it becomes the identity, c* undefined → NaN; relu: the σ_w-independent arc-cosine map
    2J(c), c → 1 as a power law), so χ_c = 1 and ξ_c = ∞: correlations are not forgotten exponentially.
    Here χ_1 = Q'(0) still labels the phase (ordered, or critical at equality).
  * relu, σ_b = 0, σ_w² = 2: every q is a fixed point (q* = NaN, "marginal"); χ_1 = 1, critical.
  * relu, σ_w² > 2, or σ_w² = 2 with σ_b > 0: no fixed point, q^l → ∞ ("exploding", q* = ∞, ξ_q = NaN).
    Asymptotically the bias is negligible and c^l obeys c → 2J(c): χ_c = 1, ξ_c = ∞.
The critical line for relu is therefore the single point (σ_w², σ_b²) = (2, 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import optimize

from ..errors import check

__all__ = ["PHASE_ACTIVATIONS", "PhasePoint", "PhaseDiagram", "CorrelationPropagation", "length_map", "default_q0",
           "fixed_point_q", "phase_point", "phase_diagram", "critical_sigma_w2", "correlation_map",
           "correlation_propagation", "phase_spec", "pair_inputs", "MeasuredCorrelation", "measure_correlation",
           "DepthScaleFit", "fit_depth_scale"]

PHASE_ACTIVATIONS: tuple[str, ...] = ("tanh", "erf", "relu")
_SLOPE0 = {"tanh": 1.0, "erf": 4.0 / math.pi, "relu": 0.5}  # Q'(0)/σ_w² = σ'(0)² (relu: E[step²] = 1/2)
_HALF_WIDTH = 9.0  # trapezoid on [−9, 9]: the Gaussian tail beyond is < 1e-18
_NEWTON_MAX = 200


# ---------------------------------------------------------------------------------------------------------
# Gaussian expectations: closed forms (erf, relu) and the trapezoidal rule (tanh)
# ---------------------------------------------------------------------------------------------------------

def _tanh_derivs(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.tanh(u)
    s = 1.0 - t * t
    return t, s, -2.0 * t * s


def _tanh_sq(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tanh² x, sech² x), both to full relative precision (sech² = 4e/(1 + e)², e = exp(−2|x|))."""
    e = np.exp(-2 * np.abs(x))
    return ((1 - e) / (1 + e)) ** 2, 4 * e / (1 + e) ** 2


def _nodes(q: float, step0: float, scale: float) -> int:
    """Odd node count on [−9, 9] with step ≤ min(step0, scale/√q); bands double, so a point's rule
    depends only on its own q."""
    base = int(round(2 * _HALF_WIDTH / step0)) + 1
    need = scale / math.sqrt(max(q, 1e-300))
    k = math.ceil(math.log2(step0 / need)) if need < step0 else 0
    return (base - 1) * 2**k + 1


def _trapezoid(m: int) -> tuple[np.ndarray, np.ndarray]:
    z = np.linspace(-_HALF_WIDTH, _HALF_WIDTH, m)
    return z, (z[1] - z[0]) * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _banded(q: np.ndarray, step0: float, scale: float):
    """Yield (node count, index array) for the q-bands present in ``q``."""
    m = np.array([_nodes(float(v), step0, scale) for v in q.ravel()], dtype=np.int64)
    for band in np.unique(m):
        yield int(band), np.nonzero(m == band)[0]


def _single(name: str, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """V(q) = ∫Dz σ(√q z)², D(q) = ∫Dz σ'(√q z)², W(q) = ∫Dz σ''(√q z) σ(√q z); q ≥ 0, any shape."""
    q = np.asarray(q, dtype=np.float64)
    if name == "relu":
        return q / 2, np.full_like(q, 0.5), np.zeros_like(q)
    if name == "erf":
        r = np.sqrt(1 + 4 * q)
        return ((2 / math.pi) * np.arcsin(2 * q / (1 + 2 * q)), (4 / math.pi) / r,
                -8 * q / (math.pi * (1 + 2 * q) * r))
    flat = q.ravel()
    out = np.empty((3, flat.size))
    for m, idx in _banded(flat, 0.075, 0.2):
        z, w = _trapezoid(m)
        s, sp, spp = _tanh_derivs(np.sqrt(flat[idx])[:, None] * z[None, :])
        out[0, idx], out[1, idx], out[2, idx] = (s * s) @ w, (sp * sp) @ w, (spp * s) @ w
    return out[0].reshape(q.shape), out[1].reshape(q.shape), out[2].reshape(q.shape)


def _relu_j(c: np.ndarray) -> np.ndarray:
    """J(c) = E[relu(u1) relu(u2)] for unit variances: [√(1 − c²) + (π − arccos c) c]/(2π)."""
    c = np.clip(c, -1.0, 1.0)
    return (np.sqrt(1 - c * c) + (math.pi - np.arccos(c)) * c) / (2 * math.pi)


def _pair(name: str, q: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k(q, c) = E[σ(u1)σ(u2)] and k'(q, c) = E[σ'(u1)σ'(u2)], Cov(u1, u2) = q [[1, c], [c, 1]]."""
    q, c = np.broadcast_arrays(np.asarray(q, dtype=np.float64), np.clip(np.asarray(c, dtype=np.float64), -1, 1))
    if name == "relu":
        return q * _relu_j(c), (math.pi - np.arccos(c)) / (2 * math.pi)
    if name == "erf":
        s = 1 + 2 * q
        return ((2 / math.pi) * np.arcsin(np.clip(2 * q * c / s, -1, 1)),
                (4 / math.pi) / np.sqrt(s * s - 4 * q * q * c * c))
    qf, cf = q.ravel(), c.ravel()
    k, kp = np.empty(qf.size), np.empty(qf.size)
    for m, idx in _banded(qf, 0.15, 0.3):
        z, w = _trapezoid(m)
        z, w = z[m // 2:], np.concatenate([w[m // 2:m // 2 + 1], 2 * w[m // 2 + 1:]])  # even in s and in t
        ww = w[:, None] * w[None, :]
        block = max(1, 4_000_000 // (z.size * z.size))
        for s0 in range(0, idx.size, block):
            j = idx[s0:s0 + block]
            rq = np.sqrt(qf[j])[:, None]
            t2a, s2a = _tanh_sq(rq * np.sqrt((1 + cf[j]) / 2)[:, None] * z[None, :])
            t2b, s2b = _tanh_sq(rq * np.sqrt((1 - cf[j]) / 2)[:, None] * z[None, :])
            den = s2a[:, :, None] + t2a[:, :, None] * s2b[:, None, :]  # 1 − A B, without cancellation
            k[j] = np.einsum("nij,ij->n", (t2a[:, :, None] - t2b[:, None, :]) / den, ww)
            kp[j] = np.einsum("nij,ij->n", (s2a[:, :, None] * s2b[:, None, :] / den) ** 2, ww)
    return k.reshape(q.shape), kp.reshape(q.shape)


# ---------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------

def _activation_name(activation) -> str:
    name = getattr(activation, "name", activation)
    check(isinstance(name, str) and name in PHASE_ACTIVATIONS and getattr(activation, "param", None) is None,
          "activation", activation, ", ".join(PHASE_ACTIVATIONS))
    return name


_TANH_Q_MAX = 400.0


def _check_q_range(name: str, q, param: str) -> None:
    """tanh quadrature is supported for variances q ≤ 400 (module docstring)."""
    if name == "tanh":
        check(bool(np.all(np.asarray(q) <= _TANH_Q_MAX)), param, q,
              f"values with pre-activation variance <= {_TANH_Q_MAX:g} for tanh (q* <= sigma_w2 + sigma_b2)")


def _hyper(value, param: str, positive: bool) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.array(np.nan)
    ok = bool(np.all(np.isfinite(arr))) and bool(np.all(arr > 0) if positive else np.all(arr >= 0))
    check(ok and arr.size >= 1, param, value, "finite numbers > 0" if positive else "finite numbers >= 0")
    return arr


# ---------------------------------------------------------------------------------------------------------
# Length map and its fixed point
# ---------------------------------------------------------------------------------------------------------

def length_map(activation, q, sigma_w2, sigma_b2) -> np.ndarray:
    """Q(q) = σ_w² ∫Dz σ(√q z)² + σ_b² (arXiv:1606.05340 eq. 3), broadcast over all arguments."""
    name = _activation_name(activation)
    q = _hyper(q, "q", positive=False)
    _check_q_range(name, q, "q")
    return _hyper(sigma_w2, "sigma_w2", True) * _single(name, q)[0] + _hyper(sigma_b2, "sigma_b2", False)


def _fixed_point_q(name: str, sw: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """q* on arrays of equal shape: 0 (vanishing signal), NaN (relu marginal), inf (exploding) or > 0."""
    slope0 = sw * _SLOPE0[name]
    if name == "relu":
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(sw < 2, sb / (1 - sw / 2), np.inf)
        return np.where((sb == 0) & (sw == 2), np.nan, np.where(sb == 0, np.where(sw < 2, 0.0, q), q))
    q = sb + sw  # F(q) = Q(q) − q ≤ 0 here (V ≤ 1); F is concave, so Newton descends monotonically to q*
    zero = (sb == 0) & (slope0 <= 1)
    active = ~zero
    for _ in range(_NEWTON_MAX):
        if not active.any():
            break
        v, d, w = _single(name, q[active])
        f = sw[active] * v + sb[active] - q[active]
        fp = sw[active] * (d + w) - 1.0
        step = np.where(fp < 0, f / np.where(fp < 0, fp, -1.0), -q[active] / 2)  # fp ≥ 0 only near q = 0
        old = q[active]
        new = np.clip(old - step, 0.0, old)  # monotone from above: a non-decrease is the rounding floor
        done = (old - new) <= 1e-15 * (1 + new)
        q[active] = new
        idx = np.nonzero(active)[0]
        active[idx[done]] = False
    return np.where(zero, 0.0, q)


def fixed_point_q(activation, sigma_w2, sigma_b2) -> np.ndarray:
    """The attracting fixed point q* of Q (module docstring; arXiv:1606.05340 eq. 4), broadcast.

    Returns 0 where the signal vanishes (σ_b = 0, Q'(0) ≤ 1), ∞ where q^l grows without bound (relu,
    σ_w² > 2 or σ_w² = 2 with σ_b > 0) and NaN where every q is fixed (relu, σ_w² = 2, σ_b = 0).

    >>> float(fixed_point_q("relu", 1.0, 0.5))     # σ_b² / (1 − σ_w²/2)
    1.0
    """
    name = _activation_name(activation)
    sw, sb = np.broadcast_arrays(_hyper(sigma_w2, "sigma_w2", True), _hyper(sigma_b2, "sigma_b2", False))
    _check_q_range(name, sw + sb, "sigma_w2 + sigma_b2")
    flat = _fixed_point_q(name, sw.astype(np.float64).ravel().copy(), sb.astype(np.float64).ravel().copy())
    return flat.reshape(sw.shape)


# ---------------------------------------------------------------------------------------------------------
# Correlation map and its fixed point
# ---------------------------------------------------------------------------------------------------------

def correlation_map(activation, c, q, sigma_w2, sigma_b2) -> tuple[np.ndarray, np.ndarray]:
    """(C(c), C'(c)) at variance q: C = [σ_w² k(q, c) + σ_b²]/Q(q) and C' = σ_w² q k'(q, c)/Q(q).

    At q = q* this is Poole's map (arXiv:1606.05340 eq. 5) and its slope χ_c; for q ≠ q* it is one step
    of the exact equal-norm kernel recursion (the new variance is Q(q)).
    """
    name = _activation_name(activation)
    c = np.asarray(c, dtype=np.float64)
    check(bool(np.all(np.abs(c) <= 1)), "c", c, "correlations in [-1, 1]")
    q, sw, sb = (_hyper(v, p, pos) for v, p, pos in ((q, "q", True), (sigma_w2, "sigma_w2", True),
                                                       (sigma_b2, "sigma_b2", False)))
    _check_q_range(name, q, "q")
    k, kp = _pair(name, *np.broadcast_arrays(q, c))
    qn = sw * _single(name, q)[0] + sb
    return (sw * k + sb) / qn, sw * q * kp / qn


def _fixed_point_c(name: str, sw, sb, q) -> tuple[np.ndarray, np.ndarray]:
    """(c*, χ_c = C'(c*)) for points with a finite q* > 0 and χ_1 > 1, by Newton on g(c) = C(c) − c from
    c = 0: C is a power series in c with non-negative coefficients (Mehler), so g is convex on [0, 1] with
    g(0) ≥ 0 and the iterates rise monotonically to the root c* < 1."""
    c = np.zeros_like(q)
    active = np.ones(q.shape, dtype=bool)
    for _ in range(_NEWTON_MAX):
        if not active.any():
            break
        k, kp = _pair(name, q[active], c[active])
        g = (sw[active] * k + sb[active]) / q[active] - c[active]
        gp = sw[active] * kp - 1.0
        new = np.clip(c[active] - g / np.where(gp < 0, gp, -1e-300), c[active], 1.0)
        done = np.abs(new - c[active]) <= 1e-15
        c[active] = new
        idx = np.nonzero(active)[0]
        active[idx[done]] = False
    return c, sw * _pair(name, q, c)[1]


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhaseDiagram:
    """The phase diagram on a grid; every array has shape (len(sigma_b2), len(sigma_w2)).

    sigma_w2 : (W,) weight variances σ_w².   sigma_b2 : (B,) bias variances σ_b².
    q_star : q* (0 vanishing, ∞ exploding, NaN marginal; module docstring).
    chi_1 : σ_w² ∫Dz σ'(√q* z)² (for exploding relu: σ_w²/2, the per-layer growth of q).
    c_star, chi_c : attracting fixed point of the correlation map and the map's slope there.
    xi_q, xi_c : depth scales (∞ at marginal points; ξ_q NaN where q* = ∞).
    phase : "ordered" (χ_1 < 1), "critical" (|χ_1 − 1| ≤ ``critical_tol``), "chaotic" (χ_1 > 1) or
        "exploding" (no finite q*).
    critical_sigma_w2 : (B,) the critical line σ_w²(σ_b²) (NaN where there is none: relu with σ_b > 0).
    """

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    chi_1: np.ndarray
    c_star: np.ndarray
    chi_c: np.ndarray
    xi_q: np.ndarray
    xi_c: np.ndarray
    phase: np.ndarray
    critical_sigma_w2: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """Numeric arrays for a result file (phase as codes: ordered 0, critical 1, chaotic 2, exploding 3)."""
        codes = {"ordered": 0, "critical": 1, "chaotic": 2, "exploding": 3}
        out = {k: getattr(self, k) for k in ("sigma_w2", "sigma_b2", "q_star", "chi_1", "c_star", "chi_c",
                                             "xi_q", "xi_c", "critical_sigma_w2")}
        out["phase_code"] = np.vectorize(codes.__getitem__, otypes=[np.int64])(self.phase)
        return out


@dataclass(frozen=True)
class PhasePoint:
    """All quantities of the module docstring at one (σ_w², σ_b²), with a ``status`` sentence that says
    which case applies (stable q*, vanishing signal, marginal, exploding)."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    chi_1: float
    c_star: float
    chi_c: float
    xi_q: float
    xi_c: float
    phase: str
    status: str


def _evaluate(name: str, sw: np.ndarray, sb: np.ndarray, critical_tol: float) -> dict[str, np.ndarray]:
    """Everything on flat arrays of (σ_w², σ_b²)."""
    q = _fixed_point_q(name, sw, sb)
    finite = np.isfinite(q) & (q > 0)
    v, d, w = _single(name, np.where(finite, q, 1.0))
    chi1 = np.where(q == 0, sw * _SLOPE0[name], np.where(finite, sw * d, sw * _SLOPE0[name]))
    slope_q = np.where(finite, sw * (d + w), chi1)  # Q'(q*) (= Q'(0) at q* = 0; relu: always σ_w²/2)
    with np.errstate(divide="ignore"):
        xi_q = np.where(np.isinf(q), np.nan, np.where(slope_q >= 1, np.inf, -1 / np.log(slope_q)))
    chaotic = finite & (chi1 > 1 + critical_tol)
    c_star = np.where(finite | (name == "relu"), 1.0, np.nan)
    chi_c = np.where(finite, chi1, 1.0)
    if chaotic.any():
        c_star[chaotic], chi_c[chaotic] = _fixed_point_c(name, sw[chaotic], sb[chaotic], q[chaotic])
    with np.errstate(divide="ignore"):
        xi_c = np.where(chi_c >= 1, np.inf, -1 / np.log(np.clip(chi_c, 1e-300, 1)))
    phase = np.where(np.abs(chi1 - 1) <= critical_tol, "critical", np.where(chi1 < 1, "ordered", "chaotic"))
    phase = np.where(np.isinf(q), "exploding", phase).astype("<U9")
    return dict(q_star=q, chi_1=chi1, c_star=c_star, chi_c=chi_c, xi_q=xi_q, xi_c=xi_c, phase=phase)


def _status(name: str, q: float, sw: float, sb: float) -> str:
    if np.isnan(q):
        return "marginal: every q is a fixed point of Q (q^l = q^1); c^l → 1 as a power law"
    if np.isinf(q):
        how = "geometrically, by σ_w²/2 per layer" if sw > 2 else "linearly, by σ_b² per layer"
        return f"no fixed point: q^l grows without bound ({how}); c^l → 1 as a power law"
    if q == 0:
        tail = ("c^l → 1 as a power law (arc-cosine map)" if name == "relu"
                else "the correlation map becomes the identity, so c^l freezes (c* undefined)")
        return f"q* = 0: the signal vanishes with depth scale ξ_q; {tail}"
    return "stable fixed point q* > 0"


def phase_point(activation, sigma_w2: float, sigma_b2: float, *, critical_tol: float = 1e-9) -> PhasePoint:
    """q*, χ_1, c*, χ_c, ξ_q, ξ_c and the phase at one point (formulas: module docstring).

    >>> p = phase_point("relu", 2.0, 0.0)
    >>> p.phase, p.chi_1, p.xi_c
    ('critical', 1.0, inf)
    """
    name = _activation_name(activation)
    sw = float(_hyper(sigma_w2, "sigma_w2", True))
    sb = float(_hyper(sigma_b2, "sigma_b2", False))
    _check_q_range(name, sw + sb, "sigma_w2 + sigma_b2")
    r = _evaluate(name, np.array([sw]), np.array([sb]), critical_tol)
    q = float(r["q_star"][0])
    return PhasePoint(name, sw, sb, q, *(float(r[k][0]) for k in ("chi_1", "c_star", "chi_c", "xi_q", "xi_c")),
                      str(r["phase"][0]), _status(name, q, sw, sb))


def phase_diagram(activation, sigma_w2_grid, sigma_b2_grid, *, critical_tol: float = 1e-9) -> PhaseDiagram:
    """The phase diagram on the grid σ_w² × σ_b² (arXiv:1606.05340 Fig. 2; arXiv:1611.01232 Fig. 1).

    >>> d = phase_diagram("tanh", [0.5, 1.5, 3.0], [0.05])
    >>> d.phase[0].tolist()
    ['ordered', 'ordered', 'chaotic']
    """
    name = _activation_name(activation)
    w = _hyper(sigma_w2_grid, "sigma_w2_grid", True).ravel()
    b = _hyper(sigma_b2_grid, "sigma_b2_grid", False).ravel()
    sw, sb = np.meshgrid(w, b)
    _check_q_range(name, w.max() + b.max(), "sigma_w2_grid + sigma_b2_grid")
    r = _evaluate(name, sw.ravel().copy(), sb.ravel().copy(), critical_tol)
    r = {k: v.reshape(sw.shape) for k, v in r.items()}
    return PhaseDiagram(name, w, b, critical_sigma_w2=critical_sigma_w2(name, b), **r)


# ---------------------------------------------------------------------------------------------------------
# Critical line
# ---------------------------------------------------------------------------------------------------------

def _chi1_scalar(name: str, sw: float, sb: float) -> float:
    q = _fixed_point_q(name, np.array([sw]), np.array([sb]))
    return float(sw * _single(name, q)[1][0])


def critical_sigma_w2(activation, sigma_b2, *, xtol: float = 1e-13) -> np.ndarray:
    """The critical line: σ_w² with χ_1(σ_w², σ_b²) = 1, by Brent's method (scipy.optimize.brentq).

    σ_b = 0: σ_w² = 1/σ'(0)² exactly (tanh 1, erf π/4); relu: 2 at σ_b = 0 and NaN for σ_b > 0 (χ_1 =
    σ_w²/2 < 1 wherever q* is finite). For tanh/erf with σ_b > 0 the root is bracketed by
    [1/σ'(0)², 2^k/σ'(0)²] (χ_1 < 1 at the left end, since D(q) < D(0) for q > 0).

    >>> float(critical_sigma_w2("relu", 0.0))
    2.0
    """
    name = _activation_name(activation)
    b = _hyper(sigma_b2, "sigma_b2", False)
    out = np.empty(b.size)
    lo = 1.0 / _SLOPE0[name]
    for i, sb in enumerate(b.ravel()):
        if sb == 0 or name == "relu":
            out[i] = lo if sb == 0 else np.nan
            continue
        hi = 2 * lo
        while _chi1_scalar(name, hi, sb) <= 1:
            hi *= 2
            _check_q_range(name, hi + sb, "sigma_b2")
        out[i] = optimize.brentq(lambda s: _chi1_scalar(name, s, sb) - 1, lo, hi, xtol=xtol, rtol=1e-15)
    return out.reshape(b.shape)


# ---------------------------------------------------------------------------------------------------------
# Propagation of a pair of inputs through the layers
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CorrelationPropagation:
    """Infinite-width propagation of two equal-length inputs: layer l = 1..L.

    layers : (L,) 1..L.   q : (L,) q^l.   c : (L,) c^l (c^1 = c0).
    point : the ``PhasePoint`` (c*, χ_c, ξ_c) of (σ_w², σ_b²).   q0 : q^1.
    """

    layers: np.ndarray
    q: np.ndarray
    c: np.ndarray
    q0: float
    point: PhasePoint


def default_q0(point: PhasePoint) -> float:
    """q* where it is finite and > 0 (then q^l = q* in every layer: Poole's map exactly), else 1."""
    return point.q_star if np.isfinite(point.q_star) and point.q_star > 0 else 1.0


def correlation_propagation(activation, sigma_w2: float, sigma_b2: float, c0: float, depth: int, *,
                            q0: Optional[float] = None) -> CorrelationPropagation:
    """c^l for l = 1..L from the exact infinite-width recursion for two inputs of equal length:

        q^1 = q0,  c^1 = c0;   q^{l+1} = σ_w² V(q^l) + σ_b²,   c^{l+1} = [σ_w² k(q^l, c^l) + σ_b²]/q^{l+1}

    (PHYSICS.md §3 restricted to K(x,x) = K(x',x')). With the default q0 = q* it is Poole's correlation
    map c^{l+1} = C(c^l) (arXiv:1606.05340 eq. 5).

    >>> p = correlation_propagation("relu", 1.0, 0.5, 0.2, 3)
    >>> p.q.tolist(), round(float(p.c[1]), 6)     # c^2 = J(0.2) + 1/2 (q* = 1)
    ([1.0, 1.0, 1.0], 0.712349)
    """
    name = _activation_name(activation)
    point = phase_point(name, sigma_w2, sigma_b2)
    check(isinstance(depth, (int, np.integer)) and not isinstance(depth, bool) and 1 <= depth <= 10_000,
          "depth", depth, "an integer 1..10000")
    check(isinstance(c0, (int, float)) and math.isfinite(c0) and -1 <= c0 <= 1, "c0", c0, "a number in [-1, 1]")
    q0 = default_q0(point) if q0 is None else q0
    check(isinstance(q0, (int, float)) and math.isfinite(q0) and q0 > 0, "q0", q0, "a finite number > 0")
    _check_q_range(name, max(q0, sigma_w2 + sigma_b2), "q0")
    qs, cs = np.empty(depth), np.empty(depth)
    q, c = float(q0), float(c0)
    for l in range(depth):
        qs[l], cs[l] = q, c
        k, _ = _pair(name, np.array([q]), np.array([c]))
        q_next = sigma_w2 * float(_single(name, np.array([q]))[0][0]) + sigma_b2
        c = float(np.clip((sigma_w2 * float(k[0]) + sigma_b2) / q_next, -1.0, 1.0))
        q = q_next
    return CorrelationPropagation(np.arange(1, depth + 1), qs, cs, float(q0), point)


# ---------------------------------------------------------------------------------------------------------
# Measurement: the same propagation in sampled deep networks
# ---------------------------------------------------------------------------------------------------------

def phase_spec(activation, sigma_w2: float, sigma_b2: float, *, width: int, depth: int):
    """The MLP of this module: d_in = 2, ``depth`` hidden layers of ``width``, W ~ N(0, σ_w²/fan_in),
    b ~ N(0, σ_b²) (no bias if σ_b² = 0), d_out = 1 (:func:`nnft.mlp`)."""
    from ..spec import mlp

    name = _activation_name(activation)
    sw = float(_hyper(sigma_w2, "sigma_w2", True))
    sb = float(_hyper(sigma_b2, "sigma_b2", False))
    check(isinstance(depth, int) and depth >= 1, "depth", depth, "an integer >= 1")
    check(isinstance(width, int) and width >= 1, "width", width, "an integer >= 1")
    return mlp(2, [width] * depth, 1, activation=name, sigma_w=math.sqrt(sw), sigma_b=math.sqrt(sb),
               name=f"{name}-phase")


def _spec_constants(spec) -> tuple[str, float, float, int]:
    """(activation, σ_w², σ_b², width) of a spec with identical Gaussian fan-in hidden layers."""
    from ..spec import Architecture, Normal

    check(isinstance(spec, Architecture), "spec", spec, "an Architecture (e.g. nnft.dynamics.phases.phase_spec)")
    name = _activation_name(spec.activation)
    check(spec.amplitude is None and spec.d_in >= 2, "spec", str(spec), "d_in >= 2 and no first-layer amplitude")
    hidden = spec.layers[:-1]
    first = hidden[0]
    for i, layer in enumerate(hidden):
        same = (isinstance(layer.weight, Normal) and (layer.bias is None or isinstance(layer.bias, Normal))
                and layer.scaling == "fan_in" and layer.width == first.width
                and layer.weight.std == first.weight.std and layer.bias_var == first.bias_var)
        check(same, f"spec.layers[{i}]", layer.to_config(), "hidden layers identical to layer 0 with Normal "
              "weights (fan-in scaling) and Normal or no bias (the phase diagram assumes one σ_w², σ_b²)")
    # rounded to 12 decimals so that σ_w = √2 means σ_w² = 2 exactly (else 2 + 4e-16 reads as "exploding")
    return name, round(float(first.weight.std) ** 2, 12), round(first.bias_var, 12), first.width


def pair_inputs(q0: float, c0: float, sigma_w2: float, sigma_b2: float, d_in: int = 2) -> np.ndarray:
    """Two inputs (2, d_in) whose first-layer kernel K^(1) = σ_b² + σ_w² x·x'/d is q0 [[1, c0], [c0, 1]]:
    |x|² = |x'|² = d (q0 − σ_b²)/σ_w², cos∠(x, x') = (c0 q0 − σ_b²)/(q0 − σ_b²)."""
    check(q0 > sigma_b2 or (q0 == sigma_b2 and c0 == 1), "q0", q0,
          f"> sigma_b2 = {sigma_b2:g} (the first-layer variance is sigma_b2 + sigma_w2 |x|²/d)")
    cos = 1.0 if q0 == sigma_b2 else (c0 * q0 - sigma_b2) / (q0 - sigma_b2)
    check(-1 - 1e-12 <= cos <= 1 + 1e-12, "c0", c0,
          f"[{2 * sigma_b2 / q0 - 1:.6g}, 1] at q0 = {q0:.6g}, sigma_b2 = {sigma_b2:g} (the bias alone "
          "correlates the first layer)")
    cos = min(1.0, max(-1.0, cos))
    r = math.sqrt(d_in * max(q0 - sigma_b2, 0.0) / sigma_w2)
    x = np.zeros((2, d_in))
    x[0, 0], x[1, 0], x[1, 1] = r, r * cos, r * math.sqrt(1 - cos * cos)
    return x


def _sample_kernels(spec, x: np.ndarray, n: int, generator) -> np.ndarray:
    """Per network and layer, (n, L, 3): the estimates of (K11, K22, K12) described in MeasuredCorrelation.

    Layer-by-layer conditional sampling (DESIGN.md "Estimators"; :mod:`nnft.ensemble.conditional`):
    z^(l+1) | z^(l) ~ N(0, Σ_l) neuron by neuron, Σ_l = σ_b² + (σ_w²/n) σ(z^(l))ᵀ σ(z^(l)) (2 × 2).
    Written here rather than reusing ``sample_last_hidden`` because that returns only the last layer.
    The standard normals ξ are drawn in float32 (5× faster in torch); everything else is float64.
    """
    import torch

    from ..ensemble.conditional import psd_factor
    from ..ensemble.sampling import sample_networks

    first = sample_networks(spec, n, generator, dtype=torch.float64, layers=1)
    z = torch.matmul(first.weights[0], torch.as_tensor(x).T)  # (n, N, 2)
    if first.biases[0] is not None:
        z = z + first.biases[0][:, :, None]
    out = torch.empty((n, spec.depth, 3), dtype=torch.float64)
    out[:, 0] = torch.stack([(z[..., 0] ** 2).mean(1), (z[..., 1] ** 2).mean(1), (z[..., 0] * z[..., 1]).mean(1)], 1)
    for l in range(1, spec.depth):
        layer = spec.layers[l]
        h = spec.activation(z)
        sigma = torch.bmm(h.transpose(1, 2), h) * (layer.weight.std ** 2 / h.shape[1]) + layer.bias_var
        out[:, l, 0], out[:, l, 1], out[:, l, 2] = sigma[:, 0, 0], sigma[:, 1, 1], sigma[:, 0, 1]
        xi = torch.empty((n, layer.width, 2), dtype=torch.float32)  # float32 draws are 5x faster than float64
        xi.normal_(0.0, 1.0, generator=generator)
        z = torch.matmul(xi.to(torch.float64), psd_factor(sigma).transpose(1, 2))
    return out.numpy()


@dataclass(frozen=True)
class MeasuredCorrelation:
    """Measured c^l of a sampled ensemble beside its predictions, layer l = 1..L.

    Estimator: per layer, the kernel averaged over neurons and networks, K̄_ab^l, and
        c^l = K̄_12^l / sqrt(K̄_11^l K̄_22^l).
    Layer 1 averages the sampled first-layer pre-activations over neurons, (1/n) Σ_i z_i(x_a) z_i(x_b);
    layers l ≥ 2 use its conditional expectation given layer l − 1, Σ_{l−1} (Rao–Blackwell, DESIGN.md):
    both are unbiased for E[z^l(x_a) z^l(x_b)]. ``stderr`` is the delete-one-chunk jackknife
    (``c_jackknife`` holds the replicates, (n_chunks, L), for fits that need the layer-to-layer covariance).

    predicted : infinite-width c^l (:func:`correlation_propagation`).   q, q_stderr : measured (K̄_11 + K̄_22)/2.
    corrected : c^l with the O(1/N) correction of the mean kernel, K + K1/n (Roberts–Yaida–Hanin
        arXiv:2106.10165 ch. 4, via :func:`nnft.theory.deep.deep_correlators`), or None if not computed.
    z, z_corrected : (measured − prediction)/stderr.
    """

    layers: np.ndarray
    c: np.ndarray
    stderr: np.ndarray
    c_jackknife: np.ndarray
    q: np.ndarray
    q_stderr: np.ndarray
    predicted: np.ndarray
    predicted_q: np.ndarray
    corrected: Optional[np.ndarray]
    point: PhasePoint
    c0: float
    q0: float
    width: int
    n_networks: int
    seed: int

    @property
    def z(self) -> np.ndarray:
        return (self.c - self.predicted) / self.stderr

    @property
    def z_corrected(self) -> Optional[np.ndarray]:
        return None if self.corrected is None else (self.c - self.corrected) / self.stderr


def _jackknife(total: np.ndarray, parts: np.ndarray, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """fn(total), its delete-one jackknife error and the replicates fn(total − part_b)."""
    reps = fn(total[None] - parts)
    b = parts.shape[0]
    return fn(total), np.sqrt((b - 1) / b * ((reps - reps.mean(0)) ** 2).sum(0)), reps


def _corrected_c(spec, x: np.ndarray) -> np.ndarray:
    """c^l from K^l + K1^l/n_{l−1} (deep_correlators; quadrature degrees lowered: K1/n needs ~1e-6)."""
    from dataclasses import replace

    from ..spec import Layer
    from ..theory.deep import deep_correlators

    readout = spec.layers[-1]
    if readout.width != 1:
        spec = replace(spec, layers=spec.layers[:-1] + (Layer(width=1, weight=readout.weight, bias=readout.bias),))
    theory = deep_correlators(spec, x, order=2, pair_degree=96, degrees=(96, 64, 32, 32))
    out = []
    for lay in theory.layers[:spec.depth]:
        k = lay.kernel.numpy() + (lay.kernel_correction.numpy() / lay.normalizer if lay.layer > 1 else 0.0)
        out.append(k[0, 1] / math.sqrt(k[0, 0] * k[1, 1]))
    return np.array(out)


def _prepare(spec, c0, n_networks, seed, chunk_size, q0):
    """Validate a measurement's arguments (before any work): (theory, inputs, width)."""
    name, sw, sb, width = _spec_constants(spec)
    check(isinstance(chunk_size, int) and chunk_size >= 1, "chunk_size", chunk_size, "an integer >= 1")
    check(isinstance(n_networks, int) and n_networks >= 2 * chunk_size and n_networks % chunk_size == 0,
          "n_networks", n_networks, f"a multiple of chunk_size = {chunk_size}, at least 2 chunks")
    check(isinstance(seed, int) and seed >= 0, "seed", seed, "an integer >= 0")
    theory = correlation_propagation(name, sw, sb, c0, spec.depth, q0=q0)
    return theory, pair_inputs(theory.q0, c0, sw, sb, spec.d_in), width


def measure_correlation(spec, c0: float, *, n_networks: int, seed: int, chunk_size: int = 50,
                        q0: Optional[float] = None, finite_width: bool = True,
                        progress=None) -> MeasuredCorrelation:
    """Propagate two inputs with first-layer correlation c0 (variance q0, default q*) through
    ``n_networks`` sampled networks of ``spec`` and measure c^l at every hidden layer.

    Chunk k of ``chunk_size`` networks draws from ``nnft.ensemble.chunk_generator(seed, k)``, so the
    result does not depend on how the work is split. ``progress(done, total)`` is called per chunk.
    ``finite_width`` adds the O(1/N) prediction (a few seconds for tanh/erf at depth ~30).
    """
    from ..ensemble.sampling import chunk_generator

    theory, x, width = _prepare(spec, c0, n_networks, seed, chunk_size, q0)
    n_chunks = n_networks // chunk_size
    parts = np.empty((n_chunks, spec.depth, 4))  # per chunk: Σ K11, Σ K22, Σ K12, number of networks
    parts[..., 3] = chunk_size
    for k in range(n_chunks):
        parts[k, :, :3] = _sample_kernels(spec, x, chunk_size, chunk_generator(seed, k)).sum(0)
        if progress is not None:
            progress((k + 1) * chunk_size, n_networks)
    total = parts.sum(0)
    c, err, reps = _jackknife(total, parts, lambda s: s[..., 2] / np.sqrt(s[..., 0] * s[..., 1]))
    q, q_err, _ = _jackknife(total, parts, lambda s: (s[..., 0] + s[..., 1]) / (2 * s[..., 3]))
    corrected = _corrected_c(spec, x) if finite_width else None
    return MeasuredCorrelation(theory.layers, c, err, reps, q, q_err, theory.c, theory.q, corrected,
                               theory.point, float(c0), theory.q0, width, n_networks, seed)


@dataclass(frozen=True)
class DepthScaleFit:
    """Exponential decay |c^l − c*| ∝ exp(−l/ξ) fitted on the layers ``window`` = (first, last).

    rate, rate_stderr : 1/ξ from the measured c^l (least-squares slope of −log|c^l − c*| on l) and its
        delete-one-chunk jackknife error, which carries the layer-to-layer correlation.
    rate_theory : the same fit to the predicted curve (O(1/N)-corrected where available), same layers.
    rate_c : the asymptotic rate 1/ξ_c = −log χ_c.
    The comparison is made on the rate, which is linear in the data (its jackknife z is ~N(0, 1) in
    repeated runs); ξ = 1/rate is skewed when the rate is poorly resolved (chaotic phase).
    """

    rate: float
    rate_stderr: float
    rate_theory: float
    rate_c: float
    window: tuple[int, int]
    n_layers: int

    @property
    def xi(self) -> float:
        return 1 / self.rate

    @property
    def xi_stderr(self) -> float:
        return self.rate_stderr / self.rate ** 2

    @property
    def xi_theory(self) -> float:
        return 1 / self.rate_theory

    @property
    def xi_c(self) -> float:
        return 1 / self.rate_c

    @property
    def z(self) -> float:
        return (self.rate - self.rate_theory) / self.rate_stderr


def _slope(layers: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of y (..., n) on layers (n,)."""
    lc = layers - layers.mean()
    return ((y - y.mean(-1, keepdims=True)) * lc).sum(-1) / (lc * lc).sum()


def fit_depth_scale(meas: MeasuredCorrelation, *, rate_tol: float = 0.05,
                    min_sigma: float = 5.0) -> Optional[DepthScaleFit]:
    """Fit ξ to the measured decay of |c^l − c*|, on the layers where the prediction is already
    exponential (its local rate log(Δ_l/Δ_{l+1}) is within ``rate_tol`` of 1/ξ_c), the measured Δ_l
    exceeds ``min_sigma`` standard errors and the O(1/N) shift of the prediction is below 10 % of Δ_l
    (where it was computed). None where ξ_c = ∞ or fewer than 3 layers qualify.
    """
    point = meas.point
    if not (np.isfinite(point.xi_c) and np.isfinite(point.c_star)):
        return None
    d_pred = np.abs(meas.predicted - point.c_star)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.log(d_pred[:-1] / d_pred[1:])
    ok = np.zeros(meas.layers.size, dtype=bool)
    ok[:-1] = np.abs(rate * point.xi_c - 1) <= rate_tol
    d_meas = np.abs(meas.c - point.c_star)
    ok &= d_meas >= min_sigma * meas.stderr
    if meas.corrected is not None:  # finite width moves c* by O(1/N): stay where that is < 10 % of Δ
        ok &= np.abs(meas.corrected - meas.predicted) <= 0.1 * d_pred
    if ok.sum() < 3:
        return None
    layers = meas.layers[ok].astype(np.float64)
    s = _slope(layers, np.log(d_meas[ok]))
    reps = _slope(layers, np.log(np.abs(meas.c_jackknife[:, ok] - point.c_star)))
    b = reps.shape[0]
    s_err = math.sqrt((b - 1) / b * float(((reps - reps.mean()) ** 2).sum()))
    ref = meas.corrected if meas.corrected is not None else meas.predicted
    s_th = _slope(layers, np.log(np.abs(ref[ok] - point.c_star)))
    return DepthScaleFit(float(-s), s_err, float(-s_th), 1 / point.xi_c, (int(layers[0]), int(layers[-1])),
                         int(ok.sum()))
