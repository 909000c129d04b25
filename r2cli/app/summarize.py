"""The ``summarize`` use case: a budgeted summary of each video, from R2-Tuning saliency.

``SummarizeOptions`` owns every default and rule of a summary (the CLI's flags and the job
file's ``[summarize]`` keys are its fields); ``run_summarize`` is the one library call both make.
The stages (windows, saliency, shots and knapsack, outputs) are ``r2cli.summary.stages``;
this module decides the settings (the checkpoint's preset decides fps and windows, see
``r2cli.inference.models.preset_defaults``), publishes the run folder all-or-nothing with
``run.json`` last, and renders the reel (``r2cli.media.reels.make_reel``), which never replaces a
catalogued source video.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.options import MIN_SPAN_S, Options, device_rule, option
from r2cli.app.steps import JobContext, StepResult
from r2cli.errors import InputError, UsageError
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from r2cli.summary.stages import VideoSummary
    from r2cli.media.segments import CutReport
    from r2cli.paths import Workspace

FORMATS = ("parquet", "official")
SHOT_METHODS = ("kts", "threshold")


def _query_rule(value: Any) -> str | None:
    if isinstance(value, str) and not value.strip():
        return "must not be empty; leave it out for query-free summaries (titles)"
    return None


def _reel_rule(value: Any) -> str | None:
    from r2cli.media.naming import MEDIA_FORMATS

    if Path(value).suffix.lower() not in MEDIA_FORMATS:
        return f"must end in {', '.join(MEDIA_FORMATS)}"
    return None


@dataclass(frozen=True)
class SummarizeOptions(Options):
    """Everything that shapes a summary. ``None``: decided at run time (the preset)."""

    section = "summarize"

    videos: tuple[str, ...] = option(
        (), help="Catalog ids, paths, file names or globs. Default: every indexed video.", flag="VIDEO")
    min_duration: float | None = option(None, help="Only videos at least this long (s).", minimum=0)
    max_duration: float | None = option(None, help="Only videos at most this long (s).", minimum=0)
    path_contains: str | None = option(None, help="Only videos whose path contains this text.")
    ratio: float | None = option(None, help="Budget as a fraction of each video's duration, in (0, 1].",
                                 above=0, maximum=1)
    seconds: float | None = option(None, help="Budget in seconds per video (capped at its duration).", above=0)
    query: str | None = option(None, help="Summarize for this sentence. Default: each video's title (query-free).",
                               check=_query_rule)
    preset: str | None = option(
        None, help="Domain preset, e.g. tvsum_bk or youtube_dog; without --checkpoint its pretrained head.")
    checkpoint: str | None = option(
        None, help="Head checkpoint file or registry name. Default: the preset's, $R2CLI_CHECKPOINT, "
        "else the registry default.")
    clip_weights: str | None = option(
        None, help="CLIP weights: a local OpenAI-format file or a registry tag (the same the index used). "
        "Default: $R2CLI_CLIP_WEIGHTS, else OpenAI ViT-B/32.")
    device: str = option("auto", help="Where the models run: auto (a GPU when present), cpu, cuda or cuda:N.",
                         check=device_rule)
    reel: Path | None = option(None, help="Render the selected segments, in time order, into this file "
                               "(.mp4, .mov, .mkv).", check=_reel_rule)
    force: bool = option(False, help="Overwrite an existing --reel file (never a source video).", job=False)
    out: Path | None = option(None, help="Run folder for the outputs. Default: <workspace>/runs/<run id>.")
    format: str = option("parquet", help="parquet, or official (also YouTube/TVSum saliency JSON Lines).",
                         choices=FORMATS)
    window: float | None = option(
        None, help="Videos up to this long (s) are summarized whole, longer ones in windows this long. "
        "Default: the preset's.", minimum=MIN_SPAN_S)
    stride: float | None = option(
        None, help="Distance between window starts (s). Default: the preset's, or half of --window.", minimum=MIN_SPAN_S)
    shots: str = option("kts", help="Shot detection: kts or threshold.", choices=SHOT_METHODS)
    batch_size: int | None = option(None, help="Window-query pairs per forward pass.", minimum=1)
    wait: float = option(0.0, help="Seconds to wait when another run writes to the same --out.", minimum=0,
                         job=False)
    # set by the job runner (not a key of a job file): return the finished run in ``out`` when its
    # settings are the same
    resume: bool = option(False, help="Reuse a finished run with the same settings in --out.", job=False)

    report: bool = option(False, help="Also write an HTML report of the run into report/ in the run folder "
                                      "(what `r2cli report RUN` writes).")

    def check(self) -> tuple[tuple[str, ...], str] | None:
        if (self.ratio is None) == (self.seconds is None):
            return ("ratio", "seconds"), "give exactly one of {0} or {1}"
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


OPTIONS = SummarizeOptions


@dataclass
class SummarizeResult:
    """What ``run_summarize`` did and where its outputs are."""

    run_id: str  # the run's id (folder name under runs/ unless ``out`` was given)
    out_dir: Path  # the run folder
    summary: "pd.DataFrame"  # the rows of summary.parquet (every segment of every video, selected or not)
    videos: list["VideoSummary"]  # one per summarized video, in catalog id order
    counts: dict[str, int]  # videos_selected, videos_summarized, videos_skipped, windows, segments, ...
    timings: dict[str, float]  # seconds per stage: catalog, model, features, saliency, shots, write, reel, total
    files: dict[str, Path]  # "summary", "official", "manifest", "reel" -> path
    skipped: list[Any] = field(default_factory=list)  # r2cli.inference.search.SkippedVideo
    warnings: list[str] = field(default_factory=list)  # what the reporter was warned about
    model: dict[str, Any] = field(default_factory=dict)  # checkpoint, preset, CLIP weights and head widths
    settings: dict[str, Any] = field(default_factory=dict)  # what run.json records
    reel: "CutReport | None" = None  # the reel's cut report when ``reel`` was given
    resumed: bool = False  # True when a finished run with the same settings was returned as is


def select_summary_videos(workspace: "Workspace", options: SummarizeOptions) -> list[Any]:
    """Usable catalog videos passing the options' filters; every name given must match one.

    Raises:
        CatalogError: there is no catalog.
        InputError: the archive is empty, or some names match no usable catalog video (all named).
    """
    from r2cli.catalog.selection import VideoFilter, matches_video, require_videos

    video_filter = options.video_filter()
    records = require_videos(workspace, VideoFilter(min_duration=video_filter.min_duration,
                                                    max_duration=video_filter.max_duration,
                                                    path_contains=video_filter.path_contains))
    patterns = tuple(str(v) for v in options.videos)
    if not patterns:
        return records
    unknown = [p for p in patterns if not any(matches_video(r, (p,)) for r in records)]
    if unknown:
        names = ", ".join(repr(p) for p in unknown)
        raise InputError(
            f"unknown video{'s' if len(unknown) > 1 else ''} {names}: no readable video of the catalog has that id, "
            "path or file name (see `r2cli catalog list`; add new files with `r2cli index`)"
        )
    return [r for r in records if matches_video(r, patterns)]


def _check_reel(workspace: "Workspace", options: SummarizeOptions) -> Path | None:
    """The reel's target, checked before any work.

    Raises:
        UsageError: a folder, an existing file without ``force``, or a catalogued source video
            (never replaced, with or without ``force``).
        InputError: its folder cannot be written.
    """
    import os

    from r2cli.catalog.guards import source_video_paths

    if options.reel is None:
        return None
    target = Path(options.reel).expanduser().absolute()
    if target.is_dir():
        raise UsageError(f"--reel {target} is a folder; give a file name such as {target / 'reel.mp4'}")
    if source_video_paths(workspace, [target]):
        raise UsageError(f"--reel {target} is a source video of the catalog; an input is never an output "
                         "(not even with --force)")
    if target.exists() and not options.force:
        raise UsageError(f"--reel {target} exists (use --force to overwrite)")
    from r2cli.media._process import check_replaceable

    check_replaceable(target, "--reel")  # --force replaces r2cli's own reel, never a file it did not write
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"--reel {target}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"--reel {target}: the folder {folder} is not writable")
    return target


def _registry_names() -> set[str]:
    from r2cli.model.registry import checkpoint_entries

    return {entry.name for entry in checkpoint_entries()}


def _checkpoint_of(options: SummarizeOptions) -> str | None:
    """The checkpoint a summary uses: ``checkpoint``, else a preset's pretrained head (a preset names
    a domain, and its head is the model for that domain), else None (the default)."""
    if options.checkpoint is None and options.preset is not None and options.preset in _registry_names():
        return options.preset
    return options.checkpoint


def weights_needed(options: SummarizeOptions) -> list[tuple[str, str | None]]:
    """The weights a ``[summarize]`` step loads, as ``(kind, spec)`` (see ``check_all_weights``)."""
    return [("clip", options.clip_weights), ("checkpoint", _checkpoint_of(options))]


def run_summarize(workspace: "Workspace", options: SummarizeOptions, *,
                  reporter: Reporter = NULL_REPORTER) -> SummarizeResult:
    """Summarize videos of the archive within a time budget and publish the run's outputs.

    Raises:
        UsageError: an option breaks its rule, or ``reel`` is a folder, exists without ``force``
            or is a source video.
        CatalogError: there is no catalog.
        InputError: the archive is empty, a named video is unknown, no selected video has
            features, or the outputs cannot be written (a full disk, a read-only folder).
        FolderBusyError: another run writes to ``out``.
        MissingWeightsError: CLIP weights and/or the checkpoint are missing (all named at once).
        CheckpointError: the checkpoint does not fit the CLIP weights.
        MediaError: ffmpeg failed while rendering the reel.
    """
    from r2cli.features.store import FeatureSettings
    from r2cli.outputs import runs
    from r2cli.inference.models import check_weights, load_models, preset_defaults
    from r2cli.inference.search import SkippedVideo, open_features
    from r2cli.summary.stages import bad_window_warning, plan_videos
    from r2cli.inference.windows import window_sizes

    options.validate()
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        reporter.warn(message)

    started = time.perf_counter()
    timings: dict[str, float] = {}
    reel_path = _check_reel(workspace, options)
    checkpoint = _checkpoint_of(options)
    check_weights(options.clip_weights, checkpoint)

    tick = time.perf_counter()
    records = select_summary_videos(workspace, options)
    timings["catalog_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    models = load_models(clip_weights=options.clip_weights, checkpoint=checkpoint, preset=options.preset,
                         device=options.device, reporter=reporter)
    defaults = preset_defaults(models.preset, window_s=options.window, stride_s=options.stride)
    fps = defaults.fps
    window_clips, stride_clips = window_sizes(defaults.window_s, defaults.stride_s, fps)
    window_clips = min(window_clips, 1024)
    stride_clips = min(stride_clips, window_clips)
    timings["model_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    settings = FeatureSettings.for_tower(models.tower, fps=fps, k=models.model.config.k)
    found, skipped = open_features(workspace, records, settings)
    plans = plan_videos(found, fps=fps, window_clips=window_clips, stride_clips=stride_clips, query=options.query)
    usable_plans = []
    for plan in plans:
        for i in sorted(plan.bad_windows):
            warn(bad_window_warning(plan, i, fps))
        if len(plan.bad_windows) == len(plan.windows):
            skipped.append(SkippedVideo(plan.record.id, plan.record.path,
                                        "every window's stored features are damaged (NaN or inf); re-index it"))
        else:
            usable_plans.append(plan)
    plans = usable_plans
    if skipped:
        shown = [Path(item.path).name for item in skipped[:5]]
        more = f" and {len(skipped) - len(shown)} more" if len(skipped) > len(shown) else ""
        warn(f"{len(skipped)} of {len(records)} videos skipped (no usable features): {', '.join(shown)}{more}")
    if not plans:
        reason = skipped[0].reason if skipped else "no features"
        raise InputError(f"none of the {len(records)} selected videos can be summarized ({reason})")
    timings["features_s"] = time.perf_counter() - tick

    settings_record = {
        "videos": list(options.videos),
        "min_duration": options.min_duration,
        "max_duration": options.max_duration,
        "path_contains": options.path_contains,
        "ratio": options.ratio,
        "seconds": options.seconds,
        "query": options.query,
        "preset": defaults.preset,
        "fps": fps,
        "window_s": defaults.window_s,
        "stride_s": defaults.stride_s,
        "window_source": defaults.window_source,
        "window_clips": window_clips,
        "stride_clips": stride_clips,
        "shot_method": options.shots,
        "format": options.format,
        "reel": str(reel_path) if reel_path is not None else None,
    }
    query_records = [{"video_id": p.record.id, "query": p.query, "source": p.query_source} for p in plans]
    key = runs.settings_key({
        "settings": {k: v for k, v in settings_record.items() if k != "reel"},
        "queries": query_records,
        "model": {k: v for k, v in models.info.items() if k != "device"},
        "features": [(p.record.id, p.record.fingerprint, p.features.num_clips) for p in plans],
    })
    result = _execute(workspace, options, models, plans, skipped, records, settings_record, query_records, key,
                      reel_path, warnings, warn, timings, started, fps, reporter)
    from r2cli.app.report import report_run_folder

    result.files.update(report_run_folder(result.out_dir, options.report, reporter))
    return result


def _execute(workspace, options, models, plans, skipped, records, settings_record, query_records, key, reel_path,
             warnings, warn, timings, started, fps, reporter) -> SummarizeResult:
    from r2cli.catalog import runs as run_records
    from r2cli.outputs import runs
    from r2cli.inference.grounding import Grounder
    from r2cli.summary.stages import (
        SUMMARY_FILE,
        reel_segments,
        select_segments,
        summary_frame,
        video_saliency,
        write_summary_outputs,
    )
    from r2cli.outputs.publish import RunFolder

    run_id = runs.new_run_id()
    out_dir = Path(options.out) if options.out is not None else workspace.runs_dir / run_id
    with RunFolder(out_dir, wait=options.wait, purpose="r2cli summarize") as folder:
        if options.resume and options.out is not None and reel_path is None:
            previous = runs.finished_run(out_dir, key, (SUMMARY_FILE,))
            if previous is not None:
                return _resumed(out_dir, previous, skipped)
        run_records.start_run(workspace, run_id=run_id, kind="summarize", settings=settings_record,
                              queries=query_records, model=models.info, out_dir=out_dir)
        status = "failed"
        counts: dict[str, Any] = {}
        files: dict[str, Path] = {}
        reel_report = None
        try:
            tick = time.perf_counter()
            grounder = Grounder(models.model, models.info["device"], batch_size=options.batch_size)
            saliency, texts, truncated = video_saliency(grounder, models.tower, plans, k=models.model.config.k,
                                                        fps=fps, reporter=reporter)
            for text, cut in zip(texts, truncated):
                if cut:
                    warn(f"query {text[:60]!r} is longer than CLIP's {models.tower.context_length} tokens; "
                         "it was truncated")
            timings["saliency_s"] = time.perf_counter() - tick

            tick = time.perf_counter()
            reporter.begin("summaries", total=len(plans), unit="videos")
            rows: list[dict] = []
            summaries = []
            for plan, scores in zip(plans, saliency):
                video_rows, summary, warning = select_segments(
                    plan, scores, fps=fps, ratio=options.ratio, seconds=options.seconds,
                    shot_method=options.shots, run_id=run_id)
                if warning:
                    warn(warning)
                rows.extend(video_rows)
                summaries.append(summary)
                reporter.advance("summaries")
            reporter.end("summaries")
            timings["shots_s"] = time.perf_counter() - tick

            tick = time.perf_counter()
            frame = summary_frame(rows)
            metadata = {"run_id": run_id, "preset": models.info["preset"], "model": models.info["checkpoint_id"]}
            names = write_summary_outputs(folder, frame, plans, saliency, models.preset, metadata,
                                          official=options.format == "official")
            timings["write_s"] = time.perf_counter() - tick

            if reel_path is not None:
                from r2cli.media.reels import make_reel

                tick = time.perf_counter()
                segments = reel_segments(summaries)
                if not segments:
                    raise UsageError(f"--reel {reel_path}: no segment was selected (the budget is shorter than one clip)")
                staged = folder.stage("reel", target=reel_path)
                reel_report = make_reel(segments, staged, force=True, reporter=reporter)
                timings["reel_s"] = time.perf_counter() - tick

            timings["total_s"] = time.perf_counter() - started
            timings = {name: round(value, 4) for name, value in timings.items()}
            counts = {
                "videos_selected": len(records),
                "videos_summarized": len(plans),
                "videos_skipped": len(skipped),
                "queries": len(texts),
                "windows": sum(len(p.windows) for p in plans),
                "windows_skipped": sum(len(p.bad_windows) for p in plans),
                "clips": int(sum(p.features.num_clips for p in plans)),
                "segments": int(len(frame)),
                "segments_selected": int(sum(s.segments_selected for s in summaries)),
                "videos_over_budget": int(sum(s.over_budget for s in summaries)),
                "truncated_queries": int(sum(truncated)),
            }
            file_names = {_file_key(name): name for name in names}
            if reel_path is not None:
                file_names["reel"] = str(reel_path)
            manifest = {
                "manifest_version": runs.MANIFEST_VERSION,
                "run_id": run_id,
                "kind": "summarize",
                "status": "done",
                "settings_key": key,
                "settings": settings_record,
                "videos": [s.to_dict() for s in summaries],
                "queries": query_records,
                "counts": counts,
                "model": models.info,
                "timings": timings,
                "skipped": [asdict(s) for s in skipped],
                "skipped_windows": [
                    {"video_id": p.record.id, "window": i, "reason": why}
                    for p in plans for i, why in sorted(p.bad_windows.items())
                ],
                "files": file_names,
            }
            published = folder.publish(manifest)
            files = {_file_key(name): path for name, path in published.items()}
            if reel_report is not None:
                import dataclasses

                reel_report = dataclasses.replace(reel_report, reel=str(reel_path))
            status = "done"
        finally:
            run_records.end_run(workspace, run_id=run_id, status=status, timings=timings, counts=counts)
    return SummarizeResult(run_id=run_id, out_dir=out_dir, summary=frame, videos=summaries, counts=counts,
                           timings=timings, files=files, skipped=skipped, warnings=warnings, model=models.info,
                           settings=settings_record, reel=reel_report)


def _file_key(name: str) -> str:
    return {"summary.parquet": "summary", "predictions_official.jsonl": "official", "run.json": "manifest"}.get(name, name)


def _resumed(out_dir: Path, manifest: dict[str, Any], skipped: list[Any]) -> SummarizeResult:
    from r2cli.summary.stages import SUMMARY_FILE, VideoSummary
    from r2cli.outputs import read_results

    files = {name: out_dir / filename for name, filename in (manifest.get("files") or {}).items()}
    files["manifest"] = out_dir / "run.json"
    frame = read_results(out_dir / SUMMARY_FILE, kind="summary").df
    videos = []
    for item in manifest.get("videos") or []:
        data = dict(item)
        data["selected"] = [tuple(pair) for pair in data.get("selected") or []]
        videos.append(VideoSummary(**data))
    return SummarizeResult(
        run_id=str(manifest.get("run_id")), out_dir=out_dir, summary=frame, videos=videos,
        counts=dict(manifest.get("counts") or {}), timings=dict(manifest.get("timings") or {}), files=files,
        skipped=skipped, model=dict(manifest.get("model") or {}), settings=dict(manifest.get("settings") or {}),
        resumed=True,
    )


def summarize(workspace: "Workspace", videos: tuple[str, ...] | list[str] = (), *,
              reporter: Reporter = NULL_REPORTER, **fields: Any) -> SummarizeResult:
    """``run_summarize`` with the options given as keywords (the fields of ``SummarizeOptions``).

    Raises:
        UsageError: an option breaks its rule (the message names the flag), and see ``run_summarize``.
    """
    options = SummarizeOptions.from_flags(videos=tuple(str(v) for v in videos), **fields)
    return run_summarize(workspace, options, reporter=reporter)


def job_step(workspace: "Workspace", table: Mapping[str, Any], context: JobContext, *,
             reporter: Reporter = NULL_REPORTER) -> StepResult:
    """The ``[summarize]`` table of a job: ``run_summarize`` into ``<job out>/summarize``, skipped when
    a run with the same settings finished there (unless the job is forced)."""
    options = SummarizeOptions.from_table(table, where=context.where("summarize"), base=context.base,
                                          overrides={"out": context.out_dir / "summarize",
                                                     "resume": not context.force, "force": context.force})
    started = time.perf_counter()
    result = run_summarize(workspace, options, reporter=reporter)
    outputs = {str(name): str(path) for name, path in result.files.items()}
    outputs.setdefault("out_dir", str(result.out_dir))
    if result.resumed:
        detail = f"outputs for the same settings exist in {result.out_dir} (run {result.run_id}); use --force to redo"
    else:
        count = result.counts.get("videos_summarized", 0)
        detail = f"{count} {'video' if count == 1 else 'videos'} summarized in {result.out_dir}"
    return StepResult(name="summarize", status="skipped" if result.resumed else "done", detail=detail,
                      seconds=time.perf_counter() - started, outputs=outputs, counts=dict(result.counts))
