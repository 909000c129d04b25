"""`r2cli index DIR [DIR...]`: bring the catalog up to date with folders of video.

Thin: flags (each defaulting to None, so ``IndexOptions`` owns the defaults) -> ``IndexOptions`` ->
``r2cli.app.index.run_index`` -> tables.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.table import Table

from r2cli.app.index import IndexOptions
from r2cli.cli._common import CatalogOpt, JsonOpt, RichReporter, WorkspaceOpt, console, print_json, shown, workspace_from

_MAX_ERRORS_SHOWN = 20
_help = IndexOptions.help


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def render_scan_report(report) -> None:
    """Summary table of a ``ScanReport`` and the first failed paths."""
    table = Table(title="index", show_header=True, header_style="bold")
    table.add_column("result")
    table.add_column("paths", justify="right")
    for label, value in (
        ("new", report.new),
        ("updated", report.updated),
        ("moved", report.moved),
        ("unchanged", report.unchanged),
        ("errors", report.errors),
        ("missing", report.missing),
        ("ignored", report.ignored),
    ):
        style = "red" if label == "errors" and value else None
        table.add_row(label, str(value), style=style)
    console.print(table)
    console.print(
        ("dry run: nothing written, nothing probed; " if report.dry_run else "")
        + f"{_plural(report.seen, 'path')} in {report.elapsed:.1f} s, {report.probed} probed; "
        f"catalog: {shown(report.catalog)}",
        highlight=False,
        soft_wrap=True,
    )
    for item in report.ignored_paths[:_MAX_ERRORS_SHOWN]:
        console.print(f"ignored {shown(item.path)}: {shown(item.error)}", highlight=False, soft_wrap=True)
    if report.file_errors:
        _path_table("errors (recorded in the catalog)",
                    [(item.path, item.error + (" (unchanged since it failed)" if item.known else ""))
                     for item in report.file_errors],
                    "r2cli catalog list --status error")


def _path_table(title: str, rows: list[tuple[str, str]], more_hint: str | None = None) -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("path", overflow="fold")
    table.add_column("error", overflow="fold")
    for path, error in rows[:_MAX_ERRORS_SHOWN]:
        table.add_row(shown(path), shown(error))
    console.print(table)
    if len(rows) > _MAX_ERRORS_SHOWN:
        console.print(f"... and {len(rows) - _MAX_ERRORS_SHOWN} more" + (f": {more_hint}" if more_hint else ""),
                      highlight=False)


def render_feature_report(report) -> None:
    """Summary lines of an ``ExtractReport`` and the videos whose features failed."""
    if not (report.videos_extracted or report.videos_failed or report.videos_repaired or report.videos_verified):
        # an unchanged archive: no speed to report (it read "0.0 video-hours per hour", #22.14)
        console.print(f"features: nothing to do ({report.videos_skipped} already done) in "
                      f"{report.wall_seconds:.1f} s; store: {shown(report.store)}", highlight=False, soft_wrap=True)
        return
    for line in (
        f"features: {report.videos_extracted} extracted, {report.videos_skipped} already done, "
        f"{report.videos_failed} failed; {_plural(report.clips, 'clip')}, {report.video_hours:.3f} video-hours",
        f"  in {report.wall_seconds:.1f} s: {report.speed:.1f} video-hours per hour, "
        f"{report.frames_per_second:.1f} frames/s on {report.device}",
        f"  {report.bytes_written / 1e6:.1f} MB written to {report.store}",
    ):
        console.print(shown(line), highlight=False, soft_wrap=True)
    if getattr(report, "ray_log", None):
        console.print(shown(f"  Ray's own logs: {report.ray_log}"), highlight=False, soft_wrap=True)
    if report.videos_verified or report.videos_repaired:
        console.print(f"verify: {_plural(report.videos_verified, 'feature file')} checked, "
                      f"{report.videos_repaired} damaged (extracted again)", highlight=False, soft_wrap=True)
    if report.repaired:
        _path_table("damaged feature files (extracted again)", [(f.path, f.error) for f in report.repaired])
    if report.failures:
        _path_table("feature errors (recorded in the catalog)", [(f.path, f.error) for f in report.failures])


def render_coarse_report(report) -> None:
    """One line per coarse index (#19.1): what the update did and why."""
    line = f"coarse index {report.settings_key}: {report.action}"
    if report.factory:
        line += f" ({report.factory}, {_plural(report.vectors, 'clip')}, {_plural(report.videos, 'video')}"
        line += f", +{report.added_videos} -{report.removed_videos} videos, {report.seconds:.1f} s)"
    if report.reason:
        line += f": {report.reason}"
    console.print(shown(line), highlight=False, soft_wrap=True)
    for problem in report.problems:
        console.print(shown(f"  verify: {problem}"), highlight=False, soft_wrap=True)


# The options whose declaration takes more than a line, named once so that the command reads as a list.
_FeaturesOpt = Annotated[
    Optional[bool], typer.Option("--features/--no-features", help=_help("features"), show_default=False)
]
_ClipWeightsOpt = Annotated[
    Optional[str], typer.Option("--clip-weights", metavar="PATH|TAG", help=_help("clip_weights"), show_default=False)
]
_GeometryOpt = Annotated[Optional[str], typer.Option("--geometry", help=_help("geometry"), show_default=False)]
_FeatureDtypeOpt = Annotated[
    Optional[str],
    typer.Option("--feature-dtype", metavar="float16|int8", help=_help("feature_dtype"), show_default=False),
]
_BatchSizeOpt = Annotated[Optional[int], typer.Option("--batch-size", help=_help("batch_size"), show_default=False)]
_RayOpt = Annotated[
    Optional[str], typer.Option("--ray", metavar="local|HOST:PORT", help=_help("ray"), show_default=False)
]
_CoarseIndexOpt = Annotated[
    Optional[bool], typer.Option("--coarse-index/--no-coarse-index", help=_help("coarse_index"), show_default=False)
]
_CoarseIndexMinClipsOpt = Annotated[
    Optional[int], typer.Option("--coarse-index-min-clips", help=_help("coarse_index_min_clips"), show_default=False)
]
_RebuildCoarseIndexOpt = Annotated[bool, typer.Option("--rebuild-coarse-index", help=_help("rebuild_coarse_index"))]
_SettleOpt = Annotated[
    Optional[float], typer.Option("--settle", metavar="SECONDS", help=_help("settle"), show_default=False)
]
_WatchModeOpt = Annotated[
    Optional[str],
    typer.Option("--watch-mode", metavar="auto|inotify|poll", help=_help("watch_mode"), show_default=False),
]
_PollIntervalOpt = Annotated[
    Optional[float], typer.Option("--poll-interval", metavar="SECONDS", help=_help("poll_interval"), show_default=False)
]


def register(app: typer.Typer) -> None:
    @app.command("index")
    def index(
        paths: Annotated[list[str], typer.Argument(metavar="DIR...", help=_help("paths"))],
        ext: Annotated[Optional[list[str]], typer.Option("--ext", help=_help("extensions"))] = None,
        ignore: Annotated[Optional[list[str]], typer.Option("--ignore", help=_help("ignore"))] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help=_help("dry_run"))] = False,
        strict: Annotated[bool, typer.Option("--strict", help=_help("strict"))] = False,
        wait: Annotated[Optional[float], typer.Option("--wait", help=_help("wait"), show_default=False)] = None,
        features: _FeaturesOpt = None,
        clip_weights: _ClipWeightsOpt = None,
        fps: Annotated[Optional[float], typer.Option("--fps", help=_help("fps"), show_default=False)] = None,
        geometry: _GeometryOpt = None,
        device: Annotated[Optional[str], typer.Option("--device", help=_help("device"), show_default=False)] = None,
        feature_dtype: _FeatureDtypeOpt = None,
        batch_size: _BatchSizeOpt = None,
        verify: Annotated[bool, typer.Option("--verify", help=_help("verify"))] = False,
        ray: _RayOpt = None,
        coarse_index: _CoarseIndexOpt = None,
        coarse_index_min_clips: _CoarseIndexMinClipsOpt = None,
        rebuild_coarse_index: _RebuildCoarseIndexOpt = False,
        watch: Annotated[bool, typer.Option("--watch", help=_help("watch"))] = False,
        settle: _SettleOpt = None,
        watch_mode: _WatchModeOpt = None,
        poll_interval: _PollIntervalOpt = None,
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Index folders of video into the catalog, then extract their CLIP features.

        Unchanged files are not probed again; a moved file keeps its row; a deleted one is marked
        missing; folders holding a .r2cli-output marker (r2cli's own outputs) are skipped. Bad files
        get a recorded error and the run goes on (exit code 0; with --strict, 1). Features (the last
        4 CLIP layers of one frame per clip) are stored once per video content and settings; a
        re-run only extracts what is missing, and --verify re-extracts damaged files.

        With --watch it keeps running: new and changed files are indexed once their size and mtime
        have stayed the same for --settle seconds, deleted ones are marked missing, renamed ones keep
        their features; one line per event (JSON lines with --json); Ctrl-C or SIGTERM stops it.

        Example:  r2cli index ./archive --ext mp4 --ext mkv --ignore 'proxies' --device auto

        Example:  r2cli index /mnt/incoming --watch --settle 30 --json
        """
        from pathlib import Path

        from r2cli.app.index import run_index

        options = IndexOptions.from_flags(
            paths=[Path(p) for p in paths], extensions=ext or None, ignore=ignore or None, dry_run=dry_run or None,
            strict=strict or None, wait=wait, features=features, clip_weights=clip_weights, fps=fps,
            geometry=geometry, device=device, feature_dtype=feature_dtype, batch_size=batch_size, verify=verify or None, ray=ray,
            coarse_index=coarse_index, coarse_index_min_clips=coarse_index_min_clips,
            rebuild_coarse_index=rebuild_coarse_index or None, watch=watch or None, settle=settle, watch_mode=watch_mode,
            poll_interval=poll_interval,
        )
        ws = workspace_from(workspace, catalog)
        if options.watch:
            _watch(ws, options, json_output)
            return
        with RichReporter() as reporter:
            result = run_index(ws, options, reporter=reporter)
        _render(result, json_output)
        problem = result.strict_error()
        if problem is not None:
            raise problem


def _render(result, json_output: bool) -> None:
    """An ``IndexResult`` as JSON, or as the scan's table, the features' lines and the coarse indexes' lines."""
    if json_output:
        print_json(result.to_dict())
        return
    render_scan_report(result.scan)
    if result.features is not None:
        render_feature_report(result.features)
    for report in result.coarse:
        render_coarse_report(report)


def _watch(workspace, options: IndexOptions, json_output: bool) -> None:
    """``index --watch``: one line per event on stdout until Ctrl-C or SIGTERM (exit code 0)."""
    import signal

    from r2cli.app.watch import watch_index

    def on_event(event) -> None:
        line = json.dumps(event.to_dict(), ensure_ascii=False, default=str) if json_output else watch_line(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def on_sigterm(signum, frame) -> None:
        raise KeyboardInterrupt  # the same clean stop as Ctrl-C (a batch in flight is abandoned, its commits kept)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        # progress bars of each batch would bury the event lines; warnings still reach stderr
        watch_index(workspace, options, on_event=on_event, reporter=RichReporter(enabled=False))
    finally:
        signal.signal(signal.SIGTERM, previous)


def watch_line(event) -> str:
    """One line of ``index --watch``'s log: ``TIME EVENT PATH DETAIL`` (control characters escaped)."""
    from r2cli.cli.commands.search import printable

    data = event.to_dict()
    detail = dict(event.detail)
    text = ""
    if event.kind == "watching":
        fs = f", {detail['file_system']}" if detail.get("file_system") else ""
        text = f"({detail['mode']}{fs}; settle {detail['settle']:g} s)"
    elif event.kind == "scan":
        text = ", ".join(f"{detail[k]} {k}" for k in ("new", "updated", "moved", "unchanged", "missing", "errors",
                                                        "held")) + f" in {detail['seconds']:g} s"
    elif event.kind == "moved":
        text = f"(from {printable(detail.get('previous') or '?')})"
    elif event.kind == "features":
        text = (f"{detail['extracted']} extracted, {detail['skipped']} up to date, {detail['failed']} failed "
                f"in {detail['seconds']:g} s")
    elif event.kind in ("busy", "failed"):
        text = f"{detail.get('message') or detail.get('error')}; retry in {detail['retry_in']:g} s"
    elif event.kind == "stopped":
        text = f"({detail['reason']})"
    else:
        text = str(detail.get("error") or detail.get("message") or detail.get("reason") or "")
    parts = [data["time"], f"{event.kind:<8}"]
    if event.path is not None:
        parts.append(event.path + (":" if text and event.kind in ("error", "features-failed", "ignored") else ""))
    if text:
        parts.append(text)
    return printable(" ".join(parts))
