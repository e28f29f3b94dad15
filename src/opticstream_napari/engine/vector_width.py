"""SIMD width of the numba kernels, chosen once per process before numba compiles anything.

LLVM compiles for 256-bit vectors even on CPUs with AVX-512, because the first generations
(Skylake-SP to Cooper Lake) lower their clock while they run 512-bit code. Later ones (Ice Lake
and newer, AMD Zen 4 and newer) keep it, and there the spectral kernels run about 15 % faster
with 512-bit vectors (docs/performance.md).

numba fixes its code generator at its first compilation (importing napari is enough), for the
whole process, and two widths round a few results differently in the last bit. So the width
belongs to a run: the process that starts the engine chooses it (the headless commands choose
before anything compiles; a napari session started directly already has 256), and its worker
processes and dask workers compile for the same width, so every process of a run computes the
same bytes.
"""

from __future__ import annotations

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


def _numba_compiled_yet() -> bool:
    from numba.core.registry import cpu_target

    return "_toplevel_target_context" in vars(cpu_target)  # created, with its code generator, on first use


def use_wide_vectors(choice: str | None = None) -> int:
    """Ask numba for 512-bit vectors where they pay; returns the width in effect (256 or 512).

    ``choice`` ("auto", "256" or "512"; default: the ``OPTICSTREAM_VECTOR_WIDTH`` environment
    variable, else "auto") decides; "512" on a CPU without AVX-512 stays at 256. A
    ``NUMBA_CPU_FEATURES`` or ``NUMBA_CPU_NAME`` set by the user, or a numba that has already
    compiled in this process, is left as it is.
    """
    import llvmlite.binding as llvm
    from numba import config

    if choice is None:
        choice = os.environ.get(ENV_VAR, "auto")
        if choice not in CHOICES:
            raise ValueError(f"{ENV_VAR} must be one of {', '.join(CHOICES)}, found {choice!r}")
    elif choice not in CHOICES:
        raise ValueError(f"vector width must be one of {', '.join(CHOICES)}, found {choice!r}")
    if os.environ.get("NUMBA_CPU_FEATURES") or os.environ.get("NUMBA_CPU_NAME") or _numba_compiled_yet():
        return width_in_effect()
    features = llvm.get_host_cpu_features().flatten()
    cpu = config.CPU_NAME or llvm.get_host_cpu_name()
    wide = "+avx512f" in features.split(",") and (
        choice == "512" or (choice == "auto" and wide_vectors_pay(cpu, features))
    )
    if wide:
        config.CPU_FEATURES = f"{features},{PREFER_256}"
    return width_in_effect()
