"""Fixtures of the feature tests: the tiny CLIP loaded once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_tower(tiny_clip_path):
    """The tiny CLIP (64 px images, 5 tokens, 5 layers) loaded once on the CPU."""
    from r2cli.features.clip import load_clip

    return load_clip(tiny_clip_path, device="cpu", batch_size=4)
