"""`r2cli index` with features: flags, JSON report, offline without weights."""

from __future__ import annotations

import json

import pytest
from fixtures import make_video

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


def test_index_feature_dtype_int8_adds_a_compact_set_beside_fp16(archive, tmp_path, tiny_clip_path, capsys):
    import numpy as np

    from r2cli.features.store import FeatureStore, open_features
    from r2cli.paths import resolve_workspace

    ws = str(tmp_path / "ws")
    args = ["index", str(archive), "--workspace", ws, "--clip-weights", str(tiny_clip_path), "--device", "cpu",
            "--batch-size", "2", "--json"]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    full_key = json.loads(out)["features"]["settings_key"]
    code, out, err = run(capsys, *args, "--feature-dtype", "int8")
    assert code == 0, err
    report = json.loads(out)["features"]
    assert report["settings"]["dtype"] == "int8" and report["settings_key"] != full_key
    assert report["videos_extracted"] == 1  # a separate feature set: extracted, not reused
    files = sorted(FeatureStore(resolve_workspace(ws).features_dir).root.glob("*/*.safetensors"))
    by_dtype = {f.settings.dtype: f for f in map(open_features, files)}
    assert set(by_dtype) == {"float16", "int8"}
    full, compact = np.asarray(by_dtype["float16"].layers, dtype=np.float32), np.asarray(by_dtype["int8"].layers)
    scales = np.asarray(by_dtype["int8"].layers.scales, dtype=np.float32)[:, :, None, :]
    # quantized from the fp32 output of CLIP: within half a scale of it, so within that plus fp16's rounding of fp16
    assert (np.abs(full - compact) <= scales * 0.5 + np.abs(full) * 2.0**-11 + 1e-6).all()
    code, _out, err = run(capsys, *args[:-1], "--feature-dtype", "int4")
    assert code != 0 and "--feature-dtype" in err
