"""Empirical NTK: the torch.func path, the structured MLP path, an autograd oracle, the width limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nnft.dynamics.ntk import MLPParams, ScaledMLP, empirical_ntk, mlp_ntk
from nnft.errors import ConfigError
from nnft.spec import mlp
from nnft.theory.kernels import kernels

F64 = torch.float64


def _seq(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)  # test-only module init; the library never reads the global RNG
    return nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 6), nn.GELU(), nn.Softplus(),
                         nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).to(F64)


def _x(n: int, d: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _oracle(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor, rates: dict) -> torch.Tensor:
    """Slow, obviously correct Θ_ab(x, x') = Σ_i λ_i ∂f_a(x)/∂θ_i ∂f_b(x')/∂θ_i with plain autograd."""
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    lam = torch.cat([torch.full((p.numel(),), rates.get(n, 1.0), dtype=F64) for n, p in zip(names, params)])

    def jac(x):
        rows = []
        out = model(x[None])[0]
        for a in range(out.shape[0]):
            g = torch.autograd.grad(out[a], params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                                   for gi, p in zip(g, params)]))
        return torch.stack(rows)  # (d_out, P)

    j1 = torch.stack([jac(x) for x in x1])
    j2 = torch.stack([jac(x) for x in x2])
    return torch.einsum("iap,p,jbp->ijab", j1, lam, j2)


RATES = {"0.weight": 0.3, "2.bias": 0.0, "7.bias": 2.5}


@pytest.mark.parametrize("trace", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("batch_size", [None, 3, 4])
def test_both_paths_match_the_autograd_oracle(trace, symmetric, batch_size):
    model = _seq()
    x1, x2 = _x(7), _x(5, seed=2)
    ref = _oracle(model, x1, x1 if symmetric else x2, RATES)
    ref = ref.diagonal(dim1=2, dim2=3).sum(-1) if trace else ref
    arg2 = None if symmetric else x2
    a = empirical_ntk(model, x1, arg2, trace=trace, rates=RATES, batch_size=batch_size)
    b = mlp_ntk(model, x1, arg2, trace=trace, rates=RATES, batch_size=batch_size)
    assert a.shape == ref.shape == b.shape
    scale = ref.abs().max()
    assert (a - ref).abs().max() <= 1e-12 * scale
    assert (b - ref).abs().max() <= 1e-12 * scale
    assert (a - b).abs().max() <= 1e-10 * scale


@pytest.mark.parametrize("activation", ["erf", "relu", "tanh"])
def test_spec_network_ntk_parameterization(activation):
    """from_spec reproduces the sampled network (same φ) and its multipliers give the same Θ on both paths."""
    from nnft.ensemble.sampling import chunk_generator, evaluate, sample_networks

    spec = mlp(3, [9, 8], 2, activation=activation, sigma_w=1.3, sigma_b=0.4, parameterization="ntk")
    net = MLPParams.from_spec(spec, seed=5)
    x = _x(6)
    nets = sample_networks(spec, 1, chunk_generator(5, 0), dtype=F64)
    assert torch.allclose(net(x), evaluate(spec, nets, x)[0], rtol=0, atol=1e-13)
    assert net.weight_multipliers[1] == pytest.approx(1.3 / 3.0) and net.bias_multipliers[0] == pytest.approx(0.4)
    module = net.module()
    assert isinstance(module, ScaledMLP)
    a = empirical_ntk(module, x, trace=False)
    b = mlp_ntk(net, x, trace=False)
    assert (a - b).abs().max() <= 1e-10 * a.abs().max()


def test_standard_parameterization_with_rates_equals_ntk_parameterization():
    """SP stores W = m ŵ, so ∂f/∂W = ∂f/∂ŵ / m: per-layer rates λ = m² turn Θ_SP into Θ_NTK (PHYSICS.md §8)."""
    sp = mlp(2, [16, 16], 1, activation="erf", sigma_w=1.5, sigma_b=0.3, parameterization="standard")
    nt = mlp(2, [16, 16], 1, activation="erf", sigma_w=1.5, sigma_b=0.3, parameterization="ntk")
    p_sp, p_nt = MLPParams.from_spec(sp, seed=3), MLPParams.from_spec(nt, seed=3)
    x = _x(5, d=2)
    assert torch.allclose(p_sp(x), p_nt(x), rtol=0, atol=1e-13)
    rates = {}
    for l, (wn, bn) in enumerate(p_nt.names):
        rates[wn] = p_nt.weight_multipliers[l] ** 2
        rates[bn] = p_nt.bias_multipliers[l] ** 2
    theta_nt = mlp_ntk(p_nt, x)
    theta_sp = mlp_ntk(p_sp, x, rates=rates)
    assert (theta_sp - theta_nt).abs().max() <= 1e-12 * theta_nt.abs().max()
    # without the rates the SP kernel is larger by ~width (hidden layers), not the same object
    assert float(mlp_ntk(p_sp, x).trace()) > 5 * float(theta_nt.trace())


@pytest.mark.parametrize("name", ["mup", "mean_field"])
def test_parameterization_gauge_forms_share_one_ntk(name):
    """The practical and multiplier forms of μP / mean field store different parameters and rates but train
    identically (Yang–Hu abc symmetry, PHYSICS.md §8): same function, and the NTK with the parameterization's
    SGD rates (Σ λ M² (∂f/∂W)²) is the same to round-off. The forms are checked to differ in what they store."""
    from nnft.dynamics.ntk import parameterization_rates
    from nnft.spec import Parameterization

    specs = [mlp(2, [32, 32], 1, activation="tanh", sigma_w=1.3, sigma_b=0.2,
                 parameterization=Parameterization(name, form=form)) for form in ("practical", "multiplier")]
    nets = [MLPParams.from_spec(s, seed=2) for s in specs]
    x = _x(5, d=2)
    assert torch.allclose(nets[0](x), nets[1](x), rtol=1e-12, atol=1e-14)
    assert nets[0].weight_multipliers != nets[1].weight_multipliers
    thetas = [mlp_ntk(n, x, rates=parameterization_rates(s)) for n, s in zip(nets, specs)]
    assert (thetas[0] - thetas[1]).abs().max() <= 1e-12 * thetas[0].abs().max()
    plain = mlp_ntk(nets[0], x)  # without the rates the two forms disagree
    assert not torch.allclose(plain, mlp_ntk(nets[1], x), rtol=1e-3)
    assert parameterization_rates(mlp(2, [8], 1, parameterization="ntk")) == {
        "layers.0.weight": 1.0, "layers.0.bias": 1.0, "layers.1.weight": 1.0, "layers.1.bias": 1.0}


def test_empirical_ntk_converges_to_the_infinite_width_ntk():
    """‖Θ_emp − Θ_∞‖_F/‖Θ_∞‖_F falls like N^{-1/2} (Jacot et al. 1806.07572; Lee et al. 1902.06720).

    Mean over 8 fixed seeds per width; the fitted log–log slope must lie in [−0.75, −0.3] and the error at
    N = 1024 below 12 % (measured: 0.33, 0.13, 0.079 at N = 64, 256, 1024; 0.056 at 4096)."""
    x = _x(6, d=2)
    widths = [64, 256, 1024]
    errs = []
    for n in widths:
        spec = mlp(2, [n, n], 1, activation="relu", sigma_w=1.4, sigma_b=0.3, parameterization="ntk")
        theory = kernels(spec, x, ntk=True).ntk
        e = [float(torch.linalg.norm(mlp_ntk(MLPParams.from_spec(spec, seed=s), x) - theory) /
                   torch.linalg.norm(theory)) for s in range(8)]
        errs.append(np.mean(e))
    slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
    assert -0.75 <= slope <= -0.3, (slope, errs)
    assert errs[-1] < 0.12, errs


def test_float32_model_keeps_its_dtype():
    model = _seq().to(torch.float32)
    x = _x(4).to(torch.float32)
    a, b = empirical_ntk(model, x), mlp_ntk(model, x)
    assert a.dtype == b.dtype == torch.float32
    ref = empirical_ntk(model.to(F64), x.to(F64))
    assert torch.allclose(a.double(), ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    assert torch.allclose(b.double(), ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


def test_frozen_parameters_do_not_enter():
    model = _seq()
    x = _x(4)
    for p in model[0].parameters():
        p.requires_grad_(False)
    frozen = empirical_ntk(model, x)
    for p in model[0].parameters():
        p.requires_grad_(True)
    explicit = empirical_ntk(model, x, rates={"0.weight": 0.0, "0.bias": 0.0})
    assert torch.allclose(frozen, explicit, rtol=1e-13, atol=0)
    assert not torch.allclose(frozen, empirical_ntk(model, x))
    nothing = {n: 0.0 for n, _ in model.named_parameters()}
    assert empirical_ntk(model, x, rates=nothing).abs().max() == 0
    assert mlp_ntk(model, x, rates=nothing).abs().max() == 0


def test_generic_module_beyond_mlps():
    """A module the structured path cannot read (a residual block) still works on the torch.func path."""

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3, dtype=F64)
            self.b = nn.Linear(3, 1, dtype=F64)

        def forward(self, x):
            return self.b(x + torch.sin(self.a(x)))

    torch.manual_seed(0)
    model = Residual()
    x = _x(5)
    ref = _oracle(model, x, x, {})[..., 0, 0]
    assert torch.allclose(empirical_ntk(model, x), ref, rtol=1e-12, atol=1e-14)
    with pytest.raises(ConfigError, match="module"):
        mlp_ntk(model, x)


def test_bad_input():
    model = _seq()
    x = _x(3)
    with pytest.raises(ConfigError, match=r"rates: got .unknown parameter names \['nope'\]"):
        empirical_ntk(model, x, rates={"nope": 1.0})
    with pytest.raises(ConfigError, match=r"rates\['0.weight'\]"):
        mlp_ntk(model, x, rates={"0.weight": -1.0})
    with pytest.raises(ConfigError, match="batch_size"):
        empirical_ntk(model, x, batch_size=0)
    with pytest.raises(ConfigError, match=r"x1.shape"):
        mlp_ntk(model, _x(3, d=4))
    with pytest.raises(ConfigError, match="x2"):
        empirical_ntk(model, x, np.array([[np.nan, 0.0, 0.0]]))
    with pytest.raises(ConfigError, match="Conv1d"):
        mlp_ntk(nn.Sequential(nn.Linear(3, 2), nn.Conv1d(1, 1, 1), nn.Linear(2, 1)), x)
    with pytest.raises(ConfigError, match="MLPParams.weights"):
        MLPParams(weights=(torch.zeros(3, 2), torch.zeros(1, 4)), biases=(None, None))
    with pytest.raises(ConfigError, match="spec.amplitude"):
        from nnft.spec import scalar_net
        MLPParams.from_spec(scalar_net(8, 1), seed=0)


def test_numpy_inputs_and_multiplier_free_defaults():
    w = (torch.ones(4, 2, dtype=F64), torch.full((1, 4), 0.5, dtype=F64))
    net = MLPParams(weights=w, biases=(None, torch.zeros(1, dtype=F64)), activations=None)
    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    # linear network f = 0.5·Σ_i (x1 + x2) + b:  Θ = Σ_layers (a·a')(δ·δ') + 1 (bias)
    xt = torch.as_tensor(x)
    a0 = xt @ xt.T
    h = xt @ w[0].T
    expected = a0 * (4 * 0.25) + h @ h.T + 1.0
    assert torch.allclose(mlp_ntk(net, x), expected, rtol=1e-14, atol=0)
    assert torch.allclose(empirical_ntk(net.module(), x), expected, rtol=1e-14, atol=0)
    assert float(mlp_ntk(net, x)[0, 0]) == 5 * 1.0 + 36 + 1  # |x|²·Σ_j δ_j² + |h|² + bias
