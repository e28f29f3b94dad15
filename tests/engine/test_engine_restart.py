"""Reliability: an engine killed with SIGKILL at several points, stopped mid-work, and a database that goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from engine_support import FAST, assert_everything_completed, assert_same_outputs, outputs, run_engine, simulate
from sqlalchemy.engine import make_url

from opticstream_napari.config import save_config
from opticstream_napari.engine.executors import ProcessExecutor
from opticstream_napari.engine.messages import EngineMessage, UnitCompleted
from opticstream_napari.engine.runner import Engine, Until
from opticstream_napari.engine.vector_width import ENV_VAR, width_in_effect
from opticstream_napari.simulate.live import Pace
from opticstream_napari.state.service import StateService

KillPoint = Callable[[list[str]], bool]
KILL_POINTS: list[tuple[str, KillPoint]] = [
    ("after 3 tiles", lambda names: names.count("linc.opticstream.psoct.tile.completed") >= 3),
    ("while a mosaic is fused", lambda names: "linc.opticstream.psoct.mosaic.running" in names),
    ("after 20 tiles", lambda names: names.count("linc.opticstream.psoct.tile.completed") >= 20),
]


def _engine(config_path: Path, raw: Path, url: str) -> subprocess.Popen[bytes]:
    """An `opticstream process` that compiles for this process's vector width, so its bytes match
    the direct run's (as an operator mixing a napari session and the command would set it)."""
    command = [sys.executable, "-m", "opticstream_napari.cli.main", "process", str(config_path), str(raw),
               "--database-url", url, "--workers", "1", "--heartbeat-timeout", "1", "--poll-interval", "0.05"]
    env = {**os.environ, ENV_VAR: str(width_in_effect())}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _event_names(url: str) -> list[str]:
    try:
        with StateService.connect(url) as state:
            return [record.name for record in state.events()]
    except Exception:  # noqa: BLE001 - the engine may still be creating the schema
        return []


def _kill_when(process: subprocess.Popen[bytes], url: str, point: KillPoint, timeout: float = 60.0) -> bool:
    """SIGKILL the engine once ``point`` holds on the event log; False if it finished first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if point(_event_names(url)):
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.01)
    assert process.poll() is not None, "the engine neither reached the kill point nor finished"
    return False


def test_engine_killed_at_several_points_finishes_every_tile_exactly_once(acquisition, tmp_path, direct_tiny) -> None:
    config, raw = acquisition
    simulate(config, raw)
    config_path = save_config(config, tmp_path / "scan.yaml")
    url = f"sqlite:///{tmp_path / 'state.db'}"
    kills = []
    for label, point in KILL_POINTS:
        if _kill_when(_engine(config_path, raw, url), url, point):
            kills.append(label)
    final = _engine(config_path, raw, url)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr.decode()[-3000:]
    assert len(kills) >= 2, f"the engine finished before most kill points: {kills}"

    names = _event_names(url)
    with StateService.connect(url) as state:
        completed = Counter(r.ident for r in state.events() if r.name.endswith("tile.completed"))
        recovered = [r for r in state.events() if r.payload.get("reason") == "claim expired"]
    assert len(completed) == 30 and set(completed.values()) == {1}
    assert recovered, "no killed claim was recovered"
    assert names.count("linc.opticstream.psoct.mosaic.enface_stitched") >= 4
    assert_everything_completed(url, config)
    assert_same_outputs(outputs(config), direct_tiny)


def test_a_stop_that_abandons_work_in_flight_loses_nothing(acquisition, tmp_path, direct_tiny) -> None:
    """The widget's Stop: worker processes end at once, their units return to pending, the next run does them."""
    config, raw = acquisition
    simulate(config, raw)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    state = StateService.connect(url)
    executor = ProcessExecutor(2)
    try:
        engine = Engine(config, raw, state, executor, **FAST)  # type: ignore[arg-type]

        done: list[EngineMessage] = []

        def stop_after_three(message: EngineMessage) -> None:
            if isinstance(message, UnitCompleted):
                done.append(message)
                if len(done) == 3:
                    engine.stop(abandon=True)

        engine.add_listener(stop_after_three)
        report = engine.run(until=Until.IDLE)
    finally:
        executor.close()
        state.close()
    assert report.stopped and not report.failed and report.completed < 30
    with StateService.connect(url) as state:
        released = [r.ident for r in state.events() if r.payload.get("reason") == "stopped before it finished"]
        assert not [r for r in state.events() if r.name.endswith(".failed")]
    assert released, "no unit was in flight when the engine stopped"

    run_engine(config, raw, url)
    with StateService.connect(url) as state:
        completed = Counter(r.ident for r in state.events() if r.name.endswith("tile.completed"))
    assert len(completed) == 30 and set(completed.values()) == {1}
    assert_everything_completed(url, config)
    assert_same_outputs(outputs(config), direct_tiny)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.postgres
def test_engine_rides_out_a_database_outage(acquisition, database_url, postgres_server, caplog, direct_tiny) -> None:
    config, raw = acquisition
    name = make_url(database_url).database
    writer = threading.Thread(target=simulate, args=(config, raw, Pace(0.05, pieces=2)))
    result = {}
    engine = threading.Thread(target=lambda: result.setdefault(
        "run", run_engine(config, raw, database_url, until=Until.COMPLETE, heartbeat_timeout=10.0)))
    writer.start()
    engine.start()
    deadline = time.monotonic() + 60
    while _event_names(database_url).count("linc.opticstream.psoct.tile.completed") < 5:
        assert time.monotonic() < deadline, "no tile completed before the outage"
        time.sleep(0.05)
    postgres_server.admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    postgres_server.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    time.sleep(2.0)
    postgres_server.admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    writer.join()
    engine.join(timeout=120)
    assert "run" in result and not result["run"].report.failed
    assert any("state database unavailable" in r.getMessage() for r in caplog.records)
    with StateService.connect(database_url) as state:
        completed = Counter(r.ident for r in state.events() if r.name.endswith("tile.completed"))
    assert len(completed) == 30 and set(completed.values()) == {1}
    assert_everything_completed(database_url, config)
    assert_same_outputs(outputs(config), direct_tiny)
