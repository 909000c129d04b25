"""The ``summarize`` use case: a budgeted summary of each video, from R2-Tuning saliency.

``SummarizeOptions`` owns every default and rule of a summary (the CLI's flags and the job
file's ``[summarize]`` keys are its fields); ``run_summarize`` is the one library call both make.
The stages (windows, saliency, shots and knapsack, outputs) are ``r2cli.summary.stages``;
the run's lifecycle (weights, models, the preset's fps and windows, the run folder, resume, the
catalog's run record, ``run.json`` last, R2-Tuning here or on Ray) is ``r2cli.app.model_run``; this
module adds a summary's own: the videos' queries, the budget, and the reel
(``r2cli.media.reels.make_reel``), which never replaces a catalogued source video.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.model_run import FORMATS, ModelRunOptions, RunLog, RunOutput, RunRecord, publish_run, require_usable
from r2cli.app.options import option
from r2cli.app.steps import JobContext, StepResult
from r2cli.errors import InputError, UsageError
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from r2cli.summary.stages import VideoSummary
    from r2cli.media.segments import CutReport
    from r2cli.paths import Workspace

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
class SummarizeOptions(ModelRunOptions):
    """Everything that shapes a summary. ``None``: decided at run time (the preset).

    The video filters, run folder, models, windows and Ray are ``ModelRunOptions``' fields; these are
    a summary's own (and the fields it says its own way).
    """

    section = "summarize"

    videos: tuple[str, ...] = ModelRunOptions.reworded(
        "videos", flag="VIDEO", help="Catalog ids, paths, file names or globs. Default: every indexed video.")
    ratio: float | None = option(None, help="Budget as a fraction of each video's duration, in (0, 1].",
                                 above=0, maximum=1)
    seconds: float | None = option(None, help="Budget in seconds per video (capped at its duration).", above=0)
    query: str | None = option(None, help="Summarize for this sentence. Default: each video's title (query-free).",
                               check=_query_rule)
    preset: str | None = ModelRunOptions.reworded(
        "preset", help="Domain preset, e.g. tvsum_bk or youtube_dog; without --checkpoint its pretrained head.")
    checkpoint: str | None = ModelRunOptions.reworded(
        "checkpoint", help="Head checkpoint file or registry name. Default: the preset's, $R2CLI_CHECKPOINT, "
        "else the registry default.")
    reel: Path | None = option(None, help="Render the selected segments, in time order, into this file "
                               "(.mp4, .mov, .mkv).", check=_reel_rule)
    force: bool = option(False, help="Overwrite an existing --reel file (never a source video).", job=False)
    format: str = ModelRunOptions.reworded(
        "format", help="parquet, or official (also YouTube/TVSum saliency JSON Lines).")
    shots: str = option("kts", help="Shot detection: kts or threshold.", choices=SHOT_METHODS)

    def check(self) -> tuple[tuple[str, ...], str] | None:
        if (self.ratio is None) == (self.seconds is None):
            return ("ratio", "seconds"), "give exactly one of {0} or {1}"
        return super().check()


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

    The run's lifecycle (weights, models, windows, run folder, resume, run record, ``run.json``)
    is ``r2cli.app.model_run``'s; R2-Tuning runs here or, with ``ray``, on Ray actors.

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
    from r2cli.app.model_run import prepare
    from r2cli.app.report import report_run_folder
    from r2cli.outputs import runs
    from r2cli.summary.stages import SUMMARY_FILE

    options.validate()
    log = RunLog(reporter)
    reel_path = _check_reel(workspace, options)
    prepared = prepare(workspace, options, log, checkpoint=_checkpoint_of(options), select=select_summary_videos)
    models, windows = prepared.models, prepared.windows
    with log.timed("features_s"):
        plans, skipped = _plan(workspace, options, prepared, log)
    settings = {
        "videos": list(options.videos),
        "min_duration": options.min_duration,
        "max_duration": options.max_duration,
        "path_contains": options.path_contains,
        "ratio": options.ratio,
        "seconds": options.seconds,
        "query": options.query,
        "preset": windows.defaults.preset,
        "fps": windows.fps,
        **windows.record(),
        "shot_method": options.shots,
        "format": options.format,
        "reel": str(reel_path) if reel_path is not None else None,
    }
    query_records = [{"video_id": p.record.id, "query": p.query, "source": p.query_source} for p in plans]
    key = runs.settings_key({
        "settings": {k: v for k, v in settings.items() if k != "reel"},
        "queries": query_records,
        "model": {k: v for k, v in models.info.items() if k != "device"},
        "features": [(p.record.id, p.record.fingerprint, p.features.num_clips) for p in plans],
    })
    record = RunRecord(kind="summarize", key=key, settings=settings, file_keys=FILE_KEYS, wanted=(SUMMARY_FILE,),
                       queries=query_records, model=models.info, resumable=reel_path is None)
    work = _Summaries(workspace=workspace, options=options, models=models, plans=plans, skipped=skipped,
                      selected=len(prepared.records), fps=windows.fps, reel_path=reel_path, log=log)
    published = publish_run(workspace, options, record, log, work.run)
    if published.resumed:
        result = _resumed(published.out_dir, published.previous, skipped)
    else:
        result = SummarizeResult(run_id=published.run_id, out_dir=published.out_dir, summary=work.frame,
                                 videos=work.summaries, counts=published.counts, timings=published.timings,
                                 files=published.files, skipped=skipped, warnings=log.warnings, model=models.info,
                                 settings=settings, reel=work.reel_report)
    result.files.update(report_run_folder(result.out_dir, options.report, reporter))
    return result


def _plan(workspace: "Workspace", options: SummarizeOptions, prepared: Any, log: RunLog) -> tuple[list, list]:
    """The videos' windows and queries; a video whose every window is damaged is skipped.

    Raises:
        InputError: no selected video can be summarized.
    """
    from r2cli.inference.search import SkippedVideo, open_features
    from r2cli.summary.stages import bad_window_warning, plan_videos

    windows = prepared.windows
    found, skipped = open_features(workspace, prepared.records, prepared.feature_settings)
    plans = []
    for plan in plan_videos(found, fps=windows.fps, window_clips=windows.window_clips,
                            stride_clips=windows.stride_clips, query=options.query):
        for i in sorted(plan.bad_windows):
            log.warn(bad_window_warning(plan, i, windows.fps))
        if len(plan.bad_windows) == len(plan.windows):
            skipped.append(SkippedVideo(plan.record.id, plan.record.path,
                                        "every window's stored features are damaged (NaN or inf); re-index it"))
        else:
            plans.append(plan)
    require_usable(len(plans), skipped, len(prepared.records), "summarized", log.warn)
    if plans:
        cut = windows.cut_warning(max(p.features.num_clips for p in plans))
        if cut:
            log.warn(cut)
    return plans, skipped


@dataclass
class _Summaries:
    """A summary's own stages inside the run (``run``): saliency (R2-Tuning, local or on Ray), shots
    and the knapsack per video, the staged outputs and the reel."""

    workspace: "Workspace"
    options: SummarizeOptions
    models: Any  # r2cli.inference.models.Models
    plans: list  # r2cli.summary.stages.VideoPlan per summarized video
    skipped: list
    selected: int  # videos the filters selected
    fps: float
    reel_path: Path | None
    log: RunLog
    frame: Any = None  # the summary table, once written
    summaries: list = field(default_factory=list)  # VideoSummary per video
    reel_report: Any = None  # the reel's CutReport

    def run(self, run: Any) -> RunOutput:
        from r2cli.app.model_run import grounder, skipped_records
        from r2cli.summary.stages import summary_frame, video_saliency, write_summary_outputs

        models, plans, log = self.models, self.plans, self.log
        with log.timed("saliency_s"):
            ground = grounder(run, self.workspace, models, self.options)
            saliency, texts, truncated = video_saliency(ground, models.tower, plans, k=models.model.config.k,
                                                        fps=self.fps, reporter=log.reporter)
            for text, cut in zip(texts, truncated):
                if cut:
                    log.warn(f"query {text[:60]!r} is longer than CLIP's {models.tower.context_length} tokens; "
                             "it was truncated")
        with log.timed("shots_s"):
            rows = self._select(run.run_id, saliency)
        with log.timed("write_s"):
            self.frame = summary_frame(rows)
            metadata = {"run_id": run.run_id, "preset": models.info["preset"], "model": models.info["checkpoint_id"]}
            names = write_summary_outputs(run.folder, self.frame, plans, saliency, models.preset, metadata,
                                          official=self.options.format == "official")
        other_files = {}
        if self.reel_path is not None:
            with log.timed("reel_s"):
                self._reel(run)
            other_files["reel"] = str(self.reel_path)
        summaries = self.summaries
        counts = {
            "videos_selected": self.selected,
            "videos_summarized": len(plans),
            "videos_skipped": len(self.skipped),
            "queries": len(texts),
            "windows": sum(len(p.windows) for p in plans),
            "windows_skipped": sum(len(p.bad_windows) for p in plans),
            "clips": int(sum(p.features.num_clips for p in plans)),
            "segments": int(len(self.frame)),
            "segments_selected": int(sum(s.segments_selected for s in summaries)),
            "videos_over_budget": int(sum(s.over_budget for s in summaries)),
            "truncated_queries": int(sum(truncated)),
        }
        manifest = {
            "videos": [s.to_dict() for s in summaries],
            "skipped": skipped_records(self.skipped),
            "skipped_windows": [{"video_id": p.record.id, "window": i, "reason": why}
                                for p in plans for i, why in sorted(p.bad_windows.items())],
        }
        return RunOutput(names=names, counts=counts, manifest=manifest, other_files=other_files)

    def _select(self, run_id: str, saliency: list) -> list[dict]:
        from r2cli.summary.stages import select_segments

        options, reporter = self.options, self.log.reporter
        reporter.begin("summaries", total=len(self.plans), unit="videos")
        rows: list[dict] = []
        for plan, scores in zip(self.plans, saliency):
            video_rows, summary, warning = select_segments(
                plan, scores, fps=self.fps, ratio=options.ratio, seconds=options.seconds,
                shot_method=options.shots, run_id=run_id)
            if warning:
                self.log.warn(warning)
            rows.extend(video_rows)
            self.summaries.append(summary)
            reporter.advance("summaries")
        reporter.end("summaries")
        return rows

    def _reel(self, run: Any) -> None:
        import dataclasses

        from r2cli.summary.stages import reel_segments
        from r2cli.media.reels import make_reel

        segments = reel_segments(self.summaries)
        if not segments:
            raise UsageError(f"--reel {self.reel_path}: no segment was selected (the budget is shorter than one clip)")
        staged = run.folder.stage("reel", target=self.reel_path)
        report = make_reel(segments, staged, force=True, reporter=self.log.reporter)
        self.reel_report = dataclasses.replace(report, reel=str(self.reel_path))


FILE_KEYS = {"summary.parquet": "summary", "predictions_official.jsonl": "official", "run.json": "manifest"}


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
