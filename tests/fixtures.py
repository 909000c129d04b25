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
- ``head-tacos``: ``head-random`` saved in the r2cli safetensors layout with the TACoS preset;
- ``head-grounding``: a QVHighlights-architecture head (boundary head included, seed 7, gate/scale
  drawn) in the r2cli safetensors layout;
- ``head-saliency``: a saliency-only TVSum head (no boundary head, seed 11) in the official .pth layout.

``MEDIA`` registers the shared generated videos the same way (``tiny_media(name, folder)``); each
builder's docstring gives its ffmpeg command (the lavfi recipes themselves live in tests/media.py).

Root tests/conftest.py exposes these as session fixtures (``tiny_clip_path``, ``tiny_model_path``,
``random_head_path``, ``marker_head_path``, ``tacos_head_path``, ``tiny_tower``, ``tiny_media_path``).
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


def _preset_head(seed: int, preset: str):
    """A head of ``preset``'s architecture at the tiny CLIP's widths (64/64, 5 tokens, dims 32), random
    weights under ``torch.manual_seed(seed)``, gate and scale drawn too (the official init leaves them at
    0; random values make saliency vary)."""
    import dataclasses

    import torch

    from r2cli.model import build_model, load_preset

    torch.manual_seed(seed)
    config = load_preset(preset).model.with_clip(64, 64, 5)
    model = build_model(dataclasses.replace(config, dims=32))
    with torch.no_grad():
        model.adapter.gate.normal_()
        model.adapter.scale.normal_()
    return model.eval()


def _head_grounding(path: Path) -> Path:
    from r2cli.model.checkpoint import save_checkpoint

    return save_checkpoint(_preset_head(7, "qvhighlights"), path)


def _head_saliency(path: Path) -> Path:
    import torch

    model = _preset_head(11, "tvsum_bk")
    torch.save({"meta": {"note": "r2cli summarize test head"}, "state_dict": model.state_dict()}, path)
    return path


TINY_MODELS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "clip-tiny": ("tiny-clip-openai.pt", _clip_tiny),
    "head-random": ("tiny_random_head.pth", _head_random),
    "head-marker": ("tiny_marker_head.pth", _head_marker),
    "head-tacos": ("tiny_tacos_head.safetensors", _head_tacos),
    "head-grounding": ("grounding.safetensors", _head_grounding),
    "head-saliency": ("saliency_only.pth", _head_saliency),
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


def _media_base(path: Path) -> Path:
    """1 s, 64x48, 10 fps, red then blue, no audio (the catalog tests' base clip).

    ffmpeg -f lavfi -i color=c=red:s=64x48:r=10:d=0.5 -f lavfi -i color=c=blue:s=64x48:r=10:d=0.5
           -filter_complex "concat=n=2,drawbox=..." -c:v libx264 -preset ultrafast -pix_fmt yuv420p OUT
    """
    from media import make_video

    return make_video(path, seconds=1, width=64, height=48, fps=10)


def _media_cut_source(path: Path) -> Path:
    """8 s, 25 fps, 160x120, red/green/blue scenes, 440 Hz audio, a keyframe every 25 frames.

    ffmpeg -f lavfi -i color=c=red:s=160x120:r=25:d=2.667 ... (one per colour) -f lavfi -i sine=f=440:d=8
           -filter_complex "concat=n=3,drawbox=..." -c:v libx264 -g 25 -preset ultrafast -pix_fmt yuv420p
           -c:a aac OUT
    """
    from media import make_video

    return make_video(path, seconds=8, fps=25, colors=("red", "green", "blue"), audio=True, gop=25)


def _media_silent(path: Path) -> Path:
    """4 s, 30 fps, 320x240, red then blue, no audio.

    ffmpeg -f lavfi -i color=c=red:s=320x240:r=30:d=2 -f lavfi -i color=c=blue:s=320x240:r=30:d=2
           -filter_complex "concat=n=2,drawbox=..." -c:v libx264 -preset ultrafast -pix_fmt yuv420p OUT
    """
    from media import make_video

    return make_video(path, seconds=4, width=320, height=240, fps=30)


MEDIA: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "base-1s": ("base.mp4", _media_base),
    "cut-source": ("source.mp4", _media_cut_source),
    "silent": ("silent clip.mp4", _media_silent),
}


def tiny_media(name: str, folder: Path) -> Path:
    """The generated video ``name`` of ``MEDIA`` under ``folder``, made with ffmpeg on first use."""
    if name not in MEDIA:
        raise KeyError(f"no test media {name!r}; known: {', '.join(MEDIA)}")
    key = (name, Path(folder))
    if key not in _written:
        file_name, build = MEDIA[name]
        Path(folder).mkdir(parents=True, exist_ok=True)
        _written[key] = build(Path(folder) / file_name)
    return _written[key]
