"""Helpers for search and job tests: tiny heads in the official .pth layout and archives of generated features.

Two heads, both saved as ``{"state_dict": ..., "meta": ...}`` with the official key names, so they
load through ``r2cli.model.load_checkpoint`` exactly like a released checkpoint:

- ``random_head``: the model engineer's ``build_model`` with small widths (dims 32) and its
  random official initialisation (gate/scale drawn at random): an arbitrary but fixed function.
- ``build_marker_head``: hand-set weights whose class score is a monotone function of a "marker"
  planted in the CLS token of a clip (channel 0 against channel 1), and constant elsewhere. It
  lets a test plant a moment anywhere in a video and know what the search must find.

Archives are built without media: catalog rows are inserted directly and features are written
to the feature store with the tiny CLIP's settings, so the search finds them as if indexed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

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
