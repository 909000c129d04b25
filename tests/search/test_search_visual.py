"""Search by picture (#20.2): `r2cli search --image STILL` and `--clip VIDEO[:START-END]` on an archive indexed
for real (generated media, the tiny CLIP tower), their outputs, `cut` and `report` on them, and the errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fixtures import run_cli

SCENES = ("red", "blue", "green", "yellow", "purple", "orange", "navy", "gray")  # 2 s each: one scene per clip


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_clip_path):
    """An archive indexed by `r2cli index` at the default 0.5 fps:

    scenes.mp4: make_video(seconds=16, colors=SCENES) (ffmpeg lavfi color sources, concat, moving box);
    pattern.mp4: make_testsrc(seconds=12) (ffmpeg -f lavfi -i testsrc2=s=320x240:r=25:d=12).
    """
    import shutil

    if not shutil.which("ffmpeg") or not shutil.which("ffprobe"):
        pytest.skip("ffmpeg/ffprobe not found on PATH (apt-get install ffmpeg)")
    from fixtures import make_testsrc, make_video

    from r2cli.app.index import IndexOptions, run_index
    from r2cli.paths import resolve_workspace

    base = tmp_path_factory.mktemp("visual")
    archive = base / "archive"
    make_video(archive / "scenes.mp4", seconds=16, width=160, height=120, colors=SCENES)
    make_testsrc(archive / "pattern.mp4", seconds=12)
    workspace = resolve_workspace(base / "ws")
    result = run_index(workspace, IndexOptions.from_flags(paths=[archive], clip_weights=str(tiny_clip_path),
                                                          device="cpu"))
    assert result.features.videos_extracted == 2
    return workspace, archive, base


def _still(video: Path, seconds: float, out: Path) -> Path:
    """ffmpeg -ss SECONDS -i VIDEO -frames:v 1 -q:v 2 OUT.jpg: a still as a user would grab it."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{seconds}", "-i", str(video),
                    "-frames:v", "1", "-q:v", "2", str(out)], check=True)
    return out


def _search(workspace, clip_weights, **options):
    from r2cli.app.search import SearchOptions, run_search

    return run_search(workspace, SearchOptions.from_flags(clip_weights=str(clip_weights), device="cpu", **options))


def test_a_still_cut_at_a_sampled_time_finds_that_moment_first(indexed, tiny_clip_path, tmp_path):
    import pandas as pd

    workspace, archive, _ = indexed
    still = _still(archive / "scenes.mp4", 7.0, tmp_path / "still.jpg")  # clip 3 ([6, 8) s) takes the frame at 7 s
    result = _search(workspace, tiny_clip_path, image=(still,), match_margin=0.01, out=tmp_path / "run")
    moments = result.moments
    first = moments.iloc[0]
    assert Path(first["path"]).name == "scenes.mp4"
    assert (first["start_s"], first["end_s"]) == (6.0, 8.0)
    assert first["query_kind"] == "image" and first["query"] == str(still)
    # the still goes through the index's crop and tower: its embedding is the stored clip's, up to JPEG
    assert first["score"] > 0.99
    saliency = pd.read_parquet(result.files["saliency"])
    scenes = saliency[saliency["path"].str.endswith("scenes.mp4")].sort_values("clip_index")
    assert int(scenes["clip_index"].iloc[int(scenes["score"].to_numpy().argmax())]) == 3
    assert result.counts["pairs"] == 0  # R2-Tuning grounded nothing


def test_fine_stage_options_are_ignored_with_a_warning(indexed, tiny_clip_path, tmp_path):
    workspace, archive, _ = indexed
    still = _still(archive / "scenes.mp4", 7.0, tmp_path / "still.jpg")
    result = _search(workspace, tiny_clip_path, image=(still,), candidates=3, checkpoint="absent.pth",
                     out=tmp_path / "run")
    assert result.warnings == ["--candidates, --checkpoint set the fine stage, which image and clip queries do "
                               "not run; ignored"]
    assert len(result.moments)  # no checkpoint was needed


def test_the_still_goes_through_the_index_crop(indexed, tiny_clip_path, tmp_path):
    """A frame decoded by still_frame equals the frame the index sampled (same scale and crop)."""
    import numpy as np

    from r2cli.media.frames import range_frames, still_frame

    _, archive, _ = indexed
    png = tmp_path / "frame.png"  # lossless, so only the path through ffmpeg can differ
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-ss", "7", "-i",
                    str(archive / "scenes.mp4"), "-frames:v", "1", str(png)], check=True)
    still = still_frame(png, size=64)
    frames, clips = range_frames(archive / "scenes.mp4", fps=0.5, start_s=6, end_s=8, size=64)
    assert list(clips) == [3] and still.shape == (64, 64, 3)
    assert np.abs(still.astype(int) - frames[0].astype(int)).mean() < 3  # yuv->rgb rounding only


def test_a_clip_range_finds_its_own_range_first(indexed, tiny_clip_path, tmp_path):
    workspace, archive, _ = indexed
    spec = f"{archive / 'pattern.mp4'}:0:04-0:08"  # m:ss: clips 2 and 3
    result = _search(workspace, tiny_clip_path, clip=(spec,), match_margin=0.02, out=tmp_path / "run")
    first = result.moments.iloc[0]
    assert Path(first["path"]).name == "pattern.mp4" and first["query_kind"] == "clip"
    assert first["start_s"] < 8.0 and first["end_s"] > 4.0  # overlaps the range
    assert 4.0 <= first["start_s"] and first["end_s"] <= 8.0  # and stays inside it at a tight margin
    assert first["query"] == spec


def test_images_and_clips_in_one_run_rank_each_query(indexed, tiny_clip_path, tmp_path):
    workspace, archive, _ = indexed
    still = _still(archive / "scenes.mp4", 13.0, tmp_path / "s.jpg")  # clip 6
    result = _search(workspace, tiny_clip_path, image=(still,), clip=(f"{archive / 'scenes.mp4'}:2-4",),
                     match_margin=0.01, out=tmp_path / "run")
    moments = result.moments
    assert list(dict.fromkeys(moments["query_id"])) == ["q1", "q2"]
    best = moments[moments["rank_in_query"] == 1].set_index("query_id")
    assert (best.loc["q1", "start_s"], best.loc["q2", "start_s"]) == (12.0, 2.0)
    assert list(best["query_kind"]) == ["image", "clip"]


@pytest.mark.parametrize("args, message", [
    (["--image", "{tmp}/absent.jpg"], "--image {tmp}/absent.jpg: no such file"),
    (["--image", "{tmp}/notes.jpg"], "--image {tmp}/notes.jpg: not a picture ffmpeg can read"),
    (["--clip", "{archive}/scenes.mp4:9-3"], "--clip must be VIDEO or VIDEO:START-END"),
    (["--clip", "{archive}/scenes.mp4:1:75-2:00"], "seconds of m:ss must be below 60"),
    (["--clip", "{archive}/scenes.mp4:30-40"], "no frame in 30-40 s"),
    (["--clip", "{archive}/scenes.mp4:5"], "scenes.mp4:5: no such file (a range is VIDEO:START-END)"),
    (["--image", "{tmp}/notes.jpg", "a red scene"], "need separate runs"),
    (["--image", "{tmp}/notes.jpg", "--format", "official"], "--format official needs sentences"),
])
def test_bad_picture_queries_are_one_line_naming_the_flag(indexed, tiny_clip_path, tmp_path, capsys, args, message):
    workspace, archive, _ = indexed
    (tmp_path / "notes.jpg").write_text("not a picture")
    fill = {"tmp": tmp_path, "archive": archive}
    code, out, err = run_cli(capsys, "search", *[a.format(**fill) for a in args], "--workspace", workspace.root,
                             "--clip-weights", tiny_clip_path, "--device", "cpu")
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert message.format(**fill) in lines[0]
    if "--clip" in args:
        assert "--clip" in lines[0]


def test_parquet_query_kind_table_cut_and_report(indexed, tiny_clip_path, tmp_path, capsys):
    import pyarrow.parquet as pq

    workspace, archive, _ = indexed
    still = _still(archive / "scenes.mp4", 9.0, tmp_path / "purple still.jpg")
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "search", "--image", still, "--match-margin", "0.01", "--out", out,
                                "--workspace", workspace.root, "--clip-weights", tiny_clip_path, "--device", "cpu",
                                "--report")
    assert code == 0, err
    assert "purple still.jpg" in stdout and "scenes.mp4" in stdout  # the ranked table
    assert "(image)" in stdout and "14 clips compared by CLIP" in " ".join(stdout.split()), stdout
    table = pq.read_table(out / "moments.parquet")
    assert "query_kind" in table.column_names and set(table.column("query_kind").to_pylist()) == {"image"}
    assert table.schema.metadata[b"r2cli.schema_version"] == b"2"
    # the report shows the image query and says it is one
    pages = "".join(p.read_text(encoding="utf-8") for p in (out / "report").glob("*.html"))
    assert "purple still.jpg" in pages and "Image query" in pages
    # cut works on image results as on text results
    clips = tmp_path / "clips"
    code, stdout, err = run_cli(capsys, "cut", out / "moments.parquet", "--out", clips, "--top", "1")
    assert code == 0, err
    made = sorted(p for p in clips.iterdir() if p.suffix == ".mp4")
    assert len(made) == 1
    from r2cli.media.probe import probe

    assert probe(made[0]).duration == pytest.approx(2.0, abs=0.2)  # clip 4: [8, 10) s


def test_a_job_file_searches_by_image_and_clip(indexed, tiny_clip_path, tmp_path, capsys):
    """[search] image/clip keys: paths relative to the job file, as every path of a job is."""
    import pandas as pd

    workspace, archive, _ = indexed
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    _still(archive / "scenes.mp4", 5.0, jobs / "still.jpg")  # clip 2
    (jobs / "media").symlink_to(archive)
    (jobs / "visual.toml").write_text(
        "[job]\nname = 'visual'\n[search]\nimage = ['still.jpg']\nclip = ['media/scenes.mp4:10-12']\n"
        f"match_margin = 0.01\nclip_weights = '{tiny_clip_path}'\ndevice = 'cpu'\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "run", jobs / "visual.toml", "--workspace", workspace.root)
    assert code == 0, out + err
    moments = pd.read_parquet(next(workspace.runs_dir.glob("job-visual*")) / "search" / "moments.parquet")
    best = moments[moments["rank_in_query"] == 1].set_index("query_id")
    assert (best.loc["q1", "start_s"], best.loc["q2", "start_s"]) == (4.0, 10.0)
    assert list(best["query_kind"]) == ["image", "clip"]
    code, out, err = run_cli(capsys, "run", jobs / "visual.toml", "--workspace", workspace.root)
    assert code == 0 and "outputs for the same settings exist" in " ".join((out + err).split())  # resumed


def test_help_says_pictures_skip_the_fine_stage(capsys):
    code, out, _ = run_cli(capsys, "search", "--help")
    text = " ".join(out.split())
    assert code == 0 and "--image" in text and "--clip" in text
    assert "R2-Tuning's fine stage grounds sentences, so it is not run for pictures" in text.replace("│ ", "")


def test_runs_of_matching_clips_become_moments():
    """runs_to_moments: clips >= threshold, runs of at least min_run clips, clamped to the video, best first."""
    import numpy as np

    from r2cli.inference.visual import runs_to_moments

    sims = np.array([0.2, 0.95, 0.97, 0.3, 0.99, 0.1, 0.96, 0.96], dtype=np.float32)
    rows = runs_to_moments(sims, threshold=0.9, min_run=1, fps=0.5, duration=15.0)
    assert rows[:, :2].tolist() == [[8.0, 10.0], [2.0, 6.0], [12.0, 15.0]]  # the last clip ends at the video's end
    assert rows[:, 2] == pytest.approx([0.99, 0.97, 0.96])
    rows = runs_to_moments(sims, threshold=0.9, min_run=2, fps=0.5, duration=15.0)
    assert rows[:, :2].tolist() == [[2.0, 6.0], [12.0, 15.0]]
    assert runs_to_moments(np.array([-np.inf, 0.5]), threshold=0.9, min_run=1, fps=1, duration=2).shape == (0, 3)


@pytest.mark.parametrize("spec, parsed", [
    ("a.mp4", ("a.mp4", 0.0, None)),
    ("a.mp4:5-9.5", ("a.mp4", 5.0, 9.5)),
    ("dir:x/a.mp4:1:05-1:20", ("dir:x/a.mp4", 65.0, 80.0)),
    ("a.mp4:0:59.5-1:00", ("a.mp4", 59.5, 60.0)),
])
def test_clip_specs(spec, parsed):
    from r2cli.app.search_visual import parse_clip_spec

    assert parse_clip_spec(spec) == (parsed, None)
