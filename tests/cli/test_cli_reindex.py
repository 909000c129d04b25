"""Re-indexing an unchanged archive says there was nothing to do, not "0.0 video-hours per hour" (#22.14)."""

from __future__ import annotations

from media import make_video


def run(capsys, *args) -> tuple[int, str, str]:
    from r2cli.cli.main import main

    capsys.readouterr()
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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
