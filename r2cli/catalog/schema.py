"""SQLAlchemy 2.0 ORM schema of the catalog.

The tables here are the *current* schema. The database is created and upgraded only by the
numbered migrations in ``r2cli.catalog.migrations`` (never by ``metadata.create_all``); a test
checks that a migrated database has exactly the columns declared here.

Times are naive ``datetime`` values in UTC (``timestamp without time zone`` on PostgreSQL, so the
server's TimeZone setting never shifts them). Floats are double precision on both back-ends.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VIDEO_STATUSES = ("ok", "error", "missing")
FEATURE_STATUSES = ("none", "ok", "error")
RUN_KINDS = ("search", "summarize", "finetune", "evaluate", "job")


def utcnow() -> datetime:
    """Now, in UTC, without tzinfo (the form the catalog stores)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class SchemaMigration(Base):
    """One applied migration; the highest ``version`` is the catalog's schema version."""

    __tablename__ = "schema_migrations"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(128))
    applied_at: Mapped[datetime] = mapped_column(DateTime)


class Video(Base):
    """One path in the archive: a probed video, a file that failed, or a file that went missing."""

    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)  # absolute, symlinks resolved
    size: Mapped[int | None] = mapped_column(BigInteger)  # bytes at the last scan
    mtime: Mapped[float | None] = mapped_column(Float)  # st_mtime (s since the epoch) at the last scan
    fingerprint: Mapped[str | None] = mapped_column(String(160), index=True)  # "blake2b:<128 hex>" of the content
    duration: Mapped[float | None] = mapped_column(Float)  # seconds
    fps: Mapped[float | None] = mapped_column(Float)  # average frame rate
    max_fps: Mapped[float | None] = mapped_column(Float)  # ffprobe r_frame_rate
    frame_count: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)  # coded
    height: Mapped[int | None] = mapped_column(Integer)  # coded
    display_width: Mapped[int | None] = mapped_column(Integer)  # after SAR and rotation
    display_height: Mapped[int | None] = mapped_column(Integer)  # after SAR and rotation
    rotation: Mapped[int | None] = mapped_column(Integer)  # degrees counter-clockwise (display matrix)
    sample_aspect_ratio: Mapped[str | None] = mapped_column(String(32))  # "num:den"
    codec: Mapped[str | None] = mapped_column(String(64))
    pixel_format: Mapped[str | None] = mapped_column(String(64))
    has_audio: Mapped[bool | None] = mapped_column(Boolean)
    audio_codec: Mapped[str | None] = mapped_column(String(64))
    container: Mapped[str | None] = mapped_column(String(128))  # ffprobe format_name
    title: Mapped[str | None] = mapped_column(Text)  # container "title" tag
    status: Mapped[str] = mapped_column(String(16), default="ok", index=True)  # ok | error | missing
    error: Mapped[str | None] = mapped_column(Text)  # why status is "error" (kept while "missing")
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    probed_at: Mapped[datetime | None] = mapped_column(DateTime)
    features_status: Mapped[str] = mapped_column(String(16), default="none")  # none | ok | error
    features_error: Mapped[str | None] = mapped_column(Text)
    # found through this symlink under a scanned folder (not at ``path`` itself); its removal makes the
    # row missing. NULL: found at its own path. Guards read only path and size, so older catalogs still work.
    found_via: Mapped[str | None] = mapped_column(Text)

    def to_record(self) -> "VideoRecord":
        """A plain, session-independent copy of this row."""
        return VideoRecord(**{f.name: getattr(self, f.name) for f in fields(VideoRecord)})


class FeatureSet(Base):
    """Features of one video content (fingerprint) under one set of extraction settings."""

    __tablename__ = "feature_sets"
    __table_args__ = (UniqueConstraint("fingerprint", "settings_key", name="uq_feature_sets_fingerprint_settings"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(160), index=True)
    settings_key: Mapped[str] = mapped_column(String(128))
    settings: Mapped[dict] = mapped_column(JSON)
    relpath: Mapped[str] = mapped_column(Text)  # inside the feature store
    num_clips: Mapped[int] = mapped_column(Integer)
    shape: Mapped[Any] = mapped_column(JSON)
    dtype: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Run(Base):
    """One search / summarize / finetune / evaluate / job run and where its outputs are."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    settings: Mapped[Any | None] = mapped_column(JSON)
    queries: Mapped[Any | None] = mapped_column(JSON)
    model: Mapped[Any | None] = mapped_column(JSON)
    timings: Mapped[Any | None] = mapped_column(JSON)
    counts: Mapped[Any | None] = mapped_column(JSON)
    out_dir: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class VideoRecord:
    """A row of ``videos`` detached from any session (what queries return)."""

    id: int
    path: str
    size: int | None
    mtime: float | None
    fingerprint: str | None
    duration: float | None
    fps: float | None
    max_fps: float | None
    frame_count: int | None
    width: int | None
    height: int | None
    display_width: int | None
    display_height: int | None
    rotation: int | None
    sample_aspect_ratio: str | None
    codec: str | None
    pixel_format: str | None
    has_audio: bool | None
    audio_codec: str | None
    container: str | None
    title: str | None
    status: str
    error: str | None
    first_seen: datetime
    last_seen: datetime
    probed_at: datetime | None
    features_status: str
    features_error: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes and the file's ``mtime`` become ISO 8601 local time with offset
        (``r2cli.times``)."""
        from r2cli.times import iso_local

        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = iso_local(value) if isinstance(value, datetime) or f.name == "mtime" else value
        return out
