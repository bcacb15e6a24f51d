"""Empirical neural tangent kernel of a finite network (Jacot et al. arXiv:1806.07572; PHYSICS.md §7).

    Θ_ab(x, x') = Σ_i λ_i ∂f_a(x)/∂θ_i ∂f_b(x')/∂θ_i = [J(x) diag(λ) J(x')ᵀ]_ab

θ are the network's trained parameters, λ_i a relative per-parameter learning rate (all 1 in the usual
definition; the actual per-layer rates for standard parameterization or per-layer learning rates), f the
output of dimension d_out. Traced over outputs, Θ(x, x') = Σ_a Θ_aa(x, x').

Two paths:

* :func:`empirical_ntk` — any ``torch.nn.Module``: per-sample Jacobians with ``torch.func`` (``vmap`` of
  ``jacrev`` through ``functional_call``), contracted parameter by parameter.
* :func:`mlp_ntk` — fully connected networks (:class:`MLPParams`, a ``nn.Sequential`` of ``nn.Linear`` and
  elementwise activations, or :class:`ScaledMLP`), without Jacobians. For a dense layer
  h = m_W a Wᵀ + m_b b (forward multipliers m_W, m_b) the layer's contribution factorizes as

      Θ_l(x, x') = [λ_W m_W² a(x)·a(x') + λ_b m_b²] · Σ_j δ_j(x) δ_j(x'),     δ_j = ∂f/∂h_j,

  so one forward and one backward pass of sensitivities give Θ through Gram matrices (the "structured
  derivatives" idea of Novak et al. arXiv:2206.08720, written here for dense layers only; hand-written
  because no torch library provides it).

The NTK parameterization (PHYSICS.md §7: h^(l+1) = (σ_W/√n_l) W a^(l) + σ_b b with W, b ~ N(0, 1)) is a
choice of multipliers: m_W = σ_W/√n_l, m_b = σ_b. :meth:`MLPParams.from_spec` samples a spec's network with
exactly these multipliers (or none, in standard parameterization), so its empirical NTK tends to
:func:`nnft.theory.kernels` ``(spec, ntk=True).ntk`` as the width grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import check, fail

__all__ = ["empirical_ntk", "mlp_ntk", "MLPParams", "ScaledMLP", "parameterization_rates"]

Tensor = torch.Tensor


# ----------------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------------

def _as_batch(x, name: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A (n, ...) tensor in the model's dtype and device (NumPy accepted)."""
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError):
            raise fail(name, type(x).__name__, "a numeric array whose first axis indexes the inputs") from None
    check(x.ndim >= 1 and x.shape[0] >= 1, f"{name}.shape", tuple(x.shape), "(n, ...) with n >= 1")
    x = x.to(dtype=dtype, device=device)
    check(bool(torch.isfinite(x).all()), name, "non-finite values (NaN or inf)", "finite numbers")
    return x


def _check_batch_size(batch_size: Optional[int]) -> None:
    check(batch_size is None or (isinstance(batch_size, int) and not isinstance(batch_size, bool)
                                 and batch_size >= 1), "batch_size", batch_size, "None or an integer >= 1")


def _chunks(n: int, size: Optional[int]) -> list[slice]:
    """Consecutive slices of at most ``size`` (the last one shorter; no divisibility needed)."""
    size = n if size is None else size
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _rates(rates: Optional[Mapping[str, float]], names: Sequence[str]) -> dict[str, float]:
    """λ per parameter name: 1 unless given; unknown names and bad values are ConfigErrors."""
    out = {n: 1.0 for n in names}
    if rates is None:
        return out
    check(isinstance(rates, Mapping), "rates", rates, "a dict {parameter name: rate}")
    unknown = sorted(set(rates) - set(names))
    check(not unknown, "rates", f"unknown parameter names {unknown}", f"names among {list(names)}")
    for k, v in rates.items():
        check(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
              f"rates[{k!r}]", v, "a finite number >= 0")
        out[k] = float(v)
    return out


def _blocks(n1: int, n2: int, batch_size: Optional[int], symmetric: bool) -> Iterator[tuple[slice, slice]]:
    """Tiles (i, j) of an (n1, n2) matrix; only j >= i when the matrix is symmetric."""
    rows, cols = _chunks(n1, batch_size), _chunks(n2, batch_size)
    for i, si in enumerate(rows):
        for j, sj in enumerate(cols):
            if not symmetric or j >= i:
                yield si, sj


def _mirror(theta: Tensor, si: slice, sj: slice, trace: bool) -> None:
    """Fill the (j, i) tile of a symmetric Θ from its (i, j) tile: Θ_ab(x', x) = Θ_ba(x, x')."""
    if si == sj:
        return
    block = theta[si, sj]
    theta[sj, si] = block.transpose(0, 1) if trace else block.permute(1, 0, 3, 2)


# ----------------------------------------------------------------------------------------------------
# any module: torch.func Jacobians
# ----------------------------------------------------------------------------------------------------

def empirical_ntk(model: nn.Module, x1, x2=None, *, trace: bool = True,
                  rates: Optional[Mapping[str, float]] = None, batch_size: Optional[int] = None) -> Tensor:
    """Empirical NTK Θ(x1, x2) = J(x1) diag(λ) J(x2)ᵀ of any ``torch.nn.Module`` (torch.func Jacobians).

    Parameters
    ----------
    model : the network f_θ; θ = its parameters with ``requires_grad`` (frozen ones are not trained and do
        not enter Θ). It is called on single inputs ``x[i:i+1]`` under ``vmap``, so layers that mix samples
        (batch norm in training mode) must be in ``eval()`` mode. Its output is flattened to d_out entries.
    x1 : (n1, ...) inputs as the model takes them in a batch; NumPy accepted; cast to the model's dtype.
    x2 : (n2, ...) inputs, or None for Θ(x1, x1) (then computed once per tile pair and mirrored).
    trace : True → Θ(x, x') = Σ_a Θ_aa, shape (n1, n2); False → the full (n1, n2, d_out, d_out).
    rates : {parameter name (as in ``model.named_parameters()``): λ ≥ 0}; missing names have λ = 1.
    batch_size : inputs per Jacobian tile (any n; the last tile is shorter). None = all at once. Memory
        per tile is O(batch_size · d_out · n_params).

    Returns
    -------
    Θ in the model's dtype, (n1, n2) or (n1, n2, d_out, d_out).

    References: Jacot, Gabriel, Hongler, arXiv:1806.07572 (definition); PHYSICS.md §7 (rates λ_i).
    """
    from torch.func import functional_call, jacrev, vmap

    check(isinstance(model, nn.Module), "model", type(model).__name__, "a torch.nn.Module")
    _check_batch_size(batch_size)
    check(isinstance(trace, bool), "trace", trace, "True or False")
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    check(bool(params), "model", type(model).__name__, "a module with trainable parameters (requires_grad)")
    lam = _rates(rates, list(params))
    params = {k: v for k, v in params.items() if lam[k] > 0}
    buffers = {k: b.detach() for k, b in model.named_buffers()}
    first = next(iter(model.parameters()))
    x1 = _as_batch(x1, "x1", first.dtype, first.device)
    symmetric = x2 is None
    x2 = x1 if symmetric else _as_batch(x2, "x2", first.dtype, first.device)

    def f(p: dict, xi: Tensor) -> Tensor:
        return functional_call(model, (p, buffers), (xi.unsqueeze(0),)).reshape(-1)

    jac = vmap(jacrev(f), in_dims=(None, 0))
    with torch.no_grad():
        d_out = f(params, x1[0]).numel()
    shape = (x1.shape[0], x2.shape[0]) if trace else (x1.shape[0], x2.shape[0], d_out, d_out)
    theta = torch.zeros(shape, dtype=first.dtype, device=first.device)
    if not params:  # every rate is 0: nothing is trained
        return theta
    cache: dict[tuple[int, int], dict] = {}
    for si, sj in _blocks(x1.shape[0], x2.shape[0], batch_size, symmetric):
        key1 = (si.start, si.stop)
        if key1 not in cache:
            cache.clear()  # keep only the current row tile's Jacobian
            cache[key1] = jac(params, x1[si])
        j1 = cache[key1]
        j2 = j1 if (symmetric and si == sj) else jac(params, x2[sj])
        theta[si, sj] = _contract(j1, j2, lam, trace)
        if symmetric:
            _mirror(theta, si, sj, trace)
    return theta


def _contract(j1: dict, j2: dict, lam: dict, trace: bool) -> Tensor:
    """Σ_params λ_k J1_k J2_kᵀ for per-parameter Jacobians (b, d_out, *shape)."""
    out = None
    for k, a in j1.items():
        b1, d_out = a.shape[0], a.shape[1]
        b = j2[k]
        b2 = b.shape[0]
        if trace:
            term = a.reshape(b1, -1) @ b.reshape(b2, -1).T
        else:
            term = (a.reshape(b1 * d_out, -1) @ b.reshape(b2 * d_out, -1).T).reshape(b1, d_out, b2, d_out)
            term = term.permute(0, 2, 1, 3)
        term = term * lam[k] if lam[k] != 1.0 else term
        out = term if out is None else out + term
    return out


# ----------------------------------------------------------------------------------------------------
# fully connected networks: structured (factorized) NTK
# ----------------------------------------------------------------------------------------------------

_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Softplus, nn.ELU, nn.LeakyReLU, nn.Identity,
                nn.Hardtanh, nn.Mish, nn.CELU, nn.SELU, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid)


def _value_and_derivative(act, h: Tensor) -> tuple[Tensor, Tensor]:
    """(σ(h), σ'(h)) elementwise; closed forms for relu/tanh/nnft activations, else one reverse-mode pass
    (for an elementwise σ the vector–Jacobian product with ones is σ'(h))."""
    from ..spec import Activation

    if act is None:
        return h, torch.ones_like(h)
    if isinstance(act, nn.ReLU) or act is torch.relu:
        return torch.relu(h), (h > 0).to(h.dtype)
    if isinstance(act, nn.Tanh) or act is torch.tanh:
        t = torch.tanh(h)
        return t, 1 - t * t
    if isinstance(act, Activation) and act.known:
        return act(h), act.derivative(h)
    value, pullback = torch.func.vjp(act, h)
    return value, pullback(torch.ones_like(value))[0]


def _compose(fns: list) -> Callable[[Tensor], Tensor]:
    def composed(h: Tensor) -> Tensor:
        for fn in fns:
            h = fn(h)
        return h
    return composed


@dataclass(frozen=True, eq=False)
class MLPParams:
    """A fully connected network with forward multipliers, as the structured NTK path reads it.

        a^(0) = x,   h^(l+1) = m_W[l] a^(l) W[l]ᵀ + m_b[l] b[l],   a^(l+1) = σ_l(h^(l+1)),   f = h^(L+1)

    Attributes
    ----------
    weights : L+1 stored (trained) matrices W[l] of shape (n_{l+1}, n_l) (``nn.Linear`` layout).
    biases : L+1 vectors b[l] (n_{l+1},) or None (no bias in that layer).
    activations : L elementwise σ_l between the layers: an nnft activation name or ``Activation``, a torch
        callable or module (relu, tanh, ...), or None (identity). One value is broadcast to all layers.
    weight_multipliers, bias_multipliers : m_W[l], m_b[l] (default 1: standard parameterization).
        NTK parameterization (PHYSICS.md §7): m_W[l] = σ_W/√n_l, m_b[l] = σ_b.
    names : per layer (weight name, bias name or None), the keys of ``rates`` (default
        ``layers.{l}.weight`` / ``layers.{l}.bias``, the names of :meth:`module`'s parameters).
    """

    weights: tuple
    biases: tuple
    activations: object = "relu"
    weight_multipliers: Optional[tuple] = None
    bias_multipliers: Optional[tuple] = None
    names: Optional[tuple] = None

    def __post_init__(self) -> None:
        ws = tuple(self.weights)
        check(len(ws) >= 1 and all(isinstance(w, Tensor) and w.ndim == 2 for w in ws), "MLPParams.weights",
              [tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__ for w in ws],
              "a non-empty list of 2-D tensors (n_out, n_in)")
        for l in range(1, len(ws)):
            check(ws[l].shape[1] == ws[l - 1].shape[0], f"MLPParams.weights[{l}].shape", tuple(ws[l].shape),
                  f"(n, {ws[l - 1].shape[0]}) to follow weights[{l - 1}]")
        bs = tuple(self.biases)
        check(len(bs) == len(ws), "MLPParams.biases", f"{len(bs)} entries", f"{len(ws)} (one per layer, or None)")
        for l, b in enumerate(bs):
            check(b is None or (isinstance(b, Tensor) and tuple(b.shape) == (ws[l].shape[0],)),
                  f"MLPParams.biases[{l}]", None if b is None else tuple(b.shape), f"None or ({ws[l].shape[0]},)")
        acts = self.activations
        if not isinstance(acts, (tuple, list)):
            acts = (acts,) * (len(ws) - 1)
        check(len(acts) == len(ws) - 1, "MLPParams.activations", f"{len(acts)} entries",
              f"one per hidden layer ({len(ws) - 1})")
        acts = tuple(_resolve_activation(a, f"MLPParams.activations[{i}]") for i, a in enumerate(acts))
        mw = tuple(float(v) for v in (self.weight_multipliers or (1.0,) * len(ws)))
        mb = tuple(float(v) for v in (self.bias_multipliers or (1.0,) * len(ws)))
        for name, m in (("weight_multipliers", mw), ("bias_multipliers", mb)):
            check(len(m) == len(ws) and all(math.isfinite(v) for v in m), f"MLPParams.{name}", m,
                  f"{len(ws)} finite numbers (one per layer)")
        names = self.names or tuple((f"layers.{l}.weight", None if b is None else f"layers.{l}.bias")
                                    for l, b in enumerate(bs))
        check(len(names) == len(ws), "MLPParams.names", names, "one (weight name, bias name) pair per layer")
        for attr, v in (("weights", ws), ("biases", bs), ("activations", acts), ("weight_multipliers", mw),
                        ("bias_multipliers", mb), ("names", tuple(tuple(n) for n in names))):
            object.__setattr__(self, attr, v)

    # -- views -------------------------------------------------------------------------------------
    @property
    def widths(self) -> tuple[int, ...]:
        """(d_in, n_1, ..., n_L, d_out)."""
        return (self.weights[0].shape[1],) + tuple(w.shape[0] for w in self.weights)

    @property
    def parameter_names(self) -> list[str]:
        return [n for pair in self.names for n in pair if n is not None]

    def __repr__(self) -> str:
        return f"MLPParams(widths={self.widths}, dtype={self.weights[0].dtype})"

    def __call__(self, x: Tensor) -> Tensor:
        """The forward pass f(x), (n, d_out)."""
        a = x
        for l, w in enumerate(self.weights):
            h = self.weight_multipliers[l] * (a @ w.T)
            if self.biases[l] is not None:
                h = h + self.bias_multipliers[l] * self.biases[l]
            a = h if l == len(self.weights) - 1 else _value_and_derivative(self.activations[l], h)[0]
        return a

    # -- constructors ------------------------------------------------------------------------------
    @classmethod
    def from_module(cls, module: nn.Module) -> "MLPParams":
        """Read a ``ScaledMLP`` or an ``nn.Sequential`` of ``nn.Linear`` and elementwise activation modules
        (ReLU, Tanh, Sigmoid, GELU, SiLU, Softplus, ELU, LeakyReLU, Identity, ...), starting and ending with
        ``nn.Linear``. Parameters are shared with the module (no copy); names are the module's."""
        if isinstance(module, ScaledMLP):
            return module.params()
        check(isinstance(module, nn.Sequential), "module", type(module).__name__,
              "an nn.Sequential of nn.Linear and elementwise activations, or a ScaledMLP "
              "(use empirical_ntk for any other module)")
        items = list(module.named_children())
        check(bool(items) and isinstance(items[0][1], nn.Linear) and isinstance(items[-1][1], nn.Linear),
              "module", [type(m).__name__ for _, m in items], "a Sequential that starts and ends with nn.Linear")
        weights, biases, names, acts, pending = [], [], [], [], []
        for name, m in items:
            if isinstance(m, nn.Linear):
                if weights:
                    acts.append(_compose(pending) if len(pending) > 1 else (pending[0] if pending else None))
                pending = []
                weights.append(m.weight.detach())
                biases.append(None if m.bias is None else m.bias.detach())
                names.append((f"{name}.weight", None if m.bias is None else f"{name}.bias"))
            elif isinstance(m, _ELEMENTWISE):
                pending.append(m)
            else:
                raise fail("module", f"a {type(m).__name__} layer ({name!r})",
                           "nn.Linear and elementwise activations only (use empirical_ntk for any other module)")
        return cls(weights=tuple(weights), biases=tuple(biases), activations=tuple(acts), names=tuple(names))

    @classmethod
    def from_spec(cls, spec, *, seed: int, dtype: torch.dtype = torch.float64) -> "MLPParams":
        """Network 0 of chunk 0 of a run with ``seed`` (:func:`nnft.ensemble.sampling.sample_networks`), with
        the spec's parameterization made explicit (:meth:`nnft.spec.Parameterization.layer_scales` and
        ``bias_scales``): each sampled entry, divided by its density scale, is a unit draw u; the stored
        parameter is init_std · u and the forward multiplier M, so the effective weight is M · init_std · u.

        standard: M = 1, stored W = σ_W u/√fan_in (the sampled network itself);
        ntk: M = σ_W/√fan_in (bias: σ_b), stored u (PHYSICS.md §7) — the same network;
        mup / mean_field: the parameterization's multipliers and init stds (the readout's effective variance
        carries its extra width factor). Use :func:`parameterization_rates` for the per-layer SGD rates λ.

        Supports specs without a neuron amplitude, with fan-in scaling beyond standard parameterization, and
        with an activation that does not read the pre-activation variance (not Gauss-net, not Scalar-net)."""
        from ..ensemble.sampling import chunk_generator, sample_networks

        _check_spec(spec)
        check(isinstance(seed, int) and not isinstance(seed, bool), "seed", seed, "an integer")
        nets = sample_networks(spec, 1, chunk_generator(seed, 0), dtype=dtype)
        weights, biases, mw, mb = [], [], [], []
        for l, (scale_w, scale_b, sampled_w, sampled_b) in enumerate(_layer_scales(spec)):
            w, b = nets.weights[l][0], None if nets.biases[l] is None else nets.biases[l][0]
            weights.append(w * (scale_w.init_std / sampled_w))
            biases.append(None if (b is None or scale_b is None) else b * (scale_b.init_std / sampled_b))
            mw.append(scale_w.multiplier)
            mb.append(1.0 if scale_b is None else scale_b.multiplier)
        return cls(weights=tuple(weights), biases=tuple(biases), activations=spec.activation,
                   weight_multipliers=tuple(mw), bias_multipliers=tuple(mb))

    def module(self) -> "ScaledMLP":
        """The equivalent trainable ``nn.Module`` (parameters copied), with the same parameter names."""
        return ScaledMLP(self)


def _resolve_activation(act, where: str):
    from ..spec import Activation

    if act is None or callable(act):
        if isinstance(act, Activation):
            check(not act.normalized, where, act.name, "an activation that does not read Var z (not gauss)")
        return act
    if isinstance(act, str):
        a = Activation(act)
        check(not a.normalized and a.has_derivative, where, act, "an activation with a derivative (not gauss/step)")
        return a
    raise fail(where, type(act).__name__, "an activation name, a torch callable or module, or None")


def _check_spec(spec) -> None:
    from ..spec import Architecture

    check(isinstance(spec, Architecture), "spec", type(spec).__name__, "an nnft Architecture")
    check(spec.amplitude is None, "spec.amplitude", spec.amplitude, "None (no neuron amplitude)")
    check(not spec.activation.normalized and spec.activation.has_derivative, "spec.activation",
          spec.activation.name, "an activation with a derivative that does not read Var z (not gauss/step)")
    for l, layer in enumerate(spec.layers):
        check(layer.scaling == "fan_in" or spec.parameterization.name == "standard", f"spec.layers[{l}].scaling",
              layer.scaling, "'fan_in' (the parameterization sets the width scaling of every trained layer)")


def _layer_scales(spec) -> list:
    """Per layer: (weight LayerScales, bias LayerScales or None, sampled weight scale, sampled bias scale)."""
    from ..spec._density import density_std
    from ..spec._parameterization import LayerScales

    p, n_layers = spec.parameterization, len(spec.layers)
    out = []
    for l, (layer, fan_in) in enumerate(zip(spec.layers, spec.fan_ins)):
        std_w = density_std(layer.weight, fan_in)
        check(std_w > 0, f"spec.layers[{l}].weight", layer.weight, "a density with std > 0")
        sampled_w = std_w * layer.weight_scale(fan_in)
        if layer.scaling == "fan_in":
            scale_w = p.layer_scales(l, n_layers, fan_in, layer.width, std=std_w)
        else:  # standard parameterization, no width scaling: the stored weight is the sampled one
            scale_w = LayerScales(1.0, sampled_w, 1.0, 1.0)
        scale_b, sampled_b = None, 1.0
        if layer.bias is not None and layer.bias_var > 0:
            sampled_b = math.sqrt(layer.bias_var)
            scale_b = p.bias_scales(l, n_layers, layer.width, std=sampled_b)
        out.append((scale_w, scale_b, sampled_w, sampled_b))
    return out


def parameterization_rates(spec) -> dict[str, float]:
    """Per-parameter SGD rates λ of ``spec``'s parameterization, keyed like :meth:`MLPParams.from_spec`'s
    parameters (``layers.{l}.weight`` / ``layers.{l}.bias``): the LR factors of
    :meth:`nnft.spec.Parameterization.layer_scales` (all 1 for standard and ntk). With them, Θ is the kernel
    that gradient descent with base rate η sees (PHYSICS.md §7–8), and it is the same for every gauge form of a
    parameterization (it depends on M²λ only)."""
    _check_spec(spec)
    rates = {}
    for l, (scale_w, scale_b, _, _) in enumerate(_layer_scales(spec)):
        rates[f"layers.{l}.weight"] = float(scale_w.sgd_lr)
        if scale_b is not None:
            rates[f"layers.{l}.bias"] = float(scale_b.sgd_lr)
    return rates


class ScaledMLP(nn.Module):
    """An ``nn.Module`` computing :class:`MLPParams`' forward pass with its multipliers, for training and
    for checking :func:`mlp_ntk` against :func:`empirical_ntk`. Parameters: ``layers.{l}.weight`` and
    ``layers.{l}.bias`` (stored values; the multipliers are fixed buffers of the forward pass)."""

    def __init__(self, params: MLPParams) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for w, b in zip(params.weights, params.biases):
            lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=w.dtype, device=w.device)
            with torch.no_grad():
                lin.weight.copy_(w)
                if b is not None:
                    lin.bias.copy_(b)
            self.layers.append(lin)
        self.activations = params.activations
        self.weight_multipliers = params.weight_multipliers
        self.bias_multipliers = params.bias_multipliers

    def forward(self, x: Tensor) -> Tensor:
        a = x
        n = len(self.layers)
        for l, lin in enumerate(self.layers):
            h = self.weight_multipliers[l] * (a @ lin.weight.T)
            if lin.bias is not None:
                h = h + self.bias_multipliers[l] * lin.bias
            a = h if l == n - 1 else _value_and_derivative(self.activations[l], h)[0]
        return a

    def params(self) -> MLPParams:
        return MLPParams(weights=tuple(l.weight.detach() for l in self.layers),
                         biases=tuple(None if l.bias is None else l.bias.detach() for l in self.layers),
                         activations=self.activations, weight_multipliers=self.weight_multipliers,
                         bias_multipliers=self.bias_multipliers)


def _features(net: MLPParams, x: Tensor) -> list[tuple[Tensor, Optional[Tensor]]]:
    """Per layer l: (a^(l) (n, n_l), δ^(l) (n, d_out, n_{l+1}) or None for the readout, where δ = I).

    δ^(l)_{a j}(x) = ∂f_a(x)/∂h^(l+1)_j, backpropagated as δ^(l) = (δ^(l+1) m_W[l+1] W[l+1]) ⊙ σ_l'(h^(l+1)).
    """
    acts, derivs = [x], []
    a = x
    n_layers = len(net.weights)
    for l in range(n_layers - 1):
        h = torch.mm(a, net.weights[l].T)
        if net.weight_multipliers[l] != 1.0:
            h.mul_(net.weight_multipliers[l])
        if net.biases[l] is not None:
            h.add_(net.biases[l], alpha=net.bias_multipliers[l])
        a, da = _value_and_derivative(net.activations[l], h)
        acts.append(a)
        derivs.append(da)
    deltas: list[Optional[Tensor]] = [None] * n_layers
    delta = None  # δ of the readout is the identity
    for l in range(n_layers - 2, -1, -1):
        w = net.weights[l + 1] * net.weight_multipliers[l + 1]  # (n_{l+2}, n_{l+1})
        if delta is None:
            delta = w.unsqueeze(0) * derivs[l].unsqueeze(1)  # (n, d_out, n_{l+1})
        else:
            n, d_out, k = delta.shape
            delta = torch.mm(delta.reshape(n * d_out, k), w).reshape(n, d_out, -1) * derivs[l].unsqueeze(1)
        deltas[l] = delta
    return list(zip(acts, deltas))


def _gram(a: Tensor, b: Tensor, same: bool) -> Tensor:
    return torch.mm(a, a.T) if same else torch.mm(a, b.T)


def _structured_block(net: MLPParams, f1, f2, lam_w, lam_b, trace: bool, same: bool) -> Tensor:
    """Σ_l [λ_W m_W² a·a' + λ_b m_b²] ⊙ (δ δ'ᵀ) for one tile (traced (b1, b2), else (b1, b2, d_out, d_out))."""
    d_out = net.weights[-1].shape[0]
    b1, b2 = f1[0][0].shape[0], f2[0][0].shape[0]
    dtype, device = f1[0][0].dtype, f1[0][0].device
    out = torch.zeros((b1, b2) if trace else (b1, b2, d_out, d_out), dtype=dtype, device=device)
    for l, ((a1, d1), (a2, d2)) in enumerate(zip(f1, f2)):
        cw = lam_w[l] * net.weight_multipliers[l] ** 2
        cb = lam_b[l] * net.bias_multipliers[l] ** 2 if net.biases[l] is not None else 0.0
        if cw == 0.0 and cb == 0.0:
            continue
        ga = _gram(a1, a2, same)
        if cw != 1.0:
            ga.mul_(cw)
        if cb != 0.0:
            ga.add_(cb)
        if d1 is None:  # readout: δ = I, Σ_j δ_aj δ'_bj = δ_ab
            if trace:
                out.add_(ga, alpha=d_out)
            else:
                out.diagonal(dim1=2, dim2=3).add_(ga.unsqueeze(-1))
            continue
        if trace:
            out.addcmul_(ga, _gram(d1.reshape(b1, -1), d2.reshape(b2, -1), same))
        else:
            n = d1.shape[-1]
            gd = _gram(d1.reshape(b1 * d_out, n), d2.reshape(b2 * d_out, n), same)
            out.addcmul_(ga[:, :, None, None], gd.reshape(b1, d_out, b2, d_out).permute(0, 2, 1, 3))
    return out


def mlp_ntk(net, x1, x2=None, *, trace: bool = True, rates: Optional[Mapping[str, float]] = None,
            batch_size: Optional[int] = None) -> Tensor:
    """Empirical NTK of a fully connected network by per-layer factorization (no Jacobians).

        Θ_ab(x, x') = Σ_l [λ_W[l] m_W[l]² a^(l)(x)·a^(l)(x') + λ_b[l] m_b[l]²] Σ_j δ^(l)_aj(x) δ^(l)_bj(x')

    with a^(l) the input of layer l, δ^(l)_aj = ∂f_a/∂h^(l+1)_j, m the forward multipliers and λ the
    per-parameter rates (see :class:`MLPParams`). Equal to :func:`empirical_ntk` of the same network up to
    round-off; costs one forward and one backward pass of (n, width) activations plus Gram products.

    Parameters
    ----------
    net : an :class:`MLPParams`, a :class:`ScaledMLP`, or an ``nn.Sequential`` of ``nn.Linear`` and
        elementwise activation modules (see :meth:`MLPParams.from_module`).
    x1, x2 : (n1, d_in), (n2, d_in) inputs (x2 = None: Θ(x1, x1), features computed once).
    trace, rates, batch_size : as in :func:`empirical_ntk` (rates keyed by the parameter names of the
        module, or ``layers.{l}.weight`` / ``layers.{l}.bias`` for an MLPParams built by hand).
        ``batch_size`` bounds the Gram tiles; the (n, width) features of all inputs are kept.

    References: Jacot et al. arXiv:1806.07572; Novak, Sohl-Dickstein, Schoenholz arXiv:2206.08720
    (structured derivatives).
    """
    if isinstance(net, nn.Module):
        net = MLPParams.from_module(net)
    check(isinstance(net, MLPParams), "net", type(net).__name__, "an MLPParams, ScaledMLP or nn.Sequential")
    _check_batch_size(batch_size)
    check(isinstance(trace, bool), "trace", trace, "True or False")
    lam = _rates(rates, net.parameter_names)
    lam_w = [lam[w] for w, _ in net.names]
    lam_b = [0.0 if b is None else lam[b] for _, b in net.names]
    w0 = net.weights[0]
    d_in = w0.shape[1]
    x1 = _as_batch(x1, "x1", w0.dtype, w0.device)
    if x1.ndim == 1 and d_in == 1:
        x1 = x1[:, None]
    check(x1.ndim == 2 and x1.shape[1] == d_in, "x1.shape", tuple(x1.shape), f"(n, {d_in})")
    symmetric = x2 is None
    if not symmetric:
        x2 = _as_batch(x2, "x2", w0.dtype, w0.device)
        if x2.ndim == 1 and d_in == 1:
            x2 = x2[:, None]
        check(x2.ndim == 2 and x2.shape[1] == d_in, "x2.shape", tuple(x2.shape), f"(n, {d_in})")
    else:
        x2 = x1
    with torch.no_grad():
        feats1 = {(s.start, s.stop): _features(net, x1[s]) for s in _chunks(x1.shape[0], batch_size)}
        feats2 = feats1 if symmetric else {(s.start, s.stop): _features(net, x2[s])
                                           for s in _chunks(x2.shape[0], batch_size)}
        if batch_size is None or (batch_size >= x1.shape[0] and batch_size >= x2.shape[0]):
            f1, f2 = next(iter(feats1.values())), next(iter(feats2.values()))
            return _structured_block(net, f1, f2, lam_w, lam_b, trace, symmetric)
        d_out = net.weights[-1].shape[0]
        shape = (x1.shape[0], x2.shape[0]) if trace else (x1.shape[0], x2.shape[0], d_out, d_out)
        theta = torch.empty(shape, dtype=w0.dtype, device=w0.device)
        for si, sj in _blocks(x1.shape[0], x2.shape[0], batch_size, symmetric):
            same = symmetric and si == sj
            theta[si, sj] = _structured_block(net, feats1[(si.start, si.stop)], feats2[(sj.start, sj.stop)],
                                              lam_w, lam_b, trace, same)
            if symmetric:
                _mirror(theta, si, sj, trace)
        return theta
