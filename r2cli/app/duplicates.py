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

from r2cli.app.options import RunFolderOptions, option
from r2cli.app.steps import JobContext, StepResult
from r2cli.media.names import GEOMETRY_DISPLAY
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from r2cli.inference.duplicates import DuplicateParams
    from r2cli.paths import Workspace

DUPLICATES_FILE = "duplicates.parquet"


@dataclass(frozen=True)
class DuplicatesOptions(RunFolderOptions):
    """Everything that shapes a duplicates run: the video filters and the run folder are
    ``RunFolderOptions``' fields; these are the search's own."""

    section = "duplicates"

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
            settings.get("crop"), settings.get("geometry", GEOMETRY_DISPLAY), float(settings.get("fps", 0)))


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

    The run folder, resume, catalog record and ``run.json`` are ``r2cli.app.model_run.publish_run``'s.

    Raises:
        UsageError: an option breaks its rule.
        CatalogError: there is no catalog.
        InputError: the archive is empty, nothing matches the filters, no selected video has
            features, or the outputs cannot be written.
        FolderBusyError: another run writes to ``out`` (after ``wait`` seconds).
    """
    from r2cli.app.model_run import RunLog, RunRecord, publish_run
    from r2cli.app.report import report_run_folder
    from r2cli.catalog.selection import require_videos
    from r2cli.outputs import runs

    options.validate()
    log = RunLog(reporter)
    with log.timed("features_s"):
        records = require_videos(workspace, options.video_filter())
        members, by_content, skipped, space = _select_features(workspace, records, log.warn)
    fps = float(space["fps"])
    params = options.params(fps)
    settings = {
        **{k: v for k, v in options.to_dict().items() if k not in ("out", "wait", "resume", "report")},
        "embedding_space": space["space"], "fps": fps, "min_clips": params.min_clips, "max_gap_clips": params.max_gap,
    }
    key = runs.settings_key({
        "settings": settings,
        "videos": [(r.id, r.path, r.fingerprint) for rows in by_content.values() for r in rows],
        "features": [(m.record.fingerprint, m.features.num_clips) for m in members],
    })
    record = RunRecord(kind="duplicates", key=key, settings=settings, wanted=(DUPLICATES_FILE,),
                       file_keys={DUPLICATES_FILE: "duplicates", "run.json": "manifest"})
    work = _Duplicates(members=members, by_content=by_content, skipped=skipped, selected=len(records), fps=fps,
                       params=params, space=space["space"], log=log)
    published = publish_run(workspace, options, record, log, work.run)
    if published.resumed:
        result = _resumed(published.out_dir, published.previous)
    else:
        result = DuplicatesResult(run_id=published.run_id, out_dir=published.out_dir, pairs=work.frame,
                                  counts=published.counts, timings=published.timings, files=published.files,
                                  skipped=skipped, warnings=log.warnings, settings=settings)
    result.files.update(report_run_folder(result.out_dir, options.report, reporter))
    return result


@dataclass
class _Duplicates:
    """The duplicates search inside the run (``run``): signatures, banding, voting, verification, the table."""

    members: list[_Member]
    by_content: dict[str, list[Any]]
    skipped: list[dict[str, Any]]
    selected: int  # videos the filters selected
    fps: float
    params: "DuplicateParams"
    space: str  # the embedding space compared
    log: Any  # r2cli.app.model_run.RunLog
    frame: Any = None  # the pairs, once found

    def run(self, run: Any) -> Any:
        from r2cli.app.model_run import RunOutput
        from r2cli.inference.duplicates import find_duplicates
        from r2cli.outputs import write_table

        search = find_duplicates([m.features.embed for m in self.members], self.params, progress=self._progress())
        self.log.timings.update(search.timings)
        with self.log.timed("write_s"):
            self.frame = _frame(_rows(run.run_id, self.members, self.by_content, search.pairs, self.fps))
            write_table("duplicates", self.frame, run.folder.stage(DUPLICATES_FILE),
                        metadata={"run_id": run.run_id, "embedding_space": self.space})
        counts = {
            "videos_selected": self.selected, "videos_compared": len(self.members), "videos_skipped": len(self.skipped),
            **{k: v for k, v in search.counts.items() if k not in ("videos",)},
            **{f"pairs_{kind}": int((self.frame["kind"] == kind).sum()) for kind in PAIR_KINDS},
            "pairs": int(len(self.frame)),
        }
        return RunOutput(names=[DUPLICATES_FILE], counts=counts, manifest={"skipped": self.skipped})

    def _progress(self) -> Any:
        """The search's progress callback, as reporter stages (one per stage, ended once)."""
        reporter = self.log.reporter
        shown: dict[str, int] = {}  # stage -> progress reported so far (-1: ended)

        def progress(stage: str, done: int, total: int) -> None:
            name = f"duplicates: {stage}"
            if shown.get(name) == -1:
                return
            if name not in shown:
                shown[name] = 0
                reporter.begin(name, total=total, unit="clips" if stage == "signatures" else "steps")
            reporter.advance(name, done - shown[name])
            shown[name] = done
            if done >= total:
                reporter.end(name)
                shown[name] = -1

        return progress


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
