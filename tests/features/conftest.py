"""Fixtures of the feature tests: the registry's tiny CLIP (tests/fixtures.py) loaded once with a
batch of 4 frames, so the feature tests cross batch boundaries on short clips (the root
``tiny_tower`` uses load_clip's default batch)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_tower(tiny_clip_path):
    """The tiny CLIP (64 px images, 5 tokens, 5 layers) loaded once on the CPU."""
    from r2cli.features.clip import load_clip

    return load_clip(tiny_clip_path, device="cpu", batch_size=4)
