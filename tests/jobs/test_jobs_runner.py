"""`r2cli run`: index + search (+ cut) on generated media, resumed; the sample job without weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures import run_cli


@pytest.fixture
def media(tmp_path, ffmpeg):
    from fixtures import make_video

    folder = tmp_path / "archive"
    make_video(folder / "red_blue.mp4", seconds=8, width=96, height=64, fps=10, colors=("red", "blue"))
    make_video(folder / "green.mp4", seconds=6, width=96, height=64, fps=10, colors=("green",))
    return folder


@pytest.fixture
def job_file(tmp_path, media, tiny_clip_path, random_head_path):
    head = random_head_path
    path = tmp_path / "jobs" / "demo.toml"
    path.parent.mkdir()
    path.write_text(
        f"""
[job]
name = "demo"
workspace = "../ws"
out = "../out"

[index]
paths = ["../archive"]
clip_weights = "{tiny_clip_path}"
device = "cpu"

[search]
queries = ["a red scene", "a green scene"]
checkpoint = "{head}"
clip_weights = "{tiny_clip_path}"
device = "cpu"
top_k = 4

[cut]
source = "search"
top = 2
format = "edl"
""",
        encoding="utf-8",
    )
    return path


def test_job_indexes_searches_cuts_and_resumes(job_file, tmp_path):
    import pandas as pd

    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Run
    from r2cli.app.jobs import run_job
    from r2cli.paths import resolve_workspace

    first = run_job(job_file)
    assert [(s.name, s.status) for s in first.steps] == [("index", "done"), ("search", "done"), ("cut", "done")], \
        [s.detail for s in first.steps]
    assert first.steps[0].counts["new"] == 2 and first.steps[0].counts["features_extracted"] == 2
    moments = pd.read_parquet(tmp_path / "out" / "search" / "moments.parquet")
    assert set(moments["query"]) == {"a red scene", "a green scene"}
    assert {Path(p).name for p in moments["path"]} <= {"red_blue.mp4", "green.mp4"}
    assert list((tmp_path / "out" / "clips").glob("*.edl"))

    second = run_job(job_file)
    status = {s.name: s.status for s in second.steps}
    assert status["search"] == "skipped" and "--force" in second.steps[1].detail
    assert status["cut"] == "skipped"
    assert second.steps[0].counts["new"] == 0 and second.steps[0].counts["features_extracted"] == 0
    assert pd.read_parquet(tmp_path / "out" / "search" / "moments.parquet")["run_id"].iloc[0] == moments["run_id"].iloc[0]

    forced = run_job(job_file, force=True)
    assert {s.name: s.status for s in forced.steps}["search"] == "done"
    redone = pd.read_parquet(tmp_path / "out" / "search" / "moments.parquet")
    assert redone["run_id"].iloc[0] != moments["run_id"].iloc[0]

    workspace = resolve_workspace(tmp_path / "ws")
    with Catalog.open(workspace) as catalog, catalog.session() as session:
        jobs = session.query(Run).filter(Run.kind == "job").all()
        searches = session.query(Run).filter(Run.kind == "search").all()
    assert len(jobs) == 3 and {r.status for r in jobs} == {"done"}
    assert len(searches) == 2  # the resumed run did not search again
    assert jobs[0].counts["search"]["status"] in ("done", "skipped")


def test_sample_job_without_weights_stops_after_the_catalog_pass(tmp_path, ffmpeg, capsys):
    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import Video
    from r2cli.paths import jobs_dir

    workspace = tmp_path / "ws"
    code, out, err = run_cli(capsys, "run", str(jobs_dir() / "sample.toml"), "--workspace", str(workspace))
    assert code == 4, out + err  # MissingWeightsError
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "CLIP weights" in lines[0] and "--clip-weights" in lines[0]
    assert "Traceback" not in out + err
    from r2cli.paths import resolve_workspace

    with Catalog.open(resolve_workspace(workspace)) as catalog, catalog.session() as session:
        assert session.query(Video).filter(Video.status == "ok").count() == 5


def test_unchanged_job_keeps_its_report(job_file, tmp_path):
    """An index that finds nothing new changes nothing: the report step is skipped, and says so (#22.10)."""
    from r2cli.app.jobs import run_job

    job_file.write_text(job_file.read_text(encoding="utf-8") + "\n[report]\n", encoding="utf-8")
    first = run_job(job_file)
    assert {s.name: s.status for s in first.steps}["report"] == "done", [s.detail for s in first.steps]
    index_html = tmp_path / "out" / "report" / "index.html"
    written = index_html.stat().st_mtime_ns

    second = run_job(job_file)
    status = {s.name: s.status for s in second.steps}
    assert status == {"index": "done", "search": "skipped", "cut": "skipped", "report": "skipped"}, status
    assert not second.steps[0].changed and "nothing changed" in second.steps[-1].detail
    assert index_html.stat().st_mtime_ns == written


def test_job_summary_keeps_paths_whole_at_80_columns(job_file, tmp_path, capsys, monkeypatch):
    """The summary table's details name folders a user opens next: whole at 80 columns (#22, 80 columns)."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run_cli(capsys, "run", str(job_file))
    assert code == 0, out + err
    lines = out.splitlines()
    for folder in (tmp_path / "out" / "search", tmp_path / "out" / "clips"):
        assert any(str(folder) in line for line in lines), (folder, out)
    assert f"outputs: {tmp_path / 'out'}" in lines
