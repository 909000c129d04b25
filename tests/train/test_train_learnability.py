"""End to end on CPU: synthetic coloured videos -> index with the tiny CLIP -> finetune -> ground held-out videos.

Each video is three single-colour scenes of equal length (``tests/fixtures.make_video``: ffmpeg lavfi
``color`` sources concatenated, a small white box moving over them). The annotation of "the red
scene" is the red scene's window. Training videos use every order of the three colours at two scene
lengths; held-out videos use other scene lengths, so the head must find the colour, not memorise
times. The tiny random CLIP keeps colours apart (checked below), but nothing in the head knows which
query token goes with which colour until it is trained: an untrained head scores far below the bar.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from trainkit import tiny_preset

torch = pytest.importorskip("torch")

COLORS = ("red", "green", "blue")
TRAIN_SCENE_SECONDS = (6.0, 8.0)
HELD_OUT_SCENE_SECONDS = (7.0, 9.0)
FEATURE_FPS = 1.0


def _write_annotations(path: Path, videos: list[tuple[Path, tuple[str, ...], float]], first_qid: int) -> Path:
    lines = []
    qid = first_qid
    for video, order, scene in videos:
        for position, color in enumerate(order):
            lines.append({"qid": qid, "query": f"the {color} scene", "video": video.name,
                          "relevant_windows": [[position * scene, (position + 1) * scene]]})
            qid += 1
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def synthetic_archive(tmp_path_factory, ffmpeg):
    """Videos (64x48, 4 fps) and their annotations: train.jsonl (12 videos) and heldout.jsonl (6 videos)."""
    from fixtures import make_video

    root = tmp_path_factory.mktemp("archive")
    orders = list(itertools.permutations(COLORS))
    train, held_out = [], []
    for scene in TRAIN_SCENE_SECONDS:
        for index, order in enumerate(orders):
            path = make_video(root / f"train_{int(scene)}s_{index}.mp4", seconds=3 * scene, width=64, height=48,
                              fps=4, colors=order)
            train.append((path, order, scene))
    for number, order in enumerate(orders):
        scene = HELD_OUT_SCENE_SECONDS[number % 2]
        path = make_video(root / f"heldout_{number}.mp4", seconds=3 * scene, width=64, height=48, fps=4, colors=order)
        held_out.append((path, order, scene))
    return (_write_annotations(root / "train.jsonl", train, 0),
            _write_annotations(root / "heldout.jsonl", held_out, 1000))


def test_tiny_clip_keeps_the_scene_colours_apart(tiny_clip_path, ffmpeg, tmp_path):
    """Precondition of the learnability test: per-scene CLS features differ far more across colours than within."""
    from fixtures import make_video

    from r2cli.features.clip import load_clip
    from r2cli.media.frames import sample_frames

    video = make_video(tmp_path / "rgb.mp4", seconds=12, width=64, height=48, fps=4, colors=COLORS)
    frames, _ = sample_frames(video, fps=FEATURE_FPS, size=64)
    tower = load_clip(str(tiny_clip_path), device="cpu")
    layers, _ = tower.video_features(torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(), k=4)
    cls = layers[:, -1, 0]  # [clips, width] last layer
    centred = torch.nn.functional.normalize(cls - cls.mean(0), dim=-1)
    similarity = centred @ centred.T
    scene = torch.arange(len(frames)) // 4
    same = scene[:, None] == scene[None, :]
    assert float(similarity[same].min()) > 0.9
    assert float(similarity[~same].max()) < 0.5


def test_finetune_learns_to_ground_held_out_synthetic_videos(synthetic_archive, tiny_clip_path, tmp_path):
    from r2cli.model import load_checkpoint
    from r2cli.paths import resolve_workspace
    from r2cli.train import loop
    from r2cli.app.finetune import FinetuneOptions
    from r2cli.train.finetune import finetune, read_annotations, resolve_preset
    from r2cli.train.data import PairDataset
    from r2cli.train.sources import store_features

    train_file, held_out_file = synthetic_archive
    preset_path = tiny_preset(
        tmp_path / "colours.json", fps=FEATURE_FPS, epochs=25, batch_size=6, warmup_iters=10, milestones=(),
        model={"dims": 32, "heads": 4, "dropout": 0.1}, data={"unit": None, "min_video_len": 5.0},
        selection_metric="MR-full-R1@0.5",
    )
    workspace = resolve_workspace(tmp_path / "ws")
    options = FinetuneOptions(preset=str(preset_path), train=train_file, val=held_out_file, seed=7, lr=1e-3,
                              out=tmp_path / "run", device="cpu", clip_weights=str(tiny_clip_path))
    result = finetune(workspace, options)

    assert result.counts["indexed_videos"] == 18  # everything was indexed through the real pipeline first
    assert result.counts["train_items"] == 36 and result.counts["val_items"] == 18
    first, best = result.history[0]["metrics"]["MR-full-R1@0.5"], result.best_value
    assert best >= 80.0, f"held-out R1@0.5 {best} < 80 (history: {[h['metrics']['MR-full-R1@0.5'] for h in result.history]})"
    assert first < best

    # the best checkpoint, read back in r2cli format, grounds the held-out videos as well as logged
    loaded = load_checkpoint(result.best_checkpoint)
    preset = resolve_preset(options)
    data = read_annotations(preset, train_file, held_out_file, official_layout=False)
    from r2cli.features.clip import load_clip

    tower = load_clip(str(tiny_clip_path), device="cpu")
    resolved = store_features(workspace, data.val_items, tower=tower, fps=FEATURE_FPS, k=4, index_missing=False)
    validation = loop.ValidationSet(dataset=PairDataset(resolved.items, resolved.source, k=4), kind="grounding",
                                    unit=None, nms=preset.data.nms)
    metrics = loop.validate(loaded.model, validation, device="cpu")
    assert metrics["MR-full-R1@0.5"] == best

    # and `r2cli search` with that checkpoint finds each colour's scene in a held-out video
    from r2cli.app.search import SearchOptions, search

    scene = HELD_OUT_SCENE_SECONDS[0]
    order = next(iter(itertools.permutations(COLORS)))  # heldout_0.mp4
    found = search(workspace, [f"the {color} scene" for color in COLORS], options=SearchOptions(
        checkpoint=str(result.best_checkpoint), clip_weights=str(tiny_clip_path), device="cpu",
        videos=("heldout_0.mp4",), top_k=1, out=tmp_path / "search"))
    for row in found.moments.itertuples(index=False):
        start = order.index(row.query.split()[1]) * scene
        inter = max(0.0, min(row.end_s, start + scene) - max(row.start_s, start))
        union = (row.end_s - row.start_s) + scene - inter
        assert inter / union >= 0.5, (row.query, row.start_s, row.end_s)
    assert len(found.moments) == 3
