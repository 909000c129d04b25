"""A job names every missing weights file in one message, not one per attempt (#22.6)."""

from __future__ import annotations

from fixtures import run_cli


def test_sample_job_names_the_clip_weights_and_the_checkpoint_at_once(tmp_path, ffmpeg, capsys):
    from r2cli.paths import jobs_dir

    code, out, err = run_cli(capsys, "run", str(jobs_dir() / "sample.toml"), "--workspace", str(tmp_path / "ws"))
    assert code == 4, out + err  # MissingWeightsError
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "2 weights files are missing" in lines[0]
    assert "CLIP weights 'ViT-B-32/openai'" in lines[0] and "checkpoint 'qvhighlights'" in lines[0]


def test_job_with_a_missing_local_checkpoint_names_it_with_the_missing_clip(tmp_path, ffmpeg, capsys):
    from fixtures import make_video

    make_video(tmp_path / "archive" / "a.mp4", seconds=2, width=64, height=48, fps=5)
    job = tmp_path / "job.toml"
    job.write_text('[index]\npaths = ["archive"]\nclip_weights = "absent-clip.pt"\n\n'
                   '[summarize]\nratio = 0.5\nclip_weights = "absent-clip.pt"\ncheckpoint = "absent-head.pth"\n')
    code, out, err = run_cli(capsys, "run", str(job), "--workspace", str(tmp_path / "ws"))
    assert code == 4, out + err
    line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert "2 weights files are missing" in line
    assert "absent-clip.pt does not exist" in line and "absent-head.pth does not exist" in line
