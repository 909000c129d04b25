"""`r2cli index DIR [DIR...]`: bring the catalog up to date with folders of video."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from r2cli.cli._common import CatalogOpt, ClipWeightsOpt, DeviceOpt, JsonOpt, RichReporter, WorkspaceOpt, console, print_json, workspace_from

_MAX_ERRORS_SHOWN = 20


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
        + f"{report.seen} paths in {report.elapsed:.1f} s, {report.probed} probed; catalog: {report.catalog}",
        highlight=False,
        soft_wrap=True,
    )
    if report.file_errors:
        errors = Table(title="errors (recorded in the catalog)", show_header=True, header_style="bold")
        errors.add_column("path", overflow="fold")
        errors.add_column("error", overflow="fold")
        for item in report.file_errors[:_MAX_ERRORS_SHOWN]:
            errors.add_row(escape(item.path), escape(item.error) + (" (unchanged since it failed)" if item.known else ""))
        console.print(errors)
        if len(report.file_errors) > _MAX_ERRORS_SHOWN:
            console.print(
                f"... and {len(report.file_errors) - _MAX_ERRORS_SHOWN} more: r2cli catalog list --status error",
                highlight=False,
            )


def render_feature_report(report) -> None:
    """Summary lines of an ``ExtractReport`` and the videos whose features failed."""
    console.print(
        f"features: {report.videos_extracted} extracted, {report.videos_skipped} already done, "
        f"{report.videos_failed} failed; {report.clips} clips, {report.video_hours:.3f} video-hours in "
        f"{report.wall_seconds:.1f} s ({report.speed:.1f} video-hours per hour, {report.frames_per_second:.1f} "
        f"frames/s on {report.device}); {report.bytes_written / 1e6:.1f} MB written to {report.store}",
        highlight=False,
        soft_wrap=True,
    )
    if report.failures:
        errors = Table(title="feature errors (recorded in the catalog)", show_header=True, header_style="bold")
        errors.add_column("path", overflow="fold")
        errors.add_column("error", overflow="fold")
        for item in report.failures[:_MAX_ERRORS_SHOWN]:
            errors.add_row(escape(item.path), escape(item.error))
        console.print(errors)
        if len(report.failures) > _MAX_ERRORS_SHOWN:
            console.print(f"... and {len(report.failures) - _MAX_ERRORS_SHOWN} more", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("index")
    def index(
        paths: Annotated[list[str], typer.Argument(metavar="DIR...", help="Folders (walked recursively) or files.")],
        ext: Annotated[
            Optional[list[str]],
            typer.Option("--ext", help="Extension to index (repeat or comma-separate). Default: common video types."),
        ] = None,
        ignore: Annotated[
            Optional[list[str]],
            typer.Option("--ignore", help="Glob on names or relative paths to skip, e.g. '*.part', 'proxies' (repeat)."),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show what would change; probe and write nothing.")
        ] = False,
        strict: Annotated[bool, typer.Option("--strict", help="Exit with code 1 when any path failed.")] = False,
        wait: Annotated[
            float, typer.Option("--wait", help="Seconds to wait for another process writing the catalog.", min=0)
        ] = 0.0,
        features: Annotated[
            bool,
            typer.Option(
                "--features/--no-features",
                help="After the scan, extract CLIP features of every readable video (needs CLIP weights).",
            ),
        ] = True,
        clip_weights: ClipWeightsOpt = None,
        fps: Annotated[
            float, typer.Option("--fps", help="Clips (sampled frames) per second; 0.5 like the official features.")
        ] = 0.5,
        device: DeviceOpt = "auto",
        batch_size: Annotated[
            Optional[int],
            typer.Option("--batch-size", help="Frames per CLIP forward pass. Default: 16 on CPU, 256 on GPU.",
                         show_default=False),
        ] = None,
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Index folders of video into the catalog, then extract their CLIP features.

        Unchanged files are not probed again; a moved file keeps its row; a deleted one is marked
        missing. Bad files get a recorded error and the run goes on (exit code 0; with --strict, 1).
        Features (the last 4 CLIP layers of one frame per clip) are stored once per video content
        and settings; a re-run only extracts what is missing.

        Example:  r2cli index ./archive --ext mp4 --ext mkv --ignore 'proxies' --device auto
        """
        from r2cli.catalog.scan import ScanFailedError
        from r2cli.features.extract import index_archive

        ws = workspace_from(workspace, catalog)
        with RichReporter() as reporter:
            result = index_archive(
                paths, ws, extensions=ext or None, ignore=ignore or (), dry_run=dry_run, lock_timeout=wait,
                features=features, clip_weights=clip_weights, fps=fps, device=device, batch_size=batch_size,
                reporter=reporter,
            )
        report = result.scan
        if json_output:
            print_json(result.to_dict())
        else:
            render_scan_report(report)
            if result.features is not None:
                render_feature_report(result.features)
        if strict and report.errors:
            raise ScanFailedError(report)
