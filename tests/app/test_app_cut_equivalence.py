"""`r2cli cut` and a job's [cut] step on the same results give the same clips (frame for frame,
compared with ffmpeg's framemd5), the same reel and the same timelines (real ffmpeg)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from r2cli.app.cut import job_step
from r2cli.app.steps import JobContext, StepResult
from r2cli.outputs import write_table
from r2cli.paths import resolve_workspace


@pytest.fixture(scope="module")
def sources(ffmpeg, tmp_path_factory):
    """make_video(seconds=8, fps=25, 3 colours, audio, gop=25) and make_video(seconds=4, 320x240, fps=30)."""
    from fixtures import make_video

    folder = tmp_path_factory.mktemp("sources")
    return (make_video(folder / "source.mp4", seconds=8, fps=25, colors=("red", "green", "blue"), audio=True, gop=25),
            make_video(folder / "silent clip.mp4", seconds=4, width=320, height=240, fps=30))


@pytest.fixture
def results(sources, tmp_path) -> Path:
    source, silent = sources
    rows = [(source, 1.0, 2.5, "red", 1), (silent, 0.5, 1.7, "dark", 1), (source, 4.02, 6.0, "red", 2),
            (source, 6.5, 7.9, "red", 3), (silent, 2.0, 3.0, "dark", 2)]
    return write_table(
        "moments",
        [{"run_id": "r", "query_id": "q1" if q == "red" else "q2", "query": q, "video_id": None, "path": str(src),
          "start_s": a, "end_s": b, "score": 1.0 - i / 10, "rank_in_query": rank, "rank_in_video": 1, "model": "m",
          "preset": None} for i, (src, a, b, q, rank) in enumerate(rows)],
        tmp_path / "run" / "moments.parquet",
    )


def framemd5(path: Path) -> list[str]:
    """One line per decoded frame (video and audio): stream, timestamps, size and MD5 of the frame."""
    result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0", "-f", "framemd5", "-"],
                            capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if not line.startswith("#")]


def cli(*args: str) -> int:
    from r2cli.cli.main import main

    try:
        main(list(args))
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


def run_step(tmp_path: Path, table: dict, *, status: str = "done", force: bool = False, results: Path | None = None):
    context = JobContext(
        job_file=tmp_path / "jobs" / "cut.toml",
        base=tmp_path / "jobs",
        out_dir=tmp_path / "job-out",
        force=force,
        previous=(StepResult(name="search", status=status, detail="",
                             outputs={"moments": str(results)} if results else {}),),
    )
    return job_step(resolve_workspace(tmp_path / "ws"), table, context)


def media_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_clips_of_the_command_and_the_job_step_are_the_same_frames(results, tmp_path):
    flags = {"top": 2, "pad": 0.25, "jobs": 2, "template": "{query}-{rank}-{video}.mkv"}
    assert cli("cut", str(results), "--out", str(tmp_path / "cli"), "--top", "2", "--pad", "0.25", "--jobs", "2",
               "--template", flags["template"], "--workspace", str(tmp_path / "ws")) == 0
    step = run_step(tmp_path, {**flags, "out": "../job-clips"}, results=results)
    assert step.status == "done" and step.counts == {"written": 4, "skipped": 0, "failed": 0}, step.detail
    assert step.outputs["out_dir"] == str((tmp_path / "job-clips").resolve())
    names = media_files(tmp_path / "cli")
    assert names == media_files(tmp_path / "job-clips") == [
        "dark-1-silent-clip.mkv", "dark-2-silent-clip.mkv", "red-1-source.mkv", "red-2-source.mkv"]
    for name in names:
        ours, theirs = framemd5(tmp_path / "cli" / name), framemd5(tmp_path / "job-clips" / name)
        assert ours == theirs and len(ours) > 10, name


def test_reel_of_the_command_and_the_job_step_are_the_same_frames(results, tmp_path):
    assert cli("cut", str(results), "--concat", str(tmp_path / "cli" / "reel.mp4"), "--min-score", "0.75") == 0
    step = run_step(tmp_path, {"concat": "../job/reel.mp4", "min_score": 0.75}, results=results)
    assert step.status == "done" and step.outputs["reel"] == str((tmp_path / "job" / "reel.mp4").resolve())
    assert framemd5(tmp_path / "cli" / "reel.mp4") == framemd5(tmp_path / "job" / "reel.mp4")


@pytest.mark.parametrize("format", ["edl", "otio"])
def test_timelines_of_the_command_and_the_job_step_are_identical(results, tmp_path, format):
    assert cli("cut", str(results), "--format", format, "--pad", "0.5") == 0  # default out: next to the results
    step = run_step(tmp_path, {"format": format, "pad": 0.5}, results=results)
    assert step.status == "done" and step.detail.startswith(f"wrote 1 timeline ({format}) with 5 event(s)")
    ours = results.parent / "clips" / f"moments.{format}"
    theirs = tmp_path / "job-out" / "clips" / f"moments.{format}"
    assert step.outputs["timeline"] == str(theirs)
    assert ours.read_text(encoding="utf-8") == theirs.read_text(encoding="utf-8")


def test_job_step_keeps_todays_source_semantics(results, tmp_path):
    first = run_step(tmp_path, {"format": "edl"}, results=results)
    assert first.status == "done"
    edl = tmp_path / "job-out" / "clips" / "moments.edl"
    stamp = edl.stat().st_mtime_ns
    # the search was skipped (same results): the clips are up to date
    again = run_step(tmp_path, {"format": "edl"}, status="skipped", results=results)
    assert again.status == "skipped" and "use --force to cut again" in again.detail
    # a forced job, or a search that ran again, cuts again and replaces the old outputs
    assert run_step(tmp_path, {"format": "edl"}, status="skipped", force=True, results=results).status == "done"
    assert run_step(tmp_path, {"format": "edl"}, status="done", results=results).status == "done"
    assert edl.stat().st_mtime_ns != stamp
    failed = run_step(tmp_path, {"format": "edl"}, status="error", results=results)
    assert failed.status == "error" and failed.detail == "nothing to cut: the search step did not finish"
    empty = run_step(tmp_path, {}, results=None)
    assert empty.status == "error" and empty.detail == "the search step wrote no results file to cut"
    with pytest.raises(Exception, match=r"cut\.toml: \[cut\]\.source must be search or summarize"):
        run_step(tmp_path, {"source": "report"}, results=results)
