"""Parameterizations: where the width scaling of a layer lives (Yang & Hu, arXiv:2011.14522; μP practice,
Tensor Programs V, arXiv:2203.03466). PHYSICS.md §8.

Layer l = 1..L+1 of an L-hidden-layer MLP (code index ``index = l − 1``: 0 is the input layer, ``n_layers − 1``
the readout) computes h^l = W^l a^{l−1} + B^l with an *effective* weight

    W^l = multiplier · w^l,      w^l_ij ~ N(0, init_std²)   (w^l is the trained, stored parameter)

and a per-layer learning rate ``lr · sgd_lr`` (SGD) or ``lr · adam_lr`` (Adam) on w^l. In Yang–Hu's abc form
the multiplier is n^{−a_l}, the init std n^{−b_l} (**b is a standard-deviation exponent**) and the SGD rate
η n^{−c}. :meth:`Parameterization.layer_scales` returns the four numbers of one layer as :class:`LayerScales`.

Width exponents of n, listed [input, hidden, readout] (PHYSICS.md §8 table; the effective columns are the
gauge-invariant content, Var(W) ∝ n^{−2(a+b)}, SGD LR on W ∝ n^{−(c+2a)}, Adam LR on W ∝ n^{−(e+a)}):

    ===========  ==================  ==========  ============  ==============  ===============  ======
    name         multiplier a        init b      Var(W) exp.   SGD LR on W     Adam LR on W     r
    ===========  ==================  ==========  ============  ==============  ===============  ======
    standard     0, 0, 0             0, ½, ½     0, −1, −1     0, 0, 0         0, 0, 0          −1 ⁽¹⁾
    ntk          0, ½, ½             0, 0, 0     0, −1, −1     0, −1, −1       0, −½, −½        ½
    mean_field   0, ½, 1  (c = −1)   0, 0, 0     0, −1, −2     +1, 0, −1       0, −1, −1        0
    mup          −½, 0, ½  (c = 0)   ½, ½, ½     0, −1, −2     +1, 0, −1       0, −1, −1        0
    ===========  ==================  ==========  ============  ==============  ===============  ======

⁽¹⁾ r for L ≥ 2 hidden layers; with L = 1, standard has r = 0 but is still unstable (2a_2 + c = 0 < 1: the
output blows up), and Yang–Hu's SP with c = 1 has r = 3/2. The other rows do not depend on L.

``standard`` is SP as used in practice (an O(1) learning rate; r = −1, unstable as n → ∞); Yang–Hu's SP with
c = 1 (LR ∝ 1/n) is ``abc(n_layers, c=1)``, a kernel-regime parameterization with r = ½. ``mean_field`` is
Yang–Hu's MFP for L = 1; for L ≥ 2 it is the μP class written with O(1) initialisation everywhere (the abc
symmetry shift s = ½ of μP), the natural deep extension (the naive deep MF with hidden multiplier 1/n is not
stable in the abc sense). mean_field and mup have the same effective exponents: they are one class.

Concrete numbers (σ = ``std``, the spec's σ_W; m = width / ``base_width``, with m_in for a fan-in that grows
with width and m_out for a fan-out that does; ``base_width=None`` means base width 1, i.e. m = n):

    standard  every layer: multiplier 1, init σ/√fan_in, SGD 1, Adam 1.
    ntk       every layer: multiplier σ/√fan_in, init 1, SGD 1, Adam 1.
    mup       practical form (default, no multipliers):
                input    1, σ/√fan_in,          SGD m_out,        Adam 1
                hidden   1, σ/√fan_in,          SGD m_out/m_in,   Adam 1/m_in
                readout  1, σ/√(fan_in·m_in),   SGD 1/m_in,       Adam 1/m_in
              multiplier (Yang–Hu) form: multipliers √m_out, 1, 1/√m_in and the same effective weights and
              rates (init σ/√(fan_in·m_out), σ/√fan_in, σ/√fan_in; SGD 1, m_out/m_in, 1;
              Adam 1/√m_out, 1/m_in, 1/√m_in).
    mean_field  input    σ/√fan_in,           1, SGD m_out, Adam 1
                hidden   σ/√fan_in,           1, SGD m_out, Adam 1/√m_in
                readout  σ/√(fan_in·m_in),    1, SGD m_in,  Adam 1

With ``base_width = n0``, μP coincides with ``standard`` at width n0 and mean_field with ``ntk`` at width n0
(mup's ``set_base_shapes`` convention). With ``base_width=None`` the practical μP numbers are PHYSICS.md's:
readout Var σ²/fan_in², SGD η·fan_out, η, η/fan_in; Adam η, η/fan_in, η/fan_in.

Gauge forms. ``form="practical"`` moves every multiplier into the initialisation and the learning rates,
``form="multiplier"`` uses the Yang–Hu multipliers above. The map (multiplier M, init S, SGD λ, Adam κ) →
(M', S·M/M', λ·M²/M'², κ·M/M') leaves the effective W, its SGD update (exactly) and its Adam update (exactly
for ε = 0, otherwise once ε is rescaled by M/M') unchanged — the abc symmetry (a, b, c) → (a+s, b−s, c−2s).
Each name has a natural form (mup: practical; ntk and mean_field: multiplier; standard: both coincide).

Biases follow the input column: a bias is a weight from a constant input 1, so its fan-in is O(1). Hidden-
and input-layer biases get the input layer's rule with fan_in = 1 and std = σ_b (standard: init σ_b, rates 1;
ntk: multiplier σ_b; mup: init σ_b, SGD m_out, Adam 1; mean_field: multiplier σ_b, SGD m_out, Adam 1; in the
multiplier form of mup the input multiplier √m_out). The readout bias has no width dimension (mup's
"fixed" parameters): factor 1 for both optimisers in every parameterization. See :meth:`bias_scales`.

All four give the same effective weight variance σ²/fan_in at initialisation on input and hidden layers, so
sampled correlators and the NNGP kernels of hidden layers are unchanged; mup and mean_field shrink the readout
variance by 1/m_in (the output → 0 at init as n → ∞, as a feature-learning limit must).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from ..errors import check

__all__ = ["Parameterization", "LayerScales", "ABC", "Stability", "STANDARD", "NTK", "MEAN_FIELD", "MUP",
           "PARAMETERIZATIONS"]

Name = Literal["standard", "ntk", "mean_field", "mup"]
Form = Literal["practical", "multiplier"]
Role = Literal["input", "hidden", "readout"]

PARAMETERIZATIONS: tuple[str, ...] = ("standard", "ntk", "mean_field", "mup")
_ALIASES = {"mf": "mean_field", "μP": "mup", "muP": "mup"}
_NATURAL_FORM = {"standard": "practical", "ntk": "multiplier", "mean_field": "multiplier", "mup": "practical"}
_WITH_BASE = ("mean_field", "mup")


# ======================================================================================================
# Per-layer numbers
# ======================================================================================================
@dataclass(frozen=True)
class LayerScales:
    """The width scaling of one layer's weight (or bias).

    multiplier : fixed forward factor M, effective weight W = M · w.
    init_std : standard deviation S of the stored parameter w at initialisation.
    sgd_lr : factor λ multiplying a base SGD learning rate for w.
    adam_lr : factor κ multiplying a base Adam learning rate for w.
    """

    multiplier: float
    init_std: float
    sgd_lr: float
    adam_lr: float

    @property
    def effective_std(self) -> float:
        """Std of the effective weight W = M w at init: M · S."""
        return self.multiplier * self.init_std

    @property
    def effective_sgd_lr(self) -> float:
        """SGD rate seen by W (dW = M dw, ∂L/∂w = M ∂L/∂W): M² · λ."""
        return self.multiplier ** 2 * self.sgd_lr

    @property
    def effective_adam_lr(self) -> float:
        """Adam rate seen by W (Adam's update is invariant to the gradient's scale): M · κ."""
        return self.multiplier * self.adam_lr

    def regauge(self, multiplier: float) -> "LayerScales":
        """The equivalent scales with forward multiplier M' (abc symmetry; see the module docstring)."""
        check(isinstance(multiplier, (int, float)) and math.isfinite(multiplier) and multiplier > 0,
              "LayerScales.regauge.multiplier", multiplier, "a finite number > 0")
        k = self.multiplier / multiplier
        return LayerScales(float(multiplier), self.init_std * k, self.sgd_lr * k * k, self.adam_lr * k)


# ======================================================================================================
# abc exponents, r, stability (Yang–Hu Def. 3.2, Thm 3.3 / 3.8; PHYSICS.md §8)
# ======================================================================================================
@dataclass(frozen=True)
class Stability:
    """Classification of an abc-parameterization (SGD) by Yang–Hu's dichotomy.

    r : feature updates per coordinate are Θ(n^{−r}).
    stable : every pre-activation, the output and their updates are O(1) as n → ∞.
    nontrivial : the output moves by Θ(1) during training.
    feature_learning : stable, nontrivial and r = 0.
    kernel_regime : stable, nontrivial and r > 0.
    violated : the stability / nontriviality conditions that fail, as text.
    """

    r: float
    stable: bool
    nontrivial: bool
    feature_learning: bool
    kernel_regime: bool
    violated: tuple[str, ...]

    @property
    def regime(self) -> str:
        if not self.stable:
            return "unstable"
        if not self.nontrivial:
            return "trivial"
        return "feature learning" if self.feature_learning else "kernel"


_TOL = 1e-12


@dataclass(frozen=True)
class ABC:
    """Yang–Hu abc exponents of an (L+1)-layer MLP: W^l = n^{−a_l} w^l, w^l ~ N(0, n^{−2 b_l}), SGD LR η n^{−c}
    (arXiv:2011.14522 §3).

    a, b : per layer l = 1..L+1 (tuple index l − 1).  c : one global SGD exponent.
    """

    a: tuple[float, ...]
    b: tuple[float, ...]
    c: float

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            v = getattr(self, name)
            check(isinstance(v, tuple) and len(v) >= 2 and all(isinstance(x, (int, float)) and math.isfinite(x)
                                                              for x in v),
                  f"ABC.{name}", v, "a tuple of >= 2 finite numbers (one per layer)")
        check(len(self.a) == len(self.b), "ABC.b", self.b, f"{len(self.a)} entries like ABC.a")
        check(isinstance(self.c, (int, float)) and math.isfinite(self.c), "ABC.c", self.c, "a finite number")

    @property
    def n_layers(self) -> int:
        return len(self.a)

    @property
    def r(self) -> float:
        """r = min(a_{L+1} + b_{L+1}, 2a_{L+1} + c) + c − 1 + min_{l=1..L} [2a_l + 1(l = 1)] (PHYSICS.md §8)."""
        a, b, c = self.a, self.b, self.c
        hidden = min(2 * a[l] + (1.0 if l == 0 else 0.0) for l in range(len(a) - 1))
        return min(a[-1] + b[-1], 2 * a[-1] + c) + c - 1 + hidden

    def shift(self, s: float) -> "ABC":
        """The equivalent parameterization (a_l + s, b_l − s, c − 2s): same SGD dynamics of W."""
        return ABC(tuple(x + s for x in self.a), tuple(x - s for x in self.b), self.c - 2 * s)

    def stability(self) -> Stability:
        """Yang–Hu Theorem 3.3 (stability, nontriviality) and 3.8 (dichotomy), as stated in PHYSICS.md §8."""
        a, b, c, r = self.a, self.b, self.c, self.r
        out = a[-1] + b[-1]
        conditions = [(abs(a[0] + b[0]) < _TOL, "a_1 + b_1 = 0"),
                      (all(abs(a[l] + b[l] - 0.5) < _TOL for l in range(1, len(a) - 1)),
                       "a_l + b_l = 1/2 for 2 <= l <= L"),
                      (out >= 0.5 - _TOL, "a_{L+1} + b_{L+1} >= 1/2"),
                      (r >= -_TOL, "r >= 0"),
                      (2 * a[-1] + c >= 1 - _TOL, "2 a_{L+1} + c >= 1"),
                      (out + r >= 1 - _TOL, "a_{L+1} + b_{L+1} + r >= 1")]
        violated = tuple(text for ok, text in conditions if not ok)
        stable = not violated
        nontrivial = abs(out + r - 1) < _TOL or abs(2 * a[-1] + c - 1) < _TOL
        if not nontrivial:
            violated += ("a_{L+1} + b_{L+1} + r = 1 or 2 a_{L+1} + c = 1 (nontriviality)",)
        return Stability(r=r, stable=stable, nontrivial=nontrivial,
                         feature_learning=stable and nontrivial and abs(r) < _TOL,
                         kernel_regime=stable and nontrivial and r > _TOL, violated=violated)

    def effective_exponents(self) -> tuple[tuple[float, float, float], ...]:
        """Per layer (exponent of Var(W), of the SGD LR on W): (−2(a_l + b_l), −(c + 2a_l)); third entry a_l."""
        return tuple((-2 * (x + y), -(self.c + 2 * x), x) for x, y in zip(self.a, self.b))


# ======================================================================================================
# The parameterization
# ======================================================================================================
def _role(index: int, n_layers: int) -> Role:
    return "input" if index == 0 else ("readout" if index == n_layers - 1 else "hidden")


def _positive_int(value: object, param: str) -> None:
    check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, param, value, "an integer >= 1")


def _positive_float(value: object, param: str) -> None:
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0,
          param, value, "a finite number > 0")


@dataclass(frozen=True)
class Parameterization:
    """A parameterization of MLP layers: SP, NTK, mean field or μP; see the module docstring for the table.

    name : ``"standard"``, ``"ntk"``, ``"mean_field"`` or ``"mup"`` (aliases ``"mf"``, ``"μP"``, ``"muP"``).
    form : ``"practical"`` (no forward multipliers) or ``"multiplier"`` (Yang–Hu multipliers); ``None`` takes
        the name's natural form (mup: practical; ntk, mean_field: multiplier; standard: both coincide).
        Every form of a name trains identically (same effective exponents and constants).
    base_width : the width n0 at which mup equals standard (mean_field equals ntk); m = width / n0. ``None``
        is n0 = 1 (pure powers of n). Only for mup and mean_field; standard and ntk have no width ratio.

    Examples
    --------
    >>> p = Parameterization("mup", base_width=64)
    >>> p.layer_scales(2, 3, 256, 1).init_std == 1 / (256 * 4) ** 0.5    # readout: σ/√(fan_in · m)
    True
    >>> Parameterization("mup").stability(3).regime
    'feature learning'
    """

    name: Name = "standard"
    form: Optional[Form] = field(default=None, kw_only=True)
    base_width: Optional[int] = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        name = _ALIASES.get(self.name, self.name) if isinstance(self.name, str) else self.name
        check(name in PARAMETERIZATIONS, "parameterization", self.name,
              "'standard', 'ntk', 'mean_field' (alias 'mf') or 'mup' (aliases 'μP', 'muP')")
        object.__setattr__(self, "name", name)
        check(self.form is None or self.form in ("practical", "multiplier"), "Parameterization.form", self.form,
              "None, 'practical' or 'multiplier'")
        form = _NATURAL_FORM[name] if self.form is None or name == "standard" else self.form
        object.__setattr__(self, "form", form)
        if self.base_width is not None:
            _positive_int(self.base_width, "Parameterization.base_width")
            check(name in _WITH_BASE, "Parameterization.base_width", self.base_width,
                  f"None for '{name}' (a base width only for 'mup' and 'mean_field')")

    def __str__(self) -> str:
        extra = [] if self.form == _NATURAL_FORM[self.name] else [f"form={self.form}"]
        extra += [] if self.base_width is None else [f"base_width={self.base_width}"]
        return self.name + (f"({', '.join(extra)})" if extra else "")

    # -- config ------------------------------------------------------------------------------------------
    def to_config(self) -> Union[str, dict]:
        """The name alone when form and base width are the defaults, else {name, form, base_width}."""
        if self.form == _NATURAL_FORM[self.name] and self.base_width is None:
            return self.name
        out: dict = {"name": self.name, "form": self.form}
        if self.base_width is not None:
            out["base_width"] = self.base_width
        return out

    @classmethod
    def from_config(cls, cfg: Union[str, dict]) -> "Parameterization":
        if isinstance(cfg, str):
            return cls(cfg)
        check(isinstance(cfg, dict) and "name" in cfg and not set(cfg) - {"name", "form", "base_width"},
              "parameterization", cfg, "a name or a table {name, form, base_width}")
        return cls(cfg["name"], form=cfg.get("form"), base_width=cfg.get("base_width"))

    # -- backwards-compatible scalar exponents -------------------------------------------------------------
    @property
    def multiplier_exponent(self) -> float:
        """Yang–Hu a of the hidden layers (2 ≤ l ≤ L); standard/ntk readouts share it. See :meth:`abc`."""
        return self.abc(3).a[1]

    @property
    def init_exponent(self) -> float:
        """Yang–Hu b (a standard-deviation exponent) of the hidden layers. See :meth:`abc`."""
        return self.abc(3).b[1]

    # -- exponents -----------------------------------------------------------------------------------------
    def abc(self, n_layers: int, *, c: Optional[float] = None) -> ABC:
        """Yang–Hu representative (a_l, b_l, c) for ``n_layers`` = L + 1 layers (table in the module docstring).

        ``c`` overrides the global SGD exponent (e.g. ``c=1`` for Yang–Hu's kernel-regime SP). The forms of a
        name are gauge copies of one class; this returns the class's Yang–Hu representative.
        """
        _positive_int(n_layers, "n_layers")
        check(n_layers >= 2, "n_layers", n_layers, "an integer >= 2 (at least one hidden layer)")
        hid = n_layers - 2
        table = {"standard": ((0.0,) + (0.0,) * hid + (0.0,), (0.0,) + (0.5,) * hid + (0.5,), 0.0),
                 "ntk": ((0.0,) + (0.5,) * hid + (0.5,), (0.0,) * n_layers, 0.0),
                 "mean_field": ((0.0,) + (0.5,) * hid + (1.0,), (0.0,) * n_layers, -1.0),
                 "mup": ((-0.5,) + (0.0,) * hid + (0.5,), (0.5,) * n_layers, 0.0)}
        a, b, c0 = table[self.name]
        if c is not None:
            check(isinstance(c, (int, float)) and math.isfinite(c), "c", c, "a finite number")
        return ABC(a, b, c0 if c is None else float(c))

    def adam_exponents(self, n_layers: int) -> tuple[float, ...]:
        """Per layer, the exponent of n in the Adam LR seen by W (= −(e_l + a_l), gauge invariant)."""
        _positive_int(n_layers, "n_layers")
        check(n_layers >= 2, "n_layers", n_layers, "an integer >= 2 (at least one hidden layer)")
        hid = n_layers - 2
        inner = {"standard": 0.0, "ntk": -0.5}.get(self.name, -1.0)
        return (0.0,) + (inner,) * hid + (inner,)

    def stability(self, n_layers: int, *, c: Optional[float] = None) -> Stability:
        """Yang–Hu's classification of ``abc(n_layers, c=c)`` (SGD)."""
        return self.abc(n_layers, c=c).stability()

    @property
    def r(self) -> float:
        """r of the default abc form for L >= 2 hidden layers (the table's column). With L = 1 only standard
        differs (r = 0, unstable through 2a_2 + c = 0 < 1): use ``stability(2)``."""
        return self.abc(3).r

    # -- concrete per-layer numbers ----------------------------------------------------------------------
    @staticmethod
    def role(index: int, n_layers: int) -> Role:
        """'input' (index 0), 'readout' (index n_layers − 1) or 'hidden'."""
        return _role(index, n_layers)

    def _ratios(self, role: Role, fan_in: int, fan_out: int) -> tuple[float, float]:
        base = 1 if self.base_width is None else self.base_width
        m_in = 1.0 if role == "input" else fan_in / base
        m_out = 1.0 if role == "readout" else fan_out / base
        return m_in, m_out

    def _check_layer(self, index: int, n_layers: int, fan_in: int, fan_out: int, std: float) -> None:
        _positive_int(n_layers, "n_layers")
        check(n_layers >= 2, "n_layers", n_layers, "an integer >= 2 (at least one hidden layer)")
        check(isinstance(index, int) and not isinstance(index, bool) and 0 <= index < n_layers, "index", index,
              f"an integer in [0, {n_layers - 1}]")
        _positive_int(fan_in, "fan_in")
        _positive_int(fan_out, "fan_out")
        _positive_float(std, "std")

    def _natural(self, role: Role, fan_in: int, fan_out: int, std: float) -> LayerScales:
        m_in, m_out = self._ratios(role, fan_in, fan_out)
        s = std / math.sqrt(fan_in)
        if self.name == "standard":
            return LayerScales(1.0, s, 1.0, 1.0)
        if self.name == "ntk":
            return LayerScales(s, 1.0, 1.0, 1.0)
        if self.name == "mup":  # practical form
            return {"input": LayerScales(1.0, s, m_out, 1.0),
                    "hidden": LayerScales(1.0, s, m_out / m_in, 1.0 / m_in),
                    "readout": LayerScales(1.0, s / math.sqrt(m_in), 1.0 / m_in, 1.0 / m_in)}[role]
        return {"input": LayerScales(s, 1.0, m_out, 1.0),  # mean_field
                "hidden": LayerScales(s, 1.0, m_out, 1.0 / math.sqrt(m_in)),
                "readout": LayerScales(s / math.sqrt(m_in), 1.0, m_in, 1.0)}[role]

    def _multiplier_form(self, role: Role, m_in: float, m_out: float) -> float:
        """Yang–Hu multiplier of mup's multiplier form: √m_out (input), 1 (hidden), 1/√m_in (readout)."""
        return {"input": math.sqrt(m_out), "hidden": 1.0, "readout": 1.0 / math.sqrt(m_in)}[role]

    def layer_scales(self, index: int, n_layers: int, fan_in: int, fan_out: int, std: float = 1.0) -> LayerScales:
        """Multiplier, init std and SGD/Adam LR factors of layer ``index``'s weight (fan_out × fan_in).

        ``std`` is the spec's σ_W; in every parameterization the effective weight variance at init is
        σ²/fan_in on input and hidden layers (mup and mean_field: σ²/(fan_in·m_in) on the readout).
        """
        self._check_layer(index, n_layers, fan_in, fan_out, std)
        role = _role(index, n_layers)
        natural = self._natural(role, fan_in, fan_out, float(std))
        if self.form == _NATURAL_FORM[self.name]:
            return natural
        if self.form == "practical":
            return natural.regauge(1.0)
        return natural.regauge(self._multiplier_form(role, *self._ratios(role, fan_in, fan_out)))

    def bias_scales(self, index: int, n_layers: int, fan_out: int, std: float = 1.0) -> LayerScales:
        """Scales of layer ``index``'s bias (``std`` = σ_b): the input-layer rule with fan_in = 1, except the
        readout bias (no width dimension), which has LR factors 1. See the module docstring."""
        self._check_layer(index, n_layers, 1, fan_out, std)
        role = _role(index, n_layers)
        m_out = 1.0 if role == "readout" else fan_out / (1 if self.base_width is None else self.base_width)
        if self.name == "standard":
            natural = LayerScales(1.0, float(std), 1.0, 1.0)
        elif self.name == "ntk":
            natural = LayerScales(float(std), 1.0, 1.0, 1.0)
        elif self.name == "mup":
            natural = LayerScales(1.0, float(std), m_out, 1.0)
        else:
            natural = LayerScales(float(std), 1.0, m_out, 1.0)
        if self.form == _NATURAL_FORM[self.name]:
            return natural
        return natural.regauge(1.0 if self.form == "practical" else math.sqrt(m_out))


STANDARD = Parameterization("standard")
NTK = Parameterization("ntk")
MEAN_FIELD = Parameterization("mean_field")
MUP = Parameterization("mup")
