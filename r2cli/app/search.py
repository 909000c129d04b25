"""The ``search`` use case: sentences in, the best moments of the whole archive out.

``SearchOptions`` (``r2cli.app.search_common``) owns every default and rule of a search (the CLI's
flags and the job file's ``[search]`` keys are its fields); ``run_search`` is the one library call
both make. The stages themselves (candidates, grounding, merge, outputs) are
``r2cli.inference.search``; the run's lifecycle (weights, models, the preset's fps and windows, the
run folder, resume, the catalog's run record, ``run.json`` last) is ``r2cli.app.model_run``; this
module adds what is a search's own: the queries, the plan of windows and the coarse stage, and the
query batches streamed through the stages.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.model_run import FORMATS, RunLog, RunRecord, publish_run, require_usable, resolve_windows  # noqa: F401
from r2cli.app.search_common import (  # noqa: F401  (the names callers import from r2cli.app.search)
    DEFAULT_CANDIDATES,
    FILE_KEYS,
    PRECISIONS,
    SearchOptions,
    SearchResult,
    clip_spec_rule,
    default_candidates,
    load_coarse_index,
    search_result,
)
from r2cli.app.search_visual import resolve_clip_specs, run_visual_search
from r2cli.app.steps import JobContext, StepResult
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.app.model_run import OpenRun, RunOutput
    from r2cli.paths import Workspace

OPTIONS = SearchOptions


def weights_needed(options: SearchOptions) -> list[tuple[str, str | None]]:
    """The weights a ``[search]`` step loads, as ``(kind, spec)`` (see ``check_all_weights``)."""
    return [("clip", options.clip_weights), ("checkpoint", options.checkpoint)]


def run_search(workspace: "Workspace", options: SearchOptions, *, reporter: Reporter = NULL_REPORTER) -> SearchResult:
    """Search the archive for every query and publish the run's outputs.

    Raises:
        UsageError: an option breaks its rule.
        InputError: the query file is unusable, the archive is empty, nothing matches the filters,
            no selected video has features, or the outputs cannot be written (a full disk).
        FolderBusyError: another run writes to ``out`` (after ``wait`` seconds).
        CatalogError: there is no catalog.
        MissingWeightsError: CLIP weights and/or the checkpoint are missing (all named at once,
            before any work).
        CheckpointError: the checkpoint does not fit the CLIP weights.
    """
    from r2cli.app.model_run import prepare
    from r2cli.app.report import report_run_folder
    from r2cli.outputs import runs
    from r2cli.inference.query_files import open_queries

    options.validate()
    if options.image or options.clip:  # search by picture: CLIP similarity only (r2cli.app.search_visual)
        return run_visual_search(workspace, options, reporter=reporter)
    log = RunLog(reporter)
    queries = open_queries(options.queries, options.queries_file)
    prepared = prepare(workspace, options, log)
    models = prepared.models
    with log.timed("features_s"):
        plan, skipped, settings = _plan(workspace, options, models, prepared.records, log.warn, prepared.windows)
    key = runs.settings_key({
        "settings": settings,
        "queries": queries.digest,
        "model": {k: v for k, v in models.info.items() if k != "device"},
        "features": [(v.record.id, v.record.fingerprint, v.features.num_clips) for v in plan.videos],
    })
    record = RunRecord(kind="search", key=key, settings=settings, file_keys=FILE_KEYS,
                       wanted=("moments.parquet",) + (("saliency.parquet",) if options.save_saliency else ()),
                       queries=runs.query_record(queries), model=models.info)
    work = _TextSearch(workspace=workspace, options=options, queries=queries, models=models, plan=plan,
                       skipped=skipped, preset=settings["preset"], log=log)
    published = publish_run(workspace, options, record, log, work.run)
    result = search_result(published, log, skipped=skipped, model=models.info, settings=settings)
    result.files.update(report_run_folder(result.out_dir, options.report, reporter))
    return result


def _plan(workspace, options: SearchOptions, models, records, warn, windows=None):
    """Features, windows and the settings record of a search (``r2cli.app.predict`` plans with it too)."""
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.search import bad_window_warning, open_features, plan_archive
    from r2cli.inference.windows import PostProcess

    windows = windows or resolve_windows(models.preset, options)
    defaults, fps = windows.defaults, windows.fps
    post = PostProcess(unit=defaults.unit, nms_type=defaults.nms_type, nms_threshold=defaults.nms_threshold,
                       nms_sigma=defaults.nms_sigma, max_moments=models.model.config.max_num_moment)
    feature_settings = FeatureSettings.for_tower(models.tower, fps=fps, k=models.model.config.k)
    found, skipped = open_features(workspace, records, feature_settings, feature_dtype=options.feature_dtype)
    require_usable(len(found), skipped, len(records), "searched", warn)
    plan = plan_archive(found, fps=fps, window_clips=windows.window_clips, stride_clips=windows.stride_clips,
                        post=post)
    cut = windows.cut_warning(max(v.features.num_clips for v in plan.videos))
    if cut:
        warn(cut)
    for w in sorted(plan.bad_windows):
        warn(bad_window_warning(plan, w))
    coarse = _coarse_stage(workspace, options, models, plan, feature_settings, warn)
    settings = {
        "videos": list(options.videos),
        "min_duration": options.min_duration,
        "max_duration": options.max_duration,
        "path_contains": options.path_contains,
        "candidates": options.candidates,
        "top_k": options.top_k,
        "min_score": options.min_score,
        "preset": defaults.preset,
        "fps": fps,
        "unit": defaults.unit,
        "nms": {"type": defaults.nms_type, "threshold": defaults.nms_threshold, "sigma": defaults.nms_sigma},
        **windows.record(),
        "format": options.format,
        "precision": options.precision,
        "save_saliency": options.save_saliency,
        "feature_dtype": options.feature_dtype,
        # how the searched videos' layer tokens were stored (auto prefers float16 per video)
        "feature_dtypes_used": _count_dtypes(plan),
        "coarse": coarse.record(),
    }
    plan.coarse = coarse
    return plan, skipped, settings


def _count_dtypes(plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for video in plan.videos:
        counts[video.features.settings.dtype] = counts.get(video.features.settings.dtype, 0) + 1
    return dict(sorted(counts.items()))


def _coarse_stage(workspace, options: SearchOptions, models, plan, feature_settings, warn):
    """Exact scan or the approximate coarse index (#19.1): ``choose_coarse_stage`` decides."""
    from r2cli.inference.search import choose_coarse_stage

    index = load_coarse_index(workspace, options, [video.features for video in plan.videos], feature_settings, warn)
    budget = options.candidates or default_candidates(models.info["device"])
    return choose_coarse_stage(plan, index, candidates=budget, exact=options.exact)


@dataclass
class _Tally:
    """What the query batches add up to."""

    pairs: int = 0
    moments: int = 0
    unplayable: int = 0
    truncated: int = 0
    candidate_windows: set[int] | None = None


@dataclass
class _TextSearch:
    """A search's own stages inside the run (``run``): the query batches through the coarse stage,
    R2-Tuning (local or on Ray), the merge and the staged outputs."""

    workspace: "Workspace"
    options: SearchOptions
    queries: Any  # r2cli.inference.query_files.QuerySet
    models: Any  # r2cli.inference.models.Models
    plan: Any  # r2cli.inference.search.ArchivePlan
    skipped: list
    preset: str  # the preset whose rules the run follows (run.json's settings.preset)
    log: RunLog

    def run(self, run: "OpenRun") -> "RunOutput":
        from r2cli.app.model_run import RunOutput, grounder, skipped_records
        from r2cli.inference.search import SearchWriter

        options, plan = self.options, self.plan
        ground = grounder(run, self.workspace, self.models, options, chunk_windows=options.chunk_windows,
                          precision=options.precision)
        metadata = {"run_id": run.run_id, "preset": self.preset, "model": self.models.info["checkpoint_id"]}
        writer = SearchWriter(run.folder, run_id=run.run_id, metadata=metadata, saliency=options.save_saliency,
                              official=options.format == "official", has_boundaries=ground.has_boundaries)
        with self.log.timed("search_s"):
            try:
                tally = self._batches(run.run_id, ground, writer)
                names = writer.close()
            except BaseException:
                writer.abort()
                raise
        manifest = {
            "skipped": skipped_records(self.skipped),
            "skipped_windows": [{"window": plan.window_label(w), "video_id": plan.videos[plan.windows[w][0]].record.id,
                                 "reason": why} for w, why in sorted(plan.bad_windows.items())],
        }
        return RunOutput(names=names, counts=self._counts(tally), manifest=manifest)

    def _batches(self, run_id: str, ground: Any, writer: Any) -> _Tally:
        from r2cli.inference.search import bad_window_warning, search_batch

        options, plan, models, log, queries = self.options, self.plan, self.models, self.log, self.queries
        single = queries.count <= options.query_batch
        budget = options.candidates or default_candidates(models.info["device"])
        tally = _Tally(candidate_windows=set())
        log.reporter.begin("queries", total=queries.count, unit="queries")
        for batch in queries.batches(options.query_batch):
            result = search_batch(
                plan, models.tower, ground, batch, k=models.model.config.k, candidates=budget,
                top_k=options.top_k, min_score=options.min_score, run_id=run_id,
                model_id=models.info["checkpoint_id"], preset=self.preset,
                whole_videos=options.format == "official", reporter=log.reporter if single else NULL_REPORTER,
                coarse=plan.coarse,
            )
            for w in result.new_bad_windows:
                log.warn(bad_window_warning(plan, w))
            for query, cut in zip(batch, result.truncated):
                if cut:
                    log.warn(f"query {query.qid} ({query.where}) is longer than CLIP's "
                             f"{models.tower.context_length} tokens; it was truncated")
            for name, seconds in result.timings.items():
                log.add(name, seconds)
            with log.timed("write_s"):
                writer.write(result, plan)
            tally.pairs += result.pairs
            tally.moments += len(result.moments)
            tally.unplayable += result.unplayable
            tally.truncated += sum(result.truncated)
            tally.candidate_windows |= result.candidate_windows
            log.reporter.advance("queries", len(batch), moments=tally.moments)
        log.reporter.end("queries")
        return tally

    def _counts(self, tally: _Tally) -> dict[str, Any]:
        plan, queries, skipped = self.plan, self.queries, self.skipped
        whole = sum(1 for v in plan.videos if len(v.windows) == 1)
        counts = {
            "queries": queries.count,
            "videos_selected": len(plan.videos) + len(skipped),
            "videos_searched": len(plan.videos),
            "videos_skipped": len(skipped),
            "videos_whole": whole,
            "videos_windowed": len(plan.videos) - whole,
            "windows": len(plan.windows),
            "windows_skipped": len(plan.bad_windows),
            "candidate_windows": len(tally.candidate_windows or ()),
            "pairs": tally.pairs,
            "moments": tally.moments,
            "moments_unplayable": tally.unplayable,
            "truncated_queries": tally.truncated,
        }
        if queries.file is not None:  # how many the file gave: a file cut short by a stray quote shows here
            counts["queries_read_from_file"] = queries.count - len(queries.texts)
        return counts


def job_step(workspace: "Workspace", table: Mapping[str, Any], context: JobContext, *,
             reporter: Reporter = NULL_REPORTER) -> StepResult:
    """The ``[search]`` table of a job: ``run_search`` into ``<job out>/search``, skipped when a run
    with the same settings finished there (unless the job is forced)."""
    options = SearchOptions.from_table(table, where=context.where("search"), base=context.base,
                                       overrides={"out": context.out_dir / "search", "resume": not context.force})
    if options.clip and context.base is not None:  # a clip's video is relative to the job file, as paths are
        options = options.replace(clip=resolve_clip_specs(options.clip, Path(context.base)))
    started = time.perf_counter()
    result = run_search(workspace, options, reporter=reporter)
    counts = result.counts
    if result.resumed:
        detail = f"outputs for the same settings exist in {result.out_dir} (run {result.run_id}); use --force to redo"
    else:
        detail = (f"{plural(counts.get('queries', 0), 'query', 'queries')} over "
                  f"{plural(counts.get('videos_searched', 0), 'video')}: "
                  f"{plural(counts.get('moments', 0), 'moment')} in {result.out_dir}")
    return StepResult(name="search", status="skipped" if result.resumed else "done", detail=detail,
                      seconds=time.perf_counter() - started,
                      outputs={name: str(path) for name, path in result.files.items()}, counts=dict(counts))


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``1 query``, ``2 queries``, ``0 videos``."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


def search(workspace: "Workspace", queries: list[str] | tuple[str, ...], *, options: SearchOptions | None = None,
           reporter: Reporter = NULL_REPORTER) -> SearchResult:
    """``run_search`` for a list of sentences: ``options`` (defaults when None) with ``queries`` set."""
    base = options or SearchOptions(queries=tuple(queries))
    return run_search(workspace, base.replace(queries=tuple(queries)), reporter=reporter)
