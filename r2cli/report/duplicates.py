"""The report of a duplicates run: each pair side by side, thumbnails at the start, middle and end
of the shared footage in both videos, and a player on each source starting where the footage does.

``build_report`` hands a duplicates run here (``duplicates_file`` says when); the report folder has
the layout of the other reports (``index.html``, ``d002.html`` ... for more pages, ``thumbs/``, the
marker file), is written to a temporary sibling and swapped into place, and escapes every name.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2cli.errors import InputError
from r2cli.progress import NULL_REPORTER, Reporter

PAIRS_FILE = "duplicates.parquet"


def duplicates_file(source: str | os.PathLike) -> Path | None:
    """The duplicates.parquet a report of ``source`` should show, when ``source`` is a duplicates run
    (its folder or file), or a job folder whose only results are a duplicates step's; else None."""
    path = Path(source)
    if path.is_file():
        return path if path.name == PAIRS_FILE else None
    if not path.is_dir():
        return None
    others = ("moments.parquet", "summary.parquet")
    if (path / PAIRS_FILE).is_file():
        return path / PAIRS_FILE
    children = [p for p in path.iterdir() if p.is_dir()]
    if any((child / name).is_file() for child in children for name in others):
        return None
    found = [child / PAIRS_FILE for child in children if (child / PAIRS_FILE).is_file()]
    return found[0] if len(found) == 1 else None


@dataclass
class _Side:
    number: int
    path: str
    info: Any = None
    problem: str | None = None
    playable: bool = True
    note: str | None = None
    times: set = field(default_factory=set)
    thumbs: Any = None


def build_duplicates_report(pairs_file: Path, out: str | os.PathLike | None, *, reporter: Reporter = NULL_REPORTER,
                            page_size: int = 100, thumb_width: int = 240, jobs: int | None = None,
                            force: bool = False) -> Any:
    """Write the report of the duplicates run whose pairs are ``pairs_file`` (see the module docstring).

    Raises:
        InputError: the file is not an r2cli duplicates file, or the folder cannot be written.
        UsageError: ``out`` is a file, or a folder that is not an r2cli report (without ``force``).
        MissingDependencyError: ffmpeg/ffprobe are not installed.
    """
    import json

    from r2cli import ownership
    from r2cli.outputs.runs import read_manifest
    from r2cli.media._process import default_jobs
    from r2cli.media.ffmpeg import find_ffmpeg
    from r2cli.outputs import read_results
    from r2cli.report.pages import MARKER, REPORT_DIR, ReportResult, check_out, folder_size

    began = time.monotonic()
    frame = read_results(pairs_file, kind="duplicates").df
    folder = pairs_file.parent
    manifest = read_manifest(folder) or {}
    target = Path(out) if out is not None else folder / REPORT_DIR
    check_out(target, force)
    ffmpeg = find_ffmpeg()
    jobs = jobs or default_jobs()
    warnings: list[str] = []
    rows = frame.to_dict("records")
    sides = _sides(rows)
    try:
        tmp = ownership.staging_folder(target)
    except OSError as exc:
        raise InputError(f"--out {target}: cannot create the folder: {exc.strerror or exc}") from None
    try:
        _make_thumbnails(sides, tmp, width=thumb_width, ffmpeg=ffmpeg, jobs=jobs, reporter=reporter,
                         warnings=warnings)
        cards = _cards(rows, sides, tmp, target)
        names = _write_pages(tmp, cards, page_size=page_size, manifest=manifest, folder=folder, warnings=warnings)
        (tmp / MARKER).write_text(json.dumps({"source": str(pairs_file.resolve()), "runs": [str(manifest.get("run_id"))],
                                              "pages": len(names)}, indent=2), encoding="utf-8")
        ownership.replace_report_folder(tmp, target, "--out")
    except BaseException:
        ownership.remove_staging(tmp)
        raise
    size, thumbs, svgs = folder_size(target)
    return ReportResult(out_dir=target, index=target / "index.html", pages=len(names), cards=len(cards), queries=0,
                        videos=len(sides), thumbnails=thumbs, plots=svgs, bytes=size,
                        seconds=time.monotonic() - began, runs=[str(manifest.get("run_id") or folder.name)],
                        warnings=warnings)


def _sides(rows: list[dict]) -> dict[str, _Side]:
    """Each video the pairs name, numbered in the order met, with the times its thumbnails show."""
    sides: dict[str, _Side] = {}
    for row in rows:
        for which in ("a", "b"):
            path = str(row[f"path_{which}"])
            side = sides.setdefault(path, _Side(number=len(sides) + 1, path=path))
            start, end = float(row[f"{which}_start_s"]), float(row[f"{which}_end_s"])
            side.times.update((start, (start + end) / 2, end))
    return sides


def _make_thumbnails(sides: dict[str, _Side], tmp: Path, *, width: int, ffmpeg: Any, jobs: int, reporter: Reporter,
                     warnings: list[str]) -> None:
    """Probe each video and cut its thumbnails in ``jobs`` threads; a missing or unreadable one gets its
    ``problem`` (and a warning)."""
    from r2cli.media.probe import probe
    from r2cli.report.pages import playability
    from r2cli.report.thumbnails import extract_thumbnails

    def probe_one(side: _Side) -> None:
        if not os.path.isfile(side.path):
            side.problem = f"source not found: {side.path} (moved or deleted?)"
            return
        try:
            side.info = probe(side.path)
            side.playable, side.note = playability(side.info)
        except Exception as exc:  # noqa: BLE001 - shown on the page, not fatal
            side.problem = f"cannot read {side.path}: {exc}"

    reporter.begin("report: thumbnails", total=len(sides), unit="videos")

    def thumbs_of(side: _Side) -> None:
        probe_one(side)
        if side.info is not None:
            side.thumbs = extract_thumbnails(side.path, side.times, tmp / "thumbs" / f"v{side.number:03d}",
                                             width=width, duration_s=float(side.info.duration),
                                             fps=side.info.fps, ffmpeg=ffmpeg)
            if side.thumbs.problem:
                side.problem = f"no thumbnails for {side.path}: {side.thumbs.problem}"

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(thumbs_of, sides.values()):
            reporter.advance("report: thumbnails")
    reporter.end("report: thumbnails")
    for side in sides.values():
        if side.problem:
            warnings.append(side.problem)
            reporter.warn(side.problem)


def _cards(rows: list[dict], sides: dict[str, _Side], tmp: Path, target: Path) -> list[dict]:
    """One card per pair, its two sides' thumbnails and players linked from the report's final place."""
    from r2cli.report.pages import fragment, timecode, url_of

    def thumb(side: _Side, seconds: float) -> str | None:
        if side.thumbs is None or side.problem:
            return None
        found = side.thumbs.get(seconds)
        return url_of(target / found.relative_to(tmp), target) if found else None

    def view(row: dict, which: str) -> dict:
        side = sides[str(row[f"path_{which}"])]
        start, end = float(row[f"{which}_start_s"]), float(row[f"{which}_end_s"])
        fps = side.info.fps if side.info else None
        return {
            "name": Path(side.path).name, "path": side.path, "problem": side.problem, "note": side.note,
            "start_s": start, "end_s": end, "tc_start": timecode(start, fps), "tc_end": timecode(end, fps),
            "thumbs": [u for u in (thumb(side, t) for t in (start, (start + end) / 2, end)) if u],
            "player": url_of(side.path, target) + fragment(start, end) if side.info is not None else None,
        }

    return [{"number": n, "kind": row["kind"], "similarity": float(row["similarity"]),
             "offset_s": float(row["offset_s"]), "a": view(row, "a"), "b": view(row, "b")}
            for n, row in enumerate(rows, start=1)]


def _write_pages(tmp: Path, cards: list[dict], *, page_size: int, manifest: dict[str, Any], folder: Path,
                 warnings: list[str]) -> list[str]:
    """Render the pages of cards into ``tmp``; returns their file names."""
    from r2cli.report.pages import environment

    env = environment()
    pages = max(1, -(-len(cards) // page_size))
    names = ["index.html"] + [f"d{k:03d}.html" for k in range(2, pages + 1)]
    settings = {k: v for k, v in (manifest.get("settings") or {}).items() if not isinstance(v, (list, dict)) or v}
    for k, name in enumerate(names):
        html = env.get_template("duplicates.html.j2").render(
            title="r2cli duplicates report", run_id=manifest.get("run_id") or folder.name, folder=str(folder),
            settings=settings, counts=manifest.get("counts") or {}, warnings=warnings,
            cards=cards[k * page_size:(k + 1) * page_size], page=k + 1,
            pages=[{"n": i + 1, "name": n} for i, n in enumerate(names)])
        (tmp / name).write_text(html, encoding="utf-8")
    return names
