import os
from pathlib import Path

import pytest

from opticstream_napari import host


def test_usable_cores_follow_the_affinity() -> None:
    assert host.usable_cores() == len(os.sched_getaffinity(0)) >= 1


def test_available_memory_is_the_kernels_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < host.available_memory() <= total
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:          100000 kB\nMemAvailable:   12345678 kB\n")
    monkeypatch.setattr(host, "MEMINFO", meminfo)
    assert host.available_memory() == 12345678 * 1024


def test_available_memory_without_meminfo_counts_free_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "MEMINFO", tmp_path / "missing")
    assert host.available_memory() == os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") > 0
