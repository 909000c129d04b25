"""`r2cli search`: ground sentences in the whole archive and rank the moments across videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.cli._common import CatalogOpt, ClipWeightsOpt, DeviceOpt, JsonOpt, RichReporter, WorkspaceOpt, console, err_console, print_json, workspace_from

_TABLE_ROWS_PER_QUERY = 10


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, float(seconds)), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes}:{secs:05.2f}"


def render_search_result(result) -> None:
    """Rich table of the top moments of each query, then where the outputs are."""
    from rich.markup import escape
    from rich.table import Table

    frame = result.moments
    table = Table(title=f"search run {result.run_id}", show_header=True, header_style="bold")
    for name, justify in (("query", "left"), ("#", "right"), ("score", "right"), ("start", "right"),
                          ("end", "right"), ("video", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    shown = frame[frame["rank_in_query"] <= _TABLE_ROWS_PER_QUERY] if len(frame) else frame
    last_query = None
    for row in shown.itertuples(index=False):
        label = escape(f"{row.query_id}: {row.query}") if row.query_id != last_query else ""
        last_query = row.query_id
        table.add_row(label, str(row.rank_in_query), f"{row.score:.4f}", _clock(row.start_s), _clock(row.end_s),
                      escape(Path(row.path).name))
    if len(shown):
        console.print(table)
    else:
        console.print("no moment passed the filters (try a lower --min-score)", highlight=False)
    counts = result.counts
    verb = "reused" if result.resumed else "searched"
    console.print(
        f"{counts.get('queries', 0)} queries {verb} over {counts.get('videos_searched', 0)} videos "
        f"({counts.get('pairs', 0)} window-query pairs) in {result.timings.get('total_s', 0):.1f} s; "
        f"outputs: {result.out_dir}",
        highlight=False,
        soft_wrap=True,
    )
    for skipped in result.skipped[:10]:
        err_console.print(f"skipped {skipped.path}: {skipped.reason}", highlight=False, markup=False, soft_wrap=True)
    if len(result.skipped) > 10:
        err_console.print(f"... and {len(result.skipped) - 10} more videos skipped", highlight=False)


def result_to_json(result) -> dict:
    """The JSON document `r2cli search --json` prints."""
    frame = result.moments
    rows = []
    for row in frame.itertuples(index=False):
        rows.append({
            "query_id": row.query_id, "query": row.query, "rank": int(row.rank_in_query),
            "rank_in_video": int(row.rank_in_video), "video_id": None if row.video_id is None or row.video_id != row.video_id else int(row.video_id),
            "path": row.path, "start_s": float(row.start_s), "end_s": float(row.end_s), "score": float(row.score),
        })
    return {
        "run_id": result.run_id,
        "out_dir": str(result.out_dir),
        "resumed": result.resumed,
        "files": {name: str(path) for name, path in result.files.items()},
        "counts": result.counts,
        "timings": result.timings,
        "model": result.model,
        "skipped": [{"video_id": s.video_id, "path": s.path, "reason": s.reason} for s in result.skipped],
        "warnings": result.warnings,
        "moments": rows,
    }


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        texts: Annotated[
            Optional[list[str]], typer.Argument(metavar="[QUERY]...", help="Sentences to search for (one or more).")
        ] = None,
        queries_file: Annotated[
            Optional[Path],
            typer.Option("--queries", "-q", help="Query file: text (one per line), .csv or .jsonl with qid/query columns."),
        ] = None,
        video: Annotated[
            Optional[list[str]],
            typer.Option("--video", help="Only videos whose catalog id, path or file name matches this glob (repeat)."),
        ] = None,
        min_duration: Annotated[
            Optional[float], typer.Option("--min-duration", help="Only videos at least this long (s).", min=0)
        ] = None,
        max_duration: Annotated[
            Optional[float], typer.Option("--max-duration", help="Only videos at most this long (s).", min=0)
        ] = None,
        path_contains: Annotated[
            Optional[str], typer.Option("--path-contains", help="Only videos whose path contains this text.")
        ] = None,
        candidates: Annotated[
            Optional[int],
            typer.Option("--candidates", help="Windows per query that R2-Tuning grounds, best by CLIP similarity (default 40 on a CPU, 2000 on a GPU; all when fewer).", min=1),
        ] = None,
        top_k: Annotated[int, typer.Option("--top-k", help="Moments per query kept, ranked across videos.", min=1)] = 10,
        min_score: Annotated[Optional[float], typer.Option("--min-score", help="Drop moments scoring below this.")] = None,
        preset: Annotated[
            Optional[str], typer.Option("--preset", help="Dataset preset (fps, rounding, NMS). Default: the checkpoint's.")
        ] = None,
        checkpoint: Annotated[
            Optional[str],
            typer.Option("--checkpoint", help="Head checkpoint file or registry name. Default: $R2CLI_CHECKPOINT, else qvhighlights."),
        ] = None,
        clip_weights: ClipWeightsOpt = None,
        device: DeviceOpt = "auto",
        window: Annotated[
            float, typer.Option("--window", help="Window length (s) for long videos.", min=0.001)
        ] = 150.0,
        stride: Annotated[float, typer.Option("--stride", help="Distance between window starts (s).", min=0.001)] = 75.0,
        out: Annotated[
            Optional[Path], typer.Option("--out", help="Run folder for the outputs. Default: <workspace>/runs/<run id>.")
        ] = None,
        output_format: Annotated[
            str, typer.Option("--format", help="parquet, or official (also the official submission JSON Lines).")
        ] = "parquet",
        batch_size: Annotated[
            Optional[int], typer.Option("--batch-size", help="Window-query pairs per forward pass.", min=1)
        ] = None,
        precision: Annotated[
            str, typer.Option("--precision", help="fp32 (official), or bf16/fp16 autocast on a GPU.")
        ] = "fp32",
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Find the moments of the archive that match sentences, ranked across videos.

        CLIP embeddings pre-rank every video (long videos in overlapping windows); R2-Tuning then
        grounds the best candidates, batched. Writes moments.parquet and saliency.parquet to a run
        folder and records the run in the catalog.

        Example:  r2cli search "dog catches frisbee" --top-k 5

        Example:  r2cli search --queries queries.csv --video '*.mp4' --out results/
        """
        from r2cli.errors import UsageError
        from r2cli.inference.queries import collect_queries
        from r2cli.inference.search import SearchOptions, search as run_search

        if output_format not in ("parquet", "official"):
            raise UsageError(f"--format must be parquet or official, got {output_format!r}")
        queries = collect_queries(texts or [], queries_file)
        options = SearchOptions(
            videos=tuple(video or ()),
            min_duration=min_duration,
            max_duration=max_duration,
            path_contains=path_contains,
            candidates=candidates,
            top_k=top_k,
            min_score=min_score,
            preset=preset,
            checkpoint=checkpoint,
            clip_weights=clip_weights,
            device=device,
            window_s=window,
            stride_s=stride,
            out=out,
            format=output_format,
            batch_size=batch_size,
            precision=precision,
        )
        options.validate()
        ws = workspace_from(workspace, catalog)
        with RichReporter(enabled=not json_output) as reporter:
            result = run_search(ws, queries, options=options, reporter=reporter)
        if json_output:
            print_json(result_to_json(result))
        else:
            render_search_result(result)
