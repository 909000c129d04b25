"""The stages of ``r2cli summarize``: a budgeted summary of each video from R2-Tuning saliency.

For every selected video:

1. ``plan_videos``: a query: the given sentence (query-focused summaries), otherwise the video's
   title, as R2-Tuning does for TVSum and YouTube Highlights (query-free summaries). The title is
   the container's ``title`` tag the index recorded, else the file name made readable
   (``best_of-surfing_2019`` → ``best of surfing 2019``). Videos longer than the preset's window
   are cut into overlapping windows; windows whose stored features are not finite are skipped;
2. ``video_saliency``: per-clip saliency of each video for its query from the R2-Tuning head;
   the windows' saliency is merged (``r2cli.inference.windows``), exactly as ``search`` does;
3. ``select_segments``: shots from the stored per-clip CLIP embeddings (KTS), then a 0/1
   knapsack over the shots that maximises summed saliency under the budget; a shot longer than
   the budget is trimmed around its most salient clip (``r2cli.summary``).

The budget is ``ratio`` × the video's duration or ``seconds`` (capped at the duration), and the
summary never exceeds it: segments are whole clips (1/fps seconds each), so the summary is at
most ``floor(budget × fps)`` clips long. The use case (options, run folder, catalog record, the
reel) is ``r2cli.app.summarize``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.errors import UsageError
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

SUMMARY_FILE = "summary.parquet"
OFFICIAL_FILE = "predictions_official.jsonl"
SHOT_METHODS = ("kts", "threshold")
QUERY_SOURCES = ("--query", "title", "file name")


@dataclass(frozen=True)
class VideoSummary:
    """The summary of one video, as the terminal table and ``--json`` show it."""

    video_id: int | None  # catalog id
    path: str  # absolute path of the source video
    query: str  # text the saliency was computed for
    query_source: str  # "--query", "title" (container tag) or "file name"
    duration_s: float  # video duration (catalog; clips / fps when unknown)
    budget_s: float  # summary budget for this video
    selected_s: float  # total length of the selected segments (<= budget_s unless over_budget)
    clips: int  # feature clips of the video
    windows: int  # windows the head was run on (1 unless the video is longer than one window)
    shots: int  # shots detected
    segments: int  # segments in summary.parquet (shots, trimmed shots split in up to three)
    segments_selected: int  # segments in the summary
    selected: list[tuple[float, float]] = field(default_factory=list)  # (start s, end s) in time order
    over_budget: bool = False  # the budget is shorter than one clip: the best clip was selected anyway

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["selected"] = [[round(a, 6), round(b, 6)] for a, b in self.selected]
        return data


@dataclass
class VideoPlan:
    """One video to summarize: its features, windows and query."""

    record: Any  # catalog VideoRecord
    features: Any  # r2cli.features.store VideoFeatures
    duration: float  # seconds
    windows: list  # r2cli.inference.windows.Window
    query: str  # text the saliency is computed for
    query_source: str  # one of QUERY_SOURCES
    bad_windows: dict[int, str] = field(default_factory=dict)  # window position -> why it is skipped


# ----------------------------------------------------------------------------------------------
# Queries


def readable_title(path: str) -> str:
    """A query made from a file name: separators become spaces, camelCase is split.

    ``/a/best_of-surfing.2019.mp4`` → ``best of surfing 2019``; ``dogShow.mkv`` → ``dog Show``.
    """
    stem = Path(path).stem
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem)
    text = re.sub(r"[\s_\-.+~]+", " ", text)
    return " ".join(text.split()) or stem


def video_query(record: Any, query: str | None = None) -> tuple[str, str]:
    """(text, source) of the query a video is summarized for.

    ``query`` when given (source ``--query``); else the catalog title (container ``title`` tag,
    source ``title``); else ``readable_title`` of the file name (source ``file name``).
    """
    if query is not None:
        return " ".join(query.split()), "--query"
    title = " ".join((getattr(record, "title", None) or "").split())
    if title:
        return title, "title"
    return readable_title(record.path), "file name"


def check_budget(ratio: float | None, seconds: float | None) -> None:
    """Validate the budget (the rules of ``r2cli.summary.budget_seconds``).

    Raises:
        UsageError: both or neither given, ``ratio`` outside (0, 1], ``seconds`` not positive.
    """
    from r2cli.summary.summarize import budget_seconds

    for flag, value in (("--ratio", ratio), ("--seconds", seconds)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UsageError(f"{flag} must be a number, got {value!r}")
    budget_seconds(1.0, ratio=ratio, seconds=seconds)


# ----------------------------------------------------------------------------------------------
# 1. plan


def plan_videos(found: list[tuple[Any, Any]], *, fps: float, window_clips: int, stride_clips: int,
                query: str | None) -> list[VideoPlan]:
    """Windows and query of every video; windows whose CLIP embeddings are not finite are marked bad."""
    import numpy as np

    from r2cli.inference.windows import plan_windows

    plans = []
    for record, features in found:
        duration = float(record.duration) if record.duration else features.num_clips / fps
        text, source = video_query(record, query)
        plan = VideoPlan(record=record, features=features, duration=duration, query=text, query_source=source,
                         windows=plan_windows(features.num_clips, window_clips, stride_clips))
        finite = np.isfinite(np.asarray(features.embed)).all(axis=1)
        for i, window in enumerate(plan.windows):
            layers = np.asarray(features.layers[window.start_clip : window.end_clip])
            if not finite[window.start_clip : window.end_clip].all():
                plan.bad_windows[i] = "non-finite CLIP embeddings"
            elif not np.isfinite(layers).all():
                plan.bad_windows[i] = "non-finite layer features"
        plans.append(plan)
    return plans


def bad_window_warning(plan: VideoPlan, i: int, fps: float) -> str:
    window = plan.windows[i]
    return (f"{Path(plan.record.path).name} {window.start_clip / fps:g}-{window.end_clip / fps:g} s: the stored "
            f"features hold {plan.bad_windows[i]} (NaN or inf: a damaged feature file); this window was skipped; "
            "r2cli index --verify finds such files and extracts them again (an extraction that gives NaN or inf "
            "again fails, naming the cause)")


# ----------------------------------------------------------------------------------------------
# 2. saliency


def video_saliency(grounder: Any, tower: Any, plans: list[VideoPlan], *, k: int, fps: float,
                   reporter: Reporter = NULL_REPORTER) -> tuple[list["np.ndarray"], list[str], list[bool]]:
    """Per-clip saliency of every video for its query (NaN where every covering window was skipped).

    One query per distinct text, shared by the videos that have it. Returns (saliency per video,
    the distinct query texts, whether each text was truncated to CLIP's context).
    """
    from r2cli.inference.windows import merge_window_saliency

    texts = sorted({p.query for p in plans})
    query_index = {text: i for i, text in enumerate(texts)}
    query_layers, _, truncated = tower.query_features(texts, k=k)
    window_list = [(v, i, w) for v, plan in enumerate(plans) for i, w in enumerate(plan.windows)
                   if i not in plan.bad_windows]
    pairs = [(n, query_index[plans[v].query]) for n, (v, _, _) in enumerate(window_list)]
    outputs = grounder.run(
        [plans[v].features.layers[w.start_clip : w.end_clip] for v, _, w in window_list],
        query_layers, pairs, fps=fps, reporter=reporter, stage="saliency",
    )
    per_video: dict[int, list] = {v: [] for v in range(len(plans))}
    for (v, _, w), pair in zip(window_list, pairs):
        per_video[v].append((w, outputs[pair].saliency))
    saliency = [merge_window_saliency(per_video[v], plan.features.num_clips) for v, plan in enumerate(plans)]
    return saliency, texts, list(truncated)


# ----------------------------------------------------------------------------------------------
# 3. shots and knapsack


def select_segments(plan: VideoPlan, scores: "np.ndarray", *, fps: float, ratio: float | None,
                    seconds: float | None, shot_method: str, run_id: str) -> tuple[list[dict], VideoSummary, str | None]:
    """Shots and the knapsack for one video; returns (summary rows, the video's summary, a warning or None).

    Clips that no usable window covered get the video's lowest saliency (chosen last), and their
    embeddings are zero for the shot detection.
    """
    import numpy as np

    from r2cli.summary.summarize import budget_seconds, summarize_video, summary_rows

    record = plan.record
    budget = budget_seconds(plan.duration, ratio=ratio, seconds=seconds)
    warning = None
    if budget < 1.0 / fps - 1e-9:
        warning = (f"{Path(record.path).name}: the budget ({budget:.2f} s) is shorter than one clip "
                   f"({1.0 / fps:g} s); the single best clip was selected (over_budget)")
    scores = np.asarray(scores, dtype=np.float32)
    if np.isnan(scores).any():
        scores = np.where(np.isnan(scores), np.nanmin(scores), scores).astype(np.float32)
    embeddings = np.nan_to_num(np.asarray(plan.features.embed, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    segments = summarize_video(embeddings, scores, 1.0 / fps, budget, duration_s=plan.duration, method=shot_method)
    rows = summary_rows(segments, run_id=run_id, path=record.path, video_id=record.id, query=plan.query)
    chosen = [(s.start_s, s.end_s) for s in segments if s.selected]
    summary = VideoSummary(
        video_id=record.id, path=record.path, query=plan.query, query_source=plan.query_source,
        duration_s=plan.duration, budget_s=budget, selected_s=float(sum(b - a for a, b in chosen)),
        clips=plan.features.num_clips, windows=len(plan.windows), shots=_count_shots(segments),
        segments=len(segments), segments_selected=len(chosen), selected=chosen,
        over_budget=any(s.over_budget for s in segments),
    )
    return rows, summary, warning


def _count_shots(segments: list[Any]) -> int:
    """Shots behind the segments: each shot gives exactly one candidate segment (whole or trimmed to
    the budget, or to one clip when the budget is shorter)."""
    candidates = sum(1 for segment in segments if segment.candidate)
    return candidates if candidates else len(segments)


def summary_frame(rows: list[dict]) -> "pd.DataFrame":
    """The rows of summary.parquet."""
    import pandas as pd

    columns = ["run_id", "video_id", "path", "query", "segment_index", "start_s", "end_s", "mean_saliency",
               "selected", "rank", "over_budget"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["over_budget"] = frame["over_budget"].astype(bool)
    frame["video_id"] = frame["video_id"].astype("Int64")
    frame["segment_index"] = frame["segment_index"].astype("int32")
    frame["rank"] = frame["rank"].astype("int32")
    frame["selected"] = frame["selected"].astype(bool)
    for name in ("start_s", "end_s", "mean_saliency"):
        frame[name] = frame[name].astype("float64")
    return frame


# ----------------------------------------------------------------------------------------------
# Outputs


def write_summary_outputs(folder: Any, frame: "pd.DataFrame", plans: list[VideoPlan], saliency: list["np.ndarray"],
                          preset: Any, metadata: dict[str, str], official: bool) -> list[str]:
    """Write summary.parquet (and the official saliency JSON Lines) to the staged files of ``folder``
    (an ``r2cli.outputs.publish.RunFolder``); returns the file names written.

    Raises:
        InputError: a file cannot be written (a full disk), naming it.
    """
    from r2cli.outputs import write_table

    write_table("summary", frame, folder.stage(SUMMARY_FILE), metadata=metadata)
    names = [SUMMARY_FILE]
    if official:
        from r2cli.eval.formats import SaliencyPrediction, write_saliency_predictions

        domain = preset.domain if preset.dataset in ("youtube", "tvsum") else None
        predictions = [
            SaliencyPrediction(vid=Path(plan.record.path).stem, domain=domain, query=plan.query,
                               scores=[round(float(x), 4) for x in _filled(scores)])
            for plan, scores in zip(plans, saliency)
        ]
        write_saliency_predictions(predictions, folder.stage(OFFICIAL_FILE))
        names.append(OFFICIAL_FILE)
    return names


def _filled(scores: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return np.where(np.isnan(scores), np.nanmin(scores), scores) if np.isnan(scores).any() else scores


def reel_segments(summaries: list[VideoSummary]) -> list[Any]:
    """The selected segments of every video (videos in catalog order, segments in time order) for a reel."""
    from r2cli.media.segments import Segment

    return [
        Segment(path=s.path, start_s=a, end_s=b, query=s.query, rank=n, video_id=s.video_id,
                label=f"{Path(s.path).name} segment {n}")
        for s in summaries
        for n, (a, b) in enumerate(s.selected, start=1)
    ]
