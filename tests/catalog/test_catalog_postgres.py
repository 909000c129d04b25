"""What only PostgreSQL has: the CLI end to end on a server, the driver check, connection errors,
the advisory writer lock dying with a killed process, and serialized migrations and write transactions.

(The rest of tests/catalog runs on PostgreSQL too, through the ``backend`` parametrization.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from catalogkit import cli_env, run_cli
from sqlalchemy import create_engine, text

from r2cli.catalog import Catalog
from r2cli.errors import CatalogBusyError, CatalogError
from r2cli.paths import resolve_workspace

SAMPLES = Path(__file__).resolve().parents[2] / "sample_media"


@pytest.fixture
def pg_url(pg_server):
    url = pg_server.new_database()
    yield url
    pg_server.drop_database(url)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_index_sample_media_then_stats_through_the_cli(ffmpeg, pg_url, tmp_path):
    ws = str(tmp_path / "ws")
    indexed = run_cli("index", str(SAMPLES), "--no-features", "--catalog", pg_url, "--workspace", ws, "--json")
    assert indexed.returncode == 0, indexed.stderr
    report = json.loads(indexed.stdout)
    assert (report["new"], report["errors"], report["catalog"]) == (5, 0, pg_url)
    again = run_cli("index", str(SAMPLES), "--no-features", "--catalog", pg_url, "--workspace", ws, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["unchanged"] == 5, again.stderr
    stats = run_cli("catalog", "stats", "--catalog", pg_url, "--workspace", ws, "--json")
    assert stats.returncode == 0, stats.stderr
    numbers = json.loads(stats.stdout)
    assert numbers["videos"] == 5 and numbers["by_status"] == {"ok": 5, "error": 0, "missing": 0}
    assert numbers["hours"] == pytest.approx((12 + 15 + 10 + 10 + 9.93) / 3600, abs=1e-3)
    assert numbers["catalog"] == pg_url and numbers["schema_version"] >= 1
    engine = create_engine(pg_url)  # the rows are on the server, not in a file of the workspace
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM videos WHERE status = 'ok'")).scalar() == 5
    finally:
        engine.dispose()
    assert not (tmp_path / "ws" / "catalog.sqlite").exists()


def run_main(capsys, *args: str) -> tuple[int, str]:
    """`r2cli ARGS` in this process: (exit code, stderr)."""
    from r2cli.cli.main import main

    with pytest.raises(SystemExit) as caught:
        main(list(args))
    return int(caught.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "postgresql"])
def test_a_missing_driver_is_one_line_naming_the_extra(scheme, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets without the driver
    url = f"{scheme}://someone:secret@127.0.0.1:{_closed_port()}/archive"
    code, err = run_main(capsys, "catalog", "stats", "--workspace", str(tmp_path), "--catalog", url)
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and 'pip install "r2cli[postgres]"' in lines[0], err
    assert "secret" not in err and "127.0.0.1" in err


@pytest.mark.parametrize("command", [["catalog", "stats"], ["index", str(SAMPLES), "--dry-run"], ["doctor"]])
def test_an_unreachable_server_is_one_line_without_the_password(command, tmp_path, capsys):
    """Not "no catalog yet" (a dry run would call every file new, doctor would say there is none)."""
    url = f"postgresql://someone:secret@127.0.0.1:{_closed_port()}/archive"
    code, err = run_main(capsys, *command, "--workspace", str(tmp_path), "--catalog", url)
    assert code == 5, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "cannot open catalog" in lines[0] and "OperationalError" in lines[0], err
    assert "Connection refused" in lines[0] and "secret" not in err


def test_a_bare_postgresql_url_uses_psycopg_and_hides_the_password(pg_url, tmp_path):
    bare = pg_url.replace("postgresql+psycopg://r2cli@", "postgresql://r2cli:secret@")  # trust auth ignores it
    with Catalog.open(resolve_workspace(tmp_path / "ws", bare)) as catalog:
        assert catalog.engine.dialect.driver == "psycopg" and catalog.is_postgresql
        assert "secret" not in catalog.location and "***" in catalog.location


_HOLDER = """
import sys, time
from r2cli.catalog import Catalog
from r2cli.paths import resolve_workspace
with Catalog.open(resolve_workspace(sys.argv[1], sys.argv[2])) as catalog, catalog.writer_lock(purpose="holder"):
    print("locked", flush=True)
    time.sleep(600)
"""

_ADVISORY = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"


def test_the_server_drops_a_killed_holders_lock(pg_url, tmp_path):
    """kill -9 of the holding process ends its server session and with it the advisory lock (no help
    from the waiting client: the lock is gone from pg_locks)."""
    Catalog.open(resolve_workspace(tmp_path / "ws", pg_url)).close()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "ws"), pg_url],
                              stdout=subprocess.PIPE, text=True, env=cli_env())
    engine = create_engine(pg_url)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with engine.connect() as conn:
            assert conn.execute(text(_ADVISORY)).scalar() == 1
            name = conn.execute(text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory'"
            )).scalar()
            assert name.startswith(f"r2cli pid {holder.pid} on ") and name.endswith(": holder")
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        deadline = time.monotonic() + 10
        while True:
            with engine.connect() as conn:
                if conn.execute(text(_ADVISORY)).scalar() == 0:
                    break
            assert time.monotonic() < deadline, "the killed holder's advisory lock is still held after 10 s"
            time.sleep(0.05)
    finally:
        engine.dispose()
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_the_writer_lock_is_per_database_and_schema(pg_server, pg_url, tmp_path):
    other_db = pg_server.new_database()
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA other"))
    engine.dispose()
    other_schema = pg_url + "?options=-csearch_path%3Dother"
    try:
        first = Catalog.open(resolve_workspace(tmp_path / "a", pg_url))
        # the same database under another URL: another session, which the lock must refuse even in
        # this process (re-entry is per URL)
        same = Catalog.open(resolve_workspace(tmp_path / "b", pg_url + "?application_name=other"))
        elsewhere = [Catalog.open(resolve_workspace(tmp_path / "c", url)) for url in (other_db, other_schema)]
        with first.writer_lock(purpose="first"):
            for catalog in elsewhere:
                with catalog.writer_lock():
                    pass
            with first.writer_lock():  # re-entrant
                pass
            with pytest.raises(CatalogBusyError, match=rf"busy: pid {os.getpid()} \(first, started .*PostgreSQL advisory"):
                with same.writer_lock():
                    pass
        with same.writer_lock():  # released with the block
            pass
        for catalog in (first, same, *elsewhere):
            catalog.close()
        with create_engine(other_schema).connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM other.schema_migrations")).scalar() >= 1
    finally:
        pg_server.drop_database(other_db)


def test_concurrent_first_opens_migrate_once(pg_url, tmp_path):
    """Four threads open a new catalog at once: the write advisory lock queues the migrations."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_it(i: int) -> None:
        try:
            barrier.wait()
            Catalog.open(resolve_workspace(tmp_path / f"ws{i}", pg_url)).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with Catalog.open(resolve_workspace(tmp_path / "check", pg_url)) as catalog, catalog.session() as session:
        assert session.execute(text("SELECT count(*) FROM schema_migrations WHERE version = 1")).scalar() == 1


def test_immediate_write_transactions_queue_and_time_out(pg_url, tmp_path):
    workspace = resolve_workspace(tmp_path / "ws", pg_url)
    with Catalog.open(workspace) as first, Catalog.open(workspace, busy_timeout=0.3) as second:
        with first.session(immediate=True) as session:
            session.execute(text("INSERT INTO schema_migrations VALUES (100, 'marker', now())"))
            start = time.monotonic()
            with pytest.raises(CatalogError, match="LockNotAvailable|lock timeout"):
                with second.session(immediate=True) as blocked:
                    blocked.execute(text("SELECT 1"))
            assert time.monotonic() - start >= 0.25
            with second.session() as reader:  # plain transactions do not queue
                assert reader.execute(text("SELECT count(*) FROM schema_migrations WHERE version = 100")).scalar() == 0
        with second.session(immediate=True) as session:
            session.execute(text("DELETE FROM schema_migrations WHERE version = 100"))
