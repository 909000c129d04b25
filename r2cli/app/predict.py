"""The ``predict`` use case: ground each query of a user's annotation file in its own video.

``r2cli search`` ranks moments across the archive, so one query yields lines for many videos; a user
who annotated (query, video, windows) needs each query grounded in *its* video, with one prediction
line per annotation and the annotation's ``qid``, which ``r2cli evaluate --dataset user`` reads as it
is (#22.4). The videos come from the catalog (as ``r2cli finetune`` finds them: ``video`` by path,
``vid`` by fingerprint, catalog id or file stem) and must be indexed with features. Each video is
grounded whole, in the preset's windows, exactly as ``search --format official`` grounds a video.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.model_run import ModelRunOptions
from r2cli.app.options import Options, option
from r2cli.errors import InputError
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.paths import Workspace


@dataclass(frozen=True)
class PredictOptions(Options):
    """What to predict, with which model, and where to write it."""

    section = "predict"
    annotations: Path | None = option(None, help="Your annotations: QVHighlights JSON Lines with query, video "
                                                 "(or vid) and relevant_windows.", exists=True)
    out: Path | None = option(None, help="Predictions file (JSON Lines, the official submission format). "
                                         "Default: <annotations name>.predictions.jsonl in the current folder.")
    force: bool = option(False, help="Replace the predictions file when it exists.")
    # the model fields of every R2-Tuning run, with their defaults, rules and help (r2cli.app.model_run)
    preset: str | None = ModelRunOptions.reworded("preset")
    checkpoint: str | None = ModelRunOptions.reworded("checkpoint")
    clip_weights: str | None = ModelRunOptions.reworded("clip_weights")
    device: str = ModelRunOptions.reworded("device")
    batch_size: int | None = ModelRunOptions.reworded("batch_size")

    def check(self):
        if self.annotations is None:
            return ("annotations",), "{0} is required"
        return None

    def out_path(self) -> Path:
        """Where the predictions go."""
        if self.out is not None:
            return Path(self.out)
        return Path.cwd() / f"{Path(self.annotations).stem}.predictions.jsonl"


@dataclass
class PredictResult:
    """What ``predict_annotations`` wrote."""

    out: Path  # the predictions file
    predicted: int  # annotations with a prediction line
    skipped: list[tuple[Any, str]] = field(default_factory=list)  # (qid, why) of annotations left out
    seconds: float = 0.0  # wall time
    model: dict[str, Any] = field(default_factory=dict)  # checkpoint, preset, CLIP weights, device


def predict_annotations(workspace: "Workspace", options: PredictOptions, *,
                        reporter: Reporter = NULL_REPORTER) -> PredictResult:
    """Ground every annotated query in its own video and write the official prediction lines.

    Each line holds the annotation's ``qid``, ``query`` and ``vid`` (its ``vid``, else the video's
    file stem), ``pred_relevant_windows`` (the official post-processing: best first) and
    ``pred_saliency_scores`` (one per clip). An annotation whose video is not in the catalog or has
    no features is skipped with a warning (``r2cli evaluate --allow-missing`` then scores the rest).

    Raises:
        UsageError: missing or invalid options.
        InputError: the annotations are invalid (file, line and field named), no annotation has a
            usable video, or the predictions file exists (without ``force``) or cannot be written.
        MissingWeightsError: the CLIP weights and/or the checkpoint are missing (all named at once).
        CatalogError: there is no catalog.
    """
    import numpy as np

    from r2cli._atomic import atomic_output
    from r2cli.app.search import SearchOptions, _plan
    from r2cli.catalog.features import ok_videos
    from r2cli.data.grounding import read_user_annotations
    from r2cli.eval.formats import MomentPrediction
    from r2cli.inference.grounding import Grounder
    from r2cli.inference.models import check_weights, load_models
    from r2cli.inference.search import ground_windows, merge_moments
    from r2cli.train.sources import _find, _video_lookup

    options.validate()
    started = time.perf_counter()
    out = options.out_path()
    if out.exists() and not options.force:
        raise InputError(f"--out {out} exists; pass --force to replace it")
    annotations = read_user_annotations(options.annotations)
    check_weights(options.clip_weights, options.checkpoint)
    table = _video_lookup(ok_videos(workspace))
    records: dict[int, Any] = {}
    wanted: list[tuple[Any, Any]] = []  # (annotation, catalog record)
    skipped: list[tuple[Any, str]] = []
    for annotation in annotations:
        record = _find(table, annotation)
        if record is None:
            what = annotation.video_path or f"vid {annotation.vid!r}"
            skipped.append((annotation.qid, f"{what} is not in the catalog; run r2cli index on it"))
            continue
        records[record.id] = record
        wanted.append((annotation, record))
    if not wanted:
        raise InputError(f"no annotation of {options.annotations} names a catalogued video ({skipped[0][1]})")

    models = load_models(clip_weights=options.clip_weights, checkpoint=options.checkpoint, preset=options.preset,
                         device=options.device, reporter=reporter)
    search_options = SearchOptions(preset=options.preset, checkpoint=options.checkpoint,
                                   clip_weights=options.clip_weights, device=options.device)
    warnings: list[str] = []
    plan, unusable, _ = _plan(workspace, search_options, models, list(records.values()), warnings.append)
    video_of = {video.record.id: v for v, video in enumerate(plan.videos)}
    reasons = {s.video_id: s.reason for s in unusable}
    usable = []
    for annotation, record in wanted:
        if record.id in video_of:
            usable.append((annotation, video_of[record.id]))
        else:
            skipped.append((annotation.qid, f"{record.path}: {reasons.get(record.id, 'no features')}"))
    for qid, reason in skipped[:5]:
        reporter.warn(f"skipping annotation {qid}: {reason}")
    if len(skipped) > 5:
        reporter.warn(f"... {len(skipped) - 5} more annotations skipped")
    if not usable:
        raise InputError(f"no annotation of {options.annotations} has a video with features ({skipped[0][1]})")

    windows_of: dict[int, list[int]] = {}
    for w, (v, _) in enumerate(plan.windows):
        if w not in plan.bad_windows:
            windows_of.setdefault(v, []).append(w)
    query_layers, _, _ = models.tower.query_features([a.query for a, _ in usable], k=models.model.config.k)
    pairs = [(w, q) for q, (_, v) in enumerate(usable) for w in windows_of.get(v, [])]
    grounder = Grounder(models.model, models.info["device"], batch_size=options.batch_size)
    outputs, kept = ground_windows(grounder, plan, query_layers, pairs, reporter=reporter, stage="predict")
    merged = merge_moments(plan, kept, outputs, has_boundaries=grounder.has_boundaries)
    found = {key: (rows, merged.saliency[key]) for key, rows in zip(merged.keys, merged.moments)}
    lines = []
    for q, (annotation, v) in enumerate(usable):
        rows, saliency = found.get((q, v), (np.zeros((0, 3)), np.zeros(0)))
        saliency = np.asarray(saliency, dtype=np.float64)
        if saliency.size and np.isnan(saliency).any():  # clips no usable window covered: the lowest score
            floor = np.nanmin(saliency) if not np.isnan(saliency).all() else 0.0
            saliency = np.where(np.isnan(saliency), floor, saliency)
        vid = annotation.vid or Path(plan.videos[v].record.path).stem
        item = MomentPrediction(qid=annotation.qid, query=annotation.query, vid=vid,
                                windows=[[round(float(x), 4) for x in row] for row in rows],
                                saliency=[round(float(x), 4) for x in saliency])
        lines.append(json.dumps(item.to_official(), ensure_ascii=False, allow_nan=False))
    try:
        with atomic_output(out) as tmp:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
    return PredictResult(out=out, predicted=len(lines), skipped=skipped, seconds=time.perf_counter() - started,
                         model=models.info)
