"""Kernel matrices in tiles: infinite-width NNGP / NTK of a spec for many inputs, in-process or on Dask.

    K[i, j] = kernels(spec, x1[tile_i], x2[tile_j]),   tiles of ``tile`` rows and columns

Every tile is an independent call of :func:`nnft.theory.kernels`, so the assembled matrix equals the untiled
one (up to the summation order of round-off; a Monte Carlo first layer uses the same fixed-seed neurons in
every tile). For x2 = None only the tiles j ≥ i are computed and mirrored. The tiles run in this process
(default) or as Dask tasks (``dask.distributed``; an embedded LocalCluster, a scheduler address through
:class:`nnft.ensemble.DaskExecutor`, or a ``distributed.Client`` you manage), and are written into one
preallocated float64 matrix as they complete, so peak memory is the output plus a few tiles.
"""

from __future__ import annotations

from typing import Callable, Literal, Optional, Union

import numpy as np
import torch

from ..errors import check, fail
from ..theory.kernels import Kernels, as_inputs, kernels

__all__ = ["kernel_matrix", "kernel_matrices"]

Tensor = torch.Tensor
Progress = Optional[Callable[[int, int], None]]  # progress(tiles done, total tiles)


def _tile_task(spec, x1: np.ndarray, x2: Optional[np.ndarray], ntk: bool, kw: dict):
    """One tile (a Dask task or a local call): (nngp, ntk or None, nngp stderr or None, method)."""
    k = kernels(spec, x1, x2, ntk=ntk, **kw)
    arr = lambda t: None if t is None else t.numpy()  # noqa: E731
    return arr(k.nngp), arr(k.ntk), arr(k.nngp_stderr), k.method


def _tiles(n1: int, n2: int, tile: int, symmetric: bool) -> list[tuple[slice, slice]]:
    rows = [slice(i, min(i + tile, n1)) for i in range(0, n1, tile)]
    cols = [slice(j, min(j + tile, n2)) for j in range(0, n2, tile)]
    return [(si, sj) for a, si in enumerate(rows) for b, sj in enumerate(cols) if not symmetric or b >= a]


class _Assembler:
    """Writes tiles into preallocated (n1, n2) matrices (and mirrors them when symmetric)."""

    def __init__(self, n1: int, n2: int, want_nngp: bool, want_ntk: bool, symmetric: bool) -> None:
        self.nngp = torch.empty(n1, n2, dtype=torch.float64) if want_nngp else None
        self.ntk = torch.empty(n1, n2, dtype=torch.float64) if want_ntk else None
        self.stderr: Optional[Tensor] = None
        self.method: Optional[str] = None
        self.symmetric = symmetric
        self.shape = (n1, n2)

    def put(self, si: slice, sj: slice, result) -> None:
        """Write tile (si, sj); a diagonal tile of a symmetric matrix is symmetrized, ½(B + Bᵀ), so that the
        assembled matrix is exactly symmetric (kernels() may differ from its transpose by round-off)."""
        k, t, err, method = result
        self.method = self.method or method
        blocks = [(self.nngp, k), (self.ntk, t)]
        if err is not None:
            if self.stderr is None:
                self.stderr = torch.zeros(self.shape, dtype=torch.float64)
            blocks.append((self.stderr, err))
        for target, block in blocks:
            if target is None:
                continue
            b = torch.from_numpy(block)
            if self.symmetric and si == sj:
                b = 0.5 * (b + b.T)
            target[si, sj] = b
            if self.symmetric and si != sj:
                target[sj, si] = b.T


def _resolve_executor(executor):
    """None/'inprocess' → None; 'dask' → DaskExecutor(); DaskExecutor or distributed.Client → as is."""
    from ..ensemble.executors import DaskExecutor, InProcess

    if executor is None or executor == "inprocess" or isinstance(executor, InProcess):
        return None
    if executor == "dask":
        return DaskExecutor()
    if isinstance(executor, DaskExecutor):
        return executor
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - dask[distributed] is a dependency
        Client = ()
    if isinstance(executor, Client):
        return executor
    raise fail("executor", executor, "None, 'inprocess', 'dask', a DaskExecutor or a distributed.Client")


def _run_dask(executor, spec, tiles, x1: np.ndarray, x2: Optional[np.ndarray], ntk: bool, kw: dict,
              asm: _Assembler, progress: Progress) -> None:
    from contextlib import nullcontext

    from distributed import as_completed

    from ..ensemble.executors import DaskExecutor

    # a DaskExecutor opens (and closes) its own client; a user's Client is used as is and left open
    with executor.client() if isinstance(executor, DaskExecutor) else nullcontext(executor) as client:
        # hash=False: a later call scattering equal data must not share (and lose) this call's keys
        x1_f = client.scatter(x1, hash=False)
        x2_f = x1_f if x2 is None else client.scatter(x2, hash=False)
        spec_f = client.scatter(spec, hash=False)
        futures = {}
        for si, sj in tiles:
            sym_tile = x2 is None and si == sj
            fut = client.submit(_dask_tile, spec_f, x1_f, x2_f, (si.start, si.stop), (sj.start, sj.stop), sym_tile,
                                ntk, kw, pure=False)
            futures[fut] = (si, sj)
        for done, fut in enumerate(as_completed(futures), start=1):
            si, sj = futures.pop(fut)
            asm.put(si, sj, fut.result())
            fut.release()
            if progress is not None:
                progress(done, len(tiles))


def _dask_tile(spec, x1: np.ndarray, x2: np.ndarray, rows: tuple, cols: tuple, symmetric_tile: bool, ntk: bool,
               kw: dict):
    a = x1[rows[0]:rows[1]]
    b = None if symmetric_tile else x2[cols[0]:cols[1]]
    return _tile_task(spec, a, b, ntk, kw)


def _assemble(spec, x1, x2, *, ntk: bool, want_nngp: bool, tile: Optional[int], executor,
              progress: Progress, kw: dict) -> _Assembler:
    check(tile is None or (isinstance(tile, int) and not isinstance(tile, bool) and tile >= 1), "tile", tile,
          "None (one block) or an integer >= 1")
    x1 = as_inputs(x1, spec.d_in, "x1")
    symmetric = x2 is None
    x2 = x1 if symmetric else as_inputs(x2, spec.d_in, "x2")
    n1, n2 = x1.shape[0], x2.shape[0]
    executor = _resolve_executor(executor)
    tile = max(n1, n2) if tile is None else tile
    tiles = _tiles(n1, n2, tile, symmetric)
    asm = _Assembler(n1, n2, want_nngp, ntk, symmetric)
    x1n = x1.numpy()
    x2n = None if symmetric else x2.numpy()
    if executor is None:
        for done, (si, sj) in enumerate(tiles, start=1):
            b = None if (symmetric and si == sj) else (x1n if symmetric else x2n)[sj]
            asm.put(si, sj, _tile_task(spec, x1n[si], b, ntk, kw))
            if progress is not None:
                progress(done, len(tiles))
    else:
        _run_dask(executor, spec, tiles, x1n, x2n, ntk, kw, asm, progress)
    return asm


def kernel_matrices(spec, x1, x2=None, *, ntk: bool = False, tile: Optional[int] = 2048, executor=None,
                    progress: Progress = None, **kernel_kw) -> Kernels:
    """NNGP K(x1, x2) (and the NTK Θ when ``ntk``) of ``spec``, assembled from tiles.

    Parameters
    ----------
    spec : an :class:`nnft.spec.Architecture`.
    x1 : (n1, d) inputs; x2 : (n2, d) inputs or None (the symmetric K(x1, x1): tiles j ≥ i, mirrored).
    ntk : also the infinite-width NTK (NTK parameterization; :func:`nnft.theory.kernels`).
    tile : rows/columns per tile (any n; the last tile is shorter); None = one tile.
    executor : None or "inprocess" (tiles in this process), "dask" (an embedded LocalCluster of
        :class:`nnft.ensemble.DaskExecutor`'s defaults), a DaskExecutor (LocalCluster or scheduler address),
        or a ``distributed.Client``.
    progress : progress(tiles done, total tiles).
    kernel_kw : passed to every :func:`nnft.theory.kernels` call (quadrature_degree, mc_samples, seed).

    Returns :class:`nnft.theory.kernels.Kernels` with float64 (n1, n2) matrices.
    """
    asm = _assemble(spec, x1, x2, ntk=ntk, want_nngp=True, tile=tile, executor=executor, progress=progress,
                    kw=kernel_kw)
    return Kernels(asm.nngp, asm.ntk, asm.stderr, asm.method)


def kernel_matrix(spec, x1, x2=None, *, kind: Literal["nngp", "ntk"] = "nngp", tile: Optional[int] = 2048,
                  executor: Union[None, str, object] = None, progress: Progress = None, **kernel_kw) -> Tensor:
    """One tiled kernel matrix, NNGP K or NTK Θ (n1, n2) float64; only that matrix is kept in memory.

    See :func:`kernel_matrices` for the arguments."""
    check(kind in ("nngp", "ntk"), "kind", kind, "'nngp' or 'ntk'")
    asm = _assemble(spec, x1, x2, ntk=(kind == "ntk"), want_nngp=(kind == "nngp"), tile=tile, executor=executor,
                    progress=progress, kw=kernel_kw)
    return asm.nngp if kind == "nngp" else asm.ntk
