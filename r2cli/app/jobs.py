"""Declarative batch jobs: one reviewed TOML file runs index -> search -> summarize -> cut -> report.

A job file has a ``[job]`` table (name, workspace, out) and one table per step. The keys of a
step's table are the fields of that use case's options (``r2cli.app.<step>.OPTIONS``): the same
dataclass the command line builds from its flags, with the same defaults and rules, so a job step
and the equivalent command produce the same outputs. This module knows no option of any step; it
reads the file, checks the tables, and hands each one to ``r2cli.app.<step>.job_step``.

Relative paths in a job file are relative to the folder holding the job file, so a job runs the
same from any working directory. A job is resumable like its parts: indexing is incremental, and a
step whose outputs exist for the same settings is not redone unless ``force``. The library never
prints: ``run_job`` returns a ``JobResult``.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from r2cli.app.options import Options, name_rule, option
from r2cli.app.steps import JOB_STEPS, JobContext, StepResult
from r2cli.errors import InputError, MissingDependencyError, MissingWeightsError, R2Error
from r2cli.progress import NULL_REPORTER, Reporter

SECTIONS = ("job", *JOB_STEPS)

__all__ = ["Job", "JobOptions", "JobResult", "StepResult", "load_job", "run_job", "validate_job", "step_module"]


@dataclass(frozen=True)
class JobOptions(Options):
    """The ``[job]`` table."""

    section = "job"
    name: str | None = option(None, help="Name of the job: shown in the catalog's run record and used in the "
                                         "default output folder. Default: the job file's name.", check=name_rule)
    workspace: Path | None = option(None, help="Workspace (catalog, feature store, runs). Default: --workspace, "
                                               "$R2CLI_WORKSPACE or ./.r2cli.")
    out: Path | None = option(None, help="Where the job's outputs go (one folder per step below it). "
                                         "Default: <workspace>/runs/job-<name>.")


@dataclass(frozen=True)
class Job:
    """A validated job file."""

    path: Path  # the job file
    name: str  # [job].name or the file stem
    base: Path  # folder relative paths are resolved against (the job file's folder)
    workspace: Path | None  # [job].workspace, resolved; None: the caller's workspace
    out: Path | None  # [job].out, resolved; None: <workspace>/runs/job-<name>
    tables: dict[str, dict[str, Any]]  # step name -> its raw table, in running order
    options: dict[str, Options]  # step name -> its options as the file gives them (validated)

    def steps(self) -> list[str]:
        """Names of the steps this job runs, in order."""
        return list(self.tables)

    def where(self, section: str) -> str:
        """How messages name one table of this file."""
        return f"{self.path}: [{section}]"


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


def step_module(name: str) -> ModuleType:
    """The use-case module that runs the job step ``name`` (``r2cli.app.<name>``)."""
    if name not in JOB_STEPS:
        raise InputError(f"unknown job step {name!r}; known steps: {', '.join(JOB_STEPS)}")
    return importlib.import_module(f"r2cli.app.{name}")


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
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write at the start
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # the parser recurses once per nesting level
        raise InputError(f"{path}: arrays or tables nested too deeply to read; a job file needs a few levels") from None


def load_job(path: str | Path) -> Job:
    """Read and validate a job file; every error names the file and the key.

    Each step's table is checked by that step's options class (unknown keys, types, rules).

    Raises:
        InputError: the file is missing, not UTF-8 or not TOML, has an unknown table or key, a value
            that breaks its rule, a [cut] whose source step is absent, or no step to run.
    """
    path = Path(path).expanduser().resolve()
    data = _load_toml(path)
    unknown = [name for name in data if name not in SECTIONS]
    if unknown:
        raise InputError(f"{path}: unknown table [{unknown[0]}]; known tables: {', '.join(SECTIONS)}")
    for section, table in data.items():
        if not isinstance(table, dict):
            raise InputError(f"{path}: '{section}' must be a table ([{section}]), got {type(table).__name__}")
    base = path.parent
    job_options = JobOptions.from_table(data.get("job", {}), where=f"{path}: [job]", base=base)
    tables = {name: dict(data[name]) for name in JOB_STEPS if name in data}
    if not tables:
        raise InputError(f"{path}: the job has no step; add one of the tables "
                         + ", ".join(f"[{name}]" for name in JOB_STEPS))
    options: dict[str, Options] = {}
    for name, table in tables.items():
        module = step_module(name)
        options[name] = module.OPTIONS.from_table(table, where=f"{path}: [{name}]", base=base)
    source = tables.get("cut", {}).get("source")
    if isinstance(source, str) and source in JOB_STEPS and source not in tables:
        raise InputError(f"{path}: [cut].source is '{source}' but the job has no [{source}] table")
    if job_options.name is None and (problem := name_rule(path.stem)):
        raise InputError(f"{path}: the job's name is the file's name when [job].name is absent; it {problem}")
    return Job(path=path, name=job_options.name or path.stem, base=base, workspace=job_options.workspace,
               out=job_options.out, tables=tables, options=options)


def validate_job(path: str | Path) -> Job:
    """Load and validate a job file without running it (``r2cli run --check``).

    Besides the file itself, the inputs it names must exist (the fields marked ``exists``: the
    folders to index, a query file ...).

    Raises:
        InputError: see ``load_job``; or a named input does not exist (the key is named).
    """
    job = load_job(path)
    for name, options in job.options.items():
        missing = options.missing_inputs()
        if missing:
            key, target = missing[0]
            raise InputError(f"{job.path}: [{name}].{key} names {target}, which does not exist")
    return job


# ----------------------------------------------------------------------------------------------
# Running


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

    ``workspace`` is used when the job file names none (``[job].workspace`` wins). Each step is
    ``r2cli.app.<step>.job_step`` with the step's table; a step that ends in error is reported and
    the job goes on with the steps that do not need it.

    Raises:
        InputError: the job file is invalid (the message names the key).
        MissingWeightsError: weights are needed and not available (after the catalog pass of [index]).
        R2Error: any other error of a step, unchanged (outputs finished so far are kept).
    """
    from r2cli.outputs.runs import make_run_folder, new_run_id, record_run_end, record_run_start, utc_now
    from r2cli.paths import resolve_workspace

    if not isinstance(job, Job):
        job = load_job(job)
    if job.workspace is not None:
        # [job].workspace governs every path of the job, the catalog included: only a catalog named on
        # its own (--catalog, $R2CLI_CATALOG) is kept, never the default file of the caller's workspace
        named_catalog = workspace.catalog_url if workspace is not None and not workspace.catalog_is_default_sqlite \
            else None
        workspace = resolve_workspace(job.workspace, named_catalog)
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
            context = JobContext(job_file=job.path, base=job.base, out_dir=out_dir, force=force,
                                 previous=tuple(steps))
            reporter.begin(f"job: {name}", total=1, unit="step")
            try:
                try:
                    steps.append(step_module(name).job_step(workspace, job.tables[name], context, reporter=reporter))
                except MissingWeightsError:
                    _raise_every_missing_weight(job)
                    raise
                reporter.advance(f"job: {name}", 1, status=steps[-1].status)
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


def _raise_every_missing_weight(job: Job) -> None:
    """A step found weights missing: name every file the job's steps need that is missing, in one
    message, rather than one per attempt (#22.6). Steps say what they load with ``weights_needed``.

    Raises:
        MissingWeightsError: always, when any needed file is missing (else returns).
    """
    from r2cli.inference.models import check_all_weights

    needed: list[tuple[str, str | None]] = []
    for name, options in job.options.items():
        weights_needed = getattr(step_module(name), "weights_needed", None)
        if weights_needed is not None:
            needed += weights_needed(options)
    check_all_weights(needed)


def job_template() -> str:
    """A job file with every table and key, each commented with its help text and default.

    Built from the options classes, so it never disagrees with what ``load_job`` accepts.
    """
    lines = ["# r2cli job file: `r2cli run THIS.toml`. Relative paths are relative to this file's folder.",
             "# Uncomment the tables of the steps to run and the keys to set; a key left out takes its default.", ""]
    for section in SECTIONS:
        cls: type[Options] = JobOptions if section == "job" else step_module(section).OPTIONS
        lines.append(f"# [{section}]")
        for key in cls.job_keys():
            lines += commented_key(cls, key)
        lines.append("")
    return "\n".join(lines)


def example_value(cls: type[Options], key: str) -> str:
    """A key's default as TOML; without a default (decided at run time, see its help) a description of
    what it takes, never a value that reads as a recommendation (#22.15): ``<integer>``,
    ``<number>``, ``<path>``, ``<text>``, ``<one of a|b>``, ``[<text>, ...]``."""
    import typing

    value = cls.defaults()[key]
    if value is not None:
        return _toml_value(value)
    spec = cls.specs()[key]
    if spec.choices:
        return "<one of " + "|".join(spec.choices) + ">"
    annotation = typing.get_type_hints(cls)[key]
    kinds = {a for a in typing.get_args(annotation) if a is not type(None)} or {annotation}
    for kind in kinds:
        if typing.get_origin(kind) is tuple:
            inner = {a for a in typing.get_args(kind) if a is not Ellipsis}
            return f"[{_placeholder(inner)}, ...]"
    return _placeholder(kinds)


def _placeholder(kinds: set[Any]) -> str:
    if bool in kinds:
        return "<true|false>"
    if int in kinds:
        return "<integer>"
    if float in kinds:
        return "<number>"
    if Path in kinds:
        return "<path>"
    return "<text>"


def commented_key(cls: type[Options], key: str) -> list[str]:
    """The two lines that show a key in a job file: its help, then ``# key = <default or description>``."""
    return [f"# {cls.help(key)}", f"# {key} = {example_value(cls, key)}"]


def _toml_value(value: Any) -> str:
    import json

    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))
