"""What int8 layer tokens (``r2cli.features.compact``) change in R2-Tuning's outputs, on the parity files.

Shared by the tests that pin the bounds (tests/features/test_features_compact.py) and by
benchmarks/compact_features.py, which publishes the figures:

- ``golden_e2e_fidelity``: the committed golden CLIP file's end-to-end case (tiny official CLIP, the
  official cache path's fp16 features, a dims-64 head with the official random init): fp16 vs int8.
- ``parity_head_fidelity``: the shared full head file (QVHighlights config, ViT-B/32 widths, 4 cases
  built from its video bank); skipped by callers when the full file is absent.

Each returns ``saliency_max_diff``, ``boundary_max_diff_s`` (top-5 moments, rank by rank),
``score_max_diff`` (a top-5 moment against the int8 moment with the same ends), ``top5_unchanged``
/ ``cases`` (the same top-5 windows in the same order, both ends within 0.5 s, a quarter clip at
0.5 fps) and ``top5_near_ties``: changed cases whose fp16 top-6 holds two neighbours closer in
score than twice ``score_max_diff`` (a swap of moments the model scores alike).
"""

from __future__ import annotations

from pathlib import Path


def _quantized(video):
    """``video [B, T, k, P, Cv]`` through int8 and back, padding (non-finite) clips kept as they are."""
    import numpy as np
    import torch

    from r2cli.features.compact import dequantize_layers, quantize_layers

    values = video.float().numpy()
    out = values.copy()
    for b in range(values.shape[0]):
        finite = np.isfinite(values[b]).reshape(values.shape[1], -1).all(axis=1)
        if finite.any():
            out[b, finite] = dequantize_layers(*quantize_layers(values[b, finite]))
    return torch.from_numpy(out).to(video.dtype)


def _compare(predictions_a, predictions_b) -> dict:
    import torch

    saliency = boundary = score = 0.0
    unchanged, changed = 0, []
    for a, b in zip(predictions_a, predictions_b):
        saliency = max(saliency, float((a.saliency - b.saliency).abs().max()))
        top_a, top_b = a.boundary[:5], b.boundary[:5]
        ends = (top_a[:, :2] - top_b[:, :2]).abs()
        boundary = max(boundary, float(ends.max()))
        # the score change of a moment: against the int8 moment with the same ends (within 0.5 s)
        for row in top_a:
            same = ((b.boundary[:, :2] - row[:2]).abs() <= 0.5).all(dim=1)
            if same.any():
                score = max(score, float((b.boundary[same][0, 2] - row[2]).abs()))
        if torch.all(ends <= 0.5):
            unchanged += 1
        else:  # the smallest fp16 score gap between neighbours in the top 6: a near-tie swaps
            changed.append(float((a.boundary[:6, 2][:-1] - a.boundary[:6, 2][1:]).abs().min()))
    return {"saliency_max_diff": saliency, "boundary_max_diff_s": boundary, "score_max_diff": score,
            "top5_unchanged": unchanged, "top5_near_ties": sum(gap < 2 * score for gap in changed),
            "cases": len(predictions_a)}


def golden_e2e_fidelity(path: Path, tmp: Path) -> dict:
    """fp16 vs int8 features on a CLIP parity file's end-to-end case (see the module docstring)."""
    import torch

    from golden.parity_files import load_parity
    from r2cli.features.clip import load_clip
    from r2cli.model import load_checkpoint

    data = load_parity(path)
    e2e = data["e2e"]
    clip_file, head_file = Path(tmp) / "golden-clip.pt", Path(tmp) / "golden-head.pth"
    torch.save(dict(data["state_dict"]), clip_file)
    torch.save({"state_dict": e2e["head_state_dict"]}, head_file)
    tower = load_clip(clip_file)
    model = load_checkpoint(head_file, num_tokens=tower.num_tokens, video_width=tower.video_width).model
    k = 4
    tokens = e2e["inputs"]["query"][0]
    text = next(q for q, ids in zip(data["queries"], data["tokens"]) if torch.equal(ids, tokens))
    query = tower.query_features([text], k=k)[0][0].half()[None]  # [1, L, k, Cq]
    predictions = {}
    for name, frames in (("e2e", e2e["inputs"]["frames_uint8"]), *((f"video{i}", f) for i, f in
                                                                   enumerate(data["frames_uint8"]))):
        video = tower.video_features(frames, k=k)[0].half()[None]  # [1, T, k, P, Cv], the cache path's fp16
        with torch.no_grad():
            for kind, features in (("fp16", video), ("int8", _quantized(video))):
                out = model(features, query)
                predictions.setdefault(kind, []).append(model.predict(out, e2e["inputs"]["fps"])[0])
    return _compare(predictions["fp16"], predictions["int8"])


def parity_head_fidelity(path: Path) -> dict:
    """fp16 vs int8 features through the full parity head file's cases (its video bank is fp16-exact)."""
    import torch

    from golden.parity_files import load_parity
    from r2cli.model.checkpoint import load_official_checkpoint

    data = load_parity(path)
    model = load_official_checkpoint(data, preset="qvhighlights").model
    cfg = model.config
    predictions = {}
    for case in data["cases"]:
        inputs = case["inputs"]
        b = case["B"]
        video = data["video_bank"][inputs["video_index"]].reshape(inputs["video_shape"])  # [B, T, k*P*Cv]
        query = inputs["query"]
        video_mask, query_mask = video[:, :, 0].isfinite(), query[:, :, 0].isfinite()
        video = video.view(b, video.size(1), -1, cfg.num_tokens, cfg.video_width)
        query = query.view(b, query.size(1), -1, cfg.query_width)
        with torch.no_grad():
            for kind, features in (("fp16", video), ("int8", _quantized(video))):
                out = model(features, query, video_mask, query_mask)
                predictions.setdefault(kind, []).extend(model.predict(out, inputs["fps"]))
    return _compare(predictions["fp16"], predictions["int8"])
