"""Feature-set bookkeeping in the catalog: which contents need features, what was stored, what failed.

Every function takes an open ``Catalog`` (or a workspace, where noted) and returns plain records,
so the feature code (``r2cli.features``) and the training sources never touch SQL. One content
(fingerprint) may be catalogued under several paths; a feature set belongs to the content, and its
outcome is written on every row of that content.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import VideoRecord
    from r2cli.paths import Workspace

_IN_CHUNK = 500  # ids/fingerprints per IN (...) clause


@dataclass(frozen=True)
class FeatureSetRecord:
    """A row of ``feature_sets`` detached from any session."""

    fingerprint: str
    settings_key: str
    settings: dict[str, Any]
    relpath: str  # inside the feature store
    num_clips: int
    shape: dict[str, list[int]]
    dtype: str
    bytes: int
    created_at: datetime | None


@dataclass(frozen=True)
class StoredSet:
    """What the store wrote (fields of ``r2cli.features.store.StoredFeatureSet``)."""

    fingerprint: str
    settings_key: str
    settings: dict[str, Any]
    relpath: str
    num_clips: int
    shape: dict[str, list[int]]
    dtype: str
    bytes: int


def _record(row: Any) -> FeatureSetRecord:
    return FeatureSetRecord(
        fingerprint=row.fingerprint, settings_key=row.settings_key, settings=dict(row.settings or {}),
        relpath=row.relpath, num_clips=int(row.num_clips), shape=row.shape, dtype=row.dtype, bytes=int(row.bytes),
        created_at=row.created_at,
    )


def readable_videos(catalog: "Catalog", *, video_ids: Sequence[int] | None = None) -> list["VideoRecord"]:
    """Rows with status ``ok`` and a fingerprint, in path order (optionally only ``video_ids``)."""
    from sqlalchemy import select

    from r2cli.catalog.schema import Video

    with catalog.session() as session:
        query = select(Video).where(Video.status == "ok", Video.fingerprint.is_not(None)).order_by(Video.path)
        if video_ids:
            query = query.where(Video.id.in_(list(video_ids)))
        return [row.to_record() for row in session.scalars(query)]


def ok_videos(workspace: "Workspace") -> list["VideoRecord"]:
    """Every row with status ``ok`` of an existing catalog (``CatalogError`` when there is none)."""
    from sqlalchemy import select

    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import Video

    with Catalog.open(workspace, create=False) as catalog, catalog.session() as session:
        return [row.to_record() for row in session.scalars(select(Video).where(Video.status == "ok"))]


def feature_sets(catalog: "Catalog", settings_key: str | None = None) -> dict[str, FeatureSetRecord]:
    """Fingerprint -> feature set recorded under ``settings_key`` (all keys when None: last one wins)."""
    from sqlalchemy import select

    from r2cli.catalog.schema import FeatureSet

    with catalog.session() as session:
        query = select(FeatureSet).order_by(FeatureSet.id)
        if settings_key is not None:
            query = query.where(FeatureSet.settings_key == settings_key)
        return {row.fingerprint: _record(row) for row in session.scalars(query)}


def feature_sets_by_key(catalog: "Catalog") -> list[FeatureSetRecord]:
    """Every feature set the catalog records, all settings keys (the coarse index groups them by key)."""
    from sqlalchemy import select

    from r2cli.catalog.schema import FeatureSet

    with catalog.session() as session:
        return [_record(row) for row in session.scalars(select(FeatureSet).order_by(FeatureSet.id))]


def compatible_sets(catalog: "Catalog", fingerprints: Sequence[str],
                    accept: Any) -> dict[str, list[FeatureSetRecord]]:
    """Feature sets of ``fingerprints`` whose settings dict passes ``accept(settings) -> bool``."""
    from sqlalchemy import select

    from r2cli.catalog.schema import FeatureSet

    found: dict[str, list[FeatureSetRecord]] = {}
    fingerprints = list(fingerprints)
    with catalog.session() as session:
        for start in range(0, len(fingerprints), _IN_CHUNK):
            chunk = fingerprints[start : start + _IN_CHUNK]
            statement = select(FeatureSet).where(FeatureSet.fingerprint.in_(chunk)).order_by(FeatureSet.id)
            for row in session.scalars(statement):
                if accept(dict(row.settings or {})):
                    found.setdefault(row.fingerprint, []).append(_record(row))
    return found


def record_feature_set(catalog: "Catalog", stored: Any, video_ids: Iterable[int]) -> None:
    """Insert or replace the feature set ``stored`` and mark the rows of its content ``ok``.

    ``stored`` has the fields of ``StoredSet``; only rows whose fingerprint is still the set's are
    marked (a row re-scanned to another content meanwhile keeps its own state).
    """
    from sqlalchemy import select

    from r2cli.catalog.schema import FeatureSet, Video, utcnow

    with catalog.session(immediate=True) as session:
        row = session.scalars(
            select(FeatureSet).where(
                FeatureSet.fingerprint == stored.fingerprint, FeatureSet.settings_key == stored.settings_key
            )
        ).first()
        if row is None:
            row = FeatureSet(fingerprint=stored.fingerprint, settings_key=stored.settings_key)
            session.add(row)
        row.settings = dict(stored.settings)
        row.relpath = stored.relpath
        row.num_clips = stored.num_clips
        row.shape = stored.shape
        row.dtype = stored.dtype
        row.bytes = stored.bytes
        row.created_at = utcnow()
        for video in session.scalars(select(Video).where(Video.id.in_(list(video_ids)))):
            if video.fingerprint == stored.fingerprint:
                video.features_status, video.features_error = "ok", None


def record_feature_failure(catalog: "Catalog", fingerprint: str, video_ids: Iterable[int], message: str) -> None:
    """Mark the rows of a content whose features failed: ``features_status = error`` and why."""
    from sqlalchemy import select

    from r2cli.catalog.schema import Video

    with catalog.session(immediate=True) as session:
        for video in session.scalars(select(Video).where(Video.id.in_(list(video_ids)))):
            if video.fingerprint == fingerprint:
                video.features_status, video.features_error = "error", message


def mark_features_ok(catalog: "Catalog", video_ids: Sequence[int]) -> None:
    """Mark rows ``features_status = ok`` (their content's features exist), clearing an old error."""
    from sqlalchemy import select

    from r2cli.catalog.schema import Video

    ids = list(video_ids)
    with catalog.session(immediate=True) as session:
        for start in range(0, len(ids), _IN_CHUNK):
            for video in session.scalars(select(Video).where(Video.id.in_(ids[start : start + _IN_CHUNK]))):
                video.features_status, video.features_error = "ok", None


def forget_feature_set(catalog: "Catalog", fingerprint: str, settings_key: str) -> None:
    """Delete one feature-set row (its file failed verification and will be extracted again)."""
    from sqlalchemy import delete

    from r2cli.catalog.schema import FeatureSet

    with catalog.session(immediate=True) as session:
        session.execute(
            delete(FeatureSet).where(FeatureSet.fingerprint == fingerprint, FeatureSet.settings_key == settings_key)
        )


def settings_keys_matching(catalog: "Catalog", wanted: dict[str, Any]) -> set[str]:
    """Settings keys of the recorded feature sets whose settings match ``wanted``."""
    from sqlalchemy import select

    from r2cli.catalog.schema import FeatureSet

    found = set()
    with catalog.session() as session:
        # DISTINCT over the key alone: PostgreSQL's json type has no equality operator
        for key in session.execute(select(FeatureSet.settings_key).distinct()).scalars().all():
            data = session.execute(select(FeatureSet.settings).where(FeatureSet.settings_key == key)
                                   .limit(1)).scalar_one() or {}
            if all(data.get(name) == value for name, value in wanted.items() if name != "fps") \
                    and abs(float(data.get("fps", -1)) - wanted["fps"]) < 1e-9:
                found.add(key)
    return found


def recorded_settings(catalog: "Catalog", key: str) -> dict[str, Any]:
    """The settings recorded with feature-set key ``key``."""
    from sqlalchemy import select

    from r2cli.catalog.schema import FeatureSet

    with catalog.session() as session:
        return dict(session.execute(select(FeatureSet.settings).where(FeatureSet.settings_key == key).limit(1))
                    .scalar_one())
