"""`r2cli catalog list|show|stats`: read the catalog."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from r2cli.cli._common import CatalogOpt, JsonOpt, WorkspaceOpt, console, print_json, shown, workspace_from

catalog_app = typer.Typer(
    help="Read the catalog: list videos, show one, totals.\n\nExample:  r2cli catalog list --status error",
    no_args_is_help=True,
)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


def _field(key: str, value: object) -> str:
    """A catalog field as a person reads it: times as ISO 8601 local time with offset (``r2cli.times``),
    sizes with their unit."""
    if value is None:
        return ""
    if key == "mtime" and isinstance(value, (int, float)):
        from r2cli.times import iso_local

        return iso_local(value) or ""
    if key == "size" and isinstance(value, int):
        return f"{_size(value)} ({value:,} bytes)" if value >= 1024 else f"{value} bytes"
    return shown(str(value))


def _size(value: int | None) -> str:
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1024 or unit == "TB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return str(value)


@catalog_app.command("list")
def list_command(
    status: Annotated[Optional[str], typer.Option("--status", help="ok, error or missing.")] = None,
    path: Annotated[
        Optional[str], typer.Option("--path", help="Glob on the absolute path ('*' crosses folders), e.g. '*/2019/*'.")
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Show at most this many.")] = None,
    json_output: JsonOpt = False,
    workspace: WorkspaceOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """List videos in the catalog, in path order.

    Example:  r2cli catalog list --status ok --path '*/holidays/*.mp4'
    """
    from r2cli.catalog.queries import list_videos

    rows = list_videos(workspace_from(workspace, catalog), status=status, path_glob=path, limit=limit)
    if json_output:
        print_json([row.to_dict() for row in rows])
        return
    from r2cli.cli._tables import NamedRows, print_named_rows
    from r2cli.safe_text import one_line

    listing = NamedRows([("id", "right"), ("status", "left"), ("duration", "right"), ("size", "right"),
                         ("fps", "right"), ("codec", "left"), ("audio", "left")], "path / error")
    for row in rows:
        size = f"{row.display_width}x{row.display_height}" if row.display_width else ""
        listing.add_row(
            str(row.id), row.status, _duration(row.duration), size, f"{row.fps:.3g}" if row.fps else "",
            row.codec or "", {True: "yes", False: "no"}.get(row.has_audio, ""),  # type: ignore[arg-type]
            name=one_line(row.path), note=one_line(row.error) if row.error and row.status != "ok" else None,
        )
    print_named_rows(console, listing)
    console.print(f"{len(rows)} videos", highlight=False)


@catalog_app.command("show")
def show_command(
    video: Annotated[str, typer.Argument(metavar="ID|PATH", help="Catalog id or path of the video.")],
    json_output: JsonOpt = False,
    workspace: WorkspaceOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Show everything the catalog knows about one video, and its feature sets.

    Example:  r2cli catalog show sample_media/red_then_blue_cut.mp4
    """
    from r2cli.catalog.queries import get_video

    details = get_video(workspace_from(workspace, catalog), video)
    if json_output:
        print_json(details.to_dict())
        return
    fields = details.video.to_dict()
    width = max(len(key) for key in fields) + 2
    # one line per field, never folded: a path or fingerprint longer than the terminal stays one line
    for key, value in fields.items():
        shown_value = _field(key, value)
        line = f" [bold]{key:<{width}}[/]{shown_value}" if shown_value else f" [bold]{key}[/]"
        console.print(line, highlight=False, soft_wrap=True)
    if details.feature_sets:
        for item in details.feature_sets:
            console.print(f"\n[bold]feature set {shown(str(item['settings_key']))}[/]", highlight=False, soft_wrap=True)
            for label, value in (("clips", str(item["num_clips"])), ("shape", _shape(item["shape"])),
                                 ("dtype", shown(str(item["dtype"]))), ("size", _field("size", item["bytes"])),
                                 ("relpath", shown(str(item["relpath"])))):
                console.print(f"   [bold]{label:<9}[/]{value}", highlight=False, soft_wrap=True)
    else:
        console.print("no feature sets yet", highlight=False)


def _shape(shape: object) -> str:
    """A feature set's array shapes as a person reads them: ``layers 8x4x5x64, embed 8x32, timestamps 8``."""
    if isinstance(shape, dict):
        return ", ".join(f"{shown(str(name))} {_shape(dims)}" for name, dims in shape.items())
    if isinstance(shape, (list, tuple)):
        return "x".join(str(d) for d in shape)
    return shown(str(shape))


@catalog_app.command("stats")
def stats_command(
    json_output: JsonOpt = False,
    workspace: WorkspaceOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Totals: videos by status, hours, bytes, features, runs.

    Example:  r2cli catalog stats --json
    """
    from r2cli.catalog.queries import catalog_stats

    stats = catalog_stats(workspace_from(workspace, catalog))
    if json_output:
        print_json(stats.to_dict())
        return
    table = Table(show_header=False, box=None)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("catalog", shown(stats.catalog))
    table.add_row("schema version", str(stats.schema_version))
    table.add_row("videos", str(stats.videos))
    for status, count in stats.by_status.items():
        table.add_row(f"  {status}", str(count))
    table.add_row("hours (ok)", f"{stats.hours:.2f}")
    table.add_row("size (ok)", _size(stats.bytes))
    table.add_row("features", ", ".join(f"{k}: {v}" for k, v in sorted(stats.features.items())) or "-")
    table.add_row("feature sets", str(stats.feature_sets))
    table.add_row("runs", ", ".join(f"{k}: {v}" for k, v in sorted(stats.runs.items())) or "-")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
