"""Where per-frame work runs: serially, in a local process pool, or on a Dask cluster.

Tasks are top-level functions taking and returning small picklable values (paths, dicts); each
writes its own products. Results come back in input order, so every executor yields the same run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from skystack.errors import ConfigError

__all__ = ["Executor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "make_executor"]

T = TypeVar("T")


class Executor(Protocol):
    """Runs a function over items and returns the results in order."""

    name: str

    def map(self, fn: Callable[[Any], T], items: Sequence[Any], *,
            done: Callable[[int], None] | None = None) -> list[T]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """In this process, one item after another."""

    name = "serial"

    def map(self, fn: Callable[[Any], T], items: Sequence[Any], *,
            done: Callable[[int], None] | None = None) -> list[T]:
        out = []
        for x in items:
            out.append(fn(x))
            if done:
                done(len(out))
        return out

    def close(self) -> None:
        return None


def _init_worker(threads: int) -> None:
    # Each worker gets a share of the cores: numba and BLAS must not oversubscribe them.
    # (NUMBA_NUM_THREADS itself must not change once numba is imported: numba re-reads the
    # environment when it compiles and refuses a different value; set_num_threads is the way.)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    except Exception:  # noqa: BLE001 - numba optional at this point
        pass


def _fork_is_safe() -> bool:
    import multiprocessing as mp
    import sys

    if "fork" not in mp.get_all_start_methods():
        return False
    if "numba" not in sys.modules:
        return True
    try:
        from numba.np.ufunc import parallel
    except ImportError:
        return False
    return not getattr(parallel, "_is_initialized", True)


class LocalExecutor:
    """A local process pool of ``jobs`` workers."""

    name = "local"

    def __init__(self, jobs: int) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.jobs = max(1, jobs)
        cores = os.cpu_count() or 1
        # fork is much cheaper than spawn (no re-import, no numba cache reload per worker), but
        # only safe before this process has started numba's worker threads.
        ctx = mp.get_context("fork" if _fork_is_safe() else "spawn")
        self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx,
                                         initializer=_init_worker,
                                         initargs=(max(1, cores // self.jobs),))

    def map(self, fn: Callable[[Any], T], items: Sequence[Any], *,
            done: Callable[[int], None] | None = None) -> list[T]:
        from concurrent.futures import as_completed

        futures = {self._pool.submit(fn, x): i for i, x in enumerate(items)}
        out: list[Any] = [None] * len(futures)
        for k, fut in enumerate(as_completed(futures), 1):
            out[futures[fut]] = fut.result()  # results in input order, whatever finishes first
            if done:
                done(k)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks on a Dask cluster: an existing scheduler (``dask://host:8786``) or a LocalCluster."""

    name = "dask"

    def __init__(self, address: str | None, *, jobs: int = 2) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as err:
            msg = "the Dask executor needs the dask extra: pip install 'skystack[dask]'"
            raise ConfigError(msg) from err
        self._cluster = None
        if address is None:
            self._cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1,
                                         processes=True, dashboard_address=None)
            self.client = Client(self._cluster)
        else:
            self.client = Client(address)

    def map(self, fn: Callable[[Any], T], items: Sequence[Any], *,
            done: Callable[[int], None] | None = None) -> list[T]:
        from distributed import as_completed

        futures = self.client.map(fn, list(items), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * len(futures)
        for k, fut in enumerate(as_completed(futures), 1):
            out[index[fut.key]] = fut.result()
            if done:
                done(k)
        return out

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(spec: str, *, jobs: int) -> Executor:
    """``local`` (process pool; serial when jobs ≤ 1), ``serial``, ``dask-local`` or ``dask://host:port``."""
    if spec == "serial" or (spec == "local" and jobs <= 1):
        return SerialExecutor()
    if spec == "local":
        return LocalExecutor(jobs)
    if spec == "dask-local":
        return DaskExecutor(None, jobs=jobs)
    if spec.startswith("dask://"):
        return DaskExecutor("tcp://" + spec[len("dask://"):], jobs=jobs)
    if spec.startswith("tcp://"):
        return DaskExecutor(spec, jobs=jobs)
    msg = f"unknown executor {spec!r}: use local, serial, dask-local or dask://host:8786"
    raise ConfigError(msg)
