"""Architecture specs (:mod:`nnft.spec`): config round trips, validation errors, and the presets of PHYSICS.md §2."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

import nnft
from nnft import ConfigError
from nnft.spec import (NTK, PRESETS, Activation, Architecture, Layer, Normal, Parameterization, Propagator,
                       Sampled, Spectral, SpectralAmplitude, Spectrum, Uniform, UniformBall, ball_volume, cos_net, erf_net, gauss_net, mlp, relu_net,
                       scalar_net)

_MESSAGE = re.compile(r"^.+: got .+; allowed: .+$", re.S)  # the house shape (nnft.errors)


def _mixed_density_mlp() -> Architecture:
    """An MLP using every non-Gaussian density: a ball first layer, uniform hidden weights and biases, a
    user-sampled bias, the NTK parameterization and a parametrized activation."""
    return Architecture(
        d_in=3, name="mixed", activation=Activation("leaky_relu", 0.2), parameterization=NTK,
        layers=(Layer(width=8, weight=UniformBall(2.5), bias=Uniform(-1.0, 2.0)),
                Layer(width=6, weight=Uniform.with_std(1.5), bias=None, scaling="none"),
                Layer(width=4, weight=Normal(1.3), bias=Sampled("torch:randn", 1.0, symmetric=True)),
                Layer(width=2, weight=Normal(0.7), bias=Normal(0.1))))


def _design(momenta: str) -> Architecture:
    from nnft.fieldtheory.spectrum import design, power

    return design(power(2.0, 0.7), 2, cutoff=12.0, width=6, momenta=momenta)


_MASSIVE = "nnft.fieldtheory.spectrum:massive_profile"

SPECS: dict[str, Callable[[], Architecture]] = {
    **{f"{name}-default": fn for name, fn in PRESETS.items()},
    "erf-net-general": lambda: erf_net(7, 3, sigma_w0=1.3, sigma_b0=0.0, sigma_w1=0.9, sigma_b1=0.4),
    "scalar-net-d3": lambda: scalar_net(12, 3, mass=0.7, cutoff=5.5),
    "cos-net-d2": lambda: cos_net(9, 2, sigma_a=1.7, sigma_w=0.3),
    "mlp-monomial": lambda: mlp(2, [5, 4], 3, activation=Activation("monomial", 3), sigma_w=1.1, sigma_b=0.2),
    "mlp-user-activation": lambda: mlp(2, [5], activation="torch:tanh", bias=False),
    "mixed-densities": _mixed_density_mlp,
    "mup-base-width": lambda: mlp(3, [8, 8], activation="relu",
                                  parameterization=Parameterization("mup", form="multiplier", base_width=4)),
    "spectral-importance": lambda: _design("importance"),
    "spectral-uniform": lambda: _design("uniform"),
}


# ========================================================================================================
# Round trips
# ========================================================================================================
@pytest.mark.parametrize("name", list(SPECS))
def test_config_round_trip(name: str) -> None:
    spec = SPECS[name]()
    cfg = spec.to_config()
    back = Architecture.from_config(cfg)
    assert back == spec and hash(back) == hash(spec)
    assert back.to_config() == cfg
    # the config is plain data (what the TOML/JSON writers see)
    assert json.loads(json.dumps(cfg)) == cfg


@pytest.mark.parametrize("suffix", [".toml", ".json"])
@pytest.mark.parametrize("name", list(SPECS))
def test_save_load_round_trip(name: str, suffix: str, tmp_path: Path) -> None:
    spec = SPECS[name]()
    path = tmp_path / f"spec{suffix}"
    spec.save(path)
    assert Architecture.load(path) == spec
    text = path.read_text()
    assert ("[architecture]" in text) if suffix == ".toml" else ("architecture" in json.loads(text))
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left behind


def test_hand_written_toml_with_defaults(tmp_path: Path) -> None:
    """A minimal hand-written file: omitted weight/bias/scaling/parameterization/name take their defaults."""
    path = tmp_path / "net.toml"
    path.write_text('[architecture]\nd_in = 2\nactivation = "erf"\n\n[[architecture.layers]]\nwidth = 16\n\n'
                    '[[architecture.layers]]\nwidth = 1\nbias = { kind = "normal", std = 0.5 }\n')
    spec = Architecture.load(path)
    assert spec == Architecture(d_in=2, activation=Activation("erf"),
                                layers=(Layer(width=16, weight=Normal(1.0), bias=None),
                                        Layer(width=1, weight=Normal(1.0), bias=Normal(0.5))))


# ========================================================================================================
# Validation: named, uniform, actionable errors
# ========================================================================================================
def _message(excinfo: pytest.ExceptionInfo) -> str:
    msg = str(excinfo.value)
    assert _MESSAGE.match(msg), msg
    assert "\n" not in msg  # one line for the CLI
    return msg


def test_negative_width() -> None:
    with pytest.raises(ConfigError) as e:
        Layer(width=-4)
    assert _message(e).startswith("Layer.width: got -4")


def test_unknown_activation() -> None:
    with pytest.raises(ConfigError) as e:
        mlp(1, [4], activation="foo")
    msg = _message(e)
    assert msg.startswith("activation: got 'foo'") and "relu" in msg and "module:function" in msg


def test_monomial_power_zero() -> None:
    with pytest.raises(ConfigError) as e:
        Activation("monomial", 0)
    assert "'monomial'.param" in _message(e)


def test_nan_std() -> None:
    with pytest.raises(ConfigError) as e:
        Normal(float("nan"))
    assert _message(e).startswith("Normal.std: got nan")


def test_missing_keys() -> None:
    with pytest.raises(ConfigError) as e:
        Architecture.from_config({"d_in": 1})
    msg = _message(e)
    assert "activation" in msg and "layers" in msg and "missing" in msg


@pytest.mark.parametrize("suffix,text", [(".toml", "[architecture\nd_in = "), (".json", '{"architecture": {')])
def test_malformed_file(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        Architecture.load(path)
    msg = _message(e)
    assert msg.startswith("config: got") and str(path) in msg and ("TOML" if suffix == ".toml" else "JSON") in msg


def test_file_without_architecture_table_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text("[ensemble]\nn_networks = 10\n")
    with pytest.raises(ConfigError) as e:
        Architecture.load(path)
    assert "[architecture]" in _message(e)
    with pytest.raises(ConfigError) as e:
        Architecture.load(tmp_path / "absent.json")
    assert "absent.json" in _message(e)


_GOOD_LAYERS = (Layer(width=4), Layer(width=1))


def _layer(**kw: Any) -> Layer:
    return Layer(**{"width": 4, **kw})


def _arch(**kw: Any) -> Architecture:
    return Architecture(**{"d_in": 2, "layers": _GOOD_LAYERS, "activation": "relu", **kw})


# (class, field) -> (constructor taking that field, invalid values, text the message must contain)
INVALID: dict[tuple[type, str], tuple[Callable[[Any], Any], list[Any], str]] = {
    (Layer, "width"): (lambda v: _layer(width=v), [0, -3, 2.5, True, "8", None], "Layer.width"),
    (Layer, "weight"): (lambda v: _layer(weight=v), ["normal", 1.0, None, {"kind": "normal"}], "Layer.weight"),
    (Layer, "bias"): (lambda v: _layer(bias=v), [1.0, "normal", Activation("relu")], "Layer.bias"),
    (Layer, "scaling"): (lambda v: _layer(scaling=v), ["sqrt", None, "FAN_IN"], "Layer.scaling"),
    (Normal, "std"): (lambda v: Normal(v), [-1.0, float("nan"), float("inf"), "1", None], "Normal.std"),
    (Uniform, "low"): (lambda v: Uniform(v, 1.0), [1.0, 2.0, float("nan"), float("-inf"), "0"], "low"),
    (Uniform, "high"): (lambda v: Uniform(0.0, v), [0.0, -1.0, float("nan"), float("inf"), None], "high"),
    (UniformBall, "radius"): (lambda v: UniformBall(v), [0.0, -1.0, float("nan"), float("inf")], "UniformBall.radius"),
    (Sampled, "sampler"): (lambda v: Sampled(v, 1.0), ["randn", "no_such_module_q:f", "math:no_such_fn", "math:pi", 3],
                           "Sampled.sampler"),
    (Sampled, "std"): (lambda v: Sampled("torch:randn", v), [0.0, -2.0, float("nan")], "Sampled.std"),
    (Spectrum, "profile"): (lambda v: Spectrum(v), ["x", "no_mod_q:f", 3], "Spectrum.profile"),
    (Spectrum, "params"): (lambda v: Spectrum(_MASSIVE, v), [{"mass": "1"}, {"mass": float("nan")}],
                           "Spectrum.params"),
    (Spectral, "spectrum"): (lambda v: Spectral(v), ["massive", 1.0], "Spectral.spectrum"),
    (Spectral, "cutoff"): (lambda v: Spectral(Spectrum(_MASSIVE, {"mass": 1.0}), v), [0.0, -1.0, float("nan")],
                           "Spectral.cutoff"),
    (SpectralAmplitude, "spectrum"): (lambda v: SpectralAmplitude(v), [3.0], "SpectralAmplitude.spectrum"),
    (Propagator, "mass"): (lambda v: Propagator(v), [0.0, -1.0, float("nan"), "1"], "Propagator.mass"),
    (Architecture, "d_in"): (lambda v: _arch(d_in=v), [0, -1, 1.5, True], "Architecture.d_in"),
    (Architecture, "layers"): (lambda v: _arch(layers=v), [(), (Layer(width=3),), (1, 2), "ab"],
                               "Architecture.layers"),
    (Architecture, "activation"): (lambda v: _arch(activation=v), [5, "foo", None], "activation"),
    (Architecture, "parameterization"): (lambda v: _arch(parameterization=v), ["mu-p", 3], "parameterization"),
    (Architecture, "amplitude"): (lambda v: _arch(amplitude=v), ["x", 1.0, Normal(1.0)], "Architecture.amplitude"),
    (Activation, "name"): (lambda v: Activation(v), ["foo", "", 3, "no_such_module_q:f", "torch:no_such_fn"],
                           "activation"),
    (Activation, "param"): (lambda v: Activation("monomial", v), [0, 9, 2.5, -1], "param"),
    (Parameterization, "name"): (lambda v: Parameterization(v), ["mu-p", "NTK", None], "parameterization"),
    (Parameterization, "form"): (lambda v: Parameterization("mup", form=v), ["yang", 3], "Parameterization.form"),
    (Parameterization, "base_width"): (lambda v: Parameterization("ntk", base_width=v), [64, 0],
                                       "Parameterization.base_width"),
}
# Fields accepted as any value, by design or as a known gap (reported): a label and a hint flag.
UNCONSTRAINED = {(Architecture, "name"), (Sampled, "symmetric")}


def test_every_field_has_an_invalid_case() -> None:
    """A new field on a spec class must come with its validation (or be declared unconstrained)."""
    for cls in {c for c, _ in INVALID} | {c for c, _ in UNCONSTRAINED}:
        for f in dataclasses.fields(cls):
            assert (cls, f.name) in INVALID or (cls, f.name) in UNCONSTRAINED, f"{cls.__name__}.{f.name}"


@pytest.mark.parametrize("key", list(INVALID), ids=[f"{c.__name__}.{f}" for c, f in INVALID])
def test_invalid_field_names_the_parameter(key: tuple[type, str]) -> None:
    build, values, where = INVALID[key]
    for value in values:
        with pytest.raises(ConfigError) as e:
            build(value)
        msg = _message(e)
        assert where in msg, (value, msg)


def test_activation_param_rules() -> None:
    for name, param in [("relu", 0.3), ("erf", 1.0), ("leaky_relu", float("nan")), ("leaky_relu", float("inf"))]:
        with pytest.raises(ConfigError) as e:
            Activation(name, param)
        assert f"'{name}'.param" in _message(e)
    assert Activation("leaky_relu").param == 0.01 and Activation("monomial").param == 2.0


def test_ball_density_only_in_the_first_layer() -> None:
    with pytest.raises(ConfigError) as e:
        _arch(layers=(Layer(width=4), Layer(width=1, weight=UniformBall(1.0))))
    assert "Architecture.layers[1].weight" in _message(e)


@pytest.mark.parametrize("cfg,where", [
    ({"d_in": 1, "activation": "relu", "layers": [{"width": 2}, {"width": 1}], "depth": 3}, "unknown keys"),
    ({"d_in": 1, "activation": "relu", "layers": [{"width": 2, "weight": {"kind": "cauchy"}}, {"width": 1}]},
     "architecture.layers[0].weight.kind"),
    ({"d_in": 1, "activation": "relu", "layers": [{"width": 2}, {"width": 1, "bias": {"kind": "normal", "sd": 1}}]},
     "architecture.layers[1].bias"),
    ({"d_in": 1, "activation": "relu", "layers": [{"width": 2, "dropout": 0.1}, {"width": 1}]},
     "architecture.layers[0]"),
    ({"d_in": 1, "activation": "relu", "layers": [{"width": -2}, {"width": 1}]}, "Layer.width"),
    ({"d_in": 1, "activation": {"param": 2}, "layers": [{"width": 2}, {"width": 1}]}, "architecture.activation"),
    ({"d_in": 1, "activation": "relu", "layers": {"width": 2}}, "architecture.layers"),
    ({"d_in": 1, "activation": "relu", "layers": [{"width": 2}, {"width": 1}], "amplitude": {"mass": 1}},
     "architecture.amplitude"),
    ({"d_in": 1, "activation": "relu", "layers": [{"width": 2}, {"width": 1}], "parameterization": "mu-p"},
     "parameterization"),
])
def test_from_config_errors_name_the_location(cfg: dict, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        Architecture.from_config(cfg)
    assert where in _message(e)


@pytest.mark.parametrize("call,where", [
    (lambda: mlp(1, [], activation="relu"), "hidden"),
    (lambda: mlp(1, [4], sigma_w=0.0), "sigma_w"),
    (lambda: mlp(1, [4], sigma_b=-1.0), "sigma_b"),
    (lambda: mlp(1, [4], sigma_w=float("nan")), "sigma_w"),
    (lambda: scalar_net(10, 1, cutoff=-1.0), "cutoff"),
    (lambda: scalar_net(10, 1, mass=0.0), "Propagator.mass"),
    (lambda: erf_net(0), "Layer.width"),
    (lambda: Uniform.with_std(-1.0), "Uniform.std"),
])
def test_factory_errors(call: Callable[[], Any], where: str) -> None:
    with pytest.raises(ConfigError) as e:
        call()
    assert where in _message(e)


# ========================================================================================================
# Presets: exactly the definitions of PHYSICS.md §2
# ========================================================================================================
def test_one_hidden_layer_presets_defaults() -> None:
    """σ_W = σ_b = 1 in both layers (NN-QFT, arXiv:2008.08601), except ReLU-net, which has no biases."""
    for fn, act in ((erf_net, "erf"), (gauss_net, "gauss")):
        spec = fn(37, 2)
        assert spec.activation == Activation(act) and spec.d_in == 2 and spec.hidden_widths == (37,)
        assert spec.layers == (Layer(width=37, weight=Normal(1.0), bias=Normal(1.0)),
                               Layer(width=1, weight=Normal(1.0), bias=Normal(1.0)))
    spec = relu_net(37, 2)
    assert spec.activation == Activation("relu")
    assert all(layer.bias is None for layer in spec.layers)
    assert [layer.weight for layer in spec.layers] == [Normal(1.0), Normal(1.0)]


def test_one_hidden_layer_preset_variances() -> None:
    """W0 ~ N(0, σ_W0² I/d), b0 ~ N(0, σ_b0²), W1 ~ N(0, σ_W1²/N), b1 ~ N(0, σ_b1²); a zero σ_b means no bias."""
    spec = erf_net(50, 3, sigma_w0=1.3, sigma_b0=0.7, sigma_w1=0.9, sigma_b1=0.0)
    first, readout = spec.layers
    assert first.weight_var(3) == pytest.approx(1.3**2 / 3, rel=1e-15) and first.bias_var == pytest.approx(0.49)
    assert readout.weight_var(50) == pytest.approx(0.81 / 50, rel=1e-15) and readout.bias is None


def test_cos_net_preset() -> None:
    """φ = N^{-1/2} Σ a_i cos(w_i·x + b_i), a ~ N(0, σ_a²), w ~ N(0, σ_w² I/d), b ~ U[−π, π]; no output bias."""
    spec = cos_net(20, 3, sigma_a=1.7, sigma_w=0.4)
    first, readout = spec.layers
    assert spec.activation == Activation("cos") and spec.amplitude is None
    assert first.weight == Normal(0.4) and first.scaling == "fan_in"
    assert first.bias == Uniform(-math.pi, math.pi) and first.bias.is_full_phase
    assert readout.weight == Normal(1.7) and readout.bias is None and readout.weight_var(20) == pytest.approx(
        1.7**2 / 20, rel=1e-15)


@pytest.mark.parametrize("d,vol", [(1, lambda L: 2 * L), (2, lambda L: math.pi * L**2),
                                   (3, lambda L: 4 * math.pi * L**3 / 3)])
def test_scalar_net_preset(d: int, vol: Callable[[float], float]) -> None:
    """Readout W_i = sqrt(2 vol/(σ_a²(2π)^d)) a_i, a ~ N(0, σ_a²/N): std sqrt(2 vol/(2π)^d) with fan-in
    scaling; momenta uniform in the ball |b| < Λ (unscaled); phase U[−π, π]; amplitude (b² + m²)^{-1/2}."""
    cutoff, mass = 6.5, 0.8
    spec = scalar_net(30, d, mass=mass, cutoff=cutoff)
    first, readout = spec.layers
    assert ball_volume(d, cutoff) == pytest.approx(vol(cutoff), rel=1e-14)
    assert isinstance(readout.weight, Normal)
    assert readout.weight.std == pytest.approx(math.sqrt(2 * vol(cutoff) / (2 * math.pi) ** d), rel=1e-14)
    assert readout.scaling == "fan_in" and readout.bias is None
    assert first.weight == UniformBall(cutoff) and first.scaling == "none"
    assert first.bias == Uniform(-math.pi, math.pi)
    assert spec.amplitude == Propagator(mass) and spec.activation == Activation("cos")


def test_uniform_densities_have_the_stated_second_moment() -> None:
    """std := sqrt(E[ŵ²]): Uniform.with_std(s) has E[ŵ²] = s² exactly; the ball's per-entry E[ŵ_k²] is
    R²/(d + 2) (checked by sampling, 5 standard errors) and it samples inside the ball."""
    assert Uniform.with_std(1.5).moment(2) == pytest.approx(2.25, rel=1e-15)
    assert Uniform(-1.0, 2.0).std == pytest.approx(math.sqrt(1.0), rel=1e-15)  # (8 + 1)/9 = 1
    ball, d = UniformBall(2.5), 3
    w = ball.sample((200_000, d), torch.Generator().manual_seed(0), torch.float64)
    assert float(w.norm(dim=1).max()) < 2.5
    sq = (w**2).numpy()
    want = ball.std_for(d) ** 2
    assert want == pytest.approx(2.5**2 / (d + 2), rel=1e-15)
    assert abs(sq.mean() - want) < 5 * sq.std() / math.sqrt(sq.size)


def test_presets_registry() -> None:
    assert set(PRESETS) == {"erf-net", "relu-net", "gauss-net", "cos-net", "scalar-net"}
    for name, fn in PRESETS.items():
        spec = fn()
        assert spec.name == name and spec.depth == 1 and spec.d_out == 1
    assert nnft.erf_net is erf_net and nnft.scalar_net is scalar_net
