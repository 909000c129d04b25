"""Which preset applies to a checkpoint, and the windows of a preset: decided once, in r2cli.model.config (#23)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from r2cli.errors import UsageError
from r2cli.model.config import (FALLBACK_STRIDE_S, FALLBACK_WINDOW_S, choose_preset, default_preset_name, load_preset,
                                preset_windows)


def test_the_preset_asked_for_wins_then_the_first_recorded_one():
    tacos = load_preset("tacos")
    assert choose_preset("charades", "tacos").name == "charades"
    assert choose_preset(None, None, "tacos", "charades").name == "tacos"
    assert choose_preset(None, tacos) is tacos  # a Preset object is taken as it is
    assert choose_preset(None, None) is None


def test_without_any_the_default_checkpoints_preset_applies_when_asked():
    assert choose_preset(None, default=True).name == default_preset_name()
    assert choose_preset("tacos", default=True).name == "tacos"


def test_an_unknown_name_names_the_known_ones():
    with pytest.raises(UsageError, match="unknown preset 'nope'; known presets: charades"):
        choose_preset(None, "nope")


def test_windows_come_from_the_preset_then_its_builtin_namesake_then_the_fallback():
    qvh = load_preset("qvhighlights")
    assert preset_windows(qvh) == (150.0, 75.0, "preset qvhighlights")
    older = replace(qvh, data=replace(qvh.data, window_s=None, stride_s=None))  # saved before presets had windows
    assert preset_windows(older) == (150.0, 75.0, "preset qvhighlights")
    renamed = replace(older, name="my-finetune")
    assert preset_windows(renamed) == (FALLBACK_WINDOW_S, FALLBACK_STRIDE_S, "fallback")


def test_preset_defaults_read_the_same_rules():
    from r2cli.inference.models import preset_defaults
    from r2cli.model.config import DEFAULT_FPS, NMS_THRESHOLD

    qvh = load_preset("qvhighlights")
    older = replace(qvh, name="my-finetune", data=replace(qvh.data, window_s=None, stride_s=None, fps=None, nms=None))
    defaults = preset_defaults(older)
    assert (defaults.window_s, defaults.stride_s, defaults.window_source) == preset_windows(older)
    assert defaults.fps == DEFAULT_FPS and defaults.nms_type is None and defaults.nms_threshold == NMS_THRESHOLD
