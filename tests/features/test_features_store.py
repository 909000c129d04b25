"""Feature store: content-addressed keys, safetensors round trips, atomic streaming writes."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import load_file

from r2cli.errors import FeatureError, UsageError
from r2cli.features.store import FeatureSettings, FeatureStore, open_features

FP = "blake2b:" + "3f" * 64
OTHER_FP = "blake2b:" + "a1" * 64


def make_settings(**changes) -> FeatureSettings:
    base = FeatureSettings(clip_model="ViT-B-32", weights_id="ViT-B-32/openai")
    return dataclasses.replace(base, **changes)


def arrays(clips: int = 3, k: int = 4, tokens: int = 5, width: int = 8, dim: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    layers = rng.standard_normal((clips, k, tokens, width)).astype(np.float32)
    embed = rng.standard_normal((clips, dim)).astype(np.float32)
    stamps = np.arange(clips, dtype=np.float64) * 2 + 0.96
    return layers, embed, stamps


def test_every_setting_changes_the_key():
    base = make_settings()
    assert base.key() == make_settings().key()
    assert len(base.key()) == 16 and int(base.key(), 16) >= 0
    changes = {
        "clip_model": "ViT-B-16",
        "weights_id": "sha256:0123456789abcdef",
        "fps": 1.0,
        "image_size": 256,
        "k": 3,
        "frame_rule": "ffmpeg-fps-near-noref",
        "precision": "bf16",
    }
    keys = {base.key()}
    for name, value in changes.items():
        keys.add(make_settings(**{name: value}).key())
    assert len(keys) == len(changes) + 1
    assert make_settings(fps=1).key() == make_settings(fps=1.0).key()  # 1 and 1.0 are one setting


def test_settings_validate_where_they_enter():
    with pytest.raises(UsageError, match="--fps must be a number"):
        make_settings(fps=-1)
    with pytest.raises(UsageError, match="k must be a positive integer"):
        make_settings(k=0)
    with pytest.raises(UsageError, match="feature dtype must be one of float16"):
        make_settings(dtype="float32")
    with pytest.raises(FeatureError, match="unknown fields"):
        FeatureSettings.from_dict({**make_settings().to_dict(), "future": 1})


def test_round_trip_is_memory_mapped_and_plain_safetensors(tmp_path):
    store = FeatureStore(tmp_path / "features")
    layers, embed, stamps = arrays()
    stored = store.put(FP, make_settings(), layers, embed, stamps, duration=5.0, extra={"decoded_frames": 125})
    path = store.root / stored.relpath
    assert stored.relpath == f"3f/{'3f' * 64}-{make_settings().key()}.safetensors"
    assert stored.bytes == path.stat().st_size
    assert stored.shape == {"layers": [3, 4, 5, 8], "embed": [3, 6], "timestamps": [3]}

    got = store.get(FP, make_settings())
    assert isinstance(got.layers, np.memmap) and got.layers.dtype == np.float16  # a view of the mapped file
    np.testing.assert_array_equal(got.layers, layers.astype(np.float16))
    np.testing.assert_array_equal(got.embed, embed.astype(np.float16))
    np.testing.assert_array_equal(got.timestamps, stamps)
    assert got.num_clips == 3 and got.fps == 0.5 and got.duration == 5.0
    assert got.clip_bounds(2) == (4.0, 6.0)

    plain = load_file(path)  # readable without r2cli
    assert plain["layers"].dtype == np.float16 and plain["timestamps"].dtype == np.float64
    np.testing.assert_array_equal(plain["layers"], got.layers)
    with safe_open(path, framework="numpy") as handle:
        meta = handle.metadata()
    assert meta["fingerprint"] == FP and meta["settings_key"] == make_settings().key()
    assert FeatureSettings.from_dict(__import__("json").loads(meta["settings"])) == make_settings()


@settings(max_examples=25, deadline=None)
@given(
    clips=st.integers(min_value=1, max_value=9),
    k=st.integers(min_value=1, max_value=4),
    tokens=st.integers(min_value=1, max_value=7),
    width=st.integers(min_value=1, max_value=16),
    dim=st.integers(min_value=1, max_value=8),
    split=st.integers(min_value=1, max_value=9),
)
def test_streamed_writes_equal_one_put(tmp_path_factory, clips, k, tokens, width, dim, split):
    root = tmp_path_factory.mktemp("store")
    store = FeatureStore(root)
    layers, embed, stamps = arrays(clips, k, tokens, width, dim)
    settings_ = make_settings(k=k)
    with store.writer(FP, settings_) as writer:
        for start in range(0, clips, split):
            writer.append(layers[start : start + split], embed[start : start + split], stamps[start : start + split])
        stored = writer.commit()
    got = load_file(root / stored.relpath)
    np.testing.assert_array_equal(got["layers"], layers.astype(np.float16))
    np.testing.assert_array_equal(got["embed"], embed.astype(np.float16))
    np.testing.assert_array_equal(got["timestamps"], stamps)


def test_content_and_settings_address_the_file(tmp_path):
    store = FeatureStore(tmp_path)
    store.put(FP, make_settings(), *arrays())
    assert store.get(OTHER_FP, make_settings()) is None  # an edited file has another fingerprint
    assert store.get(FP, make_settings(fps=1.0)) is None  # another setting, another file
    assert store.get(FP, make_settings()) is not None
    # A file under the right name but holding something else is refused, never served.
    store.path(OTHER_FP, make_settings()).parent.mkdir()
    os.replace(store.path(FP, make_settings()), store.path(OTHER_FP, make_settings()))
    with pytest.raises(FeatureError, match="holds features of"):
        store.get(OTHER_FP, make_settings())


def test_interrupted_writer_leaves_nothing_readable(tmp_path):
    store = FeatureStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writer(FP, make_settings()) as writer:
            writer.append(*arrays())
            assert list(tmp_path.glob("*/.*.tmp"))  # data is on disk, under a temporary name
            raise RuntimeError("killed")
    assert store.get(FP, make_settings()) is None
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.safetensors"))


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    store = FeatureStore(tmp_path)
    writer = store.writer(FP, make_settings())
    writer.__enter__()
    writer.append(*arrays())
    temp = next(tmp_path.glob("*/.*.tmp"))
    dead = temp.with_name(temp.name.replace(f".{os.getpid()}.", ".999999999."))
    temp.rename(dead)  # as if written by a process that no longer exists
    writer._temp = None
    writer.abort()
    assert store.remove_stale_temporaries() == 1
    assert not dead.exists()


def test_truncated_or_foreign_files_are_refused(tmp_path):
    store = FeatureStore(tmp_path)
    stored = store.put(FP, make_settings(), *arrays())
    path = tmp_path / stored.relpath
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(FeatureError, match="does not fit the file"):
        store.get(FP, make_settings())
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(FeatureError, match="not an r2cli feature file"):
        open_features(path)


def test_writer_checks_shapes(tmp_path):
    store = FeatureStore(tmp_path)
    layers, embed, stamps = arrays()
    with store.writer(FP, make_settings()) as writer:
        with pytest.raises(FeatureError, match="disagree on the clip count"):
            writer.append(layers, embed[:2], stamps)
        with pytest.raises(FeatureError, match="settings say k=4"):
            writer.append(layers[:, :2], embed, stamps)
        with pytest.raises(FeatureError, match="no clips to store"):
            writer.commit()


def test_writer_keeps_no_chunk_alive_between_appends(tmp_path):
    """Memory stays flat in video length: after ``append`` returns, the writer holds none of the
    arrays it was given (nor views of them), so thousands of chunks cannot pin memory."""
    import gc
    import weakref

    store = FeatureStore(tmp_path)
    expected_embed, expected_stamps, watched = [], [], []
    with store.writer(FP, make_settings(k=2)) as writer:
        for chunk in range(40):
            layers, embed, stamps = arrays(clips=3, k=2, seed=chunk)
            embed16 = embed.astype(np.float16)  # the dtype the store keeps: no conversion copy in append
            writer.append(layers.astype(np.float16), embed16, stamps)
            watched += [weakref.ref(embed16), weakref.ref(stamps)]
            expected_embed.append(embed16.copy())
            expected_stamps.append(stamps.copy())
            del layers, embed, embed16, stamps
        gc.collect()
        alive = [ref for ref in watched if ref() is not None]
        assert not alive, f"{len(alive)} of {len(watched)} appended arrays are still referenced by the writer"
        writer.commit()
    features = store.get(FP, make_settings(k=2))
    assert np.array_equal(features.embed, np.concatenate(expected_embed))
    assert np.array_equal(features.timestamps, np.concatenate(expected_stamps))
    assert features.num_clips == 120 and not list(tmp_path.rglob("*.tmp"))


def test_files_are_mapped_when_read_and_few_stay_open(tmp_path, monkeypatch):
    """A search over 100,000 videos cannot hold 100,000 maps (descriptors, vm.max_map_count): opening maps
    nothing, reading maps the file, and past MAX_OPEN_MAPS the least recently read maps are let go (#19)."""
    from r2cli.features import store as store_module

    maps = store_module._OpenMaps(capacity=3)
    monkeypatch.setattr(store_module, "_OPEN_MAPS", maps)
    store = FeatureStore(tmp_path / "features")
    fingerprints = [f"blake2b:{i:0128x}" for i in range(6)]
    for i, fingerprint in enumerate(fingerprints):
        store.put(fingerprint, make_settings(), *arrays(seed=i), duration=5.0)
    opened = [store.get(fp, make_settings()) for fp in fingerprints]
    assert len(maps) == 0 and [f.num_clips for f in opened] == [3] * 6  # the header says how many clips
    first_embed = opened[0].embed
    for i, features in enumerate(opened):
        np.testing.assert_array_equal(features.embed, arrays(seed=i)[1].astype(np.float16))
        assert len(maps) <= 3
    np.testing.assert_array_equal(first_embed, arrays(seed=0)[1].astype(np.float16))  # a view keeps its map
    np.testing.assert_array_equal(opened[0].layers, arrays(seed=0)[0].astype(np.float16))  # mapped again


def test_a_file_replaced_after_opening_is_refused_not_read(tmp_path, monkeypatch):
    """Maps are taken late, so a feature file re-extracted meanwhile must not be read as the one opened."""
    from r2cli.features import store as store_module

    monkeypatch.setattr(store_module, "_OPEN_MAPS", store_module._OpenMaps(capacity=4))
    store = FeatureStore(tmp_path / "features")
    store.put(FP, make_settings(), *arrays(seed=1), duration=5.0)
    opened = store.get(FP, make_settings())
    store.put(FP, make_settings(), *arrays(clips=5, seed=2), duration=9.0)  # another extraction, same name
    with pytest.raises(FeatureError, match="replaced or changed while this command ran"):
        opened.embed
    assert store.get(FP, make_settings()).embed.shape == (5, 6)
