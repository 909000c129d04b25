"""Re-indexing an unchanged archive says there was nothing to do, not "0.0 video-hours per hour" (#22.14)."""

from __future__ import annotations

from fixtures import make_video
from fixtures import run_cli as run


def test_unchanged_archive_has_nothing_to_do(tmp_path, ffmpeg, tiny_clip_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    make_video(tmp_path / "archive" / "a.mp4", seconds=2, width=64, height=48, fps=5)
    args = ("index", tmp_path / "archive", "--workspace", tmp_path / "ws", "--clip-weights", tiny_clip_path,
            "--device", "cpu")
    code, out, err = run(capsys, *args)
    assert code == 0 and "features: 1 extracted" in out, err
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "features: nothing to do (1 already done)" in out
    assert "video-hours per hour" not in out


def test_unchanged_archive_is_answered_without_loading_the_model(tmp_path, ffmpeg, tiny_clip_path, capsys):
    """The no-op re-index neither imports torch nor loads CLIP (it took all of its 3.5-4 s); other
    settings (another fps) still extract."""
    import json
    import subprocess
    import sys

    make_video(tmp_path / "archive" / "a.mp4", seconds=2, width=64, height=48, fps=5)
    args = ["index", str(tmp_path / "archive"), "--workspace", str(tmp_path / "ws"), "--clip-weights",
            str(tiny_clip_path), "--device", "cpu"]
    assert run(capsys, *args)[0] == 0
    probe = ("import json, sys\nfrom r2cli.cli.main import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    assert not exc.code\n"
             "print(json.dumps({'torch': 'torch' in sys.modules, 'open_clip': 'open_clip' in sys.modules}))\n")
    result = subprocess.run([sys.executable, "-c", probe, *args, "--json"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"torch": False, "open_clip": False}
    code, out, err = run(capsys, *args, "--fps", "1")
    assert code == 0 and "features: 1 extracted" in out, err
