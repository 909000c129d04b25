"""Read-only questions about the catalog: list, show, stats, and where it is (for ``doctor``)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from r2cli.catalog.schema import VIDEO_STATUSES, VideoRecord
from r2cli.errors import CatalogError, InputError, UsageError
from r2cli.times import iso_local

if TYPE_CHECKING:
    from r2cli.paths import Workspace


@dataclass(frozen=True)
class VideoDetails:
    """One video's row and the feature sets computed for its content."""

    video: VideoRecord
    feature_sets: list[dict[str, Any]]  # relpath, settings_key, num_clips, shape, dtype, bytes, created_at

    def to_dict(self) -> dict[str, Any]:
        return {"video": self.video.to_dict(), "feature_sets": self.feature_sets}


@dataclass(frozen=True)
class CatalogStats:
    """Totals over the whole catalog."""

    catalog: str  # file path or URL without password
    schema_version: int
    videos: int  # rows of every status
    by_status: dict[str, int]  # "ok" / "error" / "missing" -> rows
    hours: float  # total duration of "ok" videos
    bytes: int  # total size of "ok" videos
    features: dict[str, int]  # features_status of "ok" videos -> rows
    feature_sets: int
    runs: dict[str, int] = field(default_factory=dict)  # run kind -> runs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CatalogInfo:
    """Where the catalog is and at which schema version (never creates it)."""

    location: str  # file path or URL without password
    url: str  # with the password hidden
    exists: bool
    schema_version: int | None  # None when it does not exist
    latest_version: int  # what this r2cli migrates to
    videos: int | None  # rows, when it exists

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_status(status: str | None) -> None:
    if status is not None and status not in VIDEO_STATUSES:
        raise UsageError(f"--status must be one of {', '.join(VIDEO_STATUSES)}; got {status!r}")


def _glob_to_like(pattern: str) -> str | None:
    """A LIKE pattern that every fnmatch match also matches (None: cannot narrow with LIKE)."""
    if "[" in pattern:
        return None
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def list_videos(
    workspace: "Workspace",
    *,
    status: str | None = None,
    path_glob: str | None = None,
    limit: int | None = None,
) -> list[VideoRecord]:
    """Videos in path order, optionally filtered.

    Args:
        status: "ok", "error" or "missing".
        path_glob: shell glob matched against the whole absolute path (``*`` also matches ``/``),
            e.g. ``"*/holidays/*"`` or ``"*.mkv"``; case-sensitive.
        limit: at most this many rows.

    Raises:
        UsageError: unknown status, limit < 1.
        CatalogError: there is no catalog yet, or it cannot be read.
    """
    from sqlalchemy import select

    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import Video

    _check_status(status)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    query = select(Video).order_by(Video.path)
    if status:
        query = query.where(Video.status == status)
    if path_glob:
        like = _glob_to_like(path_glob)
        if like is not None:
            query = query.where(Video.path.like(like, escape="\\"))
    out: list[VideoRecord] = []
    with Catalog.open(workspace, create=False) as catalog, catalog.session() as session:
        for row in session.scalars(query):
            if path_glob and not fnmatch.fnmatchcase(row.path, path_glob):
                continue
            out.append(row.to_record())
            if limit is not None and len(out) >= limit:
                break
    return out


def get_video(workspace: "Workspace", key: str | int) -> VideoDetails:
    """One video by catalog id or by path (relative paths are taken from the current folder).

    Raises:
        InputError: no video with that id or path.
        CatalogError: there is no catalog yet, or it cannot be read.
    """
    from sqlalchemy import select

    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import FeatureSet, Video

    text = str(key)
    with Catalog.open(workspace, create=False) as catalog, catalog.session() as session:
        row = None
        if text.isdigit():
            row = session.get(Video, int(text))
        if row is None:
            for candidate in dict.fromkeys((os.path.realpath(text), os.path.abspath(text), text)):
                row = session.scalars(select(Video).where(Video.path == candidate)).one_or_none()
                if row is not None:
                    break
        if row is None:
            raise InputError(
                f"no video {text!r} in catalog {catalog.location}; "
                "`r2cli catalog list` shows the ids and paths"
            )
        sets = []
        if row.fingerprint:
            for fs in session.scalars(
                select(FeatureSet).where(FeatureSet.fingerprint == row.fingerprint).order_by(FeatureSet.id)
            ):
                sets.append(
                    {
                        "settings_key": fs.settings_key,
                        "relpath": fs.relpath,
                        "num_clips": fs.num_clips,
                        "shape": fs.shape,
                        "dtype": fs.dtype,
                        "bytes": fs.bytes,
                        "created_at": iso_local(fs.created_at),
                    }
                )
        return VideoDetails(video=row.to_record(), feature_sets=sets)


def catalog_stats(workspace: "Workspace") -> CatalogStats:
    """Counts and totals of the catalog.

    Raises:
        CatalogError: there is no catalog yet, or it cannot be read.
    """
    from sqlalchemy import func, select

    from r2cli.catalog.db import Catalog
    from r2cli.catalog.migrations import current_version
    from r2cli.catalog.schema import FeatureSet, Run, Video
    from r2cli.catalog.selection import usable

    with Catalog.open(workspace, create=False) as catalog, catalog.session() as session:
        by_status = {status: 0 for status in VIDEO_STATUSES}
        for status, count in session.execute(select(Video.status, func.count()).group_by(Video.status)):
            by_status[status] = count
        seconds, size = session.execute(
            select(func.coalesce(func.sum(Video.duration), 0.0), func.coalesce(func.sum(Video.size), 0)).where(
                usable(Video)
            )
        ).one()
        features = {
            status: count
            for status, count in session.execute(
                select(Video.features_status, func.count()).where(usable(Video)).group_by(Video.features_status)
            )
        }
        runs = {kind: count for kind, count in session.execute(select(Run.kind, func.count()).group_by(Run.kind))}
        feature_sets = session.scalar(select(func.count()).select_from(FeatureSet)) or 0
        version = current_version(session.connection())
        return CatalogStats(
            catalog=catalog.location,
            schema_version=version,
            videos=sum(by_status.values()),
            by_status=by_status,
            hours=round(float(seconds) / 3600.0, 4),
            bytes=int(size),
            features=features,
            feature_sets=int(feature_sets),
            runs=runs,
        )


def describe_catalog(workspace: "Workspace") -> CatalogInfo:
    """Where the workspace's catalog is and its schema version; creates and migrates nothing.

    Raises:
        CatalogError: the catalog exists but cannot be read.
    """
    from sqlalchemy import func, select
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from r2cli.catalog.db import catalog_exists, describe_url, one_line, open_read_engine
    from r2cli.catalog.migrations import LATEST_VERSION, current_version
    from r2cli.catalog.schema import Video

    url = workspace.catalog_url
    try:
        shown_url = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show it as given
        shown_url = url
    if not catalog_exists(workspace):
        return CatalogInfo(describe_url(url), shown_url, False, None, LATEST_VERSION, None)
    engine = open_read_engine(url)
    try:
        with engine.connect() as conn:
            version = current_version(conn)
            videos = conn.execute(select(func.count()).select_from(Video.__table__)).scalar() or 0
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot read catalog {describe_url(url)}: {one_line(exc)}") from None
    finally:
        engine.dispose()
    return CatalogInfo(describe_url(url), shown_url, True, version, LATEST_VERSION, int(videos))
