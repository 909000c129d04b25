"""Run ids, run folders and run manifests shared by search, summarize and batch jobs.

A run gets an id (``20250101-120000-1a2b3c``: sortable by time, unique per process), a folder
(``<workspace>/runs/<run id>`` or a folder the user names) holding its outputs and a ``run.json``
manifest, and a row in the catalog's ``Run`` table (``r2cli.catalog.runs``). The manifest carries a
key of every setting that decides the outputs, so a job that runs the same step again can tell
that the outputs on disk are still valid and skip the work. Search and summarize publish their
folders all-or-nothing through ``r2cli.outputs.publish.RunFolder``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from r2cli._atomic import write_json_atomic
from r2cli.errors import InputError

MANIFEST_NAME = "run.json"
MANIFEST_VERSION = 1


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A new run id: UTC time to the second plus 6 random hex digits."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def utc_now() -> _dt.datetime:
    """Current UTC time without tzinfo (the form the catalog stores)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def settings_key(settings: Any) -> str:
    """A short stable hash of JSON-able ``settings`` (sorted keys): equal settings, equal key."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def make_run_folder(folder: Path, flag: str = "--out") -> Path:
    """Create the run folder ``folder`` (and its parents) if needed and return it.

    Raises:
        InputError: it exists as a file, or cannot be created; the message names ``flag``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{flag} {folder}: is a file, expected a folder for the run's outputs")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{flag} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    return folder


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``run.json`` in ``folder`` atomically (temp file + rename).

    Raises:
        InputError: the folder cannot be written.
    """
    target = folder / MANIFEST_NAME
    data = {"manifest_version": MANIFEST_VERSION, **manifest}
    try:
        write_json_atomic(target, data, sort_keys=True, default=str)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The ``run.json`` of ``folder``, or None when it is absent or unreadable (treated as not done)."""
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def finished_run(folder: Path, key: str, files: tuple[str, ...]) -> dict[str, Any] | None:
    """The manifest of a finished run in ``folder`` made with settings ``key`` whose ``files`` all exist."""
    manifest = read_manifest(folder)
    if not manifest or manifest.get("status") != "done" or manifest.get("settings_key") != key:
        return None
    if not all((folder / name).is_file() for name in files):
        return None
    return manifest


QUERIES_INLINE = 1000  # run.json and the catalog list the queries of a run up to this many


def query_record(queries: Any) -> Any:
    """How run.json and the catalog record a run's queries (an ``r2cli.inference.query_files.QuerySet``):
    every (qid, query, source) up to ``QUERIES_INLINE`` queries, else the file, count and digest."""
    if queries.count <= QUERIES_INLINE:
        return [{"qid": q.qid, "query": q.text, "source": q.where} for q in queries]
    return {"file": str(queries.file) if queries.file else None, "count": queries.count, "digest": queries.digest,
            "first": [{"qid": q.qid, "query": q.text, "source": q.where} for q in queries.head(10)]}


def record_run_start(
    workspace,
    *,
    run_id: str,
    kind: str,
    settings: dict[str, Any],
    queries: list[dict[str, Any]] | None,
    model: dict[str, Any] | None,
    out_dir: Path,
    created_at: _dt.datetime,
) -> None:
    """Insert the run's catalog row with status ``running`` (``r2cli.catalog.runs.start_run``).

    Raises:
        CatalogError: the catalog cannot be opened or written.
    """
    from r2cli.catalog.runs import start_run

    start_run(workspace, run_id=run_id, kind=kind, settings=settings, queries=queries, model=model,
              out_dir=out_dir, created_at=created_at)


def record_run_end(
    workspace,
    *,
    run_id: str,
    status: str,
    timings: dict[str, Any] | None = None,
    counts: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
) -> None:
    """Set the run's final status, timings and counts (``r2cli.catalog.runs.end_run``).

    Raises:
        CatalogError: the run row is missing or the catalog cannot be written.
    """
    from r2cli.catalog.runs import end_run

    end_run(workspace, run_id=run_id, status=status, timings=timings, counts=counts, model=model)
