"""SIMD width of the numba kernels, chosen once per process before numba compiles anything.

LLVM compiles for 256-bit vectors even on CPUs with AVX-512, because the first generations
(Skylake-SP to Cooper Lake) lower their clock while they run 512-bit code. Later ones (Ice Lake
and newer, AMD Zen 4 and newer) keep it, and there the spectral kernels run about 15 % faster
with 512-bit vectors (docs/performance.md).

numba fixes its code generator at its first compilation, for the whole process, and two widths
round a few results differently in the last bit. So every process that computes outputs
applies the same choice (``OPTICSTREAM_VECTOR_WIDTH``, default "auto") before it compiles: the
engine's worker processes and dask workers, and the headless commands, whose own threads do the
work. A process that has compiled already keeps its width: napari compiles numba code while it
starts, so a napari session runs the engine in worker processes, which choose for themselves.
"""

from __future__ import annotations

import functools
import os

ENV_VAR = "OPTICSTREAM_VECTOR_WIDTH"
CHOICES = ("auto", "256", "512")
NARROW, WIDE = 256, 512
# LLVM's names of the AVX-512 CPUs that slow down for 512-bit code.
THROTTLING_CPUS = frozenset({"knl", "knm", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake"})
PREFER_256 = "-prefer-256-bit"


def wide_vectors_pay(cpu: str, features: str) -> bool:
    """Whether a CPU (LLVM's name and feature string) runs 512-bit code at full clock."""
    return "+avx512f" in features.split(",") and cpu not in THROTTLING_CPUS


def width_in_effect() -> int:
    """The width numba compiles for in this process, as far as this module decides it."""
    from numba import config

    features = config.CPU_FEATURES
    return WIDE if features is not None and PREFER_256 in features.split(",") else NARROW


def requested_width() -> str:
    """The ``OPTICSTREAM_VECTOR_WIDTH`` choice, checked ("auto" when unset)."""
    return _checked(os.environ.get(ENV_VAR, "auto"), ENV_VAR)


def width_for(choice: str) -> int:
    """The width ``choice`` gives on this host, in a process that has not compiled yet."""
    from numba import config

    _checked(choice, "vector width")
    features = _host_features()
    cpu = config.CPU_NAME or _host_cpu()
    wide = "+avx512f" in features.split(",") and (
        choice == "512" or (choice == "auto" and wide_vectors_pay(cpu, features))
    )
    return WIDE if wide else NARROW


def _checked(choice: str, name: str) -> str:
    if choice not in CHOICES:
        raise ValueError(f"{name} must be one of {', '.join(CHOICES)}, found {choice!r}")
    return choice


@functools.cache
def _host_features() -> str:
    import llvmlite.binding as llvm

    return str(llvm.get_host_cpu_features().flatten())


@functools.cache
def _host_cpu() -> str:
    import llvmlite.binding as llvm

    return str(llvm.get_host_cpu_name())


def _numba_compiled_yet() -> bool:
    from numba.core.registry import cpu_target

    return "_toplevel_target_context" in vars(cpu_target)  # created, with its code generator, on first use


def use_wide_vectors(choice: str | None = None) -> int:
    """Ask numba for 512-bit vectors where they pay; returns the width in effect (256 or 512).

    ``choice`` ("auto", "256" or "512"; default: :func:`requested_width`) decides; "512" on a
    CPU without AVX-512 stays at 256. A ``NUMBA_CPU_FEATURES`` or ``NUMBA_CPU_NAME`` set by the
    user, or a numba that has already compiled in this process, is left as it is.
    """
    from numba import config

    wanted = width_for(choice if choice is not None else requested_width())
    if os.environ.get("NUMBA_CPU_FEATURES") or os.environ.get("NUMBA_CPU_NAME") or _numba_compiled_yet():
        return width_in_effect()
    if wanted == WIDE:
        config.CPU_FEATURES = f"{_host_features()},{PREFER_256}"
    return width_in_effect()
