"""Helpers of the training tests: tiny feature dumps in the official released layout and tiny presets."""

from __future__ import annotations

import json
from pathlib import Path

FPS = 0.5
K = 4
TOKENS = 5
VIDEO_WIDTH = 24
TEXT_WIDTH = 16
TINY_MODEL = {"dims": 16, "heads": 4, "dropout": 0.1}


def write_official_layout(root: Path, *, videos: int = 6, queries_per_video: int = 2, clips: tuple[int, ...] = (20, 13, 9),
                          seed: int = 0, flat: bool = False) -> tuple[Path, Path]:
    """``root/clip_b32_vid_k4/<vid>.npy`` fp16 [T, K, P, Cv], ``root/clip_b32_txt_k4/<qid>.npy`` fp16 [L, K, Cq]
    and ``root/anno.jsonl`` in the QVHighlights schema (one window per query). Returns (root, anno path).

    With ``flat`` the arrays are stored flattened ([T, K*P*Cv], [L, K*Cq]) as some dumps are.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    (root / "clip_b32_vid_k4").mkdir(parents=True, exist_ok=True)
    (root / "clip_b32_txt_k4").mkdir(parents=True, exist_ok=True)
    lines = []
    qid = 0
    for v in range(videos):
        num_clips = clips[v % len(clips)]
        vid = f"video{v:02d}"
        video = rng.standard_normal((num_clips, K, TOKENS, VIDEO_WIDTH)).astype(np.float16)
        np.save(root / "clip_b32_vid_k4" / f"{vid}.npy", video.reshape(num_clips, -1) if flat else video)
        duration = num_clips / FPS
        for _ in range(queries_per_video):
            start = float(rng.integers(0, num_clips - 3)) / FPS
            end = min(duration, start + float(rng.integers(2, 6)) / FPS)
            length = int(rng.integers(3, 9))
            query = rng.standard_normal((length, K, TEXT_WIDTH)).astype(np.float16)
            np.save(root / "clip_b32_txt_k4" / f"{qid}.npy", query.reshape(length, -1) if flat else query)
            lines.append({"qid": qid, "query": f"query {qid}", "vid": vid, "duration": duration,
                          "relevant_windows": [[start, end]]})
            qid += 1
    anno = root / "anno.jsonl"
    anno.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return root, anno


def tiny_preset(path: Path, *, base: str = "qvhighlights", fps: float = FPS, epochs: int = 2, batch_size: int = 4,
                warmup_iters: int = 3, milestones: tuple[int, ...] = (1,), repeat: int = 1, model: dict | None = None,
                data: dict | None = None, selection_metric: str | None = None) -> Path:
    """A preset JSON file derived from ``base`` with small dims and a short recipe."""
    from r2cli.model import load_preset

    preset = load_preset(base).to_dict()
    preset["name"] = f"tiny_{base}"
    preset["model"].update({**TINY_MODEL, **(model or {})})
    preset["data"].update({"fps": fps, **(data or {})})
    preset["train"].update({"epochs": epochs, "batch_size": batch_size, "warmup_iters": warmup_iters,
                            "milestones": list(milestones), "repeat": repeat})
    if selection_metric:
        preset["train"]["selection_metric"] = selection_metric
    path.write_text(json.dumps(preset, indent=2), encoding="utf-8")
    return path
