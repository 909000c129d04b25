"""`r2cli index` with features: flags, JSON report, offline without weights."""

from __future__ import annotations

import json

import pytest
from media import make_video

from r2cli.cli.main import main


@pytest.fixture(autouse=True)
def _wide_console():
    from r2cli.cli._common import console, err_console

    widths = console.width, err_console.width
    console.width = err_console.width = 400
    yield
    console.width, err_console.width = widths


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out = capsys.readouterr()
    code = caught.value.code
    return (0 if code is None else int(code)), out.out, out.err


@pytest.fixture(scope="module")
def archive(ffmpeg, tmp_path_factory):
    folder = tmp_path_factory.mktemp("archive")
    make_video(folder / "a.mp4", seconds=6, width=96, height=64)
    make_video(folder / "tiny.mp4", seconds=0.4)
    return folder


def test_index_extracts_features(archive, tmp_path, tiny_clip_path, capsys):
    ws = str(tmp_path / "ws")
    args = ["index", str(archive), "--workspace", ws, "--clip-weights", str(tiny_clip_path), "--device", "cpu"]
    code, out, err = run(capsys, *args, "--batch-size", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["new"] == 2
    features = report["features"]
    assert (features["videos_extracted"], features["videos_failed"], features["clips"]) == (1, 1, 3)
    assert features["device"] == "cpu" and features["batch_size"] == 2 and features["settings"]["fps"] == 0.5
    assert features["failures"][0]["path"].endswith("tiny.mp4")

    code, out, _ = run(capsys, *args, "--fps", "1")
    assert code == 0
    assert "features: 1 extracted, 0 already done, 1 failed; 6 clips" in out
    assert "too short for one clip at 1 fps" in out

    code, out, _ = run(capsys, "catalog", "stats", "--workspace", ws, "--json")
    stats = json.loads(out)
    assert stats["feature_sets"] == 2


def test_no_features_only_scans(archive, tmp_path, capsys):
    code, out, _ = run(capsys, "index", str(archive), "--workspace", str(tmp_path / "ws"), "--no-features", "--json")
    assert code == 0 and json.loads(out)["features"] is None
    assert not list((tmp_path / "ws" / "features").rglob("*.safetensors"))


def test_offline_without_weights_keeps_the_scan(archive, tmp_path, capsys):
    ws = str(tmp_path / "ws")
    code, _, err = run(capsys, "index", str(archive), "--workspace", ws, "--device", "cpu")
    assert code == 4
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "offline" in last
    assert "catalog updated (2 paths: 2 new" in err
    code, out, _ = run(capsys, "catalog", "list", "--workspace", ws, "--json")
    assert code == 0 and len(json.loads(out)) == 2  # the scan was committed


def test_bad_feature_flags_fail_before_scanning(archive, tmp_path, capsys):
    code, _, err = run(capsys, "index", str(archive), "--workspace", str(tmp_path / "ws"), "--fps", "0")
    assert code == 2 and "--fps must be in (0, 1000], got 0.0" in err
    assert not (tmp_path / "ws").exists()
