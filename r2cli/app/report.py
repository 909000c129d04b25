"""`r2cli report`: the options of a static HTML report and the one call the CLI (or a job step) makes.

A job or the search/summarize commands can add a report with one line::

    from r2cli.app.report import ReportOptions, run_report
    run_report(ReportOptions(source=result.out_dir), reporter)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.options import Options, option
from r2cli.app.steps import JobContext, StepResult
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.paths import Workspace
    from r2cli.report.pages import ReportResult


@dataclass(frozen=True)
class ReportOptions(Options):
    """What ``r2cli report`` builds and where."""

    section = "report"

    source: Path | None = option(
        None, job=False,
        help="Run folder (search, summarize, duplicates or a job's) or a moments/summary/duplicates Parquet file.")
    out: Path | None = option(None, help="Folder of the report. Default: report/ in the run folder.")
    page_size: int = option(100, minimum=1, help="Moment cards per page; longer lists are split into pages.")
    thumb_width: int = option(240, minimum=32, maximum=1920, help="Width of the thumbnails in pixels.")
    strip: int = option(12, minimum=0, maximum=200,
                        help="Thumbnails along each video's time axis on its page.")
    plots_per_video: int = option(12, minimum=0,
                                  help="Saliency plots per video page at most (the queries with the best moments first).")
    jobs: int | None = option(None, minimum=1, help="ffmpeg processes at once. Default: the number of cores.")
    force: bool = option(False, help="Kept for old scripts: an earlier r2cli report at --out is always replaced, "
                                     "and a folder holding anything else never is.")



OPTIONS = ReportOptions


def run_report(options: ReportOptions, reporter: Reporter = NULL_REPORTER) -> "ReportResult":
    """Build the report ``options`` describe (see ``r2cli.report.build.build_report``).

    Raises:
        UsageError: no source, or an option breaks its rule.
    """
    from r2cli.errors import UsageError
    from r2cli.report.build import build_report

    options.validate()
    if options.source is None:
        raise UsageError("RUN is required: a run folder or a moments/summary Parquet file")
    return build_report(options.source, options.out, reporter=reporter, page_size=options.page_size,
                        thumb_width=options.thumb_width, strip=options.strip,
                        plots_per_video=options.plots_per_video, jobs=options.jobs, force=options.force)


def report_run_folder(out_dir: Path, enabled: bool, reporter: Reporter) -> dict[str, Path]:
    """``--report`` of search and summarize: the report of the run just written (``report/`` in it).

    Returns ``{"report": index.html}`` when a report was built, else nothing.
    """
    if not enabled:
        return {}
    result = run_report(ReportOptions(source=Path(out_dir)), reporter)
    return {"report": Path(result.index)}


def job_step(workspace: "Workspace", table: Mapping[str, Any], context: JobContext, *,
             reporter: Reporter = NULL_REPORTER) -> StepResult:
    """``[report]``: a report of everything the job wrote (its out folder), in ``<job out>/report``.

    Rebuilt whenever an earlier step produced new outputs (or with ``--force``); otherwise an
    existing report is kept.
    """
    out = context.out_dir / "report"
    options = ReportOptions.from_table(table, where=context.where("report"), base=context.base,
                                       overrides={"source": context.out_dir})
    if options.out is None:
        options = options.replace(out=out)
    target = Path(options.out)
    fresh = any(step.fresh for step in context.previous)
    if not fresh and not context.force and (target / "index.html").is_file():
        return StepResult(name="report", status="skipped", outputs={"report": str(target / "index.html")},
                          detail=f"nothing changed since the report in {target} (use --force to rebuild)")
    started = time.perf_counter()
    result = run_report(options, reporter)
    return StepResult(name="report", status="done", seconds=time.perf_counter() - started,
                      outputs={"report": str(result.index)},
                      detail=f"report of the job in {result.index}")
