"""Open (create, migrate) the catalog and hand out sessions.

Any SQLAlchemy URL works (``workspace.catalog_url``); SQLite (the default) and PostgreSQL are the
two back-ends r2cli is tested on.

SQLite is opened in WAL mode with a busy timeout so that readers never block the one writer and
short write transactions queue instead of failing. Write transactions on SQLite start with
``BEGIN IMMEDIATE`` when asked (``session(immediate=True)``), which takes the write lock up front
and so cannot fail half-way with "database is locked" after reading.

PostgreSQL goes through psycopg 3 (``pip install "r2cli[postgres]"``; a bare ``postgresql://``
URL means ``postgresql+psycopg://``). The busy timeout becomes the session's ``lock_timeout``;
``session(immediate=True)`` takes a transaction-level advisory lock first, so read-modify-write
blocks of r2cli processes queue one after the other exactly as on SQLite.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from r2cli.catalog import migrations as _migrations
from r2cli.errors import CatalogError, MissingDependencyError

if TYPE_CHECKING:
    from r2cli.paths import Workspace

DEFAULT_BUSY_TIMEOUT = 30.0  # seconds a statement waits for another writer before failing
CONNECT_TIMEOUT = 10  # seconds to reach a database server
# The transaction-level advisory lock of ``session(immediate=True)`` on PostgreSQL (one per schema).
PG_WRITE_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('r2cli catalog write:' || current_schema(), 0))"
_DRIVER_PACKAGES = {"psycopg": 'psycopg (pip install "r2cli[postgres]")', "psycopg2": "psycopg2 (pip install psycopg2-binary)"}


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other back-ends and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database:
        return None
    if database.startswith("file:"):
        database = database[len("file:"):].split("?", 1)[0]
    return Path(database).expanduser().resolve()


def describe_url(url: str) -> str:
    """How to show a catalog URL to a person: the SQLite file path, or the URL without its password."""
    try:
        path = _sqlite_file(url)
        return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def one_line(exc: BaseException) -> str:
    """A database error as one line: its class and message, whitespace (psycopg's DETAIL/HINT lines) folded."""
    text = " ".join(str(exc).split())
    text = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", text)  # SQLAlchemy's link says nothing here
    return f"{exc.__class__.__name__}: {text}"


def open_engine(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """A SQLAlchemy engine for ``url`` with r2cli's SQLite / PostgreSQL settings; no migration, no schema check.

    Raises:
        CatalogError: ``url`` is not a SQLAlchemy URL.
        MissingDependencyError: the database driver is not installed (the message names the pip command).
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CatalogError(f"--catalog {url!r} is not a SQLAlchemy URL ({exc})") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return _open_postgresql(parsed, busy_timeout)
    if backend != "sqlite":
        try:
            return create_engine(url, pool_pre_ping=True)
        except ImportError as exc:
            raise MissingDependencyError(
                f"--catalog {describe_url(url)}: the database driver is not installed ({exc}); "
                "r2cli is tested on SQLite and PostgreSQL"
            ) from None
        except SQLAlchemyError as exc:
            raise CatalogError(f"cannot open catalog {describe_url(url)}: {exc}") from None

    kwargs: dict = {"connect_args": {"timeout": busy_timeout, "check_same_thread": False}}
    if _sqlite_file(url) is None:
        kwargs["poolclass"] = StaticPool  # one shared in-memory database
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (so DDL is
        # transactional and BEGIN IMMEDIATE is possible).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: consistent after a crash, fast
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("r2cli_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def _open_postgresql(parsed, busy_timeout: float) -> Engine:
    if parsed.drivername == "postgresql":  # SQLAlchemy would pick psycopg2; r2cli[postgres] installs psycopg 3
        parsed = parsed.set(drivername="postgresql+psycopg")
    shown = parsed.render_as_string(hide_password=True)
    connect_args: dict = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    try:
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=8, connect_args=connect_args)
    except ImportError:
        driver = parsed.get_driver_name()
        package = _DRIVER_PACKAGES.get(driver, f"the Python package of driver {driver!r}")
        raise MissingDependencyError(
            f"--catalog {shown}: the PostgreSQL driver is not installed; install {package}"
        ) from None
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot open catalog {shown}: {one_line(exc)}") from None
    lock_timeout_ms = max(1, int(busy_timeout * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # A lock wait (another writer's row or advisory lock) fails after busy_timeout, as on SQLite.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET lock_timeout = {lock_timeout_ms}")
        cursor.close()
        dbapi_connection.autocommit = autocommit

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        if connection.get_execution_options().get("r2cli_begin") == "IMMEDIATE":
            connection.exec_driver_sql(PG_WRITE_LOCK_SQL)

    return engine


class Catalog:
    """An open catalog. Use ``Catalog.open(workspace)``; close it (or use ``with``) when done."""

    def __init__(self, engine: Engine, url: str, workspace: "Workspace | None" = None) -> None:
        self.engine = engine
        self.url = url
        self.workspace = workspace

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        workspace: "Workspace",
        *,
        create: bool = True,
        migrate: bool = True,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> "Catalog":
        """Open the catalog at ``workspace.catalog_url``, creating and migrating it as needed.

        Args:
            workspace: from ``r2cli.paths.resolve_workspace``.
            create: create a missing SQLite file (and the workspace folders); when False a missing
                catalog raises ``CatalogError``.
            migrate: apply pending migrations; when False an out-of-date catalog raises.
            busy_timeout: seconds a statement waits for another writer.

        Raises:
            CatalogError: bad URL, missing catalog (``create=False``), a catalog newer than this
                r2cli, an out-of-date catalog with ``migrate=False``, or a database error.
        """
        url = workspace.catalog_url
        sqlite_path = _sqlite_file(url) if _is_url(url) else None
        if sqlite_path is not None and not sqlite_path.exists():
            if not create:
                raise CatalogError(
                    f"no catalog at {sqlite_path}; run `r2cli index DIR` first "
                    "(or pass the --workspace / --catalog that you indexed with)"
                )
            if workspace.catalog_is_default_sqlite:
                workspace.ensure()
            try:
                sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogError(f"cannot create the catalog folder {sqlite_path.parent}: {exc}") from None
        catalog = cls(open_engine(url, busy_timeout), url, workspace)
        try:
            catalog._prepare(create=create, migrate=migrate)
        except BaseException:
            catalog.close()
            raise
        return catalog

    def _prepare(self, *, create: bool, migrate: bool) -> None:
        try:
            with self.engine.connect() as conn:
                todo = _migrations.pending(conn)
            if not todo:
                return
            if todo[0].version == 1 and not (create and migrate):
                raise CatalogError(f"no catalog in {self.location}; run `r2cli index DIR` first")
            if not migrate:
                raise CatalogError(
                    f"catalog {self.location} has schema version {todo[0].version - 1}, this r2cli needs "
                    f"{_migrations.LATEST_VERSION}; run `r2cli index` (without --dry-run) to migrate it"
                )
            # BEGIN IMMEDIATE (SQLite) / the write advisory lock (PostgreSQL): two processes migrating
            # at once queue; the second finds nothing to do.
            with self.engine.connect().execution_options(r2cli_begin="IMMEDIATE") as conn:
                with conn.begin():
                    _migrations.upgrade(conn)
        except SQLAlchemyError as exc:
            raise CatalogError(f"cannot open catalog {self.location}: {one_line(exc)}{self._read_only_hint()}") \
                from None

    def _read_only_hint(self) -> str:
        """Why a SQLite catalog cannot be opened when its folder or file is read-only, else ''."""
        path = self.sqlite_path
        if path is None:
            return ""
        if not os.access(path.parent, os.W_OK):  # EROFS is reported to root too
            return (f" (the folder {path.parent} is read-only: SQLite needs to write its journal there; "
                    "use a writable --workspace)")
        if path.exists() and not os.access(path, os.W_OK):
            return f" (the file {path} is read-only; r2cli needs to write to it)"
        return ""

    # -- facts ---------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """The SQLite file path, or the URL without its password."""
        return describe_url(self.url)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the catalog is a SQLite file."""
        return _sqlite_file(self.url)

    @property
    def schema_version(self) -> int:
        """The highest migration applied to this catalog."""
        with self.engine.connect() as conn:
            return _migrations.current_version(conn)

    @property
    def is_postgresql(self) -> bool:
        """Whether the catalog lives on a PostgreSQL server (its writer lock is then an advisory lock)."""
        return self.engine.dialect.name == "postgresql"

    @property
    def lock_path(self) -> Path:
        """The writer lock file: next to a SQLite file, else ``catalog.lock`` in the workspace.

        Not used on PostgreSQL, whose writer lock is a session-level advisory lock on the server.
        """
        if self.sqlite_path is not None:
            return self.sqlite_path.with_name(self.sqlite_path.name + ".lock")
        root = self.workspace.root if self.workspace is not None else Path.cwd()
        return root / "catalog.lock"

    # -- use -----------------------------------------------------------------------------
    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A Session that commits when the block ends normally and rolls back on an exception.

        ``immediate=True`` takes SQLite's write lock when the transaction begins (use it for
        read-modify-write blocks); elsewhere it changes nothing.

        Raises:
            CatalogError: a database error (the transaction is rolled back).
        """
        bind = self.engine.execution_options(r2cli_begin="IMMEDIATE") if immediate else self.engine
        session = Session(bind=bind, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise CatalogError(f"catalog {self.location}: {one_line(exc)}") from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def writer_lock(self, *, timeout: float = 0.0, purpose: str = "") -> Iterator[dict]:
        """Hold this catalog's writer lock (see ``r2cli.catalog.lock``) for the block.

        SQLite and other back-ends: ``flock`` on ``lock_path`` (one machine). PostgreSQL: an
        advisory lock on the server, which works across machines.

        Raises:
            CatalogBusyError: another live process is writing and did not finish within ``timeout`` s.
        """
        from r2cli.catalog.lock import pg_writer_lock, writer_lock

        if self.is_postgresql:
            lock = pg_writer_lock(self.engine, catalog=self.location, timeout=timeout, purpose=purpose)
        else:
            lock = writer_lock(self.lock_path, catalog=self.location, timeout=timeout, purpose=purpose)
        with lock as holder:
            yield holder

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.location!r})"


def _is_url(url: str) -> bool:
    try:
        make_url(url)
    except ArgumentError:
        return False
    return True


def open_read_engine(url: str, busy_timeout: float = 1.0) -> Engine:
    """An engine that only reads: a SQLite file is opened read-only, never created or changed.

    A SQLite file is opened with ``mode=ro``; when its folder cannot be written (a read-only
    mount, where SQLite cannot create the WAL index) it is opened ``immutable``, so an intact
    catalog on read-only media is still read. Other back-ends get ``open_engine``.

    Raises:
        CatalogError: ``url`` is not a SQLAlchemy URL.
        MissingDependencyError: the database driver is not installed.
    """
    import sqlite3
    from urllib.parse import quote

    path = _sqlite_file(url) if _is_url(url) else None
    if path is None:
        return open_engine(url, busy_timeout)
    immutable = not os.access(path.parent, os.W_OK)  # EROFS is reported to root too
    uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout, check_same_thread=False)
        connection.isolation_level = None
        return connection

    return create_engine("sqlite://", creator=connect, poolclass=StaticPool)


def catalog_exists(workspace: "Workspace") -> bool:
    """Whether the workspace's catalog exists with at least one migration applied (never creates it).

    A guard that asks this must be able to check: a catalog that exists but cannot be read
    (garbage bytes, a folder in its place, an unreadable file) raises instead of answering "no
    catalog". An intact catalog on a read-only mount is read.

    Raises:
        CatalogError: the URL is not a SQLAlchemy URL; a SQLite catalog exists but is not a
            readable SQLite database; a database server (PostgreSQL, ...) cannot be reached.
        MissingDependencyError: the URL's database driver is not installed.
    """
    url = workspace.catalog_url
    if not _is_url(url):
        raise CatalogError(f"catalog {url!r} is not a SQLAlchemy URL; r2cli cannot check it")
    path = _sqlite_file(url)
    if path is not None:
        if not os.path.lexists(path):
            return False
        if path.is_dir():
            raise CatalogError(f"cannot open catalog {path}: it is a folder, not a SQLite file; r2cli cannot check it "
                               "(move it away, or pass the --workspace / --catalog you indexed with)")
    engine = open_read_engine(url)
    try:
        try:
            with engine.connect() as conn:
                return _migrations.current_version(conn) > 0
        except SQLAlchemyError as exc:
            raise CatalogError(f"cannot open catalog {describe_url(url)}: {one_line(exc)}; r2cli refuses to "
                               "go on without checking it") from None
    finally:
        engine.dispose()
