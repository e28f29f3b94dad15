"""`opticstream watch|process|status|retry`: the engine without a display.

Exit codes: 0 done (every unit processed completed, or a watch stopped by a signal); 1 a failure
of the engine itself (database unreachable, schema mismatch, executor); 2 a usage error (bad
config, unknown node); 3 finished, but some units or stitching steps failed (their errors are
printed and in the state); 130 interrupted twice (abandons work in flight).
Logs go to the terminal and to ``<project_base_path>/logs/opticstream.log``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opticstream_napari.cli.main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError, positive_int

if TYPE_CHECKING:
    from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig
    from opticstream_napari.engine.executors import Executor
    from opticstream_napari.engine.runner import Engine, RunReport
    from opticstream_napari.state.service import StateService

EXIT_UNITS_FAILED = 3
log = logging.getLogger("opticstream_napari.cli.engine")


def register(subparsers: argparse._SubParsersAction) -> None:
    watch = subparsers.add_parser(
        "watch", help="watch an acquisition folder and process it as it grows",
        description="Process every raw unit of RAW_FOLDER once its files stay unchanged for "
        "--stability-seconds, stitch mosaics when they are ready, and keep watching until stopped "
        "(Ctrl-C or SIGTERM: the work in flight finishes first).",
    )
    _engine_options(watch, stability=15.0)
    watch.add_argument("--until-complete", type=positive_int, metavar="SLICES",
                       help="exit once SLICES slices are seen and every node of them is complete")
    watch.set_defaults(handler=_runs_the_engine(_watch))

    process = subparsers.add_parser(
        "process", help="process what RAW_FOLDER holds now, then exit",
        description="One pass: process every raw unit present (done ones are skipped unless --force), "
        "stitch what is ready, and exit when nothing is left to do.",
    )
    _engine_options(process, stability=0.0)
    process.set_defaults(handler=_runs_the_engine(_process))

    status = subparsers.add_parser("status", help="per-slice progress table of a project")
    status.add_argument("config", type=Path, metavar="CONFIG", help="scan config YAML")
    status.add_argument("--database-url", help="state database (default: from the environment or CONFIG)")
    status.set_defaults(handler=_status)

    retry = subparsers.add_parser(
        "retry", help="run a failed (or any) unit again",
        description="Return the unit to pending and process it (and what becomes ready after it). "
        "PS-OCT: --slice --mosaic [--batch] [--tile] (a mosaic alone re-runs its failed tiles and "
        "its stitching; a batch all its tiles). LSM: --slice --channel [--strip].",
    )
    retry.add_argument("config", type=Path, metavar="CONFIG", help="scan config YAML")
    for name in ("slice", "mosaic", "batch", "tile", "channel", "strip"):
        retry.add_argument(f"--{name}", type=positive_int, metavar="N", help=f"the {name} (as in `opticstream status`)")
    _runtime_options(retry)
    retry.set_defaults(handler=_runs_the_engine(_retry))


def _engine_options(parser: argparse.ArgumentParser, *, stability: float) -> None:
    parser.add_argument("config", type=Path, metavar="CONFIG", help="scan config YAML")
    parser.add_argument("raw_folder", type=Path, metavar="RAW_FOLDER", help="the acquisition folder")
    parser.add_argument("--stability-seconds", type=float, default=stability,
                        help=f"a unit is processed once unchanged this long (default {stability:g})")
    parser.add_argument("--poll-interval", type=float, default=5.0 if stability else 0.5,
                        help="seconds between folder scans (notifications wake it earlier)")
    parser.add_argument("--incomplete-grace", type=float, default=120.0 if stability else 0.0,
                        help="PS-OCT: a tile smaller or larger than its geometry implies is processed "
                        "(and fails with the reader's error) only after staying unchanged this long")
    parser.add_argument("--mosaic-ranges", help="PS-OCT source mosaics to process, e.g. 1:999999 or 1:2,5:6")
    parser.add_argument("--slice-offset", type=int, default=0, help="added to the slice of every raw unit")
    parser.add_argument("--force", action="store_true", help="re-run units the state says are done")
    parser.add_argument("--no-live-previews", action="store_true",
                        help="PS-OCT: do not grow live mosaic previews tile by tile (final mosaics only)")
    _runtime_options(parser)


def _runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="state database (default: from the environment or CONFIG)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the work on a dask.distributed scheduler, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=positive_int, help="local executor threads (default: cores / 4, at least 2)")
    parser.add_argument("--processes", action="store_true",
                        help="run the local workers as processes instead of threads (as the napari widget does)")
    parser.add_argument("--heartbeat-timeout", type=float, default=60.0,
                        help="seconds without a heartbeat before a dead engine's units are run again")


# ---------------------------------------------------------------------- shared set-up


def _load(path: Path) -> PSOCTScanConfig | LSMScanConfig:
    from opticstream_napari.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as error:
        raise CommandError(str(error), EXIT_USAGE) from None


def _connect(config: PSOCTScanConfig | LSMScanConfig, url: str | None) -> StateService:
    from opticstream_napari.state.errors import StateError
    from opticstream_napari.state.service import StateService

    try:
        return StateService.for_config(config, url)
    except StateError as error:
        raise CommandError(str(error), EXIT_FAILURE) from None


def use_engine_vectors() -> None:
    """The local executor's threads compute in this process: choose numba's vector width as the
    worker processes do. Called before the engine's modules are imported, since importing them
    makes numba settle on its default."""
    from opticstream_napari.engine.vector_width import use_wide_vectors

    try:
        log.debug("numba kernels use %d-bit vectors", use_wide_vectors())
    except ValueError as error:
        raise CommandError(str(error), EXIT_USAGE) from None


def _runs_the_engine(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command that runs the engine: numba's width is chosen before anything is imported."""

    def run(args: argparse.Namespace) -> int:
        use_engine_vectors()
        return handler(args)

    return run


def _executor(args: argparse.Namespace) -> Executor:
    from opticstream_napari.engine.executors import DaskExecutor, LocalExecutor, ProcessExecutor

    if args.scheduler:
        try:
            return DaskExecutor(args.scheduler)
        except OSError as error:
            raise CommandError(f"cannot reach the dask scheduler at {args.scheduler}: {error}") from None
    return (ProcessExecutor if args.processes else LocalExecutor)(args.workers)


@contextmanager
def log_to_file(config: PSOCTScanConfig | LSMScanConfig) -> Iterator[Path]:
    """Also log INFO and above to ``<project_base_path>/logs/opticstream.log`` while the block runs."""
    from opticstream_napari import naming

    folder = config.project_base_path / naming.LOG_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / naming.LOG_FILE
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


@contextmanager
def _graceful(engine: Engine) -> Iterator[None]:
    """SIGINT/SIGTERM: finish the work in flight, then stop; a second SIGINT aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: Any) -> None:
        if engine.stopping:
            raise KeyboardInterrupt
        print(f"\n{signal.Signals(signum).name}: finishing the work in flight (Ctrl-C again aborts)",
              file=sys.stderr, flush=True)
        engine.stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run_engine(args: argparse.Namespace, label: str, run: Any) -> int:
    """Set up config, state, executor, logs and progress; ``run(engine)`` returns the report."""
    config = _load(args.config)
    raw_folder = getattr(args, "raw_folder", None)
    if raw_folder is not None and not raw_folder.is_dir():
        raise CommandError(f"acquisition folder {raw_folder} does not exist or is not a folder", EXIT_USAGE)
    with log_to_file(config) as logfile:
        return _exit_code(_run_with_log(args, label, run, config, raw_folder, logfile))


def _run_with_log(args: argparse.Namespace, label: str, run: Any, config: PSOCTScanConfig | LSMScanConfig,
                  raw_folder: Path | None, logfile: Path) -> RunReport:
    from opticstream_napari.cli.progress import ProgressLine
    from opticstream_napari.engine.discover import MosaicRanges
    from opticstream_napari.engine.runner import Engine

    state = _connect(config, args.database_url)
    executor = _executor(args)
    try:
        try:
            ranges = MosaicRanges.parse(getattr(args, "mosaic_ranges", None))
            engine = Engine(
                config, raw_folder, state, executor,
                stability_seconds=getattr(args, "stability_seconds", 0.0),
                poll_interval=getattr(args, "poll_interval", 0.5),
                incomplete_grace=getattr(args, "incomplete_grace", 0.0),
                mosaic_ranges=ranges, slice_offset=getattr(args, "slice_offset", 0),
                force=getattr(args, "force", False), live_previews=not getattr(args, "no_live_previews", False),
                heartbeat_interval=min(5.0, args.heartbeat_timeout / 4), heartbeat_timeout=args.heartbeat_timeout,
            )
        except ValueError as error:
            raise CommandError(str(error), EXIT_USAGE) from None
        progress = ProgressLine(label)
        engine.add_listener(progress)
        log.info("%s %s with %r; log file %s", label, config.project_name, executor, logfile)
        with _graceful(engine):
            report = run(engine)
        progress.finish()
    finally:
        executor.close()
        state.close()
    return report


def _exit_code(report: RunReport) -> int:
    if report.failed:
        print(f"{len(report.failed)} failed:", file=sys.stderr)
        for ident, error in report.failed.items():
            print(f"  {ident}: {error}", file=sys.stderr)
        return EXIT_UNITS_FAILED
    return EXIT_OK


# ---------------------------------------------------------------------- commands


def _watch(args: argparse.Namespace) -> int:
    from opticstream_napari.engine.runner import Until

    until = Until.COMPLETE if args.until_complete else Until.STOPPED
    code = _run_engine(args, "watch", lambda engine: engine.run(until=until, slices=args.until_complete))
    return code


def _process(args: argparse.Namespace) -> int:
    from opticstream_napari.engine.runner import Until

    return _run_engine(args, "process", lambda engine: engine.run(until=Until.IDLE))


def _status(args: argparse.Namespace) -> int:
    from opticstream_napari.cli.progress import status_table
    from opticstream_napari.state.hierarchy import ProjectKey
    from opticstream_napari.state.summary import summarize

    config = _load(args.config)
    state = _connect(config, args.database_url)
    try:
        project = ProjectKey(config.modality, config.project_name)
        summaries = summarize(state, project)
        print(f"{project}")
        print(status_table(summaries))
        failed = _failed_nodes(state, project)
    finally:
        state.close()
    for ident, error in failed:
        print(f"failed: {ident}: {error}")
    return EXIT_UNITS_FAILED if failed else EXIT_OK


def _failed_nodes(state: StateService, project: Any) -> list[tuple[str, str]]:
    from opticstream_napari.state.errors import NodeNotFound

    try:
        tree = state.tree(project, depth=4)
    except NodeNotFound:
        return []
    failed = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.get("state") == "failed":
            failed.append((node["ident"], node.get("last_error") or ""))
        for key in ("slices", "mosaics", "batches", "tiles", "channels", "strips"):
            stack.extend(reversed(node.get(key, [])))
    return [(" ".join(f"{k}={v}" for k, v in ident.items() if k != "project"), error) for ident, error in failed]


def _retry(args: argparse.Namespace) -> int:
    from opticstream_napari.state.errors import NodeNotFound

    config = _load(args.config)
    ident = _retry_target(args, config)

    def run(engine: Engine) -> RunReport:
        try:
            return engine.retry(ident)
        except NodeNotFound as error:
            raise CommandError(str(error), EXIT_USAGE) from None

    return _run_engine(args, "retry", run)


def _retry_target(args: argparse.Namespace, config: PSOCTScanConfig | LSMScanConfig) -> Any:
    from opticstream_napari.identity import (
        LSMChannelId,
        LSMStripId,
        PSOCTBatchId,
        PSOCTMosaicId,
        PSOCTTileId,
    )
    from opticstream_napari.layout import batch_of_tile

    project = config.project_name
    if args.slice is None:
        raise CommandError("retry needs --slice", EXIT_USAGE)
    if config.modality == "psoct":
        if args.mosaic is None or args.channel or args.strip:
            raise CommandError("PS-OCT retry takes --slice --mosaic [--batch] [--tile]", EXIT_USAGE)
        if args.tile is not None:
            batch = batch_of_tile(args.tile, config.acquisition.grid_size_y)
            if args.batch is not None and args.batch != batch:
                raise CommandError(f"tile {args.tile} is in batch {batch}, not {args.batch}", EXIT_USAGE)
            return PSOCTTileId(project, args.slice, args.mosaic, batch, args.tile)
        if args.batch is not None:
            return PSOCTBatchId(project, args.slice, args.mosaic, args.batch)
        return PSOCTMosaicId(project, args.slice, args.mosaic)
    if args.channel is None or args.mosaic or args.batch or args.tile:
        raise CommandError("LSM retry takes --slice --channel [--strip]", EXIT_USAGE)
    if args.strip is not None:
        return LSMStripId(project, args.slice, args.channel, args.strip)
    return LSMChannelId(project, args.slice, args.channel)
