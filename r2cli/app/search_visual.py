"""The ``search --image`` / ``search --clip`` use case: find the shots of the archive that look like a picture.

``run_search`` hands a search with ``image`` or ``clip`` queries here. What happens (the stages are
``r2cli.inference.visual``):

- Each query becomes one CLIP image embedding computed exactly as ``index`` computes a clip's: the
  index's frame decode, rotation, scale and centre crop (``r2cli.media.frames.still_frame`` for a
  still, ``range_frames`` for a video range, sampled with the index's fps rule), the same CLIP tower
  and normalisation. A ``--clip`` range yields one frame per clip it overlaps; their normalised
  embeddings are averaged (and normalised), so a range is one query, as a still is.
- The coarse stage (``r2cli.inference.visual_index.picture_scores``) scores the archive's stored clip
  embeddings exactly, every one of them, or, where the approximate coarse index exists and the text
  search's cost rule picks it (``--exact`` forces the scan), the clips around the index's hits, grown
  exactly until each run of matching clips is whole; ``run.json`` records the path under
  ``settings.coarse``.
- A clip matches when its similarity is at least the query's best clip similarity in the archive
  minus ``match_margin``; each run of at least ``min_run`` consecutive matching clips is a moment,
  scored by its best clip. Moments are ranked across videos, ``top_k`` per query, as text results.
- R2-Tuning's fine stage is not run: it grounds sentences. The saliency written for an image query
  is the per-clip CLIP similarity of each video that has a moment (every clip of it, scored exactly,
  on both paths).

Outputs are the text search's: ``moments.parquet`` (``query_kind`` = ``image`` or ``clip``; ``query`` is
the file, or ``VIDEO:START-END``, as given), ``saliency.parquet``, ``run.json``, a catalog run record,
so the ranked table, ``report`` and ``cut`` work on them unchanged.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.errors import InputError, MediaError
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from r2cli.app.search import SearchOptions, SearchResult
    from r2cli.paths import Workspace

# options of R2-Tuning's fine stage: a picture search does not run it, so setting them is worth a warning
_FINE_STAGE_FLAGS = (("candidates", "--candidates"), ("checkpoint", "--checkpoint"), ("window", "--window"),
                     ("stride", "--stride"), ("batch_size", "--batch-size"), ("ray", "--ray"))
_TIME = r"\d+(?::\d{1,2})?(?:\.\d+)?"
_RANGE = re.compile(rf"^(?P<video>.+?):(?P<start>{_TIME})-(?P<end>{_TIME})$")


def _seconds(text: str) -> float:
    """``"75"``, ``"75.5"``, ``"1:15"`` or ``"1:15.5"`` in seconds."""
    if ":" in text:
        minutes, seconds = text.split(":", 1)
        return int(minutes) * 60 + float(seconds)
    return float(text)


def parse_clip_spec(spec: str) -> tuple[tuple[str, float, float | None] | None, str | None]:
    """``VIDEO`` or ``VIDEO:START-END`` -> ((video, start s, end s or None), None), or (None, the rule broken).

    An existing file whose name looks like a range is taken whole.
    """
    text = str(spec)
    match = _RANGE.match(text)
    if match is None or Path(text).is_file():
        return (text, 0.0, None), None
    start, end = _seconds(match["start"]), _seconds(match["end"])
    if ":" in match["start"] and float(match["start"].split(":", 1)[1]) >= 60 or \
            ":" in match["end"] and float(match["end"].split(":", 1)[1]) >= 60:
        return None, f"{text!r}: seconds of m:ss must be below 60"
    if end <= start:
        return None, f"{text!r}: END ({end:g} s) must be after START ({start:g} s)"
    return (match["video"], start, end), None


def resolve_clip_specs(specs: tuple[str, ...], base: Path) -> tuple[str, ...]:
    """``specs`` with each relative video path taken from ``base`` (a job file's folder); ranges kept."""
    resolved = []
    for spec in specs:
        parsed, _ = parse_clip_spec(spec)
        if parsed is None or Path(parsed[0]).is_absolute():
            resolved.append(spec)
            continue
        video = str(base / parsed[0])
        resolved.append(video + spec[len(parsed[0]):])
    return tuple(resolved)


@dataclass(frozen=True)
class PictureQuery:
    """One --image or --clip query."""

    qid: str  # q1, q2 ... in the order given (images first, then clips)
    kind: str  # "image" or "clip"
    text: str  # as given: the still's path, or VIDEO[:START-END]
    path: Path  # the still or the video
    start_s: float = 0.0  # --clip: range start
    end_s: float | None = None  # --clip: range end (None: the whole video)
    flag: str = "--image"  # the flag it came from, for error messages


def picture_queries(options: "SearchOptions") -> list[PictureQuery]:
    """The queries of ``options.image`` and ``options.clip``, numbered q1, q2 ...

    Raises:
        InputError: a file does not exist (the message names the flag and the file).
    """
    queries = []
    for item in options.image:
        queries.append(PictureQuery(qid=f"q{len(queries) + 1}", kind="image", text=str(item), path=Path(item)))
    for spec in options.clip:
        parsed, problem = parse_clip_spec(spec)
        if parsed is None:  # validate() has refused it already; kept for callers that skip it
            raise InputError(f"--clip {problem}")
        video, start, end = parsed
        queries.append(PictureQuery(qid=f"q{len(queries) + 1}", kind="clip", text=str(spec), path=Path(video),
                                    start_s=start, end_s=end, flag="--clip"))
    for query in queries:
        if not query.path.is_file():
            hint = " (a range is VIDEO:START-END)" if query.kind == "clip" and ":" in query.text else ""
            raise InputError(f"{query.flag} {query.text}: no such file{hint}")
    return queries


def query_embeddings(queries: list[PictureQuery], tower: Any, settings: Any) -> "np.ndarray":
    """``[Q, D]`` float32: each query's embedding through the index's frames and tower (see the module doc).

    Raises:
        InputError: a file cannot be decoded as a picture / video, or the range holds no frame
            (one line naming the flag and the file).
    """
    import numpy as np

    from r2cli.inference.visual import image_embedding
    from r2cli.media.frames import range_frames, still_frame

    rows = []
    for query in queries:
        try:
            if query.kind == "image":
                frames = still_frame(query.path, size=tower.image_size, geometry=settings.geometry)[None]
            else:
                frames, _ = range_frames(query.path, fps=settings.fps, start_s=query.start_s, end_s=query.end_s,
                                         size=tower.image_size, frame_rule=settings.frame_rule,
                                         geometry=settings.geometry)
        except MediaError as exc:
            raise InputError(f"{query.flag} {query.text}: {_without_name(str(exc), query.path)}") from None
        rows.append(image_embedding(tower, frames))
    return np.stack(rows)


def _without_name(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def rank_picture_moments(similarities: list["np.ndarray"], videos: list[tuple[Any, Any]],
                         queries: list[PictureQuery], *, fps: float, margin: float, min_run: int, top_k: int,
                         min_score: float | None, run_id: str, model_id: str, preset: str | None
                         ) -> tuple["Any", list[tuple[int, int]]]:
    """The moments frame (the moments schema, ranked, ``top_k`` per query) and the (query, video) pairs it holds.

    ``similarities`` per video ``[T, Q]`` (``-inf``: a clip not scored), or None for a video not scored.
    """
    import numpy as np
    import pandas as pd

    from r2cli.inference.search import MOMENT_COLUMNS, empty_moments
    from r2cli.inference.visual import runs_to_moments

    parts = []
    for q, query in enumerate(queries):
        finite = [s[:, q][np.isfinite(s[:, q])] for s in similarities if s is not None]
        best = max((float(f.max()) for f in finite if len(f)), default=None)
        if best is None:
            continue
        for v, (record, features) in enumerate(videos):
            if similarities[v] is None:
                continue
            duration = float(record.duration) if record.duration else features.num_clips / fps
            rows = runs_to_moments(similarities[v][:, q], threshold=best - margin, min_run=min_run, fps=fps,
                                   duration=duration)
            if min_score is not None and len(rows):
                rows = rows[rows[:, 2] >= min_score]
            if not len(rows):
                continue
            parts.append(pd.DataFrame({
                "query_index": q, "video_index": v, "start_s": rows[:, 0], "end_s": rows[:, 1], "score": rows[:, 2],
                "rank_in_video": np.arange(1, len(rows) + 1, dtype=np.int32), "video_id": record.id,
                "path": record.path,
            }))
    if not parts:
        frame = empty_moments()
        frame["query_kind"] = pd.Series(dtype="object")
        return frame, []
    frame = pd.concat(parts, ignore_index=True).sort_values(
        ["query_index", "score", "video_index", "start_s"], ascending=[True, False, True, True], kind="stable")
    frame["rank_in_query"] = frame.groupby("query_index").cumcount().astype(np.int32) + 1
    frame = frame[frame["rank_in_query"] <= top_k].copy()
    pairs = sorted({(int(q), int(v)) for q, v in zip(frame["query_index"], frame["video_index"])})
    frame["run_id"] = run_id
    frame["query_id"] = [queries[i].qid for i in frame["query_index"]]
    frame["query"] = [queries[i].text for i in frame["query_index"]]
    frame["query_kind"] = [queries[i].kind for i in frame["query_index"]]
    frame["model"] = model_id
    frame["preset"] = preset
    frame["video_id"] = frame["video_id"].astype("Int64")
    return frame[MOMENT_COLUMNS].reset_index(drop=True), pairs


def picture_saliency(similarities: list["np.ndarray"], videos: list[tuple[Any, Any]], queries: list[PictureQuery],
                     pairs: list[tuple[int, int]], *, fps: float, run_id: str) -> Any:
    """The saliency frame: every clip's CLIP similarity for each (query, video) with a moment."""
    import numpy as np
    import pandas as pd

    parts = []
    for q, v in pairs:
        record, features = videos[v]
        scores = similarities[v][:, q]
        clips = np.flatnonzero(np.isfinite(scores))
        if not len(clips):
            continue
        duration = float(record.duration) if record.duration else features.num_clips / fps
        parts.append(pd.DataFrame({
            "run_id": run_id, "query_id": queries[q].qid, "video_id": record.id, "path": record.path,
            "clip_index": clips.astype(np.int32), "clip_start_s": clips / fps,
            "clip_end_s": np.minimum((clips + 1) / fps, max(duration, clips[-1] / fps)),
            "score": scores[clips].astype(np.float32),
        }))
    if not parts:
        return []
    frame = pd.concat(parts, ignore_index=True)
    frame["video_id"] = frame["video_id"].astype("Int64")
    return frame


def run_visual_search(workspace: "Workspace", options: "SearchOptions", *,
                      reporter: Reporter = NULL_REPORTER) -> "SearchResult":
    """Search the archive for every ``--image`` and ``--clip`` query and publish the run (see the module doc).

    Raises:
        UsageError: an option breaks its rule.
        InputError: a query file is missing or unreadable as a picture/video (naming the flag), the archive
            is empty, nothing matches the filters, no selected video has features, or the outputs cannot
            be written.
        FolderBusyError: another run writes to ``out`` (after ``wait`` seconds).
        CatalogError: there is no catalog.
        MissingWeightsError: the CLIP weights are missing.
    """
    from r2cli.app.search import load_coarse_index
    from r2cli.catalog.selection import require_videos
    from r2cli.features.clip import load_clip, resolve_device
    from r2cli.features.store import FeatureSettings
    from r2cli.outputs import runs
    from r2cli.inference.models import _default_preset_name, preset_defaults
    from r2cli.inference.search import coarse_stage_for, open_features
    from r2cli.inference.visual import exact_clip_similarities
    from r2cli.inference.visual_index import hits_per_query, picture_scores, stage_record
    from r2cli.model import load_preset

    options.validate()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    warnings: list[str] = []
    queries = picture_queries(options)
    ignored = [flag for name, flag in _FINE_STAGE_FLAGS if getattr(options, name) is not None]
    if ignored:
        warnings.append(f"{', '.join(ignored)} set the fine stage, which image and clip queries do not run; ignored")
        reporter.warn(warnings[-1])

    tick = time.perf_counter()
    records = require_videos(workspace, options.video_filter())
    timings["catalog_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    device = resolve_device(options.device)
    tower = load_clip(options.clip_weights, device=device, lazy_text=True, reporter=reporter)
    preset = load_preset(options.preset or _default_preset_name())
    fps = preset_defaults(preset).fps  # the rate the index stores for this preset (0.5 for the official ones)
    settings = FeatureSettings.for_tower(tower, fps=fps)
    timings["model_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    found, skipped = open_features(workspace, records, settings)
    if skipped:
        names = ", ".join(Path(s.path).name for s in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warnings.append(f"{len(skipped)} of {len(records)} videos skipped (no usable features): {names}")
        reporter.warn(warnings[-1])
    if not found:
        first = skipped[0].reason if skipped else "no features"
        raise InputError(f"none of the {len(records)} selected videos can be searched ({first})")

    def warn(message: str) -> None:
        warnings.append(message)
        reporter.warn(message)

    stored = [features for _, features in found]
    index = load_coarse_index(workspace, options, stored, settings, warn)
    coarse = coarse_stage_for(stored, index, clips_per_query=hits_per_query(options.top_k), exact=options.exact)
    timings["features_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    embeddings = query_embeddings(queries, tower, settings)  # [Q, D]
    timings["queries_s"] = time.perf_counter() - tick

    model_id = f"clip:{tower.weights_id}"
    record_queries = [{"qid": q.qid, "query": q.text, "source": q.flag, "kind": q.kind} for q in queries]
    run_settings = {
        "query_kind": sorted({q.kind for q in queries}),
        "videos": list(options.videos), "min_duration": options.min_duration, "max_duration": options.max_duration,
        "path_contains": options.path_contains, "top_k": options.top_k, "min_score": options.min_score,
        "preset": preset.name, "fps": fps, "match_margin": options.match_margin, "min_run": options.min_run,
        "coarse": stage_record(coarse), "fine": None, "save_saliency": options.save_saliency,
    }
    key = runs.settings_key({
        "settings": run_settings,
        "queries": [(q.kind, q.text, _file_stamp(q.path)) for q in queries],
        "model": model_id,
        "features": [(record.id, record.fingerprint, features.num_clips) for record, features in found],
    })

    def stages(run_id: str) -> tuple[Any, Any, dict[str, int]]:
        tick = time.perf_counter()
        scores = picture_scores(embeddings, stored, coarse, margin=options.match_margin, min_run=options.min_run,
                                top_k=options.top_k, min_score=options.min_score)
        timings["coarse_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        moments, pairs = rank_picture_moments(
            scores.similarities, found, queries, fps=fps, margin=options.match_margin, min_run=options.min_run,
            top_k=options.top_k, min_score=options.min_score, run_id=run_id, model_id=model_id, preset=preset.name)
        # saliency: every clip of each video with a moment, exactly (the index path scored only some)
        whole = scores.similarities
        if coarse.path == "index":
            whole = [None] * len(found)
            for v in sorted({v for _, v in pairs}):
                whole[v] = exact_clip_similarities(embeddings, [stored[v].embed])[0]
        saliency = picture_saliency(whole, found, queries, pairs, fps=fps, run_id=run_id)
        timings["merge_s"] = time.perf_counter() - tick
        counts = {"queries": len(queries), "videos_selected": len(found) + len(skipped),
                  "videos_searched": len(found), "videos_skipped": len(skipped),
                  "pairs": 0, "moments": len(moments), **scores.counts()}
        return moments, saliency, counts

    info = {"checkpoint": None, "checkpoint_id": model_id, "preset": preset.name, "clip_weights": tower.weights_id,
            "clip_model": tower.model_name, "device": device}
    result = _publish(workspace, options, stages, key=key, settings=run_settings, queries=record_queries,
                      model=info, skipped=skipped, warnings=warnings, timings=timings, started=started)
    from r2cli.app.report import report_run_folder

    result.files.update(report_run_folder(result.out_dir, options.report, reporter))
    return result


def _file_stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _publish(workspace, options, stages, *, key, settings, queries, model, skipped, warnings, timings,
             started) -> "SearchResult":
    """Run ``stages`` in a run folder and publish it all-or-nothing, with ``run.json`` last and a catalog record."""
    from dataclasses import asdict

    from r2cli.app.search import SearchResult, _file_key, _resumed
    from r2cli.catalog import runs as run_records
    from r2cli.outputs import runs
    from r2cli.inference.search import MOMENTS_FILE, SALIENCY_FILE
    from r2cli.outputs.io import TableWriter
    from r2cli.outputs.publish import RunFolder

    wanted = (MOMENTS_FILE,) + ((SALIENCY_FILE,) if options.save_saliency else ())
    run_id = runs.new_run_id()
    out_dir = Path(options.out) if options.out is not None else workspace.runs_dir / run_id
    with RunFolder(out_dir, wait=options.wait, purpose="r2cli search") as folder:
        if options.resume and options.out is not None:
            previous = runs.finished_run(out_dir, key, wanted)
            if previous is not None:
                return _resumed(out_dir, previous, skipped)
        run_records.start_run(workspace, run_id=run_id, kind="search", settings=settings, queries=queries,
                              model=model, out_dir=out_dir)
        status, counts, files = "failed", {}, {}
        try:
            moments, saliency, counts = stages(run_id)
            tick = time.perf_counter()
            metadata = {"run_id": run_id, "preset": settings["preset"], "model": model["checkpoint_id"]}
            writer = TableWriter("moments", folder.stage(MOMENTS_FILE), metadata=metadata)
            writer.write(moments)
            writer.close()
            names = [MOMENTS_FILE]
            if options.save_saliency:
                writer = TableWriter("saliency", folder.stage(SALIENCY_FILE), metadata=metadata)
                writer.write(saliency)
                writer.close()
                names.append(SALIENCY_FILE)
            timings["write_s"] = time.perf_counter() - tick
            timings["total_s"] = time.perf_counter() - started
            timings = {name: round(value, 4) for name, value in timings.items()}
            manifest = {
                "manifest_version": runs.MANIFEST_VERSION, "run_id": run_id, "kind": "search", "status": "done",
                "settings_key": key, "settings": settings, "queries": queries, "model": model, "counts": counts,
                "timings": timings, "skipped": [asdict(s) for s in skipped], "skipped_windows": [],
                "files": {_file_key(name): name for name in names},
            }
            published = folder.publish(manifest)
            files = {_file_key(name): path for name, path in published.items()}
            status = "done"
        finally:
            run_records.end_run(workspace, run_id=run_id, status=status, timings=timings, counts=counts)
    return SearchResult(run_id=run_id, out_dir=out_dir, counts=counts, timings=timings, files=files, skipped=skipped,
                        warnings=warnings, model=model, settings=settings)
