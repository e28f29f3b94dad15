"""Shared FFT plans: the first use per geometry imports and exports the wisdom file, once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyfftw

from opticstream_napari.engine.plans import WISDOM_ENV, shared_plans, wisdom_path


def test_wisdom_is_exported_after_the_first_use_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(WISDOM_ENV, raising=False)
    path = wisdom_path(tmp_path)
    assert path == tmp_path / "fftw-wisdom.json"
    with shared_plans(path, "geometry-a"):
        source = pyfftw.empty_aligned((8, 208), dtype=np.float32)
        pyfftw.FFTW(source, pyfftw.empty_aligned((8, 105), dtype=np.complex64), axes=(1,),
                    flags=("FFTW_MEASURE",))
    saved = json.loads(path.read_text())
    assert len(saved) == 3 and "fftwf_codelet" in saved[1]  # the single-precision plan was recorded
    path.write_text(json.dumps(saved))
    stamp = path.stat().st_mtime_ns
    with shared_plans(path, "geometry-a"):
        pass
    assert path.stat().st_mtime_ns == stamp
    monkeypatch.setenv(WISDOM_ENV, str(tmp_path / "shared.json"))
    assert wisdom_path(tmp_path) == tmp_path / "shared.json"
