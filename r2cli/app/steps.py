"""What a use case offers the job runner: one ``job_step`` function per use-case module.

``r2cli run JOB.toml`` reads each table of a job file (``[index]``, ``[search]`` ...) and hands it
to ``r2cli.app.<table>.job_step``. That function builds the use case's options with
``Options.from_table`` (the same dataclass the CLI builds from flags, so defaults and rules are
shared), calls the same use-case function the CLI calls, and describes the outcome as a
``StepResult``. The job runner itself knows no option of any use case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from r2cli.progress import NULL_REPORTER, Reporter

# the tables a job file may hold, in the order their steps run
JOB_STEPS = ("index", "search", "summarize", "duplicates", "cut", "report")


@dataclass
class StepResult:
    """What one step of a job did."""

    name: str  # the table: "index" | "search" | "summarize" | "duplicates" | "cut" | "report"
    status: str  # "done" | "skipped" (finished earlier with the same settings) | "error" (could not run)
    detail: str  # one line for people
    seconds: float = 0.0  # wall time of the step
    outputs: dict[str, str] = field(default_factory=dict)  # named output paths ("moments", "summary", "out_dir")
    counts: dict[str, Any] = field(default_factory=dict)  # numbers worth reporting
    # whether a "done" step changed anything later steps read (an index that found nothing new ran, but
    # changed nothing: a report of unchanged results is then kept, #22.10)
    changed: bool = True

    @property
    def fresh(self) -> bool:
        """True when the step ran and changed what later steps read."""
        return self.status == "done" and self.changed


@dataclass(frozen=True)
class JobContext:
    """What a step may know of the job around it."""

    job_file: Path  # the job file (named in error messages)
    base: Path  # folder that relative paths in the job file are resolved against
    out_dir: Path  # the job's output folder; step outputs go to out_dir/<step>
    force: bool  # redo steps whose outputs exist for the same settings
    previous: tuple[StepResult, ...] = ()  # the steps that ran before this one, in order

    def where(self, section: str) -> str:
        """How error messages name a table of this job: ``"FILE: [section]"``."""
        return f"{self.job_file}: [{section}]"

    def step(self, name: str) -> StepResult | None:
        """The result of an earlier step, or None when it did not run."""
        return next((s for s in self.previous if s.name == name), None)


class JobStep(Protocol):
    """The signature of ``r2cli.app.<table>.job_step``.

    Each use-case module that is a job step also names its options class as the module attribute
    ``OPTIONS``, so ``r2cli run --check`` validates a table (``OPTIONS.from_table``) without running it.
    """

    def __call__(self, workspace: Any, table: Mapping[str, Any], context: JobContext, *,
                 reporter: Reporter = NULL_REPORTER) -> StepResult: ...
