"""Invalid input to measure() raises nnft.ConfigError, whose message names the parameter, what it got
and what is allowed (``<parameter>: got <value>; allowed: <what>``), and writes no files
(DESIGN.md "Conventions", Errors)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import nnft
from nnft import Architecture, ConfigError, DaskExecutor, EnsembleConfig, InProcess, Layer, Normal, Uniform, measure

X = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])
GOOD = dict(n_networks=200, chunk_size=20, n_blocks=10, seed=0, max_order=4)


def uniform_readout_net() -> Architecture:
    """One hidden erf layer with a Uniform (non-Gaussian) readout: the readout estimator does not apply."""
    return Architecture(d_in=1, activation=nnft.Activation("erf"), name="uniform-readout",
                        layers=(Layer(width=10, weight=Normal(1.0), bias=Normal(1.0)),
                                Layer(width=1, weight=Uniform(-1.0, 1.0), bias=None)))


def _x_with(value) -> np.ndarray:
    x = X.copy()
    x[2] = value
    return x


# (id, spec, x, config kwargs, measure kwargs, message prefix: the parameter's name)
MEASURE_CASES = [
    ("x-nan", nnft.erf_net(10), _x_with(np.nan), {}, {}, r"x: got 'non-finite"),
    ("x-inf", nnft.erf_net(10), _x_with(np.inf), {}, {}, r"x: got 'non-finite"),
    ("x-minus-inf", nnft.erf_net(10), _x_with(-np.inf), {}, {}, r"x: got 'non-finite"),
    ("x-wrong-d", nnft.erf_net(10), np.zeros((6, 2)), {}, {}, r"x\.shape: got \(6, 2\); allowed: \(M, 1\)"),
    ("x-3d", nnft.erf_net(10), np.zeros((6, 1, 1)), {}, {}, r"x\.shape: got \(6, 1, 1\)"),
    ("x-empty", nnft.erf_net(10), np.zeros((0, 1)), {}, {}, r"x\.shape: got \(0, 1\)"),
    ("x-strings", nnft.erf_net(10), ["a", "b"], {}, {}, r"x: got 'list'"),
    ("readout-on-uniform-readout", uniform_readout_net(), X, {"estimator": "readout"}, {},
     r"estimator: got 'readout'; allowed: 'plain'"),
    ("batch-chunks-0", nnft.erf_net(10), X, {}, {"executor": InProcess(batch_chunks=0)}, r"batch_chunks: got 0"),
    ("executor-not-an-executor", nnft.erf_net(10), X, {}, {"executor": "threads"}, r"executor: got 'threads'"),
    ("resume-without-checkpoint", nnft.erf_net(10), X, {}, {"resume": True, "checkpoint": None}, r"resume: got True"),
]


@pytest.mark.parametrize("case", MEASURE_CASES, ids=[c[0] for c in MEASURE_CASES])
def test_measure_rejects_bad_input_and_writes_nothing(tmp_path, case):
    _, spec, x, cfg, kwargs, message = case
    out = tmp_path / "out"
    kwargs = {"checkpoint": out / "run.ckpt.npz", "checkpoint_every_s": 0.0, **kwargs}
    with pytest.raises(ConfigError, match="^" + message):
        measure(spec, x, EnsembleConfig(**{**GOOD, **cfg}), **kwargs)
    assert not out.exists() or list(out.iterdir()) == []


def test_readout_estimator_accepts_cos_net():
    """Cos-net's readout is Normal, so 'readout' is valid there (its phase is Uniform, which is fine)."""
    m = measure(nnft.cos_net(10), X, EnsembleConfig(**{**GOOD, "estimator": "readout"}))
    assert m.connected[4].values.shape == (126,)


CONFIG_CASES = [
    ("max_order-7", {"max_order": 7}, r"EnsembleConfig\.max_order: got 7; allowed: an integer 1\.\.6"),
    ("max_order-0", {"max_order": 0}, r"EnsembleConfig\.max_order: got 0"),
    ("seed-negative", {"seed": -1}, r"EnsembleConfig\.seed: got -1; allowed: an integer >= 0"),
    ("seed-float", {"seed": 1.5}, r"EnsembleConfig\.seed: got 1\.5"),
    ("n_networks-too-few-chunks", {"n_networks": 150}, r"EnsembleConfig\.n_networks: got 150; allowed: >= n_blocks"),
    # 190 networks make 10 chunks of ≤ 20, but not 10 full ones: the message's own rule, n_blocks × chunk_size.
    ("n_networks-below-blocks-times-chunk", {"n_networks": 190}, r"EnsembleConfig\.n_networks: got 190; allowed: >= "
                                                                 r"n_blocks × chunk_size = 200"),
    ("n_networks-0", {"n_networks": 0}, r"EnsembleConfig\.n_networks: got 0"),
    ("n_networks-bool", {"n_networks": True}, r"EnsembleConfig\.n_networks: got True"),
    ("chunk_size-0", {"chunk_size": 0}, r"EnsembleConfig\.chunk_size: got 0"),
    ("n_blocks-0", {"n_blocks": 0}, r"EnsembleConfig\.n_blocks: got 0"),
    ("estimator-unknown", {"estimator": "exact"}, r"EnsembleConfig\.estimator: got 'exact'"),
    ("dtype-float16", {"dtype": "float16"}, r"EnsembleConfig\.dtype: got 'float16'"),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_ensemble_config_rejects_bad_values(case):
    _, change, message = case
    with pytest.raises(ConfigError, match="^" + message):
        EnsembleConfig(**{**GOOD, **change})


def test_exactly_n_blocks_full_chunks_is_allowed():
    assert EnsembleConfig(**{**GOOD, "n_networks": 200}).n_chunks == 10


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        EnsembleConfig(**{**GOOD, "max_order": 7})


def test_spec_and_config_types_are_checked():
    with pytest.raises(ConfigError, match=r"^spec: "):
        measure("erf-net", X, EnsembleConfig(**GOOD))
    with pytest.raises(ConfigError, match=r"^config: "):
        measure(nnft.erf_net(10), X, dict(GOOD))


def test_unreachable_dask_scheduler_is_a_config_error(tmp_path, monkeypatch):
    """Port 1 on localhost refuses connections; the executor gives up after timeout_s (2 s), not hangs,
    and writes nothing (not even dask scratch space) in the working directory."""
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"^executor\.address: got 'tcp://127\.0\.0\.1:1'; allowed: a reachable "):
        measure(nnft.erf_net(10), X, EnsembleConfig(**GOOD),
                executor=DaskExecutor(address="tcp://127.0.0.1:1", timeout_s=2))
    assert time.monotonic() - start < 30
    assert list(Path(tmp_path).iterdir()) == []
