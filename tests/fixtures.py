"""What the tests build, in one module: generated media, tiny heads, archives of features, and the
registry of tiny models and media written once per session and cached by name. Tests import it as
``fixtures`` (tests/ is on ``sys.path`` because tests/conftest.py lives there); Ray workers as
``tests.fixtures``.

**Generated media** (``make_video``, ``make_testsrc``): ffmpeg's lavfi sources, the command recorded in
each function; every function runs the real ffmpeg binary and returns the output path.

**Tiny heads** in the official .pth layout (``{"state_dict": ..., "meta": ...}`` with the official key
names, so they load through ``r2cli.model.load_checkpoint`` exactly like a released checkpoint):

- ``random_head``: the model engineer's ``build_model`` with small widths (dims 32) and its
  random official initialisation (gate/scale drawn at random): an arbitrary but fixed function.
- ``build_marker_head``: hand-set weights whose class score is a monotone function of a "marker"
  planted in the CLS token of a clip (channel 0 against channel 1), and constant elsewhere. It
  lets a test plant a moment anywhere in a video and know what the search must find.

**Archives** (``build_archive``) are built without media: catalog rows are inserted directly and
features are written to the feature store with the tiny CLIP's settings, so the search finds them as
if indexed. ``run_cli`` runs the command line in-process.

**The registry**: ``TINY_MODELS`` maps a name to a builder ``(path) -> path`` and a file name;
``tiny_model(name, folder)`` writes the file the first time it is asked for (per folder, that is per
test session) and returns its path afterwards. The weights are seeded, so every test folder sees the
same numbers:

- ``clip-tiny``: a random CLIP in OpenAI state-dict format (tests/tiny_clip.py, seed 0: 5 layers per
  tower, widths 64, 64 px images, embeddings of 32);
- ``head-random``: ``random_head`` (dims 32, seed 1234) in the official ``{"meta", "state_dict"}`` .pth layout;
- ``head-marker``: ``build_marker_head``, official layout;
- ``head-tacos``: ``head-random`` saved in the r2cli safetensors layout with the TACoS preset;
- ``head-grounding``: a QVHighlights-architecture head (boundary head included, seed 7, gate/scale
  drawn) in the r2cli safetensors layout;
- ``head-saliency``: a saliency-only TVSum head (no boundary head, seed 11) in the official .pth layout.

``MEDIA`` registers the shared generated videos the same way (``tiny_media(name, folder)``); each
builder's docstring gives its ffmpeg command.

Root tests/conftest.py exposes these as session fixtures (``tiny_clip_path``, ``tiny_model_path``,
``random_head_path``, ``marker_head_path``, ``tacos_head_path``, ``tiny_tower``, ``tiny_media_path``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# ----------------------------------------------------------------------------------------------
# Generated media (ffmpeg lavfi)

FFMPEG = shutil.which("ffmpeg")


def _run(args: list[str]) -> None:
    subprocess.run([FFMPEG or "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_video(
    path: str | Path,
    seconds: float = 6.0,
    width: int = 160,
    height: int = 120,
    fps: float = 25,
    colors: tuple[str, ...] = ("red", "blue"),
    audio: bool = False,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    gop: int | None = None,
    rotate: int | None = None,
    sar: str | None = None,
) -> Path:
    """Coloured scenes of equal length, each with a moving box so frames differ.

    ffmpeg -f lavfi -i color=c=<c>:s=WxH:r=FPS:d=<seconds/len(colors)> (one per colour)
           [-f lavfi -i sine=frequency=440:duration=<seconds>]
           -filter_complex "[0][1]...concat=n=N:v=1:a=0,drawbox=x='mod(t*40,W)':y=10:w=20:h=20:c=white:t=fill"
           -c:v libx264 -pix_fmt yuv420p [-g GOP] [-metadata:s:v rotate=R] OUT
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = seconds / len(colors)
    args: list[str] = []
    for color in colors:
        args += ["-f", "lavfi", "-i", f"color=c={color}:s={width}x{height}:r={fps}:d={part}"]
    n = len(colors)
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    chain = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0,"
    chain += "drawbox=x='mod(t*40\\,iw-20)':y=10:w=20:h=20:c=white:t=fill"
    if sar:
        chain += f",setsar={sar.replace(':', '/')}"
    chain += "[v]"
    args += ["-filter_complex", chain, "-map", "[v]"]
    if audio:
        args += ["-map", f"{n}:a", "-c:a", "aac", "-shortest"]
    args += ["-c:v", codec, "-pix_fmt", pix_fmt]
    if codec == "libx264":
        args += ["-preset", "ultrafast"]
    if gop:
        args += ["-g", str(gop)]
    args += [str(path)]
    _run(args)
    if rotate is not None:
        # ffmpeg writes the display matrix from the rotate tag only on stream copy:
        # ffmpeg -i OUT -c copy -metadata:s:v:0 rotate=R OUT.rot
        tmp = path.with_name(path.stem + ".rot" + path.suffix)
        _run(["-i", str(path), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(tmp)])
        tmp.replace(path)
    return path


def make_testsrc(path: str | Path, seconds: float = 10.0, size: str = "320x240", fps: float = 25) -> Path:
    """ffmpeg -f lavfi -i testsrc2=s=SIZE:r=FPS:d=SECONDS -c:v libx264 -preset ultrafast -pix_fmt yuv420p OUT"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(["-f", "lavfi", "-i", f"testsrc2=s={size}:r={fps}:d={seconds}", "-c:v", "libx264",
          "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)])
    return path


# ----------------------------------------------------------------------------------------------
# Tiny heads and archives of features

FPS = 0.5
TOKENS = 5  # tiny CLIP: (64 / 32)^2 + 1
VIDEO_WIDTH = 64
TEXT_WIDTH = 64
EMBED_DIM = 32
K = 4
MARKER_AMPLITUDE = 10.0


def save_official(model, path: Path) -> Path:
    """Save a head the way the official trainer does: ``{"meta": ..., "state_dict": ...}``."""
    import torch

    state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    torch.save({"meta": {"note": "r2cli test head"}, "state_dict": state}, path)
    return path


def build_marker_head():
    """A head (dims 16) whose stride-1 class logit is ``relu(n0) - 2`` where n0 grows with the marker."""
    import torch

    from r2cli.model import ModelConfig, build_model

    dims = 16
    config = ModelConfig(video_width=VIDEO_WIDTH, query_width=TEXT_WIDTH, num_tokens=TOKENS, clip_arch="custom", dims=dims)
    model = build_model(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for module in model.modules():  # every LayerNorm: identity affine
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
        model.coef.fill_(1.0)
        model.adapter.gate.fill_(30.0)  # sigmoid ~ 1: each step keeps its own CLS state
        vmap = model.adapter.video_map
        vmap[2].weight[0, 0] = 1.0  # channel 0 of the hidden state: marker (ch0) minus background (ch1)
        vmap[2].weight[0, 1] = -1.0
        vmap[2].bias[1] = 1.0  # a constant channel keeps the marker's size after the LayerNorm
        vmap[6].weight.copy_(torch.eye(dims))
        model.adapter.query_map[6].bias[0] = 1.0  # every query token is e0, so the pooled query is e0
        # decoder attention/FFN outputs are zero: the decoder is three LayerNorms of the CLS state
        class_head = model.class_head.module
        class_head[1].weight[0, 0, 1] = 1.0  # centre tap, channel 0
        class_head[3].weight[0, 0, 1] = 1.0
        class_head[3].bias[0] = -2.0
    return model


def marker_features(num_clips: int, marks: list[tuple[int, int, float]] = (), seed: int = 0):
    """Features ``[T, k, P, Cv]`` with background everywhere and marker strength s on clips [a, b).

    Background tokens hold (0, A) on channels (0, 1); a marked clip holds (A*s, A*(1-s)) in every
    token of every layer, s in (0.5, 1]; a little noise on the other channels keeps them realistic.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    layers = (rng.standard_normal((num_clips, K, TOKENS, VIDEO_WIDTH)) * 0.05).astype(np.float32)
    layers[:, :, :, 0] = 0.0
    layers[:, :, :, 1] = MARKER_AMPLITUDE
    for start, end, strength in marks:
        layers[start:end, :, :, 0] = MARKER_AMPLITUDE * strength
        layers[start:end, :, :, 1] = MARKER_AMPLITUDE * (1.0 - strength)
    return layers.astype(np.float16)


def random_features(num_clips: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.standard_normal((num_clips, K, TOKENS, VIDEO_WIDTH)) * 0.5).astype(np.float16)


def random_embed(num_clips: int, seed: int, towards=None, weight: float = 0.0):
    """Unit clip embeddings ``[T, D]``; with ``towards`` (a unit vector) they lean to it by ``weight``."""
    import numpy as np

    rng = np.random.default_rng(seed + 10_000)
    embed = rng.standard_normal((num_clips, EMBED_DIM)).astype(np.float32)
    embed /= np.linalg.norm(embed, axis=1, keepdims=True)
    if towards is not None:
        embed = embed * (1 - weight) + np.asarray(towards, dtype=np.float32)[None, :] * weight
        embed /= np.linalg.norm(embed, axis=1, keepdims=True)
    return embed.astype(np.float16)


@dataclass
class ArchiveVideo:
    name: str  # file name (the file itself need not exist)
    layers: object  # [T, k, P, Cv] float16
    embed: object = None  # [T, D] float16 (random when None)
    duration: float | None = None  # seconds (T / fps when None)
    features: bool = True  # write features (False: a video the index could not process)


def build_archive(workspace, tower, videos: list[ArchiveVideo], dtypes: tuple[str, ...] = ("float16",)) -> dict[str, int]:
    """Insert catalog rows and store features for ``videos`` (one feature set per stored layer
    dtype in ``dtypes``); returns name -> catalog id."""
    import numpy as np

    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import FeatureSet, Video
    from r2cli.features.store import FeatureSettings, FeatureStore

    workspace.ensure()
    settings = FeatureSettings.for_tower(tower, fps=FPS, k=K)
    store = FeatureStore(workspace.features_dir)
    ids: dict[str, int] = {}
    with Catalog.open(workspace) as catalog:
        with catalog.session() as session:
            for index, video in enumerate(videos):
                num_clips = int(video.layers.shape[0])
                duration = video.duration if video.duration is not None else num_clips / FPS
                fingerprint = "blake2b:" + hashlib.blake2b(video.name.encode(), digest_size=32).hexdigest()
                path = str((workspace.root.parent / "media" / video.name).resolve())
                row = Video(path=path, size=1000 + index, mtime=1.0, fingerprint=fingerprint, duration=duration,
                            fps=25.0, status="ok", features_status="ok" if video.features else "none")
                session.add(row)
                session.flush()
                ids[video.name] = row.id
                if not video.features:
                    continue
                embed = video.embed if video.embed is not None else random_embed(num_clips, index)
                stamps = (np.arange(num_clips) + 0.5) / FPS
                for dtype in dtypes:
                    stored = store.put(fingerprint, dataclasses.replace(settings, dtype=dtype), video.layers, embed,
                                       stamps, duration=duration)
                    session.add(FeatureSet(fingerprint=fingerprint, settings_key=stored.settings_key,
                                           settings=stored.settings, relpath=stored.relpath,
                                           num_clips=stored.num_clips, shape=stored.shape, dtype=stored.dtype,
                                           bytes=stored.bytes))
    return ids


def clips_to_seconds(clip: float) -> float:
    return clip / FPS


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def random_head(seed: int = 1234):
    """A small head (dims 32) with the official random initialisation, gate/scale drawn at random."""
    import torch

    from r2cli.model import ModelConfig, build_model

    torch.manual_seed(seed)
    config = ModelConfig(video_width=VIDEO_WIDTH, query_width=TEXT_WIDTH, num_tokens=TOKENS, clip_arch="custom", dims=32)
    model = build_model(config)
    with torch.no_grad():  # official init leaves gate/scale at 0; random values exercise every path
        model.adapter.gate.normal_()
        model.adapter.scale.normal_()
    return model


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``r2cli ARGS`` in-process through ``main`` (errors become one line + exit code, as for a user).

    Returns (exit code, stdout, stderr).
    """
    from r2cli.cli.main import main

    capsys.readouterr()
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def flip_to_nan(workspace, video_name: str, tensor: str, clips: range) -> Path:
    """Overwrite the stored ``tensor`` ("layers" or "embed") of ``clips`` of a video with fp16 NaN bytes,
    in place in its safetensors file, as flipped bytes on a disk would. Returns the file."""
    import json as _json
    import struct

    from r2cli.catalog import Catalog
    from r2cli.catalog.schema import FeatureSet, Video

    with Catalog.open(workspace) as catalog, catalog.session() as session:
        video = next(v for v in session.query(Video) if v.path.endswith("/" + video_name))
        relpath = session.query(FeatureSet).filter(FeatureSet.fingerprint == video.fingerprint).first().relpath
    path = workspace.features_dir / relpath
    with open(path, "r+b") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = _json.loads(handle.read(length))
        entry = header[tensor]
        begin, end = entry["data_offsets"]
        per_clip = (end - begin) // entry["shape"][0]
        for clip in clips:
            handle.seek(8 + length + begin + clip * per_clip)
            handle.write(b"\xff\x7f" * (per_clip // 2))
    return path


def _saliency(result):
    import pandas as pd

    frame = pd.read_parquet(result.out_dir / "saliency.parquet")
    return frame.set_index(["query_id", "video_id", "clip_index"])["score"].sort_index()


def compare_runs(full, compact) -> dict:
    """The fidelity figures of one int8 run against its fp16 twin (tests/search/test_search_compact.py, benchmarks/compact_features.py).

    ``saliency_max_diff``: over every scored clip; ``score_max_diff``: over moments both runs found
    (same video and boundaries); ``boundary_max_diff_s``: for each fp16 top-5 moment, the closest
    int8 moment of the same video; ``top5_unchanged`` / ``queries``: queries whose top-5 (video,
    start, end within 0.5 s) are the same in the same order; ``top5_near_ties``: queries where they
    differ but two neighbours of the fp16 top 6 score closer than twice ``score_max_diff``.
    """
    import numpy as np

    a, b = _saliency(full), _saliency(compact)
    assert a.index.equals(b.index)
    key = ["query_id", "video_id", "start_s", "end_s"]
    joined = full.moments.merge(compact.moments, on=key, suffixes=("_a", "_b"))
    score_diff = float(np.abs(joined["score_a"] - joined["score_b"]).max())
    unchanged = near_ties = 0
    boundary = 0.0
    for query, group in full.moments.sort_values(["query_id", "rank_in_query"]).groupby("query_id"):
        other = compact.moments[compact.moments.query_id == query].sort_values("rank_in_query")
        top_a = group.head(5)[["video_id", "start_s", "end_s"]].to_numpy(dtype=float)
        top_b = other.head(5)[["video_id", "start_s", "end_s"]].to_numpy(dtype=float)
        if (top_a.shape == top_b.shape and (top_a[:, 0] == top_b[:, 0]).all()
                and np.abs(top_a[:, 1:] - top_b[:, 1:]).max(initial=0.0) <= 0.5):
            unchanged += 1
        elif np.abs(np.diff(group.score.to_numpy()[:6])).min(initial=np.inf) < 2 * score_diff:
            near_ties += 1
        for video, start, end in top_a:
            same = other[other.video_id == video][["start_s", "end_s"]].to_numpy(dtype=float)
            boundary = max(boundary, float(np.abs(same - [start, end]).max(axis=1).min()))
    return {"saliency_max_diff": float(np.abs(a.to_numpy() - b.to_numpy()).max()), "score_max_diff": score_diff,
            "boundary_max_diff_s": boundary, "top5_unchanged": unchanged, "top5_near_ties": near_ties,
            "queries": int(full.moments.query_id.nunique())}


# ----------------------------------------------------------------------------------------------
# The registry of tiny models and media


def _clip_tiny(path: Path) -> Path:
    from tiny_clip import write_tiny_openai_clip

    return write_tiny_openai_clip(path)


def _head_random(path: Path) -> Path:
    return save_official(random_head(), path)


def _head_marker(path: Path) -> Path:
    return save_official(build_marker_head(), path)


def _head_tacos(path: Path) -> Path:
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
    return make_video(path, seconds=1, width=64, height=48, fps=10)


def _media_cut_source(path: Path) -> Path:
    """8 s, 25 fps, 160x120, red/green/blue scenes, 440 Hz audio, a keyframe every 25 frames.

    ffmpeg -f lavfi -i color=c=red:s=160x120:r=25:d=2.667 ... (one per colour) -f lavfi -i sine=f=440:d=8
           -filter_complex "concat=n=3,drawbox=..." -c:v libx264 -g 25 -preset ultrafast -pix_fmt yuv420p
           -c:a aac OUT
    """
    return make_video(path, seconds=8, fps=25, colors=("red", "green", "blue"), audio=True, gop=25)


def _media_silent(path: Path) -> Path:
    """4 s, 30 fps, 320x240, red then blue, no audio.

    ffmpeg -f lavfi -i color=c=red:s=320x240:r=30:d=2 -f lavfi -i color=c=blue:s=320x240:r=30:d=2
           -filter_complex "concat=n=2,drawbox=..." -c:v libx264 -preset ultrafast -pix_fmt yuv420p OUT
    """
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
