"""`r2cli cut`: clips, reels and editor timelines from a moments or summary Parquet file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from r2cli.app.cut import CutOptions
from r2cli.cli._common import CatalogOpt, JsonOpt, RichReporter, WorkspaceOpt, console, print_json, shown, workspace_from

_help = CutOptions.help


def cut(
    results: Annotated[str, typer.Argument(help=_help("results"))],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help=_help("out"), show_default=False)] = None,
    top: Annotated[Optional[int], typer.Option("--top", help=_help("top"), show_default=False)] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help=_help("min_score"), show_default=False)] = None,
    pad: Annotated[Optional[float], typer.Option("--pad", help=_help("pad"), show_default=False)] = None,
    copy: Annotated[bool, typer.Option("--copy", help=_help("copy"))] = False,
    concat: Annotated[Optional[str], typer.Option("--concat", help=_help("concat"), show_default=False)] = None,
    template: Annotated[Optional[str], typer.Option("--template", help=_help("template"), show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help=_help("force"))] = False,
    output_format: Annotated[
        Optional[str], typer.Option("--format", help=_help("format"), show_default=False)
    ] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", help=_help("jobs"), show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    catalog: CatalogOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Cut search moments or summary segments into clips, a reel, or an editor timeline.

    One clip per row, cut accurately (re-encoded, within a frame of the request) unless --copy.
    Missing sources and bad rows are named and skipped; existing files are kept unless --force;
    a video of the catalog is never overwritten, even with --force.

    Example:  r2cli cut .r2cli/runs/RUN/moments.parquet --top 5 --pad 1
    """
    from pathlib import Path

    from r2cli.app.cut import run_cut

    options = CutOptions.from_flags(
        results=Path(results),
        out=Path(out) if out is not None else None,
        top=top,
        min_score=min_score,
        pad=pad,
        copy=copy or None,
        concat=Path(concat) if concat is not None else None,
        template=template,
        force=force or None,
        format=output_format,
        jobs=jobs,
    )
    with RichReporter(enabled=not json_output) as reporter:
        report = run_cut(workspace_from(workspace, catalog), options, reporter=reporter)
    if json_output:
        print_json(report.to_dict())
    else:
        render(report)
    if not report.ok:
        raise typer.Exit(1)


def render(report) -> None:
    """The clips table (file names; the folder is in the title) and the one-line summary."""
    from pathlib import Path

    from r2cli.cli._tables import NamedRows, print_named_rows
    from r2cli.safe_text import one_line

    if report.written and not report.timeline and not report.reel:
        clips = NamedRows([("source", "left"), ("start s", "right"), ("end s", "right")], "clip",
                          title=one_line(f"{len(report.written)} clip(s) in {report.out_dir}"), name_first=True)
        for outcome in report.written:
            clips.add_row(one_line(Path(outcome.segment.path).name), f"{outcome.start_s:.3f}", f"{outcome.end_s:.3f}",
                          name=one_line(Path(outcome.output or "").name))
        print_named_rows(console, clips)
    console.print(one_line(report.describe()), highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("cut")(cut)
