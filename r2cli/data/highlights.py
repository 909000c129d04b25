"""Readers for the highlight-detection benchmarks: YouTube Highlights (spec §5.5) and TVSum (spec §5.4).

Both files are one JSON object keyed by YouTube id. The readers return ``{vid: record}`` in file order and
raise :class:`r2cli.errors.InputError` naming the file, the video key and the field of the first problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2cli.data._io import Location, as_number, load_json_document
from r2cli.data.splits import TVSUM_DOMAINS, TVSUM_SPLITS, YOUTUBE_DOMAINS, YOUTUBE_SPLITS
from r2cli.errors import InputError, UsageError

__all__ = [
    "TVSUM_ANNOTATORS",
    "TVSumVideo",
    "YouTubeVideo",
    "read_tvsum",
    "read_youtube_highlights",
    "split_videos",
]

TVSUM_ANNOTATORS = 20  # importance ratings per 2-second shot, each 1..5
_YOUTUBE_TITLE_INDEX = 5  # info[5] is the video title, used as the text query


@dataclass(frozen=True)
class YouTubeVideo:
    """One video of ``youtube_anno.json``."""

    vid: str  # YouTube id
    domain: str  # dog, gymnastics, parkour, skating, skiing, surfing
    title: str  # info[5], the text query
    fps: float  # frame rate of the original video
    num_frames: int  # frame count of the original video ("frames")
    clips: tuple[tuple[float, float], ...]  # [start_frame, end_frame] per clip (100 frames, 50 % overlap)
    match: tuple[int, ...]  # per clip: -1 (not highlight), 0 (unsure), 1 (highlight)
    mturk: tuple[float, ...] | None  # per-clip crowd score when present
    source: str = ""

    @property
    def num_clips(self) -> int:
        return len(self.match)

    @property
    def feature_fps(self) -> float:
        """Sampling rate that yields exactly one feature per clip: ``len(match) / (frames / fps)`` (spec §5.5)."""
        return len(self.match) / (self.num_frames / self.fps)


@dataclass(frozen=True)
class TVSumVideo:
    """One video of ``tvsum_anno.json``."""

    vid: str  # YouTube id
    domain: str  # category code BK, BT, DS, FM, GA, MS, PK, PR, VT, VU
    title: str  # the text query
    fps: float
    num_frames: int
    scores: tuple[tuple[float, ...], ...]  # [shots][20] annotator ratings, 1..5 per 2-second shot
    url: str | None = None
    length: str | None = None  # "m:ss" as in the file
    source: str = ""

    @property
    def num_clips(self) -> int:
        return len(self.scores)


def _frames(location: Location, entry: dict) -> int:
    raw = location.require(entry, "frames")
    try:
        value = int(float(raw))
    except (TypeError, ValueError):
        raise location.fail("frames", "must be a frame count (a number or a numeric string)", raw) from None
    if value <= 0:
        raise location.fail("frames", "must be > 0", raw)
    return value


def _root(path: str | Path) -> dict:
    document = load_json_document(path)
    if not isinstance(document, dict) or not document:
        raise InputError(f"{path}: expected a JSON object keyed by video id, got {type(document).__name__}")
    return document


def read_youtube_highlights(path: str | Path) -> dict[str, YouTubeVideo]:
    """Read ``youtube_anno.json`` (UMT/UniVTG/R2-Tuning layout).

    Raises:
        InputError: naming the file, video and field of the first invalid entry.
    """
    out: dict[str, YouTubeVideo] = {}
    for vid, entry in _root(path).items():
        location = Location(path, key=vid)
        if not isinstance(entry, dict):
            raise location.fail(None, "must be a JSON object", entry)
        domain = location.text(entry, "domain")
        if domain not in YOUTUBE_DOMAINS:
            raise location.fail("domain", f"must be one of {', '.join(YOUTUBE_DOMAINS)}", domain)
        info = location.require(entry, "info")
        if not isinstance(info, list) or len(info) <= _YOUTUBE_TITLE_INDEX or not isinstance(info[5], str):
            raise location.fail("info", "must be a list whose element 5 is the video title", info)
        fps = location.number(entry, "fps", positive=True)
        num_frames = _frames(location, entry)
        match = location.require(entry, "match")
        if not isinstance(match, list) or not match or any(m not in (-1, 0, 1) or isinstance(m, bool) for m in match):
            raise location.fail("match", "must be a non-empty list of -1/0/1 labels", match)
        clips = location.require(entry, "clip")
        if not isinstance(clips, list) or len(clips) != len(match):
            raise location.fail("clip", f"must be a list of {len(match)} [start_frame, end_frame] pairs", clips)
        clean_clips = []
        for index, clip in enumerate(clips):
            pair = [as_number(x) for x in clip] if isinstance(clip, list) and len(clip) == 2 else None
            if pair is None or None in pair:
                raise location.fail(f"clip[{index}]", "must be a [start_frame, end_frame] pair", clip)
            clean_clips.append((pair[0], pair[1]))
        mturk = entry.get("mturk")
        if mturk is not None:
            if not isinstance(mturk, list) or len(mturk) != len(match) or any(as_number(m) is None for m in mturk):
                raise location.fail("mturk", f"must be a list of {len(match)} numbers", mturk)
            mturk = tuple(float(m) for m in mturk)
        out[vid] = YouTubeVideo(
            vid=vid,
            domain=domain,
            title=info[_YOUTUBE_TITLE_INDEX],
            fps=fps,
            num_frames=num_frames,
            clips=tuple(clean_clips),
            match=tuple(int(m) for m in match),
            mturk=mturk,
            source=str(location),
        )
    return out


def read_tvsum(path: str | Path) -> dict[str, TVSumVideo]:
    """Read ``tvsum_anno.json`` (UMT/UniVTG/R2-Tuning layout; CG-DETR's ``tvsum_train_sfc.json``).

    Raises:
        InputError: naming the file, video and field of the first invalid entry.
    """
    out: dict[str, TVSumVideo] = {}
    for vid, entry in _root(path).items():
        location = Location(path, key=vid)
        if not isinstance(entry, dict):
            raise location.fail(None, "must be a JSON object", entry)
        domain = location.text(entry, "domain")
        if domain not in TVSUM_DOMAINS:
            raise location.fail("domain", f"must be one of {', '.join(TVSUM_DOMAINS)}", domain)
        title = location.text(entry, "title")
        fps = location.number(entry, "fps", positive=True)
        num_frames = _frames(location, entry)
        anno = location.require(entry, "anno")
        if not isinstance(anno, list) or not anno:
            raise location.fail("anno", f"must be a non-empty list of [{TVSUM_ANNOTATORS} scores] per shot", anno)
        rows = []
        for index, row in enumerate(anno):
            values = [as_number(x) for x in row] if isinstance(row, list) else None
            if values is None or len(values) != TVSUM_ANNOTATORS or any(v is None or not 1 <= v <= 5 for v in values):
                raise location.fail(f"anno[{index}]", f"must hold {TVSUM_ANNOTATORS} ratings in 1..5", row)
            rows.append(tuple(values))
        url = entry.get("url") if isinstance(entry.get("url"), str) else None
        length = entry.get("length") if isinstance(entry.get("length"), str) else None
        out[vid] = TVSumVideo(
            vid=vid,
            domain=domain,
            title=title,
            fps=fps,
            num_frames=num_frames,
            scores=tuple(rows),
            url=url,
            length=length,
            source=str(location),
        )
    return out


def split_videos(
    dataset: str,
    videos: Mapping[str, Any],
    domain: str,
    split: str = "val",
) -> list[str]:
    """Ids of ``domain``'s ``split`` ("train" or "val") that exist in ``videos``, in the official list order.

    Ids listed in the official split but absent from the annotation file are dropped, as the official loader
    does (YouTube: 4 val ids of dog, for example).

    Raises:
        UsageError: unknown dataset, domain or split.
    """
    tables = {"youtube": YOUTUBE_SPLITS, "tvsum": TVSUM_SPLITS}
    if dataset not in tables:
        raise UsageError(f"dataset must be youtube or tvsum, got {dataset!r}")
    table = tables[dataset]
    if domain not in table:
        raise UsageError(f"--domain for {dataset} must be one of {', '.join(table)}, got {domain!r}")
    if split not in ("train", "val"):
        raise UsageError(f"split must be 'train' or 'val', got {split!r}")
    return [vid for vid in table[domain][split] if vid in videos]
