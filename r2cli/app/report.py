"""`r2cli report`: the options of a static HTML report and the one call the CLI (or a job step) makes.

A job or the search/summarize commands can add a report with one line::

    from r2cli.app.report import ReportOptions, run_report
    run_report(ReportOptions(source=result.out_dir), reporter)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from r2cli.app.options import Options, option
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.report.build import ReportResult


@dataclass(frozen=True)
class ReportOptions(Options):
    """What ``r2cli report`` builds and where."""

    section = "report"

    source: Path | None = option(
        None, job=False,
        help="Run folder (search, summarize or a job's) or a moments/summary Parquet file.")
    out: Path | None = option(None, help="Folder of the report. Default: report/ in the run folder.")
    page_size: int = option(100, minimum=1, help="Moment cards per page; longer lists are split into pages.")
    thumb_width: int = option(240, minimum=32, maximum=1920, help="Width of the thumbnails in pixels.")
    strip: int = option(12, minimum=0, maximum=200,
                        help="Thumbnails along each video's time axis on its page.")
    plots_per_video: int = option(12, minimum=0,
                                  help="Saliency plots per video page at most (the queries with the best moments first).")
    jobs: int | None = option(None, minimum=1, help="ffmpeg processes at once. Default: the number of cores.")
    force: bool = option(False, help="Replace an existing folder at --out that is not an r2cli report.")

    def check(self):
        if self.source is None:
            return (("source",), "{0} is required: a run folder or a moments/summary Parquet file")
        return None


def run_report(options: ReportOptions, reporter: Reporter = NULL_REPORTER) -> "ReportResult":
    """Build the report ``options`` describe (see ``r2cli.report.build.build_report``)."""
    from r2cli.report.build import build_report

    options.validate()
    return build_report(options.source, options.out, reporter=reporter, page_size=options.page_size,
                        thumb_width=options.thumb_width, strip=options.strip,
                        plots_per_video=options.plots_per_video, jobs=options.jobs, force=options.force)
