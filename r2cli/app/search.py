"""The ``search`` use case: sentences in, the best moments of the whole archive out.

``SearchOptions`` owns every default and rule of a search (the CLI's flags and the job file's
``[search]`` keys are its fields); ``run_search`` is the one library call both make. The stages
themselves (candidates, grounding, merge, outputs) are ``r2cli.inference.search``; this module
decides the settings (the checkpoint's preset decides fps, rounding, NMS and windows, see
``r2cli.inference.models.preset_defaults``), streams the queries through the stages in batches,
and publishes the run folder all-or-nothing with ``run.json`` last.
"""

from __future__ import annotations

import contextlib

import functools
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.options import MIN_SPAN_S, Options, device_rule, option, ray_address_rule
from r2cli.app.steps import JobContext, StepResult
from r2cli.inference.names import FEATURE_DTYPE_CHOICES
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from r2cli.inference.search import SkippedVideo
    from r2cli.paths import Workspace

FORMATS = ("parquet", "official")
PRECISIONS = ("fp32", "bf16", "fp16")
# Windows per query the fine stage grounds when --candidates is not given (all of them when the archive
# has fewer). Measured (benchmarks/RESULTS-search.md): a window's video side costs ~0.5 s on the 2-core
# CPU and ~0.1 ms on an H100, so these keep one query over 100 video-hours under 30 s on the CPU.
DEFAULT_CANDIDATES = {"cpu": 40, "cuda": 2000}
MAX_WINDOW_CLIPS = 1024  # the official point table stops at 1,024 clips


def default_candidates(device: str) -> int:
    """Windows per query kept by the coarse stage when ``candidates`` is not given."""
    return DEFAULT_CANDIDATES["cuda" if str(device).startswith("cuda") else "cpu"]


@dataclass(frozen=True)
class SearchOptions(Options):
    """Everything that shapes a search. ``None``: decided at run time (the preset, the device)."""

    section = "search"

    queries: tuple[str, ...] = option((), help="Sentences to search for.", flag="QUERY")
    queries_file: Path | None = option(
        None, help="Query file: text (one per line), .csv or .jsonl with qid/query columns.", flag="--queries",
        exists=True)
    # search by picture (#20.2): r2cli.app.search_visual; CLIP image similarity only, no R2-Tuning
    image: tuple[Path, ...] = option(
        (), help="A still (JPEG, PNG ...) to find the shots that look like it (repeat). CLIP image similarity "
                 "only: R2-Tuning grounds sentences and is not run.", flag="--image", exists=True)
    clip: tuple[str, ...] = option(
        (), help="A video, or a range VIDEO:START-END (seconds or m:ss), to find the shots that look like it "
                 "(repeat). CLIP image similarity only: R2-Tuning is not run.", flag="--clip",
        check=lambda value: clip_spec_rule(value))
    match_margin: float = option(
        0.1, help="Image and clip queries: a clip matches when its CLIP similarity is within this of the query's best "
                  "clip in the archive; runs of matching clips are the moments.", minimum=0, maximum=2)
    min_run: int = option(1, help="Image and clip queries: consecutive matching clips a moment needs.", minimum=1)
    videos: tuple[str, ...] = option(
        (), help="Only videos whose catalog id, path or file name matches one of these globs.", flag="--video")
    min_duration: float | None = option(None, help="Only videos at least this long (s).", minimum=0)
    max_duration: float | None = option(None, help="Only videos at most this long (s).", minimum=0)
    path_contains: str | None = option(None, help="Only videos whose path contains this text.")
    candidates: int | None = option(
        None, help="Windows per query that R2-Tuning grounds, best by CLIP similarity "
        "(default 40 on a CPU, 2000 on a GPU; all when fewer).", minimum=1)
    top_k: int = option(10, help="Moments per query kept, ranked across videos.", minimum=1)
    min_score: float | None = option(None, help="Drop moments scoring below this.")
    preset: str | None = option(None, help="Dataset preset (fps, rounding, NMS, windows). Default: the checkpoint's.")
    checkpoint: str | None = option(
        None, help="Head checkpoint file or registry name. Default: $R2CLI_CHECKPOINT, else the registry default.")
    clip_weights: str | None = option(
        None, help="CLIP weights: a local OpenAI-format file or a registry tag (the same the index used). "
        "Default: $R2CLI_CLIP_WEIGHTS, else OpenAI ViT-B/32.")
    device: str = option("auto", help="Where the models run: auto (a GPU when present), cpu, cuda or cuda:N.",
                         check=device_rule)
    window: float | None = option(
        None, help="Videos up to this long (s) are grounded whole, longer ones in windows this long. "
        "Default: the preset's (the length its checkpoint was trained on).", minimum=MIN_SPAN_S)
    stride: float | None = option(
        None, help="Distance between window starts (s). Default: the preset's, or half of --window.", minimum=MIN_SPAN_S)
    out: Path | None = option(None, help="Run folder for the outputs. Default: <workspace>/runs/<run id>.")
    format: str = option("parquet", help="parquet, or official (also the official submission JSON Lines).",
                         choices=FORMATS)
    batch_size: int | None = option(None, help="Window-query pairs per forward pass.", minimum=1)
    chunk_windows: int | None = option(None, help="Windows whose video side is computed at once.", minimum=1,
                                       job=False)
    precision: str = option("fp32", help="fp32 (official), or bf16/fp16 autocast on a GPU.", choices=PRECISIONS)
    query_batch: int = option(256, help="Queries embedded and grounded together; memory holds one batch.",
                              minimum=1)
    save_saliency: bool = option(True, help="Write saliency.parquet.")
    wait: float = option(0.0, help="Seconds to wait when another run writes to the same --out.", minimum=0,
                         job=False)
    feature_dtype: str = option(
        "auto", choices=FEATURE_DTYPE_CHOICES,
        help="Which stored layer tokens to read: auto (float16 where a video has both), float16, or int8 "
             "(indexed with --feature-dtype int8).")
    ray: str | None = option(
        None, check=ray_address_rule,
        help="Ground the candidate windows on Ray actors: 'local' starts an instance on this machine, HOST:PORT "
             "joins a cluster whose nodes mount the workspace. Default: $R2CLI_RAY_ADDRESS, else this process.")
    # set by the job runner (not a key of a job file): return the finished run in ``out`` when its
    # settings are the same
    resume: bool = option(False, help="Reuse a finished run with the same settings in --out.", job=False)

    exact: bool = option(False, help="Score every clip embedding in the coarse stage (brute force), even where "
                                     "the approximate coarse index would be used.")
    report: bool = option(False, help="Also write an HTML report of the run into report/ in the run folder "
                                      "(what `r2cli report RUN` writes).")

    def check(self) -> tuple[tuple[str, ...], str] | None:
        visual = bool(self.image or self.clip)
        if visual and (self.queries or self.queries_file is not None):
            return (("image", "clip", "queries"),
                    "{0}/{1} and sentences ({2}) need separate runs: pictures are matched by CLIP only")
        if visual and self.format == "official":
            return ("format", "image", "clip"), ("{0} official needs sentences (R2-Tuning's predictions); "
                                                 "{1} and {2} queries write parquet only")
        if not visual and not self.queries and self.queries_file is None:
            return ("queries", "queries_file"), "{0} or {1}: give at least one query (a sentence or a query file)"
        if self.window is not None and self.stride is not None and self.stride > self.window:
            return ("stride", "window"), f"{{0}} ({self.stride:g} s) must not exceed {{1}} ({self.window:g} s)"
        if self.min_duration is not None and self.max_duration is not None and self.min_duration > self.max_duration:
            return (("min_duration", "max_duration"),
                    f"{{0}} ({self.min_duration:g}) must not exceed {{1}} ({self.max_duration:g})")
        return None

    def video_filter(self) -> Any:
        from r2cli.catalog.selection import VideoFilter

        return VideoFilter(patterns=self.videos, min_duration=self.min_duration, max_duration=self.max_duration,
                           path_contains=self.path_contains)


OPTIONS = SearchOptions


def clip_spec_rule(value: tuple[str, ...]) -> str | None:
    """The rule of ``--clip``: each value is VIDEO or VIDEO:START-END with START < END."""
    from r2cli.app.search_visual import parse_clip_spec

    for spec in value or ():
        problem = parse_clip_spec(spec)[1]
        if problem:
            return f"must be VIDEO or VIDEO:START-END (seconds or m:ss): {problem}"
    return None


@dataclass
class SearchResult:
    """What ``run_search`` did and where its outputs are."""

    run_id: str  # the run's id (folder name under runs/ unless ``out`` was given)
    out_dir: Path  # the run folder
    counts: dict[str, int]  # queries, videos_selected, videos_searched, videos_skipped, windows, pairs, moments, ...
    timings: dict[str, float]  # seconds per stage: catalog, model, features, search, write, total
    files: dict[str, Path]  # "moments", "saliency", "official", "manifest" -> path
    skipped: list["SkippedVideo"] = field(default_factory=list)  # videos without usable features
    warnings: list[str] = field(default_factory=list)  # what the reporter was warned about
    model: dict[str, Any] = field(default_factory=dict)  # checkpoint, preset, CLIP weights and head widths
    settings: dict[str, Any] = field(default_factory=dict)  # what run.json records (fps, windows, NMS ...)
    resumed: bool = False  # True when a finished run with the same settings was returned as is

    @functools.cached_property
    def moments(self) -> "pd.DataFrame":
        """The rows of moments.parquet (read on first use: a run over many queries holds none in memory)."""
        from r2cli.outputs import read_results

        return read_results(self.files["moments"], kind="moments").df

    def preview(self, queries: int) -> "pd.DataFrame":
        """The moments of the first ``queries`` queries, reading only as much of the file as needed."""
        import pandas as pd
        import pyarrow.parquet as pq

        if "moments" in self.__dict__:
            frame = self.moments
            return frame[frame["query_id"].isin(list(dict.fromkeys(frame["query_id"]))[:queries])]
        parts, seen = [], []
        handle = pq.ParquetFile(self.files["moments"])
        for i in range(handle.num_row_groups):
            part = handle.read_row_group(i).to_pandas()
            for qid in dict.fromkeys(part["query_id"]):
                if qid not in seen:
                    seen.append(qid)
            parts.append(part)
            if len(seen) > queries:
                break
        if not parts:
            return handle.read().to_pandas()
        frame = pd.concat(parts, ignore_index=True)
        return frame[frame["query_id"].isin(seen[:queries])].reset_index(drop=True)


def weights_needed(options: SearchOptions) -> list[tuple[str, str | None]]:
    """The weights a ``[search]`` step loads, as ``(kind, spec)`` (see ``check_all_weights``)."""
    return [("clip", options.clip_weights), ("checkpoint", options.checkpoint)]


def run_search(workspace: "Workspace", options: SearchOptions, *, reporter: Reporter = NULL_REPORTER) -> SearchResult:
    """Search the archive for every query and publish the run's outputs.

    Raises:
        UsageError: an option breaks its rule.
        InputError: the query file is unusable, the archive is empty, nothing matches the filters,
            no selected video has features, or the outputs cannot be written (a full disk).
        FolderBusyError: another run writes to ``out`` (after ``wait`` seconds).
        CatalogError: there is no catalog.
        MissingWeightsError: CLIP weights and/or the checkpoint are missing (all named at once,
            before any work).
        CheckpointError: the checkpoint does not fit the CLIP weights.
    """
    from r2cli.catalog.selection import require_videos
    from r2cli.inference.models import check_weights, load_models
    from r2cli.inference.query_files import open_queries

    options.validate()
    if options.image or options.clip:  # search by picture: CLIP similarity only (r2cli.app.search_visual)
        from r2cli.app.search_visual import run_visual_search

        return run_visual_search(workspace, options, reporter=reporter)
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        reporter.warn(message)

    started = time.perf_counter()
    timings: dict[str, float] = {}
    queries = open_queries(options.queries, options.queries_file)
    check_weights(options.clip_weights, options.checkpoint)

    tick = time.perf_counter()
    records = require_videos(workspace, options.video_filter())
    timings["catalog_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    models = load_models(clip_weights=options.clip_weights, checkpoint=options.checkpoint, preset=options.preset,
                         device=options.device, reporter=reporter)
    timings["model_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    plan, skipped, settings = _plan(workspace, options, models, records, warn)
    timings["features_s"] = time.perf_counter() - tick

    from r2cli.outputs import runs

    key = runs.settings_key({
        "settings": settings,
        "queries": queries.digest,
        "model": {k: v for k, v in models.info.items() if k != "device"},
        "features": [(v.record.id, v.record.fingerprint, v.features.num_clips) for v in plan.videos],
    })
    result = _execute(workspace, options, queries, models, plan, skipped, settings, key, warnings, warn, timings,
                      started, reporter)
    from r2cli.app.report import report_run_folder

    result.files.update(report_run_folder(result.out_dir, options.report, reporter))
    return result


def _plan(workspace, options: SearchOptions, models, records, warn):
    """Features, windows and the settings record of a search."""
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.models import preset_defaults
    from r2cli.inference.search import bad_window_warning, open_features, plan_archive
    from r2cli.inference.windows import PostProcess, window_sizes

    defaults = preset_defaults(models.preset, window_s=options.window, stride_s=options.stride)
    fps = defaults.fps
    window_clips, stride_clips = window_sizes(defaults.window_s, defaults.stride_s, fps)
    asked_clips = window_clips
    window_clips = min(window_clips, MAX_WINDOW_CLIPS)
    stride_clips = min(stride_clips, window_clips)
    post = PostProcess(unit=defaults.unit, nms_type=defaults.nms_type, nms_threshold=defaults.nms_threshold,
                       nms_sigma=defaults.nms_sigma, max_moments=models.model.config.max_num_moment)
    feature_settings = FeatureSettings.for_tower(models.tower, fps=fps, k=models.model.config.k)
    found, skipped = open_features(workspace, records, feature_settings, feature_dtype=options.feature_dtype)
    if skipped:
        names = ", ".join(Path(s.path).name for s in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warn(f"{len(skipped)} of {len(records)} videos skipped (no usable features): {names}")
    if not found:
        from r2cli.errors import InputError

        first = skipped[0].reason if skipped else "no features"
        raise InputError(f"none of the {len(records)} selected videos can be searched ({first})")
    plan = plan_archive(found, fps=fps, window_clips=window_clips, stride_clips=stride_clips, post=post)
    if asked_clips > window_clips and any(v.features.num_clips > window_clips for v in plan.videos):
        warn(f"--window {defaults.window_s:g} s is {asked_clips} clips at {fps:g} fps; the model takes at most "
             f"{MAX_WINDOW_CLIPS}, so longer videos are grounded in windows of {MAX_WINDOW_CLIPS} clips")
    for w in sorted(plan.bad_windows):
        warn(bad_window_warning(plan, w))
    coarse = _coarse_stage(workspace, options, models, plan, feature_settings, warn)
    settings = {
        "videos": list(options.videos),
        "min_duration": options.min_duration,
        "max_duration": options.max_duration,
        "path_contains": options.path_contains,
        "candidates": options.candidates,
        "top_k": options.top_k,
        "min_score": options.min_score,
        "preset": defaults.preset,
        "fps": fps,
        "unit": defaults.unit,
        "nms": {"type": defaults.nms_type, "threshold": defaults.nms_threshold, "sigma": defaults.nms_sigma},
        "window_s": defaults.window_s,
        "stride_s": defaults.stride_s,
        "window_source": defaults.window_source,
        "window_clips": window_clips,
        "stride_clips": stride_clips,
        "format": options.format,
        "precision": options.precision,
        "save_saliency": options.save_saliency,
        "feature_dtype": options.feature_dtype,
        # how the searched videos' layer tokens were stored (auto prefers float16 per video)
        "feature_dtypes_used": _count_dtypes(plan),
        "coarse": coarse.record(),
    }
    plan.coarse = coarse
    return plan, skipped, settings


def _count_dtypes(plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for video in plan.videos:
        counts[video.features.settings.dtype] = counts.get(video.features.settings.dtype, 0) + 1
    return dict(sorted(counts.items()))


def _coarse_stage(workspace, options: SearchOptions, models, plan, feature_settings, warn):
    """Exact scan or the approximate coarse index (#19.1): ``choose_coarse_stage`` decides."""
    from r2cli.inference.search import choose_coarse_stage

    index = load_coarse_index(workspace, options, [video.features for video in plan.videos], feature_settings, warn)
    budget = options.candidates or default_candidates(models.info["device"])
    return choose_coarse_stage(plan, index, candidates=budget, exact=options.exact)


def load_coarse_index(workspace, options: SearchOptions, features: list, feature_settings, warn):
    """The coarse index of the feature set the selected ``features`` were read from (None: none, or ``--exact``).

    An unreadable index, or no faiss, is a warning and an exact scan, never a failed search. Text and
    picture searches (``r2cli.app.search_visual``) load it here.
    """
    from r2cli.errors import FeatureError, MissingDependencyError

    if options.exact:
        return None
    from r2cli.features.coarse_index import load_index

    try:
        # the index of the feature set the search reads (an int8-only archive has its own key)
        keys = {stored.settings.key() for stored in features}
        key = keys.pop() if len(keys) == 1 else feature_settings.key()
        return load_index(workspace.features_dir, key)
    except (FeatureError, MissingDependencyError) as exc:
        warn(f"coarse index not used, scoring exactly: {exc}")
        return None


def _execute(workspace, options, queries, models, plan, skipped, settings, key, warnings, warn, timings, started,
             reporter) -> SearchResult:
    from r2cli.catalog import runs as run_records
    from r2cli.outputs import runs
    from r2cli.distributed.session import resolve_ray_address
    from r2cli.inference.grounding import Grounder
    from r2cli.inference.search import SearchWriter, bad_window_warning, search_batch
    from r2cli.outputs.publish import RunFolder

    wanted = ("moments.parquet",) + (("saliency.parquet",) if options.save_saliency else ())
    run_id = runs.new_run_id()
    out_dir = Path(options.out) if options.out is not None else workspace.runs_dir / run_id
    with contextlib.ExitStack() as stack, RunFolder(out_dir, wait=options.wait, purpose="r2cli search") as folder:
        if options.resume and options.out is not None:
            previous = runs.finished_run(out_dir, key, wanted)
            if previous is not None:
                return _resumed(out_dir, previous, skipped)
        query_records = runs.query_record(queries)
        run_records.start_run(workspace, run_id=run_id, kind="search", settings=settings, queries=query_records,
                              model=models.info, out_dir=out_dir)
        status = "failed"
        counts: dict[str, Any] = {}
        files: dict[str, Path] = {}
        try:
            model_id = models.info["checkpoint_id"]
            grounder = Grounder(models.model, models.info["device"], batch_size=options.batch_size,
                                chunk_windows=options.chunk_windows, precision=options.precision)
            address = resolve_ray_address(options.ray)
            if address is not None:  # the fine stage on Ray actors; coarse stage and merge stay here
                from r2cli.distributed.search import RayGrounder
                from r2cli.distributed.session import ray_session

                stack.enter_context(ray_session(address, shared_paths=[workspace.features_dir], log_file=Path(out_dir) / "ray.log"))
                grounder = RayGrounder(grounder)
            metadata = {"run_id": run_id, "preset": settings["preset"], "model": model_id}
            writer = SearchWriter(folder, run_id=run_id, metadata=metadata, saliency=options.save_saliency,
                                  official=options.format == "official", has_boundaries=grounder.has_boundaries)
            budget = options.candidates or default_candidates(models.info["device"])
            tick = time.perf_counter()
            single = queries.count <= options.query_batch
            reporter.begin("queries", total=queries.count, unit="queries")
            pairs = moments = truncated = unplayable = 0
            candidate_windows: set[int] = set()
            try:
                for batch in queries.batches(options.query_batch):
                    result = search_batch(
                        plan, models.tower, grounder, batch, k=models.model.config.k, candidates=budget,
                        top_k=options.top_k, min_score=options.min_score, run_id=run_id, model_id=model_id,
                        preset=settings["preset"], whole_videos=options.format == "official",
                        reporter=reporter if single else NULL_REPORTER, coarse=plan.coarse,
                    )
                    for w in result.new_bad_windows:
                        warn(bad_window_warning(plan, w))
                    for query, cut in zip(batch, result.truncated):
                        if cut:
                            warn(f"query {query.qid} ({query.where}) is longer than CLIP's "
                                 f"{models.tower.context_length} tokens; it was truncated")
                    for name, seconds in result.timings.items():
                        timings[name] = timings.get(name, 0.0) + seconds
                    write_tick = time.perf_counter()
                    writer.write(result, plan)
                    timings["write_s"] = timings.get("write_s", 0.0) + time.perf_counter() - write_tick
                    pairs += result.pairs
                    moments += len(result.moments)
                    unplayable += result.unplayable
                    truncated += sum(result.truncated)
                    candidate_windows |= result.candidate_windows
                    reporter.advance("queries", len(batch), moments=moments)
                names = writer.close()
            except BaseException:
                writer.abort()
                raise
            reporter.end("queries")
            timings["search_s"] = time.perf_counter() - tick
            whole = sum(1 for v in plan.videos if len(v.windows) == 1)
            counts = {
                "queries": queries.count,
                "videos_selected": len(plan.videos) + len(skipped),
                "videos_searched": len(plan.videos),
                "videos_skipped": len(skipped),
                "videos_whole": whole,
                "videos_windowed": len(plan.videos) - whole,
                "windows": len(plan.windows),
                "windows_skipped": len(plan.bad_windows),
                "candidate_windows": len(candidate_windows),
                "pairs": pairs,
                "moments": moments,
                "moments_unplayable": unplayable,
                "truncated_queries": truncated,
            }
            if queries.file is not None:  # how many the file gave: a file cut short by a stray quote shows here
                counts["queries_read_from_file"] = queries.count - len(queries.texts)
            timings["total_s"] = time.perf_counter() - started
            timings = {name: round(value, 4) for name, value in timings.items()}
            manifest = {
                "manifest_version": runs.MANIFEST_VERSION,
                "run_id": run_id,
                "kind": "search",
                "status": "done",
                "settings_key": key,
                "settings": settings,
                "queries": query_records,
                "model": models.info,
                "counts": counts,
                "timings": timings,
                "skipped": [asdict(s) for s in skipped],
                "skipped_windows": [{"window": plan.window_label(w), "video_id": plan.videos[plan.windows[w][0]].record.id,
                                     "reason": why} for w, why in sorted(plan.bad_windows.items())],
                "files": {_file_key(name): name for name in names},
            }
            published = folder.publish(manifest)
            files = {_file_key(name): path for name, path in published.items()}
            status = "done"
        finally:
            run_records.end_run(workspace, run_id=run_id, status=status, timings=timings, counts=counts)
    return SearchResult(run_id=run_id, out_dir=out_dir, counts=counts, timings=timings, files=files,
                        skipped=skipped, warnings=warnings, model=models.info, settings=settings)


def _file_key(name: str) -> str:
    return {"moments.parquet": "moments", "saliency.parquet": "saliency", "predictions_official.jsonl": "official",
            "run.json": "manifest"}.get(name, name)


def _resumed(out_dir: Path, manifest: dict[str, Any], skipped: list) -> SearchResult:
    files = {name: out_dir / filename for name, filename in (manifest.get("files") or {}).items()}
    files["manifest"] = out_dir / "run.json"
    return SearchResult(
        run_id=str(manifest.get("run_id")), out_dir=out_dir, counts=dict(manifest.get("counts") or {}),
        timings=dict(manifest.get("timings") or {}), files=files, skipped=skipped,
        model=dict(manifest.get("model") or {}), settings=dict(manifest.get("settings") or {}), resumed=True,
    )


def job_step(workspace: "Workspace", table: Mapping[str, Any], context: JobContext, *,
             reporter: Reporter = NULL_REPORTER) -> StepResult:
    """The ``[search]`` table of a job: ``run_search`` into ``<job out>/search``, skipped when a run
    with the same settings finished there (unless the job is forced)."""
    options = SearchOptions.from_table(table, where=context.where("search"), base=context.base,
                                       overrides={"out": context.out_dir / "search", "resume": not context.force})
    if options.clip and context.base is not None:  # a clip's video is relative to the job file, as paths are
        from r2cli.app.search_visual import resolve_clip_specs

        options = options.replace(clip=resolve_clip_specs(options.clip, Path(context.base)))
    started = time.perf_counter()
    result = run_search(workspace, options, reporter=reporter)
    counts = result.counts
    if result.resumed:
        detail = f"outputs for the same settings exist in {result.out_dir} (run {result.run_id}); use --force to redo"
    else:
        detail = (f"{plural(counts.get('queries', 0), 'query', 'queries')} over "
                  f"{plural(counts.get('videos_searched', 0), 'video')}: "
                  f"{plural(counts.get('moments', 0), 'moment')} in {result.out_dir}")
    return StepResult(name="search", status="skipped" if result.resumed else "done", detail=detail,
                      seconds=time.perf_counter() - started,
                      outputs={name: str(path) for name, path in result.files.items()}, counts=dict(counts))


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``1 query``, ``2 queries``, ``0 videos``."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


def search(workspace: "Workspace", queries: list[str] | tuple[str, ...], *, options: SearchOptions | None = None,
           reporter: Reporter = NULL_REPORTER) -> SearchResult:
    """``run_search`` for a list of sentences: ``options`` (defaults when None) with ``queries`` set."""
    base = options or SearchOptions(queries=tuple(queries))
    return run_search(workspace, base.replace(queries=tuple(queries)), reporter=reporter)
