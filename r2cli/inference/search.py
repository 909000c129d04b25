"""The stages of ``r2cli search``, over the features the index stored, without any option parsing.

1. ``open_features`` / ``plan_archive``: memory-map each selected video's features and cut the
   video into windows (the whole video when it is no longer than the preset's window; windows of
   ``window_clips`` every ``stride_clips`` otherwise). Nothing is read here: the store's writer
   refuses non-finite values and ``r2cli index --verify`` finds files damaged since (flipped
   bytes). A damaged window is found where its features are read, stage 2 for CLIP embeddings
   (every window on the exact scan, only the windows re-scored on the index path) and stage 3
   for layer features, and skipped, with a warning, and counted.
2. ``select_candidates``: every window is scored for each query by the cosine between the
   query's CLIP text embedding and the clips' CLIP image embeddings (max over the window's clips);
   each query keeps its ``candidates`` best windows.
3. ``ground_windows``: R2-Tuning grounds every (candidate window, query) pair, batched, each
   window's query-independent side computed once (``r2cli.inference.grounding``).
4. ``merge_moments`` / ``rank_moments``: window moments are mapped back to the video,
   post-processed as the preset says (clamp, unit rounding, NMS across windows;
   ``r2cli.inference.windows``) and ranked across videos by score.

``search_batch`` runs stages 2-4 for one batch of queries; ``SearchWriter`` appends a batch's
outputs to the run folder's staged files, so a run over any number of queries holds one batch
in memory. The use case (options, run folder, catalog record) is ``r2cli.app.search``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.errors import FeatureError, InputError
from r2cli.model.config import DEFAULT_FPS
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

    from r2cli.inference.query_files import Query
    from r2cli.inference.windows import PostProcess, Window
    from r2cli.paths import Workspace

MOMENTS_FILE = "moments.parquet"
SALIENCY_FILE = "saliency.parquet"
OFFICIAL_FILE = "predictions_official.jsonl"
MOMENT_COLUMNS = ["run_id", "query_id", "query", "video_id", "path", "start_s", "end_s", "score",
                  "rank_in_query", "rank_in_video", "model", "preset", "query_kind"]


@dataclass(frozen=True)
class SkippedVideo:
    """A selected video the search could not use."""

    video_id: int | None  # catalog id
    path: str  # absolute path
    reason: str  # why, for people ("no features for ViT-B-32/openai at 0.5 fps; run r2cli index")


@dataclass
class ArchiveVideo:
    """A video with its memory-mapped features and its windows."""

    record: Any  # catalog VideoRecord
    features: Any  # r2cli.features.store VideoFeatures
    duration: float  # seconds used to clamp moments
    windows: list = field(default_factory=list)  # r2cli.inference.windows.Window


_Video = ArchiveVideo  # the name benchmarks/search_bench.py uses


@dataclass
class SearchPlan:
    """The searchable archive: videos, their windows in one list, and the post-processing."""

    videos: list[ArchiveVideo]
    windows: list[tuple[int, "Window"]]  # (video index, window), video by video
    fps: float
    post: "PostProcess"
    bad_windows: dict[int, str] = field(default_factory=dict)  # window index -> why it is skipped
    checked_layers: set[int] = field(default_factory=set)  # windows whose layer features were checked
    coarse: "CoarseStage | None" = None  # how the coarse stage runs (None: exact scan)

    def window_label(self, w: int) -> str:
        v, window = self.windows[w]
        start, end = window.start_clip / self.fps, window.end_clip / self.fps
        return f"{Path(self.videos[v].record.path).name} {start:g}-{end:g} s"


# ----------------------------------------------------------------------------------------------
# 1. features and windows


from r2cli.inference.names import FEATURE_DTYPE_CHOICES  # defined there once (#23)


def feature_dtype_order(feature_dtype: str) -> tuple[str, ...]:
    """The stored layer dtypes a search may read, preferred first (``auto``: float16, then int8)."""
    if feature_dtype == "auto":
        return ("float16", "int8")
    if feature_dtype not in FEATURE_DTYPE_CHOICES:
        raise InputError(f"--feature-dtype must be one of {', '.join(FEATURE_DTYPE_CHOICES)}, got {feature_dtype!r}")
    return (feature_dtype,)


def open_features(
    workspace: "Workspace", records: list[Any], settings: Any, reporter: Reporter = NULL_REPORTER,
    feature_dtype: str = "auto",
) -> tuple[list[tuple[Any, Any]], list[SkippedVideo]]:
    """Memory-map the stored features of each video; videos without them are skipped, with the reason.

    The default settings key is tried first (for each dtype ``feature_dtype`` allows, float16
    first), then any compatible feature set the catalog records, in the same dtype order.
    Returns ([(record, VideoFeatures)], [SkippedVideo]); ``features.settings.dtype`` says which was read.

    Raises:
        InputError: ``feature_dtype`` is not auto, float16 or int8.
    """
    import dataclasses

    from r2cli.catalog.selection import compatible_feature_sets
    from r2cli.features.store import FeatureStore

    dtypes = feature_dtype_order(feature_dtype)
    store = FeatureStore(workspace.features_dir)
    found, skipped, missing = [], [], []
    for record in records:
        if not record.fingerprint:
            skipped.append(SkippedVideo(record.id, record.path, "not fingerprinted yet; run r2cli index"))
            continue
        features, problem = None, None
        for dtype in dtypes:
            try:
                features = store.get(record.fingerprint, dataclasses.replace(settings, dtype=dtype))
            except FeatureError as exc:
                problem = problem or f"unreadable features ({exc})"
                continue
            if features is not None:
                break
        if features is None and problem is not None:
            skipped.append(SkippedVideo(record.id, record.path, problem))
        elif features is None:
            missing.append(record)
        else:
            found.append((record, features))
    if missing:
        alternatives: dict[str, list[str]] = {}
        for dtype in dtypes:
            for fingerprint, relpaths in compatible_feature_sets(
                workspace, sorted({r.fingerprint for r in missing}), weights_id=settings.weights_id,
                clip_model=settings.clip_model, fps=settings.fps, k=settings.k, geometry=settings.geometry,
                dtype=dtype,
            ).items():
                alternatives.setdefault(fingerprint, []).extend(relpaths)
        describe = f"CLIP {settings.weights_id} at {settings.fps:g} fps" + (
            "" if feature_dtype == "auto" else f" stored as {feature_dtype}")
        for record in missing:
            features = None
            for relpath in alternatives.get(record.fingerprint, []):
                try:
                    features = store.open_relpath(relpath)
                    break
                except FeatureError:
                    continue
            if features is not None and features.num_clips >= 1:
                found.append((record, features))
                continue
            reason = f"no features for {describe}; run r2cli index" + (
                "" if settings.fps == DEFAULT_FPS else f" --fps {settings.fps:g}") + (
                "" if feature_dtype in ("auto", "float16") else f" --feature-dtype {feature_dtype}")
            if record.features_status == "error" and record.features_error:
                reason = f"feature extraction failed ({record.features_error})"
            skipped.append(SkippedVideo(record.id, record.path, reason))
    found.sort(key=lambda item: item[0].id)
    return found, skipped


def plan_archive(found: list[tuple[Any, Any]], *, fps: float, window_clips: int, stride_clips: int,
                 post: "PostProcess") -> SearchPlan:
    """Windows of every video; reads no features (the cost is per video, not per clip).

    A video no longer than ``window_clips`` is one window (the whole video). Embeddings are not
    scanned for NaN or inf here: over 10,000 video-hours that pass read 18 GB per search before
    the coarse index could skip it. Windows with non-finite embeddings (a file damaged after it
    was written: the writer refuses non-finite values) enter ``plan.bad_windows`` when stage 2
    reads them (``coarse_scores`` / ``indexed_window_scores``).
    """
    from r2cli.inference.windows import plan_windows

    videos, windows = [], []
    for v, (record, features) in enumerate(found):
        duration = float(record.duration) if record.duration else features.num_clips / fps
        video = ArchiveVideo(record=record, features=features, duration=duration,
                             windows=plan_windows(features.num_clips, window_clips, stride_clips))
        windows.extend((v, window) for window in video.windows)
        videos.append(video)
    return SearchPlan(videos=videos, windows=windows, fps=fps, post=post)


def bad_window_warning(plan: SearchPlan, w: int) -> str:
    """The warning for a skipped window."""
    return (f"{plan.window_label(w)}: the stored features hold {plan.bad_windows[w]} (NaN or inf: a damaged "
            "feature file); this window was skipped; "
            "r2cli index --verify finds such files and extracts them again (an extraction that gives NaN or inf again "
            "fails, naming the cause)")


# ----------------------------------------------------------------------------------------------
# 2. candidates


NON_FINITE_EMBEDDINGS = "non-finite CLIP embeddings"


def coarse_scores(videos: list[ArchiveVideo], query_embed: "np.ndarray",
                  bad_windows: dict[int, str] | None = None) -> "np.ndarray":
    """``[windows, queries]`` max cosine between each window's clip embeddings and each query embedding.

    With ``bad_windows`` (``plan.bad_windows``) the windows holding a non-finite embedding are
    recorded there, found on the same pass that reads them.
    """
    import numpy as np

    rows = []
    for video in videos:
        embed = np.asarray(video.features.embed, dtype=np.float32)  # [T, D]
        sims = embed @ query_embed.T  # [T, Q]
        finite_clips = np.isfinite(embed).all(axis=1) if bad_windows is not None else None
        for window in video.windows:
            if finite_clips is not None and not finite_clips[window.start_clip : window.end_clip].all():
                bad_windows[len(rows)] = NON_FINITE_EMBEDDINGS
            rows.append(sims[window.start_clip : window.end_clip].max(axis=0))
    return np.stack(rows) if rows else np.zeros((0, query_embed.shape[0]), dtype=np.float32)


def choose_candidates(scores: "np.ndarray", candidates: int) -> list[tuple[int, int]]:
    """(window, query) pairs: for each query its ``candidates`` best windows (all when fewer exist)."""
    import numpy as np

    num_windows, num_queries = scores.shape
    if candidates >= num_windows:
        return [(w, q) for w in range(num_windows) for q in range(num_queries)]
    pairs = []
    for q in range(num_queries):
        best = np.argsort(-scores[:, q], kind="stable")[:candidates]
        pairs.extend((int(w), q) for w in sorted(best))
    return pairs


@dataclass
class CoarseStage:
    """How the coarse stage of a search runs: an exact scan, or the approximate index then exact re-scoring."""

    path: str  # "exact" or "index"
    reason: str  # for people and run.json: why this path
    index: Any = None  # r2cli.features.coarse_index.CoarseIndex when path == "index"
    nprobe: int = 0  # inverted lists probed per query
    clips_per_query: int = 0  # approximate hits asked of the index per query (before re-scoring)
    plan_positions: dict[int, list[int]] = field(default_factory=dict)  # index video position -> plan videos
    unindexed: list[int] = field(default_factory=list)  # plan videos the index does not hold (scored exactly)
    clips: int = 0  # clips of the selected videos (the cost rule's archive size)
    window_ranges: list[tuple[int, int]] | None = field(default=None, repr=False)  # per plan video, its windows
    _bounds: dict[int, tuple["np.ndarray", "np.ndarray"]] = field(default_factory=dict, repr=False)

    def window_bounds(self, plan: SearchPlan, v: int, ranges: list[tuple[int, int]]) -> tuple["np.ndarray", "np.ndarray"]:
        """(start clips, end clips) of video ``v``'s windows, computed once per search."""
        import numpy as np

        if v not in self._bounds:
            windows = [plan.windows[w][1] for w in range(*ranges[v])]
            self._bounds[v] = (np.array([x.start_clip for x in windows]), np.array([x.end_clip for x in windows]))
        return self._bounds[v]

    def record(self) -> dict[str, Any]:
        """What ``run.json`` records under ``settings.coarse``."""
        data: dict[str, Any] = {"path": self.path, "reason": self.reason}
        if self.index is not None:
            data.update(factory=self.index.spec.factory, nprobe=self.nprobe, clips_per_query=self.clips_per_query,
                        generation=self.index.generation, index_vectors=self.index.vectors,
                        unindexed_videos=len(self.unindexed), rescored="exact fp16 embeddings",
                        matmul_from_queries=matmul_from_queries(self.clips))
        return data


# An index must hold at least this share of the selected clips to be used (a narrow --video filter
# would leave few of the index's hits inside the selection).
MIN_INDEXED_SHARE = 0.5
# The coarse stage's cost rule, in seconds, fitted to `archive_index.py batch` on the 2-core VM, idle
# (benchmarks/RESULTS-archive.md, 2026-12-06): the exact scan reads every selected embedding once per batch
# of queries (SCAN_S_PER_CLIP: 1.45 s at 1.8 M clips) and multiplies each query with them
# (SCAN_S_PER_CLIP_QUERY: 16.8 ms per query at 1.8 M clips); the index, INDEX_QUERIES_PER_PASS queries per
# pass so that the windows it re-scores exactly stay few (one pass over 1,000 queries gathered 21 GB at
# 1,000 video-hours), costs INDEX_S_PER_QUERY plus the inverted lists it probes, which grow with the archive
# (INDEX_S_PER_CLIP_QUERY: nprobe is a fixed share of nlist; 32.6 ms per query at 1.8 M clips, 110 ms at
# 18 M). Hence the scan wins from ~90 queries per batch at 1,000 video-hours, from ~7 at 100, and never
# at 10,000, where the index's cost per query is below the scan's.
SCAN_S_PER_CLIP = 0.8e-6
SCAN_S_PER_CLIP_QUERY = 9.3e-9
INDEX_S_PER_QUERY = 0.024
INDEX_S_PER_CLIP_QUERY = 4.8e-9
INDEX_QUERIES_PER_PASS = 16


def matmul_from_queries(clips: int) -> int | None:
    """The batch size from which one exact scan over ``clips`` clips is cheaper than the index; None: never.

    At least 2: whether the index serves single queries at all is the index's ``min_clips`` rule
    (``coarse_stage_for``); this rule only says when a batch shares one scan more cheaply.
    """
    gap = INDEX_S_PER_QUERY + clips * (INDEX_S_PER_CLIP_QUERY - SCAN_S_PER_CLIP_QUERY)  # index - scan, per query
    if gap <= 0:
        return None
    return max(2, int(clips * SCAN_S_PER_CLIP / gap) + 1)
MIN_HITS = 256


def choose_coarse_stage(plan: SearchPlan, index: Any, *, candidates: int, exact: bool = False,
                        nprobe: int | None = None) -> CoarseStage:
    """Exact scan or approximate index for this plan, by the measured cost rule (``coarse_stage_for``).

    The index is asked for ``max(MIN_HITS, hits_per_candidate * candidates)`` clips per query, the
    hits per candidate its codes need (``IndexSpec.hits_per_candidate``).
    """
    per = index.spec.hits_per_candidate if index is not None else 0
    return coarse_stage_for([video.features for video in plan.videos], index,
                            clips_per_query=max(MIN_HITS, per * candidates), exact=exact, nprobe=nprobe)


def coarse_stage_for(features: list[Any], index: Any, *, clips_per_query: int, exact: bool = False,
                     nprobe: int | None = None) -> CoarseStage:
    """Exact scan or approximate index for the selected videos' ``features``, by the measured cost rule.

    The index is used when one exists for the features' settings, the selection holds at least the
    index's ``min_clips`` (below it a scan is faster, benchmarks/RESULTS-archive.md), and the index
    holds at least ``MIN_INDEXED_SHARE`` of the selected clips with the same feature files. Videos it
    does not hold (added or re-extracted since the last ``index``) are scored exactly. The stage's
    ``plan_positions`` and ``unindexed`` are positions in ``features``. Text search (windows) and
    picture search (``r2cli.inference.visual_index``) share this rule.
    """
    total = sum(f.num_clips for f in features)
    if exact:
        return CoarseStage("exact", "--exact")
    if index is None:
        return CoarseStage("exact", "no coarse index for these features (built by r2cli index above "
                                    "its --coarse-index-min-clips)")
    if total < index.min_clips:
        return CoarseStage("exact", f"{total} selected clips, fewer than the index's min_clips {index.min_clips}")
    known = index.videos()
    positions: dict[int, list[int]] = {}
    unindexed, indexed_clips = [], 0
    for v, stored in enumerate(features):
        entry = known.get(stored.fingerprint)
        if entry is not None and entry[1] == stored.metadata.get("checksum"):
            positions.setdefault(entry[0], []).append(v)
            indexed_clips += stored.num_clips
        else:
            unindexed.append(v)
    if indexed_clips < MIN_INDEXED_SHARE * total or indexed_clips < MIN_INDEXED_SHARE * index.vectors:
        return CoarseStage("exact", f"the index holds {indexed_clips} of the {total} selected clips "
                                    f"(and has {index.vectors}); a scan is surer")
    return CoarseStage("index", f"{total} selected clips, {indexed_clips} in the index", index=index,
                       nprobe=int(nprobe or index.spec.nprobe), clips_per_query=int(clips_per_query),
                       plan_positions=positions, unindexed=unindexed, clips=total)


def _window_ranges(plan: SearchPlan) -> list[tuple[int, int]]:
    """Per plan video, the range of its windows in ``plan.windows`` (windows are stored video by video)."""
    ranges: list[list[int]] = [[0, 0] for _ in plan.videos]
    seen: set[int] = set()
    for w, (v, _) in enumerate(plan.windows):
        if v not in seen:
            seen.add(v)
            ranges[v][0] = w
        ranges[v][1] = w + 1
    return [(a, b) for a, b in ranges]


RESCORED_PER_CANDIDATE = 4  # windows re-scored exactly per candidate window kept


def _exact_hits(plan: SearchPlan, stage: CoarseStage, query: "np.ndarray", positions: "np.ndarray",
                clips: "np.ndarray", max_videos: int) -> list[tuple[int, int]]:
    """(plan video, clip) of one query's index hits, best exact score first.

    Compact codes order near-tied clips badly, so the windows are picked in the order of the exact
    scores, not of the approximate ones (benchmarks/RESULTS-archive.md). Only the hits of the first
    ``max_videos`` videos the hits reach (in the index's order) are read, one gather per video: no more
    videos can give windows than windows are kept, and reading costs per video. Hits in videos the plan
    does not hold (deleted, unselected) are dropped. A non-finite embedding ranks last here; its window
    is found and skipped where it is re-scored.
    """
    import numpy as np

    by_video: dict[int, list[int]] = {}
    for position, clip in zip(positions.tolist(), clips.tolist()):
        if position < 0:
            continue
        for v in stage.plan_positions.get(position, ()):  # deleted or unselected videos have none
            if v in by_video or len(by_video) < max_videos:
                by_video.setdefault(v, []).append(clip)
    if not by_video:
        return []
    hits, scores = [], []
    query32 = np.asarray(query, dtype=np.float32)
    for v, rows in by_video.items():
        rows_array = np.array(rows, dtype=np.int64)
        embed = np.asarray(plan.videos[v].features.embed[rows_array], dtype=np.float32)  # [hits, D]
        scores.append(embed @ query32)
        hits.extend((v, clip) for clip in rows)
    exact = np.nan_to_num(np.concatenate(scores), nan=-np.inf, posinf=-np.inf, neginf=-np.inf)
    return [hits[i] for i in np.argsort(-exact, kind="stable").tolist()]


def indexed_window_scores(plan: SearchPlan, query_embed: "np.ndarray", stage: CoarseStage, *,
                          candidates: int | None = None) -> tuple["np.ndarray", "np.ndarray"]:
    """(window indices, exact scores [windows, queries]) of the windows the index's hits fall in.

    The index proposes ``clips_per_query`` clips per query; they are re-scored exactly from the stored
    fp16 embeddings (``_exact_hits``) and, best first, the first ``RESCORED_PER_CANDIDATE * candidates``
    distinct windows holding one of them (and every window of an unindexed video) are re-scored exactly,
    so quantisation changes which windows are looked at, never their scores or the order the hits pick
    them in. Re-scored windows holding a non-finite embedding are recorded in ``plan.bad_windows`` (only
    these are read).
    """
    import numpy as np

    _, positions, clips = stage.index.search(query_embed, stage.clips_per_query, stage.nprobe)
    if stage.window_ranges is None:
        stage.window_ranges = _window_ranges(plan)
    ranges = stage.window_ranges
    per = stage.index.spec.hits_per_candidate
    limit = RESCORED_PER_CANDIDATE * (candidates or max(1, stage.clips_per_query // per))
    wanted: set[int] = set()
    for v in stage.unindexed:
        wanted.update(range(*ranges[v]))
    for q in range(positions.shape[0]):
        found: set[int] = set()
        for v, clip in _exact_hits(plan, stage, query_embed[q], positions[q], clips[q], max_videos=limit):
            starts, ends = stage.window_bounds(plan, v, ranges)
            first = int(np.searchsorted(ends, clip, side="right"))
            last = int(np.searchsorted(starts, clip, side="right"))
            found.update(ranges[v][0] + i for i in range(first, last))
            if len(found) >= limit:
                break
        wanted |= found
    chosen = np.array(sorted(wanted), dtype=np.int64)
    if not len(chosen):
        return chosen, np.zeros((0, query_embed.shape[0]), dtype=np.float32)
    parts, sizes = [], []
    for w in chosen.tolist():  # only the chosen windows' own clips are read (a window is ~75 clips)
        v, window = plan.windows[w]
        parts.append(plan.videos[v].features.embed[window.start_clip : window.end_clip])
        sizes.append(window.end_clip - window.start_clip)
    embed = np.concatenate(parts).astype(np.float32)  # [clips of the chosen windows, D]
    sims = embed @ query_embed.T  # [clips, Q]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    scores = np.maximum.reduceat(sims, starts, axis=0)  # [windows, Q]
    finite_windows = np.logical_and.reduceat(np.isfinite(embed).all(axis=1), starts)  # [windows]
    for w in chosen[~finite_windows].tolist():
        plan.bad_windows[int(w)] = NON_FINITE_EMBEDDINGS
    return chosen, scores.astype(np.float32)


def select_candidates(plan: SearchPlan, query_embed: "np.ndarray", candidates: int, *,
                      whole_videos: bool = False, coarse: CoarseStage | None = None) -> list[tuple[int, int]]:
    """The (window, query) pairs the fine stage grounds: each query's ``candidates`` best usable windows.

    Skipped windows never compete. ``whole_videos`` extends each pair to every usable window of
    its video (the official submission format needs whole videos). With ``coarse`` on the index
    path only the windows its hits fall in compete (re-scored exactly).
    """
    import numpy as np

    scan_from = matmul_from_queries(coarse.clips) if coarse is not None else None
    if coarse is not None and coarse.path == "index" and (scan_from is None or query_embed.shape[0] < scan_from):
        pairs = []
        for first in range(0, query_embed.shape[0], INDEX_QUERIES_PER_PASS):
            chunk = query_embed[first : first + INDEX_QUERIES_PER_PASS]
            looked_at, scores = indexed_window_scores(plan, chunk, coarse, candidates=candidates)
            pairs.extend((w, first + q) for w, q in _usable_candidates(plan, looked_at, scores, candidates))
        if query_embed.shape[0] > INDEX_QUERIES_PER_PASS:
            pairs.sort(key=lambda pair: (pair[1], pair[0]))
    else:
        looked_at = np.arange(len(plan.windows))
        scores = coarse_scores(plan.videos, query_embed, plan.bad_windows)
        pairs = _usable_candidates(plan, looked_at, scores, candidates)
    if whole_videos:
        index = np.flatnonzero([w not in plan.bad_windows for w in range(len(plan.windows))])
        by_video: dict[int, list[int]] = {}
        for w in index:
            by_video.setdefault(plan.windows[w][0], []).append(int(w))
        wanted = {(plan.windows[w][0], q) for w, q in pairs}
        pairs = sorted({(w, q) for v, q in wanted for w in by_video[v]})
    return pairs


def _usable_candidates(plan: SearchPlan, looked_at: "np.ndarray", scores: "np.ndarray",
                       candidates: int) -> list[tuple[int, int]]:
    """(window, query) pairs among the windows ``looked_at`` (scored ``scores``), skipped windows left out."""
    import numpy as np

    usable = np.array([int(w) not in plan.bad_windows for w in looked_at], dtype=bool)
    keep = np.flatnonzero(usable)
    index = looked_at[keep]
    return [(int(index[w]), q) for w, q in choose_candidates(scores[keep], candidates)]


# ----------------------------------------------------------------------------------------------
# 3. grounding


def check_layers(plan: SearchPlan, windows: set[int]) -> list[int]:
    """Check the layer features of ``windows`` not checked yet; returns the newly found bad windows."""
    import numpy as np

    found = []
    for w in sorted(windows - plan.checked_layers):
        plan.checked_layers.add(w)
        if w in plan.bad_windows:
            continue
        v, window = plan.windows[w]
        layers = plan.videos[v].features.layers[window.start_clip : window.end_clip]
        if not np.isfinite(np.asarray(layers)).all():
            plan.bad_windows[w] = "non-finite layer features"
            found.append(w)
    return found


def ground_windows(grounder: Any, plan: SearchPlan, query_layers: list[Any], pairs: list[tuple[int, int]], *,
                   reporter: Reporter = NULL_REPORTER, stage: str = "grounding") -> tuple[dict, list[tuple[int, int]]]:
    """Ground every usable pair with R2-Tuning; returns (outputs by pair, the pairs grounded).

    Pairs whose window has non-finite features are left out (``plan.bad_windows`` says which).
    """
    check_layers(plan, {w for w, _ in pairs})
    kept = [(w, q) for w, q in pairs if w not in plan.bad_windows]
    features = _WindowFeatures(plan)
    outputs = grounder.run(features, query_layers, kept, fps=plan.fps, reporter=reporter, stage=stage)
    return outputs, kept


class _WindowFeatures:
    """The layer features of every window, sliced lazily from the memory maps (a list for ``Grounder.run``)."""

    def __init__(self, plan: SearchPlan) -> None:
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan.windows)

    def __getitem__(self, w: int) -> Any:
        v, window = self.plan.windows[w]
        return self.plan.videos[v].features.layers[window.start_clip : window.end_clip]


# ----------------------------------------------------------------------------------------------
# 4. merge and rank


@dataclass
class Merged:
    """Moments and saliency of every (query, video) group of a batch."""

    keys: list[tuple[int, int]]  # (query index in the batch, video index), sorted
    moments: list["np.ndarray"]  # per key: [n, 3] (start s, end s, score) on the video's timeline, best first
    saliency: dict[tuple[int, int], "np.ndarray"]  # per key: per-clip saliency of the video (NaN: not covered)


def merge_moments(plan: SearchPlan, pairs: list[tuple[int, int]], outputs: dict, *, has_boundaries: bool = True) -> Merged:
    """Merge each (query, video) group's window moments (one NMS across windows) and saliency."""
    import numpy as np

    from r2cli.inference.windows import merge_many, merge_window_saliency

    groups: dict[tuple[int, int], list[int]] = {}
    for w, q in pairs:
        groups.setdefault((q, plan.windows[w][0]), []).append(w)
    keys = sorted(groups)
    if has_boundaries:
        moments = merge_many(
            [[(plan.windows[w][1], outputs[(w, q)].boundaries) for w in groups[(q, v)]] for q, v in keys],
            fps=plan.fps, durations=[plan.videos[v].duration for _, v in keys], post=plan.post,
        )
    else:
        moments = [np.zeros((0, 3)) for _ in keys]
    saliency = {
        (q, v): merge_window_saliency([(plan.windows[w][1], outputs[(w, q)].saliency) for w in groups[(q, v)]],
                                      plan.videos[v].features.num_clips)
        for q, v in keys
    }
    return Merged(keys=keys, moments=moments, saliency=saliency)


def playable_moments(rows: "np.ndarray", duration: float) -> tuple["np.ndarray", int]:
    """The ``[start, end, score]`` rows a player can play: ends clamped to the video's ``duration``
    (the official rounding can put an end past it: 10.0 s in a 9.934 s video), rows left with no
    length dropped (the official rounding gives 0-0 moments). Returns (rows, how many were dropped).

    The official submission keeps the official numbers; this is for the Parquet results and what
    is built on them (the table, the report, ``cut``), #22.3.
    """
    import numpy as np

    rows = np.array(rows, dtype=np.float64).reshape(-1, 3)
    if duration > 0 and len(rows):
        rows[:, 0] = np.minimum(rows[:, 0], duration)
        rows[:, 1] = np.minimum(rows[:, 1], duration)
    keep = rows[:, 1] - rows[:, 0] > 1e-6
    return rows[keep], int((~keep).sum())


def rank_moments(merged: Merged, plan: SearchPlan, queries: list["Query"], *, run_id: str, top_k: int,
                 min_score: float | None, model_id: str, preset: str,
                 dropped: list[int] | None = None) -> "pd.DataFrame":
    """All playable moments of a batch (see ``playable_moments``), ranked within each video and across
    videos, cut to ``top_k`` per query. ``dropped``, when given, gets the number of moments dropped
    for having no length appended."""
    import numpy as np
    import pandas as pd

    parts = []
    unplayable = 0
    for (q, v), rows in zip(merged.keys, merged.moments):
        rows, lost = playable_moments(rows, plan.videos[v].duration)
        unplayable += lost
        if min_score is not None and len(rows):
            rows = rows[rows[:, 2] >= min_score]
        if not len(rows):
            continue
        video = plan.videos[v]
        parts.append(pd.DataFrame({
            "query_index": q, "video_index": v, "start_s": rows[:, 0], "end_s": rows[:, 1], "score": rows[:, 2],
            "rank_in_video": np.arange(1, len(rows) + 1, dtype=np.int32), "video_id": video.record.id,
            "path": video.record.path,
        }))
    if dropped is not None:
        dropped.append(unplayable)
    if not parts:
        return empty_moments()
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values(
        ["query_index", "score", "video_index", "start_s"], ascending=[True, False, True, True], kind="stable"
    )
    frame["rank_in_query"] = frame.groupby("query_index").cumcount().astype(np.int32) + 1
    frame = frame[frame["rank_in_query"] <= top_k].copy()
    frame["run_id"] = run_id
    frame["query_id"] = [queries[i].qid for i in frame["query_index"]]
    frame["query"] = [queries[i].text for i in frame["query_index"]]
    frame["model"] = model_id
    frame["preset"] = preset
    frame["query_kind"] = "text"  # sentences; image and clip queries are app/search_visual.py's
    frame["video_id"] = frame["video_id"].astype("Int64")
    return frame[MOMENT_COLUMNS].reset_index(drop=True)


def _dtype(name: str) -> str:
    return {"video_id": "Int64", "start_s": "float64", "end_s": "float64", "score": "float64",
            "rank_in_query": "int32", "rank_in_video": "int32"}.get(name, "object")


def empty_moments() -> "pd.DataFrame":
    """A moments frame without rows."""
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dtype=_dtype(name)) for name in MOMENT_COLUMNS})


def saliency_frame(merged: Merged, plan: SearchPlan, queries: list["Query"], run_id: str) -> "pd.DataFrame":
    """Per-clip saliency of every (query, video) group of a batch (clips no window covered left out)."""
    import numpy as np
    import pandas as pd

    parts = []
    fps = plan.fps
    for q, v in merged.keys:
        scores = merged.saliency[(q, v)]
        covered = np.flatnonzero(~np.isnan(scores))
        if not len(covered):
            continue
        video = plan.videos[v]
        parts.append(pd.DataFrame({
            "run_id": run_id, "query_id": queries[q].qid, "video_id": video.record.id, "path": video.record.path,
            "clip_index": covered.astype(np.int32), "clip_start_s": covered / fps,
            "clip_end_s": np.minimum((covered + 1) / fps, max(video.duration, covered[-1] / fps)),
            "score": scores[covered].astype(np.float32),
        }))
    if not parts:
        return pd.DataFrame({
            "run_id": pd.Series(dtype="object"), "query_id": pd.Series(dtype="object"),
            "video_id": pd.Series(dtype="Int64"), "path": pd.Series(dtype="object"),
            "clip_index": pd.Series(dtype="int32"), "clip_start_s": pd.Series(dtype="float64"),
            "clip_end_s": pd.Series(dtype="float64"), "score": pd.Series(dtype="float32"),
        })
    frame = pd.concat(parts, ignore_index=True)
    frame["video_id"] = frame["video_id"].astype("Int64")
    return frame


# ----------------------------------------------------------------------------------------------
# One batch of queries through stages 2-4


@dataclass
class BatchResult:
    """What one batch of queries produced."""

    queries: list["Query"]
    moments: "pd.DataFrame"  # ranked, top_k per query
    merged: Merged
    pairs: int  # (window, query) pairs grounded
    candidate_windows: set[int]  # windows grounded for at least one query
    truncated: list[bool]  # per query: longer than CLIP's context
    new_bad_windows: list[int]  # windows found damaged in this batch
    unplayable: int = 0  # moments dropped for having no length once clamped to the video (#22.3)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: queries_s, coarse_s, fine_s, merge_s


def search_batch(plan: SearchPlan, tower: Any, grounder: Any, queries: list["Query"], *, k: int, candidates: int,
                 top_k: int, min_score: float | None, run_id: str, model_id: str, preset: str,
                 whole_videos: bool = False, reporter: Reporter = NULL_REPORTER,
                 coarse: CoarseStage | None = None) -> BatchResult:
    """Stages 2-4 for one batch of queries: candidates, grounding, merge and rank."""
    import time

    import numpy as np

    ticks = [time.perf_counter()]
    query_layers, query_embed, truncated = tower.query_features([q.text for q in queries], k=k)
    query_embed_np = query_embed.detach().cpu().numpy().astype(np.float32)
    ticks.append(time.perf_counter())
    before = set(plan.bad_windows)  # stage 2 finds damaged embeddings, stage 3 damaged layers
    pairs = select_candidates(plan, query_embed_np, candidates, whole_videos=whole_videos, coarse=coarse)
    ticks.append(time.perf_counter())
    outputs, kept = ground_windows(grounder, plan, query_layers, pairs, reporter=reporter)
    ticks.append(time.perf_counter())
    merged = merge_moments(plan, kept, outputs, has_boundaries=grounder.has_boundaries)
    dropped: list[int] = []
    moments = rank_moments(merged, plan, queries, run_id=run_id, top_k=top_k, min_score=min_score,
                           model_id=model_id, preset=preset, dropped=dropped)
    ticks.append(time.perf_counter())
    timings = {name: ticks[i + 1] - ticks[i] for i, name in enumerate(("queries_s", "coarse_s", "fine_s", "merge_s"))}
    return BatchResult(timings=timings, 
        queries=queries, moments=moments, merged=merged, pairs=len(kept),
        candidate_windows={w for w, _ in kept}, truncated=list(truncated),
        new_bad_windows=[w for w in plan.bad_windows if w not in before], unplayable=sum(dropped),
    )


# ----------------------------------------------------------------------------------------------
# Outputs


class SearchWriter:
    """Appends each batch's outputs to the staged files of a run folder (see ``RunFolder``).

    ``moments.parquet`` and ``saliency.parquet`` get one row group per batch; with ``official``
    the official submission JSON Lines get one line per (query, video).
    """

    def __init__(self, folder: Any, *, run_id: str, metadata: dict[str, str], saliency: bool, official: bool,
                 has_boundaries: bool) -> None:
        from r2cli.outputs.io import TableWriter

        self.folder = folder
        self.run_id = run_id
        self.has_boundaries = has_boundaries
        self.moments = TableWriter("moments", folder.stage(MOMENTS_FILE), metadata=metadata)
        self.saliency = TableWriter("saliency", folder.stage(SALIENCY_FILE), metadata=metadata) if saliency else None
        self._official_path = folder.stage(OFFICIAL_FILE) if official else None
        self._official = None

    def write(self, batch: BatchResult, plan: SearchPlan) -> None:
        """Append one batch.

        Raises:
            InputError: a file cannot be written (a full disk), naming it.
        """
        self.moments.write(batch.moments)
        if self.saliency is not None:
            self.saliency.write(saliency_frame(batch.merged, plan, batch.queries, self.run_id))
        if self._official_path is not None:
            self._write_official(batch, plan)

    def _write_official(self, batch: BatchResult, plan: SearchPlan) -> None:
        from r2cli.eval.formats import MomentPrediction, SaliencyPrediction

        merged, queries = batch.merged, batch.queries
        lines = []
        for (q, v), rows in zip(merged.keys, merged.moments):
            vid = Path(plan.videos[v].record.path).stem
            scores = [round(float(x), 4) for x in merged.saliency[(q, v)]]
            if self.has_boundaries:
                qid = queries[q].qid
                item = MomentPrediction(qid=int(qid) if qid.isdigit() else qid, query=queries[q].text, vid=vid,
                                        windows=[[round(float(x), 4) for x in row] for row in rows], saliency=scores)
            else:
                item = SaliencyPrediction(vid=vid, query=queries[q].text, scores=scores)
            lines.append(json.dumps(item.to_official(), ensure_ascii=False, allow_nan=False))
        try:
            if self._official is None:
                self._official = open(self._official_path, "w", encoding="utf-8", newline="\n")
            self._official.write("".join(line + "\n" for line in lines))
        except ValueError as exc:
            raise InputError(f"{OFFICIAL_FILE}: predictions must hold finite numbers ({exc})") from None
        except OSError as exc:
            raise InputError(f"cannot write {self._official_path}: {exc.strerror or exc}") from None

    def close(self) -> list[str]:
        """Finish every file; returns the names of the files written."""
        names = []
        self.moments.close()
        names.append(MOMENTS_FILE)
        if self.saliency is not None:
            self.saliency.close()
            names.append(SALIENCY_FILE)
        if self._official_path is not None:
            try:
                if self._official is None:
                    self._official = open(self._official_path, "w", encoding="utf-8")
                self._official.close()
            except OSError as exc:
                raise InputError(f"cannot write {self._official_path}: {exc.strerror or exc}") from None
            names.append(OFFICIAL_FILE)
        return names

    def abort(self) -> None:
        """Close open handles after a failure (the run folder discards the staged files)."""
        self.moments.abort()
        if self.saliency is not None:
            self.saliency.abort()
        if self._official is not None:
            try:
                self._official.close()
            except OSError:  # a full disk: the buffered lines are thrown away with the file
                pass
