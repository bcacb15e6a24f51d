"""Bitwise reproducibility of measure() (DESIGN.md "Conventions", Randomness): a run's seed and chunk
size fix its result; the executor, the batch size and the thread count do not.

Every comparison is np.array_equal on each order's values, stderr and background — never allclose: the
contract is bitwise identity, and a tolerance would hide a reduction-order or forward-pass dependence.
"""

from __future__ import annotations

import contextlib
import os
import socket

import numpy as np
import pytest
import torch

import nnft
from nnft import DaskExecutor, EnsembleConfig, InProcess, measure

X = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])

SPECS = {
    "erf-10": lambda: nnft.erf_net(10),
    "erf-100": lambda: nnft.erf_net(100),
    "mlp-64-64-tanh": lambda: nnft.mlp(1, [64, 64], activation="tanh"),
}

# 2050 = 20 full chunks + one partial chunk of 50, over 10 blocks of 2–3 chunks: exercises uneven blocks,
# a partial chunk and (with batch_chunks=3) batches cut at block boundaries.
CONFIG = EnsembleConfig(n_networks=2050, chunk_size=100, seed=3, max_order=4)


def assert_bitwise_equal(a: nnft.Measurement, b: nnft.Measurement) -> None:
    assert a.moments.keys() == b.moments.keys()
    for group in ("moments", "connected"):
        for n in getattr(a, group):
            ca, cb = getattr(a, group)[n], getattr(b, group)[n]
            for field in ("values", "stderr", "background"):
                assert np.array_equal(getattr(ca, field), getattr(cb, field)), f"{group}[{n}].{field} differs"
            assert ca.n_networks == cb.n_networks


_REFERENCE: dict[tuple[str, str], nnft.Measurement] = {}


def reference(name: str, estimator: str = "plain") -> nnft.Measurement:
    """InProcess(batch_chunks=1), default thread count: one chunk per evaluation, computed once per module."""
    key = (name, estimator)
    if key not in _REFERENCE:
        cfg = EnsembleConfig(**{**CONFIG.__dict__, "estimator": estimator})
        _REFERENCE[key] = measure(SPECS[name](), X, cfg, executor=InProcess(batch_chunks=1))
    return _REFERENCE[key]


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("batch_chunks", [3, 100])
def test_batch_size_does_not_change_bits(name, batch_chunks):
    got = measure(SPECS[name](), X, CONFIG, executor=InProcess(batch_chunks=batch_chunks))
    assert_bitwise_equal(got, reference(name))


@pytest.mark.parametrize("batch_chunks", [3, 100])
def test_batch_size_does_not_change_bits_readout_estimator(batch_chunks):
    cfg = EnsembleConfig(**{**CONFIG.__dict__, "estimator": "readout"})
    got = measure(SPECS["erf-100"](), X, cfg, executor=InProcess(batch_chunks=batch_chunks))
    assert_bitwise_equal(got, reference("erf-100", "readout"))


@pytest.mark.parametrize("name", SPECS)
def test_thread_count_does_not_change_bits(name):
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(measure(SPECS[name](), X, CONFIG, executor=InProcess(batch_chunks=4)))
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    assert_bitwise_equal(runs[0], reference(name))
    assert_bitwise_equal(runs[1], reference(name))


@pytest.fixture(scope="module")
def scheduler_address():
    """One LocalCluster shaped like DaskExecutor's embedded one (2 single-threaded worker processes),
    shared by the per-spec tests so that worker start-up (importing torch) is paid once."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize("name", SPECS)
def test_dask_cluster_gives_the_same_bits(name, scheduler_address):
    """Chunks run in other processes (one torch thread each) and are merged on the cluster along the
    canonical tree."""
    got = measure(SPECS[name](), X, CONFIG, executor=DaskExecutor(address=scheduler_address))
    assert_bitwise_equal(got, reference(name))


@contextlib.contextmanager
def _port_taken(port: int):
    """Hold ``port`` on 127.0.0.1 (if it is free; if not, someone else already holds it)."""
    sock = socket.socket()
    try:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            pass
        yield
    finally:
        sock.close()


def test_dask_embedded_local_cluster_gives_the_same_bits():
    """DaskExecutor() with no address starts (and closes) its own 2-worker LocalCluster — also when the
    default scheduler HTTP port 8787 is taken (a regression test: it used to warn and leak a socket,
    which fails under filterwarnings=error) — and leaves the caller's environment as it found it."""
    environ = dict(os.environ)
    with _port_taken(8787):
        got = measure(SPECS["mlp-64-64-tanh"](), X, CONFIG, executor=DaskExecutor())
    # Regression: distributed's Nanny writes OMP_NUM_THREADS=1 etc. into the caller's os.environ, which then
    # leaked into every later subprocess (making them single-threaded). The executor restores it.
    assert dict(os.environ) == environ
    assert_bitwise_equal(got, reference("mlp-64-64-tanh"))


def test_different_seed_gives_different_result():
    other = measure(SPECS["erf-10"](), X, EnsembleConfig(**{**CONFIG.__dict__, "seed": 4}))
    ref = reference("erf-10")
    for n in (1, 2, 4):
        assert not np.array_equal(other.moments[n].values, ref.moments[n].values)


def test_chunk_size_is_part_of_the_result_identity():
    """chunk_size fixes the random streams (EnsembleConfig docstring), so changing it changes the bits —
    but it samples the same ensemble: G^(2) agrees within combined errors. Threshold 5: 21 correlated
    tuples, two independent 10-block jackknife errors (Bonferroni-ish, as in tests/validation)."""
    other = measure(SPECS["erf-10"](), X, EnsembleConfig(**{**CONFIG.__dict__, "chunk_size": 205}))
    ref = reference("erf-10")
    assert not np.array_equal(other.moments[2].values, ref.moments[2].values)
    a, b = other.moments[2], ref.moments[2]
    z = (a.values - b.values) / np.hypot(a.stderr, b.stderr)
    assert np.max(np.abs(z)) < 5


def test_repeated_run_is_bitwise_identical():
    """No hidden global state: the same call twice in one process gives the same bits."""
    got = measure(SPECS["erf-10"](), X, CONFIG, executor=InProcess(batch_chunks=1))
    assert_bitwise_equal(got, reference("erf-10"))
