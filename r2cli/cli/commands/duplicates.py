"""`r2cli duplicates`: the same footage stored twice (re-encodes, other sizes, trimmed copies, compilations)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.app.duplicates import DuplicatesOptions as O
from r2cli.cli._common import CatalogOpt, JsonOpt, RichReporter, WorkspaceOpt, console, err_console, print_json, workspace_from
from r2cli.safe_text import one_line

_TABLE_ROWS = 30  # pairs shown in the terminal (all are in duplicates.parquet)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, float(seconds)), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


def _offset(seconds: float) -> str:
    return ("+" if seconds >= 0 else "-") + _clock(abs(seconds))


def duplicates_table(frame, title: str):
    """One row per pair: kind, similarity, video a and its range, video b and its range, offset."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("kind", no_wrap=True)
    table.add_column("sim", justify="right", no_wrap=True)
    table.add_column("video a", overflow="ellipsis", ratio=1, min_width=8)
    table.add_column("range a", justify="right", no_wrap=True)
    table.add_column("video b", overflow="ellipsis", ratio=1, min_width=8)
    table.add_column("range b", justify="right", no_wrap=True)
    table.add_column("offset", justify="right", no_wrap=True)
    for row in frame.itertuples(index=False):
        table.add_row(row.kind, f"{row.similarity:.3f}", escape(one_line(Path(row.path_a).name)),
                      f"{_clock(row.a_start_s)}-{_clock(row.a_end_s)}", escape(one_line(Path(row.path_b).name)),
                      f"{_clock(row.b_start_s)}-{_clock(row.b_end_s)}", _offset(row.offset_s))
    return table


def result_to_json(result) -> dict:
    """The JSON document `r2cli duplicates --json` prints."""
    rows = []
    for row in result.pairs.itertuples(index=False):
        rows.append({name: (None if value != value else value.item() if hasattr(value, "item") else value)
                     for name, value in row._asdict().items()})
    return {"run_id": result.run_id, "out_dir": str(result.out_dir), "resumed": result.resumed,
            "files": {name: str(path) for name, path in result.files.items()}, "counts": result.counts,
            "timings": result.timings, "settings": result.settings, "skipped": result.skipped,
            "warnings": result.warnings, "pairs": rows}


def register(app: typer.Typer) -> None:
    @app.command("duplicates")
    def duplicates(
        video: Annotated[Optional[list[str]], typer.Option("--video", help=O.help("videos") + " Repeat the flag.")] = None,
        min_duration: Annotated[Optional[float], typer.Option("--min-duration", help=O.help("min_duration"))] = None,
        max_duration: Annotated[Optional[float], typer.Option("--max-duration", help=O.help("max_duration"))] = None,
        path_contains: Annotated[Optional[str], typer.Option("--path-contains", help=O.help("path_contains"))] = None,
        min_similarity: Annotated[Optional[float], typer.Option("--min-similarity", help=O.help("min_similarity"))] = None,
        min_length: Annotated[Optional[float], typer.Option("--min-length", help=O.help("min_length"))] = None,
        max_gap: Annotated[Optional[float], typer.Option("--max-gap", help=O.help("max_gap"))] = None,
        coverage: Annotated[Optional[float], typer.Option("--coverage", help=O.help("coverage"))] = None,
        bands: Annotated[Optional[int], typer.Option("--bands", help=O.help("bands"))] = None,
        rows: Annotated[Optional[int], typer.Option("--rows", help=O.help("rows"))] = None,
        max_bucket: Annotated[Optional[int], typer.Option("--max-bucket", help=O.help("max_bucket"))] = None,
        min_votes: Annotated[Optional[int], typer.Option("--min-votes", help=O.help("min_votes"))] = None,
        max_offsets: Annotated[Optional[int], typer.Option("--max-offsets", help=O.help("max_offsets"))] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help=O.help("out"))] = None,
        wait: Annotated[Optional[float], typer.Option("--wait", help=O.help("wait"))] = None,
        report: Annotated[bool, typer.Option("--report", help=O.help("report"))] = False,
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Find videos stored twice and footage shared between videos, from the index's clip embeddings.

        Re-encodes, other resolutions and letterboxed copies come out as kind duplicate; a trimmed
        copy as contained (video a lies inside video b, at the offset shown); footage two videos
        share, as in a compilation, as shared; the same file under two paths as identical. No model
        runs: clip signatures are hashed into buckets (no comparison of every pair), candidate
        alignments are voted, and each is checked with the exact cosine of the aligned clips.
        Writes duplicates.parquet to a run folder.

        Example:  r2cli duplicates --min-length 30

        Example:  r2cli duplicates --path-contains /archive/2019/ --out dups/ --report
        """
        from r2cli.app.duplicates import run_duplicates

        options = O.from_flags(
            videos=tuple(video) if video else None, min_duration=min_duration, max_duration=max_duration,
            path_contains=path_contains, min_similarity=min_similarity, min_length=min_length, max_gap=max_gap,
            coverage=coverage, bands=bands, rows=rows, max_bucket=max_bucket, min_votes=min_votes,
            max_offsets=max_offsets, out=out, wait=wait, report=report or None,
        )
        ws = workspace_from(workspace, catalog)
        with RichReporter(enabled=not json_output) as reporter:
            result = run_duplicates(ws, options, reporter=reporter)
        if json_output:
            print_json(result_to_json(result))
            return
        frame = result.pairs
        if len(frame):
            console.print(duplicates_table(frame.head(_TABLE_ROWS), f"duplicates run {result.run_id}"))
            if len(frame) > _TABLE_ROWS:
                console.print(f"(the table shows {_TABLE_ROWS} of {len(frame)} pairs; all are in duplicates.parquet)",
                              highlight=False)
        else:
            console.print("no duplicates found", highlight=False)
        counts = result.counts
        console.print(
            f"{len(frame)} {'pair' if len(frame) == 1 else 'pairs'} among {counts.get('videos_compared', 0)} videos "
            f"({counts.get('clips', 0)} clips) in {result.timings.get('total_s', 0):.1f} s; "
            f"outputs: {one_line(result.out_dir)}",
            highlight=False, markup=False, soft_wrap=True)
        if "report" in result.files:
            console.print(f"report: {one_line(result.files['report'])}", highlight=False, markup=False, soft_wrap=True)
        for skipped in result.skipped[:10]:
            err_console.print(f"skipped {one_line(skipped['path'])}: {one_line(skipped['reason'])}", highlight=False,
                              markup=False, soft_wrap=True)
        if len(result.skipped) > 10:
            err_console.print(f"... and {len(result.skipped) - 10} more videos skipped", highlight=False)
