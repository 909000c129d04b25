"""Catalog schema, migrations, SQLite / PostgreSQL settings, URLs and the writer lock (on both back-ends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from catalogkit import is_sqlite
from sqlalchemy import create_engine, inspect, text

from r2cli.catalog import LATEST_VERSION, Catalog
from r2cli.catalog.migrations import MIGRATIONS, Migration, current_version, upgrade
from r2cli.catalog.schema import Base, Video
from r2cli.errors import CatalogBusyError, CatalogError
from r2cli.paths import resolve_workspace


def test_open_creates_the_catalog_and_records_the_version(workspace):
    assert not workspace.root.exists()
    with Catalog.open(workspace) as catalog:
        assert catalog.schema_version == LATEST_VERSION
        with catalog.session() as session:
            if is_sqlite(workspace):
                assert catalog.sqlite_path == workspace.root / "catalog.sqlite"
                assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert session.execute(text("PRAGMA busy_timeout")).scalar() == 30000
            else:
                assert catalog.sqlite_path is None and catalog.is_postgresql
                assert session.execute(text("SHOW lock_timeout")).scalar() == "30s"  # the busy timeout
            rows = session.execute(text("SELECT version, name FROM schema_migrations ORDER BY version")).all()
    assert [tuple(r) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
    if is_sqlite(workspace):
        assert (workspace.root / "features").is_dir() and (workspace.root / "runs").is_dir()


def test_migrated_schema_matches_the_orm(workspace):
    """Migrations, not create_all, build the database: they must produce exactly schema.py."""
    with Catalog.open(workspace) as catalog:
        inspector = inspect(catalog.engine)
        for table in Base.metadata.sorted_tables:
            columns = {c["name"]: c for c in inspector.get_columns(table.name)}
            assert set(columns) == {c.name for c in table.columns}, table.name
            for column in table.columns:
                assert bool(columns[column.name]["nullable"]) == bool(column.nullable) or column.primary_key, (
                    f"{table.name}.{column.name} nullability differs"
                )
                assert columns[column.name]["type"]._type_affinity is column.type._type_affinity or (
                    type(columns[column.name]["type"]).__name__ == type(column.type).__name__
                ), f"{table.name}.{column.name} type differs"
            indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes(table.name)}
            for index in table.indexes:
                assert tuple(c.name for c in index.columns) in indexed, f"{table.name}: index {index.name} missing"
            uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
            uniques |= {tuple(ix["column_names"]) for ix in inspector.get_indexes(table.name) if ix.get("unique")}
            for column in table.columns:
                if column.unique:
                    assert (column.name,) in uniques, f"{table.name}.{column.name} should be unique"
    assert ("fingerprint", "settings_key") in {
        tuple(u["column_names"]) for u in inspector.get_unique_constraints("feature_sets")
    }


def test_reopening_applies_nothing_twice(workspace):
    Catalog.open(workspace).close()
    with Catalog.open(workspace) as catalog, catalog.session() as session:
        assert session.execute(text("SELECT count(*) FROM schema_migrations")).scalar() == len(MIGRATIONS)


def test_later_migrations_apply_in_order_and_are_recorded(workspace):
    Catalog.open(workspace).close()
    applied_order = []
    n = len(MIGRATIONS)

    def add_notes(conn):
        applied_order.append(n + 1)
        conn.execute(text("ALTER TABLE videos ADD COLUMN notes TEXT"))

    def add_index(conn):
        applied_order.append(n + 2)
        conn.execute(text("CREATE INDEX ix_videos_notes ON videos (notes)"))

    steps = (*MIGRATIONS, Migration(n + 1, "video notes", add_notes),
             Migration(n + 2, "notes index", add_index))
    engine = create_engine(workspace.catalog_url)
    try:
        with engine.begin() as conn:
            assert upgrade(conn, steps) == [n + 1, n + 2]
        with engine.begin() as conn:
            assert upgrade(conn, steps) == []
            assert current_version(conn) == n + 2
            assert "notes" in {c["name"] for c in inspect(conn).get_columns("videos")}
    finally:
        engine.dispose()
    assert applied_order == [n + 1, n + 2]


def test_a_failed_migration_leaves_the_old_version(workspace):
    Catalog.open(workspace).close()

    def broken(conn):
        conn.execute(text("CREATE TABLE half_done (x INTEGER)"))
        conn.execute(text("ALTER TABLE no_such_table ADD COLUMN y TEXT"))

    with Catalog.open(workspace) as catalog:
        after = len(MIGRATIONS) + 1
        with pytest.raises(CatalogError, match=rf"migration {after} \(broken\) failed"):
            with catalog.engine.connect().execution_options(r2cli_begin="IMMEDIATE") as conn, conn.begin():
                upgrade(conn, (*MIGRATIONS, Migration(after, "broken", broken)))
        assert catalog.schema_version == LATEST_VERSION
        assert not inspect(catalog.engine).has_table("half_done")  # DDL rolled back with the transaction


def test_migrations_must_be_numbered_without_gaps(workspace):
    with Catalog.open(workspace) as catalog, catalog.engine.begin() as conn:
        with pytest.raises(CatalogError, match="without gaps"):
            upgrade(conn, (*MIGRATIONS, Migration(len(MIGRATIONS) + 3, "jump", lambda c: None)))


def test_a_catalog_from_a_newer_r2cli_is_refused(workspace):
    with Catalog.open(workspace) as catalog, catalog.session() as session:
        session.execute(text("INSERT INTO schema_migrations VALUES (99, 'future', '2030-01-01 00:00:00')"))
    with pytest.raises(CatalogError, match="schema version 99, newer than this r2cli supports"):
        Catalog.open(workspace)


def test_open_without_create_does_not_create(workspace):
    with pytest.raises(CatalogError, match="no catalog (at|in) .*r2cli index"):
        Catalog.open(workspace, create=False)
    assert not workspace.root.exists()
    from r2cli.catalog import catalog_exists

    assert not catalog_exists(workspace)


def test_any_sqlalchemy_url(tmp_path):
    elsewhere = tmp_path / "db" / "shared catalog.sqlite"
    workspace = resolve_workspace(tmp_path / "ws", f"sqlite:///{elsewhere}")
    with Catalog.open(workspace) as catalog:
        assert elsewhere.exists() and catalog.schema_version == LATEST_VERSION
        assert catalog.lock_path == elsewhere.with_name("shared catalog.sqlite.lock")
        with catalog.session() as session:
            session.add(Video(path="/a.mp4", status="ok"))
    memory = resolve_workspace(tmp_path / "ws2", "sqlite://")
    with Catalog.open(memory) as catalog:
        with catalog.session() as session:
            session.add(Video(path="/b.mp4", status="ok"))
        with catalog.session() as session:
            assert session.execute(text("SELECT path FROM videos")).scalar() == "/b.mp4"
        assert catalog.lock_path == memory.root / "catalog.lock"


def test_a_bad_url_is_a_catalog_error(tmp_path):
    with pytest.raises(CatalogError, match="not a SQLAlchemy URL"):
        Catalog.open(resolve_workspace(tmp_path, "no-such-scheme:::"))


def test_session_rolls_back_on_error(workspace):
    with Catalog.open(workspace) as catalog:
        with pytest.raises(RuntimeError):
            with catalog.session() as session:
                session.add(Video(path="/x.mp4", status="ok"))
                session.flush()
                raise RuntimeError("boom")
        with catalog.session() as session:
            assert session.execute(text("SELECT count(*) FROM videos")).scalar() == 0
        with pytest.raises(CatalogError, match="IntegrityError"):
            with catalog.session() as session:
                session.add_all([Video(path="/same.mp4", status="ok"), Video(path="/same.mp4", status="ok")])


_HOLDER = """
import sys, time
from r2cli.catalog import Catalog
from r2cli.paths import resolve_workspace
with Catalog.open(resolve_workspace(sys.argv[1], sys.argv[2])) as catalog, catalog.writer_lock(purpose="test holder"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _start_holder(workspace, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(workspace.root), workspace.catalog_url, str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_writer_lock_refuses_waits_and_survives_kill_9(workspace):
    Catalog.open(workspace).close()
    holder = _start_holder(workspace, 60)
    try:
        with Catalog.open(workspace) as catalog:
            with pytest.raises(CatalogBusyError, match=rf"busy: pid {holder.pid} \(test holder"):
                with catalog.writer_lock():
                    pass
            start = time.monotonic()
            with pytest.raises(CatalogBusyError, match="after waiting"):
                with catalog.writer_lock(timeout=0.3):
                    pass
            assert time.monotonic() - start >= 0.3
            # kill -9 leaves the lock file with the dead holder's pid (SQLite) or a server session
            # that ends when the server sees the closed socket (PostgreSQL): neither blocks anybody
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            if is_sqlite(workspace):
                assert str(holder.pid) in catalog.lock_path.read_text()
            with catalog.writer_lock(purpose="after the kill") as me:
                assert me["pid"] == os.getpid()
                with catalog.writer_lock():  # re-entrant inside one process
                    pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_writer_lock_waits_for_a_holder_that_finishes(workspace):
    Catalog.open(workspace).close()
    holder = _start_holder(workspace, 0.5)
    try:
        with Catalog.open(workspace) as catalog, catalog.writer_lock(timeout=30):
            assert holder.poll() is not None or holder.wait(timeout=30) == 0
    finally:
        holder.wait(timeout=30)
