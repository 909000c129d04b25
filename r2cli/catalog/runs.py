"""Run records in the catalog: a search / summarize / job run's row, from start to end.

A run row is inserted with status ``running`` and the identity of the process that owns it
(pid, host and the process's start time, kept in the row's ``timings`` while it runs); the end
of the run replaces them with the final status and timings. A process killed by ``kill -9``
never writes its end, so a reader checks the owner: a ``running`` row whose process is gone
(same host, pid no longer alive or reused by a later process) reads as ``interrupted``
(``get_run``, ``list_runs``), and ``mark_interrupted`` writes that status back.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.errors import CatalogError

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.paths import Workspace

RUNNING = "running"
INTERRUPTED = "interrupted"
_OWNER = "owner"  # key of the owner record inside ``timings`` while the run is running


def utc_now() -> _dt.datetime:
    """Current UTC time without tzinfo (the form the catalog stores)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot, Linux), None where unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return text.rsplit(")", 1)[1].split()[19]
    except IndexError:
        return None


def current_owner() -> dict[str, Any]:
    """The owner record of this process: pid, host and process start time."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": _process_start(pid)}


def owner_alive(owner: dict[str, Any] | None) -> bool | None:
    """True/False when the owner process can be checked (same host), None when it cannot."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None
    if owner.get("host") != socket.gethostname():
        return None
    from r2cli._atomic import pid_alive

    pid = owner["pid"]
    if not pid_alive(pid):
        return False
    started = owner.get("start")
    if started is not None and _process_start(pid) not in (None, started):
        return False  # the pid was reused by another process
    return True


@dataclass(frozen=True)
class RunRecord:
    """A run row as a reader sees it (``status`` is ``interrupted`` for a dead owner)."""

    id: str
    kind: str
    status: str  # running | done | failed | interrupted
    created_at: _dt.datetime
    finished_at: _dt.datetime | None
    out_dir: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    owner: dict[str, Any] | None = None  # pid, host, start of the owning process while running


def _record(row: Any) -> RunRecord:
    timings = dict(row.timings or {})
    owner = timings.pop(_OWNER, None) if row.status == RUNNING else None
    status = row.status
    if status == RUNNING and owner_alive(owner) is False:
        status = INTERRUPTED
    return RunRecord(
        id=row.id, kind=row.kind, status=status, created_at=row.created_at, finished_at=row.finished_at,
        out_dir=row.out_dir, settings=dict(row.settings or {}), counts=dict(row.counts or {}), timings=timings,
        owner=owner,
    )


def start_run(
    workspace: "Workspace",
    *,
    run_id: str,
    kind: str,
    settings: dict[str, Any],
    queries: Any,
    model: dict[str, Any] | None,
    out_dir: Path,
    created_at: _dt.datetime | None = None,
) -> None:
    """Insert the run's row with status ``running`` and this process as its owner.

    Rows of earlier runs whose process is gone are marked ``interrupted`` on the way.

    Raises:
        CatalogError: the catalog cannot be opened or written.
    """
    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import Run

    with Catalog.open(workspace) as catalog, catalog.session() as session:
        _mark_interrupted(session)
        session.add(
            Run(
                id=run_id, kind=kind, status=RUNNING, created_at=created_at or utc_now(), settings=settings,
                queries=queries, model=model, timings={_OWNER: current_owner()}, counts={}, out_dir=str(out_dir),
            )
        )


def end_run(
    workspace: "Workspace",
    *,
    run_id: str,
    status: str,
    timings: dict[str, Any] | None = None,
    counts: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
) -> None:
    """Set the run's final status, timings and counts (and its model, when known only now).

    Raises:
        CatalogError: the run row is missing or the catalog cannot be written.
    """
    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import Run

    with Catalog.open(workspace) as catalog, catalog.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise CatalogError(f"run {run_id} is not in the catalog {workspace.catalog_url}")
        run.status = status
        run.finished_at = utc_now()
        run.timings = dict(timings or {})
        if counts is not None:
            run.counts = counts
        if model is not None:
            run.model = model


def get_run(workspace: "Workspace", run_id: str) -> RunRecord | None:
    """The run ``run_id`` (``interrupted`` when it is ``running`` but its process is gone), or None.

    Raises:
        CatalogError: there is no catalog or it cannot be read.
    """
    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import Run

    with Catalog.open(workspace, create=False) as catalog, catalog.session() as session:
        row = session.get(Run, run_id)
        return None if row is None else _record(row)


def list_runs(workspace: "Workspace", *, kind: str | None = None, out_dir: str | os.PathLike | None = None) -> list[RunRecord]:
    """Runs, oldest first, optionally of one kind or one output folder.

    Raises:
        CatalogError: there is no catalog or it cannot be read.
    """
    from sqlalchemy import select

    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import Run

    statement = select(Run).order_by(Run.created_at, Run.id)
    if kind is not None:
        statement = statement.where(Run.kind == kind)
    if out_dir is not None:
        statement = statement.where(Run.out_dir == str(out_dir))
    with Catalog.open(workspace, create=False) as catalog, catalog.session() as session:
        return [_record(row) for row in session.scalars(statement)]


def mark_interrupted(workspace: "Workspace") -> list[str]:
    """Write status ``interrupted`` on every ``running`` row whose process is gone; returns their ids.

    Raises:
        CatalogError: the catalog cannot be written.
    """
    from r2cli.catalog.db import Catalog

    with Catalog.open(workspace) as catalog, catalog.session() as session:
        return _mark_interrupted(session)


def _mark_interrupted(session: Any) -> list[str]:
    from sqlalchemy import select

    from r2cli.catalog.schema import Run

    changed: list[str] = []
    for row in session.scalars(select(Run).where(Run.status == RUNNING)):
        owner = (row.timings or {}).get(_OWNER)
        if owner_alive(owner) is False:
            row.status = INTERRUPTED
            row.finished_at = utc_now()
            row.timings = {}
            changed.append(row.id)
    return changed
