"""The Ray index's write path without a cluster: each actor places its clips' layers in the video's
feature file, the assembly only appends the small arrays, and the file is byte for byte the one the
local writer makes (fp16 and int8), with every feature byte written once."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from r2cli.errors import FeatureError
from r2cli.features.stages import WorkItem
from r2cli.features.store import FeatureSettings, FeatureStore

SETTINGS = FeatureSettings(clip_model="ViT-B-32", weights_id="ViT-B-32/openai")
EXTRA = {"ffmpeg": "test"}


def _item(clips: int) -> WorkItem:
    return WorkItem(fingerprint="blake2b:" + "c4" * 32, path="/archive/a.mp4", size=None, mtime=None,
                    duration=clips * 2.0, video_ids=(1,))


def _features(clips: int, width: int = 16):
    rng = np.random.default_rng(3)
    layers = rng.standard_normal((clips, 4, 5, width)).astype(np.float16)
    embed = rng.standard_normal((clips, 8)).astype(np.float16)
    return layers, embed, np.arange(clips) * 2.0 + 1.0


def _wchar() -> int:
    with open("/proc/self/io") as handle:
        return next(int(line.split(":")[1]) for line in handle if line.startswith("wchar"))


def _on_the_cluster_path(root, item, settings, layers, embed, stamps, runs):
    from r2cli.distributed.index import assemble, plan_target, store_clips

    store = FeatureStore(root)
    target = plan_target(store, item, settings, EXTRA)
    for first, last in runs:  # actors finish in any order; one run is written twice (a retried task)
        store_clips(target, first, last, layers[first : last + 1], embed[first : last + 1],
                    stamps[first : last + 1], settings.dtype)
    return store, target, assemble(store, item, settings, target, len(stamps), {"decoded_frames": 1}, EXTRA)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_placed_file_is_the_local_writers_file(tmp_path, monkeypatch, dtype):
    import r2cli.features.stages as stages

    monkeypatch.setattr(stages, "file_changed", lambda item: None)  # the video file is not needed here
    settings = dataclasses.replace(SETTINGS, dtype=dtype)
    item = _item(23)
    layers, embed, stamps = _features(23)
    runs = [(16, 22), (0, 7), (8, 15), (0, 7)]
    store, target, stored = _on_the_cluster_path(tmp_path / "ray", item, settings, layers, embed, stamps, runs)

    local = FeatureStore(tmp_path / "local")
    writer = stages.open_writer(local, item, settings, EXTRA)
    stages.write_chunk(writer, stages.Embedded(layers=layers[:10], embed=embed[:10]), stamps[:10])
    stages.write_chunk(writer, stages.Embedded(layers=layers[10:], embed=embed[10:]), stamps[10:])
    expected = stages.commit_features(writer, item, {"decoded_frames": 1})
    assert stored == dataclasses.replace(expected, relpath=stored.relpath) and stored.relpath == expected.relpath
    assert store.path(item.fingerprint, settings).read_bytes() == local.path(item.fingerprint, settings).read_bytes()
    assert not os.path.exists(target.staging) and not os.path.exists(target.placed)


def test_every_feature_byte_is_written_once(tmp_path, monkeypatch):
    import r2cli.features.stages as stages

    monkeypatch.setattr(stages, "file_changed", lambda item: None)
    item = _item(64)
    layers, embed, stamps = _features(64, width=768)
    runs = [(first, first + 15) for first in range(0, 64, 16)]
    before = _wchar()
    _store, _target, stored = _on_the_cluster_path(tmp_path, item, SETTINGS, layers, embed, stamps, runs)
    written = _wchar() - before
    # staging whole parts and copying them into the writer wrote 2.0x the file (benchmarks/RESULTS-compact.md)
    assert written < 1.1 * stored.bytes, (written, stored.bytes)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_non_finite_layers_fail_the_video_at_assembly(tmp_path, monkeypatch, dtype):
    import r2cli.features.stages as stages

    monkeypatch.setattr(stages, "file_changed", lambda item: None)
    settings = dataclasses.replace(SETTINGS, dtype=dtype)
    item = _item(8)
    layers, embed, stamps = _features(8)
    layers[5, 1, 2, 3] = np.inf
    with pytest.raises(FeatureError, match="non-finite"):
        _on_the_cluster_path(tmp_path, item, settings, layers, embed, stamps, [(0, 7)])
    assert not FeatureStore(tmp_path).path(item.fingerprint, settings).exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing left behind
