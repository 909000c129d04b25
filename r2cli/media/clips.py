"""Cut one clip per segment with the real ffmpeg.

* Accurate mode (default): ``-ss`` before ``-i`` (fast seek to the keyframe before the start,
  then ffmpeg decodes and drops frames up to the exact start) and ``-t`` on the output; video
  re-encoded with libx264, audio with AAC. Clip durations land within one frame of the request.
* Copy mode (``copy=True``): stream copy, no re-encode; the clip starts at the keyframe at or
  before the requested start, so it can be longer than asked.

Command lines are built with ffmpeg-python and run by ``_process.run_ffmpeg``. Every clip is
written under a hidden partial name and renamed when ffmpeg succeeds; a failure (a full disk
included) removes the partial file, and partial files left by a killed run are removed by the
next run. Existing files are kept unless ``force=True``; a source video (a row's, or one the
caller protects, such as every video of the catalog) is never an output, even with ``force``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from r2cli.errors import UsageError
from r2cli.media import _process
from r2cli.media.naming import DEFAULT_TEMPLATE, MEDIA_FORMATS, OUTPUT_COMMENT, check_template, partial_name, \
    render_name, safe_filename
from r2cli.media.segments import ClipOutcome, CutReport, Segment, check_segments
from r2cli.progress import NULL_REPORTER, Reporter

# given candidate output paths, returns those (as ``str(path)``) that must never be written, e.g.
# the videos of the catalog: ``lambda paths: r2cli.catalog.guards.source_video_paths(workspace, paths)``
Protected = Callable[[Sequence[Path]], "set[str]"]

# flags every ffmpeg r2cli runs starts with (global options, in front of the inputs)
GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-loglevel", "error", "-y")


def ffmpeg_cmd(ffmpeg: str) -> list[str]:
    """The executable and the global options, for ``ffmpeg-python``'s ``compile(cmd=...)``."""
    return [ffmpeg, *GLOBAL_ARGS]


def container_options(fmt: str) -> dict[str, str]:
    """Output options of every final media file: the muxer, faststart, and the r2cli tag."""
    options = {"format": fmt, "metadata": f"comment={OUTPUT_COMMENT}"}
    if fmt in ("mp4", "mov"):
        options["movflags"] = "+faststart"
    return options


def clip_command(ffmpeg: str, src: str, start: float, end: float, tmp: Path, copy: bool, threads: int) -> list[str]:
    """The ffmpeg command line that cuts ``src`` [start, end) into ``tmp``."""
    import ffmpeg as ffmpeg_python

    source = ffmpeg_python.input(src, ss=f"{start:.6f}", threads=str(threads))
    options: dict[str, object] = {"t": f"{end - start:.6f}", "sn": None, "dn": None, "map_chapters": "-1"}
    if copy:
        options.update({"c": "copy", "avoid_negative_ts": "make_zero"})
    else:
        options.update({"c:v": "libx264", "preset": "veryfast", "crf": "18", "pix_fmt": "yuv420p",
                        "c:a": "aac", "b:a": "192k", "threads": str(threads)})
    options.update(container_options(MEDIA_FORMATS[tmp.suffix.lower()]))
    stream = ffmpeg_python.output(source["v:0"], source["a?"], str(tmp), **options)
    return stream.compile(cmd=ffmpeg_cmd(ffmpeg))


def protected_paths(candidates: Iterable[Path], sources: Iterable[Path], protected: Protected | None) -> set[str]:
    """The candidates that are source videos: a row's own source, or one ``protected`` names."""
    candidates = list(candidates)
    existing_sources = [s for s in sources if s.exists()]
    hits = {str(c) for c in candidates if c.exists() and any(_process.same_file(c, s) for s in existing_sources)}
    if protected is not None and candidates:
        hits |= {str(c) for c in candidates} & set(protected(candidates))
    return hits


def cut_segments(
    segments: Sequence[Segment],
    out_dir: str | os.PathLike,
    *,
    copy: bool = False,
    template: str = DEFAULT_TEMPLATE,
    force: bool = False,
    pad: float = 0.0,
    jobs: int | None = None,
    protected: Protected | None = None,
    timeout: float | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> CutReport:
    """Cut one clip per segment into ``out_dir``, running up to ``jobs`` ffmpeg processes at once.

    Names come from ``template`` (see ``render_name``); two segments that would get the same
    name get "-2", "-3", … suffixes. Bad rows and missing sources are skipped and named in the
    report; an existing file is skipped unless ``force``; a name that is a source video (of the
    rows, or among the paths ``protected`` returns) is always skipped. A failing ffmpeg (a full
    disk included) leaves no partial file; after a "No space left on device" the remaining
    clips are not attempted. ``timeout``: seconds one ffmpeg may run.

    Raises:
        UsageError: bad template, pad or jobs.
        MissingDependencyError: ffmpeg/ffprobe not installed.
        InputError: ``out_dir`` cannot be created or written.
    """
    from r2cli.media.ffmpeg import find_ffmpeg

    began = time.monotonic()
    check_template(template)
    jobs = _process.default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    ffmpeg = find_ffmpeg()
    folder = Path(out_dir)
    _process.prepare_output_dir(folder, "--out")
    for stale in _process.remove_stale_partials(folder):
        reporter.warn(f"removed {stale.name}, left in {folder} by an interrupted run")
    report = CutReport(mode="copy" if copy else "reencode", format="media", out_dir=str(folder), jobs=jobs)
    usable, skipped = check_segments(segments, pad=pad, reporter=reporter)
    outcomes: dict[int, ClipOutcome] = dict(skipped)

    named = _unique_names(usable, template, folder)
    sources_hit = protected_paths([item[4] for item in named], [Path(s.path) for s in segments], protected)
    plan = _clips_to_cut(named, sources_hit, force=force, reporter=reporter, outcomes=outcomes)

    threads = max(1, _process.default_jobs() // min(jobs, max(1, len(plan))))
    disk_full = {"hit": False}
    batch = _process.Batch()
    reporter.begin("cut", total=len(plan), unit="clips")

    def work(item: tuple[int, Segment, float, float, Path]) -> tuple[int, ClipOutcome]:
        return _cut_clip(item, ffmpeg=ffmpeg, copy=copy, threads=threads, timeout=timeout, batch=batch,
                         force=force, disk_full=disk_full)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            for position, outcome in pool.map(work, plan):
                outcomes[position] = outcome
                if outcome.status == "failed":
                    reporter.warn(f"failed {outcome.segment.describe()}: {outcome.reason}")
                reporter.advance("cut")
        except BaseException:  # Ctrl-C: the children are in their own group, stop them ourselves
            pool.shutdown(wait=False, cancel_futures=True)
            batch.stop()
            raise
    reporter.end("cut")
    report.outcomes = [outcomes[i] for i in sorted(outcomes)]
    report.elapsed_s = time.monotonic() - began
    return report


def _unique_names(usable: list, template: str, folder: Path) -> list[tuple[int, Segment, float, float, Path]]:
    """Each usable segment's output path from ``template``; a name already taken (case aside) gets
    "-2", "-3", … before its suffix."""
    taken: set[str] = set()
    named: list[tuple[int, Segment, float, float, Path]] = []
    for position, segment, _info, start, end in usable:
        name = render_name(template, segment, position)
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = safe_filename(f"{stem}-{n}{suffix}")
        taken.add(candidate.lower())
        named.append((position, segment, start, end, folder / candidate))
    return named


def _clips_to_cut(named: list[tuple[int, Segment, float, float, Path]], sources_hit: set, *, force: bool,
                  reporter: Reporter, outcomes: dict[int, ClipOutcome]) -> list[tuple[int, Segment, float, float, Path]]:
    """The clips to cut; one whose name is a source video, an existing file (without ``force``) or a file
    r2cli did not write is skipped, with its reason in ``outcomes``."""
    plan: list[tuple[int, Segment, float, float, Path]] = []
    for position, segment, start, end, final in named:
        outcome = ClipOutcome(segment, "skipped", output=str(final), start_s=start, end_s=end)
        if str(final) in sources_hit:
            outcome.reason = f"{final} is a source video; an input is never an output (change --template or --out)"
        elif final.exists() and not force:
            outcome.reason = f"{final} exists (use --force to overwrite)"
        elif os.path.lexists(final) and not _process.is_r2cli_output(final):
            outcome.reason = (f"{final} exists and was not written by r2cli; r2cli never replaces a file it did "
                              "not write, not even with --force")
        if outcome.reason:
            reporter.warn(f"skipped {segment.describe()}: {outcome.reason}")
            outcomes[position] = outcome
            continue
        plan.append((position, segment, start, end, final))
    return plan


def _cut_clip(item: tuple[int, Segment, float, float, Path], *, ffmpeg: Any, copy: bool, threads: int,
              timeout: float | None, batch: Any, force: bool, disk_full: dict[str, bool]) -> tuple[int, ClipOutcome]:
    """Cut one clip into a partial file and publish it; after a full disk (``disk_full``), attempt nothing."""
    position, segment, start, end, final = item
    outcome = ClipOutcome(segment, "failed", output=str(final), start_s=start, end_s=end)
    if disk_full["hit"]:
        outcome.reason = "not attempted: the output disk is full"
        return position, outcome
    tmp = partial_name(final, os.getpid())
    clock = time.monotonic()
    try:
        command = clip_command(ffmpeg, segment.path, start, end, tmp, copy, threads)
        code, stderr = _process.run_ffmpeg(command, timeout=timeout, batch=batch)
        outcome.seconds = time.monotonic() - clock
        if code != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            if _process.NO_SPACE in stderr:
                disk_full["hit"] = True
            outcome.reason = f"ffmpeg failed (exit {code}): {_process.error_tail(stderr)}"
            return position, outcome
        try:
            _process.publish(tmp, final, force)
        except FileExistsError:
            outcome.status, outcome.reason = "skipped", f"{final} exists (use --force to overwrite)"
            return position, outcome
        except UsageError as exc:  # NotOwnedError: it became a user's file while the clip was cut
            outcome.status, outcome.reason = "skipped", str(exc)
            return position, outcome
        except OSError as exc:
            outcome.reason = f"cannot move the clip into place: {exc.strerror or exc}"
            return position, outcome
        outcome.status = "written"
        return position, outcome
    finally:
        _process.remove_quietly(tmp)
