"""Dual kernels k(a, b, c) = E[σ(u)σ(v)] and k'(a, b, c) = E[σ'(u)σ'(v)], (u, v) ~ N(0, [[a, c], [c, b]]).

Oracle ladder (STYLE.md habit 11):
  1. a slow but obviously correct reference written here: nested adaptive ``scipy.integrate.quad`` over the
     bivariate Gaussian, with the activations re-typed from their textbook definitions in ``math``;
  2. the closed forms of :class:`nnft.spec.Activation` (PHYSICS.md §3) against 1;
  3. Gauss–Hermite quadrature (:func:`nnft.theory.gauss_hermite_pair`) against 2 and, where no closed form
     exists (tanh, sigmoid, gelu), against 1.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Optional

import pytest
import torch
from scipy import integrate

from nnft.spec import KNOWN_ACTIVATIONS, Activation
from nnft.theory import dual_kernel, gauss_hermite_pair

Scalar = Callable[[float], float]

# --------------------------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------------------------
_TRUNC = 12.0  # Gaussian tail beyond 12 sd has mass 2Φ(−12) ≈ 4e-33: invisible at the 1e-8 tolerance


def _normal_expectation(f: Scalar, mean: float, sd: float) -> float:
    """E[f(t)], t ~ N(mean, sd²), by adaptive quadrature on mean ± 12 sd, splitting at the kink t = 0."""
    if sd == 0.0:
        return f(mean)
    lo, hi = mean - _TRUNC * sd, mean + _TRUNC * sd
    points = [0.0] if lo < 0.0 < hi else None
    # QUADPACK warns ("roundoff error detected") when an integrand is ~0 or the requested 1e-10 sits at
    # double-precision round-off. That can only make the oracle *less* accurate, which would make a test
    # fail, never pass wrongly, so the warning is silenced here rather than turned into an error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        val, _ = integrate.quad(lambda t: math.exp(-0.5 * ((t - mean) / sd) ** 2) * f(t), lo, hi, points=points,
                                limit=1000, epsabs=0.0, epsrel=1e-10)
    return val / (sd * math.sqrt(2.0 * math.pi))


def oracle(f: Scalar, g: Scalar, a: float, b: float, c: float) -> float:
    """E[f(u) g(v)] = ∫ du N(u; 0, a) f(u) E[g(v) | u],  v | u ~ N(c u / a, b − c²/a)."""
    if a == 0.0:  # u ≡ 0
        return f(0.0) * _normal_expectation(g, 0.0, math.sqrt(b))
    cond_sd = math.sqrt(max(b - c * c / a, 0.0))
    return _normal_expectation(lambda u: f(u) * _normal_expectation(g, c / a * u, cond_sd), 0.0, math.sqrt(a))


# --------------------------------------------------------------------------------------------------------
# Reference activations, typed from their definitions (not from nnft). Each entry maps the pre-activation
# variance q to (σ(·; q), σ'(·; q) or None); only `gauss` reads q (σ(z; q) = exp(z − q), PHYSICS.md §2).
# --------------------------------------------------------------------------------------------------------
def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _step(z: float) -> float:
    return 1.0 if z > 0 else 0.0


def _sign(z: float) -> float:
    return 1.0 if z > 0 else (-1.0 if z < 0 else 0.0)


def _reference(name: str, param: Optional[float]) -> Callable[[float], tuple[Scalar, Optional[Scalar]]]:
    s, k = param, (None if param is None else int(param))
    table: dict[str, Callable[[float], tuple[Scalar, Optional[Scalar]]]] = {
        "relu": lambda q: (lambda z: max(z, 0.0), _step),
        "erf": lambda q: (math.erf, lambda z: 2.0 / math.sqrt(math.pi) * math.exp(-z * z)),
        "cos": lambda q: (math.cos, lambda z: -math.sin(z)),
        "sin": lambda q: (math.sin, math.cos),
        "exp": lambda q: (math.exp, math.exp),
        "gauss": lambda q: (lambda z: math.exp(z - q), lambda z: math.exp(z - q)),
        "abs": lambda q: (abs, _sign),
        "step": lambda q: (_step, None),
        # σ'(0) = s, as for torch's leaky_relu gradient
        "leaky_relu": lambda q: (lambda z: z if z > 0 else s * z, lambda z: 1.0 if z > 0 else s),
        "linear": lambda q: (lambda z: z, lambda z: 1.0),
        "monomial": lambda q: (lambda z: z**k, lambda z: k * z ** (k - 1)),
        "tanh": lambda q: (math.tanh, lambda z: 1.0 - math.tanh(z) ** 2),
        "sigmoid": lambda q: (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
        "gelu": lambda q: (lambda z: z * _phi(z),
                           lambda z: _phi(z) + z * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)),
    }
    return table[name]


def reference_dual(name: str, param: Optional[float], which: str, a: float, b: float, c: float) -> float:
    ref = _reference(name, param)
    pick = 0 if which == "value" else 1
    return oracle(ref(a)[pick], ref(b)[pick], a, b, c)


# --------------------------------------------------------------------------------------------------------
# Registry: every activation with a closed form, and every one without.
# --------------------------------------------------------------------------------------------------------
CLOSED = [("relu", None), ("erf", None), ("cos", None), ("sin", None), ("exp", None), ("gauss", None),
          ("abs", None), ("step", None), ("leaky_relu", 0.2), ("linear", None), ("monomial", 2.0),
          ("monomial", 3.0), ("monomial", 4.0)]
NO_DERIVATIVE = {"step"}  # a delta-function derivative: no finite E[σ'σ']
_IDS = [n if p is None else f"{n}-{p:g}" for n, p in CLOSED]
SMOOTH_CLOSED = ["erf", "cos", "sin", "exp", "gauss"]
NUMERICAL = ["tanh", "sigmoid", "gelu"]

_RHO = 0.999  # near-degenerate correlation
CASES = {
    "equal": (1.0, 1.0, 0.3),
    "unequal-neg": (0.5, 2.0, -0.7),
    "unequal-pos": (2.0, 0.7, 1.1),
    "rho+0.999": (1.0, 1.0, _RHO),
    "rho-0.999-unequal": (1.5, 0.6, -_RHO * math.sqrt(1.5 * 0.6)),
    "independent": (0.8, 1.3, 0.0),
}


def _t(*v: float) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(x, dtype=torch.float64) for x in v)


def _closed(act: Activation, which: str, a: float, b: float, c: float) -> float:
    fn = act.dual if which == "value" else act.dual_derivative
    out = fn(*_t(a, b, c))
    assert out is not None
    return float(out)


def _odd(name: str, param: Optional[float], which: str) -> bool:
    """σ (or σ') odd, so that E[σ(u)σ(v)] vanishes identically at c = 0."""
    odd_value = {"erf", "sin", "linear", "tanh"} | ({"monomial"} if param is not None and int(param) % 2 else set())
    odd_deriv = {"cos", "abs"} | ({"monomial"} if param is not None and int(param) % 2 == 0 else set())
    return name in (odd_value if which == "value" else odd_deriv)


def _assert_close(got: float, want: float, rtol: float) -> None:
    assert abs(got - want) <= rtol * abs(want), f"got {got!r}, want {want!r}, rel err {abs(got - want) / abs(want):.2e}"


def _assert_exact_zero(got: float) -> None:
    """At c = 0 an odd σ gives E[σ(u)σ(v)] = E[σ(u)] E[σ(v)] = 0 exactly (u → −u symmetry), so the symmetry
    is the oracle and a relative tolerance is meaningless. The absolute bound 1e-14 is far below the O(1)
    scale of the kernels and above float64 round-off of the formulas."""
    assert abs(got) < 1e-14, got


def test_registry_is_complete() -> None:
    """Every known activation is either tested against its closed form here or listed as numerical."""
    closed_names = {n for n, _ in CLOSED}
    one = torch.tensor(1.0, dtype=torch.float64)
    for name in KNOWN_ACTIVATIONS:
        act = Activation(name)
        has_closed = act.dual(one, one, one * 0.5) is not None
        assert has_closed == (name in closed_names), name
        assert has_closed != (name in NUMERICAL), name
        has_closed_prime = act.dual_derivative(one, one, one * 0.5) is not None
        assert has_closed_prime == (has_closed and name not in NO_DERIVATIVE), name


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("which", ["value", "derivative"])
@pytest.mark.parametrize("name,param", CLOSED, ids=_IDS)
def test_closed_form_matches_oracle(name: str, param: Optional[float], which: str, case: str) -> None:
    if which == "derivative" and name in NO_DERIVATIVE:
        assert Activation(name, param).dual_derivative(*_t(1.0, 1.0, 0.5)) is None
        return
    a, b, c = CASES[case]
    got = _closed(Activation(name, param), which, a, b, c)
    if c == 0.0 and _odd(name, param, which):
        return _assert_exact_zero(got)
    _assert_close(got, reference_dual(name, param, which, a, b, c), 1e-8)


@pytest.mark.parametrize("abc", [(1.0, 1.0, 1.0), (2.0, 0.5, 1.0), (2.0, 0.5, -1.0)], ids=["rho=1", "rho=1-unequal",
                                                                                          "rho=-1-unequal"])
@pytest.mark.parametrize("name,param", CLOSED, ids=_IDS)
def test_closed_form_at_perfect_correlation(name: str, param: Optional[float], abc: tuple) -> None:
    """|ρ| = 1 exactly: v = ±sqrt(b/a) u, the clipping of cos θ must not produce NaN or a wrong branch."""
    a, b, c = abc
    for which in ("value", "derivative"):
        if which == "derivative" and name in NO_DERIVATIVE:
            continue
        got = _closed(Activation(name, param), which, a, b, c)
        want = reference_dual(name, param, which, a, b, c)
        if want == 0.0:  # e.g. E[relu(u) relu(−u)] = 0 exactly
            assert abs(got) < 1e-14, (which, got)
        else:
            _assert_close(got, want, 1e-8)


@pytest.mark.parametrize("ab", [(0.0, 1.3), (1.3, 0.0), (0.0, 0.0)], ids=["a=0", "b=0", "a=b=0"])
@pytest.mark.parametrize("name,param", CLOSED, ids=_IDS)
def test_closed_form_with_zero_variance(name: str, param: Optional[float], ab: tuple) -> None:
    """A zero-variance pre-activation (no bias, input x = 0) is the constant 0: E = σ(0) E[σ(v)].

    For activations with a jump at 0 (step, relu', sign, leaky') this must use the value at 0, not the
    ρ → 1 limit."""
    a, b = ab
    for which in ("value", "derivative"):
        if which == "derivative" and name in NO_DERIVATIVE:
            continue
        got = _closed(Activation(name, param), which, a, b, 0.0)
        pick = 0 if which == "value" else 1
        f, g = _reference(name, param)(a)[pick], _reference(name, param)(b)[pick]
        # a constant is independent of everything: E = E[f(u)] E[g(v)], with the constant side known exactly
        # (evaluated first: when it is 0 the other factor need not be integrated)
        const, other, var = (f(0.0), g, b) if a == 0.0 else (g(0.0), f, a)
        want = const if var == 0.0 or const == 0.0 else const * _normal_expectation(other, 0.0, math.sqrt(var))
        if var == 0.0:
            want = f(0.0) * g(0.0)
        if want == 0.0:
            assert got == 0.0, (which, got)
        else:
            _assert_close(got, want, 1e-8)


def test_closed_forms_broadcast_elementwise() -> None:
    """dual(a, b, c) on tensors equals the entry-by-entry scalar evaluation (kernels call it on matrices)."""
    a = torch.tensor([[0.5], [1.0], [2.0]], dtype=torch.float64)
    b = torch.tensor([[0.7, 1.4]], dtype=torch.float64)
    c = torch.tensor([[0.1, -0.3], [0.2, 0.9], [-1.0, 1.5]], dtype=torch.float64)
    for name, param in CLOSED:
        act = Activation(name, param)
        for fn in (act.dual, act.dual_derivative):
            out = fn(a, b, c)
            if out is None:
                continue
            assert out.shape == (3, 2) and out.dtype == torch.float64
            for i in range(3):
                for j in range(2):
                    assert torch.equal(out[i, j], fn(a[i, 0], b[0, j], c[i, j])), (name, i, j)


# --------------------------------------------------------------------------------------------------------
# Gauss–Hermite
# --------------------------------------------------------------------------------------------------------
# Gauss–Hermite with n nodes converges exponentially for analytic σ, but the rate depends on how far the
# integrand's complex singularities (tanh, sigmoid: poles at z = iπ/2, iπ) or its growth along the imaginary
# axis (erf: e^{z²}) sit from the real axis in the scaled variable t = z/sqrt(2q). Large variances q and
# |ρ| → 1 pull them in. Measured at degree 48 (relative error, value / derivative): erf is at ~1e-15 for
# q ≤ 1, |ρ| ≤ 0.9, but 2e-10 / 6e-9 at ρ = 0.999 and 7e-6 / 6e-5 at (4, 4, 2); tanh reaches 1e-8 only for
# q ≲ 0.5 and is 1e-8 / 1e-7 at q = 1, 6e-7 / 9e-6 at ρ = −0.999, 7e-5 / 1e-3 at (4, 4, 2). The
# default-degree tests therefore use the well-resolved regime, and the hard cases are tested for
# convergence at higher degree.
WELL_RESOLVED = {"equal": (1.0, 1.0, 0.3), "unequal": (0.5, 0.8, -0.5), "independent": (0.3, 0.6, 0.0)}
HARD = {"unequal-pos": (2.0, 0.7, 1.1), "rho+0.999": (1.0, 1.0, _RHO),
        "rho-0.999-unequal": (1.5, 0.6, -_RHO * math.sqrt(1.5 * 0.6)), "large": (4.0, 4.0, 2.0)}


@pytest.mark.parametrize("case", list(WELL_RESOLVED) + list(HARD))
@pytest.mark.parametrize("which", ["value", "derivative"])
@pytest.mark.parametrize("name", SMOOTH_CLOSED)
def test_gauss_hermite_matches_closed_forms(name: str, which: str, case: str) -> None:
    """Default degree (48) to 1e-10 where resolved; erf's hard cases converge by degree 192 (to 1e-12)."""
    a, b, c = {**WELL_RESOLVED, **HARD}[case]
    act = Activation(name)
    want = _closed(act, which, a, b, c)
    hard_erf = name == "erf" and case in HARD
    degree = 192 if hard_erf else None
    kw = {} if degree is None else {"degree": degree}
    got = float(gauss_hermite_pair(act, *_t(a, b, c), which=which, **kw))
    if c == 0.0 and _odd(name, None, which):
        return _assert_exact_zero(got)
    _assert_close(got, want, 1e-12 if hard_erf else 1e-10)
    if hard_erf and case == "large":
        # and the default degree is genuinely not enough there: the convergence claim is not vacuous
        coarse = float(gauss_hermite_pair(act, *_t(a, b, c), which=which))
        assert abs(coarse - want) > 1e-8 * abs(want)


@pytest.mark.parametrize("case", ["small", "small-unequal", "small-rho+0.999", "independent"])
@pytest.mark.parametrize("which", ["value", "derivative"])
@pytest.mark.parametrize("name", NUMERICAL)
def test_gauss_hermite_degree_48_matches_oracle(name: str, which: str, case: str) -> None:
    """No closed form: GH at degree 48 against the oracle to 1e-8, at variances where 48 nodes suffice
    for tanh (q ≤ 0.5; see the comment above), and for sigmoid/gelu also at the larger CASES."""
    a, b, c = {"small": (0.5, 0.5, 0.2), "small-unequal": (0.3, 0.5, -0.25),
               "small-rho+0.999": (0.4, 0.4, 0.4 * _RHO), "independent": (0.4, 0.3, 0.0)}[case]
    got = float(gauss_hermite_pair(Activation(name), *_t(a, b, c), which=which, degree=48))
    if c == 0.0 and _odd(name, None, which):
        return _assert_exact_zero(got)
    _assert_close(got, reference_dual(name, None, which, a, b, c), 1e-8)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", ["sigmoid", "gelu"])
def test_gauss_hermite_degree_48_sigmoid_gelu_wide_range(name: str, case: str) -> None:
    a, b, c = CASES[case]
    for which in ("value", "derivative"):
        got = float(gauss_hermite_pair(Activation(name), *_t(a, b, c), which=which, degree=48))
        want = reference_dual(name, None, which, a, b, c)
        _assert_close(got, want, 1e-8)


@pytest.mark.parametrize("case", list(HARD))
def test_gauss_hermite_tanh_converges_with_degree(case: str) -> None:
    """tanh at larger variance: the error falls fast with the degree (exponential convergence) and reaches
    1e-9 by degree 300 even at q = 4."""
    a, b, c = HARD[case]
    act = Activation("tanh")
    for which in ("value", "derivative"):
        want = reference_dual("tanh", None, which, a, b, c)
        errs = [abs(float(gauss_hermite_pair(act, *_t(a, b, c), which=which, degree=n)) - want) / abs(want)
                for n in (48, 96, 300)]
        assert errs[2] < 1e-9, (which, errs)
        assert errs[1] < errs[0] / 20 and errs[2] < max(errs[1] / 20, 1e-13), (which, errs)


@pytest.mark.parametrize("name", NUMERICAL + ["gauss", "erf"])
def test_gauss_hermite_is_exactly_symmetric(name: str) -> None:
    """E[σ(u)σ(v)] is symmetric under (a, b) → (b, a); the quadrature must be too, to the last bit, or kernel
    matrices built from it are not symmetric (at q ~ 5 the rule's error, hence the asymmetry, was ~4e-4)."""
    gen = torch.Generator().manual_seed(0)
    a = 0.1 + 6 * torch.rand(200, generator=gen, dtype=torch.float64)
    b = 0.1 + 6 * torch.rand(200, generator=gen, dtype=torch.float64)
    c = (2 * torch.rand(200, generator=gen, dtype=torch.float64) - 1) * torch.sqrt(a * b)
    act = Activation(name)
    for which in ("value", "derivative"):
        assert torch.equal(gauss_hermite_pair(act, a, b, c, which=which), gauss_hermite_pair(act, b, a, c, which=which))


def test_dual_kernel_dispatch() -> None:
    """dual_kernel uses the closed form when there is one and GH otherwise; step has no derivative kernel."""
    a, b, c = _t(0.7, 1.2, 0.4)
    for name in ("relu", "erf", "abs"):
        act = Activation(name)
        assert torch.equal(dual_kernel(act, a, b, c), act.dual(a, b, c))
        assert torch.equal(dual_kernel(act, a, b, c, which="derivative"), act.dual_derivative(a, b, c))
    tanh = Activation("tanh")
    assert torch.equal(dual_kernel(tanh, a, b, c, degree=64), gauss_hermite_pair(tanh, a, b, c, degree=64))
    # a user callable goes through quadrature with autograd derivatives
    user = Activation("torch:tanh")
    for which in ("value", "derivative"):
        assert float(dual_kernel(user, a, b, c, which=which, degree=64)) == pytest.approx(
            float(gauss_hermite_pair(tanh, a, b, c, which=which, degree=64)), rel=1e-13)
    from nnft import ConfigError

    with pytest.raises(ConfigError, match="step"):
        dual_kernel(Activation("step"), a, b, c, which="derivative")
