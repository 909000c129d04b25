"""An approximate coarse index of the stored clip embeddings, one per feature-settings key (#19.1).

Search's coarse stage scores every clip embedding of every selected video against each query;
over 10,000 video-hours (18 M clips) that scan dominates a query. This module keeps a faiss IVF
index (inner product on the L2-normalised CLIP image embeddings) next to the feature files, so
the coarse stage probes a few lists instead of scanning everything; the hits are re-scored
exactly from the stored fp16 embeddings before the fine stage (``r2cli.inference.search``).

Layout under the feature store root::

    coarse-index/<settings key>/CURRENT.json      -> {"generation": "g000007", ...}
    coarse-index/<settings key>/g000007/index.faiss
    coarse-index/<settings key>/g000007/manifest.json

``manifest.json`` is the id table: every indexed video is a contiguous id range
(``first_id``, ``num_clips``), so id ``first_id + c`` is clip ``c`` of that video, with the
video's fingerprint and the checksum of the feature file the vectors came from.

Updates never touch the current generation: a new one is written into a hidden partial folder,
fsync'ed, renamed to its final name, and only then ``CURRENT.json`` is replaced atomically
(``r2cli._atomic`` style: temporary file, fsync, ``os.replace``). A process killed at any point
leaves ``CURRENT.json`` naming a complete earlier generation; leftovers are removed by the next
update. Deleted videos are removed from the index at the next update and, until then, filtered
at search time (a hit counts only for a video the search selected, whose feature file still has
the checksum the index recorded), so a deleted or re-extracted video never comes back from stale
vectors.

Index types (chosen by the number of vectors, decided in ``index_spec``): below
``PQ_ABOVE_CLIPS`` vectors ``IVF<nlist>,SQ8`` (one byte per dimension, near-exact scores); above,
``IVF<nlist>,PQ64`` (64 bytes per clip: the 10,000-hour index stays ~1.3 GB); above
``FAST_SCAN_ABOVE_CLIPS``, ``IVF<nlist>,PQ64x4fs`` (64 four-bit codes, 32 bytes per clip: 7.2 GB with
ids at 100,000 hours, scanned with SIMD lookups ~5 times faster per code than 8-bit PQ). ``nlist`` is
the power of two nearest ``sqrt(N)``, at most ``MAX_NLIST``. An index is retrained (rebuilt from
scratch) when the archive has grown past ``RETRAIN_GROWTH`` times the vectors it was trained on, or
needs other codes; an update says so (``CoarseIndexReport.retrained``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli._atomic import fsync_dir, write_json_atomic
from r2cli.errors import FeatureError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

INDEX_DIR = "coarse-index"
CURRENT_FILE = "CURRENT.json"
INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"
INDEX_FORMAT = "r2cli.coarse-index"
INDEX_FORMAT_VERSION = 1
# Below this many clips search scores exactly and `index` builds no coarse index: 36,000 clips are
# 20 video-hours at 0.5 fps; below that a full scan takes < 0.1 s on the 2-core CPU and beats the
# index's fixed costs (benchmarks/RESULTS-archive.md).
DEFAULT_MIN_CLIPS = 36_000
PQ_ABOVE_CLIPS = 1_000_000  # SQ8 codes (512 B/clip) below, PQ64 codes (64 B/clip) above
# Four-bit fast-scan PQ codes (64 x 4 bits = 32 B/clip) above this: with faiss's 8-byte ids PQ64 costs
# 72 B/clip, 13 GB resident at 100,000 video-hours (180 M clips); PQ64x4fs 40 B/clip, 7.2 GB. Measured
# (benchmarks/RESULTS-archive.md): at 1,000 video-hours it finds the same 100/100 planted moments as 8-bit
# PQ32 (the same size) and PQ64, scans ~2.4 ns per code against PQ32's ~12.5, and trains and adds ~5 times
# faster; its windows are re-scored exactly, so the coarser codes change which windows are looked at, never
# their scores.
FAST_SCAN_ABOVE_CLIPS = 50_000_000  # ~27,800 video-hours: PQ64 codes would pass 3.6 GB
FAST_SCAN_CODES = "PQ64x4fs"
# Lists at most: probing is a share of the lists (DEFAULT_NPROBE_FRACTION), so the codes a query scans are
# N/8 whatever nlist; more lists only cost the build (each added clip is compared with every centroid: ~24
# CPU-us per clip at 4,096 lists, ~126 at 16,384) and the k-means. 4,096 is the 10,000-hour index's.
MAX_NLIST = 4096
# Approximate clip hits a text search asks of the index per candidate window it keeps. The hits are
# re-scored exactly before they pick windows, so what matters is that the near-tied best clips are among
# them. Measured on 100,000 clustered clips (`archive_index.py compare`, window recall@40, RESULTS-archive.md):
# PQ64 0.974 at 16 per candidate; four-bit fast-scan codes 0.849 at 16 and 0.944 at 100 (8-bit PQ32, the
# same size: 0.932 at 16, but ~5 times slower to scan, which 100,000 video-hours cannot afford).
HITS_PER_CANDIDATE = 16
FAST_SCAN_HITS_PER_CANDIDATE = 100
RETRAIN_GROWTH = 4.0  # retrain once the index holds this many times the vectors it was trained on
TRAIN_POINTS_PER_LIST = 64  # training sample: this many vectors per inverted list (capped by N)
MIN_TRAIN_POINTS_PER_LIST = 39  # faiss's own lower bound for a stable k-means
ADD_CHUNK = 262_144  # vectors converted to float32 and added at once (1 GB of float32 at 512 dims)
# Lists probed per query: nlist/8, at least 32. The index's misses of planted moments are misses of
# probing, not of PQ codes or hit counts (1,000 video-hours, IVF1024,PQ64: planted moments found 95/100
# at nprobe 32, 99 at 64, 100 at 128; with every list probed the 640 PQ hits hold all 100); probing
# 1/8 costs ~2 ms more CPU per query than 1/32 there (benchmarks/RESULTS-archive.md).
DEFAULT_NPROBE_FRACTION = 1 / 8
MIN_NPROBE = 32
KEEP_GENERATIONS = 2  # the current one and the one before it


def _faiss() -> Any:
    try:
        import faiss  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError(
            "the coarse index needs faiss: pip install faiss-cpu (or use --no-coarse-index / search --exact)"
        ) from None
    return faiss


@dataclass(frozen=True)
class IndexSpec:
    """What kind of faiss index to build for ``num_vectors`` vectors."""

    nlist: int  # inverted lists (k-means centroids)
    codes: str  # "SQ8", "PQ64" or "PQ64x4fs"

    @property
    def factory(self) -> str:
        return f"IVF{self.nlist},{self.codes}"

    @property
    def nprobe(self) -> int:
        return min(self.nlist, max(MIN_NPROBE, int(round(self.nlist * DEFAULT_NPROBE_FRACTION))))

    @property
    def hits_per_candidate(self) -> int:
        """Approximate hits a text search asks per candidate window: four-bit codes order near ties worse."""
        return FAST_SCAN_HITS_PER_CANDIDATE if self.codes.endswith("fs") else HITS_PER_CANDIDATE


def index_spec(num_vectors: int) -> IndexSpec:
    """The index for ``num_vectors`` clips: nlist the power of two nearest sqrt(N) (at most ``MAX_NLIST``),
    SQ8, PQ64 or four-bit fast-scan PQ64 codes."""
    nlist = 2 ** int(round(math.log2(max(16.0, math.sqrt(max(1, num_vectors))))))
    nlist = max(1, min(nlist, MAX_NLIST, num_vectors // MIN_TRAIN_POINTS_PER_LIST or 1))
    if num_vectors > FAST_SCAN_ABOVE_CLIPS:
        codes = FAST_SCAN_CODES
    else:
        codes = "PQ64" if num_vectors > PQ_ABOVE_CLIPS else "SQ8"
    return IndexSpec(nlist=nlist, codes=codes)


@dataclass(frozen=True)
class LiveSet:
    """A feature set the catalog says is live: the content and where its file is."""

    fingerprint: str
    relpath: str  # inside the feature store
    num_clips: int


@dataclass
class CoarseIndexReport:
    """What one update (or verify) of one coarse index did."""

    settings_key: str
    path: str  # the index folder
    action: str  # "built", "updated", "unchanged", "removed", "skipped"
    reason: str = ""  # for people: why it was (re)built or skipped
    generation: str | None = None
    factory: str | None = None
    vectors: int = 0  # clips in the index after the update
    videos: int = 0
    added_videos: int = 0
    removed_videos: int = 0
    retrained: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # what --verify found wrong (then rebuilt)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def index_root(store_root: str | os.PathLike, settings_key: str) -> Path:
    """``<store>/coarse-index/<settings key>``."""
    return Path(store_root) / INDEX_DIR / settings_key


# ----------------------------------------------------------------------------------------------
# Reading


@dataclass
class CoarseIndex:
    """One generation of a coarse index, loaded (the faiss index in memory, the id table as arrays)."""

    root: Path
    generation: str
    manifest: dict[str, Any]
    index: Any  # faiss.Index
    first_ids: "np.ndarray"  # [videos] int64, sorted
    num_clips: "np.ndarray"  # [videos] int64
    fingerprints: list[str]
    checksums: list[str]

    @property
    def spec(self) -> IndexSpec:
        return IndexSpec(nlist=int(self.manifest["nlist"]), codes=str(self.manifest["codes"]))

    @property
    def vectors(self) -> int:
        return int(self.index.ntotal)

    @property
    def min_clips(self) -> int:
        return int(self.manifest.get("min_clips", DEFAULT_MIN_CLIPS))

    def videos(self) -> dict[str, tuple[int, str]]:
        """Fingerprint -> (position in the id table, checksum of the file its vectors came from)."""
        return {fp: (i, checksum) for i, (fp, checksum) in enumerate(zip(self.fingerprints, self.checksums))}

    def search(self, query_embed: "np.ndarray", k: int, nprobe: int | None = None) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        """The ``k`` approximate best clips per query: (scores [Q, k], video positions [Q, k], clips [Q, k]).

        Empty slots (fewer than k vectors reachable) have video position -1.
        """
        import numpy as np

        faiss = _faiss()
        params = faiss.SearchParametersIVF(nprobe=int(nprobe or self.spec.nprobe))
        queries = np.ascontiguousarray(query_embed, dtype=np.float32)
        scores, ids = self.index.search(queries, int(k), params=params)
        position = np.searchsorted(self.first_ids, ids, side="right") - 1
        valid = (ids >= 0) & (position >= 0)
        position = np.where(valid, position, 0)
        clip = ids - self.first_ids[position]
        valid &= clip < self.num_clips[position]
        return scores, np.where(valid, position, -1), np.where(valid, clip, -1)


def read_current(root: Path) -> dict[str, Any] | None:
    """The ``CURRENT.json`` pointer of an index folder (None when there is none).

    Raises:
        FeatureError: the pointer is unreadable.
    """
    path = root / CURRENT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FeatureError(f"{path}: unreadable coarse-index pointer ({exc}); run r2cli index --rebuild-coarse-index")
    if not isinstance(data, dict) or not isinstance(data.get("generation"), str):
        raise FeatureError(f"{path}: not a coarse-index pointer; run r2cli index --rebuild-coarse-index")
    return data


def load_index(store_root: str | os.PathLike, settings_key: str) -> CoarseIndex | None:
    """The current generation of the coarse index for ``settings_key`` (None when none was built).

    Raises:
        FeatureError: the pointer names a generation that is missing or unreadable.
        MissingDependencyError: faiss is not installed.
    """
    import numpy as np

    root = index_root(store_root, settings_key)
    current = read_current(root)
    if current is None:
        return None
    folder = root / current["generation"]
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FeatureError(f"{folder / MANIFEST_FILE}: unreadable coarse-index manifest ({exc}); "
                           "run r2cli index --rebuild-coarse-index") from None
    if manifest.get("format") != INDEX_FORMAT or manifest.get("format_version") != INDEX_FORMAT_VERSION:
        raise FeatureError(f"{folder / MANIFEST_FILE}: not a coarse index of this r2cli version; "
                           "run r2cli index --rebuild-coarse-index")
    faiss = _faiss()
    try:
        index = faiss.read_index(str(folder / INDEX_FILE))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise FeatureError(f"{folder / INDEX_FILE}: unreadable coarse index ({first}); "
                           "run r2cli index --rebuild-coarse-index") from None
    videos = manifest["videos"]
    return CoarseIndex(
        root=root, generation=current["generation"], manifest=manifest, index=index,
        first_ids=np.array([v["first_id"] for v in videos], dtype=np.int64),
        num_clips=np.array([v["num_clips"] for v in videos], dtype=np.int64),
        fingerprints=[v["fingerprint"] for v in videos], checksums=[v["checksum"] for v in videos],
    )


# ----------------------------------------------------------------------------------------------
# Writing


def file_checksum(store_root: Path, relpath: str) -> str:
    """The ``checksum`` a feature file records in its header (what identifies one extraction)."""
    from r2cli.features.store import read_header

    header, _ = read_header(store_root / relpath)
    return str((header.get("__metadata__") or {}).get("checksum", ""))


def _embeddings(store_root: Path, relpath: str) -> "np.ndarray":
    from r2cli.features.store import open_features

    return open_features(store_root / relpath).embed  # [T, D] float16, memory-mapped


def _add_video(index: Any, embed: "np.ndarray", first_id: int) -> None:
    import numpy as np

    for start in range(0, embed.shape[0], ADD_CHUNK):
        part = np.ascontiguousarray(embed[start : start + ADD_CHUNK], dtype=np.float32)  # [n, D]
        part = np.nan_to_num(part, nan=0.0, posinf=0.0, neginf=0.0)  # damaged clips are never hits
        ids = np.arange(first_id + start, first_id + start + part.shape[0], dtype=np.int64)
        index.add_with_ids(part, ids)


def _training_sample(store_root: Path, live: list[LiveSet], wanted: int, dims: int) -> "np.ndarray":
    """``wanted`` clip embeddings drawn evenly across the live videos (deterministic)."""
    import numpy as np

    total = sum(s.num_clips for s in live)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(total, size=min(wanted, total), replace=False))
    sample = np.empty((len(rows), dims), dtype=np.float32)
    offset, filled = 0, 0
    for item in live:
        end = offset + item.num_clips
        lo, hi = np.searchsorted(rows, [offset, end])
        if hi > lo:
            embed = _embeddings(store_root, item.relpath)
            sample[filled : filled + hi - lo] = embed[rows[lo:hi] - offset]
            filled += hi - lo
        offset = end
    return np.nan_to_num(sample[:filled])


def _publish(root: Path, index: Any, manifest: dict[str, Any], previous: str | None) -> str:
    """Write a new generation beside the current one and point ``CURRENT.json`` at it."""
    faiss = _faiss()
    number = int(previous[1:]) + 1 if previous else 1
    for entry in root.glob("g*"):
        if entry.is_dir() and entry.name[1:].isdigit():
            number = max(number, int(entry.name[1:]) + 1)
    generation = f"g{number:06d}"
    partial = root / f".{generation}.{os.getpid()}.partial"
    partial.mkdir(parents=True)
    faiss.write_index(index, str(partial / INDEX_FILE))
    with open(partial / INDEX_FILE, "rb+") as handle:
        os.fsync(handle.fileno())
    write_json_atomic(partial / MANIFEST_FILE, {**manifest, "generation": generation}, sort_keys=True)
    fsync_dir(partial)
    os.replace(partial, root / generation)
    fsync_dir(root)
    write_json_atomic(root / CURRENT_FILE, {"generation": generation, "format": INDEX_FORMAT,
                                            "vectors": int(index.ntotal), "updated": time.time()}, sort_keys=True)
    fsync_dir(root)
    _clean(root, keep={generation, previous})
    return generation


def _remove_generations(root: Path) -> None:
    """Remove what r2cli writes in an index folder (pointer, generations, partials, temporaries), then the
    folder if that left it empty: anything else someone put there stays."""
    (root / CURRENT_FILE).unlink(missing_ok=True)
    _clean(root, keep=set(), generations_kept=0)
    try:
        root.rmdir()
    except OSError:  # not empty: files r2cli did not write
        pass


def _clean(root: Path, keep: set[str | None], generations_kept: int = KEEP_GENERATIONS) -> None:
    """Remove generations older than the ones kept, and partial folders of dead writers."""
    from r2cli._atomic import pid_alive

    generations = sorted(e.name for e in root.glob("g*") if e.is_dir() and e.name[1:].isdigit())
    for name in generations[: len(generations) - generations_kept]:
        if name not in keep:
            shutil.rmtree(root / name, ignore_errors=True)
    for entry in root.glob(".g*.partial"):
        parts = entry.name.split(".")
        try:
            alive = pid_alive(int(parts[2]))
        except (IndexError, ValueError):
            alive = False
        if not alive or int(parts[2]) == os.getpid():
            shutil.rmtree(entry, ignore_errors=True)
    for entry in root.glob(f".{CURRENT_FILE}.*.tmp"):
        entry.unlink(missing_ok=True)


def update_index(store_root: str | os.PathLike, settings_key: str, live: list[LiveSet], *,
                 min_clips: int = DEFAULT_MIN_CLIPS, rebuild: bool = False) -> CoarseIndexReport:
    """Bring the coarse index of ``settings_key`` up to date with the ``live`` feature sets.

    New and re-extracted videos are added, deleted ones removed, without a rebuild; the index is
    retrained from scratch when ``rebuild``, when none exists or it is unreadable, or when the
    archive outgrew what it was trained on. Below ``min_clips`` live clips no index is kept.

    Raises:
        MissingDependencyError: faiss is not installed.
        FeatureError: a live feature file cannot be read.
    """
    started = time.perf_counter()
    store_root = Path(store_root)
    root = index_root(store_root, settings_key)
    live = sorted({s.fingerprint: s for s in live if s.num_clips > 0}.values(), key=lambda s: s.fingerprint)
    total = sum(s.num_clips for s in live)
    report = CoarseIndexReport(settings_key=settings_key, path=str(root), action="unchanged")
    if total < min_clips:
        _below_min_clips(root, total, min_clips, report)
        report.seconds = time.perf_counter() - started
        return report
    root.mkdir(parents=True, exist_ok=True)
    _clean(root, keep=set())
    checksums = {s.fingerprint: file_checksum(store_root, s.relpath) for s in live}
    current = None
    if not rebuild:
        try:
            current = load_index(store_root, settings_key)
        except FeatureError as exc:
            report.problems.append(str(exc))
    dims = int(_embeddings(store_root, live[0].relpath).shape[1])
    reason = _retrain_reason(current, total, rebuild, bool(report.problems))
    if reason:
        plan = _trained_plan(store_root, live, total, dims, reason)
        report.retrained, report.action = current is not None or rebuild, "built"
    else:
        assert current is not None
        plan = _incremental_plan(current, live, checksums)
        if not plan.removed and not plan.to_add:
            report.generation, report.factory = current.generation, plan.spec.factory
            report.vectors, report.videos = current.vectors, len(plan.videos)
            report.seconds = time.perf_counter() - started
            return report
        report.removed_videos, report.action = len(plan.removed), "updated"
    _add_videos(store_root, plan, checksums)
    manifest = {
        "format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION, "settings_key": settings_key,
        "factory": plan.spec.factory, "nlist": plan.spec.nlist, "codes": plan.spec.codes, "dims": dims,
        "metric": "inner_product", "trained_on": plan.trained_on, "next_id": plan.next_id,
        "min_clips": int(min_clips), "videos": plan.videos,
    }
    report.generation = _publish(root, plan.index, manifest, current.generation if current is not None else None)
    report.added_videos = len(plan.to_add)
    report.reason = plan.reason
    report.factory = plan.spec.factory
    report.vectors, report.videos = int(plan.index.ntotal), len(plan.videos)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _UpdatePlan:
    """What one update does: the index it writes into, the videos it keeps and the ones it adds."""

    index: Any
    spec: IndexSpec
    trained_on: int
    videos: list[dict[str, Any]]  # manifest entries kept (the added ones are appended)
    to_add: list[LiveSet]
    next_id: int
    reason: str
    removed: list[dict[str, Any]] = field(default_factory=list)


def _below_min_clips(root: Path, total: int, min_clips: int, report: CoarseIndexReport) -> None:
    """Too few clips for an index: the exact scan serves; an index r2cli kept for a larger archive goes."""
    if root.is_dir():
        _remove_generations(root)
        report.action, report.reason = "removed", f"{total} clips, fewer than min_clips {min_clips}"
    else:
        report.action, report.reason = "skipped", f"{total} clips, fewer than min_clips {min_clips}: exact search"


def _retrain_reason(current: CoarseIndex | None, total: int, rebuild: bool, unreadable: bool) -> str:
    """Why the index is trained from scratch, or "" when the current one is updated in place."""
    spec = index_spec(total)
    if rebuild:
        return "rebuild asked for"
    if current is None:
        return "no usable index" if unreadable else "first build"
    if current.spec.codes != spec.codes:
        return f"archive of {total} clips needs {spec.codes} codes (index has {current.spec.codes})"
    if total > RETRAIN_GROWTH * int(current.manifest["trained_on"]):
        return (f"archive grew to {total} clips, more than {RETRAIN_GROWTH:g}x the "
                f"{current.manifest['trained_on']} the index was trained on: retrained")
    return ""


def _trained_plan(store_root: Path, live: list[LiveSet], total: int, dims: int, reason: str) -> _UpdatePlan:
    """A new index trained on a sample of the live clips; every live video is added to it."""
    faiss = _faiss()
    spec = index_spec(total)
    index = faiss.index_factory(dims, spec.factory, faiss.METRIC_INNER_PRODUCT)
    wanted = spec.nlist * TRAIN_POINTS_PER_LIST
    if spec.codes != "SQ8":
        wanted = max(wanted, 65_536)
    index.train(_training_sample(store_root, live, wanted, dims))
    return _UpdatePlan(index=index, spec=spec, trained_on=total, videos=[], to_add=list(live), next_id=0,
                       reason=reason)


def _incremental_plan(current: CoarseIndex, live: list[LiveSet], checksums: dict[str, str]) -> _UpdatePlan:
    """The current index with deleted and re-extracted videos removed; new and re-extracted ones to add."""
    import numpy as np

    videos, removed = [], []
    for entry in current.manifest["videos"]:
        if checksums.get(entry["fingerprint"]) == entry["checksum"]:
            videos.append(entry)
        else:
            removed.append(entry)
    kept = {v["fingerprint"] for v in videos}
    to_add = [s for s in live if s.fingerprint not in kept]
    index = current.index
    if removed:
        faiss = _faiss()
        ranges = np.concatenate([np.arange(e["first_id"], e["first_id"] + e["num_clips"], dtype=np.int64)
                                 for e in removed])
        index.remove_ids(faiss.IDSelectorBatch(ranges))
    return _UpdatePlan(index=index, spec=current.spec, trained_on=int(current.manifest["trained_on"]),
                       videos=videos, to_add=to_add, next_id=int(current.manifest["next_id"]),
                       reason=f"{len(to_add)} videos added, {len(removed)} removed", removed=removed)


def _add_videos(store_root: Path, plan: _UpdatePlan, checksums: dict[str, str]) -> None:
    """Add the plan's videos to its index under fresh id ranges, recording each in the manifest entries."""
    for item in plan.to_add:
        embed = _embeddings(store_root, item.relpath)
        _add_video(plan.index, embed, plan.next_id)
        plan.videos.append({"fingerprint": item.fingerprint, "checksum": checksums[item.fingerprint],
                            "first_id": plan.next_id, "num_clips": int(embed.shape[0])})
        plan.next_id += int(embed.shape[0])
    plan.videos.sort(key=lambda v: v["first_id"])


def verify_index(store_root: str | os.PathLike, settings_key: str, live: list[LiveSet]) -> list[str]:
    """Problems of the current coarse index (empty list: sound and up to date with ``live``).

    Checks that the pointer names a readable generation, the id table agrees with the index, and
    every indexed video is live with the same feature file (and every live video is indexed).
    """
    try:
        current = load_index(store_root, settings_key)
    except FeatureError as exc:
        return [str(exc)]
    if current is None:
        return []
    problems = []
    indexed = sum(int(n) for n in current.num_clips)
    if indexed != current.vectors:
        problems.append(f"{current.root / current.generation}: the id table holds {indexed} clips, "
                        f"the index {current.vectors}")
    live_by_fp = {s.fingerprint: s for s in live if s.num_clips > 0}
    for fp, checksum in zip(current.fingerprints, current.checksums):
        item = live_by_fp.get(fp)
        if item is None:
            problems.append(f"indexed video {fp} is no longer in the catalog")
        elif file_checksum(Path(store_root), item.relpath) != checksum:
            problems.append(f"indexed video {fp} was extracted again since")
    missing = set(live_by_fp) - set(current.fingerprints)
    if missing:
        problems.append(f"{len(missing)} live videos are not in the index")
    return problems


# ----------------------------------------------------------------------------------------------
# The workspace: the catalog supplies the live set of each settings key


def live_sets(catalog: Any) -> dict[str, list[LiveSet]]:
    """Settings key -> the feature sets of contents that a readable catalog row still has."""
    from r2cli.catalog.features import feature_sets_by_key, readable_videos

    fingerprints = {r.fingerprint for r in readable_videos(catalog) if r.fingerprint}
    found: dict[str, list[LiveSet]] = {}
    for record in feature_sets_by_key(catalog):
        if record.fingerprint in fingerprints:
            found.setdefault(record.settings_key, []).append(
                LiveSet(fingerprint=record.fingerprint, relpath=record.relpath, num_clips=int(record.num_clips)))
    return found


def update_workspace_indexes(workspace: Any, *, min_clips: int = DEFAULT_MIN_CLIPS, rebuild: bool = False,
                             verify: bool = False) -> list[CoarseIndexReport]:
    """Update (or, with ``verify``, check and repair) the coarse index of every settings key in the catalog.

    Keys whose index folder exists but which no longer have live features are removed too.

    Raises:
        CatalogError: there is no catalog.
        MissingDependencyError: faiss is not installed.
    """
    from r2cli.catalog.db import Catalog

    with Catalog.open(workspace, create=False) as catalog:
        by_key = live_sets(catalog)
    store_root = Path(workspace.features_dir)
    folder = store_root / INDEX_DIR
    keys = set(by_key) | ({p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set())
    reports = []
    for key in sorted(keys):
        live = by_key.get(key, [])
        problems = verify_index(store_root, key, live) if verify else []
        report = update_index(store_root, key, live, min_clips=min_clips, rebuild=rebuild or bool(problems))
        if problems:
            report.problems = problems + report.problems
            report.reason = f"--verify found {len(problems)} problems: rebuilt"
        reports.append(report)
    return reports
