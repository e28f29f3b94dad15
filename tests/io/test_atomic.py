from pathlib import Path

import pytest

from opticstream_napari.io.atomic import atomic_path, atomic_write_text, is_temporary


def test_file_appears_only_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "out" / "a.txt"
    with atomic_path(final) as tmp:
        tmp.write_text("partial")
        assert not final.exists() and is_temporary(tmp)
    assert final.read_text() == "partial"


def test_failure_leaves_nothing_and_keeps_the_old_output(tmp_path: Path) -> None:
    final = atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("new")
        raise RuntimeError("crash")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_folder_replacement(tmp_path: Path) -> None:
    final = tmp_path / "x.zarr"
    for value in ("1", "2"):
        with atomic_path(final) as tmp:
            tmp.mkdir()
            (tmp / "chunk").write_text(value)
    assert (final / "chunk").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]


def test_nothing_written_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_path(tmp_path / "y"):
        pass
    with pytest.raises(FileExistsError), atomic_path(atomic_write_text(tmp_path / "z", "1"), overwrite=False):
        pass
