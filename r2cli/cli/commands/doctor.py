"""`r2cli doctor`: what r2cli finds on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from r2cli.cli._common import CatalogOpt, JsonOpt, WorkspaceOpt, console, print_json, shown, workspace_from


def _torch_info() -> dict:
    try:
        import torch
    except Exception as exc:  # ImportError or a broken install: report it, do not crash doctor
        return {"ok": False, "error": f"torch cannot be imported: {exc}; reinstall with `pip install -e .`"}
    info: dict = {"ok": True, "version": torch.__version__, "cuda": torch.version.cuda, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["device"] = "cuda"
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        info["device"], info["devices"] = "mps", ["Apple GPU"]
    else:
        info["device"], info["devices"] = "cpu", []
    return info


def _weights_cache() -> dict:
    from r2cli.model.registry import STAGING_DIR
    from r2cli.paths import weights_cache_dir

    root = weights_cache_dir()
    files = []
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            folders = path.relative_to(root).parts[:-1]
            if path.suffix in (".lock", ".sha256") or ".cache" in folders:  # bookkeeping, not weights
                continue
            files.append({"path": str(path.relative_to(root)), "bytes": path.stat().st_size,
                          "partial": path.suffix == ".part" or STAGING_DIR in folders})
    return {"dir": str(root), "exists": root.is_dir(), "files": files}


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(json_output: JsonOpt = False, workspace: WorkspaceOpt = None, catalog: CatalogOpt = None) -> None:
        """Check ffmpeg/ffprobe, torch and its device, the catalog, the weights a run would use and the cache.

        The weights are $R2CLI_CLIP_WEIGHTS and $R2CLI_CHECKPOINT when set, else the defaults.
        Exits with code 3 when ffmpeg, ffprobe or torch is missing, or when a weights variable names
        a file that does not exist (or an unknown name). Creates nothing.

        Example:  r2cli doctor --json
        """
        from r2cli.catalog.queries import describe_catalog
        from r2cli.errors import MissingDependencyError
        from r2cli.media.ffmpeg import describe_tools
        from r2cli.model.registry import weights_in_use

        ws = workspace_from(workspace, catalog)
        tools = describe_tools()
        report = {
            "tools": {name: (t.to_dict() if not isinstance(t, str) else {"error": t}) for name, t in tools.items()},
            "torch": _torch_info(),
            "workspace": str(ws.root),
            "catalog": describe_catalog(ws).to_dict(),
            "weights": [{"kind": w.kind, "spec": w.spec, "source": w.source,
                         "path": None if w.path is None else str(w.path), "state": w.state, "problem": w.problem}
                        for w in weights_in_use()],
            "weights_cache": _weights_cache(),
        }
        problems = [t for t in tools.values() if isinstance(t, str)]
        if not report["torch"]["ok"]:
            problems.append(report["torch"]["error"])
        problems += [w["problem"] for w in report["weights"] if w["problem"]]
        report["ok"] = not problems
        if json_output:
            print_json(report)
        else:
            _render(report)
        if problems:
            raise MissingDependencyError(problems[0] + (f" (and {len(problems) - 1} more above)" if len(problems) > 1 else ""))


def _render(report: dict) -> None:
    table = Table(show_header=False, box=None)
    table.add_column("item", style="bold")
    table.add_column("value", overflow="fold")
    for name, tool in report["tools"].items():
        value = shown(f"{tool['version']}  {tool['path']}") if "error" not in tool else f"[red]missing[/]: {shown(tool['error'])}"
        table.add_row(name, value)
    torch_info = report["torch"]
    if torch_info["ok"]:
        devices = f" ({', '.join(torch_info['devices'])})" if torch_info["devices"] else ""
        table.add_row("torch", f"{torch_info['version']}, device {torch_info['device']}{devices}, "
                      f"{torch_info['threads']} CPU threads")
    else:
        table.add_row("torch", f"[red]missing[/]: {shown(torch_info['error'])}")
    table.add_row("workspace", shown(report["workspace"]))
    info = report["catalog"]
    if info["exists"]:
        table.add_row("catalog", f"{shown(info['location'])} (schema version {info['schema_version']}, "
                      f"this r2cli: {info['latest_version']}; {info['videos']} videos)")
    else:
        table.add_row("catalog", f"{shown(info['location'])} (not created yet: r2cli index DIR creates it)")
    for weights in report["weights"]:
        name = "CLIP weights" if weights["kind"] == "clip" else "checkpoint"
        where = f" ({weights['source']})" if weights["source"] != "default" else " (default)"
        if weights["problem"]:
            table.add_row(name, f"[red]missing[/]: {shown(weights['problem'])}")
        else:
            table.add_row(name, shown(f"{weights['spec']}{where}: {weights['state']}")
                          + (f"\n  {shown(weights['path'])}" if weights["path"] and weights["path"] != weights["spec"] else ""))
    cache = report["weights_cache"]
    files = cache["files"]
    listing = "".join(
        f"\n  {f['path']} ({f['bytes'] / 1e6:.1f} MB{', partial download' if f['partial'] else ''})" for f in files
    )
    state = listing if files else " (empty)" if cache["exists"] else " (does not exist yet)"
    table.add_row("weights cache", shown(cache["dir"] + state))
    console.print(table)
    if os.environ.get("R2CLI_CACHE"):
        console.print(f"weights cache set by $R2CLI_CACHE={shown(Path(os.environ['R2CLI_CACHE']))}", highlight=False)
