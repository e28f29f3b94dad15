"""The pool executors (threads, processes), and riding out connection errors."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from opticstream_napari.engine.executors import LocalExecutor, ProcessExecutor
from opticstream_napari.engine.reconnect import reliably
from opticstream_napari.host import usable_cores


@pytest.mark.parametrize("kind", [LocalExecutor, ProcessExecutor])
def test_pool_executors_run_module_functions_and_report_errors(kind) -> None:
    executor = kind(3)
    try:
        assert executor.slots == 3 and executor.task_threads == max(1, usable_cores() // 3)
        assert [executor.submit(math.isqrt, i).result() for i in (0, 1, 4, 9)] == [0, 1, 2, 3]
        with pytest.raises(ValueError, match="nonnegative"):
            executor.submit(math.isqrt, -1).result()
    finally:
        executor.close()


def test_process_executor_runs_work_outside_this_process() -> None:
    executor = ProcessExecutor(1)
    try:
        assert executor.submit(os.getpid).result() != os.getpid()
    finally:
        executor.close()


def test_process_workers_leave_ctrl_c_to_the_parent() -> None:
    """Ctrl-C reaches every process of the terminal's group: a worker that took it would die mid-unit,
    though ``opticstream watch`` promises to finish the work in flight on the first one."""
    executor = ProcessExecutor(1)
    try:
        assert executor.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN
    finally:
        executor.close()


def test_workers_do_not_rerun_a_main_script_without_a_guard(tmp_path: Path) -> None:
    """A lab's script that opens napari at module level, with no ``if __name__ == "__main__"``."""
    marker = tmp_path / "runs.txt"
    script = tmp_path / "session.py"
    script.write_text(
        "import os\n"
        "from opticstream_napari.engine.executors import ProcessExecutor\n"
        f"with open({str(marker)!r}, 'a') as runs:\n"
        "    runs.write('ran\\n')\n"
        "executor = ProcessExecutor(2)\n"
        "print(sorted({executor.submit(os.getpid).result() for _ in range(4)} - {os.getpid()}) != [])\n"
        "executor.close()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True" and marker.read_text() == "ran\n"


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
