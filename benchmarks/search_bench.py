"""Search speed: batched fine stage vs a batch-of-one loop, and one query over 100 video-hours.

Random weights of the real shapes (ViT-B/32 widths 768/512, 50 tokens, k=4, dims 256) and random
fp16 features; what is measured is arithmetic and data movement, not accuracy.

1. ``pairs``: 64 videos x 16 queries of 150 s at 0.5 fps (T=75) with 20-token queries (L=20).
   Batched: ``Grounder.run`` over all 1,024 pairs (each video side computed once, queries batched
   against it, vectorised decoding). Loop: the same code with batch 1 and one pair per call (video
   side recomputed for every pair), over the first ``--loop-pairs`` of the same pairs (the per-pair
   cost of the loop is constant). Post-processing (clamp, rounding, NMS) is timed separately.
2. ``archive``: latency of one query over ``--hours`` video-hours (default 100) of cached features in
   a real feature store: one 1-hour feature file (553 MB) is written, every other video gets its own
   real-size clip-embedding array ([1800, 512] fp16) and shares that layer file (disk: writing 55 GB
   of random layers would only measure the disk). The coarse stage reads every video's embeddings;
   the fine stage reads the candidate windows' layers from the memory-mapped file.

Usage:
    python benchmarks/search_bench.py pairs [--device cuda] [--precision bf16]
    python benchmarks/search_bench.py archive [--hours 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def _model(device: str):
    import torch

    from r2cli.model import build_model

    torch.manual_seed(0)
    model = build_model()  # QVHighlights architecture, ViT-B/32 widths
    with torch.no_grad():
        model.adapter.gate.normal_()
        model.adapter.scale.normal_()
    return model.to(device).eval()


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_pairs(args) -> dict:
    import numpy as np
    import torch

    from r2cli.inference.grounding import Grounder
    from r2cli.inference.windows import PostProcess, Window, merge_many

    device = args.device
    model = _model(device)
    rng = np.random.default_rng(0)
    distinct = [rng.standard_normal((args.clips, 4, 50, 768)).astype(np.float16) for _ in range(args.distinct)]
    videos = [distinct[i % len(distinct)] for i in range(args.videos)]
    queries = [torch.randn(args.tokens, 4, 512) for _ in range(args.queries)]
    pairs = [(v, q) for v in range(args.videos) for q in range(args.queries)]
    batched = Grounder(model, device, batch_size=args.batch_size, chunk_windows=args.chunk, precision=args.precision)
    batched.run(videos[:2], queries[:2], [(0, 0), (1, 1)], fps=0.5)  # warm-up
    results = {}
    times = []
    for _ in range(args.repeat):
        _sync(device)
        start = time.perf_counter()
        outputs = batched.run(videos, queries, pairs, fps=0.5)
        _sync(device)
        times.append(time.perf_counter() - start)
    batched_s = min(times)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
        with profile(activities=activities) as prof:
            batched.run(videos, queries, pairs, fps=0.5)
            _sync(device)
        for sort in (["cuda_time_total"] if device.startswith("cuda") else []) + ["self_cpu_time_total"]:
            print(prof.key_averages().table(sort_by=sort, row_limit=18), flush=True)
    results["batched"] = {"pairs": len(pairs), "seconds": round(batched_s, 3), "pairs_per_s": round(len(pairs) / batched_s, 1),
                          "batch_size": batched.batch_size, "chunk_windows": batched.chunk_windows}
    start = time.perf_counter()
    window = Window(0, 0, args.clips)
    merged = merge_many([[(window, outputs[p].boundaries)] for p in pairs], fps=0.5,
                        durations=[args.clips / 0.5] * len(pairs), post=PostProcess())
    post_s = time.perf_counter() - start
    results["postprocess"] = {"pairs": len(merged), "seconds": round(post_s, 3), "pairs_per_s": round(len(pairs) / post_s, 1)}
    if args.loop_pairs:
        single = Grounder(model, device, batch_size=1, chunk_windows=1, precision=args.precision)
        subset = pairs[: args.loop_pairs]
        _sync(device)
        start = time.perf_counter()
        for pair in subset:
            single.run(videos, queries, [pair], fps=0.5)
        _sync(device)
        loop_s = time.perf_counter() - start
        results["loop"] = {"pairs": len(subset), "seconds": round(loop_s, 3), "pairs_per_s": round(len(subset) / loop_s, 2)}
        results["speedup"] = round(results["batched"]["pairs_per_s"] / results["loop"]["pairs_per_s"], 2)
        check = max(float(np.abs(outputs[p].saliency - single.run(videos, queries, [p], fps=0.5)[p].saliency).max())
                    for p in subset[:4])
        results["max_saliency_diff_batched_vs_single"] = check
    return results


def bench_archive(args) -> dict:
    import numpy as np
    import torch

    from r2cli.features.store import FeatureSettings, FeatureStore
    from r2cli.inference.grounding import Grounder
    from r2cli.inference.search import _Video, choose_candidates, coarse_scores
    from r2cli.inference.windows import PostProcess, merge_many, merge_window_saliency, plan_windows, window_sizes

    device = args.device
    clips_per_video = 1800  # one hour at 0.5 fps
    num_videos = int(round(args.hours))
    folder = Path(args.store or tempfile.mkdtemp(prefix="r2cli-bench-"))
    store = FeatureStore(folder)
    settings = FeatureSettings(clip_model="ViT-B-32", weights_id="bench/random", fps=0.5, image_size=224, k=4)
    rng = np.random.default_rng(0)
    fingerprint = "blake2b:" + "ab" * 32
    start = time.perf_counter()
    if store.get(fingerprint, settings) is None:
        with store.writer(fingerprint, settings, duration=3600.0) as writer:
            for chunk in range(0, clips_per_video, 150):
                layers = rng.standard_normal((150, 4, 50, 768), dtype=np.float32).astype(np.float16)
                embed = rng.standard_normal((150, 512)).astype(np.float32)
                embed /= np.linalg.norm(embed, axis=1, keepdims=True)
                writer.append(layers, embed, (np.arange(chunk, chunk + 150) + 0.5) * 2.0)
            writer.commit()
    write_s = time.perf_counter() - start
    shared = store.get(fingerprint, settings)

    class _Features:  # a video: its own embeddings, the shared layer file
        def __init__(self, embed):
            self.embed = embed
            self.layers = shared.layers
            self.num_clips = clips_per_video

    embeds = []
    for i in range(num_videos):
        embed = rng.standard_normal((clips_per_video, 512)).astype(np.float32)
        embed /= np.linalg.norm(embed, axis=1, keepdims=True)
        path = folder / f"embed-{i:03d}.npy"
        np.save(path, embed.astype(np.float16))
        embeds.append(np.load(path, mmap_mode="r"))
    model = _model(device)
    query_layers = [torch.randn(args.tokens, 4, 512)]
    query_embed = rng.standard_normal((1, 512)).astype(np.float32)
    query_embed /= np.linalg.norm(query_embed)
    window_clips, stride_clips = window_sizes(150.0, 75.0, 0.5)
    timings = {}
    start = time.perf_counter()
    videos = []
    for embed in embeds:
        video = _Video(record=None, features=_Features(embed), duration=3600.0)
        video.windows = plan_windows(clips_per_video, window_clips, stride_clips)
        videos.append(video)
    window_list = [(v, w) for v in videos for w in v.windows]
    scores = coarse_scores(videos, query_embed)
    pairs = choose_candidates(scores, args.candidates)
    timings["coarse_s"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    grounder = Grounder(model, device, precision=args.precision)
    windows = sorted({w for w, _ in pairs})
    outputs = grounder.run([v.features.layers[w.start_clip : w.end_clip] for v, w in window_list], query_layers, pairs,
                           fps=0.5)
    _sync(device)
    timings["fine_s"] = round(time.perf_counter() - start, 3)
    fine_per_window_ms = round(1000 * timings["fine_s"] / max(1, len(windows)), 1)
    start = time.perf_counter()
    groups: dict[int, list[int]] = {}
    for w, _ in pairs:
        groups.setdefault(id(window_list[w][0]), []).append(w)
    merged = merge_many([[(window_list[w][1], outputs[(w, 0)].boundaries) for w in ws] for ws in groups.values()],
                        fps=0.5, durations=[3600.0] * len(groups), post=PostProcess())
    for ws in groups.values():
        merge_window_saliency([(window_list[w][1], outputs[(w, 0)].saliency) for w in ws], clips_per_video)
    timings["merge_s"] = round(time.perf_counter() - start, 3)
    timings["total_s"] = round(sum(timings.values()), 3)
    return {
        "video_hours": num_videos,
        "windows": len(window_list),
        "candidate_windows": len(windows),
        "fine_ms_per_candidate_window": fine_per_window_ms,
        "moments": int(sum(len(m) for m in merged)),
        "embedding_bytes": int(sum(e.nbytes for e in embeds)),
        "layer_file_bytes": int(shared.nbytes),
        "store_write_s": round(write_s, 1),
        "timings": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("pairs", "archive"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--distinct", type=int, default=8, help="distinct random videos (the others repeat them)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--chunk", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--loop-pairs", type=int, default=64)
    parser.add_argument("--hours", type=float, default=100)
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of one batched run")
    parser.add_argument("--store", default=None, help="feature store folder for 'archive' (default: a temp folder)")
    args = parser.parse_args()
    import torch

    info = {
        "what": args.what,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "precision": args.precision,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    result = bench_pairs(args) if args.what == "pairs" else bench_archive(args)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]  # the machine may be shared
    print(json.dumps({**info, **result}, indent=2))


if __name__ == "__main__":
    main()
