"""Join segments into one reel with the real ffmpeg.

Every segment is cut accurately (in parallel) to a common picture size, frame rate and PCM
audio, then the pieces are joined with ffmpeg's concat demuxer and the audio is encoded once,
so the reel lasts the sum of its segments. Shared by ``r2cli cut --concat`` and
``r2cli summarize --reel``.

Command lines are built with ffmpeg-python and run by ``_process.run_ffmpeg``. The reel is
written under a hidden partial name next to it (its pieces in a hidden partial folder) and
renamed when complete; a source video (a row's, or one the caller protects, such as every
video of the catalog) is never the reel, even with ``force``.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from r2cli import ownership
from r2cli.errors import InputError, MediaError, UsageError
from r2cli.media import _process
from r2cli.media.clips import Protected, container_options, ffmpeg_cmd, protected_paths
from r2cli.media.naming import MEDIA_FORMATS, partial_name
from r2cli.media.segments import ClipOutcome, CutReport, Segment, check_segments
from r2cli.progress import NULL_REPORTER, Reporter

_SILENCE = "anullsrc=r=48000:cl=stereo"


def _even(value: int) -> int:
    return max(2, value - value % 2)


def piece_command(
    ffmpeg: str, src: str, info: Any, start: float, end: float, tmp: Path, size: tuple[int, int], fps: float,
    audio: bool,
) -> list[str]:
    """The ffmpeg command line of one reel piece: ``src`` [start, end) at the reel's size and rate."""
    import ffmpeg as ffmpeg_python

    width, height = size
    source = ffmpeg_python.input(src, ss=f"{start:.6f}", threads="1")
    video = source["v:0"]
    if (info.display_width, info.display_height) != (width, height):
        video = video.filter("scale", width, height, force_original_aspect_ratio="decrease")
        video = video.filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2")
    video = video.filter("setsar", "1")
    if abs(info.fps - fps) > 1e-3:
        video = video.filter("fps", f"{fps:.6f}")
    streams = [video]
    options: dict[str, object] = {"t": f"{end - start:.6f}"}
    if audio:
        streams.append(source["a:0"] if info.has_audio else ffmpeg_python.input(_SILENCE, f="lavfi")["a:0"])
        options.update({"c:a": "pcm_s16le", "ar": "48000", "ac": "2"})
    options.update({"c:v": "libx264", "preset": "veryfast", "crf": "18", "bf": "0", "pix_fmt": "yuv420p",
                    "threads": "1", "format": "mov"})
    return ffmpeg_python.output(*streams, str(tmp), **options).compile(cmd=ffmpeg_cmd(ffmpeg))


def concat_command(ffmpeg: str, listing: Path, tmp: Path, audio: bool, fmt: str) -> list[str]:
    """The ffmpeg command line that joins the pieces named in ``listing`` into ``tmp``."""
    import ffmpeg as ffmpeg_python

    joined = ffmpeg_python.input(str(listing), f="concat", safe="0")
    streams = [joined["v:0"]]
    options: dict[str, object] = {"c:v": "copy"}
    if audio:
        streams.append(joined["a:0"])
        options.update({"c:a": "aac", "b:a": "192k"})
    options.update(container_options(fmt))
    return ffmpeg_python.output(*streams, str(tmp), **options).compile(cmd=ffmpeg_cmd(ffmpeg))


def _concat_listing(pieces: Sequence[Path]) -> str:
    # hand-written: ffmpeg-python builds command lines, not the concat demuxer's list file. The
    # pieces are named by r2cli (piece-00001.mov) next to the list, which the demuxer resolves
    # relative names against: the folder's name (from the user's reel name, which may hold a line
    # break) never reaches a line of the list.
    return "".join("file '" + p.name.replace("'", "'\\''") + "'\n" for p in pieces)


def make_reel(
    segments: Sequence[Segment],
    output: str | os.PathLike,
    *,
    force: bool = False,
    pad: float = 0.0,
    jobs: int | None = None,
    protected: Protected | None = None,
    flag: str = "reel",
    timeout: float | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> CutReport:
    """Join ``segments`` (in the given order) into one reel at ``output``.

    Each segment is cut accurately (in parallel) to the picture size and frame rate of the first
    usable segment, with 48 kHz stereo PCM audio (silence for sources without audio when any has
    audio); the pieces are joined with the concat demuxer and the audio is encoded to AAC once.
    The reel lasts the sum of its segments (within a frame per segment). Bad rows and missing
    sources are skipped and named; temporary pieces are always removed. ``protected`` names
    paths that are never written (the catalog's videos); ``flag`` is how messages name
    ``output`` (``--concat`` for cut, ``--reel`` for summarize); ``timeout``: seconds one ffmpeg may run.

    Raises:
        UsageError: ``output`` exists without ``force``, is a source video, has an unsupported
            extension, or no segment is usable.
        InputError: the reel's folder cannot be created or written.
        MediaError: ffmpeg failed (the partial reel is removed).
        MissingDependencyError: ffmpeg/ffprobe not installed.
    """
    from r2cli.media.ffmpeg import find_ffmpeg

    began = time.monotonic()
    target = Path(output)
    suffix = target.suffix.lower()
    _check_target(target, segments, protected=protected, force=force, flag=flag)
    jobs = _process.default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    ffmpeg = find_ffmpeg()
    usable, skipped = check_segments(segments, pad=pad, reporter=reporter)
    if not usable:
        raise UsageError(f"{flag} {target}: none of the {len(segments)} segment(s) can be cut")
    first = usable[0][2]
    size = (_even(first.display_width), _even(first.display_height))
    fps = first.fps
    audio = any(info.has_audio for _, _, info, _, _ in usable)
    _process.prepare_output_dir(target.parent, flag)
    for stale in _process.remove_stale_partials(target.parent):
        reporter.warn(f"removed {stale.name}, left in {target.parent} by an interrupted run")
    report = CutReport(mode="reencode", format="media", out_dir=str(target.parent), jobs=jobs)
    work_dir: Path | None = None
    tmp = partial_name(target, os.getpid())
    outcomes: dict[int, ClipOutcome] = dict(skipped)
    batch = _process.Batch()
    reporter.begin("reel", total=len(usable) + 1, unit="pieces")
    try:
        work_dir = ownership.staging_folder(target.with_suffix(".pieces")).resolve()
        cutter = _PieceCutter(ffmpeg, target, work_dir, size=size, fps=fps, audio=audio, timeout=timeout, batch=batch)
        pieces = cutter.cut_all(usable, jobs=jobs, outcomes=outcomes, reporter=reporter)
        failures = [o for o in outcomes.values() if o.status == "failed"]
        if failures:
            raise MediaError(f"reel {target}: {failures[0].segment.describe()}: {failures[0].reason}")
        listing = work_dir / "pieces.txt"
        listing.write_text(_concat_listing(pieces), encoding="utf-8")
        command = concat_command(ffmpeg, listing, tmp, audio, MEDIA_FORMATS[suffix])
        code, stderr = _process.run_ffmpeg(command, timeout=timeout, batch=batch)
        if code != 0 or not tmp.is_file():
            raise MediaError(f"reel {target}: ffmpeg concat failed (exit {code}): {_process.error_tail(stderr)}")
        _process.publish(tmp, target, force, flag)
        reporter.advance("reel")
    except FileExistsError:
        raise UsageError(f"{flag} {target} exists (use --force to overwrite)") from None
    except OSError as exc:  # the folder went read-only or full between the check and the write
        raise InputError(f"{flag} {target}: cannot write the reel: {exc.strerror or exc}") from None
    finally:
        _process.remove_quietly(tmp)
        if work_dir is not None:
            ownership.remove_staging(work_dir)
        reporter.end("reel")
    report.outcomes = [outcomes[i] for i in sorted(outcomes)]
    report.reel = str(target)
    report.elapsed_s = time.monotonic() - began
    return report


def _check_target(target: Path, segments: Sequence[Segment], *, protected: Protected | None, force: bool,
                  flag: str) -> None:
    """The reel may be written at ``target``: a media suffix, not a source, not a user's file.

    Raises:
        UsageError: it may not (the rule named).
    """
    if target.suffix.lower() not in MEDIA_FORMATS:
        raise UsageError(f"{flag} {target}: the reel must end in {', '.join(MEDIA_FORMATS)}")
    if protected_paths([target], [Path(s.path) for s in segments], protected):
        raise UsageError(f"{flag} {target} is one of the source videos; an input is never an output")
    if target.exists() and not force:
        raise UsageError(f"{flag} {target} exists (use --force to overwrite)")
    _process.check_replaceable(target, flag)  # --force replaces r2cli's own reel, never a user's file


class _PieceCutter:
    """Cuts the reel's pieces into ``work_dir``, each to the reel's size, frame rate and audio."""

    def __init__(self, ffmpeg: Any, target: Path, work_dir: Path, *, size: tuple[int, int], fps: float, audio: bool,
                 timeout: float | None, batch: Any) -> None:
        self.ffmpeg = ffmpeg
        self.target = target
        self.work_dir = work_dir
        self.size = size
        self.fps = fps
        self.audio = audio
        self.timeout = timeout
        self.batch = batch

    def piece(self, item: tuple[int, tuple[int, Segment, Any, float, float]]) -> tuple[int, ClipOutcome, Path]:
        number, (position, segment, info, start, end) = item
        path = self.work_dir / f"piece-{number:05d}.mov"
        clock = time.monotonic()
        command = piece_command(self.ffmpeg, segment.path, info, start, end, path, self.size, self.fps, self.audio)
        code, stderr = _process.run_ffmpeg(command, timeout=self.timeout, batch=self.batch)
        outcome = ClipOutcome(segment, "written", output=str(self.target), start_s=start, end_s=end)
        outcome.seconds = time.monotonic() - clock
        if code != 0 or not path.is_file():
            outcome.status = "failed"
            outcome.reason = f"ffmpeg failed (exit {code}): {_process.error_tail(stderr)}"
        return position, outcome, path

    def cut_all(self, usable: list, *, jobs: int, outcomes: dict[int, ClipOutcome], reporter: Reporter) -> list[Path]:
        """Cut every piece in ``jobs`` threads (outcomes by position); the pieces written, in order."""
        pieces: list[Path] = []
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            try:
                for position, outcome, path in pool.map(self.piece, enumerate(usable)):
                    outcomes[position] = outcome
                    reporter.advance("reel")
                    if outcome.status == "written":
                        pieces.append(path)
            except BaseException:  # Ctrl-C: the children are in their own group, stop them ourselves
                pool.shutdown(wait=False, cancel_futures=True)
                self.batch.stop()
                raise
        return pieces
