"""One query over 1,000 video-hours of cached features (issue #13 item 2): where the time goes.

Nothing here needs the 555 GB a real 1,000-hour store holds. The script builds a realistic subset:

* coarse stage: real-size clip embeddings, 1,000 videos x 1,800 clips (0.5 fps, 1 h) x 512, fp16
  (1.8 GB), generated on the device. Each clip's cosine to the query is drawn from
  N(0.15, 0.03) (unrelated footage), except ``--planted`` moments of ``--moment-clips`` clips in
  distinct videos drawn from N(``--planted-cos``, 0.03): recall of the candidate windows is
  measured on those. Windows: r2cli's ``window_sizes(150, 75)`` / ``plan_windows``; a window's
  score is the max clip cosine (r2cli's ``coarse_scores`` rule).
  Timed: r2cli's library path (``coarse_scores`` + ``choose_candidates``, numpy on the host) and a
  torch prototype (chunked fp32 matmul, window max by gather, ``topk``) with the embeddings (a) resident
  on the device, (b) in pinned host memory, (c) in a memory-mapped .npy (page cache). The prototype's
  candidate set is checked against the library's.
* fine stage: ``--window-files`` distinct window files [75, 4, 50, 768] fp16 (11.5 MB each) and
  their int8 twins (one fp16 scale per token); candidates cycle over them. Timed per candidate
  count: (a) cold read GB/s (pages dropped with posix_fadvise), (b) ``Grounder.run`` over
  memory-mapped fp16 windows (page cache), (c) int8 read + device dequantisation + the head,
  (d) the windows already resident in device memory (a hot-window cache) + the head.

Usage:  python benchmarks/gpu/gpu_archive_query.py [--device auto] [--hours 1000] [--out DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402


# ---------------------------------------------------------------------------------------- coarse
def make_embeddings(args, device: str):
    """[V*clips, D] fp16 unit vectors on ``device``, the query [D], and the planted moments."""
    import torch

    gen = torch.Generator(device=device).manual_seed(0)
    d = args.dim
    q = torch.randn(d, generator=gen, device=device)
    q = q / q.norm()
    n = args.videos * args.clips_per_video
    out = torch.empty(n, d, dtype=torch.float16, device=device)
    step = 262_144
    for a in range(0, n, step):
        b = min(n, a + step)
        u = torch.randn(b - a, d, generator=gen, device=device)
        u = u - (u @ q)[:, None] * q[None, :]
        u = u / u.norm(dim=1, keepdim=True)
        c = (0.15 + 0.03 * torch.randn(b - a, generator=gen, device=device)).clamp(-0.99, 0.99)
        out[a:b] = (c[:, None] * q[None, :] + (1 - c * c).sqrt()[:, None] * u).half()
    # planted moments: distinct videos, random start
    rng = torch.Generator().manual_seed(1)
    vids = torch.randperm(args.videos, generator=rng)[: args.planted].tolist()
    planted = []
    for v in vids:
        start = int(torch.randint(0, args.clips_per_video - args.moment_clips, (1,), generator=rng))
        a = v * args.clips_per_video + start
        u = torch.randn(args.moment_clips, d, generator=gen, device=device)
        u = u - (u @ q)[:, None] * q[None, :]
        u = u / u.norm(dim=1, keepdim=True)
        c = (args.planted_cos + 0.03 * torch.randn(args.moment_clips, generator=gen, device=device)).clamp(-0.99, 0.99)
        out[a : a + args.moment_clips] = (c[:, None] * q[None, :] + (1 - c * c).sqrt()[:, None] * u).half()
        planted.append((v, start, start + args.moment_clips))
    return out, q, planted


def window_index(args):
    window_sizes = common.need("r2cli.inference.windows", "window_sizes")
    plan_windows = common.need("r2cli.inference.windows", "plan_windows")
    wc, sc = window_sizes(150.0, 75.0, 0.5)
    windows = plan_windows(args.clips_per_video, wc, sc)
    return windows, wc


def coarse_torch(emb_chunks, q, args, windows, wc, device: str, top: int):
    """Prototype: chunked cosine on the device, window max by gather, one topk. Returns (scores, order)."""
    import torch

    n = args.videos * args.clips_per_video
    sims = torch.empty(n, dtype=torch.float32, device=device)
    q32 = q.to(device=device, dtype=torch.float32)
    a = 0
    for chunk in emb_chunks():
        chunk = chunk.to(device, non_blocking=True)
        # fp32 products of the fp16 rows, as the library computes them: an fp16 result would
        # round the scores (~1e-4) and swap near-tied windows at the candidate cut
        sims[a : a + chunk.shape[0]] = chunk.float() @ q32
        a += chunk.shape[0]
    starts = torch.tensor([w.start_clip for w in windows], device=device)
    idx = starts[:, None] + torch.arange(wc, device=device)[None, :]  # [W, wc]
    per_video = sims.view(args.videos, args.clips_per_video)
    scores = per_video[:, idx].amax(-1).reshape(-1)  # [V*W], window w of video v at v*W + w
    best = torch.topk(scores, min(top, scores.numel())).indices
    return scores, best


def coarse_library(host_emb, q, args, windows):
    """r2cli's own coarse stage (numpy): coarse_scores + choose_candidates over per-video arrays."""
    import numpy as np

    from types import SimpleNamespace

    coarse_scores = common.need("r2cli.inference.search", "coarse_scores")
    choose = common.need("r2cli.inference.search", "choose_candidates")
    # coarse_scores reads only ``video.features.embed`` [T, D] and ``video.windows`` (the class
    # that holds them was renamed between versions, so a plain namespace stands in for it)
    per = host_emb.reshape(args.videos, args.clips_per_video, args.dim)
    videos = [SimpleNamespace(features=SimpleNamespace(embed=per[v]), windows=windows) for v in range(args.videos)]
    scores = coarse_scores(videos, np.asarray(q, dtype=np.float32)[None, :])
    return scores, choose(scores, max(args.candidates))


def recall(best_windows: list[int], planted, windows, per_video: int) -> float:
    hits = 0
    chosen = set(best_windows)
    for v, s, e in planted:
        if any(v * per_video + w.index in chosen for w in windows if w.start_clip < e and s < w.end_clip):
            hits += 1
    return hits / max(1, len(planted))


# ---------------------------------------------------------------------------------------- fine
def write_windows(folder: Path, args, shape) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """``--window-files`` fp16 windows (8 distinct contents, distinct files) and int8 twins."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    contents = [rng.standard_normal(shape, dtype=np.float32).astype(np.float16) for _ in range(min(8, args.window_files))]
    quantized = []
    for x in contents:
        scale = (np.abs(x.astype(np.float32)).max(-1, keepdims=True) / 127.0).astype(np.float16)  # one per token
        q = np.clip(np.rint(x.astype(np.float32) / np.maximum(scale.astype(np.float32), 1e-8)), -127, 127)
        quantized.append((q.astype(np.int8), scale))
    fp16, int8 = [], []
    for i in range(args.window_files):
        x = contents[i % len(contents)]
        p = folder / f"w{i:05d}.npy"
        if not p.exists():
            np.save(p, x)
        qp, sp = folder / f"w{i:05d}.q8.npy", folder / f"w{i:05d}.s.npy"
        if not qp.exists():
            np.save(qp, quantized[i % len(contents)][0])
            np.save(sp, quantized[i % len(contents)][1])
        fp16.append(p)
        int8.append((qp, sp))
    return fp16, int8


def drop_cache(paths) -> bool:
    ok = True
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)  # dirty pages are not dropped
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        except (OSError, AttributeError):
            ok = False
    return ok


def read_gbps(paths) -> float:
    import numpy as np

    start = time.perf_counter()
    total = 0
    for p in paths:
        total += np.load(p).nbytes
    return total / (time.perf_counter() - start) / 1e9


def ground_direct(model, g, batches, query, qmask, device):
    """encode_video + ground + decode for windows handed over as device tensors (no host staging)."""
    import torch

    with torch.inference_mode():
        for video in batches:
            n = video.shape[0]
            with g._autocast():
                side = model.encode_video(video)
                out = model.ground(side, query.expand(n, *query.shape[1:]), qmask.expand(n, -1),
                                   torch.arange(n, device=device))
            g.decode(out, 0.5)


def fine_stage(model, args, device, fp16_files, int8_files, counts) -> dict:
    import numpy as np
    import torch

    res: dict = {}
    cfg = model.config
    query = torch.randn(20, cfg.k, cfg.query_width, generator=torch.Generator().manual_seed(2))
    g = common.grounder(model, device, precision=args.precision)
    qpad, qmask = g.pad_queries([query])
    nfiles = len(fp16_files)
    cold_ok = drop_cache(fp16_files)
    res["cold_read_gbps_fp16"] = round(read_gbps(fp16_files), 2)
    res["warm_read_gbps_fp16"] = round(read_gbps(fp16_files), 2)
    drop_cache([p for pair in int8_files for p in pair])
    res["cold_read_gbps_int8"] = round(read_gbps([q for q, _ in int8_files]), 2)
    res["fadvise_evicts"] = bool(cold_ok and res["cold_read_gbps_fp16"] < 0.7 * res["warm_read_gbps_fp16"])
    window_bytes = int(np.load(fp16_files[0], mmap_mode="r").nbytes)
    int8_bytes = int(np.load(int8_files[0][0], mmap_mode="r").nbytes + np.load(int8_files[0][1], mmap_mode="r").nbytes)
    res["bytes_per_window_fp16"], res["bytes_per_window_int8"] = window_bytes, int8_bytes
    chunk = g.chunk_windows
    g.run([np.load(fp16_files[0], mmap_mode="r")], [query], [(0, 0)], fps=0.5)  # warm-up
    for c in counts:
        row: dict = {}
        windows = [np.load(fp16_files[i % nfiles], mmap_mode="r") for i in range(c)]
        common.sync(device)
        t = time.perf_counter()
        g.run(windows, [query], [(i, 0) for i in range(c)], fps=0.5)
        common.sync(device)
        row["grounder_fp16_page_cache_s"] = round(time.perf_counter() - t, 4)
        row["cold_read_projection_s"] = round(c * window_bytes / 1e9 / max(res["cold_read_gbps_fp16"], 1e-9), 3)

        def int8_batches():
            for a in range(0, c, chunk):
                qs = [np.load(int8_files[i % nfiles][0]) for i in range(a, min(c, a + chunk))]
                ss = [np.load(int8_files[i % nfiles][1]) for i in range(a, min(c, a + chunk))]
                qd = torch.from_numpy(np.stack(qs)).to(device, non_blocking=True)
                sd = torch.from_numpy(np.stack(ss)).to(device, non_blocking=True)
                yield qd.to(torch.float16 if device.startswith("cuda") else torch.float32) * sd.to(
                    torch.float16 if device.startswith("cuda") else torch.float32)

        common.sync(device)
        t = time.perf_counter()
        ground_direct(model, g, int8_batches(), qpad, qmask, device)
        common.sync(device)
        row["int8_read_dequant_head_s"] = round(time.perf_counter() - t, 4)
        # hot-window cache: every candidate already resident on the device
        gpu_dtype = torch.float16 if device.startswith("cuda") else torch.float32
        distinct = min(nfiles, c)
        resident = torch.stack([torch.from_numpy(np.load(fp16_files[i])) for i in range(distinct)]).to(device, gpu_dtype)
        rows = torch.arange(c, device=device) % distinct
        common.sync(device)
        t = time.perf_counter()
        ground_direct(model, g, (resident[rows[a : a + chunk]] for a in range(0, c, chunk)), qpad, qmask, device)
        common.sync(device)
        row["device_resident_head_s"] = round(time.perf_counter() - t, 4)
        del resident
        res[f"candidates_{c}"] = row
        print(f"fine {c}: {row}", file=sys.stderr, flush=True)
    return res


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--hours", type=int, default=1000, help="videos of one hour each")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--planted", type=int, default=200)
    parser.add_argument("--moment-clips", type=int, default=8)
    parser.add_argument("--planted-cos", type=float, default=0.26)
    parser.add_argument("--candidates", default="2000,1000,500,200,100,50")
    parser.add_argument("--fine", default="2000,500,200,50", help="candidate counts for the fine stage")
    parser.add_argument("--window-files", type=int, default=128)
    parser.add_argument("--precision", default=None, help="head precision (default bf16 on CUDA, fp32 on CPU)")
    parser.add_argument("--work", default=None, help="scratch folder (default benchmarks/_work/archive)")
    parser.add_argument("--skip-library", action="store_true", help="skip r2cli's numpy coarse stage")
    parser.add_argument("--skip-fine", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    device = common.pick_device(args.device)
    if args.smoke:
        torch.set_num_threads(1)
        args.hours, args.planted, args.window_files = 4, 3, 3
        args.candidates, args.fine = "6,3", "4"
    args.videos, args.clips_per_video = args.hours, 1800
    args.candidates = sorted({int(c) for c in args.candidates.split(",")}, reverse=True)
    fine_counts = sorted({int(c) for c in args.fine.split(",") if c}, reverse=True)
    args.precision = args.precision or ("bf16" if device.startswith("cuda") else "fp32")
    work = Path(args.work or common.REPO / "benchmarks" / "_work" / ("archive-smoke" if args.smoke else "archive"))
    result: dict = {"script": "gpu_archive_query", "smoke": args.smoke, **common.machine_info(device),
                    "video_hours": args.hours, "clips": args.videos * args.clips_per_video,
                    "planted": args.planted, "planted_cos": args.planted_cos, "precision": args.precision}
    t = time.perf_counter()
    emb, q, planted = make_embeddings(args, device)
    common.sync(device)
    result["generate_s"] = round(time.perf_counter() - t, 3)
    windows, wc = window_index(args)
    result["windows"] = len(windows) * args.videos
    top = max(args.candidates)
    timings: dict = {}
    host = emb.cpu()
    pinned = host.pin_memory() if device.startswith("cuda") else host
    work.mkdir(parents=True, exist_ok=True)
    npy = work / "embeddings.npy"
    np.save(npy, host.numpy())
    mm = np.load(npy, mmap_mode="r")
    step = 262_144
    sources = {
        "resident": lambda: (emb[a : a + step] for a in range(0, emb.shape[0], step)),
        "pinned_host": lambda: (pinned[a : a + step] for a in range(0, pinned.shape[0], step)),
        "mmap_npy": lambda: (torch.from_numpy(np.ascontiguousarray(mm[a : a + step])) for a in range(0, mm.shape[0], step)),
    }
    coarse_torch(sources["resident"], q, args, windows, wc, device, top)  # warm-up
    best = None
    for name, src in sources.items():
        runs = []
        for _ in range(1 if args.smoke else 3):
            common.sync(device)
            t = time.perf_counter()
            scores, best = coarse_torch(src, q, args, windows, wc, device, top)
            common.sync(device)
            runs.append(time.perf_counter() - t)
        timings[f"torch_{name}_s"] = round(min(runs), 4)
    best_list = best.cpu().tolist()
    result["recall"] = {str(c): round(recall(best_list[:c], planted, windows, len(windows)), 3) for c in args.candidates}
    if not args.skip_library:
        t = time.perf_counter()
        lib_scores, lib_pairs = coarse_library(host.numpy(), q.cpu().numpy(), args, windows)
        timings["library_numpy_s"] = round(time.perf_counter() - t, 4)
        lib_set = {w for w, _ in lib_pairs}
        result["prototype_matches_library"] = {
            "same_candidate_set": lib_set == set(best_list[:top]),
            "overlap": len(lib_set & set(best_list[:top])) / max(1, len(lib_set)),
            "max_window_score_diff": float(np.abs(lib_scores[:, 0] - scores.cpu().numpy()).max()),
        }
    result["coarse"] = timings
    del host, pinned, mm
    npy.unlink(missing_ok=True)
    if not args.skip_fine:
        model = common.random_head(device, tiny=args.smoke)
        cfg = model.config
        shape = (wc, cfg.k, cfg.num_tokens, cfg.video_width)
        fp16_files, int8_files = write_windows(work / "windows", args, shape)
        result["fine"] = fine_stage(model, args, device, fp16_files, int8_files, fine_counts)
    if args.smoke:
        shutil.rmtree(work, ignore_errors=True)
    common.write_result(args.out, "gpu_archive_query", result)
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    c = result["coarse"]
    lines = [f"### gpu_archive_query {result['date']}: {result.get('gpu', result['cpu'])}"
             f"{' (smoke)' if result['smoke'] else ''}", "",
             f"{result['video_hours']} video-hours, {result['clips']:,} clip embeddings, {result['windows']:,} windows.", "",
             "| coarse stage | s |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in c.items()]
    lines += ["", "| candidates | recall of planted moments |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result["recall"].items()]
    fine = result.get("fine")
    if fine:
        lines += ["", f"cold read {fine['cold_read_gbps_fp16']} GB/s fp16, {fine['cold_read_gbps_int8']} GB/s int8 "
                  f"(evicted: {fine['fadvise_evicts']}); warm {fine['warm_read_gbps_fp16']} GB/s", "",
                  "| candidates | Grounder fp16 (page cache) s | cold-read projection s | int8 read+dequant+head s | "
                  "device-resident head s |", "|---|---|---|---|---|"]
        for k, r in fine.items():
            if k.startswith("candidates_"):
                lines.append(f"| {k.split('_')[1]} | {r['grounder_fp16_page_cache_s']} | {r['cold_read_projection_s']} | "
                             f"{r['int8_read_dequant_head_s']} | {r['device_resident_head_s']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
