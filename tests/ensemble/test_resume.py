"""Checkpoint and resume (DESIGN.md "Conventions", Results: long runs checkpoint their accumulators and
resume continues to the identical result).

The checkpoint holds the finished block accumulators and the streaming reducer's stack; resuming pushes
the remaining chunks onto the same canonical tree, so the resumed result must equal an uninterrupted run
bit for bit — whatever the batch size before or after the interruption.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nnft
from nnft import ConfigError, DaskExecutor, EnsembleConfig, InProcess, measure

X = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])

# The subprocess run: 120 chunks of 100 erf-net networks of width 200, with a checkpoint every 0.2 s. The
# child sleeps 20 ms per batch so the run lasts ≥ 2.4 s on any machine, and it signals after its second
# checkpoint (≥ 0.4 s in): the kill always lands mid-run. The in-process reference does not sleep.
LONG_SPEC = dict(width=200)
LONG_CONFIG = dict(n_networks=12000, chunk_size=100, n_blocks=10, seed=11, max_order=4)

# Small runs for the in-process checks.
SMALL_CONFIG = EnsembleConfig(n_networks=3000, chunk_size=100, n_blocks=10, seed=5, max_order=4)


def assert_bitwise_equal(a: nnft.Measurement, b: nnft.Measurement) -> None:
    for group in ("moments", "connected"):
        assert getattr(a, group).keys() == getattr(b, group).keys()
        for n in getattr(a, group):
            ca, cb = getattr(a, group)[n], getattr(b, group)[n]
            for field in ("values", "stderr", "background"):
                assert np.array_equal(getattr(ca, field), getattr(cb, field)), f"{group}[{n}].{field} differs"
            assert ca.n_networks == cb.n_networks


@pytest.fixture(scope="module")
def uninterrupted():
    return measure(nnft.erf_net(**LONG_SPEC), X, EnsembleConfig(**LONG_CONFIG), executor=InProcess(batch_chunks=1))


# A child process that runs the long measurement with a checkpoint. ``hook`` (Python source) wraps the
# checkpoint writer so the parent learns when a checkpoint is complete: it touches ``marker`` after the
# second save and then blocks, so the parent's SIGKILL lands between writes (deterministically), or — with
# the "mid-write" hook — while the second checkpoint is half written (the first stays on disk).
_CHILD = """
import sys, time, importlib
import numpy as np
import nnft
mod = importlib.import_module("nnft.ensemble.measure")
ckpt, marker, hook = sys.argv[1], sys.argv[2], sys.argv[3]
orig_save, orig_savez = mod._save_checkpoint, np.savez
saves = [0]

def half_written_savez(fh, **arrays):
    fh.write(b"PK\\x03\\x04 half a zip file")
    fh.flush()
    open(marker, "w").close()
    time.sleep(120)

def save(*args, **kwargs):
    saves[0] += 1
    if hook == "mid-write" and saves[0] == 2:
        np.savez = half_written_savez
    orig_save(*args, **kwargs)
    if hook == "between-writes" and saves[0] == 2:
        open(marker, "w").close()
        time.sleep(120)

def slow_chunks(self, indices, _orig=mod._Problem.chunks):
    time.sleep(0.02)
    return _orig(self, indices)

mod._save_checkpoint = save
mod._Problem.chunks = slow_chunks
x = np.array([-1.0, -0.6, -0.2, 0.2, 0.6, 1.0])
nnft.measure(nnft.erf_net(**{spec}), x, nnft.EnsembleConfig(**{config}), executor=nnft.InProcess(batch_chunks=1),
             checkpoint=ckpt, checkpoint_every_s=0.2)
print("finished without being killed")
"""


def _run_and_kill(tmp_path: Path, hook: str) -> Path:
    """Start the child, wait for ``hook``'s marker, SIGKILL it; return the checkpoint directory."""
    out = tmp_path / "out"
    out.mkdir()
    ckpt, marker = out / "run.ckpt.npz", tmp_path / "marker"
    code = textwrap.dedent(_CHILD).replace("{spec}", repr(LONG_SPEC)).replace("{config}", repr(LONG_CONFIG))
    proc = subprocess.Popen([sys.executable, "-c", code, str(ckpt), str(marker), hook],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if proc.poll() is not None:
                stdout, stderr = proc.communicate()
                pytest.fail(f"child exited (rc={proc.returncode}) before the marker: {stdout!r} {stderr[-2000:]!r}")
            assert time.monotonic() < deadline, "child produced no checkpoint within 120 s"
            time.sleep(0.01)
        assert ckpt.exists()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return out


def test_resume_after_sigkill_is_bitwise_identical(tmp_path, uninterrupted):
    out = _run_and_kill(tmp_path, "between-writes")
    ckpt = out / "run.ckpt.npz"
    # Killed between writes: exactly one file, the complete checkpoint — no temporary or result files.
    assert sorted(p.name for p in out.iterdir()) == [ckpt.name]
    with np.load(ckpt) as data:
        done = int(data["next_chunk"])
    assert 0 < done < EnsembleConfig(**LONG_CONFIG).n_chunks, "the kill should land mid-run"
    resumed = measure(nnft.erf_net(**LONG_SPEC), X, EnsembleConfig(**LONG_CONFIG), executor=InProcess(batch_chunks=7),
                      checkpoint=ckpt, resume=True)
    assert_bitwise_equal(resumed, uninterrupted)
    # A finished run removes its checkpoint and leaves nothing else behind.
    assert list(out.iterdir()) == []


def test_kill_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, uninterrupted):
    """The checkpoint is written through a temporary file and an atomic rename: a kill in the middle of
    a write leaves the previous checkpoint whole, and resuming from it gives the identical result."""
    out = _run_and_kill(tmp_path, "mid-write")
    ckpt = out / "run.ckpt.npz"
    names = sorted(p.name for p in out.iterdir())
    stale = [n for n in names if n != ckpt.name]
    assert ckpt.name in names
    # Only the hidden temporary of the interrupted write, never a half-written checkpoint or result.
    assert all(n.startswith(f".{ckpt.name}.") and n.endswith(".tmp") for n in stale), names
    with np.load(ckpt) as data:  # the previous, complete checkpoint
        assert 0 < int(data["next_chunk"]) < EnsembleConfig(**LONG_CONFIG).n_chunks
    resumed = measure(nnft.erf_net(**LONG_SPEC), X, EnsembleConfig(**LONG_CONFIG), checkpoint=ckpt, resume=True)
    assert_bitwise_equal(resumed, uninterrupted)
    assert not ckpt.exists()
    # The dead writer's temporary cannot be cleaned up by the process that died; nothing else is left.
    assert {p.name for p in out.iterdir()} <= set(stale)


class _Interrupt(Exception):
    pass


def _interrupted_run(ckpt: Path, stop_after: int, batch_chunks: int, config: EnsembleConfig = SMALL_CONFIG,
                     spec=None) -> None:
    """Run in-process with a checkpoint after every batch and abort from the progress callback after
    ``stop_after`` batches (the checkpoint of the batch before the abort is on disk)."""
    calls = [0]

    def progress(done, total):
        calls[0] += 1
        if calls[0] == stop_after:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        measure(spec or nnft.erf_net(20), X, config, executor=InProcess(batch_chunks=batch_chunks),
                checkpoint=ckpt, checkpoint_every_s=0.0, progress=progress)
    assert ckpt.exists()


@pytest.fixture(scope="module")
def small_reference():
    return measure(nnft.erf_net(20), X, SMALL_CONFIG, executor=InProcess(batch_chunks=1))


@pytest.mark.parametrize("stop_after,before,after", [(2, 1, 1), (5, 3, 1), (11, 1, 4), (4, 2, 100), (29, 1, 2)])
def test_resume_with_another_batch_size_is_bitwise_identical(tmp_path, small_reference, stop_after, before,
                                                             after):
    """Interrupt after various chunk counts (mid-block and at block boundaries, 3 chunks per block),
    resume with a different batch size: the canonical tree does not care."""
    ckpt = tmp_path / "ck.npz"
    _interrupted_run(ckpt, stop_after, before)
    resumed = measure(nnft.erf_net(20), X, SMALL_CONFIG, executor=InProcess(batch_chunks=after), checkpoint=ckpt,
                      resume=True)
    assert_bitwise_equal(resumed, small_reference)
    assert not ckpt.exists()


def test_resume_without_a_checkpoint_file_starts_from_scratch(tmp_path, small_reference):
    ckpt = tmp_path / "none-yet.npz"
    got = measure(nnft.erf_net(20), X, SMALL_CONFIG, checkpoint=ckpt, resume=True)
    assert_bitwise_equal(got, small_reference)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change", ["seed", "n_networks", "chunk_size", "max_order", "estimator", "dtype",
                                    "inputs", "width"])
def test_resume_with_a_mismatching_run_raises_and_keeps_the_checkpoint(tmp_path, change):
    ckpt = tmp_path / "ck.npz"
    _interrupted_run(ckpt, 3, 1)
    before = ckpt.read_bytes()
    cfg, x, spec = SMALL_CONFIG.__dict__.copy(), X, nnft.erf_net(20)
    if change == "inputs":
        x = X + 0.1
    elif change == "width":
        spec = nnft.erf_net(21)
    else:
        cfg[change] = {"seed": 6, "n_networks": 3100, "chunk_size": 150, "max_order": 2, "estimator": "readout",
                       "dtype": "float64"}[change]
    with pytest.raises(ConfigError, match=r"^resume: .*same spec, inputs and ensemble config"):
        measure(spec, x, EnsembleConfig(**cfg), checkpoint=ckpt, resume=True)
    # A refused resume must not touch the checkpoint (it is the only copy of the work done so far).
    assert ckpt.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.name]


def test_resume_from_a_corrupt_checkpoint_raises(tmp_path):
    ckpt = tmp_path / "ck.npz"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"^checkpoint: "):
        measure(nnft.erf_net(20), X, SMALL_CONFIG, checkpoint=ckpt, resume=True)
    assert ckpt.read_bytes() == b"not a checkpoint"


def test_resume_needs_a_checkpoint_path():
    with pytest.raises(ConfigError, match=r"^resume: "):
        measure(nnft.erf_net(20), X, SMALL_CONFIG, resume=True)


def test_checkpoint_with_dask_is_refused_before_starting_a_cluster(tmp_path):
    with pytest.raises(ConfigError, match=r"^checkpoint: .*in-process only"):
        measure(nnft.erf_net(20), X, SMALL_CONFIG, executor=DaskExecutor(), checkpoint=tmp_path / "ck.npz")
    assert list(tmp_path.iterdir()) == []


def test_completed_run_with_checkpoint_leaves_no_files_and_matches(tmp_path, small_reference):
    ckpt = tmp_path / "ck.npz"
    got = measure(nnft.erf_net(20), X, SMALL_CONFIG, checkpoint=ckpt, checkpoint_every_s=0.0)
    assert_bitwise_equal(got, small_reference)
    assert list(tmp_path.iterdir()) == []
