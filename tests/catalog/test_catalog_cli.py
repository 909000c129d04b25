"""`r2cli index`, `r2cli catalog list|show|stats` and `r2cli doctor` through the real entry point.

The index/catalog tests run on SQLite and on PostgreSQL (``--catalog postgresql+psycopg://...``).
"""

from __future__ import annotations

import json

import pytest
from catalogkit import is_sqlite, workspace_args

from r2cli.catalog.migrations import LATEST_VERSION
from r2cli.cli.main import main


@pytest.fixture(autouse=True)
def _wide_console():
    """Rich folds long cells at 80 columns; tmp paths are long."""
    from r2cli.cli._common import console, err_console

    widths = console.width, err_console.width
    console.width = err_console.width = 400
    yield
    console.width, err_console.width = widths


def run(capsys, *args: str) -> tuple[int, str, str]:
    """main(argv) in-process: returns (exit code, stdout, stderr) as a user would see them."""
    with pytest.raises(SystemExit) as caught:
        main(["--help"] if not args else list(args))
    out = capsys.readouterr()
    code = caught.value.code
    return (0 if code is None else int(code)), out.out, out.err


@pytest.fixture
def indexed(tmp_path, workspace, make_copy, capsys):
    """(archive, the CLI's workspace flags, the index report)."""
    archive = tmp_path / "archive"
    make_copy(archive / "a.mp4", "a")
    make_copy(archive / "b b.mp4", "b")
    (archive / "broken.mp4").write_text("not a video")
    ws = workspace_args(workspace)
    code, out, err = run(capsys, "index", str(archive), *ws, "--no-features", "--json")
    assert code == 0, err
    return archive, ws, json.loads(out)


def test_index_json_shape(indexed, workspace):
    archive, ws, report = indexed
    assert set(report) == {
        "roots", "catalog", "dry_run", "new", "updated", "unchanged", "moved", "missing", "errors", "probed",
        "ignored", "file_errors", "elapsed", "seen", "features", "coarse_index",
    }
    assert (report["new"], report["errors"], report["seen"], report["dry_run"]) == (2, 1, 3, False)
    assert report["features"] is None  # --no-features
    assert report["roots"] == [str(archive)]
    if is_sqlite(workspace):
        assert report["catalog"].endswith("ws/catalog.sqlite")
    else:
        assert report["catalog"] == workspace.catalog_url
    assert report["file_errors"] == [
        {"path": str(archive / "broken.mp4"), "error": "ffprobe cannot read it: moov atom not found; "
         "Invalid data found when processing input", "known": False}
    ]


def test_index_table_and_exit_codes(indexed, capsys):
    archive, ws, _ = indexed
    code, out, _ = run(capsys, "index", str(archive), *ws, "--no-features")
    assert code == 0
    assert "unchanged │     2" in out and "errors    │     1" in out and "broken.mp4" in out
    assert "(unchanged since it failed)" in out
    code, out, err = run(capsys, "index", str(archive), *ws, "--no-features", "--strict")
    assert code == 1 and "error: 1 of 3 paths failed (--strict); first:" in err and "broken.mp4" in err
    code, _, err = run(capsys, "index", str(archive / "nope"), *ws)
    assert code == 2 and "nope: no such file or folder" in err
    code, _, err = run(capsys, "index", str(archive), *ws, "--ext", "*.mp4")
    assert code == 2 and "--ext takes plain extensions" in err
    code, _, err = run(capsys, "index", *ws)
    assert code == 2 and "Missing argument" in err


def test_index_dry_run_writes_nothing(tmp_path, workspace, make_copy, capsys):
    from r2cli.catalog import catalog_exists

    make_copy(tmp_path / "archive" / "a.mp4", "a")
    code, out, _ = run(capsys, "index", str(tmp_path / "archive"), *workspace_args(workspace), "--dry-run")
    assert code == 0 and "dry run: nothing written" in out and "new       │     1" in out
    assert not workspace.root.exists() and not catalog_exists(workspace)


def test_catalog_list_show_stats(indexed, capsys):
    archive, ws, _ = indexed
    code, out, _ = run(capsys, "catalog", "list", *ws, "--json")
    listed = json.loads(out)
    assert code == 0 and [v["path"] for v in listed] == sorted(str(archive / n) for n in ("a.mp4", "b b.mp4", "broken.mp4"))
    code, out, _ = run(capsys, "catalog", "list", *ws, "--status", "error", "--json")
    assert [v["path"] for v in json.loads(out)] == [str(archive / "broken.mp4")]
    code, out, _ = run(capsys, "catalog", "list", *ws, "--path", "*/b *", "--json")
    assert [v["path"] for v in json.loads(out)] == [str(archive / "b b.mp4")]
    code, out, _ = run(capsys, "catalog", "list", *ws, "--status", "ok")
    assert code == 0 and "a.mp4" in out and "broken" not in out and "2 videos" in out
    code, _, err = run(capsys, "catalog", "list", *ws, "--status", "fine")
    assert code == 2 and "--status must be one of ok, error, missing; got 'fine'" in err

    video_id = next(v["id"] for v in listed if v["path"].endswith("a.mp4"))
    code, out, _ = run(capsys, "catalog", "show", str(video_id), *ws, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["video"]["path"] == str(archive / "a.mp4") and shown["feature_sets"] == []
    assert shown["video"]["frame_count"] == 10 and _aware(shown["video"]["first_seen"])
    code, out, _ = run(capsys, "catalog", "show", str(archive / "b b.mp4"), *ws)
    assert code == 0 and "fingerprint" in out and "blake2b:" in out and "no feature sets yet" in out
    code, _, err = run(capsys, "catalog", "show", "999", *ws)
    assert code == 1 and "no video '999' in catalog" in err

    code, out, _ = run(capsys, "catalog", "stats", *ws, "--json")
    stats = json.loads(out)
    assert stats["by_status"] == {"ok": 2, "error": 1, "missing": 0} and stats["videos"] == 3
    assert stats["hours"] == pytest.approx(2 / 3600, abs=1e-4) and stats["schema_version"] == LATEST_VERSION
    assert stats["features"] == {"none": 2} and stats["feature_sets"] == 0
    code, out, _ = run(capsys, "catalog", "stats", *ws)
    assert code == 0 and "schema version" in out and "hours (ok)" in out


def test_catalog_commands_need_a_catalog(workspace, capsys):
    code, _, err = run(capsys, "catalog", "stats", *workspace_args(workspace))
    assert code == 5 and "no catalog" in err and "r2cli index DIR" in err
    assert not workspace.root.exists()


def test_doctor(tmp_path, monkeypatch, capsys, ffmpeg, make_copy):
    cache = tmp_path / "cache"
    (cache / "clip").mkdir(parents=True)
    (cache / "clip" / "ViT-B-32.pt").write_bytes(b"0" * 2048)
    (cache / "clip" / "ViT-B-32.pt.lock").write_bytes(b"")  # registry bookkeeping: not listed
    (cache / "checkpoints").mkdir()
    (cache / "checkpoints" / "r2_tuning_qvhighlights-ed516355.pth.part").write_bytes(b"0" * 10)
    monkeypatch.setenv("R2CLI_CACHE", str(cache))
    ws = ["--workspace", str(tmp_path / "ws")]
    code, out, err = run(capsys, "doctor", *ws, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["tools"]["ffmpeg"]["path"].endswith("ffmpeg") and report["tools"]["ffprobe"]["version"]
    assert report["torch"]["version"] and report["torch"]["device"] in ("cpu", "cuda", "mps")
    assert report["catalog"]["exists"] is False and report["catalog"]["latest_version"] == LATEST_VERSION
    assert report["weights_cache"] == {"dir": str(cache), "exists": True, "files": [
        {"path": "checkpoints/r2_tuning_qvhighlights-ed516355.pth.part", "bytes": 10, "partial": True},
        {"path": "clip/ViT-B-32.pt", "bytes": 2048, "partial": False},
    ]}
    assert not (tmp_path / "ws").exists()  # doctor creates nothing
    make_copy(tmp_path / "archive" / "a.mp4", "a")
    run(capsys, "index", str(tmp_path / "archive"), *ws, "--no-features")
    code, out, _ = run(capsys, "doctor", *ws)
    assert code == 0 and f"schema version {LATEST_VERSION}" in out and "1 videos" in out and "clip/ViT-B-32.pt" in out
    assert "partial download" in out and ".lock" not in out
    monkeypatch.setenv("R2CLI_FFMPEG", str(tmp_path / "no-ffmpeg"))
    code, out, err = run(capsys, "doctor", *ws, "--json")
    assert code == 3 and json.loads(out)["ok"] is False and "ffmpeg not found" in err


def _aware(text: str) -> bool:
    """ISO 8601 with an offset (#22.11)."""
    import datetime as dt

    return dt.datetime.fromisoformat(text).utcoffset() is not None
