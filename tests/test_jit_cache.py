import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opticstream_napari import jit_cache
from opticstream_napari.jit_cache import ENV_VAR, KEEP, key_numba_cache, source_digest

CALLER = """
import numba
from toy.callee import value

@numba.njit(cache=True)
def total():
    return value() + 1
"""


def _toy(tmp_path: Path, keyed: bool) -> Path:
    """A package whose cached kernel calls a cached kernel of another module."""
    package = tmp_path / "toy"
    package.mkdir()
    # jit_cache loaded by path: importing opticstream_napari would key the cache by its own source
    init = textwrap.dedent(f"""
        import importlib.util
        from pathlib import Path
        spec = importlib.util.spec_from_file_location("jit_cache", {str(Path(jit_cache.__file__))!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    """)
    init += "module.key_numba_cache(Path(__file__).parent)\n" if keyed else ""
    (package / "__init__.py").write_text(init)
    (package / "caller.py").write_text(CALLER)
    _callee(package, 1)
    return package


def _callee(package: Path, value: int) -> None:
    (package / "callee.py").write_text(f"import numba\n\n@numba.njit(cache=True)\ndef value():\n    return {value}\n")


def _total(package: Path, cache_home: Path) -> int:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env.update(PYTHONPATH=str(package.parent), XDG_CACHE_HOME=str(cache_home), PYTHONDONTWRITEBYTECODE="1")
    script = "from toy.caller import total; print(total())"
    return int(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                              check=True).stdout)


@pytest.mark.parametrize("keyed", [True, False])
def test_a_changed_callee_is_recompiled_only_with_a_keyed_cache(tmp_path: Path, keyed: bool) -> None:
    """numba alone keeps the caller's cached code, compiled with the old callee, after the callee
    changes; with the cache keyed by the package's source the caller sees the new callee."""
    package = _toy(tmp_path, keyed)
    assert _total(package, tmp_path / "cache") == 2
    _callee(package, 10)
    assert _total(package, tmp_path / "cache") == (11 if keyed else 2)


def test_the_digest_follows_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("not source")
    first = source_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("changed")
    assert source_digest(tmp_path) == first
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    assert source_digest(tmp_path) != first
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    assert source_digest(tmp_path) == first
    (tmp_path / "sub" / "b.py").rename(tmp_path / "sub" / "c.py")
    assert source_digest(tmp_path) != first


def test_an_explicit_cache_directory_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine"))
    assert key_numba_cache(tmp_path, tmp_path / "root") is None
    assert os.environ[ENV_VAR] == str(tmp_path / "mine")
    assert not (tmp_path / "root").exists()


def test_old_versions_are_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    source, root = tmp_path / "src", tmp_path / "root"
    source.mkdir()
    made = []
    for version in range(KEEP + 2):
        monkeypatch.delenv(ENV_VAR, raising=False)
        (source / "m.py").write_text(f"v = {version}\n")
        made.append(key_numba_cache(source, root))
        os.utime(made[-1], (version, version))  # distinct ages, oldest first
        assert numba.config.CACHE_DIR == str(made[-1]) == os.environ[ENV_VAR]
    assert sorted(root.iterdir()) == sorted(made[-KEEP:])
