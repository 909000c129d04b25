"""``r2cli search``: a sentence in, the best moments of the whole archive out.

Two stages over the features the index stored:

1. coarse: every video is cut into windows (the whole video when it is short; overlapping
   windows of ``window_s`` every ``stride_s`` otherwise) and each window is scored for each query
   by the cosine between the query's CLIP text embedding and the clips' CLIP image embeddings
   (max over the window's clips). Each query keeps its ``candidates`` best windows.
2. fine: R2-Tuning grounds every (candidate window, query) pair, batched, with each window's
   query-independent side computed once (``r2cli.inference.grounding``). Window moments are
   mapped back to the video, post-processed as the preset says (clamp, unit rounding, NMS; see
   ``r2cli.inference.windows``) and ranked across videos by score.

Outputs go to a run folder (``moments.parquet``, ``saliency.parquet``, ``run.json``, and with
``format="official"`` the official submission JSON Lines); the run is recorded in the catalog.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.errors import FeatureError, InputError, UsageError
from r2cli.inference.queries import Query, queries_from_texts
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

    from r2cli.paths import Workspace

DEFAULT_WINDOW_S = 150.0  # QVHighlights training videos are 150 s (75 clips at 0.5 fps); see README "windowing"
DEFAULT_STRIDE_S = 75.0  # half a window: any moment up to 75 s lies whole inside some window
# Windows per query the fine stage grounds by default (all of them when the archive has fewer). Measured
# (benchmarks/RESULTS-search.md): a window's video side costs ~0.5 s on the 2-core CPU and ~0.1 ms on an
# H100, so these keep one query over 100 video-hours under 30 s on the CPU.
DEFAULT_CANDIDATES = {"cpu": 40, "cuda": 2000}


def default_candidates(device: str) -> int:
    """Windows per query kept by the coarse stage when ``--candidates`` is not given."""
    return DEFAULT_CANDIDATES["cuda" if str(device).startswith("cuda") else "cpu"]
DEFAULT_TOP_K = 10  # moments per query written to moments.parquet
DEFAULT_PRESET = "qvhighlights"
FORMATS = ("parquet", "official")
MOMENTS_FILE = "moments.parquet"
SALIENCY_FILE = "saliency.parquet"
OFFICIAL_FILE = "predictions_official.jsonl"


@dataclass(frozen=True)
class SearchOptions:
    """Everything that shapes a search besides the queries. Defaults are the CLI's defaults."""

    videos: tuple[str, ...] = ()  # restrict to videos whose id, path or file name matches one of these globs
    min_duration: float | None = None  # catalog filter: skip videos shorter than this (s)
    max_duration: float | None = None  # catalog filter: skip videos longer than this (s)
    path_contains: str | None = None  # catalog filter: only videos whose path contains this text
    candidates: int | None = None  # windows per query kept by the coarse stage (None: 40 on a CPU, 2000 on a GPU)
    top_k: int = DEFAULT_TOP_K  # moments per query in moments.parquet (ranked across videos)
    min_score: float | None = None  # drop moments scoring below this
    preset: str | None = None  # dataset preset (fps, unit, NMS); None: the checkpoint's, else qvhighlights
    checkpoint: str | None = None  # head checkpoint (file or registry name); None: $R2CLI_CHECKPOINT or the registry default
    clip_weights: str | None = None  # CLIP weights (file or tag); None: $R2CLI_CLIP_WEIGHTS or ViT-B-32/openai
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    window_s: float = DEFAULT_WINDOW_S  # window length for long videos (s)
    stride_s: float = DEFAULT_STRIDE_S  # distance between window starts (s)
    out: Path | None = None  # run folder; None: <workspace>/runs/<run id>
    format: str = "parquet"  # "parquet", or "official": also the official submission JSON Lines
    batch_size: int | None = None  # (window, query) pairs per forward pass (None: 32 on CPU, 1024 on GPU)
    chunk_windows: int | None = None  # windows whose video side is computed at once (None: 8 CPU, 128 GPU)
    precision: str = "fp32"  # "fp32" (official), or "bf16"/"fp16" autocast on a GPU
    save_saliency: bool = True  # write saliency.parquet
    resume: bool = False  # with ``out``: return the finished run there when its settings are the same

    def validate(self) -> None:
        """Check every rule; messages name the CLI flag.

        Raises:
            UsageError: a value breaks its rule.
        """
        if self.candidates is not None and (isinstance(self.candidates, bool) or self.candidates < 1):
            raise UsageError(f"--candidates must be an integer >= 1, got {self.candidates}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise UsageError(f"--top-k must be an integer >= 1, got {self.top_k}")
        if self.window_s is None or not self.window_s > 0:
            raise UsageError(f"--window must be > 0 seconds, got {self.window_s}")
        if self.stride_s is None or not self.stride_s > 0:
            raise UsageError(f"--stride must be > 0 seconds, got {self.stride_s}")
        if self.stride_s > self.window_s:
            raise UsageError(f"--stride ({self.stride_s:g} s) must not exceed --window ({self.window_s:g} s)")
        if self.format not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.min_duration is not None and self.max_duration is not None and self.min_duration > self.max_duration:
            raise UsageError(f"--min-duration ({self.min_duration:g}) must not exceed --max-duration ({self.max_duration:g})")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"--precision must be fp32, bf16 or fp16, got {self.precision!r}")


@dataclass(frozen=True)
class SkippedVideo:
    """A selected video the search could not use."""

    video_id: int | None  # catalog id
    path: str  # absolute path
    reason: str  # why, for people ("no features for ViT-B-32/openai at 0.5 fps; run r2cli index")


@dataclass
class SearchResult:
    """What ``search`` did and where its outputs are."""

    run_id: str  # the run's id (folder name under runs/ unless ``out`` was given)
    out_dir: Path  # the run folder
    moments: "pd.DataFrame"  # the rows of moments.parquet (top ``top_k`` per query, ranked across videos)
    counts: dict[str, int]  # queries, videos_selected, videos_searched, videos_skipped, windows, pairs, moments, ...
    timings: dict[str, float]  # seconds per stage: catalog, model, queries, coarse, fine, merge, write, total
    files: dict[str, Path]  # "moments", "saliency", "official", "manifest" -> path
    skipped: list[SkippedVideo] = field(default_factory=list)  # videos without usable features
    warnings: list[str] = field(default_factory=list)  # what the reporter was warned about
    model: dict[str, Any] = field(default_factory=dict)  # checkpoint, preset, CLIP weights and head widths
    resumed: bool = False  # True when a finished run with the same settings was returned as is


@dataclass
class _Video:
    record: Any  # catalog VideoRecord
    features: Any  # r2cli.features.store VideoFeatures
    duration: float  # seconds used to clamp moments
    windows: list = field(default_factory=list)  # r2cli.inference.windows.Window


# ----------------------------------------------------------------------------------------------
# Selection


def matches_video(record: Any, patterns: tuple[str, ...]) -> bool:
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


def select_videos(workspace: "Workspace", options: SearchOptions) -> list[Any]:
    """Catalog videos (status ``ok``) that pass ``--video`` and the catalog filters, in id order.

    Raises:
        CatalogError: there is no catalog (the message says to run ``r2cli index``).
        InputError: the archive is empty, or no video matches the filters.
    """
    from sqlalchemy import select

    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Video

    catalog = Catalog.open(workspace, create=False)
    try:
        with catalog.session() as session:
            total = session.query(Video).count()
            statement = select(Video).where(Video.status == "ok").order_by(Video.id)
            if options.min_duration is not None:
                statement = statement.where(Video.duration >= options.min_duration)
            if options.max_duration is not None:
                statement = statement.where(Video.duration <= options.max_duration)
            if options.path_contains:
                statement = statement.where(Video.path.contains(options.path_contains))
            records = [row.to_record() for row in session.scalars(statement)]
    finally:
        catalog.close()
    if total == 0:
        raise InputError(
            f"the archive is empty: the catalog {workspace.catalog_url} has no videos; index a folder first "
            "(r2cli index ./archive)"
        )
    selected = [r for r in records if matches_video(r, options.videos)]
    if not selected:
        what = []
        if options.videos:
            what.append("--video " + " ".join(options.videos))
        if options.min_duration is not None or options.max_duration is not None or options.path_contains:
            what.append("the catalog filters")
        rule = " and ".join(what) or "status ok"
        raise InputError(f"no video of the catalog ({total} rows) matches {rule}; see `r2cli catalog list`")
    return selected


# ----------------------------------------------------------------------------------------------
# Model


def load_models(options: SearchOptions, reporter: Reporter = NULL_REPORTER) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Load the CLIP tower (text side) and the head; return (tower, loaded head, preset, model info).

    Raises:
        MissingWeightsError: weights are neither local nor downloadable (one line, from the registry).
        CheckpointError: the checkpoint does not fit.
        UsageError: unknown preset or device.
    """
    from r2cli.features.clip import load_clip, resolve_device
    from r2cli.model import load_checkpoint, load_preset

    device = resolve_device(options.device)
    tower = load_clip(options.clip_weights, device=device, reporter=reporter)
    loaded = load_checkpoint(
        options.checkpoint, preset=options.preset, num_tokens=tower.num_tokens, video_width=tower.video_width
    )
    preset = loaded.preset or load_preset(options.preset or DEFAULT_PRESET)
    if loaded.clip and loaded.clip != tower.weights_id:
        reporter.warn(
            f"the checkpoint was trained with CLIP {loaded.clip} but the text tower is {tower.weights_id}; "
            "results will be poor unless the features match the checkpoint"
        )
    model = loaded.model.to(device).eval()
    config = loaded.config
    if config.query_width != tower.text_width:
        raise InputError(
            f"the checkpoint expects CLIP text width {config.query_width}, the CLIP weights give {tower.text_width}; "
            "pass the --clip-weights the checkpoint was trained with"
        )
    info = {
        "checkpoint": loaded.source,
        "checkpoint_id": _checkpoint_id(loaded.source),
        "preset": preset.name,
        "clip_weights": tower.weights_id,
        "clip_model": tower.model_name,
        "dims": config.dims,
        "k": config.k,
        "video_width": config.video_width,
        "query_width": config.query_width,
        "num_tokens": config.num_tokens,
        "device": device,
    }
    return tower, model, preset, info


def _checkpoint_id(source: str) -> str:
    """Registry file name or ``sha256:<16 hex>`` of the checkpoint file."""
    import hashlib

    path = Path(source.rsplit(" (", 1)[0])
    if not path.is_file():
        return source
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{path.name} sha256:{digest.hexdigest()[:16]}"


# ----------------------------------------------------------------------------------------------
# Features


def feature_settings(tower: Any, fps: float, k: int) -> Any:
    """The feature-store settings ``r2cli index`` uses by default for ``tower`` at ``fps`` with ``k`` layers."""
    from r2cli.features.store import FeatureSettings

    return FeatureSettings.for_tower(tower, fps=fps, k=k)


def _compatible_sets(workspace: "Workspace", fingerprints: list[str], settings: Any) -> dict[str, list[Any]]:
    """Catalog feature sets of ``fingerprints`` made with the same CLIP weights and fps and at least k layers.

    Features indexed with non-default options (another frame rule, bf16 CLIP) are still usable;
    they are found through the catalog rather than by the default settings key.
    """
    from sqlalchemy import select

    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import FeatureSet

    found: dict[str, list[Any]] = {}
    if not fingerprints:
        return found
    catalog = Catalog.open(workspace, create=False)
    try:
        with catalog.session() as session:
            for start in range(0, len(fingerprints), 500):
                chunk = fingerprints[start : start + 500]
                for row in session.scalars(select(FeatureSet).where(FeatureSet.fingerprint.in_(chunk))):
                    data = row.settings or {}
                    if (
                        data.get("weights_id") == settings.weights_id
                        and data.get("clip_model") == settings.clip_model
                        and abs(float(data.get("fps", -1)) - settings.fps) < 1e-9
                        and int(data.get("k", 0)) >= settings.k
                    ):
                        found.setdefault(row.fingerprint, []).append(row.relpath)
    finally:
        catalog.close()
    return found


def open_features(
    workspace: "Workspace", records: list[Any], settings: Any, reporter: Reporter = NULL_REPORTER
) -> tuple[list[tuple[Any, Any]], list[SkippedVideo]]:
    """Memory-map the stored features of each video; videos without them are skipped, with the reason.

    The default settings key is tried first, then any compatible feature set the catalog records.
    Returns ([(record, VideoFeatures)], [SkippedVideo]).
    """
    from r2cli.features.store import FeatureStore

    store = FeatureStore(workspace.features_dir)
    found, skipped, missing = [], [], []
    for record in records:
        if not record.fingerprint:
            skipped.append(SkippedVideo(record.id, record.path, "not fingerprinted yet; run r2cli index"))
            continue
        try:
            features = store.get(record.fingerprint, settings)
        except FeatureError as exc:
            skipped.append(SkippedVideo(record.id, record.path, f"unreadable features ({exc})"))
            continue
        if features is None:
            missing.append(record)
        else:
            found.append((record, features))
    if missing:
        alternatives = _compatible_sets(workspace, sorted({r.fingerprint for r in missing}), settings)
        describe = f"CLIP {settings.weights_id} at {settings.fps:g} fps"
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
                "" if settings.fps == 0.5 else f" --fps {settings.fps:g}")
            if record.features_status == "error" and record.features_error:
                reason = f"feature extraction failed ({record.features_error})"
            skipped.append(SkippedVideo(record.id, record.path, reason))
    found.sort(key=lambda item: item[0].id)
    return found, skipped


# ----------------------------------------------------------------------------------------------
# Stages


def coarse_scores(videos: list[_Video], query_embed: "np.ndarray") -> "np.ndarray":
    """``[windows, queries]`` max cosine between each window's clip embeddings and each query embedding."""
    import numpy as np

    rows = []
    for video in videos:
        embed = np.asarray(video.features.embed, dtype=np.float32)  # [T, D]
        sims = embed @ query_embed.T  # [T, Q]
        for window in video.windows:
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


def _window_features(video: _Video, window: Any) -> Any:
    return video.features.layers[window.start_clip : window.end_clip]


def search(
    workspace: "Workspace",
    queries: list[Query] | list[str],
    *,
    options: SearchOptions | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> SearchResult:
    """Search the archive for every query and write the run's outputs.

    Args:
        workspace: from ``r2cli.paths.resolve_workspace``.
        queries: ``Query`` objects (``r2cli.inference.queries``) or plain sentences.
        options: ``SearchOptions`` (defaults when None).
        reporter: progress and warnings (truncated queries, skipped videos).

    Raises:
        UsageError: an option breaks its rule, or a query is empty.
        CatalogError: there is no catalog.
        InputError: the archive is empty, nothing matches ``--video``, or no selected video has features.
        MissingWeightsError: CLIP weights or the checkpoint are not available (after the catalog pass).
        CheckpointError: the checkpoint does not fit the CLIP weights.
    """
    import numpy as np

    from r2cli.inference import runs
    from r2cli.inference.grounding import Grounder
    from r2cli.inference.windows import PostProcess, merge_many, merge_window_saliency, plan_windows, window_sizes

    options = options or SearchOptions()
    options.validate()
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        reporter.warn(message)

    if queries and isinstance(queries[0], str):
        queries = queries_from_texts(list(queries))  # type: ignore[arg-type]
    queries = list(queries)  # type: ignore[assignment]
    if not queries:
        raise UsageError("give at least one query")
    for query in queries:
        if not query.text.strip():
            raise UsageError(f"query {query.qid} ({query.where}) is empty")
    started = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. catalog pass
    tick = time.perf_counter()
    records = select_videos(workspace, options)
    timings["catalog_s"] = time.perf_counter() - tick

    # 2. weights
    tick = time.perf_counter()
    tower, model, preset, model_info = load_models(options, reporter)
    timings["model_s"] = time.perf_counter() - tick
    fps = float(preset.data.fps) if preset.data.fps else 0.5
    unit = preset.data.unit
    nms = preset.data.nms
    post = PostProcess(
        unit=unit,
        nms_type=nms.type if nms is not None else None,
        nms_threshold=nms.threshold if nms is not None else 0.7,
        nms_sigma=nms.sigma if nms is not None else 0.5,
        max_moments=model.config.max_num_moment,
    )
    window_clips, stride_clips = window_sizes(options.window_s, options.stride_s, fps)

    # 3. features
    tick = time.perf_counter()
    settings = feature_settings(tower, fps, model.config.k)
    found, skipped = open_features(workspace, records, settings, reporter)
    if skipped:
        names = ", ".join(Path(s.path).name for s in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warn(f"{len(skipped)} of {len(records)} videos skipped (no usable features): {names}")
    if not found:
        first = skipped[0].reason if skipped else "no features"
        raise InputError(f"none of the {len(records)} selected videos can be searched ({first})")
    videos: list[_Video] = []
    for record, features in found:
        duration = float(record.duration) if record.duration else features.num_clips / fps
        video = _Video(record=record, features=features, duration=duration)
        video.windows = plan_windows(features.num_clips, window_clips, stride_clips)
        videos.append(video)
    timings["features_s"] = time.perf_counter() - tick

    settings_dict = _settings_record(options, preset.name, fps, window_clips, stride_clips)
    query_records = [{"qid": q.qid, "query": q.text, "source": q.where} for q in queries]
    key = runs.settings_key(
        {
            "settings": settings_dict,
            "queries": [(q["qid"], q["query"]) for q in query_records],
            "model": {k: v for k, v in model_info.items() if k != "device"},
            "features": [(v.record.id, v.record.fingerprint, v.features.num_clips) for v in videos],
        }
    )
    wanted_files = (MOMENTS_FILE,) + ((SALIENCY_FILE,) if options.save_saliency else ())
    if options.resume and options.out is not None:
        previous = runs.finished_run(Path(options.out), key, wanted_files)
        if previous is not None:
            return _resumed_result(Path(options.out), previous, skipped)

    run_id = runs.new_run_id()
    out_dir = Path(options.out) if options.out is not None else workspace.runs_dir / run_id
    runs.make_run_folder(out_dir)
    runs.record_run_start(
        workspace,
        run_id=run_id,
        kind="search",
        settings=settings_dict,
        queries=query_records,
        model=model_info,
        out_dir=out_dir,
        created_at=runs.utc_now(),
    )
    status = "failed"
    counts: dict[str, int] = {}
    try:
        # 4. queries
        tick = time.perf_counter()
        query_layers, query_embed, truncated = tower.query_features([q.text for q in queries], k=model.config.k)
        for query, cut in zip(queries, truncated):
            if cut:
                warn(f"query {query.qid} ({query.where}) is longer than CLIP's {tower.context_length} tokens; "
                     "it was truncated")
        query_embed_np = query_embed.detach().cpu().numpy().astype(np.float32)
        timings["queries_s"] = time.perf_counter() - tick

        # 5. coarse stage
        tick = time.perf_counter()
        reporter.begin("coarse", total=len(videos), unit="videos")
        window_list = [(video, window) for video in videos for window in video.windows]
        scores = coarse_scores(videos, query_embed_np)
        reporter.end("coarse")
        budget = options.candidates or default_candidates(model_info["device"])
        pairs = choose_candidates(scores, budget)
        if options.format == "official":
            pairs = _whole_videos(pairs, window_list)
        timings["coarse_s"] = time.perf_counter() - tick

        # 6. fine stage
        tick = time.perf_counter()
        grounder = Grounder(
            model,
            model_info["device"],
            batch_size=options.batch_size,
            chunk_windows=options.chunk_windows,
            precision=options.precision,
        )
        outputs = grounder.run(
            [_window_features(v, w) for v, w in window_list],
            query_layers,
            pairs,
            fps=fps,
            reporter=reporter,
            stage="grounding",
        )
        timings["fine_s"] = time.perf_counter() - tick

        # 7. merge windows, rank
        tick = time.perf_counter()
        groups: dict[tuple[int, int], list[int]] = {}  # (query, video index) -> window indices
        video_index = {id(v): i for i, v in enumerate(videos)}
        for w, q in pairs:
            groups.setdefault((q, video_index[id(window_list[w][0])]), []).append(w)
        keys = sorted(groups)
        merged = merge_many(
            [[(window_list[w][1], outputs[(w, q)].boundaries) for w in groups[(q, v)]] for q, v in keys],
            fps=fps,
            durations=[videos[v].duration for _, v in keys],
            post=post,
        ) if grounder.has_boundaries else [np.zeros((0, 3)) for _ in keys]
        saliency = {
            (q, v): merge_window_saliency(
                [(window_list[w][1], outputs[(w, q)].saliency) for w in groups[(q, v)]],
                videos[v].features.num_clips,
            )
            for q, v in keys
        }
        moments = _moments_frame(run_id, queries, videos, keys, merged, model_info, options)
        timings["merge_s"] = time.perf_counter() - tick

        # 8. write
        tick = time.perf_counter()
        files = _write_outputs(
            out_dir, run_id, queries, videos, keys, merged, saliency, moments, model_info, options, fps, grounder
        )
        timings["write_s"] = time.perf_counter() - tick
        timings["total_s"] = time.perf_counter() - started
        counts = {
            "queries": len(queries),
            "videos_selected": len(records),
            "videos_searched": len(videos),
            "videos_skipped": len(skipped),
            "windows": len(window_list),
            "candidate_windows": len({w for w, _ in pairs}),
            "pairs": len(pairs),
            "moments": int(len(moments)),
            "truncated_queries": int(sum(truncated)),
        }
        timings = {name: round(value, 4) for name, value in timings.items()}
        manifest = {
            "run_id": run_id,
            "kind": "search",
            "status": "done",
            "settings_key": key,
            "settings": settings_dict,
            "queries": query_records,
            "model": model_info,
            "counts": counts,
            "timings": timings,
            "skipped": [asdict(s) for s in skipped],
            "files": {name: path.name for name, path in files.items()},
        }
        files["manifest"] = runs.write_manifest(out_dir, manifest)
        status = "done"
    finally:
        runs.record_run_end(workspace, run_id=run_id, status=status, timings=timings, counts=counts)
    return SearchResult(
        run_id=run_id,
        out_dir=out_dir,
        moments=moments,
        counts=counts,
        timings=timings,
        files=files,
        skipped=skipped,
        warnings=warnings,
        model=model_info,
    )


def _settings_record(options: SearchOptions, preset: str, fps: float, window_clips: int, stride_clips: int) -> dict:
    return {
        "videos": list(options.videos),
        "min_duration": options.min_duration,
        "max_duration": options.max_duration,
        "path_contains": options.path_contains,
        "candidates": options.candidates,
        "top_k": options.top_k,
        "min_score": options.min_score,
        "preset": preset,
        "fps": fps,
        "window_s": options.window_s,
        "stride_s": options.stride_s,
        "window_clips": window_clips,
        "stride_clips": stride_clips,
        "format": options.format,
        "precision": options.precision,
        "save_saliency": options.save_saliency,
    }


def _whole_videos(pairs: list[tuple[int, int]], window_list: list[tuple[_Video, Any]]) -> list[tuple[int, int]]:
    """Extend each (window, query) pair to every window of the window's video (official files need whole videos)."""
    by_video: dict[int, list[int]] = {}
    for index, (video, _) in enumerate(window_list):
        by_video.setdefault(id(video), []).append(index)
    wanted = {(id(window_list[w][0]), q) for w, q in pairs}
    return sorted({(w, q) for vid, q in wanted for w in by_video[vid]})


def _moments_frame(run_id, queries, videos, keys, merged, model_info, options) -> "pd.DataFrame":
    """All moments of all pairs, ranked within video and across videos, cut to ``top_k`` per query."""
    import numpy as np
    import pandas as pd

    parts = []
    for (q, v), rows in zip(keys, merged):
        if not len(rows):
            continue
        if options.min_score is not None:
            rows = rows[rows[:, 2] >= options.min_score]
        if not len(rows):
            continue
        video = videos[v]
        parts.append(
            pd.DataFrame(
                {
                    "query_index": q,
                    "video_index": v,
                    "start_s": rows[:, 0],
                    "end_s": rows[:, 1],
                    "score": rows[:, 2],
                    "rank_in_video": np.arange(1, len(rows) + 1, dtype=np.int32),
                    "video_id": video.record.id,
                    "path": video.record.path,
                }
            )
        )
    columns = ["run_id", "query_id", "query", "video_id", "path", "start_s", "end_s", "score",
               "rank_in_query", "rank_in_video", "model", "preset"]
    if not parts:
        return pd.DataFrame({name: pd.Series(dtype=_dtype(name)) for name in columns})
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values(
        ["query_index", "score", "video_index", "start_s"], ascending=[True, False, True, True], kind="stable"
    )
    frame["rank_in_query"] = frame.groupby("query_index").cumcount().astype(np.int32) + 1
    frame = frame[frame["rank_in_query"] <= options.top_k].copy()
    frame["run_id"] = run_id
    frame["query_id"] = [queries[i].qid for i in frame["query_index"]]
    frame["query"] = [queries[i].text for i in frame["query_index"]]
    frame["model"] = model_info["checkpoint_id"]
    frame["preset"] = model_info["preset"]
    frame["video_id"] = frame["video_id"].astype("Int64")
    return frame[columns].reset_index(drop=True)


def _dtype(name: str) -> str:
    return {
        "video_id": "Int64", "start_s": "float64", "end_s": "float64", "score": "float64",
        "rank_in_query": "int32", "rank_in_video": "int32",
    }.get(name, "object")


def _saliency_frame(run_id, queries, videos, keys, saliency, fps) -> "pd.DataFrame":
    import numpy as np
    import pandas as pd

    parts = []
    for q, v in keys:
        scores = saliency[(q, v)]
        covered = np.flatnonzero(~np.isnan(scores))
        if not len(covered):
            continue
        video = videos[v]
        parts.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "query_id": queries[q].qid,
                    "video_id": video.record.id,
                    "path": video.record.path,
                    "clip_index": covered.astype(np.int32),
                    "clip_start_s": covered / fps,
                    "clip_end_s": np.minimum((covered + 1) / fps, max(video.duration, covered[-1] / fps)),
                    "score": scores[covered].astype(np.float32),
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {
                "run_id": pd.Series(dtype="object"), "query_id": pd.Series(dtype="object"),
                "video_id": pd.Series(dtype="Int64"), "path": pd.Series(dtype="object"),
                "clip_index": pd.Series(dtype="int32"), "clip_start_s": pd.Series(dtype="float64"),
                "clip_end_s": pd.Series(dtype="float64"), "score": pd.Series(dtype="float32"),
            }
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["video_id"] = frame["video_id"].astype("Int64")
    return frame


def _write_outputs(out_dir, run_id, queries, videos, keys, merged, saliency, moments, model_info, options, fps,
                   grounder) -> dict[str, Path]:
    from r2cli.outputs import write_table

    metadata = {"run_id": run_id, "preset": model_info["preset"], "model": model_info["checkpoint_id"]}
    files: dict[str, Path] = {}
    files["moments"] = write_table("moments", moments, out_dir / MOMENTS_FILE, metadata=metadata)
    if options.save_saliency:
        frame = _saliency_frame(run_id, queries, videos, keys, saliency, fps)
        files["saliency"] = write_table("saliency", frame, out_dir / SALIENCY_FILE, metadata=metadata)
    if options.format == "official":
        files["official"] = _write_official(out_dir / OFFICIAL_FILE, queries, videos, keys, merged, saliency,
                                            grounder.has_boundaries)
    return files


def _write_official(path: Path, queries, videos, keys, merged, saliency, has_boundaries: bool) -> Path:
    """One line per (query, video) in the official submission format (vid = file stem)."""
    from r2cli.eval.formats import MomentPrediction, SaliencyPrediction, write_moment_predictions, write_saliency_predictions

    if has_boundaries:
        predictions = [
            MomentPrediction(
                qid=_official_qid(queries[q].qid),
                query=queries[q].text,
                vid=Path(videos[v].record.path).stem,
                windows=[[round(float(x), 4) for x in row] for row in rows],
                saliency=[round(float(x), 4) for x in saliency[(q, v)]],
            )
            for (q, v), rows in zip(keys, merged)
        ]
        return write_moment_predictions(predictions, path)
    predictions = [
        SaliencyPrediction(vid=Path(videos[v].record.path).stem, query=queries[q].text,
                           scores=[round(float(x), 4) for x in saliency[(q, v)]])
        for q, v in keys
    ]
    return write_saliency_predictions(predictions, path)


def _official_qid(qid: str) -> int | str:
    return int(qid) if qid.isdigit() else qid


def _resumed_result(out_dir: Path, manifest: dict[str, Any], skipped: list[SkippedVideo]) -> SearchResult:
    from r2cli.outputs import read_results

    files = {name: out_dir / filename for name, filename in (manifest.get("files") or {}).items()}
    files["manifest"] = out_dir / "run.json"
    moments = read_results(out_dir / MOMENTS_FILE, kind="moments").df
    return SearchResult(
        run_id=str(manifest.get("run_id")),
        out_dir=out_dir,
        moments=moments,
        counts=dict(manifest.get("counts") or {}),
        timings=dict(manifest.get("timings") or {}),
        files=files,
        skipped=skipped,
        model=dict(manifest.get("model") or {}),
        resumed=True,
    )
