"""Declarative batch jobs: one reviewed TOML file runs index → search → summarize → cut.

A job file has up to five tables (see ``jobs/sample.toml`` for every key with a comment):

- ``[job]``: name, workspace, where outputs go;
- ``[index]``: folders to index (the same library calls as ``r2cli index``);
- ``[search]``: queries (inline or a query file) and search options (as ``r2cli search``);
- ``[summarize]``: videos to summarize and the budget (``r2cli.inference.summarize.summarize``);
- ``[cut]``: which results to cut into clips (needs ``r2cli.media.cut.cut_results``).

Relative paths in a job file are relative to the folder holding the job file, so a job runs
the same from any working directory. A job is resumable like its parts: indexing is incremental,
and a search (summary, cut) whose outputs exist for the same settings is not redone unless
``force``. The library never prints: ``run_job`` returns a ``JobResult``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2cli.errors import InputError, MissingDependencyError, R2Error
from r2cli.progress import NULL_REPORTER, Reporter

SECTIONS = ("job", "index", "search", "summarize", "cut")
FORMATS = ("parquet", "official")


# ----------------------------------------------------------------------------------------------
# Schema: key -> (kind, default). Kinds: str, path, int+, float+, float, bool, [str], [path], choice:a|b


@dataclass(frozen=True)
class Key:
    """One allowed key of a job table."""

    kind: str  # value rule: "str", "path", "int+", "float+", "ratio", "float", "bool", "[str]", "[path]", "device", "format"
    default: Any = None  # value when the key is absent
    required: bool = False  # whether the key must be present


SCHEMA: dict[str, dict[str, Key]] = {
    "job": {
        "name": Key("str"),
        "workspace": Key("path"),
        "out": Key("path"),
    },
    "index": {
        "paths": Key("[path]", required=True),
        "extensions": Key("[str]"),
        "ignore": Key("[str]", default=[]),
        "features": Key("bool", default=True),
        "clip_weights": Key("str"),
        "fps": Key("float+"),
        "device": Key("device", default="auto"),
        "batch_size": Key("int+"),
    },
    "search": {
        "queries": Key("[str]", default=[]),
        "queries_file": Key("path"),
        "videos": Key("[str]", default=[]),
        "candidates": Key("int+"),
        "top_k": Key("int+", default=10),
        "min_score": Key("float"),
        "preset": Key("str", default="qvhighlights"),
        "checkpoint": Key("str"),
        "clip_weights": Key("str"),
        "device": Key("device", default="auto"),
        "window": Key("float+"),
        "stride": Key("float+"),
        "format": Key("format", default="parquet"),
        "batch_size": Key("int+"),
    },
    "summarize": {
        "videos": Key("[str]", default=[]),
        "ratio": Key("ratio", default=0.15),
        "query": Key("str"),
        "preset": Key("str"),
        "checkpoint": Key("str"),
        "clip_weights": Key("str"),
        "device": Key("device", default="auto"),
    },
    "cut": {
        "source": Key("str", default="search"),
        "top": Key("int+", default=5),
        "padding": Key("float", default=0.0),
        "format": Key("cutformat", default="media"),
        "out": Key("path"),
    },
}
CUT_SOURCES = ("search", "summarize")
CUT_FORMATS = ("media", "edl", "otio")


@dataclass(frozen=True)
class Job:
    """A validated job file."""

    path: Path  # the job file
    name: str  # [job].name or the file stem
    base: Path  # folder relative paths are resolved against (the job file's folder)
    workspace: Path | None  # [job].workspace, resolved; None: the caller's workspace
    out: Path | None  # [job].out, resolved; None: <workspace>/runs/job-<name>
    index: dict[str, Any] | None  # validated [index] table (defaults filled), or None
    search: dict[str, Any] | None  # validated [search] table, or None
    summarize: dict[str, Any] | None  # validated [summarize] table, or None
    cut: dict[str, Any] | None  # validated [cut] table, or None

    def steps(self) -> list[str]:
        """Names of the steps this job runs, in order."""
        return [name for name in ("index", "search", "summarize", "cut") if getattr(self, name) is not None]


@dataclass
class StepResult:
    """What one step of a job did."""

    name: str  # "index" | "search" | "summarize" | "cut"
    status: str  # "done" | "skipped" (finished earlier, same settings) | "error" (the step could not run)
    detail: str  # one line for people
    seconds: float = 0.0  # wall time of the step
    outputs: dict[str, str] = field(default_factory=dict)  # named output paths
    counts: dict[str, Any] = field(default_factory=dict)  # numbers worth reporting


@dataclass
class JobResult:
    """The outcome of ``run_job``."""

    job: Job  # the job that ran
    run_id: str  # id of the job's run record in the catalog
    out_dir: Path  # where the job's outputs went
    steps: list[StepResult]  # one per configured step, in order
    seconds: float  # total wall time

    @property
    def ok(self) -> bool:
        """True when no step ended in error."""
        return all(step.status != "error" for step in self.steps)


# ----------------------------------------------------------------------------------------------
# Loading and validation


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise MissingDependencyError("reading job files on Python 3.10 needs tomli: pip install tomli") from None
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"job file {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read job file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8; save the job file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None


def _check_value(where: str, kind: str, value: Any, base: Path) -> Any:
    def fail(rule: str) -> InputError:
        return InputError(f"{where} {rule}, got {value!r}")

    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise fail("must be a non-empty string")
        return value
    if kind == "path":
        if not isinstance(value, str) or not value.strip():
            raise fail("must be a path (a non-empty string)")
        return _resolve(base, value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail("must be true or false")
        return value
    if kind == "int+":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise fail("must be an integer >= 1")
        return value
    if kind in ("float+", "float", "ratio"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("must be a number")
        if kind == "float+" and not value > 0:
            raise fail("must be > 0")
        if kind == "ratio" and not 0 < value <= 1:
            raise fail("must be in (0, 1]")
        return float(value)
    if kind in ("[str]", "[path]"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise fail("must be a list of non-empty strings")
        return [_resolve(base, v) for v in value] if kind == "[path]" else list(value)
    if kind == "device":
        if not isinstance(value, str) or not (value in ("auto", "cpu", "cuda", "mps") or value.startswith("cuda:")):
            raise fail("must be auto, cpu, cuda or cuda:N")
        return value
    if kind == "cutformat":
        if value not in CUT_FORMATS:
            raise fail(f"must be one of {', '.join(CUT_FORMATS)}")
        return value
    if kind == "format":
        if value not in FORMATS:
            raise fail(f"must be one of {', '.join(FORMATS)}")
        return value
    raise AssertionError(f"unknown key kind {kind}")  # pragma: no cover - schema bug


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _table(path: Path, data: dict[str, Any], section: str, base: Path) -> dict[str, Any] | None:
    if section not in data:
        return None
    table = data[section]
    if not isinstance(table, dict):
        raise InputError(f"{path}: '{section}' must be a table ([{section}]), got {type(table).__name__}")
    schema = SCHEMA[section]
    unknown = sorted(set(table) - set(schema))
    if unknown:
        raise InputError(
            f"{path}: [{section}] has unknown key '{unknown[0]}'; known keys: {', '.join(schema)}"
        )
    values: dict[str, Any] = {}
    for key, spec in schema.items():
        where = f"{path}: [{section}].{key}"
        if key not in table:
            if spec.required:
                raise InputError(f"{where} is required")
            values[key] = list(spec.default) if isinstance(spec.default, list) else spec.default
            continue
        values[key] = _check_value(where, spec.kind, table[key], base)
    return values


def load_job(path: str | Path) -> Job:
    """Read and validate a job file; every error names the file and the key.

    Raises:
        InputError: the file is missing, not UTF-8 or not TOML, has an unknown table or key, a value
            that breaks its rule, or no step to run.
    """
    path = Path(path).expanduser().resolve()
    data = _load_toml(path)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise InputError(f"{path}: unknown table [{unknown[0]}]; known tables: {', '.join(SECTIONS)}")
    base = path.parent
    job_table = _table(path, data, "job", base) or {"name": None, "workspace": None, "out": None}
    index = _table(path, data, "index", base)
    search = _table(path, data, "search", base)
    summarize = _table(path, data, "summarize", base)
    cut = _table(path, data, "cut", base)
    if index is not None and not index["paths"]:
        raise InputError(f"{path}: [index].paths must list at least one folder or file")
    if search is not None:
        if not search["queries"] and search["queries_file"] is None:
            raise InputError(f"{path}: [search] needs 'queries' (a list of sentences) or 'queries_file'")
        if search["window"] is not None and search["stride"] is not None and search["stride"] > search["window"]:
            raise InputError(
                f"{path}: [search].stride ({search['stride']:g}) must not exceed [search].window ({search['window']:g})"
            )
    if cut is not None:
        if cut["source"] not in CUT_SOURCES:
            raise InputError(f"{path}: [cut].source must be one of {', '.join(CUT_SOURCES)}, got {cut['source']!r}")
        if cut["source"] == "search" and search is None:
            raise InputError(f"{path}: [cut].source is 'search' but the job has no [search] table")
        if cut["source"] == "summarize" and summarize is None:
            raise InputError(f"{path}: [cut].source is 'summarize' but the job has no [summarize] table")
        if cut["padding"] < 0:
            raise InputError(f"{path}: [cut].padding must be >= 0 seconds, got {cut['padding']}")
    name = job_table["name"] or path.stem
    job = Job(
        path=path,
        name=name,
        base=base,
        workspace=job_table["workspace"],
        out=job_table["out"],
        index=index,
        search=search,
        summarize=summarize,
        cut=cut,
    )
    if not job.steps():
        raise InputError(f"{path}: the job has no step; add an [index], [search], [summarize] or [cut] table")
    return job


# ----------------------------------------------------------------------------------------------
# Steps


def _run_index(job: Job, workspace, reporter: Reporter) -> StepResult:
    """The two library calls of ``r2cli index``: the catalog pass, then feature extraction.

    The catalog pass is committed before the CLIP weights are needed, so a machine without weights
    still gets an up-to-date catalog and a one-line ``MissingWeightsError``.
    """
    from r2cli.catalog.scan import scan_archive

    options = job.index or {}
    started = time.perf_counter()
    paths = [str(p) for p in options["paths"]]
    scan = scan_archive(paths, workspace, extensions=options["extensions"], ignore=tuple(options["ignore"]),
                        reporter=reporter)
    counts: dict[str, Any] = {"new": scan.new, "updated": scan.updated, "unchanged": scan.unchanged,
                              "moved": scan.moved, "missing": scan.missing, "errors": scan.errors}
    detail = f"{scan.seen} paths ({scan.new} new, {scan.updated} updated, {scan.errors} errors)"
    if options["features"]:
        from r2cli.features.extract import extract_features

        extra: dict[str, Any] = {}
        if options["fps"] is not None:
            extra["fps"] = options["fps"]
        report = extract_features(workspace, clip_weights=options["clip_weights"], device=options["device"],
                                  batch_size=options["batch_size"], paths=paths, reporter=reporter, **extra)
        counts.update(features_extracted=report.videos_extracted, features_skipped=report.videos_skipped,
                      features_failed=report.videos_failed)
        detail += (f"; features: {report.videos_extracted} extracted, {report.videos_skipped} up to date, "
                   f"{report.videos_failed} failed")
    return StepResult(name="index", status="done", detail=detail, seconds=time.perf_counter() - started, counts=counts)


def _search_options(options: dict[str, Any], out: Path, force: bool):
    from r2cli.inference.search import SearchOptions

    extra: dict[str, Any] = {}
    if options["window"] is not None:
        extra["window_s"] = options["window"]
    if options["stride"] is not None:
        extra["stride_s"] = options["stride"]
    if options["batch_size"] is not None:
        extra["batch_size"] = options["batch_size"]
    return SearchOptions(
        videos=tuple(options["videos"]),
        candidates=options["candidates"],
        top_k=options["top_k"],
        min_score=options["min_score"],
        preset=options["preset"],
        checkpoint=options["checkpoint"],
        clip_weights=options["clip_weights"],
        device=options["device"],
        out=out,
        format=options["format"],
        resume=not force,
        **extra,
    )


def _run_search(job: Job, workspace, out_dir: Path, force: bool, reporter: Reporter) -> StepResult:
    from r2cli.inference.queries import collect_queries
    from r2cli.inference.search import search

    options = job.search or {}
    started = time.perf_counter()
    queries = collect_queries(options["queries"], options["queries_file"])
    result = search(workspace, queries, options=_search_options(options, out_dir / "search", force), reporter=reporter)
    status = "skipped" if result.resumed else "done"
    detail = (
        f"{result.counts.get('queries', 0)} queries over {result.counts.get('videos_searched', 0)} videos: "
        f"{result.counts.get('moments', 0)} moments in {result.out_dir}"
    )
    if result.resumed:
        detail = f"outputs for the same settings exist in {result.out_dir} (run {result.run_id}); use --force to redo"
    return StepResult(
        name="search",
        status=status,
        detail=detail,
        seconds=time.perf_counter() - started,
        outputs={name: str(p) for name, p in result.files.items()},
        counts=dict(result.counts),
    )


def _run_summarize(job: Job, workspace, out_dir: Path, force: bool, reporter: Reporter) -> StepResult:
    from r2cli.inference.summarize import summarize

    options = dict(job.summarize or {})
    started = time.perf_counter()
    result = summarize(
        workspace,
        tuple(options["videos"]),
        ratio=options["ratio"],
        query=options["query"],
        preset=options["preset"],
        checkpoint=options["checkpoint"],
        clip_weights=options["clip_weights"],
        device=options["device"],
        out=out_dir / "summarize",
        resume=not force,
        reporter=reporter,
    )
    outputs = {str(name): str(path) for name, path in result.files.items()}
    outputs.setdefault("out_dir", str(result.out_dir))
    return StepResult(
        name="summarize",
        status="skipped" if result.resumed else "done",
        detail=f"summaries in {result.out_dir}",
        seconds=time.perf_counter() - started,
        outputs=outputs,
    )


def _run_cut(job: Job, workspace, out_dir: Path, steps: list[StepResult], force: bool, reporter: Reporter) -> StepResult:
    from r2cli.media.cut import cut_results

    options = job.cut or {}
    source = next((s for s in steps if s.name == options["source"]), None)
    if source is None or source.status == "error":
        return StepResult(name="cut", status="error", detail=f"nothing to cut: the {options['source']} step did not finish")
    results_file = source.outputs.get("moments") or source.outputs.get("summary")
    if not results_file:
        return StepResult(name="cut", status="error", detail=f"the {options['source']} step wrote no results file to cut")
    target = options["out"] or out_dir / "clips"
    if source.status == "skipped" and not force and target.is_dir() and any(target.iterdir()):
        return StepResult(name="cut", status="skipped", detail=f"the {options['source']} results did not change; "
                          f"clips are in {target} (use --force to cut again)", outputs={"out_dir": str(target)})
    started = time.perf_counter()
    # results that were just recomputed replace what an earlier run cut from the old ones
    report = cut_results(results_file, target, top=options["top"], pad=options["padding"], format=options["format"],
                         force=force or source.status == "done", reporter=reporter)
    counts = report.counts()
    status = "done" if report.ok else "error"
    return StepResult(
        name="cut",
        status=status,
        detail=f"{counts.get('written', 0)} written, {counts.get('skipped', 0)} up to date, "
               f"{counts.get('failed', 0)} failed, in {target}",
        seconds=time.perf_counter() - started,
        outputs={"out_dir": str(target)},
        counts=counts,
    )


def job_out_dir(job: Job, workspace) -> Path:
    """Where the job's outputs go: ``[job].out`` or ``<workspace>/runs/job-<name>``."""
    return job.out if job.out is not None else workspace.runs_dir / f"job-{job.name}"


def run_job(
    job: Job | str | Path,
    workspace=None,
    *,
    force: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> JobResult:
    """Run the steps of a job in order and record the job in the catalog.

    ``workspace`` is used when the job file names none (``[job].workspace`` wins). Indexing is
    incremental; a search whose outputs in the job's out folder were made with the same settings
    is skipped unless ``force``. A configured summarize/cut step whose library function is not
    installed ends as an ``error`` step with a clear message, and the job goes on.

    Raises:
        InputError: the job file is invalid (the message names the key).
        MissingWeightsError: weights are needed and not available (after the catalog pass of [index]).
        R2Error: any other error of a step, unchanged (outputs finished so far are kept).
    """
    from r2cli.inference.runs import make_run_folder, new_run_id, record_run_end, record_run_start, utc_now
    from r2cli.paths import resolve_workspace

    if not isinstance(job, Job):
        job = load_job(job)
    if job.workspace is not None:
        workspace = resolve_workspace(job.workspace, getattr(workspace, "catalog_url", None) if workspace else None)
    elif workspace is None:
        workspace = resolve_workspace()
    workspace.ensure()
    out_dir = job_out_dir(job, workspace)
    make_run_folder(out_dir, flag=f"{job.path}: [job].out")
    run_id = new_run_id()
    started = time.perf_counter()
    steps: list[StepResult] = []
    record_run_start(
        workspace,
        run_id=run_id,
        kind="job",
        settings={"job_file": str(job.path), "name": job.name, "steps": job.steps(), "force": force},
        queries=None,
        model=None,
        out_dir=out_dir,
        created_at=utc_now(),
    )
    status = "failed"
    try:
        for name in job.steps():
            reporter.begin(f"job: {name}", total=None, unit="steps")
            try:
                if name == "index":
                    steps.append(_run_index(job, workspace, reporter))
                elif name == "search":
                    steps.append(_run_search(job, workspace, out_dir, force, reporter))
                elif name == "summarize":
                    steps.append(_run_summarize(job, workspace, out_dir, force, reporter))
                elif name == "cut":
                    steps.append(_run_cut(job, workspace, out_dir, steps, force, reporter))
            finally:
                reporter.end(f"job: {name}")
            if steps[-1].status == "error":
                reporter.warn(f"job {job.name}: {steps[-1].detail}")
        status = "done" if all(s.status != "error" for s in steps) else "partial"
    except (R2Error, KeyboardInterrupt):
        status = "failed"
        raise
    finally:
        record_run_end(
            workspace,
            run_id=run_id,
            status=status,
            timings={"total_s": round(time.perf_counter() - started, 3), **{s.name + "_s": round(s.seconds, 3) for s in steps}},
            counts={s.name: {"status": s.status, **s.counts} for s in steps},
        )
    return JobResult(job=job, run_id=run_id, out_dir=out_dir, steps=steps, seconds=time.perf_counter() - started)


def validate_job(path: str | Path) -> Job:
    """Load and validate a job file without running it (``r2cli run --check``).

    Besides the file itself, the inputs it names must exist: every ``[index].paths`` entry and
    ``[search].queries_file``.

    Raises:
        InputError: see ``load_job``; or a named input does not exist (the key is named).
    """
    job = load_job(path)
    named: list[tuple[str, Path]] = []
    if job.index is not None:
        named += [("[index].paths", Path(p)) for p in job.index["paths"]]
    if job.search is not None and job.search["queries_file"] is not None:
        named.append(("[search].queries_file", Path(job.search["queries_file"])))
    for key, target in named:
        if not target.exists():
            raise InputError(f"{path}: {key} names {target}, which does not exist")
    return job
