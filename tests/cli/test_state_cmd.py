"""`opticstream state show|reset|mark` and `opticstream db upgrade` on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opticstream_napari.cli import state_cmd
from opticstream_napari.cli.main import main
from opticstream_napari.config import PSOCTAcquisitionParams, PSOCTScanConfig, save_config
from opticstream_napari.identity import (
    LSMChannelId,
    LSMStripId,
    PSOCTBatchId,
    PSOCTMosaicId,
    PSOCTSliceId,
    PSOCTTileId,
)
from opticstream_napari.state import schema, urls
from opticstream_napari.state.database import Database
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.service import StateService


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def url(database_url: str) -> str:
    """A database with a small PS-OCT project p and LSM project q."""
    with StateService.connect(database_url) as state:
        state.register([PSOCTTileId("p", s, m, b, t) for s in (1, 2) for m in (1, 2)
                        for b in (1, 2) for t in (1, 2)])
        state.register([LSMStripId("q", 1, c, s) for c in (1, 2) for s in (1, 2, 3)])
    return database_url


def peek(url: str, ident: object) -> object:
    with StateService.connect(url) as state:
        return state.peek(ident)  # type: ignore[arg-type]


def test_the_env_variable_name_is_shared() -> None:
    assert state_cmd.DATABASE_URL_ENV == urls.DATABASE_URL_ENV


def test_show_a_project_a_node_and_a_summary(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "state", "show", "p", "--database-url", url)
    tree = json.loads(out)
    assert code == 0 and tree["modality"] == "psoct" and len(tree["slices"]) == 2
    assert "batches" not in tree["slices"][0]["mosaics"][0]
    code, out, _ = run(capsys, "state", "show", "p", "--slice", "2", "--mosaic", "1",
                       "--depth", "5", "--database-url", url)
    node = json.loads(out)
    assert code == 0 and node["ident"] == {"project": "p", "slice": 2, "mosaic": 1}
    assert [t["ident"]["tile"] for t in node["batches"][1]["tiles"]] == [1, 2]
    code, out, _ = run(capsys, "state", "show", "q", "--summary", "--database-url", url)
    assert code == 0 and json.loads(out)["1"]["strip"]["pending"] == 6
    code, out, _ = run(capsys, "state", "show", "p", "--slice", "1", "--summary",
                       "--database-url", url)
    assert list(json.loads(out)) == ["1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["state", "show", "nope"], "unknown project 'nope'"),
        (["state", "show", "p", "--slice", "7"], "no such slice"),
        (["state", "show", "p", "--slice", "1", "--batch", "1"], "must not skip a level"),
        (["state", "show", "p", "--mosaic", "1", "--channel", "1"], "mix modalities"),
        (["state", "show", "q", "--mosaic", "1"], "unknown project 'q' (psoct)"),
        (["state", "show", "p", "--modality", "lsm"], "unknown project 'p' (lsm)"),
        (["state", "reset", "p"], "pass --all"),
        (["state", "reset", "p", "--all", "--slice", "1"], "drop the selectors"),
        (["state", "reset", "p", "--slice", "9"], "no such slice"),
        (["state", "mark", "p", "batch", "bogus", "--slice", "1"], "has no field 'bogus'"),
        (["state", "mark", "p", "batch", "completed", "yes"], "takes no VALUE"),
        (["state", "mark", "p", "batch", "archived", "maybe"], "VALUE must be"),
        (["state", "mark", "p", "batch", "completed", "--tile", "1"], "below LEVEL batch"),
        (["state", "mark", "p", "tile", "failed", "--slice", "9"], "no tile of psoct:p"),
        (["state", "mark", "p", "tile", "failed", "--slice", "1", "--create"],
         "needs every selector"),
        (["state", "mark", "q", "strip", "compressed", "--slice", "1", "--mosaic", "1"],
         "mix modalities"),
    ],
)
def test_usage_errors_exit_2(url: str, capsys: pytest.CaptureFixture[str], argv: list[str],
                             message: str) -> None:
    code, _, err = run(capsys, *argv, "--database-url", url)
    assert code == 2
    assert message in err


def test_mark_lifecycle_on_every_child(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "state", "mark", "p", "tile", "failed", "--slice", "1",
                       "--mosaic", "2", "--message", "disk full", "--database-url", url)
    assert code == 0 and out.strip() == "marked 4 tiles: failed"
    view = peek(url, PSOCTTileId("p", 1, 2, 2, 1))
    assert view.state is Lifecycle.FAILED and view.last_error == "disk full"  # type: ignore[attr-defined]
    assert peek(url, PSOCTTileId("p", 1, 1, 1, 1)).state is Lifecycle.PENDING  # type: ignore[attr-defined]
    code, out, _ = run(capsys, "state", "mark", "p", "slice", "completed", "--database-url", url)
    assert out.strip() == "marked 2 slices: completed"
    code, out, _ = run(capsys, "state", "mark", "p", "batch", "skipped", "--slice", "2",
                       "--mosaic", "1", "--batch", "2", "--message", "outside tissue",
                       "--database-url", url)
    assert out.strip() == "marked 1 batch: skipped"
    assert peek(url, PSOCTBatchId("p", 2, 1, 2)).state is Lifecycle.SKIPPED  # type: ignore[attr-defined]
    run(capsys, "state", "mark", "p", "batch", "pending", "--slice", "2", "--database-url", url)
    assert peek(url, PSOCTBatchId("p", 2, 1, 2)).started_at is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("true", True), ("yes", True),
                                                 ("1", True), ("false", False), ("no", False),
                                                 ("0", False)])
def test_mark_flags(url: str, capsys: pytest.CaptureFixture[str], value: str | None,
                    expected: bool) -> None:
    for flag in ("complexed", "volume_processed", "enface_processed"):
        run(capsys, "state", "mark", "p", "batch", flag, "--slice", "1", "--database-url", url)
    argv = ["state", "mark", "p", "batch", "complexed", *([value] if value else []),
            "--slice", "1", "--mosaic", "1", "--database-url", url]
    code, _, _ = run(capsys, *argv)
    assert code == 0
    flags = peek(url, PSOCTBatchId("p", 1, 1, 1)).flags  # type: ignore[attr-defined]
    assert flags["complexed"] is expected
    assert flags["enface_processed"] is expected
    assert peek(url, PSOCTBatchId("p", 1, 2, 1)).flags["enface_processed"]  # type: ignore[attr-defined]


def test_mark_lsm_and_create_a_missing_node(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "state", "mark", "q", "strip", "compressed", "--slice", "1",
                       "--channel", "2", "--database-url", url)
    assert code == 0 and out.strip() == "marked 3 strips: compressed"
    assert peek(url, LSMStripId("q", 1, 2, 3)).flags["compressed"]  # type: ignore[attr-defined]
    assert not peek(url, LSMStripId("q", 1, 1, 3)).flags["compressed"]  # type: ignore[attr-defined]
    code, out, _ = run(capsys, "state", "mark", "q", "strip", "skipped", "--slice", "1",
                       "--channel", "1", "--strip", "4", "--create", "--database-url", url)
    assert code == 0 and peek(url, LSMStripId("q", 1, 1, 4)).state is Lifecycle.SKIPPED  # type: ignore[attr-defined]
    code, _, _ = run(capsys, "state", "mark", "q", "channel", "mip_stitched", "--slice", "1",
                     "--channel", "1", "--database-url", url)
    assert peek(url, LSMChannelId("q", 1, 1)).flags["mip_stitched"]  # type: ignore[attr-defined]
    code, _, _ = run(capsys, "state", "mark", "new", "mosaic", "failed", "--slice", "1",
                     "--mosaic", "1", "--create", "--database-url", url)
    assert code == 0 and peek(url, PSOCTMosaicId("new", 1, 1)).state is Lifecycle.FAILED  # type: ignore[attr-defined]


def test_a_project_in_both_modalities_needs_modality(url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with StateService.connect(url) as state:
        state.register([LSMStripId("p", 1, 1, 1)])
    code, _, err = run(capsys, "state", "show", "p", "--database-url", url)
    assert code == 2 and "both modalities" in err
    code, out, _ = run(capsys, "state", "show", "p", "--modality", "lsm", "--database-url", url)
    assert code == 0 and json.loads(out)["modality"] == "lsm"
    code, out, _ = run(capsys, "state", "show", "p", "--channel", "1", "--slice", "1",
                       "--database-url", url)
    assert code == 0 and json.loads(out)["ident"]["channel"] == 1


def test_reset_a_subtree_and_a_project(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "state", "reset", "p", "--slice", "1", "--mosaic", "2",
                       "--database-url", url)
    assert code == 0 and out.strip() == "reset psoct:p/slice=1/mosaic=2"
    assert peek(url, PSOCTTileId("p", 1, 2, 1, 1)) is None
    assert peek(url, PSOCTTileId("p", 1, 1, 1, 1)) is not None
    code, out, _ = run(capsys, "state", "reset", "p", "--all", "--database-url", url)
    assert code == 0 and out.strip() == "reset psoct:p"
    assert peek(url, PSOCTSliceId("p", 2)) is None
    code, _, err = run(capsys, "state", "show", "p", "--database-url", url)
    assert code == 2 and "known projects: lsm:q" in err


def test_the_database_comes_from_the_environment(url: str, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(urls.DATABASE_URL_ENV, url)
    code, out, _ = run(capsys, "state", "show", "q")
    assert code == 0 and json.loads(out)["project"] == "q"
    monkeypatch.delenv(urls.DATABASE_URL_ENV)
    code, _, err = run(capsys, "state", "show", "q")
    assert code == 2 and "no state database given" in err


def test_the_database_comes_from_a_scan_config(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(urls.DATABASE_URL_ENV, raising=False)
    config = PSOCTScanConfig(
        project_name="p", project_base_path=tmp_path / "project",
        acquisition=PSOCTAcquisitionParams(grid_size_x_normal=2, grid_size_x_tilted=2,
                                           grid_size_y=2),
    )
    path = save_config(config, tmp_path / "scan.yaml")
    code, _, err = run(capsys, "state", "show", "p", "--config", str(path))
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "project" / "state.db").exists()
    code, out, _ = run(capsys, "db", "upgrade", "--config", str(path))
    assert code == 0 and "upgraded from empty" in out
    assert (tmp_path / "project" / "state.db").exists()
    code, _, _ = run(capsys, "state", "mark", "p", "slice", "registered", "--slice", "1",
                     "--create", "--config", str(path))
    assert code == 0
    code, out, _ = run(capsys, "state", "show", "p", "--slice", "1", "--config", str(path))
    assert code == 0 and json.loads(out)["registered"] is True
    (tmp_path / "bad.yaml").write_text("modality: psoct\nproject_name: p\n")
    code, _, err = run(capsys, "state", "show", "p", "--config", str(tmp_path / "bad.yaml"))
    assert code == 2 and "invalid scan config" in err


def test_db_upgrade(blank_database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    database = Database(blank_database_url)
    schema.upgrade(database, "0001")
    code, _, err = run(capsys, "state", "show", "p", "--database-url", blank_database_url)
    assert code == 1 and "opticstream db upgrade" in err
    code, out, _ = run(capsys, "db", "upgrade", "--database-url", blank_database_url)
    assert code == 0 and f"from 0001 to {schema.head_revision()}" in out
    code, out, _ = run(capsys, "db", "upgrade", "--database-url", blank_database_url)
    assert code == 0 and "already at revision" in out
    with database.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    code, _, err = run(capsys, "db", "upgrade", "--database-url", blank_database_url)
    assert code == 1 and "newer than this code" in err
    database.dispose()


def test_unreachable_and_missing_databases(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "state", "show", "p", "--database-url",
                         "postgresql://ops:s3cret@127.0.0.1:9/state")
    assert code == 1 and "ops:***@127.0.0.1:9" in err and "s3cret" not in out + err
    code, _, err = run(capsys, "db", "upgrade", "--database-url",
                       "postgresql://ops:s3cret@127.0.0.1:9/state")
    assert code == 1 and "cannot reach" in err and "s3cret" not in err
    code, _, err = run(capsys, "state", "show", "p", "--database-url",
                       f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "none.db").exists()
