"""Result files: config + arrays + metadata as JSON + NPZ, written through a temporary file and an atomic
rename, so an interrupted or failed run never leaves a half-written result."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .errors import check, fail

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["atomic_write_text", "atomic_write_bytes", "write_result", "read_result", "load_config",
           "dumps_config", "environment", "atomic_path"]


def environment() -> dict[str, str]:
    """Versions that a result depends on."""
    import torch

    def v(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "unknown"

    return {"nnft": v("nnft"), "torch": torch.__version__, "numpy": np.__version__, "scipy": v("scipy"),
            "python": platform.python_version(), "platform": platform.platform()}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def write_result(stem: Path, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> tuple[Path, Path]:
    """Write ``stem.json`` (config, seed, versions, timings) and ``stem.npz`` (arrays), each atomically.

    The NPZ is written first and the JSON, which names it, last: a reader that finds the JSON finds both.
    """
    stem = Path(stem)
    npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
    with atomic_path(npz) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    body = dict(meta)
    body.setdefault("environment", environment())
    body.setdefault("written", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    body["arrays"] = npz.name
    atomic_write_text(js, json.dumps(_jsonable(body), indent=2, sort_keys=False) + "\n")
    return js, npz


def read_result(stem: Path) -> tuple[dict, dict[str, np.ndarray]]:
    stem = Path(stem)
    js = stem if stem.suffix == ".json" else stem.with_suffix(".json")
    check(js.exists(), "result", str(js), "an existing result .json")
    meta = json.loads(js.read_text())
    with np.load(js.with_name(meta["arrays"])) as data:
        arrays = {k: data[k] for k in data.files}
    return meta, arrays


def load_config(path: Path) -> dict:
    """Read a TOML (``.toml``) or JSON config; a malformed file is a one-line ConfigError."""
    path = Path(path)
    check(path.exists(), "config", str(path), "an existing .toml or .json file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise fail("config", str(path), f"valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc})") from None


def dumps_config(cfg: dict, path: Path) -> str:
    if Path(path).suffix == ".toml":
        import tomli_w

        return tomli_w.dumps(cfg)
    return json.dumps(cfg, indent=2) + "\n"
