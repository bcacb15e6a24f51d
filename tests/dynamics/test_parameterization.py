"""Parameterizations (PHYSICS.md §8): the abc table, Yang–Hu's stability dichotomy, gauge forms, applying a
parameterization to a torch model, and a cross-check of μP against the ``mup`` package (Tensor Programs V).

The table of PHYSICS.md §8 is checked entry by entry against exponents *fitted* from the concrete per-layer
numbers (log of a scale at widths n and 16n over log 16): exact powers, so the tolerance is float rounding.
The starred entries (mean-field Adam LR, μP Yang–Hu-form Adam LR) are further verified dynamically: the
multiplier form trains step for step like the practical form (tests below), and tests/dynamics/
test_coordcheck.py shows flat coordinate updates for mean field and both μP forms under Adam.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nnft import ConfigError
from nnft.dynamics.coordcheck import mlp_model, regression_task
from nnft.dynamics.parameterize import describe, param_groups, parameterize
from nnft.spec import ABC, MEAN_FIELD, MUP, NTK, STANDARD, Architecture, LayerScales, Parameterization, mlp

NAMES = ("standard", "ntk", "mean_field", "mup")


# ========================================================================================================
# Names, back-compatibility, config
# ========================================================================================================
def test_existing_names_and_properties_unchanged() -> None:
    assert Parameterization("standard") == STANDARD and Parameterization("ntk") == NTK
    assert (STANDARD.multiplier_exponent, STANDARD.init_exponent) == (0.0, 0.5)
    assert (NTK.multiplier_exponent, NTK.init_exponent) == (0.5, 0.0)
    assert Parameterization().name == "standard"


@pytest.mark.parametrize("alias,name", [("mf", "mean_field"), ("μP", "mup"), ("muP", "mup"), ("mup", "mup"),
                                        ("mean_field", "mean_field")])
def test_aliases_are_canonicalised(alias: str, name: str) -> None:
    p = Parameterization(alias)
    assert p.name == name and p == Parameterization(name)
    assert Architecture.from_config(mlp(2, [4], parameterization=alias).to_config()).parameterization == p


@pytest.mark.parametrize("call,where", [
    (lambda: Parameterization("xavier"), "parameterization"),
    (lambda: Parameterization("NTK"), "parameterization"),
    (lambda: Parameterization("mup", form="yang_hu"), "Parameterization.form"),
    (lambda: Parameterization("mup", base_width=0), "Parameterization.base_width"),
    (lambda: Parameterization("mup", base_width=2.5), "Parameterization.base_width"),
    (lambda: Parameterization("ntk", base_width=64), "Parameterization.base_width"),
    (lambda: MUP.layer_scales(3, 3, 4, 4), "index"),
    (lambda: MUP.layer_scales(0, 1, 4, 4), "n_layers"),
    (lambda: MUP.layer_scales(0, 3, 0, 4), "fan_in"),
    (lambda: MUP.layer_scales(0, 3, 4, 4, std=0.0), "std"),
    (lambda: MUP.bias_scales(0, 3, 4, std=float("nan")), "std"),
    (lambda: MUP.abc(1), "n_layers"),
    (lambda: ABC((0.0, 0.0), (0.5,), 0.0), "ABC.b"),
    (lambda: Parameterization.from_config({"name": "mup", "width": 3}), "parameterization"),
])
def test_bad_input_names_the_parameter(call, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        call()
    assert where in str(e.value) and "allowed" in str(e.value)


@pytest.mark.parametrize("p", [STANDARD, NTK, MEAN_FIELD, MUP, Parameterization("mup", base_width=64),
                               Parameterization("ntk", form="practical"),
                               Parameterization("mup", form="multiplier", base_width=32)], ids=str)
def test_config_round_trip(p: Parameterization) -> None:
    cfg = p.to_config()
    assert Parameterization.from_config(json.loads(json.dumps(cfg))) == p
    if p.base_width is None and p.form == Parameterization(p.name).form:
        assert cfg == p.name  # plain names stay plain strings (what Architecture.to_config writes)
        spec = mlp(3, [5, 5], parameterization=p)
        assert Architecture.from_config(spec.to_config()) == spec


# ========================================================================================================
# abc exponents and the stability dichotomy (Yang–Hu 2011.14522 Thm 3.3 / 3.8)
# ========================================================================================================
@pytest.mark.parametrize("n_layers", [2, 3, 5])
def test_dichotomy(n_layers: int) -> None:
    """PHYSICS.md's r column is the deep (L >= 2) value. With one hidden layer the min over hidden layers sees only
    the input layer's 2a_1 + 1, so SP has r = 0 with O(1) LR (unstable through 2a_{L+1} + c = 0 < 1: the output
    blows up, not the features) and r = 3/2 with LR ∝ 1/n (the input layer moves by n^{-3/2})."""
    sp = STANDARD.stability(n_layers)
    assert sp.r == (-1.0 if n_layers > 2 else 0.0) and not sp.stable and sp.regime == "unstable"
    assert ("r >= 0" in sp.violated) == (n_layers > 2) and "2 a_{L+1} + c >= 1" in sp.violated
    sp1 = STANDARD.stability(n_layers, c=1)
    assert sp1.r == (0.5 if n_layers > 2 else 1.5)
    assert sp1.kernel_regime and not sp1.feature_learning and sp1.regime == "kernel"
    ntk = NTK.stability(n_layers)
    assert ntk.r == 0.5 and ntk.kernel_regime and ntk.regime == "kernel"
    for p in (MUP, MEAN_FIELD):
        s = p.stability(n_layers)
        assert s.r == 0.0 and s.feature_learning and not s.kernel_regime and s.regime == "feature learning"
    # raising the LR exponent of a stable nontrivial parameterization makes it trivial, never both regimes
    for p in (NTK, MUP):
        s = p.stability(n_layers, c=p.abc(n_layers).c + 1)
        assert s.stable and not s.nontrivial and s.regime == "trivial"


def test_symmetry_shift_is_an_invariance() -> None:
    """(a + s, b − s, c − 2s) keeps r, the regime and the effective (Var, SGD) exponents; MF(L = 1) is the
    s = ½ shift of μP (PHYSICS.md §8)."""
    for p in (STANDARD, NTK, MUP, MEAN_FIELD):
        abc = p.abc(4)
        for s in (-0.5, 0.25, 1.0):
            shifted = abc.shift(s)
            assert shifted.r == pytest.approx(abc.r)
            assert shifted.stability().regime == abc.stability().regime
            eff = np.array(abc.effective_exponents())[:, :2]
            assert np.allclose(np.array(shifted.effective_exponents())[:, :2], eff)
    assert MUP.abc(2).shift(0.5) == MEAN_FIELD.abc(2)
    assert MUP.abc(5).shift(0.5) == MEAN_FIELD.abc(5)  # the deep mean-field class is μP's


# ========================================================================================================
# PHYSICS.md §8 table, entry by entry, from the concrete numbers
# ========================================================================================================
def _fitted(p: Parameterization, what: str, kind: str = "weight", n: int = 64, d_in: int = 5) -> list[float]:
    """Exponent of n of ``what`` in each role, fitted from widths n and 16n (3 layers: input, hidden, readout)."""
    def scales(width: int) -> list[LayerScales]:
        fans = [(d_in, width), (width, width), (width, 1)]
        if kind == "bias":
            return [p.bias_scales(i, 3, fo, 0.7) for i, (_, fo) in enumerate(fans)]
        return [p.layer_scales(i, 3, fi, fo, 1.3) for i, (fi, fo) in enumerate(fans)]

    get = {"multiplier": lambda s: s.multiplier, "var": lambda s: s.init_std ** 2, "sgd": lambda s: s.sgd_lr,
           "adam": lambda s: s.adam_lr, "eff_var": lambda s: s.effective_std ** 2,
           "eff_sgd": lambda s: s.effective_sgd_lr, "eff_adam": lambda s: s.effective_adam_lr}[what]
    lo, hi = scales(n), scales(16 * n)
    return [math.log(get(b) / get(a)) / math.log(16) for a, b in zip(lo, hi)]


# (parameterization, column) -> PHYSICS.md §8 row [input, hidden, output]
TABLE = {
    (STANDARD, "multiplier"): [0, 0, 0], (STANDARD, "var"): [0, -1, -1], (STANDARD, "sgd"): [0, 0, 0],
    (STANDARD, "adam"): [0, 0, 0],
    (NTK, "multiplier"): [0, -0.5, -0.5], (NTK, "var"): [0, 0, 0], (NTK, "sgd"): [0, 0, 0],
    (MEAN_FIELD, "multiplier"): [0, -0.5, -1], (MEAN_FIELD, "var"): [0, 0, 0], (MEAN_FIELD, "sgd"): [1, 1, 1],
    (MEAN_FIELD, "adam"): [0, -0.5, 0],  # L = 1 row: input and output 0 (starred); hidden: deep extension
    (Parameterization("mup", form="multiplier"), "multiplier"): [0.5, 0, -0.5],
    (Parameterization("mup", form="multiplier"), "var"): [-1, -1, -1],
    (Parameterization("mup", form="multiplier"), "sgd"): [0, 0, 0],
    (Parameterization("mup", form="multiplier"), "adam"): [-0.5, -1, -0.5],  # starred
    (MUP, "multiplier"): [0, 0, 0], (MUP, "var"): [0, -1, -2], (MUP, "sgd"): [1, 0, -1], (MUP, "adam"): [0, -1, -1],
}


@pytest.mark.parametrize("key", list(TABLE), ids=[f"{p}-{c}" for p, c in TABLE])
def test_physics_table_entry(key) -> None:
    p, column = key
    assert np.allclose(_fitted(p, column), TABLE[key], atol=1e-9), (_fitted(p, column), TABLE[key])


@pytest.mark.parametrize("p", [STANDARD, NTK, MEAN_FIELD, MUP, Parameterization("mup", form="multiplier"),
                               Parameterization("ntk", form="practical"),
                               Parameterization("mean_field", form="practical")], ids=str)
def test_effective_exponents_match_abc(p: Parameterization) -> None:
    """Gauge-invariant content: Var(W) ∝ n^{−2(a+b)}, SGD LR on W ∝ n^{−(c+2a)} from abc(); Adam LR on W from
    adam_exponents(). Every form of a name has the same effective exponents."""
    eff = np.array(p.abc(3).effective_exponents())
    assert np.allclose(_fitted(p, "eff_var"), eff[:, 0], atol=1e-9)
    assert np.allclose(_fitted(p, "eff_sgd"), eff[:, 1], atol=1e-9)
    assert np.allclose(_fitted(p, "eff_adam"), p.adam_exponents(3), atol=1e-9)
    # μP and mean field are one class; biases follow the input column (hidden biases SGD ∝ n in both)
    if p.name in ("mup", "mean_field"):
        assert np.allclose(_fitted(p, "eff_sgd", "bias"), [1, 1, 0], atol=1e-9)
        assert np.allclose(_fitted(p, "eff_adam", "bias"), [0, 0, 0], atol=1e-9)


def test_forms_are_exact_gauge_copies() -> None:
    """Practical and multiplier forms give identical effective weights and rates, layer by layer."""
    for name in NAMES:
        a, b = Parameterization(name, form="practical"), Parameterization(name, form="multiplier")
        for index, (fi, fo) in enumerate([(7, 300), (300, 200), (200, 3)]):
            for x, y in ((a.layer_scales(index, 3, fi, fo, 1.7), b.layer_scales(index, 3, fi, fo, 1.7)),
                         (a.bias_scales(index, 3, fo, 0.4), b.bias_scales(index, 3, fo, 0.4))):
                for attr in ("effective_std", "effective_sgd_lr", "effective_adam_lr"):
                    assert getattr(x, attr) == pytest.approx(getattr(y, attr), rel=1e-12)


def test_constants_and_base_width() -> None:
    """Effective init variance σ²/fan_in on input and hidden layers in every parameterization (NNGP unchanged);
    μP / MF readouts σ²/(fan_in m); at the base width μP is SP and mean field is NTK, exactly."""
    sigma = 1.3
    for name in NAMES:
        p = Parameterization(name, base_width=64) if name in ("mup", "mean_field") else Parameterization(name)
        for index, (fi, fo) in enumerate([(5, 256), (256, 256), (256, 1)]):
            s = p.layer_scales(index, 3, fi, fo, sigma)
            m = 4.0 if (index == 2 and name in ("mup", "mean_field")) else 1.0
            assert s.effective_std ** 2 == pytest.approx(sigma ** 2 / (fi * m), rel=1e-12)
    for p, ref in ((Parameterization("mup", base_width=48), STANDARD), (Parameterization("mf", base_width=48), NTK)):
        for index, (fi, fo) in enumerate([(5, 48), (48, 48), (48, 2)]):
            assert p.layer_scales(index, 3, fi, fo, sigma) == ref.layer_scales(index, 3, fi, fo, sigma)
            assert p.bias_scales(index, 3, fo, 0.3) == ref.bias_scales(index, 3, fo, 0.3)
    # base_width=None is base 1: PHYSICS.md's practical constants (readout Var σ²/fan_in², SGD η fan_out, η/fan_in)
    assert MUP.layer_scales(2, 3, 100, 1, sigma).init_std == pytest.approx(sigma / 100)
    assert MUP.layer_scales(0, 3, 5, 100, sigma).sgd_lr == 100 and MUP.layer_scales(2, 3, 100, 1).sgd_lr == 0.01
    assert MUP.layer_scales(1, 3, 100, 100).adam_lr == 0.01


# ========================================================================================================
# parameterize(): a user's torch model
# ========================================================================================================
def _model(width: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 2))


def test_parameterize_roles_init_and_groups() -> None:
    g = torch.Generator().manual_seed(0)
    model = parameterize(_model(256), "mup", generator=g, base_width=64, std=1.5, bias_std=0.5)
    info = describe(model)
    assert [r.role for r in info] == ["input", "hidden", "readout"] and [r.name for r in info] == ["0", "2", "4"]
    p = Parameterization("mup", base_width=64)
    for k, r in enumerate(info):
        assert r.weight == p.layer_scales(k, 3, r.fan_in, r.fan_out, 1.5)
        assert r.bias == p.bias_scales(k, 3, r.fan_out, 0.5)
        w = model[2 * k].parametrizations.weight.original.detach().double()
        # sample std of N Gaussian entries: relative standard error 1/sqrt(2N); 5σ band
        rel = float(w.std() / r.weight.init_std - 1)
        assert abs(rel) < 5 / math.sqrt(2 * w.numel()), (k, rel)
    for opt, attr in (("sgd", "sgd_lr"), ("adam", "adam_lr")):
        groups = param_groups(model, 0.1, opt)
        assert len(groups) == 6
        for grp in groups:
            layer = info[[r.name for r in info].index(grp["name"].split(".")[0])]
            scales = layer.weight if grp["name"].endswith("weight") else layer.bias
            assert grp["lr"] == pytest.approx(0.1 * getattr(scales, attr))


def test_parameterize_forward_uses_multipliers() -> None:
    """NTK form: stored w ~ N(0, 1), forward W = σ w/√fan_in; the module computes the effective network."""
    g = torch.Generator().manual_seed(1)
    model = parameterize(_model(32), "ntk", generator=g, std=1.2, bias_std=0.3)
    x = torch.randn(4, 3, generator=g)
    h = x
    for k, lin in enumerate((model[0], model[2], model[4])):
        w, b = lin.parametrizations.weight.original, lin.parametrizations.bias.original
        h = h @ (1.2 / math.sqrt(w.shape[1]) * w).T + 0.3 * b
        h = torch.tanh(h) if k < 2 else h
    assert torch.allclose(model(x), h, atol=1e-6)
    w0 = model[2].parametrizations.weight.original.detach()
    assert abs(float(w0.std()) - 1.0) < 5 / math.sqrt(2 * w0.numel())


def test_parameterize_explicit_roles_and_zero_readout() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.out = nn.Linear(16, 1)  # registered first: order alone would call it the input layer
            self.inp = nn.Linear(4, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.inp(x)))

    net = parameterize(Net(), "mup", generator=torch.Generator().manual_seed(2), zero_readout=True,
                       layers={"inp": "input", "out": "readout"})
    assert {r.name: r.role for r in describe(net)} == {"out": "readout", "inp": "input"}
    assert float(net.out.weight.detach().abs().max()) == 0.0
    assert float(net(torch.ones(2, 4)).detach().abs().max()) == 0.0


@pytest.mark.parametrize("build,kwargs,where", [
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1)), {}, "model.1"),
    (lambda: nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2, 1)), {}, "model.0"),
    (lambda: nn.Sequential(nn.Linear(3, 1)), {}, "model"),
    (lambda: _model(), {"layers": {"0": "input", "2": "hidden"}}, "layers"),
    (lambda: _model(), {"layers": {"0": "input", "2": "hidden", "4": "output"}}, "layers['4']"),
    (lambda: _model(), {"layers": {"0": "input", "2": "hidden", "4": "readout", "9": "hidden"}}, "layers"),
    (lambda: _model(), {"std": -1.0}, "std"),
    (lambda: _model(), {"base_width": 0}, "base_width"),
    (lambda: parameterize(_model(), "standard", generator=torch.Generator()), {}, "model.0"),
])
def test_parameterize_errors(build, kwargs: dict, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        parameterize(build(), "mup", generator=torch.Generator().manual_seed(0), **kwargs)
    assert str(e.value).startswith(where) or where in str(e.value)


def test_param_groups_errors() -> None:
    with pytest.raises(ConfigError, match="model"):
        param_groups(_model(), 0.1)
    model = parameterize(_model(), "mup", generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="optimizer"):
        param_groups(model, 0.1, "rmsprop")
    with pytest.raises(ConfigError, match="lr"):
        param_groups(model, -1.0)
    model.extra = nn.Parameter(torch.zeros(3))
    with pytest.raises(ConfigError, match="extra"):
        param_groups(model, 0.1)


def _train(p: Parameterization, optimizer: str, *, width: int, steps: int = 3, lr: float, eps: float = 1e-8,
           depth: int = 2) -> list[torch.Tensor]:
    """Outputs φ_t on the training batch, t = 0..steps, from a fixed effective init (seeded, gauge-free)."""
    torch_gen = torch.Generator().manual_seed(5)
    model = parameterize(mlp_model(4, width, depth), p, generator=torch_gen, std=1.4, bias_std=0.3)
    x, y = regression_task(16, 4, seed=3)
    groups = param_groups(model, lr, optimizer)
    opt = torch.optim.SGD(groups, lr=lr) if optimizer == "sgd" else torch.optim.Adam(groups, lr=lr, eps=eps)
    outs = []
    for t in range(steps + 1):
        f = model(x)
        outs.append(f.detach().double())
        if t < steps:
            opt.zero_grad()
            (0.5 * (f - y).pow(2).mean()).backward()
            opt.step()
    return outs


@pytest.mark.parametrize("name,optimizer", [("mup", "sgd"), ("mup", "adam"), ("mean_field", "sgd"),
                                            ("mean_field", "adam"), ("ntk", "sgd"), ("ntk", "adam")])
def test_forms_train_identically(name: str, optimizer: str) -> None:
    """The abc symmetry in action (PHYSICS.md §8): the practical and multiplier forms of one parameterization,
    from the same effective init, follow the same trajectory — exactly for SGD, for Adam up to ε (here
    1e-12, far below the gradients). This is the dynamic check of the starred Adam-LR exponents: a wrong
    Adam exponent in one form would make the trajectories differ by a power of m = 4."""
    trajectories = []
    for form in ("practical", "multiplier"):
        p = Parameterization(name, form=form, base_width=16) if name != "ntk" else Parameterization(name, form=form)
        # the multiplier form stores w = W/M: rebuild the same effective weights through the seeded init
        trajectories.append(_train(p, optimizer, width=64, lr=0.05 if optimizer == "sgd" else 0.01, eps=1e-12))
    for a, b in zip(*trajectories):
        assert torch.allclose(a, b, rtol=2e-4, atol=2e-5), float((a - b).abs().max())
    assert float((trajectories[0][-1] - trajectories[0][0]).abs().mean()) > 1e-3  # it did train


# ========================================================================================================
# Cross-check against the mup package (Tensor Programs V reference implementation)
# ========================================================================================================
MUP_SCRIPT = r'''
import json, sys
import numpy as np, torch
from torch import nn
import mup

def run(npz_path):
    with torch.random.fork_rng():  # mup layers initialise from the global torch RNG: seed it, leave it as found
        torch.manual_seed(0)
        return _run(npz_path)

def _run(npz_path):
    z = np.load(npz_path)
    width, base, d_in, steps, lr = int(z["width"]), int(z["base"]), int(z["d_in"]), int(z["steps"]), float(z["lr"])
    def build(n):
        return nn.Sequential(nn.Linear(d_in, n), nn.ReLU(), nn.Linear(n, n), nn.ReLU(), mup.MuReadout(n, 1))
    out = {}
    for optimizer in ("sgd", "adam"):
        model = build(width)
        mup.set_base_shapes(model, build(base), rescale_params=False)
        lins = [model[0], model[2], model[4]]
        # default (torch) init statistics of the effective weights, before overwriting
        out[optimizer + "_init_std"] = [float(l.weight.detach().std()) for l in lins[:2]] + [
            float(lins[2].weight.detach().std() * (lins[2].width_mult() ** 0.5) / lins[2].width_mult())]
        with torch.no_grad():
            for k, l in enumerate(lins):
                mult = 1.0 / l.width_mult() if k == 2 else 1.0     # MuReadout: W_eff = w / width_mult
                l.weight.copy_(torch.from_numpy(z["W%d" % k]) / mult)
                l.bias.copy_(torch.from_numpy(z["b%d" % k]))
        opt_cls = mup.MuSGD if optimizer == "sgd" else mup.MuAdam
        kw = {} if optimizer == "sgd" else {"eps": 1e-12}
        opt = opt_cls(model.parameters(), lr=lr, **kw)
        # effective LR factor seen by each effective parameter (MuReadout multiplier squared / to the first)
        factors = {}
        for g in opt.param_groups:
            for p in g["params"]:
                for k, l in enumerate(lins):
                    for kind in ("weight", "bias"):
                        if p is getattr(l, kind):
                            mult = 1.0 / l.width_mult() if (k == 2 and kind == "weight") else 1.0
                            factors["%d.%s" % (k, kind)] = g["lr"] / lr * (mult ** 2 if optimizer == "sgd" else mult)
        out[optimizer + "_factors"] = factors
        x, y = torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
        rec = []
        hooks = [l.register_forward_hook(lambda m, i, o: rec.append(o.detach().double())) for l in lins]
        sizes, deltas, h0 = [], [], None
        for t in range(steps + 1):
            rec.clear()
            f = model(x)
            hs = list(rec)
            h0 = hs if h0 is None else h0
            sizes.append([float(h.abs().mean()) for h in hs])
            deltas.append([float((h - g).abs().mean()) for h, g in zip(hs, h0)])
            if t < steps:
                opt.zero_grad()
                (0.5 * (f - y).pow(2).mean()).backward()
                opt.step()
        for h in hooks:
            h.remove()
        out[optimizer + "_size"], out[optimizer + "_delta"] = sizes, deltas
    return out

if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1])))
'''


def _mup_numbers(npz: Path, tmp_path: Path) -> dict:
    """mup's numbers: in-process if ``import mup`` works here, else through a python that has it."""
    try:
        import mup  # noqa: F401
    except ImportError:
        pass
    else:
        namespace: dict = {}
        exec(compile(MUP_SCRIPT, "mup_script", "exec"), namespace)
        return namespace["run"](str(npz))
    default = "/work/.peers/torch/bin/python"
    python = os.environ.get("NNFT_PEERS_TORCH_PYTHON", default if Path(default).exists() else "")
    if not python or not Path(python).exists():
        pytest.skip("mup not installed: `import mup` fails here and NNFT_PEERS_TORCH_PYTHON names no python")
    script = tmp_path / "mup_run.py"
    script.write_text(MUP_SCRIPT)
    proc = subprocess.run([python, str(script), str(npz)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0 and "No module named 'mup'" in proc.stderr:
        pytest.skip(f"mup not installed in {python}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mup_package_agrees(tmp_path: Path) -> None:
    """Same MLP (d=4 → 256 → 256 → 1, ReLU, base width 64), same effective initial weights: our μP
    (practical form, param_groups + torch.optim) and mup (MuReadout + set_base_shapes + MuSGD/MuAdam) give
    (i) the same effective LR factor for every parameter, to 1e-12; (ii) the same per-layer mean |h_t| and
    |h_t − h_0| over 3 steps of SGD and of Adam, to 1e-4 relative (float32 round-off; Adam ε = 1e-12 in both,
    where the gauges would otherwise differ by ε/m); (iii) mup's default init has our effective init
    exponents: its effective std over ours is the same constant (1/(σ√3), torch's uniform init) in every
    layer, to sampling error."""
    width, base, d_in, steps, lr, sigma = 256, 64, 4, 3, 0.02, 1.4
    p = Parameterization("mup", base_width=base)
    x, y = regression_task(32, d_in, seed=7)
    ours: dict = {}
    for optimizer in ("sgd", "adam"):
        model = parameterize(mlp_model(d_in, width, 2), p, generator=torch.Generator().manual_seed(11), std=sigma,
                             bias_std=0.2)
        lins = [model[0], model[2], model[4]]
        if optimizer == "sgd":
            arrays = {"W%d" % k: l.weight.detach().numpy() for k, l in enumerate(lins)}
            arrays.update({"b%d" % k: l.bias.detach().numpy() for k, l in enumerate(lins)})
            np.savez(tmp_path / "init.npz", x=x.numpy(), y=y.numpy(), width=width, base=base, d_in=d_in,
                     steps=steps, lr=lr, **arrays)
        groups = param_groups(model, lr, optimizer)
        opt = torch.optim.SGD(groups, lr=lr) if optimizer == "sgd" else torch.optim.Adam(groups, lr=lr, eps=1e-12)
        ours[optimizer + "_factors"] = {f"{int(g['name'].split('.')[0]) // 2}.{g['name'].split('.')[1]}": g["lr"] / lr
                                        for g in groups}
        rec: list = []
        hooks = [l.register_forward_hook(lambda m, i, o: rec.append(o.detach().double())) for l in lins]
        sizes, deltas, h0 = [], [], None
        for t in range(steps + 1):
            rec.clear()
            f = model(x)
            hs = list(rec)
            h0 = hs if h0 is None else h0
            sizes.append([float(h.abs().mean()) for h in hs])
            deltas.append([float((h - g).abs().mean()) for h, g in zip(hs, h0)])
            if t < steps:
                opt.zero_grad()
                (0.5 * (f - y).pow(2).mean()).backward()
                opt.step()
        for h in hooks:
            h.remove()
        ours[optimizer + "_size"], ours[optimizer + "_delta"] = sizes, deltas
    theirs = _mup_numbers(tmp_path / "init.npz", tmp_path)
    for optimizer in ("sgd", "adam"):
        f_ours, f_mup = ours[optimizer + "_factors"], theirs[optimizer + "_factors"]
        assert set(f_ours) == set(f_mup)
        for key in f_ours:
            assert f_ours[key] == pytest.approx(f_mup[key], rel=1e-12), (optimizer, key)
        for what in ("size", "delta"):
            a, b = np.array(ours[optimizer + "_" + what]), np.array(theirs[optimizer + "_" + what])
            assert np.allclose(a[1:] if what == "delta" else a, b[1:] if what == "delta" else b, rtol=1e-4,
                               atol=1e-7), (optimizer, what, a, b)
        assert np.array(ours[optimizer + "_delta"])[-1].min() > 1e-3  # the check compares moving coordinates
    # (iii) init exponents: mup effective std / ours = constant across layers (default torch init U(±1/√fan_in));
    # the sample std of N uniform entries has relative standard error sqrt((κ − 1)/(4N)), κ = 9/5: 5σ band
    mine = [p.layer_scales(k, 3, fi, fo, sigma).effective_std for k, (fi, fo) in
            enumerate([(d_in, width), (width, width), (width, 1)])]
    ratio = np.array(theirs["sgd_init_std"]) / np.array(mine)
    entries = np.array([width * d_in, width * width, width])
    band = 5 * math.sqrt(0.8 / 4) / np.sqrt(entries)
    assert np.all(np.abs(ratio * sigma * math.sqrt(3) - 1) < band), (ratio * sigma * math.sqrt(3), band)
