"""`r2cli report`: a static HTML report of a search, summarize or job run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.app.report import ReportOptions
from r2cli.cli._common import JsonOpt, RichReporter, console, err_console, print_json
from r2cli.safe_text import one_line

_H = ReportOptions.help


def report(
    source: Annotated[str, typer.Argument(help=_H("source"))],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=_H("out"))] = None,
    page_size: Annotated[Optional[int], typer.Option("--page-size", help=_H("page_size"))] = None,
    thumb_width: Annotated[Optional[int], typer.Option("--thumb-width", help=_H("thumb_width"))] = None,
    strip: Annotated[Optional[int], typer.Option("--strip", help=_H("strip"))] = None,
    plots_per_video: Annotated[Optional[int], typer.Option("--plots-per-video", help=_H("plots_per_video"))] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", help=_H("jobs"))] = None,
    force: Annotated[Optional[bool], typer.Option("--force", help=_H("force"))] = None,
    json_output: JsonOpt = False,
) -> None:
    """Write a static HTML report (thumbnails, players, saliency plots) that opens from file:// offline.

    Example:  r2cli report .r2cli/runs/job-sample && xdg-open .r2cli/runs/job-sample/report/index.html
    """
    from r2cli.app.report import run_report

    options = ReportOptions.from_flags(source=Path(source), out=out, page_size=page_size, thumb_width=thumb_width,
                                       strip=strip, plots_per_video=plots_per_video, jobs=jobs, force=force)
    with RichReporter(enabled=not json_output) as reporter:
        result = run_report(options, reporter)
    if json_output:
        print_json(result.to_dict())
        return
    console.print(
        f"wrote {one_line(result.index)} ({result.pages} pages, {result.cards} cards, {result.thumbnails} thumbnails, "
        f"{result.plots} plots, {result.bytes / 1e6:.1f} MB) in {result.seconds:.1f} s",
        highlight=False, markup=False, soft_wrap=True,
    )
    for warning in result.warnings[:10]:
        err_console.print(f"warning: {one_line(warning)}", highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
