"""`r2cli cut`: clips, reels and editor timelines from a moments or summary Parquet file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from r2cli.cli._common import JsonOpt, RichReporter, console, print_json


def cut(
    results: Annotated[str, typer.Argument(help="moments.parquet or summary.parquet written by r2cli.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Folder for the clips (or the EDL/OTIO file).")],
    top: Annotated[
        Optional[int],
        typer.Option("--top", help="Moments: the N best of each query. Summaries: the N best selected segments per video."),
    ] = None,
    min_score: Annotated[
        Optional[float], typer.Option("--min-score", help="Skip rows scoring below X (score, or mean saliency).")
    ] = None,
    pad: Annotated[float, typer.Option("--pad", help="Seconds added before and after each cut (clamped to the video).")] = 0.0,
    copy: Annotated[
        bool, typer.Option("--copy", help="Stream copy: fast, but clips start at the keyframe before the start.")
    ] = False,
    concat: Annotated[
        Optional[str], typer.Option("--concat", help="Join the cuts into this one reel (accurate cuts, audio kept).")
    ] = None,
    template: Annotated[
        str,
        typer.Option(
            "--template",
            help="Clip names; fields {video} {query} {rank} {start} {end} {index} {score} {video_id} {query_id}.",
        ),
    ] = "{video}-{query}-{rank}.mp4",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="media (clips/reel); an editor timeline: edl (CMX 3600), otio, fcpxml, fcp7 (FCP 7 XML); "
                               "captions: vtt, srt; chapters (ffmetadata + WebVTT).")
    ] = "media",
    jobs: Annotated[
        Optional[int], typer.Option("--jobs", "-j", help="ffmpeg processes at once. Default: the number of cores.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Cut search moments or summary segments into clips, a reel, or an editor timeline.

    One clip per row, cut accurately (re-encoded, within a frame of the request) unless --copy.
    Missing sources and bad rows are named and skipped; existing files are kept unless --force.

    Example:  r2cli cut .r2cli/runs/RUN/moments.parquet --out clips --top 5 --pad 1
    """
    from r2cli.media.cut import cut_results

    with RichReporter(enabled=not json_output) as reporter:
        report = cut_results(
            results,
            out,
            top=top,
            min_score=min_score,
            pad=pad,
            copy=copy,
            concat=concat,
            template=template,
            force=force,
            format=output_format,
            jobs=jobs,
            reporter=reporter,
        )
    if json_output:
        print_json(report.to_dict())
    else:
        _render(report)
    if not report.ok:
        raise typer.Exit(1)


def _render(report) -> None:
    from rich.markup import escape
    from rich.table import Table

    counts = report.counts()
    if report.timeline:
        console.print(f"wrote {report.timeline} ({counts['written']} event(s))", highlight=False, markup=False)
    elif report.reel:
        console.print(f"wrote reel {report.reel} ({counts['written']} segment(s))", highlight=False, markup=False)
    elif report.written:
        table = Table("clip", "source", "start s", "end s", title=f"{counts['written']} clip(s) in {report.out_dir}")
        for outcome in report.written:
            table.add_row(
                escape(outcome.output or ""),
                escape(outcome.segment.path),
                f"{outcome.start_s:.3f}",
                f"{outcome.end_s:.3f}",
            )
        console.print(table)
    console.print(
        f"{counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed "
        f"in {report.elapsed_s:.1f} s ({report.mode}, {report.jobs} job(s))",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("cut")(cut)
