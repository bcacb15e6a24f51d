"""Executors: where chunks run. In-process, or Dask (``dask.distributed``) on an embedded LocalCluster or
a real cluster at a scheduler address. Both combine chunk accumulators along the same canonical tree, so
results are bitwise identical for the same seed."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from ..errors import fail
from .accumulator import Accumulator, tree_reduce

__all__ = ["InProcess", "DaskExecutor", "Executor"]


@dataclass(frozen=True)
class InProcess:
    """Run chunks in this process, ``batch_chunks`` chunks per vectorized evaluation."""

    batch_chunks: int = 4


@dataclass(frozen=True)
class DaskExecutor:
    """Run chunks as Dask tasks and tree-reduce their accumulators on the cluster.

    address : a scheduler address ("tcp://host:8786"); None starts an embedded LocalCluster with
        ``n_workers`` single-threaded worker processes.
    timeout_s : how long to wait for the scheduler before giving up with a ConfigError.
    """

    address: Optional[str] = None
    n_workers: int = 2
    timeout_s: float = 10.0

    def _connect(self):
        """A Client of the scheduler at ``address``; ConfigError if none answers within ``timeout_s``."""
        from distributed import Client

        try:
            return Client(self.address, timeout=f"{self.timeout_s}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise fail("executor.address", self.address,
                       f"a reachable dask scheduler (could not connect within {self.timeout_s:g} s: "
                       f"{type(exc).__name__})") from None

    def ensure_reachable(self) -> None:
        """Connect to ``address`` once (and disconnect); ConfigError if no scheduler answers in time."""
        if self.address is not None:
            self._connect().close()

    def run_blocks(self, chunk_fn: Callable[[int], Accumulator], blocks: list[list[int]],
                   progress: Optional[Callable[[int], None]] = None) -> list[Accumulator]:
        """Per block: map ``chunk_fn`` over its chunks on the cluster, tree-reduce there, gather."""
        from distributed import as_completed

        with self.client() as client:
            roots = []
            for chunks in blocks:
                leaves = client.map(chunk_fn, chunks, pure=False)
                roots.append(tree_reduce(leaves, lambda a, b: client.submit(_merge, a, b, pure=False)))
            if progress is not None:
                all_leaves = len(sum(blocks, []))
                done = 0
                for _ in as_completed(roots):
                    done += 1
                    progress(done * all_leaves // len(roots))
            return client.gather(roots)

    @contextmanager
    def client(self) -> Iterator:
        """A Client of the scheduler at ``address``, or of an embedded LocalCluster (closed on exit, and the
        environment its nannies changed restored)."""
        from distributed import Client, LocalCluster

        cluster = None
        environ = dict(os.environ)  # the embedded cluster's nannies set OMP_NUM_THREADS=1 etc. in os.environ
        try:
            if self.address is None:
                # The scheduler binds an HTTP port even without a dashboard, 8787 by default; when that is
                # taken (another cluster, a concurrent run) distributed warns and leaks a socket. Bind a
                # free local port instead.
                cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None,
                                       scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
                client = Client(cluster)
            else:
                client = self._connect()
            with client:
                yield client
        finally:
            if cluster is not None:
                cluster.close()
                _restore_environ(environ)


def _restore_environ(saved: dict[str, str]) -> None:
    """Undo changes to os.environ (distributed's Nanny updates the *caller's* environment with its
    pre-spawn settings, which would otherwise leak into every later subprocess of the caller)."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _merge(a: Accumulator, b: Accumulator) -> Accumulator:
    return a + b


Executor = InProcess | DaskExecutor
