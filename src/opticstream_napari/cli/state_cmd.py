"""`opticstream state show|reset|mark` and `opticstream db upgrade` (spec 5, "CLI on state").

The database comes from ``--database-url``, else ``OPTICSTREAM_DATABASE_URL``, else the scan
config given with ``--config`` (its ``database_url`` or ``<project_base_path>/state.db``).
Exit codes: 0 done, 2 usage error or unknown project/node, 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opticstream_napari.cli.main import EXIT_FAILURE, EXIT_USAGE, CommandError, positive_int
from opticstream_napari.state.lifecycle import Lifecycle

if TYPE_CHECKING:
    from opticstream_napari.identity import Identity
    from opticstream_napari.state.hierarchy import Level, ProjectKey
    from opticstream_napari.state.node import NodeHandle
    from opticstream_napari.state.service import StateService

# The database stack loads only when a state command runs, so other commands start fast.
DATABASE_URL_ENV = "OPTICSTREAM_DATABASE_URL"
MODALITIES = ("psoct", "lsm")
_SELECTORS = ("slice", "mosaic", "batch", "tile", "channel", "strip")
_MODALITY_OF = {"mosaic": "psoct", "batch": "psoct", "tile": "psoct",
                "channel": "lsm", "strip": "lsm"}
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``state`` and ``db`` command groups."""
    state = subparsers.add_parser("state", help="show, reset or mark project state")
    actions = state.add_subparsers(dest="state_command", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="print a project, slice, … and its children as JSON")
    show.add_argument("project", metavar="PROJECT")
    _common(show, selectors=True)
    show.add_argument("--depth", type=int, default=2, help="levels of children (default 2)")
    show.add_argument("--summary", action="store_true",
                      help="print per-slice counts of each state instead of the tree")
    show.set_defaults(handler=_show)

    reset = actions.add_parser("reset", help="delete a node and its subtree, or a project")
    reset.add_argument("project", metavar="PROJECT")
    _common(reset, selectors=True)
    reset.add_argument("--all", action="store_true", help="delete the whole project")
    reset.set_defaults(handler=_reset)

    mark = actions.add_parser(
        "mark", help="set a lifecycle state or milestone flag",
        description="FIELD is a lifecycle state (pending, running, completed, failed, skipped) "
        "or a milestone flag of LEVEL; VALUE (flags only) is true/false/yes/no/1/0, default "
        "true. Omitted lower selectors mean every node at that level.",
    )
    mark.add_argument("project", metavar="PROJECT")
    mark.add_argument("level", metavar="LEVEL", choices=_SELECTORS)
    mark.add_argument("field", metavar="FIELD")
    mark.add_argument("value", metavar="VALUE", nargs="?")
    _common(mark, selectors=True)
    mark.add_argument("--message", help="error text (failed) or reason (skipped)")
    mark.add_argument("--create", action="store_true",
                      help="create the node if missing (all selectors down to LEVEL needed)")
    mark.set_defaults(handler=_mark)

    db = subparsers.add_parser("db", help="state database maintenance")
    db_actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_actions.add_parser("upgrade", help="create or migrate the schema to this code")
    _common(upgrade, selectors=False)
    upgrade.set_defaults(handler=_upgrade)


def _common(parser: argparse.ArgumentParser, *, selectors: bool) -> None:
    parser.add_argument("--database-url", help=f"database URL (default: ${DATABASE_URL_ENV})")
    parser.add_argument("--config", help="scan config YAML naming the database and modality")
    if not selectors:
        return
    parser.add_argument("--modality", choices=MODALITIES, help="needed only if ambiguous")
    for name in _SELECTORS:
        parser.add_argument(f"--{name}", type=positive_int, metavar="N")


# ---------------------------------------------------------------------- opening the database


def _database_url(args: argparse.Namespace) -> tuple[str, Any]:
    from opticstream_napari.config import ConfigError, load_config
    from opticstream_napari.state.urls import resolve_database_url

    config = None
    if args.config:
        try:
            config = load_config(args.config)
        except ConfigError as error:
            raise CommandError(str(error), EXIT_USAGE) from None
    url = resolve_database_url(args.database_url, config)
    if url is None:
        raise CommandError(
            f"no state database given: pass --database-url, set {DATABASE_URL_ENV} "
            "or pass --config scan.yaml", EXIT_USAGE,
        )
    return url, config


def _open(args: argparse.Namespace) -> tuple[StateService, Any]:
    from opticstream_napari.state.errors import DatabaseMissing, StateError
    from opticstream_napari.state.service import StateService

    url, config = _database_url(args)
    try:
        return StateService.connect(url, must_exist=True), config
    except DatabaseMissing as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    except StateError as error:
        raise CommandError(str(error), EXIT_FAILURE) from None


def _project(args: argparse.Namespace, state: StateService, config: Any) -> ProjectKey:
    """The project's modality from --modality, the config, the selectors, or the database."""
    from opticstream_napari.state.hierarchy import ProjectKey

    hints = {_MODALITY_OF[s] for s in _SELECTORS[1:] if getattr(args, s) is not None}
    level = getattr(args, "level", None)
    if level in _MODALITY_OF:
        hints.add(_MODALITY_OF[level])
    for given in (args.modality, config.modality if config is not None else None):
        if given:
            hints.add(given)
    if len(hints) > 1:
        raise CommandError(f"selectors and options mix modalities ({', '.join(sorted(hints))})",
                           EXIT_USAGE)
    existing = [p for p in state.projects() if p.name == args.project]
    candidates = [p for p in existing if not hints or p.modality in hints]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise CommandError(f"project {args.project!r} exists for both modalities; "
                           "pass --modality psoct or --modality lsm", EXIT_USAGE)
    if hints and getattr(args, "create", False):
        return ProjectKey(hints.pop(), args.project)
    where = f" ({hints.pop()})" if hints else ""
    known = ", ".join(str(p) for p in state.projects()) or "none"
    raise CommandError(f"unknown project {args.project!r}{where} in "
                       f"{state.database.redacted_url}; known projects: {known}", EXIT_USAGE)


def _selected(args: argparse.Namespace, project: ProjectKey) -> dict[str, int]:
    from opticstream_napari.state.hierarchy import levels_of

    keys = [lv.keys[-1] for lv in levels_of(project.modality)]
    wrong = [s for s in _SELECTORS if getattr(args, s) is not None and s not in keys]
    if wrong:
        raise CommandError(f"{project.modality} projects have no --{wrong[0]}", EXIT_USAGE)
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def _scope(project: ProjectKey, selected: dict[str, int]) -> ProjectKey | Identity:
    """The deepest node the selectors name; they must not skip a level."""
    from opticstream_napari.state.hierarchy import ProjectKey, levels_of

    scope: ProjectKey | Identity = project
    for level in levels_of(project.modality):
        key = level.keys[-1]
        if key not in selected:
            break
        scope = level.ident_type(project.name, *(selected[k] for k in level.keys[1:]))
    depth = 0 if isinstance(scope, ProjectKey) else len(scope.to_dict()) - 1
    if len(selected) != depth:
        raise CommandError("selectors must not skip a level (e.g. --batch needs --mosaic)",
                           EXIT_USAGE)
    return scope


# ---------------------------------------------------------------------- commands


def _show(args: argparse.Namespace) -> int:
    from opticstream_napari.state.errors import NodeNotFound
    from opticstream_napari.state.hierarchy import ProjectKey
    from opticstream_napari.state.summary import summarize

    state, config = _open(args)
    with state:
        project = _project(args, state, config)
        scope = _scope(project, _selected(args, project))
        try:
            if args.summary:
                slices = None if isinstance(scope, ProjectKey) else [scope.slice]
                data: Any = {
                    str(n): s.counts for n, s in summarize(state, project, slices).items()
                }
            else:
                data = state.tree(scope, depth=max(args.depth, 0))
        except NodeNotFound as error:
            raise CommandError(str(error), EXIT_USAGE) from None
    print(json.dumps(data, indent=2))
    return 0


def _reset(args: argparse.Namespace) -> int:
    from opticstream_napari.state.errors import NodeNotFound
    from opticstream_napari.state.hierarchy import ProjectKey

    state, config = _open(args)
    with state:
        project = _project(args, state, config)
        scope = _scope(project, _selected(args, project))
        if isinstance(scope, ProjectKey) and not args.all:
            raise CommandError("name what to reset (--slice …) or pass --all for the whole "
                               "project", EXIT_USAGE)
        if args.all and not isinstance(scope, ProjectKey):
            raise CommandError("--all resets the whole project; drop the selectors", EXIT_USAGE)
        try:
            state.remove(scope)
        except NodeNotFound as error:
            raise CommandError(str(error), EXIT_USAGE) from None
    print(f"reset {scope}")
    return 0


def _mark(args: argparse.Namespace) -> int:
    state, config = _open(args)
    with state:
        project = _project(args, state, config)
        level = _level(project, args.level)
        selected = _selected(args, project)
        deeper = [k for k in selected if k not in level.keys]
        if deeper:
            raise CommandError(f"--{deeper[0]} is below LEVEL {level.name}", EXIT_USAGE)
        action = _field_action(level.name, level.flags, args)
        if args.create:
            if set(level.keys[1:]) - set(selected):
                raise CommandError("--create needs every selector down to LEVEL", EXIT_USAGE)
            ident = level.ident_type(project.name, *(selected[k] for k in level.keys[1:]))
            with state.update(ident) as node:
                action(node)
            count = 1
        else:
            with state.update_matching(project, level.name, **selected) as nodes:
                for node in nodes:
                    action(node)
                count = len(nodes)
            if count == 0:
                where = ", ".join(f"{k}={v}" for k, v in selected.items()) or "the project"
                raise CommandError(f"no {level.name} of {project} matches {where} "
                                   "(use --create to add a missing node)", EXIT_USAGE)
    print(f"marked {count} {level.name}{'s' if count != 1 else ''}: {args.field}"
          + (f"={args.value}" if args.value is not None else ""))
    return 0


def _level(project: ProjectKey, name: str) -> Level:
    from opticstream_napari.state.hierarchy import level_named

    try:
        return level_named(project.modality, name)
    except ValueError as error:
        raise CommandError(str(error), EXIT_USAGE) from None


def _field_action(
    level: str, flags: tuple[str, ...], args: argparse.Namespace
) -> Callable[[NodeHandle], None]:
    """What to do to each node: a lifecycle transition or a flag change."""
    if args.field in {s.value for s in Lifecycle}:
        if args.value is not None:
            raise CommandError(f"lifecycle state {args.field} takes no VALUE", EXIT_USAGE)
        target = Lifecycle(args.field)
        return lambda node: node.set_state(target, args.message)
    if args.field not in flags:
        choices = ", ".join([*(s.value for s in Lifecycle), *flags])
        raise CommandError(f"{level} has no field {args.field!r} (choose from {choices})",
                           EXIT_USAGE)
    raw = (args.value or "true").lower()
    if raw not in _TRUE | _FALSE:
        raise CommandError(f"VALUE must be true/false/yes/no/1/0, found {args.value!r}",
                           EXIT_USAGE)
    value = raw in _TRUE
    return lambda node: node.set_flag(args.field, value)


def _upgrade(args: argparse.Namespace) -> int:
    from opticstream_napari.state import schema
    from opticstream_napari.state.database import Database
    from opticstream_napari.state.errors import StateError

    url, _ = _database_url(args)
    database = Database(url)
    try:
        database.check_reachable()
        before = schema.current_revision(database)
        if before is not None and before not in schema.known_revisions():
            raise CommandError(
                f"the state database at {database.redacted_url} is at revision {before}, newer "
                "than this code; upgrade opticstream-napari instead", EXIT_FAILURE,
            )
        after = schema.upgrade(database)
    except StateError as error:
        raise CommandError(str(error), EXIT_FAILURE) from None
    finally:
        database.dispose()
    if before == after:
        print(f"state database {database.redacted_url} is already at revision {after}")
    else:
        print(f"state database {database.redacted_url} upgraded from {before or 'empty'} "
              f"to {after}")
    return 0
