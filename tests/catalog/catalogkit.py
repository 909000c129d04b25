"""Helpers of the catalog tests (importable by name; conftest.py holds only fixtures)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("sqlite", "postgresql")  # every catalog test that takes `workspace` runs on both


def distinct_copy(source: Path, target: Path, tag: int | str) -> Path:
    """Copy an MP4 and append a top-level ``free`` box holding ``tag``: same video, different bytes.

    A ``free`` box is valid MP4 padding, so ffprobe reads the copy exactly like the original while
    its content fingerprint differs.
    """
    payload = f"r2cli-test-{tag}".encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    with open(target, "ab") as handle:
        handle.write(struct.pack(">I", 8 + len(payload)) + b"free" + payload)
    return target


def cli_env() -> dict[str, str]:
    """Environment for `python -m r2cli.cli.main` subprocesses (the autouse isolation already applies)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["R2CLI_NO_PROGRESS"] = "1"
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "r2cli.cli.main", *args]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), capture_output=True, text=True, env=cli_env(), timeout=timeout)


def sqlite_rows(db: Path, sql: str, params: tuple | dict = ()) -> list[tuple]:
    """Read the catalog with plain sqlite3 (a second, independent reader)."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def is_sqlite(workspace) -> bool:
    return workspace.catalog_url.startswith("sqlite:")


def workspace_args(workspace) -> list[str]:
    """CLI flags naming this workspace and, when it is not the default SQLite file, its catalog."""
    args = ["--workspace", str(workspace.root)]
    if not workspace.catalog_is_default_sqlite:
        args += ["--catalog", workspace.catalog_url]
    return args


def catalog_rows(workspace, sql: str, params: dict | None = None) -> list[tuple]:
    """Read a workspace's catalog outside r2cli: plain sqlite3 (read-only) or a separate SQLAlchemy engine.

    ``sql`` uses ``:name`` parameters.
    """
    if is_sqlite(workspace):
        db = workspace.catalog_url[len("sqlite:///"):]
        return sqlite_rows(Path(db), sql, params or {})
    from sqlalchemy import create_engine, text

    engine = create_engine(workspace.catalog_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params or {})]
    finally:
        engine.dispose()
