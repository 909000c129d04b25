"""What is cut: segments, their checks against the source videos, and the report of a cut.

``segments_from_results`` turns the rows of a moments or summary file into ``Segment``s;
``check_segments`` probes each source once and splits the segments into usable ones (padded and
clamped to the video) and skipped ones (named, with the reason); ``CutReport`` is what a cut,
a reel or a timeline returns.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from r2cli.errors import MediaError, UsageError
from r2cli.progress import NULL_REPORTER, Reporter


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

    mode: str  # "reencode" | "copy" for media; "timeline" when a timeline file was written
    format: str  # "media", or the timeline format ("edl", "otio", ...)
    out_dir: str | None = None
    outcomes: list[ClipOutcome] = field(default_factory=list)
    reel: str | None = None  # the reel file, when one was made
    timeline: str | None = None  # the EDL/OTIO file, when one was written
    jobs: int = 1  # ffmpeg processes run at once
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)  # e.g. a timeline rate chosen for a source

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
        """Rows by outcome; for a reel or a timeline "written" counts the segments/events in it."""
        return {"written": len(self.written), "skipped": len(self.skipped), "failed": len(self.failed)}

    def describe(self) -> str:
        """One line for people that says what was written: clips, one reel, or one timeline.

        No timing (it is in ``elapsed_s``), so the line depends only on what was cut.
        """
        counts = self.counts()
        if self.timeline:
            return (f"wrote 1 timeline ({self.format}) with {counts['written']} event(s): {self.timeline}; "
                    f"{counts['skipped']} row(s) skipped")
        if self.reel:
            return (f"wrote 1 reel with {counts['written']} segment(s): {self.reel}; "
                    f"{counts['skipped']} row(s) skipped")
        return (f"{counts['written']} written, {counts['skipped']} skipped, {counts['failed']} failed "
                f"({self.mode}, {self.jobs} job(s))")

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
            "warnings": list(self.warnings),
            "clips": [o.to_dict() for o in self.outcomes],
        }


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
