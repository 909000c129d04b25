"""The ``duplicates`` use case: the same footage stored twice, found from the stored clip embeddings.

``DuplicatesOptions`` owns every default and rule (the CLI's flags and the job file's
``[duplicates]`` keys are its fields); ``run_duplicates`` is the one library call both make. The
search itself is ``r2cli.inference.duplicates`` (signatures, LSH banding, offset voting, exact
verification); this module picks the videos and their feature files, runs it, and publishes
``duplicates.parquet`` and ``run.json`` in a run folder, all-or-nothing.

No model is loaded: only the ``embed`` tensor of each feature file is read (memory-mapped). Videos
whose features were computed with other CLIP weights, another fps or another frame geometry live
in another embedding space; the space holding most of the selected videos is used and the others
are skipped with a warning. Catalog rows of the same content (one fingerprint under several
paths) are reported as ``identical`` without looking at their features, and every pair found for
that content is reported for each of its paths.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.options import Options, option
from r2cli.app.steps import JobContext, StepResult
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from r2cli.inference.duplicates import DuplicateParams
    from r2cli.paths import Workspace

DUPLICATES_FILE = "duplicates.parquet"


@dataclass(frozen=True)
class DuplicatesOptions(Options):
    """Everything that shapes a duplicates run."""

    section = "duplicates"

    videos: tuple[str, ...] = option(
        (), help="Only videos whose catalog id, path or file name matches one of these globs.", flag="--video")
    min_duration: float | None = option(None, help="Only videos at least this long (s).", minimum=0)
    max_duration: float | None = option(None, help="Only videos at most this long (s).", minimum=0)
    path_contains: str | None = option(None, help="Only videos whose path contains this text.")
    min_similarity: float = option(
        0.85, above=0, maximum=1,
        help="Cosine of aligned clips' CLIP embeddings (averaged over --max-gap each side) from which they "
             "count as the same footage.")
    min_length: float = option(10.0, above=0, help="Shortest shared footage reported (s).")
    max_gap: float = option(4.0, minimum=0, help="Non-matching stretch (s) bridged inside shared footage "
                                                 "(a flash, a caption, a dropped frame).")
    coverage: float = option(0.9, above=0, maximum=1,
                             help="Fraction of a video the shared footage must cover for the video to count "
                                  "as whole (kind duplicate or contained).")
    bands: int = option(16, minimum=1, maximum=256,
                        help="LSH bands of the clip signatures (more: higher recall, more candidates).")
    rows: int = option(20, minimum=1, maximum=32,
                       help="Bits per band (more: fewer chance candidates, lower recall per band).")
    max_bucket: int = option(50, minimum=2,
                             help="Footage found in more places than this (in two bands of its signature or more: black, "
                                  "colour bars, a channel's ident) is not matched.")
    min_votes: int = option(3, minimum=1, help="Aligned candidate clips an offset between two videos needs "
                                               "to be verified.")
    max_offsets: int = option(8, minimum=1, help="Offsets verified per pair of videos at most (the best voted).")
    out: Path | None = option(None, help="Run folder for duplicates.parquet. Default: <workspace>/runs/<run id>.")
    wait: float = option(0.0, help="Seconds to wait when another run writes to the same --out.", minimum=0,
                         job=False)
    # set by the job runner: return the finished run in ``out`` when its settings are the same
    resume: bool = option(False, help="Reuse a finished run with the same settings in --out.", job=False)
    report: bool = option(False, help="Also write an HTML report of the pairs into report/ in the run folder.")

    def check(self) -> tuple[tuple[str, ...], str] | None:
        if self.min_duration is not None and self.max_duration is not None and self.min_duration > self.max_duration:
            return (("min_duration", "max_duration"),
                    f"{{0}} ({self.min_duration:g}) must not exceed {{1}} ({self.max_duration:g})")
        return None

    def video_filter(self) -> Any:
        from r2cli.catalog.selection import VideoFilter

        return VideoFilter(patterns=self.videos, min_duration=self.min_duration, max_duration=self.max_duration,
                           path_contains=self.path_contains)

    def params(self, fps: float) -> "DuplicateParams":
        """The search's parameters for features at ``fps`` clips per second (seconds become clips)."""
        from r2cli.inference.duplicates import DuplicateParams

        return DuplicateParams(
            bands=self.bands, rows=self.rows, max_bucket=self.max_bucket, min_votes=self.min_votes,
            max_offsets=self.max_offsets, min_similarity=self.min_similarity,
            min_clips=max(2, math.ceil(self.min_length * fps - 1e-9)), max_gap=int(round(self.max_gap * fps)),
            coverage=self.coverage)


OPTIONS = DuplicatesOptions


@dataclass
class DuplicatesResult:
    """What ``run_duplicates`` found and where its outputs are."""

    run_id: str
    out_dir: Path
    pairs: "pd.DataFrame"  # the rows of duplicates.parquet
    counts: dict[str, int]
    timings: dict[str, float]
    files: dict[str, Path]  # "duplicates", "manifest" (and "report") -> path
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"video_id", "path", "reason"}
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False


@dataclass
class _Member:
    record: Any  # VideoRecord
    features: Any  # VideoFeatures


def _space(settings: Mapping[str, Any]) -> tuple:
    """What makes two feature sets' embeddings comparable (same tower, weights, crop, clip rate)."""
    return (settings.get("clip_model"), settings.get("weights_id"), settings.get("image_size"),
            settings.get("crop"), settings.get("geometry", "display"), float(settings.get("fps", 0)))


def _select_features(workspace: "Workspace", records: list[Any], warn) -> tuple[list[_Member], dict[str, list[Any]],
                                                                             list[dict[str, Any]], dict[str, Any]]:
    """One feature file per content, all in one embedding space; the rows sharing each content."""
    from r2cli.catalog.db import Catalog
    from r2cli.catalog.features import compatible_sets
    from r2cli.errors import FeatureError, InputError
    from r2cli.features.store import FeatureStore

    by_content: dict[str, list[Any]] = {}
    skipped: list[dict[str, Any]] = []
    for record in records:
        if not record.fingerprint:
            skipped.append({"video_id": record.id, "path": record.path, "reason": "not fingerprinted yet; run r2cli index"})
            continue
        by_content.setdefault(record.fingerprint, []).append(record)
    with Catalog.open(workspace, create=False) as catalog:
        sets = compatible_sets(catalog, sorted(by_content), lambda settings: True)
    spaces: dict[tuple, int] = {}
    for fingerprint, found in sets.items():
        for space in {_space(s.settings) for s in found}:
            spaces[space] = spaces.get(space, 0) + 1
    if not spaces:
        raise InputError(f"none of the {len(records)} selected videos has features; run r2cli index first")
    space = max(sorted(spaces, key=str), key=lambda s: spaces[s])
    store = FeatureStore(workspace.features_dir)
    members: list[_Member] = []
    for fingerprint, rows in by_content.items():
        features = None
        reason = "no features; run r2cli index"
        candidates = [s for s in sets.get(fingerprint, []) if _space(s.settings) == space]
        if sets.get(fingerprint) and not candidates:
            reason = f"features of other CLIP weights or fps ({_describe(_space(sets[fingerprint][0].settings))})"
        for stored in candidates:
            try:
                features = store.open_relpath(stored.relpath)
                break
            except FeatureError as exc:
                reason = f"unreadable features ({exc})"
        if features is None:
            skipped.extend({"video_id": r.id, "path": r.path, "reason": reason} for r in rows)
            continue
        members.append(_Member(record=rows[0], features=features))
    if skipped:
        names = ", ".join(Path(s["path"]).name for s in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warn(f"{len(skipped)} of {len(records)} videos skipped: {names}")
    members.sort(key=lambda m: m.record.id)
    return members, by_content, skipped, {"space": _describe(space), "fps": space[-1]}


def _describe(space: tuple) -> str:
    model, weights, size, _crop, geometry, fps = space
    return f"CLIP {weights} ({model}, {size} px, {geometry}) at {fps:g} fps"


def run_duplicates(workspace: "Workspace", options: DuplicatesOptions, *,
                   reporter: Reporter = NULL_REPORTER) -> DuplicatesResult:
    """Find near-duplicate videos and shared footage in the archive and publish the pairs.

    Raises:
        UsageError: an option breaks its rule.
        CatalogError: there is no catalog.
        InputError: the archive is empty, nothing matches the filters, no selected video has
            features, or the outputs cannot be written.
        FolderBusyError: another run writes to ``out`` (after ``wait`` seconds).
    """
    from r2cli.catalog import runs as run_records
    from r2cli.catalog.selection import require_videos
    from r2cli.outputs import runs
    from r2cli.inference.duplicates import find_duplicates
    from r2cli.outputs.publish import RunFolder

    options.validate()
    started = time.perf_counter()
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        reporter.warn(message)

    timings: dict[str, float] = {}
    tick = time.perf_counter()
    records = require_videos(workspace, options.video_filter())
    members, by_content, skipped, space = _select_features(workspace, records, warn)
    timings["features_s"] = time.perf_counter() - tick
    fps = float(space["fps"])
    params = options.params(fps)
    settings_record = {
        **{k: v for k, v in options.to_dict().items() if k not in ("out", "wait", "resume", "report")},
        "embedding_space": space["space"], "fps": fps, "min_clips": params.min_clips, "max_gap_clips": params.max_gap,
    }
    key = runs.settings_key({
        "settings": settings_record,
        "videos": [(r.id, r.path, r.fingerprint) for rows in by_content.values() for r in rows],
        "features": [(m.record.fingerprint, m.features.num_clips) for m in members],
    })
    run_id = runs.new_run_id()
    out_dir = Path(options.out) if options.out is not None else workspace.runs_dir / run_id
    with RunFolder(out_dir, wait=options.wait, purpose="r2cli duplicates") as folder:
        if options.resume and options.out is not None:
            previous = runs.finished_run(out_dir, key, (DUPLICATES_FILE,))
            if previous is not None:
                return _resumed(out_dir, previous)
        run_records.start_run(workspace, run_id=run_id, kind="duplicates", settings=settings_record, queries=None,
                              model=None, out_dir=out_dir)
        status, counts = "failed", {}
        try:
            shown: dict[str, int] = {}  # stage -> progress reported so far

            def progress(stage: str, done: int, total: int) -> None:
                name = f"duplicates: {stage}"
                if shown.get(name) == -1:  # ended
                    return
                if name not in shown:
                    shown[name] = 0
                    reporter.begin(name, total=total, unit="clips" if stage == "signatures" else "steps")
                reporter.advance(name, done - shown[name])
                shown[name] = done
                if done >= total:
                    reporter.end(name)
                    shown[name] = -1

            search = find_duplicates([m.features.embed for m in members], params, progress=progress)
            timings.update(search.timings)
            tick = time.perf_counter()
            rows = _rows(run_id, members, by_content, search.pairs, fps)
            frame = _frame(rows)
            from r2cli.outputs import write_table

            write_table("duplicates", frame, folder.stage(DUPLICATES_FILE),
                        metadata={"run_id": run_id, "embedding_space": space["space"]})
            timings["write_s"] = time.perf_counter() - tick
            timings["total_s"] = time.perf_counter() - started
            timings = {k: round(v, 4) for k, v in timings.items()}
            counts = {
                "videos_selected": len(records), "videos_compared": len(members), "videos_skipped": len(skipped),
                **{k: v for k, v in search.counts.items() if k not in ("videos",)},
                **{f"pairs_{kind}": int((frame["kind"] == kind).sum()) for kind in PAIR_KINDS},
                "pairs": int(len(frame)),
            }
            manifest = {
                "manifest_version": runs.MANIFEST_VERSION, "run_id": run_id, "kind": "duplicates", "status": "done",
                "settings_key": key, "settings": settings_record, "counts": counts, "timings": timings,
                "skipped": skipped, "files": {"duplicates": DUPLICATES_FILE},
            }
            published = folder.publish(manifest)
            files = {"duplicates": published[DUPLICATES_FILE], "manifest": out_dir / "run.json"}
            status = "done"
        finally:
            run_records.end_run(workspace, run_id=run_id, status=status, timings=timings, counts=counts)
    result = DuplicatesResult(run_id=run_id, out_dir=out_dir, pairs=frame, counts=counts, timings=timings,
                              files=files, skipped=skipped, warnings=warnings, settings=settings_record)
    if options.report:
        from r2cli.app.report import report_run_folder

        result.files.update(report_run_folder(out_dir, True, reporter))
    return result


PAIR_KINDS = ("identical", "duplicate", "contained", "shared")


def _rows(run_id: str, members: list[_Member], by_content: dict[str, list[Any]], pairs: list[Any],
          fps: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for fingerprint, records in by_content.items():  # one content under several paths
        first = records[0]
        for other in records[1:]:
            duration = float(first.duration or 0.0)
            rows.append({"run_id": run_id, "kind": "identical", "video_a_id": first.id, "path_a": first.path,
                         "video_b_id": other.id, "path_b": other.path, "a_start_s": 0.0, "a_end_s": duration,
                         "b_start_s": 0.0, "b_end_s": duration, "offset_s": 0.0, "similarity": 1.0,
                         "matched_clips": 0, "votes": 0})
    for pair in pairs:  # a content under several paths: the pair holds for each of them
        end_a = _clip_end(pair.a_end, fps, members[pair.a])
        end_b = _clip_end(pair.b_end, fps, members[pair.b])
        for a in by_content[members[pair.a].record.fingerprint]:
            for b in by_content[members[pair.b].record.fingerprint]:
                rows.append({"run_id": run_id, "kind": pair.kind, "video_a_id": a.id, "path_a": a.path,
                             "video_b_id": b.id, "path_b": b.path, "a_start_s": pair.a_start / fps,
                             "a_end_s": end_a, "b_start_s": pair.b_start / fps, "b_end_s": end_b,
                             "offset_s": pair.offset / fps, "similarity": round(float(pair.similarity), 6),
                             "matched_clips": pair.matched, "votes": pair.votes})
    return rows


def _clip_end(end_clip: int, fps: float, member: _Member) -> float:
    """End (s) of clip ``end_clip - 1``, not past the video's end."""
    end = end_clip / fps
    duration = member.features.duration or member.record.duration
    return min(end, float(duration)) if duration else end


def _frame(rows: list[dict[str, Any]]) -> "pd.DataFrame":
    import pandas as pd

    from r2cli.outputs.schemas import columns

    names = [c.name for c in columns("duplicates")]
    frame = pd.DataFrame(rows, columns=names)
    if len(frame):
        order = {kind: i for i, kind in enumerate(PAIR_KINDS)}
        frame = frame.assign(_kind=frame["kind"].map(order)).sort_values(
            ["_kind", "similarity", "path_a", "a_start_s"], ascending=[True, False, True, True], kind="stable"
        ).drop(columns="_kind").reset_index(drop=True)
    return frame


def _resumed(out_dir: Path, manifest: dict[str, Any]) -> DuplicatesResult:
    from r2cli.outputs import read_results

    frame = read_results(out_dir / DUPLICATES_FILE, kind="duplicates").df
    return DuplicatesResult(
        run_id=str(manifest.get("run_id")), out_dir=out_dir, pairs=frame, counts=dict(manifest.get("counts") or {}),
        timings=dict(manifest.get("timings") or {}),
        files={"duplicates": out_dir / DUPLICATES_FILE, "manifest": out_dir / "run.json"},
        skipped=list(manifest.get("skipped") or []), settings=dict(manifest.get("settings") or {}), resumed=True)


def job_step(workspace: "Workspace", table: Mapping[str, Any], context: JobContext, *,
             reporter: Reporter = NULL_REPORTER) -> StepResult:
    """The ``[duplicates]`` table of a job: ``run_duplicates`` into ``<job out>/duplicates``, skipped
    when a run with the same settings over the same features finished there (unless forced)."""
    options = DuplicatesOptions.from_table(table, where=context.where("duplicates"), base=context.base,
                                           overrides={"out": context.out_dir / "duplicates",
                                                      "resume": not context.force})
    started = time.perf_counter()
    result = run_duplicates(workspace, options, reporter=reporter)
    outputs = {name: str(path) for name, path in result.files.items()}
    outputs.setdefault("out_dir", str(result.out_dir))
    if result.resumed:
        detail = f"pairs for the same settings exist in {result.out_dir} (run {result.run_id}); use --force to redo"
    else:
        count = result.counts.get("pairs", 0)
        detail = f"{count} duplicate {'pair' if count == 1 else 'pairs'} in {result.out_dir}"
    return StepResult(name="duplicates", status="skipped" if result.resumed else "done", detail=detail,
                      seconds=time.perf_counter() - started, outputs=outputs, counts=dict(result.counts))
