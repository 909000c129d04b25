"""`r2cli summarize`: a summary of each video within a time budget, from R2-Tuning saliency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.app.summarize import SummarizeOptions as O
from r2cli.cli._common import CatalogOpt, JsonOpt, RichReporter, WorkspaceOpt, console, err_console, print_json, workspace_from
from r2cli.cli.commands.search import plural, printable


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, float(seconds)), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


def summary_table(videos, title: str):
    """One row per video (shots, segments selected, total vs budget, duration), grouped by query, each
    video's file name whole (``r2cli.cli._tables``: a table where the names fit, else each name on its
    own line)."""
    from r2cli.cli._tables import NamedRows

    table = NamedRows([(name, "right") for name in ("shots", "selected", "summary", "budget", "duration")], "video",
                      title=printable(title), group_header="query")
    for video in videos:
        source = "" if video.query_source == "--query" else f" ({video.query_source})"
        table.add_row(
            str(video.shots),
            f"{video.segments_selected}/{video.segments}",
            _clock(video.selected_s),
            _clock(video.budget_s),
            _clock(video.duration_s),
            name=printable(Path(video.path).name),
            group=printable(f"{video.query}{source}"),
        )
    return table


def render_summary_result(result) -> None:
    """One table row per video (segments selected, total vs budget), then where the outputs are."""
    from r2cli.cli._tables import print_named_rows

    verb = "reused" if result.resumed else "summarized"
    print_named_rows(console, summary_table(result.videos, f"summarize run {result.run_id}"))
    counts = result.counts
    console.print(
        f"{plural(counts.get('videos_summarized', len(result.videos)), 'video')} {verb} "
        f"({plural(counts.get('segments_selected', 0), 'segment')} selected) in {result.timings.get('total_s', 0):.1f} s; "
        f"outputs: {printable(result.out_dir)}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if counts.get("windows_skipped"):
        err_console.print(f"{plural(counts['windows_skipped'], 'window')} skipped (damaged features); see run.json",
                          highlight=False, markup=False, soft_wrap=True)
    if "report" in result.files:
        console.print(f"report: {printable(result.files['report'])}", highlight=False, markup=False, soft_wrap=True)
    if "reel" in result.files:
        console.print(f"reel: {printable(result.files['reel'])}", highlight=False, markup=False, soft_wrap=True)
    for skipped in result.skipped[:10]:
        err_console.print(f"skipped {printable(skipped.path)}: {printable(skipped.reason)}", highlight=False, markup=False, soft_wrap=True)
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
        "settings": result.settings,
        "videos": [video.to_dict() for video in result.videos],
        "skipped": [{"video_id": s.video_id, "path": s.path, "reason": s.reason} for s in result.skipped],
        "warnings": result.warnings,
        "reel": result.reel.to_dict() if result.reel is not None else None,
    }


def register(app: typer.Typer) -> None:
    @app.command("summarize")
    def summarize(
        videos: Annotated[Optional[list[str]], typer.Argument(metavar="[VIDEO]...", help=O.help("videos"))] = None,
        ratio: Annotated[Optional[float], typer.Option("--ratio", help=O.help("ratio"))] = None,
        seconds: Annotated[Optional[float], typer.Option("--seconds", help=O.help("seconds"))] = None,
        query: Annotated[Optional[str], typer.Option("--query", help=O.help("query"))] = None,
        min_duration: Annotated[Optional[float], typer.Option("--min-duration", help=O.help("min_duration"))] = None,
        max_duration: Annotated[Optional[float], typer.Option("--max-duration", help=O.help("max_duration"))] = None,
        path_contains: Annotated[Optional[str], typer.Option("--path-contains", help=O.help("path_contains"))] = None,
        preset: Annotated[Optional[str], typer.Option("--preset", help=O.help("preset"))] = None,
        checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", help=O.help("checkpoint"))] = None,
        clip_weights: Annotated[
            Optional[str], typer.Option("--clip-weights", metavar="PATH|TAG", help=O.help("clip_weights"))] = None,
        device: Annotated[Optional[str], typer.Option("--device", help=O.help("device"))] = None,
        reel: Annotated[Optional[Path], typer.Option("--reel", help=O.help("reel"))] = None,
        force: Annotated[Optional[bool], typer.Option("--force", help=O.help("force"))] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help=O.help("out"))] = None,
        output_format: Annotated[Optional[str], typer.Option("--format", help=O.help("format"))] = None,
        window: Annotated[Optional[float], typer.Option("--window", help=O.help("window"))] = None,
        stride: Annotated[Optional[float], typer.Option("--stride", help=O.help("stride"))] = None,
        shots: Annotated[Optional[str], typer.Option("--shots", help=O.help("shots"))] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=O.help("batch_size"))] = None,
        wait: Annotated[Optional[float], typer.Option("--wait", help=O.help("wait"))] = None,
        ray: Annotated[
            Optional[str], typer.Option("--ray", metavar="local|HOST:PORT", help=O.help("ray"), show_default=False)
        ] = None,
        report: Annotated[bool, typer.Option("--report", help=O.help("report"))] = False,
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

        Example:  r2cli summarize --ratio 0.15 --ray local
        """
        from r2cli.app.summarize import run_summarize

        options = O.from_flags(
            videos=tuple(videos or ()), ratio=ratio, seconds=seconds, query=query, min_duration=min_duration,
            max_duration=max_duration, path_contains=path_contains, preset=preset, checkpoint=checkpoint,
            clip_weights=clip_weights, device=device, reel=reel, force=force, out=out, format=output_format,
            window=window, stride=stride, shots=shots, batch_size=batch_size, wait=wait, ray=ray,
            report=report or None,
        )
        ws = workspace_from(workspace, catalog)
        with RichReporter(enabled=not json_output) as reporter:
            result = run_summarize(ws, options, reporter=reporter)
        if json_output:
            print_json(result_to_json(result))
        else:
            render_summary_result(result)
