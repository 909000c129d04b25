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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.model_run import RunLog, RunOutput, RunRecord, publish_run, require_usable, skipped_records
from r2cli.app.search_common import (  # noqa: F401  (parse_clip_spec, resolve_clip_specs: imported from here too)
    FILE_KEYS,
    SearchOptions,
    SearchResult,
    load_coarse_index,
    parse_clip_spec,
    resolve_clip_specs,
    search_result,
)
from r2cli.errors import InputError, MediaError
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from r2cli.app.model_run import OpenRun
    from r2cli.paths import Workspace

# options of R2-Tuning's fine stage: a picture search does not run it, so setting them is worth a warning
_FINE_STAGE_FLAGS = (("candidates", "--candidates"), ("checkpoint", "--checkpoint"), ("window", "--window"),
                     ("stride", "--stride"), ("batch_size", "--batch-size"), ("ray", "--ray"))
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


def run_visual_search(workspace: "Workspace", options: SearchOptions, *,
                      reporter: Reporter = NULL_REPORTER) -> SearchResult:
    """Search the archive for every ``--image`` and ``--clip`` query and publish the run (see the module doc).

    The run's folder, resume, catalog record and ``run.json`` are the lifecycle of every run
    (``r2cli.app.model_run.publish_run``); only CLIP is loaded.

    Raises:
        UsageError: an option breaks its rule.
        InputError: a query file is missing or unreadable as a picture/video (naming the flag), the archive
            is empty, nothing matches the filters, no selected video has features, or the outputs cannot
            be written.
        FolderBusyError: another run writes to ``out`` (after ``wait`` seconds).
        CatalogError: there is no catalog.
        MissingWeightsError: the CLIP weights are missing.
    """
    from r2cli.app.report import report_run_folder
    from r2cli.catalog.selection import require_videos
    from r2cli.outputs import runs
    from r2cli.inference.search import coarse_stage_for, open_features
    from r2cli.inference.visual_index import hits_per_query, stage_record

    options.validate()
    log = RunLog(reporter)
    queries = picture_queries(options)
    ignored = [flag for name, flag in _FINE_STAGE_FLAGS if getattr(options, name) is not None]
    if ignored:
        log.warn(f"{', '.join(ignored)} set the fine stage, which image and clip queries do not run; ignored")
    with log.timed("catalog_s"):
        records = require_videos(workspace, options.video_filter())
    with log.timed("model_s"):
        device, tower, preset, settings = _clip_tower(options, reporter)
    fps = settings.fps
    with log.timed("features_s"):
        found, skipped = open_features(workspace, records, settings)
        require_usable(len(found), skipped, len(records), "searched", log.warn)
        stored = [features for _, features in found]
        index = load_coarse_index(workspace, options, stored, settings, log.warn)
        coarse = coarse_stage_for(stored, index, clips_per_query=hits_per_query(options.top_k), exact=options.exact)
    with log.timed("queries_s"):
        embeddings = query_embeddings(queries, tower, settings)  # [Q, D]

    model_id = f"clip:{tower.weights_id}"
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
    info = {"checkpoint": None, "checkpoint_id": model_id, "preset": preset.name, "clip_weights": tower.weights_id,
            "clip_model": tower.model_name, "device": device}
    record = RunRecord(
        kind="search", key=key, settings=run_settings, file_keys=FILE_KEYS,
        wanted=("moments.parquet",) + (("saliency.parquet",) if options.save_saliency else ()),
        queries=[{"qid": q.qid, "query": q.text, "source": q.flag, "kind": q.kind} for q in queries], model=info)
    work = _PictureSearch(options=options, queries=queries, embeddings=embeddings, found=found, skipped=skipped,
                          coarse=coarse, fps=fps, model_id=model_id, preset=preset.name, log=log)
    published = publish_run(workspace, options, record, log, work.run)
    result = search_result(published, log, skipped=skipped, model=info, settings=run_settings)
    result.files.update(report_run_folder(result.out_dir, options.report, reporter))
    return result


def _clip_tower(options: SearchOptions, reporter: Reporter) -> tuple[str, Any, Any, Any]:
    """The device, CLIP's tower, the preset (its fps is the rate the index stores: 0.5 for the official ones) and the
    feature settings a picture search reads."""
    from r2cli.features.clip import load_clip, resolve_device
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.models import preset_defaults
    from r2cli.model.config import choose_preset

    device = resolve_device(options.device)
    tower = load_clip(options.clip_weights, device=device, lazy_text=True, reporter=reporter)
    preset = choose_preset(options.preset, default=True)
    return device, tower, preset, FeatureSettings.for_tower(tower, fps=preset_defaults(preset).fps)


def _file_stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@dataclass
class _PictureSearch:
    """A picture search's own stages inside the run (``run``): the coarse scores, the moments, the
    saliency, and the two tables staged in the run folder."""

    options: SearchOptions
    queries: list[PictureQuery]
    embeddings: Any  # [Q, D] float32
    found: list[tuple[Any, Any]]  # (catalog record, stored features) per searched video
    skipped: list
    coarse: Any  # r2cli.inference.visual_index's stage (exact or index)
    fps: float
    model_id: str
    preset: str
    log: RunLog

    def run(self, run: "OpenRun") -> RunOutput:
        from r2cli.inference.search import MOMENTS_FILE, SALIENCY_FILE
        from r2cli.outputs.io import TableWriter

        moments, saliency, counts = self._stages(run.run_id)
        with self.log.timed("write_s"):
            metadata = {"run_id": run.run_id, "preset": self.preset, "model": self.model_id}
            tables = [(MOMENTS_FILE, "moments", moments)]
            if self.options.save_saliency:
                tables.append((SALIENCY_FILE, "saliency", saliency))
            for name, kind, frame in tables:
                writer = TableWriter(kind, run.folder.stage(name), metadata=metadata)
                writer.write(frame)
                writer.close()
        return RunOutput(names=[name for name, _, _ in tables], counts=counts,
                         manifest={"skipped": skipped_records(self.skipped), "skipped_windows": []})

    def _stages(self, run_id: str) -> tuple[Any, Any, dict[str, int]]:
        from r2cli.inference.visual import exact_clip_similarities
        from r2cli.inference.visual_index import picture_scores

        options, found = self.options, self.found
        stored = [features for _, features in found]
        with self.log.timed("coarse_s"):
            scores = picture_scores(self.embeddings, stored, self.coarse, margin=options.match_margin,
                                    min_run=options.min_run, top_k=options.top_k, min_score=options.min_score)
        with self.log.timed("merge_s"):
            moments, pairs = rank_picture_moments(
                scores.similarities, found, self.queries, fps=self.fps, margin=options.match_margin,
                min_run=options.min_run, top_k=options.top_k, min_score=options.min_score, run_id=run_id,
                model_id=self.model_id, preset=self.preset)
            # saliency: every clip of each video with a moment, exactly (the index path scored only some)
            whole = scores.similarities
            if self.coarse.path == "index":
                whole = [None] * len(found)
                for v in sorted({v for _, v in pairs}):
                    whole[v] = exact_clip_similarities(self.embeddings, [stored[v].embed])[0]
            saliency = picture_saliency(whole, found, self.queries, pairs, fps=self.fps, run_id=run_id)
        counts = {"queries": len(self.queries), "videos_selected": len(found) + len(self.skipped),
                  "videos_searched": len(found), "videos_skipped": len(self.skipped),
                  "pairs": 0, "moments": len(moments), **scores.counts()}
        return moments, saliency, counts
