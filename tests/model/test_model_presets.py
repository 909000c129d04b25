"""Presets: every official config exists, builds, and has the official parameter count."""

from __future__ import annotations

import json

import pytest

from r2cli.errors import InputError, UsageError
from r2cli.model.config import ModelConfig, Preset, expected_parameter_count, list_presets, load_preset

OFFICIAL = (["qvhighlights", "ego4d", "charades", "tacos"]
            + [f"youtube_{d}" for d in ("dog", "gym", "par", "ska", "ski", "sur")]
            + [f"tvsum_{c}" for c in ("bk", "bt", "ds", "fm", "ga", "ms", "pk", "pr", "vt", "vu")])


def test_every_official_config_has_a_preset():
    assert sorted(OFFICIAL) == list_presets()


@pytest.mark.parametrize("name", OFFICIAL)
def test_preset_round_trips_through_its_dict(name):
    preset = load_preset(name)
    assert preset.name == name
    assert Preset.from_dict(json.loads(json.dumps(preset.to_dict()))) == preset


def test_preset_values_follow_the_official_configs():
    qvh, charades, tacos, ego4d = (load_preset(n) for n in ("qvhighlights", "charades", "tacos", "ego4d"))
    assert (qvh.data.fps, qvh.data.unit, qvh.data.nms.type, qvh.data.nms.threshold) == (0.5, 2.0, "normal", 0.7)
    assert (qvh.train.batch_size, qvh.train.repeat, qvh.train.milestones) == (128, 4, (20,))
    assert (charades.data.fps, charades.data.unit, charades.data.nms.type) == (1.0, 0.1, "linear")
    assert (charades.model.dropout, charades.model.loss.sal_weight, charades.train.epochs) == (0.35, 0.01, 50)
    assert (tacos.model.loss.sal_weight, tacos.data.unit, tacos.train.milestones) == (0.05, None, (50,))
    assert (ego4d.model.dropout, ego4d.train.lr) == (0.3, 2.5e-4)
    for name in OFFICIAL:
        preset = load_preset(name)
        if preset.dataset in ("tvsum", "youtube"):
            model = preset.model
            assert (model.strides, model.use_tef, model.merge_cls_sal, model.coord_head) == ((1,), False, False, False)
            assert model.loss.cls_type == "dynamic_bce" and model.loss.reg_weight is None
            assert model.loss.sal_directions == ("row",) and preset.train.warmup_iters == 50
            assert preset.train.epochs == (500 if preset.dataset == "tvsum" else 200)


def test_every_preset_builds_with_the_official_parameter_count():
    torch = pytest.importorskip("torch")
    from r2cli.model.r2tuning import build_model

    counts = {}
    for name in OFFICIAL:
        config = load_preset(name).model
        model = build_model(config)
        counts[name] = model.num_parameters()
        assert counts[name] == expected_parameter_count(config), name
        assert all(torch.isfinite(p).all() for p in model.parameters())
    assert counts["qvhighlights"] == 2_836_242
    assert counts["tvsum_bk"] == counts["youtube_dog"] == 1_846_281


def test_widths_follow_the_clip_architecture():
    pytest.importorskip("torch")
    from r2cli.model.r2tuning import build_model

    model = build_model(load_preset("qvhighlights").model.with_clip(64, 64, 5))
    state = model.state_dict()
    assert tuple(state["adapter.video_map.0.weight"].shape) == (66,)
    assert tuple(state["adapter.query_map.0.weight"].shape) == (64,)


def test_unknown_or_broken_presets_are_refused(tmp_path):
    with pytest.raises(UsageError, match="unknown preset 'nope'.*qvhighlights"):
        load_preset("nope")
    data = load_preset("qvhighlights").to_dict()
    data["model"]["strides"] = [1, 3]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match="strides must be increasing powers of two"):
        load_preset(str(bad))
    data = load_preset("qvhighlights").to_dict()
    data["model"]["dimz"] = 3
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match="unknown key"):
        load_preset(str(bad))
    bad.write_text("{\n  nope")
    with pytest.raises(InputError, match=r"bad.json:2"):
        load_preset(str(bad))
    with pytest.raises(UsageError, match="divisible"):
        ModelConfig(dims=30, heads=8).validate()
