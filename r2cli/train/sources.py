"""Training features from the r2cli workspace: catalog videos, the feature store and cached query features.

Annotation records name their video by ``vid`` (a catalog id, a content fingerprint or a file stem)
or by ``video`` / ``video_path`` (a file). Files the catalog does not know yet, or that lack
features, are indexed first through the catalog and features engineers' library functions
(``scan_archive`` then ``extract_features``), with the same CLIP tower that encodes the queries.
Query features come from that tower and are cached on disk per CLIP weights and ``k``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli._atomic import atomic_output
from r2cli.errors import CatalogError, InputError
from r2cli.progress import NULL_REPORTER, Reporter
from r2cli.train.data import MappedFeatures, TrainItem

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from r2cli.paths import Workspace

QUERY_CACHE_FOLDER = "query_features"


class QueryFeatureCache:
    """Per-query text-tower layers ``[L, k, Cq]`` (fp16), cached as ``<folder>/<hash of text>.npy``."""

    def __init__(self, root: str | Path, tower: Any, k: int) -> None:
        self.tower = tower
        self.k = k
        key = hashlib.blake2b(f"{tower.model_name}|{tower.weights_id}|k={k}|v1".encode(), digest_size=8).hexdigest()
        self.folder = Path(root) / key

    def path(self, text: str) -> Path:
        return self.folder / (hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest() + ".npy")

    def get_many(self, texts: list[str], *, reporter: Reporter = NULL_REPORTER) -> list["np.ndarray"]:
        """Layers of every text, computing (in one batch) and storing those not cached yet.

        Raises:
            UsageError: from the tower, on an invalid text.
        """
        import numpy as np

        out: dict[str, np.ndarray] = {}
        missing = []
        for text in dict.fromkeys(texts):
            path = self.path(text)
            if path.is_file():
                try:
                    out[text] = np.load(path)
                    continue
                except (ValueError, OSError):
                    pass  # a torn file: compute again
            missing.append(text)
        if missing:
            layers, _, truncated = self.tower.query_features(missing, self.k)
            cut = [t for t, flag in zip(missing, truncated) if flag]
            if cut:
                reporter.warn(f"{len(cut)} training queries were cut to CLIP's 77 tokens (first: {cut[0][:60]!r})")
            self.folder.mkdir(parents=True, exist_ok=True)
            for text, value in zip(missing, layers):
                array = value.numpy().astype(np.float16)  # [L, k, Cq]
                path = self.path(text)
                with atomic_output(path, durable=False) as tmp:  # a cache: losing it costs a recompute
                    with open(tmp, "wb") as handle:
                        np.save(handle, array)
                out[text] = array
        return [out[t] for t in texts]


@dataclass
class ResolvedFeatures:
    """What :func:`store_features` found."""

    source: MappedFeatures  # features by item key
    items: list[TrainItem]  # the usable items, durations filled from the catalog
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item key, reason)
    indexed: int = 0  # videos indexed (scanned + extracted) for this call


def _video_lookup(records: list[Any]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for record in records:  # weakest keys first so stronger ones win
        table.setdefault(f"stem:{Path(record.path).stem}", record)
    for record in records:
        table[f"id:{record.id}"] = record
        if record.fingerprint:
            table[f"fp:{record.fingerprint}"] = record
        table[f"path:{os.path.realpath(record.path)}"] = record
    return table


def _find(table: dict[str, Any], item: TrainItem) -> Any:
    if item.video_path:
        return table.get(f"path:{os.path.realpath(item.video_path)}")
    vid = item.vid or ""
    for key in (f"fp:{vid}", f"id:{vid}", f"stem:{vid}"):
        if key in table:
            return table[key]
    return None


def _catalog_records(workspace: "Workspace") -> list[Any]:
    from r2cli.catalog.features import ok_videos

    return ok_videos(workspace)


def index_videos(workspace: "Workspace", paths: list[str], *, tower: Any, fps: float, k: int,
                 reporter: Reporter = NULL_REPORTER) -> int:
    """Catalog and extract features of ``paths`` (existing work is skipped); returns videos extracted.

    Raises:
        UsageError: a path does not exist.
        CatalogError / CatalogBusyError: the catalog cannot be written.
        MissingDependencyError: ffmpeg/ffprobe are missing.
    """
    from r2cli.catalog.scan import scan_archive
    from r2cli.features.extract import extract_features

    if not paths:
        return 0
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"annotation video {missing[0]} does not exist ({len(missing)} missing files)")
    scan_archive(paths, workspace, reporter=reporter)
    report = extract_features(workspace, tower=tower, fps=fps, k=k, paths=paths, reporter=reporter)
    return int(getattr(report, "videos_extracted", 0))


def store_features(workspace: "Workspace", items: list[TrainItem], *, tower: Any, fps: float, k: int,
                   index_missing: bool = True, reporter: Reporter = NULL_REPORTER) -> ResolvedFeatures:
    """Resolve every item's video through the catalog and open its stored features.

    Args:
        workspace: catalog + feature store.
        items: grounding items naming their video by ``vid`` or by path.
        tower: the CLIP tower the features were (or will be) extracted with; it also encodes the queries.
        fps: clips per second of the features (the preset's).
        k: CLIP layers the head needs.
        index_missing: catalog and extract files named by path that lack features.
        reporter: progress and warnings (skipped items).

    Raises:
        CatalogError: there is no catalog and nothing to index.
        InputError: no item has usable features.
    """
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.search import open_features

    indexed = 0
    paths = sorted({item.video_path for item in items if item.video_path})
    if index_missing and paths:
        indexed = index_videos(workspace, paths, tower=tower, fps=fps, k=k, reporter=reporter)
    try:
        records = _catalog_records(workspace)
    except CatalogError as exc:
        raise CatalogError(f"{exc}; index the videos first (r2cli index DIR) or give them as paths "
                           "in the annotations") from None
    table = _video_lookup(records)
    settings = FeatureSettings.for_tower(tower, fps=fps, k=k)
    wanted: dict[int, Any] = {}
    skipped: list[tuple[str, str]] = []
    by_item: dict[str, Any] = {}
    for item in items:
        record = _find(table, item)
        if record is None:
            what = item.video_path or f"vid {item.vid!r}"
            skipped.append((item.key, f"{what} is not in the catalog"))
            continue
        wanted[record.id] = record
        by_item[item.key] = record
    opened, not_found = open_features(workspace, list(wanted.values()), settings, reporter)
    features = {record.id: feats for record, feats in opened}
    reasons = {s.video_id: s.reason for s in not_found}
    usable: list[TrainItem] = []
    videos: dict[str, Any] = {}
    for item in items:
        record = by_item.get(item.key)
        if record is None:
            continue
        if record.id not in features:
            skipped.append((item.key, f"{record.path}: {reasons.get(record.id, 'no features')}"))
            continue
        duration = item.duration if item.duration is not None else record.duration
        if duration is None:
            duration = features[record.id].num_clips / fps
        usable.append(replace(item, duration=float(duration), video_path=record.path))
        videos[item.key] = features[record.id].layers
    for key, reason in skipped[:5]:
        reporter.warn(f"skipping annotation {key}: {reason}")
    if len(skipped) > 5:
        reporter.warn(f"... {len(skipped) - 5} more annotations skipped")
    if not usable:
        first = skipped[0][1] if skipped else "no annotations"
        raise InputError(f"no annotation has usable features ({first}); run r2cli index on the videos")
    cache = QueryFeatureCache(workspace.root / QUERY_CACHE_FOLDER, tower, k)
    layers = cache.get_many([item.query for item in usable], reporter=reporter)
    queries = {item.key: value for item, value in zip(usable, layers)}
    return ResolvedFeatures(source=MappedFeatures(videos, queries, fps), items=usable, skipped=skipped, indexed=indexed)
