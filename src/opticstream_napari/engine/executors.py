"""Where the heavy work runs: a small pool of threads or of processes, or a dask.distributed cluster.

All take a module-level function and picklable arguments and return a
:class:`concurrent.futures.Future`, so the engine's coordinator never knows which one it has.
Work functions take plain data (config dict, identity dict, paths), write their outputs
atomically and return small results, so the same call works in a thread or on another host.
"""

from __future__ import annotations

import signal
import sys
import time
import types
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any, Protocol, TypeVar

from opticstream_napari.engine.vector_width import requested_width, use_wide_vectors
from opticstream_napari.host import usable_cores

T = TypeVar("T")
SLOTS_REFRESH = 2.0  # seconds between asking the scheduler how many worker threads it has


class Executor(Protocol):
    """The one interface the engine needs from an executor."""

    @property
    def slots(self) -> int:
        """How many tasks can run at once (the engine claims no more units than this)."""
        ...

    @property
    def task_threads(self) -> int | None:
        """Threads one task should use (None: all cores of the host that runs it)."""
        ...

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]: ...

    def cancel_running(self) -> bool:
        """End the work in flight now, without waiting; False where it cannot (threads finish)."""
        ...

    def close(self) -> None: ...


class _PoolExecutor:
    """A fixed pool of this host: ``workers`` tasks at once, the cores split between them.

    The default size keeps a core's worth of headroom on small machines by splitting the cores
    between a few tasks instead of running one task per core: the GUI thread stays responsive,
    and a slow write of one task overlaps another's computation.
    """

    def __init__(self, workers: int | None, pool: Callable[[int], ThreadPoolExecutor | ProcessPoolExecutor]) -> None:
        self._workers = workers or max(2, usable_cores() // 4)
        if self._workers < 1:
            raise ValueError(f"{type(self).__name__} needs at least 1 worker, found {workers}")
        self._pool = pool(self._workers)

    @property
    def slots(self) -> int:
        return self._workers

    @property
    def task_threads(self) -> int:
        return max(1, usable_cores() // self._workers)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._pool.submit(fn, *args)

    def cancel_running(self) -> bool:
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._workers} workers × {self.task_threads} threads)"


class LocalExecutor(_PoolExecutor):
    """Threads in this process; the numba and FFTW kernels release the GIL, so threads scale."""

    def __init__(self, workers: int | None = None) -> None:
        super().__init__(workers, lambda n: ThreadPoolExecutor(max_workers=n, thread_name_prefix="opticstream-work"))


class ProcessExecutor(_PoolExecutor):
    """Worker processes of this host: what the napari session uses.

    Threads share the interpreter lock with napari's GUI thread, and parts of the work hold it
    for hundreds of milliseconds (scipy.ndimage in the mask, Python in the fuse bookkeeping); in
    processes they cannot freeze the viewer. Workers are spawned, never forked, since a Qt
    process with running threads cannot be forked safely; they start on the first task, from
    the calling thread, whose nice value they inherit, and apply the numba vector width chosen
    in this process's environment (:mod:`.vector_width`).
    """

    def __init__(self, workers: int | None = None) -> None:
        choice = requested_width()
        super().__init__(workers, lambda n: ProcessPoolExecutor(max_workers=n, mp_context=spawn_context(),
                                                                initializer=start_worker, initargs=(choice,)))

    def cancel_running(self) -> bool:
        """Terminate the workers: their outputs are written atomically, so nothing half-written remains
        under a final name. The pool is unusable afterwards; the engine run ends with it."""
        pool: Any = self._pool
        processes = list(pool._processes.values()) if pool._processes else []  # no public handle before 3.14
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5.0)
        return True


class _WorkerProcess(SpawnProcess):
    """A spawned process that does not run the parent's main script.

    A spawned child imports the parent's ``__main__`` so that functions defined there can be
    unpickled. Ours never are, and a napari session started from a lab's own script without an
    ``if __name__ == "__main__"`` guard would run that script again in every worker: a second
    viewer, or a bootstrapping error. The main module is hidden while the child is launched.
    """

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            return SpawnProcess._Popen(process_obj)
        finally:
            sys.modules["__main__"] = main


class _SpawnWithoutMain(SpawnContext):
    Process = _WorkerProcess


def ignore_interrupts() -> None:
    """In a child process: Ctrl-C reaches the terminal's whole process group, but only the parent
    decides what stops (``opticstream watch`` lets the work in flight finish; Stop ends it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_worker(vector_width: str) -> None:
    """Initializer of the worker processes: they choose their vector width before compiling, as
    every process that computes outputs does, so they all compute the same bytes."""
    ignore_interrupts()
    use_wide_vectors(vector_width)


def spawn_context() -> SpawnContext:
    """Where this package starts its processes: spawned, without the parent's main script."""
    return _SpawnWithoutMain()


class DaskExecutor:
    """Tasks on a dask.distributed cluster: a running scheduler, or a local cluster of processes.

    With ``scheduler`` (``tcp://host:8786``) the tasks run on whatever workers joined it, on any
    host that sees the same files; without it a :class:`distributed.LocalCluster` of
    ``workers`` separate processes is started (tests, or one big machine without a scheduler).
    """

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        workers: int = 2,
        threads_per_worker: int = 1,
        task_threads: int | None = None,
        memory_limit: str = "auto",
    ) -> None:
        from distributed import Client, LocalCluster

        from opticstream_napari.engine.dask_worker import VectorWidth

        choice = requested_width()
        self._cluster = None
        if scheduler is None:
            self._cluster = LocalCluster(
                n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                dashboard_address=None, memory_limit=memory_limit,
            )
            self._client = Client(self._cluster)
        else:
            self._client = Client(scheduler, timeout="30s")
        self._client.register_plugin(VectorWidth(choice))
        self._task_threads = task_threads
        self._running: set[Any] = set()  # a dropped dask future would release its task
        self._slots, self._slots_at = 1, -SLOTS_REFRESH

    @property
    def address(self) -> str:
        return str(self._client.scheduler.address)

    @property
    def slots(self) -> int:
        """Worker threads known to the scheduler (asked at most every few seconds); at least 1, so
        work is queued while workers join."""
        now = time.monotonic()
        if now - self._slots_at > SLOTS_REFRESH:
            self._slots = max(1, sum(self._client.nthreads().values()))
            self._slots_at = now
        return self._slots

    @property
    def task_threads(self) -> int | None:
        return self._task_threads

    def cancel_running(self) -> bool:
        self._client.cancel(list(self._running), force=True)
        return True

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        result: Future[T] = Future()
        remote = self._client.submit(fn, *args, pure=False)
        self._running.add(remote)

        def transfer(done: Any) -> None:
            self._running.discard(done)
            try:
                result.set_result(done.result())
            except BaseException as error:  # noqa: BLE001 - every outcome, cancellation included, goes to the caller
                result.set_exception(error)

        remote.add_done_callback(transfer)
        return result

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address})"
