"""One registry of the tiny models the tests use, written once per session and cached by name.

``TINY_MODELS`` maps a name to a builder ``(path) -> path`` and a file name; ``tiny_model(name, folder)``
writes the file the first time it is asked for (per folder, that is per test session) and returns its
path afterwards. The weights are seeded, so every test folder sees the same numbers:

- ``clip-tiny``: a random CLIP in OpenAI state-dict format (tests/tiny_clip.py, seed 0: 5 layers per
  tower, widths 64, 64 px images, embeddings of 32);
- ``head-random``: the model's ``build_model`` at the tiny CLIP's widths (dims 32, seed 1234),
  in the official ``{"meta", "state_dict"}`` .pth layout (tests/search/searchkit.py ``random_head``);
- ``head-marker``: hand-set weights whose class score grows with a marker in the features
  (searchkit ``build_marker_head``), official layout;
- ``head-tacos``: ``head-random`` saved in the r2cli safetensors layout with the TACoS preset.

Test media stays in tests/media.py (ffmpeg lavfi recipes, each with its command in the docstring).
Root tests/conftest.py exposes these as session fixtures (``tiny_clip_path``, ``tiny_model_path``,
``random_head_path``, ``marker_head_path``, ``tacos_head_path``, ``tiny_tower``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR / "search") not in sys.path:
    sys.path.insert(0, str(TESTS_DIR / "search"))  # searchkit: the head builders


def _clip_tiny(path: Path) -> Path:
    from tiny_clip import write_tiny_openai_clip

    return write_tiny_openai_clip(path)


def _head_random(path: Path) -> Path:
    from searchkit import random_head, save_official

    return save_official(random_head(), path)


def _head_marker(path: Path) -> Path:
    from searchkit import build_marker_head, save_official

    return save_official(build_marker_head(), path)


def _head_tacos(path: Path) -> Path:
    from searchkit import random_head

    from r2cli.model.checkpoint import save_checkpoint

    return save_checkpoint(random_head(), path, preset="tacos")


TINY_MODELS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "clip-tiny": ("tiny-clip-openai.pt", _clip_tiny),
    "head-random": ("tiny_random_head.pth", _head_random),
    "head-marker": ("tiny_marker_head.pth", _head_marker),
    "head-tacos": ("tiny_tacos_head.safetensors", _head_tacos),
}

_written: dict[tuple[str, Path], Path] = {}


def tiny_model(name: str, folder: Path) -> Path:
    """The file of tiny model ``name`` under ``folder``, written on first use."""
    if name not in TINY_MODELS:
        raise KeyError(f"no tiny model {name!r}; known: {', '.join(TINY_MODELS)}")
    key = (name, Path(folder))
    if key not in _written:
        file_name, build = TINY_MODELS[name]
        Path(folder).mkdir(parents=True, exist_ok=True)
        _written[key] = build(Path(folder) / file_name)
    return _written[key]
