"""KAN files: training data (CSV or NPZ) in, model checkpoints (config JSON + state NPZ) in and out.

Data. ``.npz`` with arrays ``x`` (n, d_in) and ``y`` (n, d_out) (1-D arrays are one column); anything
else is read as CSV (comma-separated, or whitespace-separated if the first line has no comma), with an
optional header line (detected: a first line that is not all numbers). The targets are the last d_out
columns unless ``y_cols`` names them (0-based indices, negative from the end, or header names); the other
columns, in order, are the inputs. Every value must be finite.

Checkpoints. ``save_model(model, folder)`` writes ``folder/model.npz`` (the state dict) and then
``folder/model.json`` (per-layer config, symbolic edges, versions, any extra metadata) through
:func:`nnft.results.write_result`: each file is written to a temporary name and renamed, so a reader
that finds the JSON finds a complete checkpoint. ``load_model`` rebuilds the network exactly (grids,
coefficients, masks, symbolic edges with their fitted parameters).
"""

from __future__ import annotations

import csv
import io as _io
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError, check, fail

__all__ = ["load_data", "save_model", "load_model", "model_config", "CHECKPOINT"]

CHECKPOINT = "model"  # folder/model.json + folder/model.npz
_FORMAT = "nnft-kan-checkpoint"


# ------------------------------------------------------------------------------------------ data
def _read_csv(path: Path, name: str) -> tuple[Optional[list[str]], np.ndarray]:
    text = path.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    check(len(lines) >= 1, name, str(path), "a CSV file with at least one row of numbers")
    comma = "," in lines[0]
    rows = list(csv.reader(_io.StringIO("\n".join(lines)))) if comma else [ln.split() for ln in lines]
    rows = [[c.strip() for c in r] for r in rows]

    def numeric(row: Sequence[str]) -> bool:
        try:
            [float(c) for c in row]
            return True
        except ValueError:
            return False

    header = None if numeric(rows[0]) else rows[0]
    body = rows[1:] if header is not None else rows
    check(len(body) >= 1, name, str(path), "a CSV file with at least one row of numbers after the header")
    width = len(header) if header is not None else len(body[0])
    for n, row in enumerate(body):
        line = n + (2 if header is not None else 1)
        check(len(row) == width, name, f"{path}: line {line} has {len(row)} columns",
              f"{width} columns on every line")
        if not numeric(row):
            raise fail(name, f"{path}: line {line} = {','.join(row)[:40]!r}", "numbers (NaN is not allowed)")
    return header, np.array([[float(c) for c in row] for row in body], dtype=np.float64)


def _columns(spec: Sequence[str], header: Optional[list[str]], width: int) -> list[int]:
    cols = []
    for tok in spec:
        tok = str(tok).strip()
        if header is not None and tok in header:
            cols.append(header.index(tok))
            continue
        try:
            c = int(tok)
        except ValueError:
            raise fail("--y-cols", tok, "column indices (0-based, negative from the end)"
                       + (f" or header names {header}" if header else "")) from None
        check(-width <= c < width, "--y-cols", tok, f"a column index in [{-width}, {width - 1}]")
        cols.append(c % width)
    check(len(set(cols)) == len(cols), "--y-cols", list(spec), "distinct columns")
    check(len(cols) < width, "--y-cols", list(spec), f"fewer than all {width} columns (inputs are the rest)")
    return cols


def load_data(path, *, d_in: Optional[int] = None, d_out: Optional[int] = None,
              y_cols: Optional[Sequence[str]] = None, name: str = "--data") -> tuple[np.ndarray, np.ndarray]:
    """(x (n, d_in), y (n, d_out)) float64 from a CSV or NPZ file (module docstring).

    ``d_in``/``d_out`` (e.g. the network's n_0 and n_L) are checked when given; ``d_out`` also sets how
    many trailing CSV columns are targets (default 1). Errors are one-line ConfigErrors naming ``name``.
    """
    path = Path(path)
    check(path.is_file(), name, str(path), "an existing .csv or .npz file")
    if path.suffix.lower() == ".npz":
        check(y_cols is None, "--y-cols", list(y_cols or []), "nothing for .npz data (arrays x and y)")
        try:
            with np.load(path) as data:
                check("x" in data.files and "y" in data.files, name, f"{path}: arrays {data.files}",
                      "an .npz file with arrays x and y")
                x, y = np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)
        except (ValueError, OSError) as exc:
            raise fail(name, str(path), f"a readable .npz file with numeric arrays x and y ({exc})") from None
        x = x[:, None] if x.ndim == 1 else x
        y = y[:, None] if y.ndim == 1 else y
        check(x.ndim == 2 and y.ndim == 2 and len(x) == len(y) and len(x) >= 1, name,
              f"x {x.shape}, y {y.shape}", "x (n, d_in) and y (n, d_out) with the same n >= 1")
    else:
        header, table = _read_csv(path, name)
        width = table.shape[1]
        n_y = d_out if d_out is not None else 1
        cols = _columns(y_cols, header, width) if y_cols is not None else list(range(width - n_y, width))
        check(len(cols) >= 1 and width - len(cols) >= 1, name, f"{path}: {width} columns",
              f"at least {len(cols) + 1} columns (inputs, then {len(cols)} target column(s))")
        x = table[:, [c for c in range(width) if c not in cols]]
        y = table[:, cols]
    check(bool(np.isfinite(x).all()), name, f"{path}: non-finite inputs (NaN or inf)", "finite numbers")
    check(bool(np.isfinite(y).all()), name, f"{path}: non-finite targets (NaN or inf)", "finite numbers")
    if d_in is not None:
        check(x.shape[1] == d_in, name, f"{path}: {x.shape[1]} input column(s)",
              f"{d_in} inputs to match the network's shape[0] = {d_in}")
    if d_out is not None:
        check(y.shape[1] == d_out, name, f"{path}: {y.shape[1]} target column(s)",
              f"{d_out} targets to match the network's shape[-1] = {d_out}")
    return x, y


# ------------------------------------------------------------------------------------ checkpoints
def model_config(model: nn.Module) -> dict[str, Any]:
    """JSON-able description of ``model``: per-layer widths, G, k, base function, grid policy, dtype, and the
    symbolic edges [l, i, j, name] (their parameters live in the state)."""
    layers = [{"in_dim": layer.in_dim, "out_dim": layer.out_dim, "G": layer.G, "k": layer.k,
               "base_fn": layer.base_fn, "grid_eps": layer.grid_eps, "out_of_range": layer.out_of_range}
              for layer in model.layers]
    symbolic = [[l, i, j, name] for l, layer in enumerate(model.layers)
                if (sym := layer._modules.get("symbolic_edges")) is not None for i, j, name in sym.edges()]
    return {"format": _FORMAT, "version": 1, "shape": list(model.shape),
            "dtype": str(model.dtype).replace("torch.", ""), "seed": int(getattr(model, "seed", -1)),
            "layers": layers, "symbolic": symbolic}


def save_model(model: nn.Module, folder, *, meta: Optional[Mapping[str, Any]] = None,
               arrays: Optional[Mapping[str, np.ndarray]] = None) -> Path:
    """Write ``folder/model.npz`` (state + extra ``arrays``) and ``folder/model.json`` (config + ``meta``)
    atomically; returns the JSON path. Symbolic edges whose function is unset are not saved."""
    from ...results import write_result

    state = {f"state/{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    for k in arrays or {}:
        check(not k.startswith("state/"), "arrays", k, "names not starting with 'state/'")
    body = {"kind": "kan-model", "kan": model_config(model), **(meta or {})}
    js, _ = write_result(Path(folder) / CHECKPOINT, body, {**state, **(arrays or {})})
    return js


def _checkpoint_json(path: Path) -> Path:
    path = Path(path)
    js = path / f"{CHECKPOINT}.json" if path.is_dir() else path
    check(js.is_file() and js.suffix == ".json", "--model", str(path),
          f"a folder holding {CHECKPOINT}.json + {CHECKPOINT}.npz (written by `nnft kan fit`) or that .json")
    return js


def load_model(path) -> tuple[nn.Module, dict[str, Any]]:
    """(model, metadata) from a checkpoint folder (or its ``model.json``) written by :func:`save_model`."""
    from .layer import KANLayer
    from .network import KAN
    from .symbolic import LIBRARY, symbolic_edges

    js = _checkpoint_json(path)
    try:
        meta = json.loads(js.read_text())
        cfg = meta["kan"]
        check(cfg.get("format") == _FORMAT, "--model", str(js), "a checkpoint written by nnft (format nnft-kan)")
        dtype = {"float64": torch.float64, "float32": torch.float32}[cfg["dtype"]]
        layers = [KANLayer(c["in_dim"], c["out_dim"], c["G"], c["k"], base_fn=c["base_fn"], grid_eps=c["grid_eps"],
                           out_of_range=c["out_of_range"], dtype=dtype) for c in cfg["layers"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise fail("--model", str(js), f"a valid nnft KAN checkpoint ({type(exc).__name__}: {exc})") from None
    model = KAN.from_layers(layers)
    model.seed = int(cfg.get("seed", -1))
    npz = js.with_name(meta.get("arrays", f"{CHECKPOINT}.npz"))
    check(npz.is_file(), "--model", str(npz), "the checkpoint's .npz next to its .json")
    with np.load(npz) as data:
        state = {k[len("state/"):]: torch.from_numpy(data[k]) for k in data.files if k.startswith("state/")}
    try:
        for l, layer in enumerate(model.layers):
            if f"layers.{l}.symbolic_edges.affine" in state:
                symbolic_edges(layer)
        for l, i, j, name in cfg["symbolic"]:
            check(name in LIBRARY, "--model", f"{js}: symbolic edge {name!r}", ", ".join(LIBRARY))
            symbolic_edges(model.layers[l]).set(i, j, name)
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise fail("--model", str(npz), f"a state matching its config ({str(exc).splitlines()[0]})") from None
    except ConfigError:
        raise
    except (IndexError, ValueError, TypeError) as exc:
        raise fail("--model", str(js), f"a valid nnft KAN checkpoint ({type(exc).__name__}: {exc})") from None
    return model, meta
