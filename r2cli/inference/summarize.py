"""``r2cli summarize``: a budgeted summary of each video from R2-Tuning saliency.

For every selected video:

1. a query: ``query`` when given (query-focused summaries), otherwise the video's title, as
   R2-Tuning does for TVSum and YouTube Highlights (query-free summaries). The title is the
   container's ``title`` tag the index recorded, else the file name made readable
   (``best_of-surfing_2019`` → ``best of surfing 2019``);
2. per-clip saliency of the video for that query from the R2-Tuning head, over the features
   the index stored. Videos longer than one window are grounded in overlapping windows and the
   windows' saliency merged (``r2cli.inference.windows``), exactly as ``r2cli search`` does;
3. shots from the stored per-clip CLIP embeddings (KTS), then a 0/1 knapsack over the shots
   that maximises summed saliency under the budget; a shot longer than the budget is trimmed
   around its most salient clip (``r2cli.summary``).

The budget is ``ratio`` × the video's duration or ``seconds`` (capped at the duration), and the
summary never exceeds it: segments are whole clips (1/fps seconds each), so the summary is at
most ``floor(budget × fps)`` clips long.

Outputs go to a run folder (``summary.parquet``, ``run.json``, and with
``output_format="official"`` the per-video saliency in the YouTube Highlights / TVSum
submission format); the run is recorded in the catalog (kind ``summarize``). ``reel`` renders
the selected segments, in time order, into one media file with ffmpeg.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from r2cli.errors import InputError, UsageError
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from r2cli.media.cut import CutReport
    from r2cli.paths import Workspace

SUMMARY_FILE = "summary.parquet"
DEFAULT_FPS = 0.5  # clips per second of the index's default features; used when the preset sets none (YouTube)
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
    selected_s: float  # total length of the selected segments (<= budget_s)
    clips: int  # feature clips of the video
    windows: int  # windows the head was run on (1 unless the video is longer than one window)
    shots: int  # shots detected
    segments: int  # segments in summary.parquet (shots, trimmed shots split in up to three)
    segments_selected: int  # segments in the summary
    selected: list[tuple[float, float]] = field(default_factory=list)  # (start s, end s) in time order

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["selected"] = [[round(a, 6), round(b, 6)] for a, b in self.selected]
        return data


@dataclass
class SummarizeResult:
    """What ``summarize`` did and where its outputs are."""

    run_id: str  # the run's id (folder name under runs/ unless ``out`` was given)
    out_dir: Path  # the run folder
    summary: "pd.DataFrame"  # the rows of summary.parquet (every segment of every video, selected or not)
    videos: list[VideoSummary]  # one per summarized video, in catalog id order
    counts: dict[str, int]  # videos_selected, videos_summarized, videos_skipped, windows, segments, ...
    timings: dict[str, float]  # seconds per stage: catalog, model, features, queries, saliency, shots, write, reel, total
    files: dict[str, Path]  # "summary", "official", "manifest", "reel" -> path
    skipped: list[Any] = field(default_factory=list)  # r2cli.inference.search.SkippedVideo: videos without features
    warnings: list[str] = field(default_factory=list)  # what the reporter was warned about
    model: dict[str, Any] = field(default_factory=dict)  # checkpoint, preset, CLIP weights and head widths
    reel: "CutReport | None" = None  # the reel's cut report when ``reel`` was given
    resumed: bool = False  # True when a finished run with the same settings was returned as is


# ----------------------------------------------------------------------------------------------
# Small pieces


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
    """Validate the budget flags before any work (the rules of ``r2cli.summary.budget_seconds``).

    Raises:
        UsageError: both or neither given, ``ratio`` outside (0, 1], ``seconds`` not positive.
    """
    from r2cli.summary import budget_seconds

    for flag, value in (("--ratio", ratio), ("--seconds", seconds)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UsageError(f"{flag} must be a number, got {value!r}")
    budget_seconds(1.0, ratio=ratio, seconds=seconds)


def _check_reel(reel: str | Path | None, force: bool) -> Path | None:
    if reel is None:
        return None
    from r2cli.media.cut import MEDIA_FORMATS

    target = Path(reel).expanduser()
    if target.suffix.lower() not in MEDIA_FORMATS:
        raise UsageError(f"--reel {target}: the reel must end in {', '.join(MEDIA_FORMATS)}")
    if target.is_dir():
        raise UsageError(f"--reel {target} is a folder; give a file name such as {target / 'reel.mp4'}")
    if target.exists() and not force:
        raise UsageError(f"--reel {target} exists (use --force to overwrite)")
    return target


def _registry_names() -> set[str]:
    from r2cli.model.registry import checkpoint_entries

    return {entry.name for entry in checkpoint_entries()}


def select_summary_videos(workspace: "Workspace", videos: Sequence[str | int]) -> list[Any]:
    """Catalog videos (status ``ok``) named by ``videos`` (ids, paths, file names or globs); all when empty.

    Every name must match at least one video; the ones that match none are all named in the error.

    Raises:
        CatalogError: there is no catalog.
        InputError: the archive is empty, or some names match no readable catalog video.
    """
    from r2cli.inference.search import SearchOptions, matches_video, select_videos

    records = select_videos(workspace, SearchOptions())
    patterns = tuple(str(v) for v in videos)
    if not patterns:
        return records
    unknown = [p for p in patterns if not any(matches_video(r, (p,)) for r in records)]
    if unknown:
        names = ", ".join(repr(p) for p in unknown)
        raise InputError(
            f"unknown video{'s' if len(unknown) > 1 else ''} {names}: no readable video of the catalog has that id, "
            "path or file name (see `r2cli catalog list`; add new files with `r2cli index`)"
        )
    return [r for r in records if matches_video(r, patterns)]


# ----------------------------------------------------------------------------------------------
# The run


def summarize(
    workspace: "Workspace",
    videos: Sequence[str | int] = (),
    *,
    ratio: float | None = None,
    seconds: float | None = None,
    query: str | None = None,
    preset: str | None = None,
    checkpoint: str | None = None,
    clip_weights: str | None = None,
    device: str = "auto",
    reel: str | Path | None = None,
    force: bool = False,
    out: str | Path | None = None,
    output_format: str = "parquet",
    window_s: float | None = None,
    stride_s: float | None = None,
    shot_method: str = "kts",
    batch_size: int | None = None,
    resume: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> SummarizeResult:
    """Summarize videos of the archive within a time budget and write the run's outputs.

    Args:
        workspace: from ``r2cli.paths.resolve_workspace``.
        videos: catalog ids, paths, file names or globs; empty: every indexed video.
        ratio: budget as a fraction of each video's duration, in (0, 1].
        seconds: budget in seconds per video (capped at the duration). Exactly one of the two.
        query: query-focused summaries for this sentence; None: each video's title (query-free).
        preset: dataset preset (a domain's head: ``tvsum_bk``, ``youtube_dog``, ...). Without
            ``checkpoint`` the preset's pretrained head from the registry is used.
        checkpoint: head file or registry name; None: the preset's head, else ``$R2CLI_CHECKPOINT``,
            else the registry default.
        clip_weights: CLIP weights (file or tag) for the text tower; must match the index's features.
        device: "auto", "cpu", "cuda" or "cuda:N".
        reel: render the selected segments of all videos, in time order, into this media file.
        force: overwrite an existing ``reel``.
        out: run folder; None: ``<workspace>/runs/<run id>``.
        output_format: "parquet", or "official" (also the YouTube/TVSum saliency JSON Lines).
        window_s, stride_s: windows for long videos (default: search's 150 s every 75 s).
        shot_method: "kts" (kernel temporal segmentation) or "threshold".
        batch_size: (window, query) pairs per forward pass.
        resume: with ``out``: return the finished run there when its settings are the same.
        reporter: progress and warnings (skipped videos, truncated titles, tiny budgets).

    Raises:
        UsageError: a flag breaks its rule (both/neither of ratio and seconds, ratio outside
            (0, 1], an existing reel without force, an unknown format or shot method).
        CatalogError: there is no catalog.
        InputError: the archive is empty, a named video is unknown, or no selected video has features.
        MissingWeightsError: CLIP weights or the checkpoint are not available.
        CheckpointError: the checkpoint does not fit the CLIP weights.
        MediaError: ffmpeg failed while rendering the reel.
    """
    import numpy as np

    from r2cli.inference import runs
    from r2cli.inference.grounding import Grounder
    from r2cli.inference.search import (
        DEFAULT_STRIDE_S,
        DEFAULT_WINDOW_S,
        FORMATS,
        SearchOptions,
        feature_settings,
        load_models,
        open_features,
    )
    from r2cli.inference.windows import merge_window_saliency, plan_windows, window_sizes
    from r2cli.summary import budget_seconds, summarize_video, summary_rows

    # 0. flags, before anything slow
    check_budget(ratio, seconds)
    if output_format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {output_format!r}")
    if shot_method not in SHOT_METHODS:
        raise UsageError(f"--shots must be one of {', '.join(SHOT_METHODS)}, got {shot_method!r}")
    if query is not None and not query.strip():
        raise UsageError("--query must not be empty; leave it out for query-free summaries (titles)")
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    window_s = DEFAULT_WINDOW_S if window_s is None else window_s
    stride_s = DEFAULT_STRIDE_S if stride_s is None else stride_s
    window_sizes(window_s, stride_s, DEFAULT_FPS)  # the rules once more after the preset's fps is known
    reel_path = _check_reel(reel, force)
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        reporter.warn(message)

    started = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. catalog
    tick = time.perf_counter()
    records = select_summary_videos(workspace, videos)
    if reel_path is not None and any(_same_path(reel_path, r.path) for r in records):
        raise UsageError(f"--reel {reel_path} is one of the source videos; an input is never an output")
    timings["catalog_s"] = time.perf_counter() - tick

    # 2. model: a preset names a domain, and its pretrained head is the model for that domain
    tick = time.perf_counter()
    chosen_checkpoint = checkpoint
    if chosen_checkpoint is None and preset is not None and preset in _registry_names():
        chosen_checkpoint = preset
    tower, model, loaded_preset, model_info = load_models(
        SearchOptions(preset=preset, checkpoint=chosen_checkpoint, clip_weights=clip_weights, device=device),
        reporter,
    )
    fps = float(loaded_preset.data.fps) if loaded_preset.data.fps else DEFAULT_FPS
    window_clips, stride_clips = window_sizes(window_s, stride_s, fps)
    timings["model_s"] = time.perf_counter() - tick

    # 3. features
    tick = time.perf_counter()
    settings = feature_settings(tower, fps, model.config.k)
    found, skipped = open_features(workspace, records, settings, reporter)
    if skipped:
        warn(_skipped_message(skipped, len(records)))
    if not found:
        reason = skipped[0].reason if skipped else "no features"
        raise InputError(f"none of the {len(records)} selected videos can be summarized ({reason})")
    plans = []  # (record, features, duration, windows, query text, query source)
    for record, features in found:
        duration = float(record.duration) if record.duration else features.num_clips / fps
        text, source = video_query(record, query)
        plans.append((record, features, duration, plan_windows(features.num_clips, window_clips, stride_clips),
                      text, source))
    timings["features_s"] = time.perf_counter() - tick

    settings_record = {
        "videos": [str(v) for v in videos],
        "ratio": ratio,
        "seconds": seconds,
        "query": query,
        "preset": loaded_preset.name,
        "fps": fps,
        "window_s": window_s,
        "stride_s": stride_s,
        "window_clips": window_clips,
        "stride_clips": stride_clips,
        "shot_method": shot_method,
        "format": output_format,
        "reel": str(reel_path) if reel_path is not None else None,
    }
    query_records = [{"video_id": p[0].id, "query": p[4], "source": p[5]} for p in plans]
    key = runs.settings_key(
        {
            "settings": {k: v for k, v in settings_record.items() if k != "reel"},
            "queries": query_records,
            "model": {k: v for k, v in model_info.items() if k != "device"},
            "features": [(p[0].id, p[0].fingerprint, p[1].num_clips) for p in plans],
        }
    )
    if resume and out is not None and reel_path is None:
        previous = runs.finished_run(Path(out), key, (SUMMARY_FILE,))
        if previous is not None:
            return _resumed_result(Path(out), previous, skipped)

    run_id = runs.new_run_id()
    out_dir = Path(out) if out is not None else workspace.runs_dir / run_id
    runs.make_run_folder(out_dir)
    runs.record_run_start(
        workspace,
        run_id=run_id,
        kind="summarize",
        settings=settings_record,
        queries=query_records,
        model=model_info,
        out_dir=out_dir,
        created_at=runs.utc_now(),
    )
    status = "failed"
    counts: dict[str, int] = {}
    files: dict[str, Path] = {}
    reel_report = None
    try:
        # 4. queries: one per distinct text, shared by the videos that have it
        tick = time.perf_counter()
        texts = sorted({p[4] for p in plans})
        query_index = {text: i for i, text in enumerate(texts)}
        query_layers, _, truncated = tower.query_features(texts, k=model.config.k)
        for text, cut in zip(texts, truncated):
            if cut:
                warn(f"query {text[:60]!r} is longer than CLIP's {tower.context_length} tokens; it was truncated")
        timings["queries_s"] = time.perf_counter() - tick

        # 5. saliency of every clip: every window of every video with the video's query
        tick = time.perf_counter()
        window_list = [(v, w) for v, plan in enumerate(plans) for w in plan[3]]
        pairs = [(i, query_index[plans[v][4]]) for i, (v, _) in enumerate(window_list)]
        grounder = Grounder(model, model_info["device"], batch_size=batch_size)
        outputs = grounder.run(
            [plans[v][1].layers[w.start_clip : w.end_clip] for v, w in window_list],
            query_layers,
            pairs,
            fps=fps,
            reporter=reporter,
            stage="saliency",
        )
        saliency = []
        for v, plan in enumerate(plans):
            per_window = [(w, outputs[pair].saliency) for (wv, w), pair in zip(window_list, pairs) if wv == v]
            saliency.append(merge_window_saliency(per_window, plan[1].num_clips))  # [T] float32
        timings["saliency_s"] = time.perf_counter() - tick

        # 6. shots and knapsack
        tick = time.perf_counter()
        reporter.begin("summaries", total=len(plans), unit="videos")
        rows: list[dict] = []
        summaries: list[VideoSummary] = []
        for (record, features, duration, windows, text, source), scores in zip(plans, saliency):
            budget = budget_seconds(duration, ratio=ratio, seconds=seconds)
            if budget < 1.0 / fps - 1e-9:
                warn(f"{Path(record.path).name}: the budget ({budget:.2f} s) is shorter than one clip "
                     f"({1.0 / fps:g} s); nothing was selected")
            embeddings = np.asarray(features.embed, dtype=np.float32)  # [T, D]
            segments = summarize_video(
                embeddings, scores, 1.0 / fps, budget, duration_s=duration, method=shot_method
            )
            rows.extend(summary_rows(segments, run_id=run_id, path=record.path, video_id=record.id, query=text))
            chosen = [(s.start_s, s.end_s) for s in segments if s.selected]
            summaries.append(
                VideoSummary(
                    video_id=record.id,
                    path=record.path,
                    query=text,
                    query_source=source,
                    duration_s=duration,
                    budget_s=budget,
                    selected_s=float(sum(b - a for a, b in chosen)),
                    clips=features.num_clips,
                    windows=len(windows),
                    shots=_count_shots(segments),
                    segments=len(segments),
                    segments_selected=len(chosen),
                    selected=chosen,
                )
            )
            reporter.advance("summaries")
        reporter.end("summaries")
        timings["shots_s"] = time.perf_counter() - tick

        # 7. write
        tick = time.perf_counter()
        frame = _summary_frame(rows)
        files.update(_write_outputs(out_dir, frame, plans, saliency, loaded_preset, model_info, run_id, output_format))
        timings["write_s"] = time.perf_counter() - tick

        # 8. reel
        if reel_path is not None:
            tick = time.perf_counter()
            reel_report = _render_reel(summaries, reel_path, force, reporter)
            files["reel"] = reel_path
            timings["reel_s"] = time.perf_counter() - tick

        timings["total_s"] = time.perf_counter() - started
        timings = {name: round(value, 4) for name, value in timings.items()}
        counts = {
            "videos_selected": len(records),
            "videos_summarized": len(plans),
            "videos_skipped": len(skipped),
            "queries": len(texts),
            "windows": len(window_list),
            "clips": int(sum(p[1].num_clips for p in plans)),
            "segments": int(len(frame)),
            "segments_selected": int(sum(s.segments_selected for s in summaries)),
            "truncated_queries": int(sum(truncated)),
        }
        manifest = {
            "run_id": run_id,
            "kind": "summarize",
            "status": "done",
            "settings_key": key,
            "settings": settings_record,
            "videos": [s.to_dict() for s in summaries],
            "queries": query_records,
            "counts": counts,
            "model": model_info,
            "timings": timings,
            "skipped": [asdict(s) for s in skipped],
            "files": {name: (path.name if path.parent == out_dir else str(path)) for name, path in files.items()},
        }
        files["manifest"] = runs.write_manifest(out_dir, manifest)
        status = "done"
    finally:
        runs.record_run_end(workspace, run_id=run_id, status=status, timings=timings, counts=counts)
    return SummarizeResult(
        run_id=run_id,
        out_dir=out_dir,
        summary=frame,
        videos=summaries,
        counts=counts,
        timings=timings,
        files=files,
        skipped=skipped,
        warnings=warnings,
        model=model_info,
        reel=reel_report,
    )


def _skipped_message(skipped: list[Any], selected: int) -> str:
    shown = [Path(item.path).name for item in skipped[:5]]
    more = f" and {len(skipped) - len(shown)} more" if len(skipped) > len(shown) else ""
    return f"{len(skipped)} of {selected} videos skipped (no usable features): {', '.join(shown)}{more}"


def _same_path(a: Path, b: str) -> bool:
    try:
        return a.resolve() == Path(b).resolve()
    except OSError:
        return False


def _count_shots(segments: list[Any]) -> int:
    """Shots behind the segments: with a budget of at least one clip each shot gives exactly one
    candidate segment (whole or trimmed); with a smaller budget each shot is one non-candidate segment."""
    candidates = sum(1 for segment in segments if segment.candidate)
    return candidates if candidates else len(segments)


def _summary_frame(rows: list[dict]) -> "pd.DataFrame":
    import pandas as pd

    columns = ["run_id", "video_id", "path", "query", "segment_index", "start_s", "end_s", "mean_saliency",
               "selected", "rank"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["video_id"] = frame["video_id"].astype("Int64")
    frame["segment_index"] = frame["segment_index"].astype("int32")
    frame["rank"] = frame["rank"].astype("int32")
    frame["selected"] = frame["selected"].astype(bool)
    for name in ("start_s", "end_s", "mean_saliency"):
        frame[name] = frame[name].astype("float64")
    return frame


def _write_outputs(out_dir, frame, plans, saliency, preset, model_info, run_id, output_format) -> dict[str, Path]:
    from r2cli.outputs import write_table

    metadata = {"run_id": run_id, "preset": model_info["preset"], "model": model_info["checkpoint_id"]}
    files = {"summary": write_table("summary", frame, out_dir / SUMMARY_FILE, metadata=metadata)}
    if output_format == "official":
        from r2cli.eval.formats import SaliencyPrediction, write_saliency_predictions
        from r2cli.inference.search import OFFICIAL_FILE

        domain = preset.domain if preset.dataset in ("youtube", "tvsum") else None
        predictions = [
            SaliencyPrediction(
                vid=Path(plan[0].path).stem,
                scores=[round(float(x), 4) for x in scores],
                domain=domain,
                query=plan[4],
            )
            for plan, scores in zip(plans, saliency)
        ]
        files["official"] = write_saliency_predictions(predictions, out_dir / OFFICIAL_FILE)
    return files


def _render_reel(summaries: list[VideoSummary], target: Path, force: bool, reporter: Reporter) -> "CutReport":
    """The selected segments of every video, videos in catalog order and segments in time order, as one file."""
    from r2cli.media.cut import Segment, make_reel

    segments = [
        Segment(path=s.path, start_s=a, end_s=b, query=s.query, rank=n, video_id=s.video_id,
                label=f"{Path(s.path).name} segment {n}")
        for s in summaries
        for n, (a, b) in enumerate(s.selected, start=1)
    ]
    if not segments:
        raise UsageError(f"--reel {target}: no segment was selected (the budget is shorter than one clip)")
    return make_reel(segments, target, force=force, reporter=reporter)


def _resumed_result(out_dir: Path, manifest: dict[str, Any], skipped: list[Any]) -> SummarizeResult:
    from r2cli.outputs import read_results

    files = {name: out_dir / filename for name, filename in (manifest.get("files") or {}).items()}
    files["manifest"] = out_dir / "run.json"
    frame = read_results(out_dir / SUMMARY_FILE, kind="summary").df
    videos = []
    for item in manifest.get("videos") or []:
        data = dict(item)
        data["selected"] = [tuple(pair) for pair in data.get("selected") or []]
        videos.append(VideoSummary(**data))
    return SummarizeResult(
        run_id=str(manifest.get("run_id")),
        out_dir=out_dir,
        summary=frame,
        videos=videos,
        counts=dict(manifest.get("counts") or {}),
        timings=dict(manifest.get("timings") or {}),
        files=files,
        skipped=skipped,
        model=dict(manifest.get("model") or {}),
        resumed=True,
    )
