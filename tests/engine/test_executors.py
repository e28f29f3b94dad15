"""The local executor, and riding out connection errors."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import OperationalError

from opticstream_napari.engine.executors import LocalExecutor, cores
from opticstream_napari.engine.reconnect import reliably


def _square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


def test_local_executor_runs_module_functions_and_reports_errors() -> None:
    executor = LocalExecutor(3)
    try:
        assert executor.slots == 3 and executor.task_threads == max(1, cores() // 3)
        assert [executor.submit(_square, i).result() for i in range(4)] == [0, 1, 4, 9]
        with pytest.raises(ValueError, match="negative"):
            executor.submit(_square, -1).result()
    finally:
        executor.close()


def test_connection_errors_are_retried_until_the_call_succeeds(caplog) -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))
        return "ok"

    assert reliably(threading.Event(), "a test", flaky) == "ok"
    assert len(calls) == 3 and "retrying" in caplog.text


def test_retrying_ends_when_the_engine_stops() -> None:
    stop = threading.Event()
    stop.set()

    def down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionError("refused"))

    with pytest.raises(OperationalError):
        reliably(stop, "a test", down)
