"""The ``index`` use case: bring the catalog up to date with folders of video, then extract features.

``IndexOptions`` owns every default and rule of ``r2cli index`` and of a job's ``[index]`` table;
``run_index`` is the one library call both make. The catalog pass is committed before the CLIP
weights are needed, so a machine without weights still gets an up-to-date catalog and a
one-line ``MissingWeightsError``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r2cli.app.options import MAX_FEATURE_FPS, Options, device_rule, option, ray_address_rule
from r2cli.app.steps import JobContext, StepResult
from r2cli.errors import InputError
from r2cli.features.names import FEATURE_FPS, STORED_DTYPES
from r2cli.media.names import GEOMETRIES, GEOMETRY_DISPLAY
from r2cli.progress import NULL_REPORTER, Reporter

# how `index --watch` notices changes (r2cli.app.watch): chosen per folder by file system, or forced
WATCH_MODES = ("auto", "inotify", "poll")

if TYPE_CHECKING:  # pragma: no cover
    from r2cli.catalog.scan import ScanReport
    from r2cli.features.coarse_index import CoarseIndexReport
    from r2cli.features.extract import ExtractReport
    from r2cli.paths import Workspace


@dataclass(frozen=True)
class IndexOptions(Options):
    """What ``r2cli index`` and a job's ``[index]`` table may set."""

    section = "index"

    paths: tuple[Path, ...] | None = option(None, exists=True, help="Folders (walked recursively) or files.")
    extensions: tuple[str, ...] | None = option(
        None, flag="--ext",
        help="Extensions to index (repeat or comma-separate). Default: common video types.")
    ignore: tuple[str, ...] = option(
        (), help="Glob on names or relative paths to skip, e.g. '*.part', 'proxies' (repeat).")
    dry_run: bool = option(False, job=False, help="Show what would change; probe and write nothing.")
    strict: bool = option(False, help="Fail (exit code 1) when any path or any video's features failed.")
    wait: float = option(0.0, minimum=0, help="Seconds to wait for another process writing the catalog.")
    features: bool = option(
        True, help="After the scan, extract CLIP features of every readable video (needs CLIP weights).")
    clip_weights: str | None = option(
        None, help="CLIP weights: a local OpenAI-format file or a registry tag. Unset: $R2CLI_CLIP_WEIGHTS, "
                   "else OpenAI ViT-B/32 from the weights cache.")
    fps: float = option(FEATURE_FPS, above=0, maximum=MAX_FEATURE_FPS,
                        help="Clips (sampled frames) per second of the features; the default is the official features' rate.")
    geometry: str = option(
        GEOMETRY_DISPLAY, choices=GEOMETRIES,
        help="How frames are scaled before the centre crop: display (pixel aspect and rotation honoured) or "
             "official (the coded size, as the official extractor). A separate feature set.")
    device: str = option("auto", check=device_rule,
                         help="Where CLIP runs: auto (a GPU when present), cpu, cuda or cuda:N.")
    feature_dtype: str = option(
        "float16", choices=STORED_DTYPES,
        help="How layer tokens are stored: float16 (555 MB per video-hour, reproduces the official numbers) or "
             "int8 with per-channel scales (289 MB; see README). A separate feature set.")
    batch_size: int | None = option(None, minimum=1,
                                    help="Frames per CLIP forward pass. Default: 16 on CPU, 256 on GPU.")
    verify: bool = option(
        False, help="Check every stored feature file against its checksum and shapes; extract failing ones again.")
    ray: str | None = option(
        None, check=ray_address_rule,
        help="Extract on Ray: 'local' starts an instance on this machine, HOST:PORT joins a cluster whose nodes "
             "all mount the workspace. Default: $R2CLI_RAY_ADDRESS, else no Ray (one process).")
    coarse_index: bool = option(
        True, help="Keep an approximate coarse index of the clip embeddings in the feature store (search uses it "
                   "above --coarse-index-min-clips; see docs/scale.md).")
    coarse_index_min_clips: int = option(
        36_000, minimum=1,
        help="Build the coarse index only when the archive holds at least this many clips (36,000: 20 video-hours "
             "at 0.5 fps; below, an exact scan is as fast).")
    rebuild_coarse_index: bool = option(
        False, help="Rebuild (retrain) the coarse index from scratch instead of updating it.")
    # The watch is command-line only: a job's steps run once, in turn, and the job ends; a watch is a
    # service (docs/r2cli-watch.service runs `r2cli index --watch`).
    watch: bool = option(
        False, job=False, help="Keep running: index the folders, then index new and changed files as they settle, mark "
                    "deleted ones missing, follow renames (stop with Ctrl-C or SIGTERM).")
    settle: float = option(
        10.0, above=0, maximum=86400, job=False,
        help="With --watch: seconds a file's size and mtime must stay the same before it is indexed "
             "(a file still being copied is never read).")
    watch_mode: str = option(
        "auto", choices=WATCH_MODES, job=False,
        help="With --watch: how changes are noticed. auto: inotify (the OS's native events) on local disks, "
             "polling on network file systems (NFS, SMB/CIFS, sshfs ...); inotify; or poll.")
    poll_interval: float = option(
        5.0, above=0, maximum=3600, job=False,
        help="With --watch: seconds between two looks at a polled folder (each look lists the whole tree).")

    def check(self) -> tuple[tuple[str, ...], str] | None:
        if self.paths is None:
            return ("paths",), "{0} is required (the folders or files to index)"
        if not self.paths:
            return ("paths",), "{0} must list at least one folder or file"
        if self.rebuild_coarse_index and not self.coarse_index:
            return ("rebuild_coarse_index", "coarse_index"), "{0} cannot be combined with --no-coarse-index"
        if self.verify and not self.features:
            return ("verify", "features"), "{0} needs {1} (it re-extracts what fails)"
        if not self.watch:
            for name in ("settle", "watch_mode", "poll_interval"):
                if getattr(self, name) != type(self).default(name):
                    return (name, "watch"), "{0} needs {1}"
        if self.watch and self.dry_run:
            return ("dry_run", "watch"), "{0} cannot be combined with {1} (a watch writes the catalog)"
        if self.watch and self.strict:
            return ("strict", "watch"), ("{0} cannot be combined with {1} (a watch does not end on a failed file; "
                                         "failures are logged and recorded in the catalog)")
        return None


OPTIONS = IndexOptions


class IndexFailedError(InputError):
    """``--strict``: some path or some video's features failed (everything else is kept)."""


@dataclass
class IndexResult:
    """What ``run_index`` did: the catalog scan and, unless switched off, the feature extraction."""

    options: IndexOptions
    scan: "ScanReport"
    features: "ExtractReport | None"  # None with features=False or a dry run
    coarse: list["CoarseIndexReport"] = field(default_factory=list)  # one per feature-settings key (#19.1)

    @property
    def failed(self) -> int:
        """Paths that failed the scan plus videos whose features failed."""
        return self.scan.errors + (self.features.videos_failed if self.features is not None else 0)

    def strict_error(self) -> IndexFailedError | None:
        """The ``--strict`` error when something failed (None otherwise, or without ``strict``)."""
        if not self.options.strict or not self.failed:
            return None
        parts: list[str] = []
        firsts: list[str] = []
        if self.scan.errors:
            parts.append(f"{self.scan.errors} of {_count(self.scan.seen, 'path')} failed")
            firsts += [f"{e.path}: {e.error}" for e in self.scan.file_errors[:1]]
        if self.features is not None and self.features.videos_failed:
            parts.append(f"features of {self.features.videos_failed} of "
                         f"{_count(self.features.videos_total, 'video')} failed")
            firsts += [f"{f.path}: {f.error}" for f in self.features.failures[:1]]
        return IndexFailedError(", ".join(parts) + " (--strict)" + (f"; first: {firsts[0]}" if firsts else ""))

    def to_dict(self) -> dict[str, Any]:
        """The scan report's fields plus ``"features"`` (the ``ExtractReport`` dict, or null)."""
        data = self.scan.to_dict()
        data["features"] = self.features.to_dict() if self.features is not None else None
        data["coarse_index"] = [report.to_dict() for report in self.coarse]
        return data


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def weights_needed(options: IndexOptions) -> list[tuple[str, str | None]]:
    """The weights an ``[index]`` step loads (the CLIP weights, when it extracts features)."""
    return [("clip", options.clip_weights)] if options.features and not options.dry_run else []


def index_archive(paths: Sequence[str | os.PathLike], workspace: "Workspace", *,
                  extensions: Iterable[str] | None = None, reporter: Reporter = NULL_REPORTER,
                  **options: Any) -> IndexResult:
    """``r2cli index`` as a library call: ``run_index`` with these options.

    Kept for scripts and benchmarks; ``options`` are fields of ``IndexOptions``. (It lived in
    ``r2cli.features.extract`` until #23: the feature layer does not import the use case.)
    """
    if "lock_timeout" in options:
        options["wait"] = options.pop("lock_timeout")
    index_options = IndexOptions(paths=tuple(Path(os.fspath(p)) for p in paths),
                                 extensions=tuple(extensions) if extensions else None, **options)
    index_options.validate()
    return run_index(workspace, index_options, reporter=reporter)


def ray_log_path(workspace: "Workspace", what: str) -> Path:
    """Where a command's Ray logs go when it has no run folder of its own: ``<workspace>/logs/<what>-ray-<time>.log``."""
    return workspace.root / "logs" / f"{what}-ray-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


def ray_runner(address: str, *, clip_weights: Any, device: str, precision: str = "fp32",
               segment_seconds: float | None = None, log_file: Path | None = None) -> Any:
    """The ``runner`` of ``extract_features`` that decodes and runs CLIP on Ray at ``address``
    (``"local"`` or a cluster): the Ray-or-local decision of indexing is made here, in the use case (#23).
    ``segment_seconds``: videos longer than this are decoded in segments of this length; Ray's own
    logs and notices go to ``log_file`` instead of the terminal."""

    def run_on_ray(run: Any, items: list, *, batch_size: int, threads: int, reporter: Reporter) -> Any:
        from r2cli.distributed.index import SEGMENT_SECONDS, extract_on_ray
        from r2cli.distributed.session import ray_session
        from r2cli.features.extract import STAGE

        with ray_session(address, shared_paths=[run.store.root], log_file=log_file):
            return extract_on_ray(run, items, clip_weights=clip_weights, device=device, precision=precision,
                                  batch_size=batch_size, decode_threads=threads,
                                  segment_seconds=segment_seconds or SEGMENT_SECONDS, reporter=reporter, stage=STAGE)

    return run_on_ray


def run_index(workspace: "Workspace", options: IndexOptions, *, reporter: Reporter = NULL_REPORTER,
              hold: Sequence[str] = (), gone: Sequence[str] = (),
              features_off: str = "--no-features") -> IndexResult:
    """Scan ``options.paths`` into the catalog, then extract features of the videos found there.

    ``hold`` and ``gone`` are for a folder watch (``r2cli.app.watch``), which calls this once per
    batch of settled files: ``hold`` are files still being written (left alone), ``gone`` are
    paths it saw disappear (their rows are marked missing); ``options.paths`` may then be empty.
    ``options.watch`` is not looked at here. ``features_off`` is how the caller's user turns
    features off (the flag; a job names its key), named when the weights are missing.

    Raises:
        UsageError, CatalogBusyError, CatalogError, MissingDependencyError: as ``scan_archive``.
        MissingWeightsError: features are on and the CLIP weights are not available (the scan is kept).
        ClusterError: ``options.ray`` names a cluster address nothing answers at (checked before any
            work, even when there is nothing to extract).
    """
    from r2cli.catalog.scan import scan_archive
    from r2cli.distributed.session import LOCAL, probe_address, resolve_ray_address
    from r2cli.errors import MissingWeightsError
    from r2cli.features.extract import extract_features

    paths = [str(p) for p in options.paths or ()]
    ray = resolve_ray_address(options.ray)
    if options.features and ray is not None and ray not in (LOCAL, "auto"):
        probe_address(ray)  # an unreachable cluster is an error whatever the work (#22.9)
    scan = scan_archive(paths, workspace, extensions=options.extensions, ignore=options.ignore,
                        dry_run=options.dry_run, reporter=reporter, lock_timeout=options.wait, hold=hold, gone=gone)
    if not options.features or options.dry_run or not paths:
        return IndexResult(options=options, scan=scan, features=None)
    log_file = None if ray is None else ray_log_path(workspace, "index")
    try:
        extracted = extract_features(
            workspace, clip_weights=options.clip_weights, fps=options.fps, geometry=options.geometry,
            device=options.device, feature_dtype=options.feature_dtype, batch_size=options.batch_size,
            verify=options.verify,
            runner=None if ray is None else ray_runner(ray, clip_weights=options.clip_weights, device=options.device,
                                                       log_file=log_file),
            paths=[*scan.roots, *scan.outside_roots], lock_timeout=options.wait, reporter=reporter,
        )
    except MissingWeightsError:
        reporter.warn(
            f"catalog updated ({_count(scan.seen, 'path')}: {scan.new} new, {scan.updated} updated, "
            f"{scan.moved} moved, {scan.errors} errors); features were not extracted "
            f"(use {features_off} to index without them)"
        )
        raise
    if log_file is not None and log_file.exists():  # Ray ran: say where its own output went
        extracted.ray_log = str(log_file)
    coarse = []
    if options.coarse_index:
        from r2cli.features.coarse_index import update_workspace_indexes

        # no progress stage: it could only count keys, and said "0 keys" on every run; the CLI prints
        # one line per index that was built or updated
        coarse = update_workspace_indexes(workspace, min_clips=options.coarse_index_min_clips,
                                          rebuild=options.rebuild_coarse_index, verify=options.verify)
        for report in coarse:
            if report.retrained or report.problems:
                reporter.warn(f"coarse index {report.settings_key}: {report.reason}")
    return IndexResult(options=options, scan=scan, features=extracted, coarse=coarse)


def job_step(workspace: "Workspace", table: Mapping[str, Any], context: JobContext, *,
             reporter: Reporter = NULL_REPORTER) -> StepResult:
    """A job's ``[index]`` table: the same options and the same ``run_index`` as ``r2cli index``.

    Indexing is incremental by itself (unchanged files are not probed again, finished features not
    extracted again), so the step always runs; ``strict`` makes a failure the step's error.
    """
    options = IndexOptions.from_table(table, where=context.where("index"), base=context.base)
    started = time.perf_counter()
    result = run_index(workspace, options, reporter=reporter,
                       features_off=f"features = false in {context.where('index')}")
    scan = result.scan
    counts: dict[str, Any] = {"new": scan.new, "updated": scan.updated, "unchanged": scan.unchanged,
                              "moved": scan.moved, "missing": scan.missing, "errors": scan.errors,
                              "ignored": scan.ignored}
    detail = f"{_count(scan.seen, 'path')} ({scan.new} new, {scan.updated} updated, {scan.errors} errors)"
    if result.features is not None:
        report = result.features
        counts.update(features_extracted=report.videos_extracted, features_skipped=report.videos_skipped,
                      features_failed=report.videos_failed, features_repaired=report.videos_repaired)
        detail += (f"; features: {report.videos_extracted} extracted, {report.videos_skipped} up to date, "
                   f"{report.videos_failed} failed")
    problem = result.strict_error()
    status = "error" if problem is not None else "done"
    if problem is not None:
        detail = f"{detail}; {problem}"
    changed = any(counts.get(key) for key in ("new", "updated", "moved", "missing", "features_extracted",
                                                "features_repaired"))
    return StepResult(name="index", status=status, detail=detail, seconds=time.perf_counter() - started,
                      outputs={"features": str(workspace.features_dir)}, counts=counts, changed=changed)
