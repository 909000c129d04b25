"""Which catalog videos a use case works on: ``VideoFilter`` and the queries behind it.

The rule "a usable video is a row with status ``ok``" is written once here (``usable``), and every
selection of search, summarize and the catalog's statistics goes through it. Results are plain
``VideoRecord`` rows; no other layer needs SQL.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.catalog.schema import VideoRecord
from r2cli.errors import InputError
from r2cli.media.names import GEOMETRY_DISPLAY

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.paths import Workspace

USABLE_STATUS = "ok"  # videos with this status are readable and may be searched, summarized or cut


def usable(video_table: Any) -> Any:
    """The SQL condition of a usable video (``status = 'ok'``) on the ``Video`` table."""
    return video_table.status == USABLE_STATUS


@dataclass(frozen=True)
class VideoFilter:
    """Which usable catalog videos to work on. Every field empty: all of them."""

    patterns: tuple[str, ...] = ()  # catalog ids, absolute paths, file names or globs of either
    min_duration: float | None = None  # seconds; shorter videos are left out
    max_duration: float | None = None  # seconds; longer videos are left out
    path_contains: str | None = None  # only paths containing this text

    @property
    def catalog_filters(self) -> bool:
        """Whether a filter besides ``patterns`` is set."""
        return self.min_duration is not None or self.max_duration is not None or bool(self.path_contains)

    def matches(self, record: Any) -> bool:
        """Whether ``record`` passes ``patterns`` (the SQL filters are applied by ``select_videos``)."""
        return matches_video(record, self.patterns)

    def describe(self) -> str:
        """The filters in words, for an error message."""
        what = []
        if self.patterns:
            what.append("--video " + " ".join(self.patterns))
        if self.catalog_filters:
            what.append("the catalog filters")
        return " and ".join(what) or f"status {USABLE_STATUS}"


def matches_video(record: Any, patterns: tuple[str, ...]) -> bool:
    """Whether a video's id, path or file name matches one of ``patterns`` (all match when empty)."""
    if not patterns:
        return True
    name = Path(record.path).name
    for pattern in patterns:
        if pattern.isdigit() and int(pattern) == record.id:
            return True
        if fnmatch.fnmatchcase(record.path, pattern) or fnmatch.fnmatchcase(name, pattern):
            return True
        if fnmatch.fnmatchcase(record.path, str(Path(pattern).expanduser().resolve())):
            return True
    return False


@dataclass(frozen=True)
class Selection:
    """The usable videos a filter selected, and how many rows the catalog holds in all."""

    videos: list[VideoRecord]  # in catalog id order
    total: int  # rows of every status


def select_videos(workspace: "Workspace", video_filter: VideoFilter | None = None) -> Selection:
    """Usable videos passing ``video_filter``, in id order.

    Raises:
        CatalogError: there is no catalog (the message says to run ``r2cli index``).
    """
    from sqlalchemy import func, select

    from r2cli.catalog.db import Catalog
    from r2cli.catalog.schema import Video

    video_filter = video_filter or VideoFilter()
    statement = select(Video).where(usable(Video)).order_by(Video.id)
    if video_filter.min_duration is not None:
        statement = statement.where(Video.duration >= video_filter.min_duration)
    if video_filter.max_duration is not None:
        statement = statement.where(Video.duration <= video_filter.max_duration)
    if video_filter.path_contains:
        statement = statement.where(Video.path.contains(video_filter.path_contains))
    with Catalog.open(workspace, create=False) as catalog, catalog.session() as session:
        total = session.scalar(select(func.count()).select_from(Video)) or 0
        records = [row.to_record() for row in session.scalars(statement) if video_filter.matches(row)]
    return Selection(videos=records, total=int(total))


def require_videos(workspace: "Workspace", video_filter: VideoFilter | None = None) -> list[VideoRecord]:
    """``select_videos``, refusing an empty archive or an empty selection.

    Raises:
        CatalogError: there is no catalog.
        InputError: the archive is empty, or no usable video passes the filter.
    """
    video_filter = video_filter or VideoFilter()
    selection = select_videos(workspace, video_filter)
    if selection.total == 0:
        raise InputError(
            f"the archive is empty: the catalog {workspace.catalog_url} has no videos; index a folder first "
            "(r2cli index ./archive)"
        )
    if not selection.videos:
        raise InputError(
            f"no video of the catalog ({selection.total} rows) matches {video_filter.describe()}; "
            "see `r2cli catalog list`"
        )
    return selection.videos


def compatible_feature_sets(
    workspace: "Workspace", fingerprints: list[str], *, weights_id: str, clip_model: str, fps: float, k: int,
    geometry: str = GEOMETRY_DISPLAY, dtype: str | None = None,
) -> dict[str, list[str]]:
    """Stored feature files usable for ``fingerprints``: same CLIP weights, model, fps and frame
    geometry, at least k layers (and stored as ``dtype``, float16 or int8, when given).

    Returns fingerprint -> relative paths in the feature store (catalog order). Features indexed
    with non-default options (another frame rule, bf16 CLIP) are found this way; features of the
    other frame geometry never are (the two must not mix in one search).

    Raises:
        CatalogError: there is no catalog.
    """
    from r2cli.catalog.db import Catalog
    from r2cli.catalog.features import compatible_sets

    def accept(data: dict) -> bool:
        return (data.get("weights_id") == weights_id and data.get("clip_model") == clip_model
                and abs(float(data.get("fps", -1)) - fps) < 1e-9 and int(data.get("k", 0)) >= k
                and data.get("geometry", GEOMETRY_DISPLAY) == geometry
                and (dtype is None or data.get("dtype", "float16") == dtype))

    if not fingerprints:
        return {}
    with Catalog.open(workspace, create=False) as catalog:
        found = compatible_sets(catalog, fingerprints, accept)
    return {fingerprint: [record.relpath for record in records] for fingerprint, records in found.items()}
