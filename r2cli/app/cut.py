"""The ``cut`` use case: clips, one reel, or an editor timeline from a moments or summary file.

``CutOptions`` owns every default and rule of ``r2cli cut`` and of a job's ``[cut]`` table;
``run_cut`` is the one call both make; ``job_step`` is the ``[cut]`` step of ``r2cli run``.
Whatever the flags, no file the catalog knows as a source video is ever written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.options import Options, option
from r2cli.app.steps import JobContext, StepResult
from r2cli.media.names import DEFAULT_TEMPLATE, TIMELINE_FORMATS
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:
    from r2cli.media.segments import CutReport
    from r2cli.paths import Workspace

FORMATS = ("media", *TIMELINE_FORMATS)
SOURCES = ("search", "summarize")  # the job steps whose results a [cut] step can cut
DEFAULT_OUT = "clips"  # the clips folder, next to the results file (a job: in the job's out folder)


def _one_of(choices: tuple[str, ...]):
    said = f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]

    def rule(value: Any) -> str | None:
        return None if value in choices else f"must be {said}"

    return rule


def _template_rule(value: Any) -> str | None:
    from r2cli.media.naming import template_problem

    return template_problem(value) if isinstance(value, str) else "must be a string"


@dataclass(frozen=True)
class CutOptions(Options):
    """Settings of ``r2cli cut`` and of a job's ``[cut]`` table."""

    section = "cut"

    # the results file; a job step cuts the results of its source step instead
    results: Path | None = option(None, help="moments.parquet or summary.parquet written by r2cli.", job=False)
    out: Path | None = option(
        None, help=f"Folder for the clips (or the timeline file). Default: a '{DEFAULT_OUT}' folder next to the "
                   "results file (in a job: in the job's out folder).")
    top: int | None = option(
        None, minimum=1,
        help="Moments: the N best of each query. Summaries: the N best selected segments per video. Default: all.")
    min_score: float | None = option(None, help="Skip rows scoring below X (score, or mean saliency).")
    pad: float = option(0.0, minimum=0, help="Seconds added before and after each cut (clamped to the video).")
    copy: bool = option(False, help="Stream copy: fast, but clips start at the keyframe before the start.")
    concat: Path | None = option(None, help="Join the cuts into this one reel (accurate cuts, audio kept).")
    template: str = option(
        DEFAULT_TEMPLATE, check=_template_rule,
        help="Clip names; fields {video} {query} {rank} {start} {end} {index} {score} {video_id} {query_id}.")
    # a job decides itself: it re-cuts when its source step produced new results
    force: bool = option(False, help="Overwrite existing outputs (never a source video).", job=False)
    format: str = option(
        "media", check=_one_of(FORMATS),
        help=f"media (clips or a reel), or a timeline: {', '.join(TIMELINE_FORMATS)}.")
    jobs: int | None = option(None, minimum=1, help="ffmpeg processes at once. Default: the number of cores.")
    # job-only: the earlier step of the job whose results file is cut
    source: str = option("search", check=_one_of(SOURCES), help="The job step whose results are cut.")

    def check(self) -> tuple[tuple[str, ...], str] | None:
        if self.concat is not None and self.copy:
            return ("copy", "concat"), "{0} cannot be combined with {1} (reels are always cut accurately)"
        if self.concat is not None and self.format != "media":
            return ("concat", "format"), "{0} makes a media reel; it cannot be combined with {1} " + self.format
        return None

    def out_dir(self) -> Path:
        """Where the clips or the timeline go: ``out``, else ``clips`` next to the results file."""
        if self.out is not None:
            return Path(self.out)
        if self.results is None:
            raise ValueError("CutOptions without results has no default out folder")
        return Path(self.results).parent / DEFAULT_OUT


OPTIONS = CutOptions


def catalog_guard(workspace: "Workspace | None"):
    """The ``protected`` callable of the media layer: the catalog's videos are never written."""
    if workspace is None:
        return None
    from r2cli.catalog.guards import source_video_paths

    return lambda paths: source_video_paths(workspace, paths)


def cut_results(
    results_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    reporter: Reporter = NULL_REPORTER,
    **flags: Any,
) -> "CutReport":
    """Cut the rows of a moments or summary file; ``flags`` are the fields of ``CutOptions``.

    The library form of ``r2cli cut`` without a catalog (only the rows' own sources are
    protected): ``cut_results(path, out, top=5, format="edl")`` equals
    ``run_cut(None, CutOptions.from_flags(results=path, out=out, top=5, format="edl"))``.
    (It lived in ``r2cli.media.cut`` until #23: the media layer does not import the use case.)

    Raises:
        UsageError: a flag breaks its rule (the message names it), see ``run_cut``.
    """
    options = CutOptions.from_flags(
        results=Path(results_path), out=Path(out_dir) if out_dir is not None else None,
        **{k: Path(v) if k == "concat" and v is not None else v for k, v in flags.items()},
    )
    return run_cut(None, options, reporter=reporter)


def run_cut(workspace: "Workspace | None", options: CutOptions, *, reporter: Reporter = NULL_REPORTER) -> "CutReport":
    """Cut the rows of ``options.results``: one clip per row, one reel (``concat``) or a timeline.

    ``workspace`` is the catalog to protect: none of its videos is ever written, even with
    ``force``; ``None`` protects only the rows' own sources. Writing below a folder of
    catalogued videos is allowed with a warning (the folders cut creates are marked, so
    ``r2cli index`` skips them).

    Raises:
        UsageError: no results file, a saliency file, a bad template, an existing reel or timeline
            without force, a reel that would replace a source video.
        InputError: the file is not an r2cli moments/summary output; an output folder cannot be
            created or written.
        MediaError: a reel could not be made.
        MissingDependencyError: ffmpeg/ffprobe missing.
        CatalogError: the catalog exists but cannot be read.
    """
    from r2cli.errors import UsageError
    from r2cli.media.segments import segments_from_results
    from r2cli.outputs import read_results

    if options.results is None:
        raise UsageError("cut needs a results file (moments.parquet or summary.parquet)")
    results_path = Path(options.results)
    results = read_results(results_path)
    segments = segments_from_results(results, top=options.top, min_score=options.min_score)
    out_dir = options.out_dir()
    report = _cut(options, results, segments, out_dir, catalog_guard(workspace), reporter)
    if workspace is not None and report.written and report.format == "media":
        _warn_inside_archive(workspace, Path(report.out_dir or out_dir), reporter)
    return report


def _warn_inside_archive(workspace: "Workspace", folder: Path, reporter: Reporter) -> None:
    from r2cli.catalog.guards import catalogued_folder_above

    archive = catalogued_folder_above(workspace, folder)
    if archive is not None:
        where = "holds" if archive == folder.resolve() else f"is inside {archive}, a folder with"
        reporter.warn(f"{folder} {where} catalogued videos; r2cli marked its outputs (container comment "
                      "'r2cli output') so that `r2cli index` does not take them for new videos")


def _cut(options: CutOptions, results: Any, segments: list, out_dir: Path, protected: Any,
         reporter: Reporter) -> "CutReport":
    from r2cli.media import _process
    from r2cli.media.clips import cut_segments
    from r2cli.media.reels import make_reel
    from r2cli.media.segments import ClipOutcome, CutReport, check_segments

    results_path = Path(options.results)
    if options.format != "media":
        from r2cli.media.timeline import cut_events, rate_warnings, timeline_path, write_timeline

        began = time.monotonic()
        usable, skipped = check_segments(segments, pad=options.pad, reporter=reporter)
        _process.prepare_output_dir(out_dir, "--out")
        target = timeline_path(out_dir, results_path.stem, options.format)
        items = [(segment, info, start, end) for _, segment, info, start, end in usable]
        path = write_timeline(
            items,
            target,
            format=options.format,
            title=f"r2cli {results.kind} {results_path.stem}",
            force=options.force,
        )
        warnings = rate_warnings(options.format, cut_events(items))
        for warning in warnings:
            reporter.warn(warning)
        outcomes = dict(skipped)
        for position, segment, _info, start, end in usable:
            outcomes[position] = ClipOutcome(segment, "written", output=str(path), start_s=start, end_s=end)
        return CutReport(
            mode="timeline",
            format=options.format,
            out_dir=str(out_dir),
            outcomes=[outcomes[i] for i in sorted(outcomes)],
            timeline=str(path),
            jobs=0,
            elapsed_s=time.monotonic() - began,
            warnings=warnings,
        )
    if options.concat is not None:
        return make_reel(segments, options.concat, force=options.force, pad=options.pad, jobs=options.jobs,
                         protected=protected, flag="--concat", reporter=reporter)
    return cut_segments(segments, out_dir, copy=options.copy, template=options.template, force=options.force,
                        pad=options.pad, jobs=options.jobs, protected=protected, reporter=reporter)


def job_step(workspace: "Workspace", table: Mapping[str, Any], context: JobContext, *,
             reporter: Reporter = NULL_REPORTER) -> StepResult:
    """The ``[cut]`` step of a job: cut the results file of its source step (``source``).

    Skipped when the source step was skipped (its results did not change) and the clips folder
    already holds outputs, unless the job is forced; results that were just recomputed replace
    what an earlier run cut from the old ones.
    """
    options = CutOptions.from_table(table, where=context.where("cut"), base=context.base)
    source = context.step(options.source)
    if source is None or source.status == "error":
        return StepResult(name="cut", status="error", detail=f"nothing to cut: the {options.source} step did not finish")
    results_file = source.outputs.get("moments") or source.outputs.get("summary")
    if not results_file:
        return StepResult(name="cut", status="error", detail=f"the {options.source} step wrote no results file to cut")
    target = options.out if options.out is not None else context.out_dir / DEFAULT_OUT
    if source.status == "skipped" and not context.force and _holds_outputs(target):
        return StepResult(name="cut", status="skipped", detail=f"the {options.source} results did not change; "
                          f"clips are in {target} (use --force to cut again)", outputs={"out_dir": str(target)})
    options = options.replace(results=Path(results_file), out=target, force=context.force or source.status == "done")
    started = time.perf_counter()
    report = run_cut(workspace, options, reporter=reporter)
    outputs = {"out_dir": str(target)}
    if report.timeline:
        outputs["timeline"] = report.timeline
    if report.reel:
        outputs["reel"] = report.reel
    return StepResult(
        name="cut",
        status="done" if report.ok else "error",
        detail=report.describe(),
        seconds=time.perf_counter() - started,
        outputs=outputs,
        counts=report.counts(),
    )


def _holds_outputs(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())
    except OSError:
        return False
