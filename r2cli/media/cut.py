"""Cut clips and reels out of source videos with the real ffmpeg binary.

* Accurate mode (default): ``-ss`` before ``-i`` (fast seek to the keyframe before the start,
  then ffmpeg decodes and drops frames up to the exact start) and ``-t`` on the output; video
  re-encoded with libx264, audio with AAC. Clip durations land within one frame of the request.
* Copy mode (``copy=True``): stream copy, no re-encode; the clip starts at the keyframe at or
  before the requested start, so it can be longer than asked.
* Reels: every segment is cut accurately to a common picture size, frame rate and PCM audio,
  then the pieces are joined with ffmpeg's concat demuxer and the audio is encoded once, so the
  reel lasts the sum of its segments.

Every output is written to a hidden temporary name in the output folder and renamed when
ffmpeg succeeds; a failure (a full disk included) removes the partial file. Existing files are
kept unless ``force=True``; a source video is never an output. Clips run in parallel, one
ffmpeg process per worker, up to the number of cores.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Formatter
from typing import Any, Iterable, Sequence

from r2cli.errors import InputError, MediaError, UsageError
from r2cli.progress import NULL_REPORTER, Reporter

DEFAULT_TEMPLATE = "{video}-{query}-{rank}.mp4"
TEMPLATE_FIELDS = ("video", "query", "rank", "start", "end", "index", "score", "video_id", "query_id")
MEDIA_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
MAX_NAME_BYTES = 200  # below the usual 255-byte limit, leaving room for the temporary prefix
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_NO_SPACE = "No space left on device"


@dataclass(frozen=True)
class Segment:
    """One piece of a source video to cut (times in seconds from the start of the source)."""

    path: str  # source video
    start_s: float  # requested start
    end_s: float  # requested end (> start_s)
    query: str | None = None  # query text (for the {query} name field)
    rank: int | None = None  # rank (for {rank}); default: position in the list, 1-based
    score: float | None = None  # score (for {score})
    video_id: int | None = None  # catalog id (for {video_id})
    query_id: str | None = None  # query id (for {query_id})
    label: str | None = None  # where the row came from, for messages ("moments.parquet row 3")

    def describe(self) -> str:
        where = f"{self.label}: " if self.label else ""
        return f"{where}{self.path} [{self.start_s:.3f}-{self.end_s:.3f} s]"


@dataclass
class ClipOutcome:
    """What happened to one segment."""

    segment: Segment
    status: str  # "written" | "skipped" | "failed"
    output: str | None = None  # written file (or planned name when skipped/failed after planning)
    reason: str | None = None  # why it was skipped or failed
    start_s: float | None = None  # start actually cut (after padding and clamping)
    end_s: float | None = None  # end actually cut
    seconds: float = 0.0  # wall time spent in ffmpeg

    def to_dict(self) -> dict:
        data = asdict(self)
        data["segment"] = asdict(self.segment)
        return data


@dataclass
class CutReport:
    """Result of a cut: one outcome per segment, plus the reel or timeline file when made."""

    mode: str  # "reencode" | "copy"
    format: str  # "media" | "edl" | "otio"
    out_dir: str | None = None
    outcomes: list[ClipOutcome] = field(default_factory=list)
    reel: str | None = None  # the reel file, when one was made
    timeline: str | None = None  # the EDL/OTIO file, when one was written
    jobs: int = 1  # ffmpeg processes run at once
    elapsed_s: float = 0.0

    def _with(self, status: str) -> list[ClipOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def written(self) -> list[ClipOutcome]:
        return self._with("written")

    @property
    def skipped(self) -> list[ClipOutcome]:
        return self._with("skipped")

    @property
    def failed(self) -> list[ClipOutcome]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        """True when nothing failed (skipped rows do not count as failures)."""
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {"written": len(self.written), "skipped": len(self.skipped), "failed": len(self.failed)}

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "format": self.format,
            "out_dir": self.out_dir,
            "reel": self.reel,
            "timeline": self.timeline,
            "jobs": self.jobs,
            "elapsed_s": round(self.elapsed_s, 3),
            "counts": self.counts(),
            "clips": [o.to_dict() for o in self.outcomes],
        }


# ---------------------------------------------------------------------------------------------
# Names


def slugify(text: str | None, max_chars: int = 60) -> str:
    """A short file-name-safe slug: NFKC-normalised, lower-case, words joined by '-'.

    Letters of any script are kept; everything else (separators, dots, punctuation) becomes '-'.
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).lower()
    slug = re.sub(r"[^\w]+", "-", text, flags=re.UNICODE).strip("-_")
    return slug[:max_chars].strip("-_")


def safe_filename(name: str, *, max_bytes: int = MAX_NAME_BYTES, default: str = "clip") -> str:
    """Make ``name`` a single safe file name: it can never leave the folder it is joined to.

    NFKC-normalised (so full-width '／' becomes '/' before it is removed); path separators,
    control characters and ``<>:"|?*`` become '_'; runs of dots collapse to one; leading dots,
    dashes and spaces are removed (no hidden files, no option-like names); Windows device names
    get a '_' prefix; the result is cut to ``max_bytes`` of UTF-8 keeping the extension.
    """
    name = unicodedata.normalize("NFKC", name)
    name = "".join("_" if (ord(ch) < 32 or ch in '/\\<>:"|?*\x7f') else ch for ch in name)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"\s+", " ", name).strip()
    name = name.lstrip(". -").rstrip(". ")
    if not name:
        name = default
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > 8:
        stem, suffix = name, ""
    if stem.split(".")[0].lower() in _WINDOWS_RESERVED:
        stem = "_" + stem
    ext = f".{suffix}" if suffix else ""
    budget = max_bytes - len(ext.encode("utf-8"))
    encoded = stem.encode("utf-8")
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", "ignore").rstrip(". -")
    return (stem or default) + ext


def _check_template(template: str) -> None:
    for _, field_name, spec, conversion in Formatter().parse(template):
        if field_name is None:
            continue
        if field_name not in TEMPLATE_FIELDS:
            raise UsageError(
                f"--template field {{{field_name}}} is not known; use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
            )
        if conversion:
            raise UsageError(f"--template field {{{field_name}!{conversion}}}: conversions are not allowed")


def render_name(template: str, segment: Segment, index: int, *, suffix_default: str = ".mp4") -> str:
    """The safe output file name of ``segment`` (``index`` is its 0-based position).

    Fields: {video} source file stem, {query} query slug, {rank}, {start}, {end} (seconds,
    e.g. ``{start:.1f}``), {index}, {score}, {video_id}, {query_id}. The result is passed
    through ``safe_filename``; without a known media extension ".mp4" is appended.

    Raises:
        UsageError: unknown field, a conversion, or a format spec that does not fit the value.
    """
    _check_template(template)
    values = {
        "video": slugify(Path(segment.path).stem, 80) or "video",
        "query": slugify(segment.query) or "clip",
        "rank": segment.rank if segment.rank is not None else index + 1,
        "start": segment.start_s,
        "end": segment.end_s,
        "index": index,
        "score": segment.score if segment.score is not None else float("nan"),
        "video_id": segment.video_id if segment.video_id is not None else "",
        "query_id": slugify(segment.query_id) or "",
    }
    try:
        raw = template.format_map(values)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--template {template!r} cannot be filled in: {exc}") from None
    name = safe_filename(raw)
    if Path(name).suffix.lower() not in MEDIA_FORMATS:
        name = safe_filename(name + suffix_default)
    return name


# ---------------------------------------------------------------------------------------------
# Running ffmpeg


def run_ffmpeg(args: list[str]) -> tuple[int, str]:
    """Run ffmpeg with ``args`` (the executable first); return (exit code, stderr text).

    Tests replace this function to simulate failures.
    """
    try:
        result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    except OSError as exc:
        return 127, f"cannot run {args[0]}: {exc}"
    return result.returncode, result.stderr.decode("utf-8", "replace")


def _error_tail(stderr: str, lines: int = 3) -> str:
    kept = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return "; ".join(kept[-lines:]) or "no message"


def default_jobs() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _publish(tmp: Path, final: Path, force: bool) -> None:
    """Move a finished temporary file to its final name without overwriting unless ``force``.

    Raises:
        FileExistsError: ``final`` exists and ``force`` is False.
    """
    if force:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # atomic and refuses to overwrite
    except FileExistsError:
        raise
    except OSError:  # no hard links on this filesystem
        if final.exists():
            raise FileExistsError(str(final)) from None
        os.replace(tmp, final)
        return
    _remove_quietly(tmp)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


# ---------------------------------------------------------------------------------------------
# Checking rows


@dataclass
class _Source:
    info: Any | None  # r2cli.media.probe.MediaInfo, or None when unusable
    problem: str | None  # why the source cannot be used


def _probe_sources(paths: Iterable[str], reporter: Reporter) -> dict[str, _Source]:
    """Probe each distinct source once."""
    from r2cli.media.probe import probe

    sources: dict[str, _Source] = {}
    for path in paths:
        if path in sources:
            continue
        if not os.path.isfile(path):
            sources[path] = _Source(None, f"source not found: {path} (moved or deleted?)")
            continue
        try:
            sources[path] = _Source(probe(path), None)
        except MediaError as exc:
            sources[path] = _Source(None, str(exc))
    return sources


def check_segments(
    segments: Sequence[Segment], *, pad: float = 0.0, reporter: Reporter = NULL_REPORTER
) -> tuple[list[tuple[int, Segment, Any, float, float]], list[tuple[int, ClipOutcome]]]:
    """Split ``segments`` into usable ones and skipped ones.

    Usable entries are (position, segment, media info, start, end) with ``pad`` seconds added
    on both sides and clamped to the video; skipped entries are (position, outcome). A row is skipped (and named) when its times are not
    finite, its end is not after its start, it lies outside the video (start < 0, start at or
    after the end of the video, or end more than one frame past it), or its source is missing
    or unreadable. Each source is probed once.

    Raises:
        UsageError: ``pad`` is negative or not finite.
        MissingDependencyError: ffprobe is not installed.
    """
    if not (pad >= 0 and math.isfinite(pad)):
        raise UsageError(f"--pad must be a non-negative number of seconds, got {pad}")
    sources = _probe_sources((s.path for s in segments), reporter)
    usable, skipped = [], []
    for position, segment in enumerate(segments):
        start, end = segment.start_s, segment.end_s
        reason = None
        source = sources[segment.path]
        if not (math.isfinite(start) and math.isfinite(end)):
            reason = f"start and end must be finite numbers, got {start} and {end}"
        elif end <= start:
            reason = f"end ({end:.3f} s) must be after start ({start:.3f} s)"
        elif source.problem:
            reason = source.problem
        else:
            info = source.info
            frame = 1.0 / info.fps
            if start < 0 or start >= info.duration or end > info.duration + frame:
                reason = f"outside the video (0-{info.duration:.3f} s)"
        if reason:
            skipped.append((position, ClipOutcome(segment, "skipped", reason=reason)))
            reporter.warn(f"skipped {segment.describe()}: {reason}")
            continue
        info = source.info
        usable.append((position, segment, info, max(0.0, start - pad), min(info.duration, end + pad)))
    return usable, skipped


# ---------------------------------------------------------------------------------------------
# Clips


def _clip_args(ffmpeg: str, src: str, start: float, end: float, tmp: Path, copy: bool, threads: int) -> list[str]:
    fmt = MEDIA_FORMATS[tmp.suffix.lower()]
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-threads", str(threads)]
    args += ["-ss", f"{start:.6f}", "-i", src, "-t", f"{end - start:.6f}"]
    args += ["-map", "0:v:0", "-map", "0:a?", "-sn", "-dn", "-map_chapters", "-1"]
    if copy:
        args += ["-c", "copy", "-avoid_negative_ts", "make_zero"]
    else:
        args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
        args += ["-c:a", "aac", "-b:a", "192k", "-threads", str(threads)]
    if fmt in ("mp4", "mov"):
        args += ["-movflags", "+faststart"]
    return args + ["-f", fmt, str(tmp)]


def cut_segments(
    segments: Sequence[Segment],
    out_dir: str | os.PathLike,
    *,
    copy: bool = False,
    template: str = DEFAULT_TEMPLATE,
    force: bool = False,
    pad: float = 0.0,
    jobs: int | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> CutReport:
    """Cut one clip per segment into ``out_dir``, running up to ``jobs`` ffmpeg processes at once.

    Names come from ``template`` (see ``render_name``); two segments that would get the same
    name get "-2", "-3", … suffixes. Bad rows and missing sources are skipped and named in the
    report; an existing file is skipped unless ``force``; a name that is one of the source
    videos is always skipped. A failing ffmpeg (a full disk included) leaves no partial file;
    after a "No space left on device" the remaining clips are not attempted.

    Raises:
        UsageError: bad template, pad or jobs.
        MissingDependencyError: ffmpeg/ffprobe not installed.
        InputError: ``out_dir`` cannot be created.
    """
    from r2cli.media.ffmpeg import find_ffmpeg

    began = time.monotonic()
    _check_template(template)
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    ffmpeg = find_ffmpeg()
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {folder}: cannot create the folder: {exc.strerror or exc}") from None
    report = CutReport(mode="copy" if copy else "reencode", format="media", out_dir=str(folder), jobs=jobs)
    usable, skipped = check_segments(segments, pad=pad, reporter=reporter)
    outcomes: dict[int, ClipOutcome] = dict(skipped)

    sources = [Path(s.path) for s in segments]
    taken: set[str] = set()
    plan: list[tuple[int, Segment, float, float, Path]] = []
    for position, segment, _info, start, end in usable:
        name = render_name(template, segment, position)
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = safe_filename(f"{stem}-{n}{suffix}")
        taken.add(candidate.lower())
        final = folder / candidate
        outcome = ClipOutcome(segment, "skipped", output=str(final), start_s=start, end_s=end)
        if any(_same_file(final, src) for src in sources if src.exists()):
            outcome.reason = f"{final} is a source video; an input is never an output (change --template or --out)"
        elif final.exists() and not force:
            outcome.reason = f"{final} exists (use --force to overwrite)"
        if outcome.reason:
            reporter.warn(f"skipped {segment.describe()}: {outcome.reason}")
            outcomes[position] = outcome
            continue
        plan.append((position, segment, start, end, final))

    threads = max(1, default_jobs() // min(jobs, max(1, len(plan))))
    disk_full = {"hit": False}
    reporter.begin("cut", total=len(plan), unit="clips")

    def work(item: tuple[int, Segment, float, float, Path]) -> tuple[int, ClipOutcome]:
        position, segment, start, end, final = item
        outcome = ClipOutcome(segment, "failed", output=str(final), start_s=start, end_s=end)
        if disk_full["hit"]:
            outcome.reason = "not attempted: the output disk is full"
            return position, outcome
        tmp = final.with_name(f".{final.stem}.part-{uuid.uuid4().hex[:8]}{final.suffix}")
        clock = time.monotonic()
        try:
            code, stderr = run_ffmpeg(_clip_args(ffmpeg, segment.path, start, end, tmp, copy, threads))
            outcome.seconds = time.monotonic() - clock
            if code != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
                if _NO_SPACE in stderr:
                    disk_full["hit"] = True
                outcome.reason = f"ffmpeg failed (exit {code}): {_error_tail(stderr)}"
                return position, outcome
            try:
                _publish(tmp, final, force)
            except FileExistsError:
                outcome.status, outcome.reason = "skipped", f"{final} exists (use --force to overwrite)"
                return position, outcome
            except OSError as exc:
                outcome.reason = f"cannot move the clip into place: {exc.strerror or exc}"
                return position, outcome
            outcome.status = "written"
            return position, outcome
        finally:
            _remove_quietly(tmp)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for position, outcome in pool.map(work, plan):
            outcomes[position] = outcome
            if outcome.status == "failed":
                reporter.warn(f"failed {outcome.segment.describe()}: {outcome.reason}")
            reporter.advance("cut")
    reporter.end("cut")
    report.outcomes = [outcomes[i] for i in sorted(outcomes)]
    report.elapsed_s = time.monotonic() - began
    return report


# ---------------------------------------------------------------------------------------------
# Reels


def _even(value: int) -> int:
    return max(2, value - value % 2)


def _piece_args(
    ffmpeg: str, src: str, info: Any, start: float, end: float, tmp: Path, size: tuple[int, int], fps: float, audio: bool
) -> list[str]:
    width, height = size
    duration = end - start
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-threads", "1"]
    args += ["-ss", f"{start:.6f}", "-i", src]
    if audio and not info.has_audio:
        args += ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]
    filters = []
    if (info.display_width, info.display_height) != (width, height):
        filters.append(f"scale={width}:{height}:force_original_aspect_ratio=decrease")
        filters.append(f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2")
    filters.append("setsar=1")
    if abs(info.fps - fps) > 1e-3:
        filters.append(f"fps={fps:.6f}")
    args += ["-t", f"{duration:.6f}", "-map", "0:v:0"]
    if audio:
        args += ["-map", "0:a:0" if info.has_audio else "1:a:0"]
        args += ["-c:a", "pcm_s16le", "-ar", "48000", "-ac", "2"]
    args += ["-vf", ",".join(filters), "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-bf", "0"]
    args += ["-pix_fmt", "yuv420p", "-threads", "1", "-f", "mov", str(tmp)]
    return args


def make_reel(
    segments: Sequence[Segment],
    output: str | os.PathLike,
    *,
    force: bool = False,
    pad: float = 0.0,
    jobs: int | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> CutReport:
    """Join ``segments`` (in the given order) into one reel at ``output``.

    Each segment is cut accurately (in parallel) to the picture size and frame rate of the first
    usable segment, with 48 kHz stereo PCM audio (silence for sources without audio when any has
    audio); the pieces are joined with the concat demuxer and the audio is encoded to AAC once.
    The reel lasts the sum of its segments (within a frame per segment). Bad rows and missing
    sources are skipped and named; temporary pieces are always removed.

    Raises:
        UsageError: ``output`` exists without ``force``, is a source video, has an unsupported
            extension, or no segment is usable.
        MediaError: ffmpeg failed (the partial reel is removed).
        MissingDependencyError: ffmpeg/ffprobe not installed.
    """
    from r2cli.media.ffmpeg import find_ffmpeg

    began = time.monotonic()
    target = Path(output)
    suffix = target.suffix.lower()
    if suffix not in MEDIA_FORMATS:
        raise UsageError(f"--concat {target}: the reel must end in {', '.join(MEDIA_FORMATS)}")
    if any(_same_file(target, Path(s.path)) for s in segments if Path(s.path).exists()):
        raise UsageError(f"--concat {target} is one of the source videos; an input is never an output")
    if target.exists() and not force:
        raise UsageError(f"--concat {target} exists (use --force to overwrite)")
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    ffmpeg = find_ffmpeg()
    usable, skipped = check_segments(segments, pad=pad, reporter=reporter)
    if not usable:
        raise UsageError(f"--concat {target}: none of the {len(segments)} segment(s) can be cut")
    first = usable[0][2]
    size = (_even(first.display_width), _even(first.display_height))
    fps = first.fps
    audio = any(info.has_audio for _, _, info, _, _ in usable)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--concat {target}: cannot create the folder: {exc.strerror or exc}") from None
    report = CutReport(mode="reencode", format="media", out_dir=str(target.parent), jobs=jobs)
    work_dir = Path(tempfile.mkdtemp(prefix=".r2cli-reel-", dir=target.parent)).resolve()
    tmp = target.with_name(f".{target.stem}.part-{uuid.uuid4().hex[:8]}{target.suffix}")
    outcomes: dict[int, ClipOutcome] = dict(skipped)
    reporter.begin("reel", total=len(usable) + 1, unit="pieces")
    try:

        def piece(item: tuple[int, tuple[int, Segment, Any, float, float]]) -> tuple[int, ClipOutcome, Path]:
            number, (position, segment, info, start, end) = item
            path = work_dir / f"piece-{number:05d}.mov"
            clock = time.monotonic()
            code, stderr = run_ffmpeg(_piece_args(ffmpeg, segment.path, info, start, end, path, size, fps, audio))
            outcome = ClipOutcome(segment, "written", output=str(target), start_s=start, end_s=end)
            outcome.seconds = time.monotonic() - clock
            if code != 0 or not path.is_file():
                outcome.status, outcome.reason = "failed", f"ffmpeg failed (exit {code}): {_error_tail(stderr)}"
            return position, outcome, path

        pieces: list[Path] = []
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for position, outcome, path in pool.map(piece, enumerate(usable)):
                outcomes[position] = outcome
                reporter.advance("reel")
                if outcome.status == "written":
                    pieces.append(path)
        failures = [o for o in outcomes.values() if o.status == "failed"]
        if failures:
            raise MediaError(f"reel {target}: {failures[0].segment.describe()}: {failures[0].reason}")
        listing = work_dir / "pieces.txt"
        listing.write_text("".join("file '" + str(p).replace("'", "'\\''") + "'\n" for p in pieces), encoding="utf-8")
        args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        args += ["-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:v:0"]
        if audio:
            args += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "192k"]
        args += ["-c:v", "copy"]
        fmt = MEDIA_FORMATS[suffix]
        if fmt in ("mp4", "mov"):
            args += ["-movflags", "+faststart"]
        code, stderr = run_ffmpeg(args + ["-f", fmt, str(tmp)])
        if code != 0 or not tmp.is_file():
            raise MediaError(f"reel {target}: ffmpeg concat failed (exit {code}): {_error_tail(stderr)}")
        _publish(tmp, target, force)
        reporter.advance("reel")
    except FileExistsError:
        raise UsageError(f"--concat {target} exists (use --force to overwrite)") from None
    finally:
        _remove_quietly(tmp)
        shutil.rmtree(work_dir, ignore_errors=True)
        reporter.end("reel")
    report.outcomes = [outcomes[i] for i in sorted(outcomes)]
    report.reel = str(target)
    report.elapsed_s = time.monotonic() - began
    return report


# ---------------------------------------------------------------------------------------------
# From results files


def segments_from_results(
    results: Any, *, top: int | None = None, min_score: float | None = None
) -> list[Segment]:
    """Segments to cut from an r2cli ``Results`` (moments or summary).

    Moments: rows with ``score >= min_score``; ``top`` keeps ranks 1..top of each query
    (``rank_in_query``); ordered by query, then rank. Summaries: the selected segments with
    ``mean_saliency >= min_score``; ``top`` keeps the best ``top`` of each video (by ``rank``);
    ordered by video, then time.

    Raises:
        UsageError: ``top`` < 1, or a saliency file (which has no segments to cut).
    """
    import pandas as pd

    if top is not None and top < 1:
        raise UsageError(f"--top must be >= 1, got {top}")
    df = results.df
    name = Path(results.path).name if results.path else results.kind
    if results.kind == "moments":
        if min_score is not None:
            df = df[df["score"] >= min_score]
        if top is not None:
            df = df[df["rank_in_query"] <= top]
        df = df.sort_values(["query_id", "rank_in_query"], kind="stable")
        score_col, rank_col = "score", "rank_in_query"
    elif results.kind == "summary":
        df = df[df["selected"].astype(bool)]
        if min_score is not None:
            df = df[df["mean_saliency"] >= min_score]
        if top is not None:
            df = df[df.groupby("path")["rank"].rank(method="first") <= top]
        df = df.sort_values(["path", "start_s"], kind="stable")
        score_col, rank_col = "mean_saliency", "rank"
    else:
        raise UsageError(f"{name} is a {results.kind} file; cut needs a moments or summary file")
    segments = []
    for row_number, row in zip(df.index, df.to_dict("records")):
        video_id = row.get("video_id")
        segments.append(
            Segment(
                path=str(row["path"]),
                start_s=float(row["start_s"]),
                end_s=float(row["end_s"]),
                query=row.get("query") if isinstance(row.get("query"), str) else None,
                rank=int(row[rank_col]),
                score=float(row[score_col]),
                video_id=None if pd.isna(video_id) else int(video_id),
                query_id=str(row["query_id"]) if "query_id" in row else None,
                label=f"{name} row {int(row_number) + 1}",
            )
        )
    return segments


def cut_results(
    results_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    top: int | None = None,
    min_score: float | None = None,
    pad: float = 0.0,
    copy: bool = False,
    concat: str | os.PathLike | None = None,
    template: str | None = None,
    force: bool = False,
    format: str = "media",
    jobs: int | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> CutReport:
    """Cut the rows of a moments or summary Parquet file: clips, one reel, or an editor timeline.

    ``format="media"`` writes one clip per row into ``out_dir`` (or one reel at ``concat``);
    ``"edl"`` / ``"otio"`` write ``out_dir/<results stem>.edl`` / ``.otio`` instead of media.
    See ``segments_from_results`` for ``top`` / ``min_score``, ``cut_segments`` and
    ``make_reel`` for the rest.

    Raises:
        InputError: the file is not an r2cli moments/summary output.
        UsageError: conflicting or bad options (``--copy`` with ``--concat``, a reel with
            ``--format edl``, unknown format, bad template, existing timeline without force).
        MediaError: a reel could not be made.
        MissingDependencyError: ffmpeg/ffprobe missing.
    """
    from r2cli.outputs import read_results

    from r2cli.media.timeline import TIMELINE_FORMATS

    if format not in ("media", *TIMELINE_FORMATS):
        raise UsageError(f"--format must be one of {', '.join(('media', *TIMELINE_FORMATS))}, got {format!r}")
    if concat is not None and copy:
        raise UsageError("--copy cannot be combined with --concat (reels are always cut accurately)")
    if concat is not None and format != "media":
        raise UsageError(f"--concat makes a media reel; it cannot be combined with --format {format}")
    results = read_results(results_path)
    segments = segments_from_results(results, top=top, min_score=min_score)
    if format != "media":
        from r2cli.media.timeline import timeline_path, write_timeline

        began = time.monotonic()
        usable, skipped = check_segments(segments, pad=pad, reporter=reporter)
        target = timeline_path(out_dir, Path(results_path).stem, format)
        path = write_timeline(
            [(segment, info, start, end) for _, segment, info, start, end in usable],
            target,
            format=format,
            title=f"r2cli {results.kind} {Path(results_path).stem}",
            force=force,
        )
        outcomes = dict(skipped)
        for position, segment, _info, start, end in usable:
            outcomes[position] = ClipOutcome(segment, "written", output=str(path), start_s=start, end_s=end)
        return CutReport(
            mode="copy" if copy else "reencode",
            format=format,
            out_dir=str(Path(out_dir)),
            outcomes=[outcomes[i] for i in sorted(outcomes)],
            timeline=str(path),
            elapsed_s=time.monotonic() - began,
        )
    if concat is not None:
        return make_reel(segments, concat, force=force, pad=pad, jobs=jobs, reporter=reporter)
    return cut_segments(
        segments,
        out_dir,
        copy=copy,
        template=template or DEFAULT_TEMPLATE,
        force=force,
        pad=pad,
        jobs=jobs,
        reporter=reporter,
    )
