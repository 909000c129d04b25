"""A static HTML report of a search, a summary or a job: pages that open from file:// with no network.

Layout of the report folder (every link is relative and URL-encoded):

- ``index.html``: what ran (model, preset, CLIP, queries, videos, counts, skipped videos and why);
- ``q001.html`` (``q001-p2.html`` ...): one query's ranked moments as cards, ``page_size`` per page;
- ``v001.html``: one video: a thumbnail strip along its time axis, the saliency curve of each query
  with its moments shaded, the summary (segments, shot boundaries, budget) and their cards;
- ``thumbs/v001/<ms>.jpg``: thumbnails (one ffmpeg process per video, see ``thumbnails``);
- ``plots/*.svg``: matplotlib plots (see ``plots``); ``r2cli-report.json``: what was built.

A card's player is an HTML5 ``<video preload="none">`` with a media fragment ``#t=start,end``: on
the source file, or on the clip ``r2cli cut`` made for the moment (found by the cut's default
names in the job's ``clips/`` folder). Nothing is fetched until a player is started, and images
are lazy-loaded, so a report of 100 queries x 1,000 moments opens quickly. All text from files
(names, queries) goes through Jinja2's autoescape; no HTML is assembled by string formatting.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2cli import ownership
from r2cli.errors import InputError, UsageError
from r2cli.progress import NULL_REPORTER, Reporter
from r2cli.report.pages import (
    MARKER,
    REPORT_DIR,
    ReportResult,
    check_out,
    environment,
    folder_size,
    fragment,
    playability,
    timecode,
    url_of,
)

PARALLEL_PLOTS = 32  # plots drawn in worker processes from this many on


# ---------------------------------------------------------------------------------------------
# Reading runs


@dataclass
class _Run:
    kind: str  # "search" | "summarize"
    folder: Path
    label: str  # run id, or the file name without a manifest
    manifest: dict[str, Any]
    moments: Any = None  # DataFrame
    saliency: Any = None  # DataFrame
    summary: Any = None  # DataFrame


_QUERY_LABELS = {"text": "Query", "image": "Image query", "clip": "Clip query"}  # by moments' query_kind


def _read_run(folder: Path, only: Path | None = None) -> _Run | None:
    from r2cli.outputs.runs import read_manifest
    from r2cli.outputs import read_results

    manifest = read_manifest(folder) or {}
    files = {name: folder / name for name in ("moments.parquet", "saliency.parquet", "summary.parquet")}
    if only is not None:
        files = {only.name: only, **({"saliency.parquet": files["saliency.parquet"]} if only.name != "summary.parquet" else {})}
        results = read_results(only)
        if results.kind not in ("moments", "summary"):
            raise InputError(f"{only}: is a {results.kind} file; report needs a moments or summary file (or a run folder)")
    frames: dict[str, Any] = {}
    for path in files.values():
        if path.is_file():
            results = read_results(path)
            frames[results.kind] = results.df
    if "moments" not in frames and "summary" not in frames:
        return None
    kind = manifest.get("kind") or ("search" if "moments" in frames else "summarize")
    run_ids = set((frames.get("moments") if "moments" in frames else frames["summary"])["run_id"].astype(str))
    label = str(manifest.get("run_id") or (next(iter(run_ids)) if len(run_ids) == 1 else folder.name))
    saliency = frames.get("saliency")
    if saliency is not None and "moments" in frames and not set(saliency["run_id"].astype(str)) <= run_ids | {""}:
        saliency = None  # a saliency file of another run
    return _Run(kind=kind if kind in ("search", "summarize") else ("search" if "moments" in frames else "summarize"),
                folder=folder, label=label, manifest=manifest, moments=frames.get("moments"), saliency=saliency,
                summary=frames.get("summary"))


def discover(source: str | os.PathLike) -> tuple[list[_Run], Path | None, Path]:
    """The runs under ``source``, the job's ``clips`` folder (if any) and the default report folder.

    Raises:
        InputError: ``source`` does not exist or holds no r2cli moments/summary output.
    """
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() != ".parquet":
            raise InputError(f"{path}: expected a run folder or a moments/summary .parquet file")
        run = _read_run(path.parent, only=path)
        clips = path.parent.parent / "clips"
        return [run] if run else [], clips if clips.is_dir() else None, path.parent / REPORT_DIR
    if not path.is_dir():
        raise InputError(f"{path}: no such run folder or file")
    runs = []
    top = _read_run(path)
    if top is not None:
        runs.append(top)
    else:  # a job's folder: search/, summarize/, clips/
        for child in sorted(p for p in path.iterdir() if p.is_dir() and p.name != REPORT_DIR):
            run = _read_run(child)
            if run is not None:
                runs.append(run)
    if not runs:
        raise InputError(f"{path}: no moments.parquet or summary.parquet here or in its subfolders "
                         "(expected a search, summarize or job run folder)")
    clips = path / "clips"
    return runs, clips if clips.is_dir() else None, path / REPORT_DIR


# ---------------------------------------------------------------------------------------------
# Model of the pages


@dataclass
class _Video:
    number: int
    path: str
    video_id: Any
    info: Any = None  # MediaInfo
    problem: str | None = None  # why there is no player/thumbnail
    playable: bool = True
    note: str | None = None  # shown next to the players of this video
    times: set = field(default_factory=set)  # seconds wanted as thumbnails
    strip_times: list = field(default_factory=list)
    thumbs: Any = None  # VideoThumbs
    more_plots: int = 0  # queries with moments here whose plot was left out (plots_per_video)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def page(self) -> str:
        return f"v{self.number:03d}.html"

    @property
    def duration(self) -> float:
        return float(self.info.duration) if self.info else 0.0


def _cut_clip(clips: Path | None, path: str, query: str | None, rank: int, start: float, end: float,
              duration: float) -> tuple[Path, float] | None:
    """The clip ``r2cli cut`` made for this row with its default names, and where the row starts in it."""
    if clips is None:
        return None
    from r2cli.media.naming import DEFAULT_TEMPLATE, render_name
    from r2cli.media.segments import Segment

    candidate = clips / render_name(DEFAULT_TEMPLATE, Segment(path=path, start_s=start, end_s=end, query=query, rank=rank), 0)
    if not candidate.is_file():
        return None
    try:
        from r2cli.media.probe import probe

        length = probe(candidate).duration
    except Exception:  # noqa: BLE001 - an unreadable clip is ignored: the source plays instead
        return None
    # the clip is [max(0, start - pad), min(duration, end + pad)]; its padding is what it has beyond the moment
    pad = max(0.0, (length - (end - start)) / 2)
    if end + pad > duration:  # the end was clamped: all the extra length is before the moment
        pad = max(0.0, length - (end - start) - max(0.0, duration - end))
    return candidate, min(start, pad)


# ---------------------------------------------------------------------------------------------
# Building


def build_report(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    reporter: Reporter = NULL_REPORTER,
    page_size: int = 100,
    thumb_width: int = 240,
    strip: int = 12,
    plots_per_video: int = 12,
    jobs: int | None = None,
    force: bool = False,
) -> ReportResult:
    """Build the static HTML report of ``source`` (a run folder, a job folder or a results file).

    The report is written to a temporary sibling folder and moved into place at the end, so an
    earlier report stays whole until the new one is complete. Missing or unreadable sources are
    named on the overview page and in ``warnings``; their cards have no thumbnail or player.

    Raises:
        InputError: ``source`` holds no r2cli moments/summary output, or a file is unreadable.
        UsageError: ``out`` is a file.
        NotOwnedError: ``out`` holds anything an r2cli report did not write (whatever ``force``).
        MissingDependencyError: ffmpeg/ffprobe are not installed.
    """
    from r2cli.media._process import default_jobs
    from r2cli.media.ffmpeg import find_ffmpeg

    began = time.monotonic()
    timings: dict[str, float] = {}
    if page_size < 1:
        raise UsageError(f"--page-size must be >= 1, got {page_size}")
    from r2cli.report.duplicates import build_duplicates_report, duplicates_file

    pairs_file = duplicates_file(source)
    if pairs_file is not None:  # a duplicates run: its own page of pairs side by side
        return build_duplicates_report(pairs_file, out, reporter=reporter, page_size=page_size,
                                       thumb_width=thumb_width, jobs=jobs, force=force)
    runs, clips, default_out = discover(source)
    target = Path(out) if out is not None else default_out
    check_out(target, force)
    ffmpeg = find_ffmpeg()
    jobs = jobs or default_jobs()
    timings["read_s"] = time.monotonic() - began
    warnings: list[str] = []

    tick = time.monotonic()
    videos: dict[str, _Video] = {}
    for run in runs:
        for frame in (run.moments, run.summary):
            if frame is not None:
                for path, video_id in zip(frame["path"].astype(str), frame["video_id"]):
                    _video_of(videos, path, video_id)
    _probe_videos(videos, jobs, reporter, warnings)
    timings["probe_s"] = time.monotonic() - tick

    tick = time.monotonic()
    queries, summaries = _make_cards(runs, videos, clips)
    timings["cards_s"] = time.monotonic() - tick

    tick = time.monotonic()
    for stale in ownership.remove_stale_staging(target):
        warnings.append(f"removed {stale.name}, left in {target.parent} by an interrupted report")
    try:
        tmp = ownership.staging_folder(target)
    except OSError as exc:
        raise InputError(f"--out {target}: cannot create the folder: {exc.strerror or exc}") from None
    try:
        _make_thumbnails(videos, tmp, strip=strip, width=thumb_width, ffmpeg=ffmpeg, jobs=jobs, reporter=reporter,
                         warnings=warnings)
        timings["thumbnails_s"] = time.monotonic() - tick

        tick = time.monotonic()
        video_plots, plot_jobs = _saliency_plots(queries, videos, tmp, plots_per_video)
        _draw_plots(plot_jobs + _summary_plots(summaries, videos, tmp), jobs, reporter)
        timings["plots_s"] = time.monotonic() - tick

        tick = time.monotonic()
        pages = _write_pages(tmp, target, runs, videos, queries, summaries, video_plots, page_size, warnings, clips)
        timings["pages_s"] = time.monotonic() - tick
        (tmp / MARKER).write_text(json.dumps({"source": str(Path(source).resolve()), "runs": [r.label for r in runs],
                                              "pages": pages}, indent=2), encoding="utf-8")
        tick = time.monotonic()
        ownership.replace_report_folder(tmp, target, "--out")
    except OSError as exc:  # a full or read-only disk while writing thumbnails, plots or pages
        ownership.remove_staging(tmp)
        raise InputError(f"--out {target}: cannot write the report ({exc.strerror or exc})") from None
    except BaseException:
        ownership.remove_staging(tmp)
        raise
    size, thumbs, svgs = folder_size(target)
    timings["finish_s"] = time.monotonic() - tick
    cards = sum(len(e["cards"]) for e in queries) + sum(len(s["cards"]) for v in summaries.values() for s in v)
    return ReportResult(out_dir=target, index=target / "index.html", pages=pages, cards=cards, queries=len(queries),
                        videos=len(videos), thumbnails=thumbs, plots=svgs, bytes=size,
                        seconds=time.monotonic() - began, timings={k: round(v, 3) for k, v in timings.items()},
                        runs=[r.label for r in runs], warnings=warnings)


def _video_of(videos: dict[str, _Video], path: str, video_id: Any) -> _Video:
    """The page model of the video at ``path``, numbered in the order videos are first met."""
    if path not in videos:
        videos[path] = _Video(number=len(videos) + 1, path=path, video_id=None if video_id is None or
                              str(video_id) in ("<NA>", "nan") else int(video_id))
    return videos[path]


def _probe_videos(videos: dict[str, _Video], jobs: int, reporter: Reporter, warnings: list[str]) -> None:
    """Probe every source in ``jobs`` threads; a missing or unreadable one gets its ``problem`` (and a warning)."""
    from r2cli.media.probe import probe

    reporter.begin("report: probe", total=len(videos), unit="videos")

    def probe_one(video: _Video) -> None:
        if not os.path.isfile(video.path):
            video.problem = f"source not found: {video.path} (moved or deleted?)"
        else:
            try:
                video.info = probe(video.path)
                video.playable, video.note = playability(video.info)
            except Exception as exc:  # noqa: BLE001 - MediaError and friends: shown, not fatal
                video.problem = f"cannot read {video.path}: {exc}"

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(probe_one, videos.values()):
            reporter.advance("report: probe")
    reporter.end("report: probe")
    for video in videos.values():
        if video.problem:
            warnings.append(video.problem)
            reporter.warn(video.problem)


def _make_cards(runs: list[_Run], videos: dict[str, _Video],
                clips: Path | None) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The cards of every run: one entry per (search run, query) with its cards and pages, and per video
    path, one entry per summarize run with its segments and cards."""
    queries: list[dict[str, Any]] = []
    summaries: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run.moments is not None:
            queries.extend(_query_entries(run, videos, clips, first_number=len(queries) + 1))
        if run.summary is not None:
            _add_summary_entries(run, videos, clips, summaries)
    return queries, summaries


def _query_entries(run: _Run, videos: dict[str, _Video], clips: Path | None, *,
                   first_number: int) -> list[dict[str, Any]]:
    """One entry per query of a search run (in the manifest's order, then any others), with its cards."""
    entries: list[dict[str, Any]] = []
    frame = run.moments.sort_values(["rank_in_query"], kind="stable")
    order = [r.get("qid") for r in (run.manifest.get("queries") or []) if isinstance(r, dict)]
    qids = list(dict.fromkeys([q for q in order if q in set(frame["query_id"])] + list(frame["query_id"])))
    groups = {qid: rows for qid, rows in frame.groupby("query_id", sort=False)}
    texts = {r.get("qid"): r.get("query") for r in (run.manifest.get("queries") or []) if isinstance(r, dict)}
    kinds = {r.get("qid"): r.get("kind") for r in (run.manifest.get("queries") or []) if isinstance(r, dict)}
    for qid in list(dict.fromkeys(order + qids)):
        rows = groups.get(qid)
        number = first_number + len(entries)
        entry = {"number": number, "run": run, "qid": str(qid), "page": f"q{number:03d}.html",
                 "query": str(rows["query"].iloc[0]) if rows is not None else str(texts.get(qid) or qid),
                 "cards": []}
        # what the query is (#20.2): a sentence, a still or a video range
        kind = rows["query_kind"].iloc[0] if rows is not None and "query_kind" in rows else kinds.get(qid)
        entry["label"] = _QUERY_LABELS.get(str(kind), "Query")
        for row in (rows.to_dict("records") if rows is not None else []):
            entry["cards"].append(_card(_video_of(videos, str(row["path"]), row["video_id"]), row, "moment", clips,
                                        query=entry["query"], rank=int(row["rank_in_query"]),
                                        score=float(row["score"])))
        entries.append(entry)
    return entries


def _add_summary_entries(run: _Run, videos: dict[str, _Video], clips: Path | None,
                         summaries: dict[str, list[dict[str, Any]]]) -> None:
    """Add a summarize run's segments and cards to ``summaries`` (video path -> one entry per run)."""
    for path, rows in run.summary.groupby("path", sort=False):
        rows = rows.sort_values("start_s", kind="stable")
        video = _video_of(videos, str(path), rows["video_id"].iloc[0])
        info = next((v for v in (run.manifest.get("videos") or []) if v.get("path") == path), {})
        cards = [_card(video, row, "segment", clips, query=row.get("query"), rank=int(row["rank"]),
                       score=float(row["mean_saliency"]))
                 for row in rows.to_dict("records") if bool(row["selected"])]
        summaries.setdefault(str(path), []).append({"run": run, "rows": rows, "cards": cards, "info": info})


def _make_thumbnails(videos: dict[str, _Video], tmp: Path, *, strip: int, width: int, ffmpeg: Any, jobs: int,
                     reporter: Reporter, warnings: list[str]) -> None:
    """The thumbnails every card and video strip shows, one ffmpeg process per video in ``jobs`` threads."""
    from r2cli.report.thumbnails import extract_thumbnails

    for video in videos.values():
        if video.info is not None and strip > 0:
            step = video.duration / strip
            video.strip_times = [(i + 0.5) * step for i in range(strip)]
            video.times.update(video.strip_times)
    reporter.begin("report: thumbnails", total=len(videos), unit="videos")

    def thumbs_of(video: _Video) -> None:
        if video.info is None or not video.times:
            return
        video.thumbs = extract_thumbnails(video.path, video.times, tmp / "thumbs" / f"v{video.number:03d}",
                                          width=width, duration_s=video.duration, fps=video.info.fps,
                                          ffmpeg=ffmpeg)
        if video.thumbs.problem:
            video.problem = f"no thumbnails for {video.path}: {video.thumbs.problem}"

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(thumbs_of, videos.values()):
            reporter.advance("report: thumbnails")
    reporter.end("report: thumbnails")
    for video in videos.values():
        if video.thumbs is not None and video.thumbs.problem:
            warnings.append(video.problem)
            reporter.warn(video.problem)


def _saliency_plots(queries: list[dict[str, Any]], videos: dict[str, _Video], tmp: Path,
                    plots_per_video: int) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[Any, ...]]]:
    """Per video, the queries whose saliency it plots (the ``plots_per_video`` with the best-ranked
    moments there), and the plots to draw."""
    from r2cli.report import plots as plotting

    video_plots: dict[str, list[dict[str, Any]]] = {path: [] for path in videos}
    plot_jobs: list[tuple[Any, ...]] = []
    for entry in queries:
        run = entry["run"]
        if run.saliency is None:
            continue
        for path in dict.fromkeys(c["video"].path for c in entry["cards"]):
            best = min(c["rank"] for c in entry["cards"] if c["video"].path == path)
            video_plots[path].append({"entry": entry, "best": best})
    saliency_groups: dict[tuple[int, str, str], Any] = {}
    for run in {id(e["run"]): e["run"] for e in queries if e["run"].saliency is not None}.values():
        for (qid, path), rows in run.saliency.groupby(["query_id", "path"], sort=False):
            saliency_groups[(id(run), str(qid), str(path))] = rows.sort_values("clip_start_s")
    for path, items in video_plots.items():
        video = videos[path]
        items.sort(key=lambda item: item["best"])
        kept = items[:plots_per_video]
        video_plots[path] = kept
        for item in kept:
            entry = item["entry"]
            rows = saliency_groups.get((id(entry["run"]), entry["qid"], path))
            if rows is None or not len(rows):
                item["svg"] = None
                continue
            name = f"plots/v{video.number:03d}-q{entry['number']:03d}.svg"
            item["svg"] = name
            mids = ((rows["clip_start_s"] + rows["clip_end_s"]) / 2).tolist()
            duration = video.duration or float(rows["clip_end_s"].max())
            marks = [(c["start_s"], c["end_s"], c["rank"]) for c in entry["cards"] if c["video"].path == path]
            plot_jobs.append((plotting.saliency_plot, tmp / name,
                              dict(times_s=mids, scores=rows["score"].astype(float).tolist(), duration_s=duration,
                                   moments=marks, title=f"{entry['query']}")))
        video.more_plots = max(0, len(items) - len(kept))
    return video_plots, plot_jobs


def _summary_plots(summaries: dict[str, list[dict[str, Any]]], videos: dict[str, _Video],
                   tmp: Path) -> list[tuple[Any, ...]]:
    """The plot of each summary (its segments, the selected ones, the budget), filling in its entry's figures."""
    from r2cli.report import plots as plotting

    plot_jobs: list[tuple[Any, ...]] = []
    for path, runs_of_video in summaries.items():
        video = videos[path]
        for n, summary in enumerate(runs_of_video, start=1):
            rows = summary["rows"]
            edges = rows["start_s"].astype(float).tolist() + [float(rows["end_s"].iloc[-1])]
            info = summary["info"]
            duration = float(info.get("duration_s") or video.duration or edges[-1])
            budget = info.get("budget_s")
            selected_s = float((rows["end_s"] - rows["start_s"])[rows["selected"].astype(bool)].sum())
            summary["budget_s"], summary["selected_s"], summary["duration_s"] = budget, selected_s, duration
            summary["shots"] = info.get("shots")
            name = f"plots/v{video.number:03d}-summary{n}.svg"
            summary["svg"] = name
            title = (f"summary of {duration:.1f} s: {selected_s:.1f} s selected"
                     + (f" of a {float(budget):.1f} s budget" if budget is not None else "")
                     + f", {int(rows['selected'].astype(bool).sum())} of {len(rows)} segments")
            plot_jobs.append((plotting.summary_plot, tmp / name,
                              dict(edges_s=edges, values=rows["mean_saliency"].astype(float).tolist(),
                                   selected=rows["selected"].astype(bool).tolist(), duration_s=duration,
                                   title=title)))
    return plot_jobs


def _draw_plots(plot_jobs: list[tuple[Any, ...]], jobs: int, reporter: Reporter) -> None:
    reporter.begin("report: plots", total=len(plot_jobs), unit="plots")
    for _ in _draw_all(plot_jobs, jobs):
        reporter.advance("report: plots")
    reporter.end("report: plots")


def _draw(job: tuple[Any, Path, dict]) -> Path:
    function, path, kwargs = job
    try:
        return function(path, **kwargs)
    except OSError as exc:
        # raised in a worker process, an OSError would reach the caller with the worker's traceback
        # attached; an InputError carries only its line
        raise InputError(f"cannot write the plot {path.name}: {exc.strerror or exc}") from None


def _draw_all(plot_jobs: list[tuple[Any, Path, dict]], jobs: int):
    """Draw the plots, in ``jobs`` processes when there are many (matplotlib draws ~0.1-0.3 s per plot
    in one thread; its figures are not shared between threads, so the work is split by process)."""
    if jobs <= 1 or len(plot_jobs) < PARALLEL_PLOTS:
        for job in plot_jobs:
            yield _draw(job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker, never a fork of a process that may hold threads (torch, a GUI)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_draw, plot_jobs, chunksize=8)


def _card(video: _Video, row: dict, kind: str, clips: Path | None, *, query: Any, rank: int, score: float) -> dict:
    start, end = float(row["start_s"]), float(row["end_s"])
    mid = (start + end) / 2
    video.times.update((start, mid, end))
    card = {"kind": kind, "video": video, "start_s": start, "end_s": end, "mid_s": mid, "rank": rank, "score": score,
            "query": query if isinstance(query, str) else None}
    card["clip"] = None
    if video.info is not None:
        clip = _cut_clip(clips, video.path, card["query"], rank, start, end, video.duration)
        if clip is not None:
            card["clip"] = clip
    return card


def human_value(value: Any, unit: str = "") -> str:
    """A setting's value as a person reads it: yes/no, numbers without a trailing ``.0``, lists joined,
    a group of settings (a dict) as ``key value, key value``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, dict):
        return ", ".join(f"{str(k).replace('_', ' ')} {human_value(v)}" for k, v in value.items() if v is not None)
    elif isinstance(value, (list, tuple)):
        return ", ".join(human_value(v) for v in value)
    else:
        text = str(value)
    return f"{text} {unit}" if unit else text


def settings_rows(settings: dict[str, Any], model: dict[str, Any]) -> list[tuple[str, str]]:
    """The run settings table of the overview: (label, value) rows. Settings left unset (None, an empty
    list) are left out, as is a ``preset`` the model row already shows; ``*_s`` keys read in seconds."""
    rows = []
    for key, value in settings.items():
        if value is None or (isinstance(value, (list, dict)) and not value):
            continue
        if key == "preset" and model.get("preset") == value:
            continue
        label, unit = (key[:-2], "s") if key.endswith("_s") else (key, "")
        rows.append((label.replace("_", " "), human_value(value, unit)))
    return rows


def _write_pages(tmp: Path, final: Path, runs, videos, queries, summaries, video_plots, page_size, warnings,
                 clips) -> int:
    """Render every page into ``tmp`` (links computed for the report's final place, ``final``)."""
    env = environment()
    count = 0

    def write(name: str, template: str, **context: Any) -> None:
        nonlocal count
        html = env.get_template(template).render(**context)
        (tmp / name).write_text(html, encoding="utf-8")
        count += 1

    def thumb_url(video: _Video, seconds: float) -> str | None:
        if video.thumbs is None or video.problem:
            return None
        path = video.thumbs.get(seconds)  # one of the times asked for: start, middle, end, strip
        return url_of(final / path.relative_to(tmp), final) if path else None

    def view(card: dict) -> dict:
        video: _Video = card["video"]
        fps = video.info.fps if video.info else None
        player = note = None
        if card["clip"] is not None:
            clip_path, offset = card["clip"]
            length = card["end_s"] - card["start_s"]
            player = url_of(clip_path, final) + fragment(offset, offset + length)
            note = "plays the clip r2cli cut made" + ("" if video.playable else f"; {video.note}")
        elif video.info is not None:
            player = url_of(video.path, final) + fragment(card["start_s"], card["end_s"])
            note = video.note
        return {
            **card,
            "name": video.name, "video_page": video.page, "problem": video.problem,
            "thumb": thumb_url(video, card["mid_s"]),
            "strip": [u for u in (thumb_url(video, t) for t in (card["start_s"], card["mid_s"], card["end_s"])) if u],
            "tc_start": timecode(card["start_s"], fps), "tc_end": timecode(card["end_s"], fps),
            "player": player, "player_note": note, "length": card["end_s"] - card["start_s"],
        }

    def video_view(video: _Video) -> dict:
        return {"number": video.number, "name": video.name, "path": video.path, "page": video.page,
                "video_id": video.video_id, "problem": video.problem, "note": video.note,
                "info": video.info, "duration": video.duration,
                "strip": [{"url": thumb_url(video, t), "time": timecode(t, None)[:8]} for t in video.strip_times]
                if video.thumbs and not video.problem else []}

    all_videos = [video_view(v) for v in videos.values()]
    moments_per_video: dict[str, int] = {}
    for entry in queries:
        for card in entry["cards"]:
            moments_per_video[card["video"].path] = moments_per_video.get(card["video"].path, 0) + 1
    query_views = []
    for entry in queries:
        pages = max(1, -(-len(entry["cards"]) // page_size))
        names = [entry["page"]] + [f"q{entry['number']:03d}-p{k}.html" for k in range(2, pages + 1)]
        query_views.append({"number": entry["number"], "qid": entry["qid"], "query": entry["query"],
                            "label": entry.get("label", "Query"),
                            "page": entry["page"], "moments": len(entry["cards"]), "run": entry["run"].label})
        for k, name in enumerate(names):
            chunk = entry["cards"][k * page_size:(k + 1) * page_size]
            write(name, "query.html.j2", title=f"{entry['query']}", query=query_views[-1],
                  cards=[view(c) for c in chunk], page=k + 1, pages=[{"n": i + 1, "name": n} for i, n in enumerate(names)],
                  first_rank=k * page_size + 1)
    run_views = []
    for run in runs:
        manifest = run.manifest
        settings = manifest.get("settings") or {}
        run_views.append({
            "label": run.label, "kind": run.kind, "folder": str(run.folder), "model": manifest.get("model") or {},
            "settings": settings_rows(settings, manifest.get("model") or {}),
            "counts": manifest.get("counts") or {}, "timings": manifest.get("timings") or {},
            "skipped": manifest.get("skipped") or [],
            "queries": [q for q in query_views if q["run"] == run.label],
            "summaries": [{"video": videos[p].page, "name": videos[p].name, "selected_s": s["selected_s"],
                           "budget_s": s["budget_s"], "duration_s": s["duration_s"], "segments": len(s["cards"]),
                           "query": s["cards"][0]["query"] if s["cards"] else None}
                          for p, runs_of in summaries.items() for s in runs_of if s["run"] is run],
        })
    for video in videos.values():
        plots = [{"svg": url_of(final / item["svg"], final) if item.get("svg") else None,
                  "query": item["entry"]["query"], "query_page": item["entry"]["page"]}
                 for item in video_plots.get(video.path, [])]
        cards = [view(c) for e in queries for c in e["cards"] if c["video"] is video]
        cards.sort(key=lambda c: (c["start_s"], c["rank"]))
        summary_views = [{"svg": url_of(final / s["svg"], final), "run": s["run"].label, "budget_s": s["budget_s"],
                          "selected_s": s["selected_s"], "duration_s": s["duration_s"], "shots": s["shots"],
                          "boundaries": [timecode(t, video.info.fps if video.info else None)
                                         for t in s["rows"]["start_s"].astype(float).tolist()[1:]],
                          "cards": [view(c) for c in s["cards"]]}
                         for s in summaries.get(video.path, [])]
        write(video.page, "video.html.j2", title=video.name, video=video_view(video), plots=plots,
              more_plots=video.more_plots, cards=cards[:page_size], more_cards=max(0, len(cards) - page_size),
              summaries=summary_views)
    write("index.html", "index.html.j2", title="r2cli report", runs=run_views, videos=all_videos,
          moments_per_video=moments_per_video, warnings=warnings,
          clips=str(clips) if clips else None)
    return count
