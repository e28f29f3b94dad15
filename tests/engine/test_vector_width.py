"""numba's vector width: chosen once per process, before numba compiles, where 512 bits pay."""

from __future__ import annotations

import os
import subprocess
import sys

import llvmlite.binding as llvm
import numpy as np
import pytest

from opticstream_napari.engine.executors import DaskExecutor, ProcessExecutor
from opticstream_napari.engine.vector_width import (
    ENV_VAR,
    NARROW,
    WIDE,
    use_wide_vectors,
    wide_vectors_pay,
    width_for,
    width_in_effect,
)

HOST_FEATURES = llvm.get_host_cpu_features().flatten()
HOST_PAYS = wide_vectors_pay(llvm.get_host_cpu_name(), HOST_FEATURES)
needs_avx512 = pytest.mark.skipif("+avx512f" not in HOST_FEATURES.split(","), reason="the host has no AVX-512")

# Compiles a float32 sum and reports the width chosen and whether it adds in 512-bit registers.
PROBE = """
import re
import sys
import numba
import numpy as np
from opticstream_napari.engine.vector_width import use_wide_vectors

def total(values):
    acc = np.float32(0.0)
    for i in range(values.size):
        acc += values[i]
    return acc

early = sys.argv[1] == "after-compile"
if early:
    numba.njit(total)(np.ones(8, np.float32))
width = use_wide_vectors()
kernel = numba.njit(fastmath=True)(total)
kernel(np.ones(64, np.float32))
asm = next(iter(kernel.inspect_asm().values()))
print(width, re.search(r"vaddps\\s[^\\n]*zmm", asm) is not None)
"""


def _clean_env() -> dict[str, str]:
    """This environment without a width choice (the test session sets one for its workers)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_CPU") and key != ENV_VAR}


def _probe(choice: str, when: str = "first") -> str:
    env = {**_clean_env(), ENV_VAR: choice}
    done = subprocess.run([sys.executable, "-c", PROBE, when], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_only_cpus_that_keep_their_clock_get_wide_vectors() -> None:
    assert wide_vectors_pay("emeraldrapids", "+avx2,+avx512f")
    assert wide_vectors_pay("znver4", "+avx512f,+avx2")
    assert not wide_vectors_pay("cascadelake", "+avx2,+avx512f")
    assert not wide_vectors_pay("skylake-avx512", "+avx512f")
    assert not wide_vectors_pay("alderlake", "+avx2,-avx512f")


def test_what_each_choice_gives_on_this_host() -> None:
    avx512 = "+avx512f" in HOST_FEATURES.split(",")
    assert width_for("256") == NARROW
    assert width_for("512") == (WIDE if avx512 else NARROW)
    assert width_for("auto") == (WIDE if HOST_PAYS else NARROW)


@needs_avx512
@pytest.mark.parametrize(("choice", "expected"), [("512", f"{WIDE} True"), ("256", f"{NARROW} False")])
def test_the_choice_decides_the_registers_numba_compiles_for(choice: str, expected: str) -> None:
    assert _probe(choice) == expected


def test_auto_gives_wide_vectors_where_they_pay() -> None:
    assert _probe("auto") == (f"{WIDE} True" if HOST_PAYS else f"{NARROW} False")


@needs_avx512
def test_once_numba_has_compiled_the_width_stays() -> None:
    assert _probe("512", "after-compile") == f"{NARROW} False"


def test_a_wrong_choice_names_the_variable_and_the_value(monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, "wide")
    with pytest.raises(ValueError, match=f"{ENV_VAR} must be one of auto, 256, 512, found 'wide'"):
        use_wide_vectors()
    with pytest.raises(ValueError, match=ENV_VAR):
        ProcessExecutor(1)
    with pytest.raises(ValueError, match=ENV_VAR):
        DaskExecutor(workers=1)
    with pytest.raises(ValueError, match="vector width must be one of auto, 256, 512, found '1024'"):
        use_wide_vectors("1024")


@needs_avx512
@pytest.mark.parametrize("choice", ["256", "512"])
def test_worker_processes_apply_the_choice_of_the_environment_they_start_from(choice: str, monkeypatch) -> None:
    """This test process has compiled already (napari's pytest plugin imports numba code): its own
    width cannot change, the workers' does."""
    monkeypatch.setenv(ENV_VAR, choice)
    executor = ProcessExecutor(1)
    try:
        assert executor.submit(width_in_effect).result() == int(choice)
    finally:
        executor.close()


# A fresh process starts an executor of the given kind and prints a worker's width.
START_WORKERS = """
import sys
from opticstream_napari.engine.executors import DaskExecutor, ProcessExecutor
from opticstream_napari.engine.vector_width import width_in_effect

if __name__ == "__main__":
    kind = sys.argv[1]
    executor = ProcessExecutor(1) if kind == "processes" else DaskExecutor(workers=1, memory_limit="1GiB")
    try:
        print(executor.submit(width_in_effect).result())
    finally:
        executor.close()
"""


@pytest.mark.parametrize("kind", ["processes", "dask"])
def test_workers_get_wide_vectors_by_default_where_they_pay(kind: str, tmp_path) -> None:
    script = tmp_path / "start_workers.py"
    script.write_text(START_WORKERS)
    done = subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True, env=_clean_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(WIDE if HOST_PAYS else NARROW)]


# Reconstructs one seeded spectral tile and saves its volumes, surface and en-face maps.
RECONSTRUCT = """
import sys
import numpy as np
from opticstream_napari.engine.vector_width import use_wide_vectors

width = use_wide_vectors()
from pathlib import Path
from opticstream_napari.engine.plans import shared_plans
from opticstream_napari.processing.psoct import (
    Calibration, EnfaceParams, SpectralReconstructor, reconstruct_spectral_tile,
)

length, alines, blines = 512, 40, 6
mu = np.stack([np.linspace(20, 490, 9), np.linspace(23, 493, 9)], axis=1)
calibration = Calibration(mu, np.linspace(1240, 1360, 9), length)
rng = np.random.default_rng(7)
k = np.arange(length)
depths = rng.uniform(40, 200, (alines, 3))
fringes = np.cos(2 * np.pi * depths[:, :, None] * k / length).sum(axis=1)
raw = 2000 + 300 * fringes + rng.normal(0, 20, (blines, 2, alines, length))
raw = raw.clip(0, 4095).astype(np.uint16)
with shared_plans(Path(sys.argv[2]), (length, alines)):  # the same FFT algorithm in both processes
    result = reconstruct_spectral_tile(raw, SpectralReconstructor(calibration, length, alines), EnfaceParams(),
                                       workers=2)
v = result.volumes
np.savez(sys.argv[1], width=width, dbi=v.dbi, r3d=v.r3d, o3d=v.o3d, surface=result.surface, **result.enface)
"""


@needs_avx512
def test_both_widths_reconstruct_the_same_tile(tmp_path) -> None:
    results = {}
    for choice in ("256", "512"):
        out = tmp_path / f"{choice}.npz"
        env = {**_clean_env(), ENV_VAR: choice}
        done = subprocess.run([sys.executable, "-c", RECONSTRUCT, str(out), str(tmp_path / "wisdom.json")],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        results[choice] = dict(np.load(out))
    narrow, wide = results["256"], results["512"]
    assert (int(narrow.pop("width")), int(wide.pop("width"))) == (NARROW, WIDE)
    np.testing.assert_array_equal(narrow.pop("surface"), wide.pop("surface"))
    for name, values in narrow.items():  # the same up to rounding, at each map's own scale
        np.testing.assert_allclose(wide[name], values, rtol=1e-5, atol=1e-5 * np.abs(values).max(), err_msg=name)
