"""`r2cli run JOB.toml`: run a declared batch (index, search, summarize, cut) from a job file."""

from __future__ import annotations

from pathlib import Path
import sys
from typing import Annotated, Optional

import typer

from r2cli.cli._common import CatalogOpt, JsonOpt, RichReporter, WorkspaceOpt, console, print_json, shown, workspace_from
from r2cli.safe_text import one_line


def _job_to_json(job) -> dict:
    return {
        "job_file": str(job.path),
        "name": job.name,
        "steps": job.steps(),
        "workspace": str(job.workspace) if job.workspace else None,
        "out": str(job.out) if job.out else None,
        **{name: job.options[name].to_dict() for name in job.steps()},
    }


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        job_file: Annotated[
            Optional[Path], typer.Argument(metavar="JOB.toml", help="Job file (see jobs/sample.toml).")
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Redo steps whose outputs exist for the same settings.")
        ] = False,
        check: Annotated[
            bool, typer.Option("--check", help="Only validate the job file and show its steps; run nothing.")
        ] = False,
        template: Annotated[
            bool, typer.Option("--template", help="Print a job file with every table and key, commented; run nothing.")
        ] = False,
        json_output: JsonOpt = False,
        workspace: WorkspaceOpt = None,
        catalog: CatalogOpt = None,
    ) -> None:
        """Run a batch job: index folders, search a query list, summarize and cut, as one TOML file declares.

        Relative paths in the file are relative to the file's folder. Re-running a job resumes it:
        indexing is incremental and a search whose outputs exist for the same settings is skipped.

        Example:  r2cli run jobs/sample.toml

        Example:  r2cli run jobs/sample.toml --check

        Example:  r2cli run --template > nightly.toml
        """
        from r2cli.errors import UsageError
        from r2cli.app.jobs import job_template, load_job, run_job, validate_job

        if template:
            sys.stdout.write(job_template() + "\n")
            return
        if job_file is None:
            raise UsageError("give a job file (JOB.toml), or --template to print one")
        job = validate_job(job_file) if check else load_job(job_file)
        if check:
            if json_output:
                print_json(_job_to_json(job))
            else:
                console.print(one_line(f"{job.path}: valid; steps: {', '.join(job.steps())}"), highlight=False, markup=False, soft_wrap=True)
            return
        ws = workspace_from(workspace, catalog)
        with RichReporter(enabled=not json_output) as reporter:
            result = run_job(job, ws, force=force, reporter=reporter)
        if json_output:
            print_json({
                "job": job.name,
                "run_id": result.run_id,
                "out_dir": str(result.out_dir),
                "ok": result.ok,
                "seconds": round(result.seconds, 3),
                "steps": [
                    {"name": s.name, "status": s.status, "detail": s.detail, "seconds": round(s.seconds, 3),
                     "outputs": s.outputs, "counts": s.counts}
                    for s in result.steps
                ],
            })
            return
        from r2cli.cli._tables import NamedRows, print_named_rows

        table = NamedRows([("step", "left"), ("status", "left"), ("seconds", "right")], "detail",
                          title=one_line(f"job {job.name} (run {result.run_id})"))
        for step in result.steps:
            table.add_row(step.name, step.status, f"{step.seconds:.1f}", name=one_line(step.detail or ""))
        print_named_rows(console, table)
        console.print(one_line(f"outputs: {result.out_dir}"), highlight=False, markup=False, soft_wrap=True)
        if not result.ok:
            raise typer.Exit(1)
