"""`r2cli summarize`: a summary of each video within a time budget, from R2-Tuning saliency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.cli._common import CatalogOpt, ClipWeightsOpt, DeviceOpt, JsonOpt, RichReporter, WorkspaceOpt, console, err_console, print_json, workspace_from


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, float(seconds)), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


def render_summary_result(result) -> None:
    """One table row per video (segments selected, total vs budget), then where the outputs are."""
    from rich.markup import escape
    from rich.table import Table

    verb = "reused" if result.resumed else "summarized"
    table = Table(title=f"summarize run {result.run_id}", show_header=True, header_style="bold")
    for name, justify in (("video", "left"), ("query", "left"), ("shots", "right"), ("selected", "right"),
                          ("summary", "right"), ("budget", "right"), ("duration", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for video in result.videos:
        source = "" if video.query_source == "--query" else f" ({video.query_source})"
        table.add_row(
            escape(Path(video.path).name),
            escape(f"{video.query}{source}"),
            str(video.shots),
            f"{video.segments_selected}/{video.segments}",
            _clock(video.selected_s),
            _clock(video.budget_s),
            _clock(video.duration_s),
        )
    console.print(table)
    counts = result.counts
    console.print(
        f"{counts.get('videos_summarized', len(result.videos))} videos {verb} "
        f"({counts.get('segments_selected', 0)} segments selected) in {result.timings.get('total_s', 0):.1f} s; "
        f"outputs: {result.out_dir}",
        highlight=False,
        soft_wrap=True,
    )
    if "reel" in result.files:
        console.print(f"reel: {result.files['reel']}", highlight=False, markup=False, soft_wrap=True)
    for skipped in result.skipped[:10]:
        err_console.print(f"skipped {skipped.path}: {skipped.reason}", highlight=False, markup=False, soft_wrap=True)
    if len(result.skipped) > 10:
        err_console.print(f"... and {len(result.skipped) - 10} more videos skipped", highlight=False)


def result_to_json(result) -> dict:
    """The JSON document `r2cli summarize --json` prints."""
    return {
        "run_id": result.run_id,
        "out_dir": str(result.out_dir),
        "resumed": result.resumed,
        "files": {name: str(path) for name, path in result.files.items()},
        "counts": result.counts,
        "timings": result.timings,
        "model": result.model,
        "videos": [video.to_dict() for video in result.videos],
        "skipped": [{"video_id": s.video_id, "path": s.path, "reason": s.reason} for s in result.skipped],
        "warnings": result.warnings,
        "reel": result.reel.to_dict() if result.reel is not None else None,
    }


def register(app: typer.Typer) -> None:
    @app.command("summarize")
    def summarize(
        videos: Annotated[
            Optional[list[str]],
            typer.Argument(metavar="[VIDEO]...", help="Catalog ids, paths, file names or globs. Default: every indexed video."),
        ] = None,
        ratio: Annotated[
            Optional[float], typer.Option("--ratio", help="Budget as a fraction of each video's duration, in (0, 1].")
        ] = None,
        seconds: Annotated[
            Optional[float], typer.Option("--seconds", help="Budget in seconds per video (capped at its duration).")
        ] = None,
        query: Annotated[
            Optional[str],
            typer.Option("--query", help="Summarize for this sentence. Default: each video's title (query-free)."),
        ] = None,
        preset: Annotated[
            Optional[str],
            typer.Option("--preset", help="Domain preset, e.g. tvsum_bk or youtube_dog; without --checkpoint its pretrained head."),
        ] = None,
        checkpoint: Annotated[
            Optional[str],
            typer.Option("--checkpoint", help="Head checkpoint file or registry name. Default: the preset's, $R2CLI_CHECKPOINT, else qvhighlights."),
        ] = None,
        clip_weights: ClipWeightsOpt = None,
        device: DeviceOpt = "auto",
        reel: Annotated[
            Optional[Path], typer.Option("--reel", help="Render the selected segments, in time order, into this file (.mp4, .mov, .mkv).")
        ] = None,
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --reel file.")] = False,
        out: Annotated[
            Optional[Path], typer.Option("--out", help="Run folder for the outputs. Default: <workspace>/runs/<run id>.")
        ] = None,
        output_format: Annotated[
            str, typer.Option("--format", help="parquet, or official (also YouTube/TVSum saliency JSON Lines).")
        ] = "parquet",
        window: Annotated[
            Optional[float], typer.Option("--window", help="Window length (s) for long videos. Default 150.", min=0.001)
        ] = None,
        stride: Annotated[
            Optional[float], typer.Option("--stride", help="Distance between window starts (s). Default 75.", min=0.001)
        ] = None,
        shots: Annotated[str, typer.Option("--shots", help="Shot detection: kts (default) or threshold.")] = "kts",
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Summarize videos within a time budget: the most salient shots, chosen by a knapsack.

        Query-free by default: each video's title is the query, as R2-Tuning does for TVSum.

        Query-focused with --query. Give exactly one of --ratio or --seconds.

        Writes summary.parquet to a run folder and records the run in the catalog.

        Example:  r2cli summarize --ratio 0.15

        Example:  r2cli summarize match.mp4 --seconds 60 --query "goal celebration" --reel highlights.mp4
        """
        from r2cli.inference.summarize import check_budget, summarize as run_summarize

        check_budget(ratio, seconds)
        ws = workspace_from(workspace, catalog)
        with RichReporter(enabled=not json_output) as reporter:
            result = run_summarize(
                ws,
                tuple(videos or ()),
                ratio=ratio,
                seconds=seconds,
                query=query,
                preset=preset,
                checkpoint=checkpoint,
                clip_weights=clip_weights,
                device=device,
                reel=reel,
                force=force,
                out=out,
                output_format=output_format,
                window_s=window,
                stride_s=stride,
                shot_method=shots,
                reporter=reporter,
            )
        if json_output:
            print_json(result_to_json(result))
        else:
            render_summary_result(result)
