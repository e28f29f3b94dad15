"""`opticstream simulate`: write a simulated acquisition (raw data, config, ground truth)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from opticstream_napari.config import (
    LSMScanConfig,
    PSOCTScanConfig,
    TileSavingType,
    save_config,
)
from opticstream_napari.simulate.live import Pace, StopSignal

SCAN_CONFIG_FILE = "scan.yaml"
RAW_FOLDER = "raw"
PROJECT_FOLDER = "project"


@dataclass(frozen=True, slots=True)
class SimulatedRun:
    """Where a simulated acquisition lives: its config file, raw folder and project folder."""

    root: Path
    config: LSMScanConfig | PSOCTScanConfig

    @property
    def config_path(self) -> Path:
        return self.root / SCAN_CONFIG_FILE

    @property
    def raw_folder(self) -> Path:
        return self.root / RAW_FOLDER


def prepare_run(
    root: Path,
    modality: Literal["psoct", "lsm"],
    size: Literal["tiny", "demo", "large"],
    tile_format: TileSavingType | None = None,
) -> SimulatedRun:
    """Write the scan config for a simulated project under ``root``."""
    from opticstream_napari.simulate.lsm import lsm_preset
    from opticstream_napari.simulate.psoct import psoct_preset

    project = root / PROJECT_FOLDER
    if modality == "psoct":
        config: LSMScanConfig | PSOCTScanConfig = psoct_preset(project, size)
        if tile_format is not None:
            config.acquisition.tile_saving_type = tile_format
    else:
        config = lsm_preset(project, size)
    run = SimulatedRun(root, config)
    project.mkdir(parents=True, exist_ok=True)
    run.raw_folder.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config_path)
    return run


def iter_acquisition(
    run: SimulatedRun, *, slices: int, seed: int, pace: Pace, stop: StopSignal | None = None
) -> Iterator[Path]:
    """Each raw file (PS-OCT) or strip folder (LSM) once it is complete on disk."""
    if isinstance(run.config, PSOCTScanConfig):
        from opticstream_napari.simulate.psoct import iter_simulate_psoct

        yield from iter_simulate_psoct(
            run.config, run.raw_folder, slices=slices, seed=seed, pace=pace, stop=stop
        )
    else:
        from opticstream_napari.simulate.lsm import iter_simulate_lsm

        yield from iter_simulate_lsm(
            run.config, run.raw_folder, slices=slices, seed=seed, pace=pace, stop=stop
        )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write a simulated acquisition with its ground truth",
        description="Write raw data as the instrument does, a scan config and the ground truth.",
    )
    parser.add_argument("modality", choices=["psoct", "lsm"])
    parser.add_argument("output", type=Path, help="folder for scan.yaml, raw/ and project/")
    parser.add_argument("--size", choices=["tiny", "demo", "large"], default="tiny")
    parser.add_argument("--slices", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds per file (live mode)")
    parser.add_argument("--pieces", type=int, default=1, help="appends per file in live mode")
    parser.add_argument(
        "--format",
        choices=[t.value for t in TileSavingType if t.value in ("spectral", "spectral_12bit", "complex")],
        help="PS-OCT tile format (default: the preset's)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    tile_format = TileSavingType(args.format) if args.format else None
    run = prepare_run(args.output, args.modality, args.size, tile_format)
    pace = Pace(args.pace, args.pieces)
    print(f"config: {run.config_path}")
    count = 0
    for path in iter_acquisition(run, slices=args.slices, seed=args.seed, pace=pace):
        count += 1
        print(f"wrote {path.relative_to(args.output)}")
    print(f"{count} raw items in {run.raw_folder}")
    return 0
