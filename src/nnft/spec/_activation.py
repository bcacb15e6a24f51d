"""Activation functions with their closed-form Gaussian expectations ("dual kernels").

For (u, v) ~ N(0, [[a, c], [c, b]]) the dual kernel of an activation σ is
    k_σ(a, b, c) = E[σ(u) σ(v)],
and its derivative kernel is k_σ'(a, b, c) = E[σ'(u) σ'(v)] (used by the NTK recursion).
Closed forms (Cho & Saul, "Kernel methods for deep learning", NeurIPS 2009, arc-cosine kernels; Williams,
"Computing with infinite networks", NeurIPS 1996, arcsin; PHYSICS.md §3):

    relu:   sqrt(ab)/(2π) [sin θ + (π − θ) cos θ],  cos θ = c / sqrt(ab);   relu' = step: (π − θ)/(2π)
    erf:    (2/π) arcsin(2c / sqrt((1 + 2a)(1 + 2b)));   erf': (4/π) / sqrt((1 + 2a)(1 + 2b) − 4c²)
    cos:    e^{−(a+b)/2} cosh c;   sin: e^{−(a+b)/2} sinh c;   exp: e^{(a+b)/2 + c}
    gauss:  σ(z; q) = exp(z − q), q = Var z (the Gauss-net neuron):  e^{c − (a+b)/2}
    abs:    sqrt(ab)/π [2 sin θ + (π − 2θ) cos θ];   abs' = sign: (2/π) arcsin(cos θ)
    leaky (slope s): (1 + s²) J(θ) − 2s J(π − θ) with J the relu kernel;  derivative similar
    step:   (π − θ)/(2π)
    z^k:    (ab)^{k/2} Σ_j c_j² j! ρ^j  with z^k = Σ_j c_j He_j(z) (probabilists' Hermite), ρ = cos θ

Activations without a closed form (tanh, sigmoid, gelu, any torch callable given as "module:function")
fall back to Gauss–Hermite quadrature in :mod:`nnft.theory.gaussian`.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..errors import check, fail

__all__ = ["Activation", "KNOWN_ACTIVATIONS"]

Tensor = torch.Tensor
_INV_SQRT_PI_2 = 2.0 / math.sqrt(math.pi)


def _cos_theta(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """ρ = c / sqrt(ab), clipped to [−1, 1]; ρ := 1 where a or b vanishes (degenerate direction)."""
    ab = a * b
    safe = torch.where(ab > 0, ab, torch.ones_like(ab))
    return torch.where(ab > 0, c / torch.sqrt(safe), torch.ones_like(ab)).clamp(-1.0, 1.0)


def _arccos_j1(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """E[relu(u) relu(v)] = sqrt(ab)/(2π) [sin θ + (π − θ) cos θ] (Cho & Saul arc-cosine kernel, n = 1)."""
    rho = _cos_theta(a, b, c)
    theta = torch.arccos(rho)
    return torch.sqrt(a * b) / (2 * math.pi) * (torch.sqrt(1 - rho * rho) + (math.pi - theta) * rho)


def _arccos_j1_cross(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """E[relu(u) relu(−v)] = sqrt(ab)/(2π) [sin θ − θ cos θ]."""
    rho = _cos_theta(a, b, c)
    theta = torch.arccos(rho)
    return torch.sqrt(a * b) / (2 * math.pi) * (torch.sqrt(1 - rho * rho) - theta * rho)


def _degenerate(a: Tensor, b: Tensor, value: Tensor, mean_at_zero: float, mean: float) -> Tensor:
    """``value`` where a, b > 0; else E[g(u)] E[g(v)] for a g with a jump at 0.

    A zero-variance pre-activation is the constant 0, so the expectation factorizes and g(0) enters:
    E[g(z)] is ``mean`` for Var z > 0 and ``mean_at_zero`` = g(0) for Var z = 0. (The ρ := 1 convention of
    :func:`_cos_theta` is right for kernels that carry a factor sqrt(ab), not for these.)
    """
    def m(v: Tensor) -> Tensor:
        return torch.where(v > 0, torch.as_tensor(mean, dtype=value.dtype),
                           torch.as_tensor(mean_at_zero, dtype=value.dtype))

    return torch.where((a > 0) & (b > 0), value, m(a) * m(b))


def _step_dual(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """E[1(u>0) 1(v>0)] = (π − θ)/(2π); 0 if a or b vanishes (then u ≡ 0 or v ≡ 0 and 1(0 > 0) = 0)."""
    return _degenerate(a, b, (math.pi - torch.arccos(_cos_theta(a, b, c))) / (2 * math.pi), 0.0, 0.5)


def _relu_dual(a, b, c, p):
    return _arccos_j1(a, b, c)


def _relu_dual_prime(a, b, c, p):
    return _step_dual(a, b, c)


def _erf_dual(a, b, c, p):
    """(2/π) arcsin(2c / sqrt((1 + 2a)(1 + 2b)))."""
    arg = 2 * c / torch.sqrt((1 + 2 * a) * (1 + 2 * b))
    return (2 / math.pi) * torch.arcsin(arg.clamp(-1.0, 1.0))


def _erf_dual_prime(a, b, c, p):
    """(4/π) / sqrt((1 + 2a)(1 + 2b) − 4c²)."""
    return (4 / math.pi) / torch.sqrt((1 + 2 * a) * (1 + 2 * b) - 4 * c * c)


def _cos_dual(a, b, c, p):
    return torch.exp(-(a + b) / 2) * torch.cosh(c)


def _sin_dual(a, b, c, p):
    return torch.exp(-(a + b) / 2) * torch.sinh(c)


def _exp_dual(a, b, c, p):
    return torch.exp((a + b) / 2 + c)


def _gauss_dual(a, b, c, p):
    return torch.exp(c - (a + b) / 2)


def _abs_dual(a, b, c, p):
    """E[|u||v|] = 2 J(θ) + 2 J(π − θ) = sqrt(ab)/π [2 sin θ + (π − 2θ) cos θ]."""
    rho = _cos_theta(a, b, c)
    theta = torch.arccos(rho)
    return torch.sqrt(a * b) / math.pi * (2 * torch.sqrt(1 - rho * rho) + (math.pi - 2 * theta) * rho)


def _sign_dual(a, b, c, p):
    """E[sign u sign v] = (2/π) arcsin ρ; 0 if a or b vanishes (sign 0 = 0)."""
    return _degenerate(a, b, (2 / math.pi) * torch.arcsin(_cos_theta(a, b, c)), 0.0, 0.0)


def _leaky_dual(a, b, c, s):
    """σ(z) = relu(z) − s relu(−z):  E = (1 + s²) J(θ) − 2 s J_cross(θ)."""
    return (1 + s * s) * _arccos_j1(a, b, c) - 2 * s * _arccos_j1_cross(a, b, c)


def _leaky_dual_prime(a, b, c, s):
    """σ'(z) = 1(z>0) + s 1(z≤0):  E = (1 + s²)(π − θ)/(2π) + 2 s θ/(2π)  (σ'(0) = s if a or b vanishes)."""
    theta = torch.arccos(_cos_theta(a, b, c))
    return _degenerate(a, b, ((1 + s * s) * (math.pi - theta) + 2 * s * theta) / (2 * math.pi), s, (1 + s) / 2)


def _hermite_coeffs(k: int) -> list[tuple[int, float]]:
    """z^k = Σ_m k!/(m! 2^m (k−2m)!) He_{k−2m}(z)."""
    return [(k - 2 * m, math.factorial(k) / (math.factorial(m) * 2**m * math.factorial(k - 2 * m)))
            for m in range(k // 2 + 1)]


def _monomial_dual(a, b, c, k):
    """E[u^k v^k] = (ab)^{k/2} Σ_j c_j² j! ρ^j (Mehler: E[He_i(ũ) He_j(ṽ)] = δ_ij i! ρ^i)."""
    k = int(k)
    rho = _cos_theta(a, b, c)
    total = torch.zeros_like(rho)
    for j, cj in _hermite_coeffs(k):
        total = total + cj * cj * math.factorial(j) * rho**j
    return (a * b) ** (k / 2) * total


def _monomial_dual_prime(a, b, c, k):
    k = int(k)
    if k == 1:
        return torch.ones_like(c)
    return k * k * _monomial_dual(a, b, c, k - 1)


@dataclass(frozen=True)
class _Rule:
    fn: Callable[[Tensor, float], Tensor]
    derivative: Optional[Callable[[Tensor, float], Tensor]]
    dual: Optional[Callable]
    dual_prime: Optional[Callable]
    smooth: bool  # analytic: Gauss–Hermite converges exponentially
    needs_param: bool = False


def _step(z, p):
    return (z > 0).to(z.dtype)


_RULES: dict[str, _Rule] = {
    "relu": _Rule(lambda z, p: torch.relu(z), lambda z, p: (z > 0).to(z.dtype), _relu_dual, _relu_dual_prime, False),
    "erf": _Rule(lambda z, p: torch.erf(z), lambda z, p: _INV_SQRT_PI_2 * torch.exp(-z * z),
                 _erf_dual, _erf_dual_prime, True),
    "tanh": _Rule(lambda z, p: torch.tanh(z), lambda z, p: 1 - torch.tanh(z) ** 2, None, None, True),
    "sigmoid": _Rule(lambda z, p: torch.sigmoid(z), lambda z, p: torch.sigmoid(z) * (1 - torch.sigmoid(z)),
                     None, None, True),
    "gelu": _Rule(lambda z, p: torch.nn.functional.gelu(z),
                  lambda z, p: 0.5 * (1 + torch.erf(z / math.sqrt(2))) + z * torch.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                  None, None, True),
    "sin": _Rule(lambda z, p: torch.sin(z), lambda z, p: torch.cos(z), _sin_dual, _cos_dual, True),
    "cos": _Rule(lambda z, p: torch.cos(z), lambda z, p: -torch.sin(z), _cos_dual, _sin_dual, True),
    "exp": _Rule(lambda z, p: torch.exp(z), lambda z, p: torch.exp(z), _exp_dual, _exp_dual, True),
    "gauss": _Rule(lambda z, p: torch.exp(z), lambda z, p: torch.exp(z), _gauss_dual, _gauss_dual, True),
    "abs": _Rule(lambda z, p: torch.abs(z), lambda z, p: torch.sign(z), _abs_dual, _sign_dual, False),
    "step": _Rule(_step, None, lambda a, b, c, p: _step_dual(a, b, c), None, False),
    "leaky_relu": _Rule(lambda z, p: torch.where(z > 0, z, p * z), lambda z, p: torch.where(z > 0, 1.0, p).to(z.dtype),
                        _leaky_dual, _leaky_dual_prime, False, needs_param=True),
    "linear": _Rule(lambda z, p: z, lambda z, p: torch.ones_like(z), lambda a, b, c, p: c,
                    lambda a, b, c, p: torch.ones_like(c), True),
    "monomial": _Rule(lambda z, p: z ** int(p), lambda z, p: int(p) * z ** (int(p) - 1),
                      _monomial_dual, _monomial_dual_prime, True, needs_param=True),
}

KNOWN_ACTIVATIONS: tuple[str, ...] = tuple(sorted(_RULES))
_DEFAULT_PARAM = {"leaky_relu": 0.01, "monomial": 2.0}


def _resolve_callable(path: str) -> Callable[[Tensor], Tensor]:
    module, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise fail("activation", path, f"one of {', '.join(KNOWN_ACTIVATIONS)} or an importable "
                   f"'module:function' torch callable ({type(exc).__name__})") from None
    check(callable(obj), "activation", path, "a callable")
    return obj


@dataclass(frozen=True)
class Activation:
    """A pointwise nonlinearity σ, with closed-form Gaussian expectations where they exist.

    Parameters
    ----------
    name : one of :data:`KNOWN_ACTIVATIONS`, or ``"module:function"`` naming any torch callable
        (derivatives then come from autograd and expectations from quadrature).
    param : the slope of ``leaky_relu`` (default 0.01) or the power of ``monomial`` (default 2).

    ``gauss`` is the Gauss-net neuron of arXiv:2008.08601 in the normalisation of PHYSICS.md §2:
    σ(z; q) = exp(z − q) with q = Var z, so that E[σ(u)σ(v)] = exp(c − (a + b)/2). It is the one
    activation that reads the pre-activation variance q (see :attr:`normalized`).

    Examples
    --------
    >>> Activation("erf").dual(torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1.0)).item()  # (2/π) asin(2/3)
    0.4645...
    """

    name: str
    param: Optional[float] = None

    def __post_init__(self) -> None:
        check(isinstance(self.name, str) and bool(self.name), "activation", self.name,
              f"one of {', '.join(KNOWN_ACTIVATIONS)} or 'module:function'")
        if self.name in _RULES:
            rule = _RULES[self.name]
            if rule.needs_param and self.param is None:
                object.__setattr__(self, "param", _DEFAULT_PARAM[self.name])
            if not rule.needs_param:
                check(self.param is None, f"activation {self.name!r}.param", self.param, "None (no parameter)")
            if self.name == "monomial":
                check(float(self.param).is_integer() and 1 <= self.param <= 8, "activation 'monomial'.param",
                      self.param, "an integer power 1..8")
            if self.name == "leaky_relu":
                check(math.isfinite(self.param), "activation 'leaky_relu'.param", self.param, "a finite slope")
        elif ":" in self.name:
            _resolve_callable(self.name)
        else:
            raise fail("activation", self.name, f"one of {', '.join(KNOWN_ACTIVATIONS)} or an importable "
                       "'module:function' torch callable")

    # -- evaluation -------------------------------------------------------------------------------
    @property
    def known(self) -> bool:
        return self.name in _RULES

    @property
    def normalized(self) -> bool:
        """True if σ depends on the pre-activation variance q (Gauss-net: σ(z; q) = exp(z − q))."""
        return self.name == "gauss"

    @property
    def smooth(self) -> bool:
        return _RULES[self.name].smooth if self.known else True

    def __call__(self, z: Tensor, q: Optional[Tensor] = None) -> Tensor:
        """σ(z); for ``gauss``, σ(z; q) = exp(z − q) with ``q`` broadcastable to ``z``."""
        if self.normalized:
            if q is None:
                raise fail("activation 'gauss' q", None, "the pre-activation variance (a tensor)")
            return torch.exp(z - q)
        if self.known:
            return _RULES[self.name].fn(z, self.param)
        return _resolve_callable(self.name)(z)

    @property
    def has_derivative(self) -> bool:
        return not self.known or _RULES[self.name].derivative is not None

    def derivative(self, z: Tensor, q: Optional[Tensor] = None) -> Tensor:
        """σ'(z) (for ``gauss``, ∂/∂z exp(z − q)); autograd for user callables."""
        if self.normalized:
            return self(z, q)
        if self.known:
            rule = _RULES[self.name]
            if rule.derivative is None:
                raise fail(f"activation {self.name!r}", "derivative", "an activation with a finite derivative "
                           "(step has a delta-function derivative; its NTK is undefined)")
            return rule.derivative(z, self.param)
        with torch.enable_grad():
            zz = z.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(self(zz).sum(), zz)
        return grad

    # -- Gaussian expectations --------------------------------------------------------------------
    def dual(self, a: Tensor, b: Tensor, c: Tensor) -> Optional[Tensor]:
        """Closed-form E[σ(u)σ(v)], (u, v) ~ N(0, [[a, c], [c, b]]); None if there is none."""
        if not self.known or _RULES[self.name].dual is None:
            return None
        return _RULES[self.name].dual(a, b, c, self.param)

    def dual_derivative(self, a: Tensor, b: Tensor, c: Tensor) -> Optional[Tensor]:
        """Closed-form E[σ'(u)σ'(v)]; None if there is none."""
        if not self.known or _RULES[self.name].dual_prime is None:
            return None
        return _RULES[self.name].dual_prime(a, b, c, self.param)

    def to_config(self) -> dict:
        return {"name": self.name} if self.param is None else {"name": self.name, "param": self.param}

    def __repr__(self) -> str:
        return f"Activation({self.name!r})" if self.param is None else f"Activation({self.name!r}, {self.param})"
