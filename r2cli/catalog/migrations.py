"""Numbered catalog migrations, applied in order and recorded in ``schema_migrations``.

Each migration is a function of a SQLAlchemy ``Connection`` inside the upgrade transaction. A
migration describes the tables *as they were at its version* (its own frozen ``MetaData``),
never the ORM classes, so that old migrations keep producing the same schema after
``schema.py`` changes. To change the schema: edit ``schema.py``, then append a migration that
turns the previous version into the new one (``op``-style ``ALTER TABLE`` / new tables).

The migrated schema must match ``schema.py`` exactly; tests/catalog checks it.

Migrations run on SQLite and on PostgreSQL (tests/catalog runs every one on both), inside one
transaction that both roll back on failure. Write them with SQLAlchemy constructs, not dialect
SQL; mind that SQLite's ``ALTER TABLE`` only adds and renames columns (anything else: create the
new table, copy, drop, rename), and that PostgreSQL enforces ``String(n)`` lengths, rejects NUL
characters in text and has no ``=`` on ``JSON`` columns (no DISTINCT / GROUP BY / UNIQUE on them).
Concurrent upgrades queue: ``Catalog.open`` runs them under SQLite's ``BEGIN IMMEDIATE`` or the
PostgreSQL write advisory lock, and ``upgrade`` re-reads the version under it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
)

from r2cli.catalog.schema import SchemaMigration, utcnow
from r2cli.errors import CatalogError


@dataclass(frozen=True)
class Migration:
    """One step of the schema: ``upgrade`` turns version ``version - 1`` into ``version``."""

    version: int  # 1, 2, 3, ... without gaps
    name: str  # short, e.g. "initial"
    upgrade: Callable[[Connection], None]


def _0001_initial(conn: Connection) -> None:
    meta = MetaData()
    Table(
        "videos",
        meta,
        Column("id", Integer, primary_key=True),
        Column("path", Text, nullable=False, unique=True),
        Column("size", BigInteger),
        Column("mtime", Float),
        Column("fingerprint", String(160)),
        Column("duration", Float),
        Column("fps", Float),
        Column("max_fps", Float),
        Column("frame_count", Integer),
        Column("width", Integer),
        Column("height", Integer),
        Column("display_width", Integer),
        Column("display_height", Integer),
        Column("rotation", Integer),
        Column("sample_aspect_ratio", String(32)),
        Column("codec", String(64)),
        Column("pixel_format", String(64)),
        Column("has_audio", Boolean),
        Column("audio_codec", String(64)),
        Column("container", String(128)),
        Column("title", Text),
        Column("status", String(16), nullable=False),
        Column("error", Text),
        Column("first_seen", DateTime, nullable=False),
        Column("last_seen", DateTime, nullable=False),
        Column("probed_at", DateTime),
        Column("features_status", String(16), nullable=False),
        Column("features_error", Text),
        Index("ix_videos_fingerprint", "fingerprint"),
        Index("ix_videos_status", "status"),
    )
    Table(
        "feature_sets",
        meta,
        Column("id", Integer, primary_key=True),
        Column("fingerprint", String(160), nullable=False),
        Column("settings_key", String(128), nullable=False),
        Column("settings", JSON, nullable=False),
        Column("relpath", Text, nullable=False),
        Column("num_clips", Integer, nullable=False),
        Column("shape", JSON, nullable=False),
        Column("dtype", String(16), nullable=False),
        Column("bytes", BigInteger, nullable=False),
        Column("created_at", DateTime, nullable=False),
        UniqueConstraint("fingerprint", "settings_key", name="uq_feature_sets_fingerprint_settings"),
        Index("ix_feature_sets_fingerprint", "fingerprint"),
    )
    Table(
        "runs",
        meta,
        Column("id", String(64), primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("status", String(16), nullable=False),
        Column("created_at", DateTime, nullable=False),
        Column("finished_at", DateTime),
        Column("settings", JSON),
        Column("queries", JSON),
        Column("model", JSON),
        Column("timings", JSON),
        Column("counts", JSON),
        Column("out_dir", Text),
        Index("ix_runs_kind", "kind"),
    )
    meta.create_all(conn)


def _0002_found_via(conn: Connection) -> None:
    # the path (under a scanned folder, through a symlink) where a file was found: when that link is
    # removed, the next scan of the folder marks the video missing (#18.12). Plain DDL: SQLAlchemy has
    # no ADD COLUMN construct, and this statement is the same on SQLite and PostgreSQL.
    conn.exec_driver_sql("ALTER TABLE videos ADD COLUMN found_via TEXT")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _0001_initial),
    Migration(2, "found_via", _0002_found_via),
)
LATEST_VERSION = MIGRATIONS[-1].version


def _check_sequence(migrations: Sequence[Migration]) -> None:
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise CatalogError(
                f"catalog migrations must be numbered 1, 2, 3, ... without gaps; "
                f"found version {migration.version} at position {expected}"
            )


def _ensure_version_table(conn: Connection) -> None:
    SchemaMigration.__table__.create(conn, checkfirst=True)


def current_version(conn: Connection) -> int:
    """The highest applied migration, 0 for an empty database."""
    if not inspect(conn).has_table(SchemaMigration.__tablename__):
        return 0
    versions = conn.execute(select(SchemaMigration.version)).scalars().all()
    return max(versions, default=0)


def pending(conn: Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """Migrations not yet applied to this database, oldest first.

    Raises:
        CatalogError: the database is newer than every migration this r2cli knows.
    """
    _check_sequence(migrations)
    version = current_version(conn)
    latest = migrations[-1].version if migrations else 0
    if version > latest:
        raise CatalogError(
            f"the catalog has schema version {version}, newer than this r2cli supports ({latest}); "
            "upgrade r2cli, or use another --catalog / --workspace"
        )
    return [m for m in migrations if m.version > version]


def upgrade(conn: Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply every pending migration in order inside the caller's transaction; return their versions.

    Raises:
        CatalogError: the database is newer than this r2cli, or a migration fails (the
            transaction is then rolled back by the caller and the catalog stays at its old version).
    """
    _ensure_version_table(conn)
    applied: list[int] = []
    for migration in pending(conn, migrations):
        try:
            migration.upgrade(conn)
        except Exception as exc:  # a failed DDL statement: report which migration broke
            raise CatalogError(
                f"catalog migration {migration.version} ({migration.name}) failed: {exc}"
            ) from exc
        conn.execute(
            SchemaMigration.__table__.insert().values(
                version=migration.version, name=migration.name, applied_at=utcnow()
            )
        )
        applied.append(migration.version)
    return applied
