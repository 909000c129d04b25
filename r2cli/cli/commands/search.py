"""`r2cli search`: ground sentences in the whole archive and rank the moments across videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from r2cli.app.search import SearchOptions as O

from r2cli.cli._common import CatalogOpt, JsonOpt, RichReporter, WorkspaceOpt, console, err_console, print_json, workspace_from
from r2cli.safe_text import one_line

_TABLE_ROWS_PER_QUERY = 10
_TABLE_QUERIES = 20  # queries shown in the terminal table (all are in moments.parquet)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, float(seconds)), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes}:{secs:05.2f}"


printable = one_line  # the one rule for names and queries on a terminal (r2cli.safe_text)


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``1 query``, ``2 queries``."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


def search_table(frame, title: str):
    """The ranked moments: one row per moment, grouped by query, each video's file name whole
    (``r2cli.cli._tables``: a table where the names fit, else each name on its own line)."""
    from r2cli.cli._tables import NamedRows

    table = NamedRows([("#", "right"), ("score", "right"), ("start", "right"), ("end", "right")], "video",
                      title=printable(title), group_header="query")
    for row in frame.itertuples(index=False):
        kind = getattr(row, "query_kind", "text")
        named = f"{row.query_id}: {row.query}" if kind == "text" else f"{row.query_id} ({kind}): {row.query}"
        table.add_row(str(row.rank_in_query), f"{row.score:.4f}", _clock(row.start_s), _clock(row.end_s),
                      name=printable(Path(row.path).name), group=printable(named))
    return table


def render_search_result(result) -> None:
    """Rich table of the top moments of the first queries, then where the outputs are."""
    frame = result.preview(_TABLE_QUERIES)
    shown = frame[frame["rank_in_query"] <= _TABLE_ROWS_PER_QUERY] if len(frame) else frame
    if len(shown):
        from r2cli.cli._tables import print_named_rows

        print_named_rows(console, search_table(shown, f"search run {result.run_id}"))
    else:
        console.print("no moment passed the filters (try a lower --min-score)", highlight=False)
    counts = result.counts
    if counts.get("queries", 0) > _TABLE_QUERIES:
        console.print(f"(the table shows the first {_TABLE_QUERIES} queries; all are in moments.parquet)",
                      highlight=False)
    verb = "reused" if result.resumed else "searched"
    compared = (f"{plural(counts['clips'], 'clip')} compared by CLIP" if "clips" in counts  # --image/--clip
                else plural(counts.get('pairs', 0), 'window-query pair'))
    from_file = (f" ({counts['queries_read_from_file']} read from the query file)"
                 if "queries_read_from_file" in counts else "")
    console.print(
        f"{plural(counts.get('queries', 0), 'query', 'queries')}{from_file} {verb} over "
        f"{plural(counts.get('videos_searched', 0), 'video')} "
        f"({compared}) in {result.timings.get('total_s', 0):.1f} s; "
        f"outputs: {printable(result.out_dir)}",
        highlight=False, markup=False, soft_wrap=True,
    )
    used = result.settings.get("feature_dtypes_used") or {}
    if set(used) - {"float16"}:  # say so whenever compact features were read
        console.print("layer features read: " + ", ".join(f"{dtype} ({plural(count, 'video')})"
                                                          for dtype, count in used.items()), highlight=False)
    if "report" in result.files:
        console.print(f"report: {printable(result.files['report'])}", highlight=False, markup=False, soft_wrap=True)
    if counts.get("windows_skipped"):
        err_console.print(f"{plural(counts['windows_skipped'], 'window')} skipped (damaged features); see run.json",
                          highlight=False, markup=False, soft_wrap=True)
    for skipped in result.skipped[:10]:
        err_console.print(f"skipped {printable(skipped.path)}: {printable(skipped.reason)}", highlight=False, markup=False,
                          soft_wrap=True)
    if len(result.skipped) > 10:
        err_console.print(f"... and {len(result.skipped) - 10} more videos skipped", highlight=False)


def result_to_json(result) -> dict:
    """The JSON document `r2cli search --json` prints."""
    frame = result.moments
    rows = []
    for row in frame.itertuples(index=False):
        rows.append({
            "query_id": row.query_id, "query": row.query, "query_kind": getattr(row, "query_kind", "text"),
            "rank": int(row.rank_in_query),
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
        "settings": result.settings,
        "skipped": [{"video_id": s.video_id, "path": s.path, "reason": s.reason} for s in result.skipped],
        "warnings": result.warnings,
        "moments": rows,
    }


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        texts: Annotated[Optional[list[str]], typer.Argument(metavar="[QUERY]...", help=O.help("queries"))] = None,
        queries_file: Annotated[Optional[Path], typer.Option("--queries", "-q", help=O.help("queries_file"))] = None,
        image: Annotated[Optional[list[Path]], typer.Option("--image", metavar="STILL", help=O.help("image"))] = None,
        clip: Annotated[
            Optional[list[str]], typer.Option("--clip", metavar="VIDEO[:START-END]", help=O.help("clip"))] = None,
        match_margin: Annotated[Optional[float], typer.Option("--match-margin", help=O.help("match_margin"))] = None,
        min_run: Annotated[Optional[int], typer.Option("--min-run", help=O.help("min_run"))] = None,
        video: Annotated[Optional[list[str]], typer.Option("--video", help=O.help("videos") + " Repeat the flag.")] = None,
        min_duration: Annotated[Optional[float], typer.Option("--min-duration", help=O.help("min_duration"))] = None,
        max_duration: Annotated[Optional[float], typer.Option("--max-duration", help=O.help("max_duration"))] = None,
        path_contains: Annotated[Optional[str], typer.Option("--path-contains", help=O.help("path_contains"))] = None,
        candidates: Annotated[Optional[int], typer.Option("--candidates", help=O.help("candidates"))] = None,
        top_k: Annotated[Optional[int], typer.Option("--top-k", help=O.help("top_k"))] = None,
        min_score: Annotated[Optional[float], typer.Option("--min-score", help=O.help("min_score"))] = None,
        preset: Annotated[Optional[str], typer.Option("--preset", help=O.help("preset"))] = None,
        checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", help=O.help("checkpoint"))] = None,
        clip_weights: Annotated[
            Optional[str], typer.Option("--clip-weights", metavar="PATH|TAG", help=O.help("clip_weights"))] = None,
        device: Annotated[Optional[str], typer.Option("--device", help=O.help("device"))] = None,
        window: Annotated[Optional[float], typer.Option("--window", help=O.help("window"))] = None,
        stride: Annotated[Optional[float], typer.Option("--stride", help=O.help("stride"))] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help=O.help("out"))] = None,
        output_format: Annotated[Optional[str], typer.Option("--format", help=O.help("format"))] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=O.help("batch_size"))] = None,
        precision: Annotated[Optional[str], typer.Option("--precision", help=O.help("precision"))] = None,
        query_batch: Annotated[Optional[int], typer.Option("--query-batch", help=O.help("query_batch"))] = None,
        wait: Annotated[Optional[float], typer.Option("--wait", help=O.help("wait"))] = None,
        feature_dtype: Annotated[
            Optional[str], typer.Option("--feature-dtype", metavar="auto|float16|int8", help=O.help("feature_dtype"))
        ] = None,
        ray: Annotated[
            Optional[str], typer.Option("--ray", metavar="local|HOST:PORT", help=O.help("ray"), show_default=False)
        ] = None,
        report: Annotated[bool, typer.Option("--report", help=O.help("report"))] = False,
        exact: Annotated[bool, typer.Option("--exact", help=O.help("exact"))] = False,
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Find the moments of the archive that match sentences, ranked across videos.

        CLIP embeddings pre-rank every video (long videos in overlapping windows); R2-Tuning then
        grounds the best candidates, batched. Writes moments.parquet and saliency.parquet to a run
        folder and records the run in the catalog.

        --image / --clip search by picture: the still's (or the range's) CLIP image embedding, made as
        index makes a clip's, against every stored clip; runs of matching clips are the moments.
        R2-Tuning's fine stage grounds sentences, so it is not run for pictures.

        Example:  r2cli search "dog catches frisbee" --top-k 5

        Example:  r2cli search --queries queries.csv --video '*.mp4' --out results/

        Example:  r2cli search --image still.jpg --clip interview.mp4:1:05-1:20
        """
        from r2cli.app.search import run_search

        options = O.from_flags(
            queries=tuple(texts or ()), queries_file=queries_file, image=tuple(image) if image else None,
            clip=tuple(clip) if clip else None, match_margin=match_margin, min_run=min_run, videos=tuple(video) if video else None,
            min_duration=min_duration, max_duration=max_duration, path_contains=path_contains,
            candidates=candidates, top_k=top_k, min_score=min_score, preset=preset, checkpoint=checkpoint,
            clip_weights=clip_weights, device=device, window=window, stride=stride, out=out, format=output_format,
            batch_size=batch_size, precision=precision, query_batch=query_batch, wait=wait, ray=ray, report=report or None,
            feature_dtype=feature_dtype,
            exact=exact or None,
        )
        ws = workspace_from(workspace, catalog)
        with RichReporter(enabled=not json_output) as reporter:
            result = run_search(ws, options, reporter=reporter)
        if json_output:
            print_json(result_to_json(result))
        else:
            render_search_result(result)
