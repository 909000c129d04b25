"""Fidelity cost of 8-bit layer tokens (issue #13 item 2): int8 and fp8 round trips, and their effect
on R2-Tuning outputs, measured on the CPU.

Feature sets (each [T, k=4, P, C] as the store holds them):
  parity     the official pipeline's cache features of the parity tiny CLIP (../shared/parity,
             clip_tower_official.pt: 2 videos of 4 and 2 clips, C=128) with the parity e2e head
             (dims 64) and the parity cache queries: real official-pipeline numbers, tiny widths;
  vitb32     ViT-B/32-shaped activations that mimic the known statistics of CLIP's late residual
             stream: per-channel means and lognormal scales, clip-to-clip correlation (AR(1),
             0.8), a distinct CLS token, and a few massive-activation channels (``--outliers``
             channels at 20-60x the median scale, the well-known ViT outlier dims). The head is the
             parity head (QVHighlights config, ViT-B/32 widths, official random init);
  tower      (``--tower``) the layer tokens of a random-weight ViT-B/32 run on ffmpeg testsrc2
             frames through r2cli's FrameSampler and load_clip (real forward, random weights).

Schemes (what a store could hold instead of fp16):
  int8_token    int8 + one fp16 absmax scale per token (over C)            ~0.50x bytes
  int8_channel  int8 + one fp16 absmax scale per (layer, channel) per window ~0.50x bytes
  fp8_token     float8_e4m3fn + one fp16 scale per token (absmax -> 448)    ~0.50x bytes
  fp8_raw       float8_e4m3fn cast, no scale                              0.50x bytes
and ``fp16`` (the current store format) against fp32 features, as the floor every path already has.

Head effect: ``Grounder.run`` (fp32) over the dequantised windows vs the fp16 windows, ``--queries``
random queries per window: saliency max / mean abs diff, top-1 moment score and boundary diff, and
the share of pairs whose top-1 moment is the same (both ends within 0.5 s, a quarter clip).

Usage:  python benchmarks/gpu/quantize_tokens.py [--out DIR] [--smoke] [--tower]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SCHEMES = ("fp16", "int8_token", "int8_channel", "fp8_token", "fp8_raw")


def quantize(x, scheme: str):
    """Round trip of fp32 features ``x`` [T, k, P, C] through ``scheme``; returns (fp32 array, bytes stored)."""
    import torch

    t = torch.as_tensor(x, dtype=torch.float32)
    if scheme == "fp16":
        return t.half().float().numpy(), t.numel() * 2
    if scheme == "int8_token":
        scale = (t.abs().amax(-1, keepdim=True) / 127.0).half().float().clamp_min(1e-8)
        q = torch.round(t / scale).clamp(-127, 127).to(torch.int8)
        return (q.float() * scale).numpy(), q.numel() + scale.numel() * 2
    if scheme == "int8_channel":
        scale = (t.abs().amax(dim=(0, 2), keepdim=True) / 127.0).half().float().clamp_min(1e-8)  # [1, k, 1, C]
        q = torch.round(t / scale).clamp(-127, 127).to(torch.int8)
        return (q.float() * scale).numpy(), q.numel() + scale.numel() * 2
    if scheme == "fp8_token":
        scale = (t.abs().amax(-1, keepdim=True) / 448.0).half().float().clamp_min(1e-12)
        q = (t / scale).to(torch.float8_e4m3fn)
        return (q.float() * scale).numpy(), q.numel() + scale.numel() * 2
    if scheme == "fp8_raw":
        q = t.clamp(-448, 448).to(torch.float8_e4m3fn)
        return q.float().numpy(), q.numel()
    raise ValueError(scheme)


def vitb32_like(rng, clips: int, outliers: int, k: int = 4, p: int = 50, c: int = 768):
    """fp32 [clips, k, p, c] with CLIP-late-layer-like statistics (see the module doc)."""
    import numpy as np

    mean = rng.normal(0, 0.3, (k, 1, c))
    scale = rng.lognormal(0, 0.5, (k, 1, c)) * np.linspace(0.8, 1.2, k)[:, None, None]
    cls_shift = rng.normal(0, 1.0, (k, c))
    heavy = rng.choice(c, outliers, replace=False)
    x = np.empty((clips, k, p, c))
    state = rng.standard_normal((k, p, c))
    for t in range(clips):
        state = 0.8 * state + 0.6 * rng.standard_normal((k, p, c))
        x[t] = mean + scale * state
    x[:, :, 0] += cls_shift
    median = float(np.median(scale))
    sign = rng.choice([-1.0, 1.0], outliers)
    mag = rng.uniform(20, 60, outliers) * median
    x[:, :, 1:, heavy] += sign * mag  # massive activations sit on the patch tokens
    return x.astype(np.float32)


def tower_features(clips: int, work: Path):
    """Layer tokens of a random-weight ViT-B/32 on testsrc2 frames (r2cli FrameSampler + load_clip)."""
    import subprocess

    import numpy as np
    import torch

    find_ffmpeg = common.need("r2cli.media.ffmpeg", "find_ffmpeg")
    load_clip = common.need("r2cli.features.clip", "load_clip")
    sampler_cls = common.need("r2cli.media.frames", "FrameSampler")
    video = work / f"testsrc2-640x360-{clips}clips.mp4"
    if not video.exists():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=s=640x360:r=30:d={clips * 2}", "-c:v", "libx264", "-preset", "veryfast",
                        "-pix_fmt", "yuv420p", str(video)], check=True)
    tower = load_clip(str(common.vitb32_random_weights(work)), device="cpu", precision="fp32", offline=True)
    with sampler_cls(video, fps=0.5, size=tower.image_size) as sampler:
        frames = np.concatenate([chunk.frames for chunk in sampler])
    layers, _embed = tower.video_features(torch.from_numpy(frames).permute(0, 3, 1, 2), 4)
    return layers.float().numpy()


def head_effect(model, windows_ref, windows_q, queries) -> dict:
    import numpy as np

    g = common.grounder(model, "cpu", precision="fp32")
    pairs = [(w, q) for w in range(len(windows_ref)) for q in range(len(queries))]
    ref = g.run(windows_ref, queries, pairs, fps=0.5)
    got = g.run(windows_q, queries, pairs, fps=0.5)
    sal = [np.abs(got[p].saliency - ref[p].saliency) for p in pairs]
    top_score = [abs(float(got[p].boundaries[0, 2] - ref[p].boundaries[0, 2])) for p in pairs]
    top_bound = [float(np.abs(got[p].boundaries[0, :2] - ref[p].boundaries[0, :2]).max()) for p in pairs]
    return {
        "pairs": len(pairs),
        "saliency_max_abs_diff": float(max(s.max() for s in sal)),
        "saliency_mean_abs_diff": float(np.mean([s.mean() for s in sal])),
        "saliency_range": float(max(float(np.ptp(ref[p].saliency)) for p in pairs)),
        "top1_score_max_abs_diff": max(top_score),
        "top1_boundary_max_abs_diff_s": max(top_bound),
        "top1_same_share": float(np.mean([b < 0.5 for b in top_bound])),  # same point: < half a clip apart
    }


def evaluate(name: str, videos, model, queries) -> dict:
    """``videos``: list of fp32 [T, k, P, C]. Reference for the head: the fp16 store format."""
    import numpy as np

    out: dict = {"clips": [int(v.shape[0]) for v in videos], "shape": list(videos[0].shape[1:])}
    ref16 = [quantize(v, "fp16")[0] for v in videos]
    for scheme in SCHEMES:
        rt = [quantize(v, scheme) for v in videos]
        deq = [r[0] for r in rt]
        err = np.concatenate([(d - v).ravel() for d, v in zip(deq, videos)])
        norm = np.concatenate([v.ravel() for v in videos])
        row = {"bytes_ratio_vs_fp16": round(sum(r[1] for r in rt) / sum(v.size * 2 for v in videos), 4),
               "token_rel_error": float(np.linalg.norm(err) / np.linalg.norm(norm)),
               "token_max_abs_error": float(np.abs(err).max()),
               "token_max_abs": float(np.abs(norm).max())}
        base = [v for v in videos] if scheme == "fp16" else ref16  # fp16 vs fp32; 8-bit vs fp16
        row["head_vs"] = "fp32" if scheme == "fp16" else "fp16"
        row["head"] = head_effect(model, base, deq, queries)
        out[scheme] = row
        print(f"{name} {scheme}: rel {row['token_rel_error']:.2e} sal max {row['head']['saliency_max_abs_diff']:.2e}",
              file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--device", default="cpu", choices=("cpu",), help="CPU only (a fidelity measurement)")
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--outliers", type=int, default=6)
    parser.add_argument("--tower", action="store_true", help="also a random ViT-B/32 forward on testsrc2 frames")
    parser.add_argument("--tower-clips", type=int, default=24)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(1 if args.smoke else torch.get_num_threads())
    if args.smoke:
        args.clips, args.videos, args.queries, args.tower = 10, 1, 2, False
    result: dict = {"script": "quantize_tokens", "smoke": args.smoke, **common.machine_info("cpu"), "sets": {}}
    parity = common.REPO.parent / "shared" / "parity" / "clip_tower_official.pt"
    if parity.exists():
        load = common.need("r2cli.model.checkpoint", "load_official_checkpoint")
        data = torch.load(parity, weights_only=True)
        model = load({"state_dict": data["e2e"]["head_state_dict"]}, num_tokens=int(data["cache_video"][0].shape[2])).model.eval()
        videos = [v.float().numpy() for v in data["cache_video"]]
        queries = [q.float() for q in data["cache_query"]]
        result["sets"]["parity"] = evaluate("parity", videos, model, queries)
    model = common.random_head("cpu")
    cfg = model.config
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(3)
    queries = [torch.randn(12 + 4 * i, cfg.k, cfg.query_width, generator=gen) for i in range(args.queries)]
    videos = [vitb32_like(rng, args.clips, args.outliers, cfg.k, cfg.num_tokens, cfg.video_width) for _ in range(args.videos)]
    result["sets"]["vitb32"] = evaluate("vitb32", videos, model, queries)
    if args.tower:
        feats = tower_features(args.tower_clips, common.REPO / "benchmarks" / "_work" / "quantize")
        result["sets"]["tower"] = evaluate("tower", [feats], model, queries)
    common.write_result(args.out, "quantize_tokens", result)
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [f"### quantize_tokens {result['date']}: {result['cpu']}, {result['cpu_count']} cores, torch {result['torch']}"
             f"{' (smoke)' if result['smoke'] else ''}", "",
             "| set | scheme | bytes vs fp16 | token rel. error | token max abs err (max abs) | head vs | saliency max / mean abs diff "
             "| top-1 score max diff | top-1 boundary max diff (s) | same top-1 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in result["sets"].items():
        for scheme in SCHEMES:
            r = s[scheme]
            h = r["head"]
            lines.append(f"| {name} | {scheme} | {r['bytes_ratio_vs_fp16']:.3f} | {r['token_rel_error']:.2e} | "
                         f"{r['token_max_abs_error']:.3g} ({r['token_max_abs']:.3g}) | {r['head_vs']} | "
                         f"{h['saliency_max_abs_diff']:.2e} / {h['saliency_mean_abs_diff']:.2e} | "
                         f"{h['top1_score_max_abs_diff']:.2e} | {h['top1_boundary_max_abs_diff_s']:.3g} | "
                         f"{h['top1_same_share']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
