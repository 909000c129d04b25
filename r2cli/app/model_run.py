"""One model run's lifecycle, shared by search, summarize, search by picture and duplicates (#23).

A run goes through the same steps whichever use case it serves; each use case adds only what is its
own (its queries, its stages, its outputs):

1. prepare (``prepare``): the weights are checked (all missing ones named at once), the videos
   selected from the catalog, the models loaded, the checkpoint's preset resolved into fps and
   windows (``resolve_windows``: the window rules of ``r2cli.inference.windows``, errors naming the
   flag or the job key the value came from);
2. the use case opens the features (``require_usable`` warns about the skipped videos and refuses a
   run with none), plans its work and computes the settings key of its run;
3. publish (``publish_run``): a run folder (``r2cli.outputs.publish.RunFolder``), a finished run
   with the same key reused (``resume``), the catalog's run record started and ended, the use
   case's stages run inside (``OpenRun``: the folder, and R2-Tuning local or on Ray with
   ``grounder``), then ``run.json`` written last and everything published at once.

``ModelRunOptions`` holds the option fields every R2-Tuning run shares (preset, weights, device,
windows, Ray ...); ``r2cli.app.options.RunFolderOptions`` those of any run folder.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.options import MIN_SPAN_S, RunFolderOptions, device_rule, option, ray_address_rule
from r2cli.errors import InputError
from r2cli.inference.windows import MAX_WINDOW_CLIPS, stride_problem, window_clips_problem
from r2cli.progress import NULL_REPORTER, Reporter

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.inference.models import Models, PresetDefaults
    from r2cli.outputs.publish import RunFolder
    from r2cli.paths import Workspace

FORMATS = ("parquet", "official")


@dataclass(frozen=True)
class ModelRunOptions(RunFolderOptions):
    """The options of every run of R2-Tuning over the archive (search and summarize derive from it)."""

    preset: str | None = option(None, help="Dataset preset (fps, rounding, NMS, windows). Default: the checkpoint's.")
    checkpoint: str | None = option(
        None, help="Head checkpoint file or registry name. Default: $R2CLI_CHECKPOINT, else the registry default.")
    clip_weights: str | None = option(
        None, help="CLIP weights: a local OpenAI-format file or a registry tag (the same the index used). "
        "Default: $R2CLI_CLIP_WEIGHTS, else OpenAI ViT-B/32.")
    device: str = option("auto", help="Where the models run: auto (a GPU when present), cpu, cuda or cuda:N.",
                         check=device_rule)
    window: float | None = option(
        None, help="Videos up to this long (s) are grounded whole, longer ones in windows this long. "
        "Default: the preset's (the length its checkpoint was trained on).", minimum=MIN_SPAN_S)
    stride: float | None = option(
        None, help="Distance between window starts (s). Default: the preset's, or half of --window.", minimum=MIN_SPAN_S)
    format: str = option("parquet", help="parquet, or official (also the official submission JSON Lines).",
                         choices=FORMATS)
    batch_size: int | None = option(None, help="Window-query pairs per forward pass.", minimum=1)
    ray: str | None = option(
        None, check=ray_address_rule,
        help="Run R2-Tuning on Ray actors: 'local' starts an instance on this machine, HOST:PORT joins a "
             "cluster whose nodes mount the workspace. Default: $R2CLI_RAY_ADDRESS, else this process.")

    def check(self) -> tuple[tuple[str, ...], str] | None:
        if self.window is not None and self.stride is not None:
            problem = stride_problem(self.window, self.stride)
            if problem is not None:
                return problem
        return super().check()


# -- the log of a run: warnings and timings ---------------------------------------------------------


@dataclass
class RunLog:
    """What a run tells as it goes: warnings (kept for the result and reported) and stage timings."""

    reporter: Reporter = NULL_REPORTER
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage ("catalog_s", ...)
    started: float = field(default_factory=time.perf_counter)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.reporter.warn(message)

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the time the block takes to ``timings[name]``."""
        tick = time.perf_counter()
        yield
        self.add(name, time.perf_counter() - tick)

    def finish(self) -> dict[str, float]:
        """The timings with ``total_s``, rounded as ``run.json`` records them."""
        self.timings["total_s"] = time.perf_counter() - self.started
        self.timings = {name: round(value, 4) for name, value in self.timings.items()}
        return self.timings


# -- 1. prepare: weights, videos, models, preset, windows -------------------------------------------


@dataclass(frozen=True)
class RunWindows:
    """The fps and windows a run uses: the preset's, or the options' (``resolve_windows``)."""

    defaults: "PresetDefaults"  # what the preset decides (fps, rounding, NMS), windows in seconds
    window_clips: int  # clips per window, at most MAX_WINDOW_CLIPS
    stride_clips: int  # clips between window starts
    asked_clips: int  # clips per window before the cut to MAX_WINDOW_CLIPS

    @property
    def fps(self) -> float:
        return self.defaults.fps

    def record(self) -> dict[str, Any]:
        """The window settings ``run.json`` records."""
        return {"window_s": self.defaults.window_s, "stride_s": self.defaults.stride_s,
                "window_source": self.defaults.window_source, "window_clips": self.window_clips,
                "stride_clips": self.stride_clips}

    def cut_warning(self, longest_clips: int) -> str | None:
        """The warning when a video longer than the model's limit is grounded in shorter windows."""
        if self.asked_clips <= self.window_clips or longest_clips <= self.window_clips:
            return None
        return (f"--window {self.defaults.window_s:g} s is {self.asked_clips} clips at {self.fps:g} fps; the model "
                f"takes at most {MAX_WINDOW_CLIPS}, so longer videos are grounded in windows of "
                f"{MAX_WINDOW_CLIPS} clips")


def resolve_windows(preset: Any, options: ModelRunOptions) -> RunWindows:
    """The run's windows: ``options.window``/``stride`` over the preset's, in clips at its fps.

    Raises:
        UsageError (InputError for options from a job file): the stride exceeds the window (the
            preset's, when only the stride was given), or the window is shorter than
            ``MIN_WINDOW_CLIPS`` clips; the message names the flag or the job key.
    """
    from r2cli.inference.models import preset_defaults
    from r2cli.inference.windows import window_sizes

    own = preset_defaults(preset)  # the preset's own windows, which keep the stride rule
    window_s = float(options.window) if options.window is not None else own.window_s
    problem = None
    if options.stride is not None and options.window is None:
        problem = stride_problem(window_s, options.stride, window_field=f"the window of preset {preset.name}")
    problem = problem or window_clips_problem(window_s, own.fps)
    if problem is not None:
        raise options.error_for(problem)
    defaults = preset_defaults(preset, window_s=options.window, stride_s=options.stride)
    name_of, _ = options.value_source()
    window_clips, stride_clips = window_sizes(defaults.window_s, defaults.stride_s, defaults.fps, name_of=name_of)
    kept = min(window_clips, MAX_WINDOW_CLIPS)
    return RunWindows(defaults=defaults, window_clips=kept, stride_clips=min(stride_clips, kept),
                      asked_clips=window_clips)


@dataclass
class Prepared:
    """What ``prepare`` found and loaded."""

    records: list[Any]  # the selected catalog videos (r2cli.catalog.selection records)
    models: "Models"  # CLIP, the R2-Tuning head, its preset and info
    windows: RunWindows
    feature_settings: Any  # r2cli.features.store.FeatureSettings the run reads


def prepare(workspace: "Workspace", options: ModelRunOptions, log: RunLog, *, checkpoint: str | None = None,
            select: Callable[["Workspace", Any], list[Any]] | None = None) -> Prepared:
    """Check the weights, select the videos, load the models and resolve the windows.

    ``checkpoint`` replaces ``options.checkpoint`` (summarize's preset heads); ``select`` picks
    the videos (default: the options' filters, ``require_videos``).

    Raises:
        MissingWeightsError: CLIP weights and/or the checkpoint are missing (all named at once).
        CatalogError: there is no catalog.
        InputError: the archive is empty or nothing matches the filters.
        CheckpointError: the checkpoint does not fit the CLIP weights.
        UsageError: a window rule is broken (see ``resolve_windows``).
    """
    from r2cli.catalog.selection import require_videos
    from r2cli.features.store import FeatureSettings
    from r2cli.inference.models import check_weights, load_models

    checkpoint = options.checkpoint if checkpoint is None else checkpoint
    check_weights(options.clip_weights, checkpoint)
    with log.timed("catalog_s"):
        records = select(workspace, options) if select else require_videos(workspace, options.video_filter())
    with log.timed("model_s"):
        models = load_models(clip_weights=options.clip_weights, checkpoint=checkpoint, preset=options.preset,
                             device=options.device, reporter=log.reporter)
    windows = resolve_windows(models.preset, options)
    feature_settings = FeatureSettings.for_tower(models.tower, fps=windows.fps, k=models.model.config.k)
    return Prepared(records=records, models=models, windows=windows, feature_settings=feature_settings)


def require_usable(usable: int, skipped: list[Any], selected: int, verb: str, warn: Callable[[str], None]) -> None:
    """Warn about the videos without usable features; refuse a run where none is left.

    Raises:
        InputError: ``usable`` is 0 (the message gives the first video's reason).
    """
    if skipped:
        shown = [Path(item.path).name for item in skipped[:5]]
        more = f" and {len(skipped) - len(shown)} more" if len(skipped) > len(shown) else ""
        warn(f"{len(skipped)} of {selected} videos skipped (no usable features): {', '.join(shown)}{more}")
    if not usable:
        reason = skipped[0].reason if skipped else "no features"
        raise InputError(f"none of the {selected} selected videos can be {verb} ({reason})")


# -- 2. publish: run folder, resume, run record, manifest -------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """What the catalog and ``run.json`` record of a run, and what a reusable finished run holds."""

    kind: str  # "search", "summarize" or "duplicates": the catalog's run kind and run.json's
    key: str  # the settings key (r2cli.outputs.runs.settings_key): equal settings, equal outputs
    settings: dict[str, Any]  # run.json's settings
    file_keys: dict[str, str]  # staged file name -> its key in the result's files ("moments.parquet": "moments")
    wanted: tuple[str, ...]  # the files a finished run in --out must hold to be reused
    queries: Any = None  # the catalog's and run.json's queries (None: a run without queries)
    model: dict[str, Any] | None = None  # the models' info (None: no model)
    resumable: bool = True  # False: never reuse a finished run (summarize renders a reel)


@dataclass
class OpenRun:
    """A run in progress: its id and folder, the outputs are staged in ``folder``."""

    run_id: str
    out_dir: Path
    folder: "RunFolder"
    stack: contextlib.ExitStack  # closes what the run opened (a Ray session) when it ends


@dataclass
class RunOutput:
    """What a use case's stages give the publish step."""

    names: list[str]  # the files staged in the folder
    counts: dict[str, Any]  # run.json's and the catalog's counts
    manifest: dict[str, Any] = field(default_factory=dict)  # the use case's own run.json keys ("videos", "skipped" ...)
    other_files: dict[str, str] = field(default_factory=dict)  # run.json "files" outside the folder ("reel")


@dataclass
class Published:
    """A published run, or the finished run with the same settings that was reused."""

    run_id: str
    out_dir: Path
    files: dict[str, Path]  # key -> path ("moments", "manifest" ...)
    counts: dict[str, Any]
    timings: dict[str, float]
    previous: dict[str, Any] | None = None  # the reused run's run.json (then nothing else was done)

    @property
    def resumed(self) -> bool:
        return self.previous is not None


def publish_run(workspace: "Workspace", options: RunFolderOptions, record: RunRecord, log: RunLog,
                stages: Callable[[OpenRun], RunOutput]) -> Published:
    """Run ``stages`` in the run folder and publish it all-or-nothing, ``run.json`` last.

    The run folder is ``options.out`` or ``<workspace>/runs/<run id>``; with ``options.resume``,
    a finished run there with the same settings key is returned as is. The catalog records the run
    from start to end (``done``, or ``failed`` when anything raised).

    Raises:
        FolderBusyError: another run writes to ``out`` (after ``wait`` seconds).
        InputError: the outputs cannot be written (a full disk, a read-only folder).
    """
    from r2cli.catalog import runs as run_records
    from r2cli.outputs import runs
    from r2cli.outputs.publish import RunFolder

    run_id = runs.new_run_id()
    out_dir = Path(options.out) if options.out is not None else workspace.runs_dir / run_id
    with contextlib.ExitStack() as stack, RunFolder(out_dir, wait=options.wait,
                                                    purpose=f"r2cli {record.kind}") as folder:
        if options.resume and options.out is not None and record.resumable:
            previous = runs.finished_run(out_dir, record.key, record.wanted)
            if previous is not None:
                return Published(run_id=str(previous.get("run_id")), out_dir=out_dir, files={}, counts={},
                                 timings={}, previous=previous)
        run_records.start_run(workspace, run_id=run_id, kind=record.kind, settings=record.settings,
                              queries=record.queries, model=record.model, out_dir=out_dir)
        status, counts, files = "failed", {}, {}
        try:
            output = stages(OpenRun(run_id=run_id, out_dir=out_dir, folder=folder, stack=stack))
            counts = output.counts
            timings = log.finish()
            manifest = _manifest(run_id, record, output, timings)
            published = folder.publish(manifest)
            files = {record.file_keys.get(name, name): path for name, path in published.items()}
            status = "done"
        finally:
            run_records.end_run(workspace, run_id=run_id, status=status, timings=log.timings, counts=counts)
    return Published(run_id=run_id, out_dir=out_dir, files=files, counts=counts, timings=log.timings)


def _manifest(run_id: str, record: RunRecord, output: RunOutput, timings: dict[str, float]) -> dict[str, Any]:
    from r2cli.outputs import runs

    manifest: dict[str, Any] = {
        "manifest_version": runs.MANIFEST_VERSION, "run_id": run_id, "kind": record.kind, "status": "done",
        "settings_key": record.key, "settings": record.settings,
    }
    if record.queries is not None:
        manifest["queries"] = record.queries
    if record.model is not None:
        manifest["model"] = record.model
    manifest.update(counts=output.counts, timings=timings)
    manifest.update(output.manifest)
    manifest["files"] = {**{record.file_keys.get(name, name): name for name in output.names}, **output.other_files}
    return manifest


def skipped_records(skipped: list[Any]) -> list[dict[str, Any]]:
    """``run.json``'s ``skipped``: the videos without usable features (dataclasses) as dictionaries."""
    return [asdict(item) for item in skipped]


def grounder(run: OpenRun, workspace: "Workspace", models: "Models", options: ModelRunOptions,
             **settings: Any) -> Any:
    """R2-Tuning for this run: in this process, or on Ray actors with ``--ray`` (or ``$R2CLI_RAY_ADDRESS``).

    ``settings`` are ``Grounder``'s (``batch_size``, ``chunk_windows``, ``precision``). On Ray the
    fine stage runs on actors (``r2cli.distributed.search.RayGrounder``, the same results) and the
    session lasts as long as the run; Ray's own output goes to ``ray.log`` in the run folder.
    """
    from r2cli.distributed.session import resolve_ray_address
    from r2cli.inference.grounding import Grounder

    local = Grounder(models.model, models.info["device"], batch_size=options.batch_size, **settings)
    address = resolve_ray_address(options.ray)
    if address is None:
        return local
    from r2cli.distributed.search import RayGrounder
    from r2cli.distributed.session import ray_session

    run.stack.enter_context(ray_session(address, shared_paths=[workspace.features_dir],
                                        log_file=Path(run.out_dir) / "ray.log"))
    return RayGrounder(local)
