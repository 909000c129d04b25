"""`r2cli index DIR [DIR...]`: bring the catalog up to date with folders of video."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from r2cli.cli._common import CatalogOpt, JsonOpt, RichReporter, WorkspaceOpt, console, print_json, workspace_from

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
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Index folders of video into the catalog: fingerprint, probe, track moves and deletions.

        Unchanged files are not probed again; a moved file keeps its row; a deleted one is marked
        missing. Bad files get a recorded error and the run goes on (exit code 0; with --strict, 1).

        Example:  r2cli index ./archive --ext mp4 --ext mkv --ignore 'proxies'
        """
        from r2cli.catalog.scan import ScanFailedError, scan_archive

        ws = workspace_from(workspace, catalog)
        with RichReporter() as reporter:
            report = scan_archive(
                paths, ws, extensions=ext or None, ignore=ignore or (), dry_run=dry_run, reporter=reporter,
                lock_timeout=wait,
            )
        if json_output:
            print_json(report.to_dict())
        else:
            render_scan_report(report)
        if strict and report.errors:
            raise ScanFailedError(report)
