"""The shipped manifest models/pretrained.json: every official checkpoint, its URL, hash prefix, preset and CLIP."""

from __future__ import annotations

import re

import pytest

from r2cli.errors import InputError, UsageError
from r2cli.model import registry

# The official model zoo (R2-Tuning README, spec §8.1): config name -> sha256 prefix in the file name.
OFFICIAL_ZOO = {
    "qvhighlights": "ed516355",
    "ego4d": "6a6f5754",
    "charades": "1de02112",
    "tacos": "81759b55",
    "youtube_dog": "702bd293",
    "youtube_gym": "ff68b1b3",
    "youtube_par": "27442af0",
    "youtube_ska": "dad28398",
    "youtube_ski": "df2edc4c",
    "youtube_sur": "d384d8b2",
    "tvsum_bk": "45b59440",
    "tvsum_bt": "13683fdf",
    "tvsum_ds": "d11b33d3",
    "tvsum_fm": "2c8c119d",
    "tvsum_ga": "58e79858",
    "tvsum_ms": "d9b4f8fa",
    "tvsum_pk": "1830ce03",
    "tvsum_pr": "51d78fc9",
    "tvsum_vt": "0069d8d3",
    "tvsum_vu": "6f8ebb4b",
}
VIT_B_32_SHA256 = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"


def test_registry_manifest_lists_the_whole_model_zoo():
    entries = {entry.name: entry for entry in registry.checkpoint_entries()}
    assert set(entries) == set(OFFICIAL_ZOO)
    for name, digest in OFFICIAL_ZOO.items():
        entry = entries[name]
        assert entry.filename == f"r2_tuning_{name}-{digest}.pth"
        assert entry.url == f"https://huggingface.co/yeliudev/R2-Tuning/resolve/main/checkpoints/{entry.filename}"
        assert entry.sha256 == digest
        assert entry.preset == name
        assert entry.clip == "ViT-B-32/openai"


def test_registry_manifest_clip_weights():
    entry = registry.clip_weights_entry("ViT-B-32/openai")
    assert entry.url == f"https://openaipublic.azureedge.net/clip/models/{VIT_B_32_SHA256}/ViT-B-32.pt"
    assert entry.sha256 == VIT_B_32_SHA256 and entry.filename == "ViT-B-32.pt"
    assert entry.layout == "openai" and entry.quick_gelu is True and entry.model == "ViT-B-32"
    for clip in registry.clip_entries():
        assert re.fullmatch(r"[0-9a-f]{64}", clip.sha256) and f"/{clip.sha256}/" in clip.url
    assert registry.clip_weights_entry("openai") == entry
    assert registry.clip_weights_entry("ViT-B/32") == entry
    assert registry.clip_weights_entry("openai", model="ViT-B-16").tag == "ViT-B-16/openai"


def test_registry_lookup_by_file_name_and_unknown_names():
    assert registry.get_checkpoint("r2_tuning_charades-1de02112.pth").name == "charades"
    assert registry.get_checkpoint("r2_tuning_charades-1de02112").name == "charades"
    with pytest.raises(UsageError, match="unknown checkpoint 'nope'; known: qvhighlights"):
        registry.get_checkpoint("nope")
    with pytest.raises(UsageError, match="unknown model"):
        registry.find_entry("nope")
    with pytest.raises(UsageError, match="unknown CLIP weights"):
        registry.clip_weights_entry("ViT-B-32/no-such-tag")


def test_registry_open_clip_tag_outside_the_manifest():
    pytest.importorskip("open_clip")
    entry = registry.clip_weights_entry("ViT-B-32/laion2b_s34b_b79k")
    assert entry.layout == "open_clip" and entry.model == "ViT-B-32"
    assert entry.url.startswith("https://huggingface.co/") and entry.filename.startswith("ViT-B-32__laion2b")


def test_registry_manifest_errors_name_the_file(private_manifest):
    path = private_manifest(checkpoints={"x": {"filename": "x.pth", "url": "http://h/x.pth", "preset": "p", "clip": "c"}})
    with pytest.raises(InputError, match=r"pretrained.json: checkpoint 'x' lacks the field 'sha256'"):
        registry.load_manifest()
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"pretrained.json:1: invalid JSON"):
        registry.load_manifest()


def test_registry_checkpoint_presets_exist_and_are_found_from_file_names(tmp_path):
    assert registry.checkpoint_preset("tvsum_bk") == "tvsum_bk"
    assert registry.checkpoint_preset(tmp_path / "r2_tuning_youtube_ski-df2edc4c.pth") == "youtube_ski"
    assert registry.checkpoint_preset(str(tmp_path / "r2_tuning_ego4d-6a6f5754.pth")) == "ego4d"
    assert registry.checkpoint_preset(str(tmp_path / "my_model.pth")) is None
    presets = registry.available_presets()
    if presets is None:
        pytest.skip("r2cli.model.list_presets is not available")
    missing = [entry.name for entry in registry.checkpoint_entries() if entry.preset not in presets]
    assert not missing, f"checkpoints whose preset is not in models/presets: {missing}"
