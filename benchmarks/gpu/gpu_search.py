"""Search throughput (issue #13 item 1): (window, query) pairs per second through ``Grounder.run``.

Random head weights of the real shapes (the parity head: QVHighlights config, ViT-B/32 widths) and
random fp16 window features [T=75, k=4, P=50, C=768]; queries [L=20, 4, 512]. What is measured is
arithmetic and data movement, not accuracy. Cases, each in bf16 and fp32:

  all   256 windows x 64 queries, every pair (16,384 pairs): the issue's headline number
  q1    1,024 windows, 1 query per window (1,024 pairs): window-bound, the host copy dominates
  q8    512 windows, 8 queries per window (4,096 pairs)

Windows reuse ``--distinct`` random arrays (memory), but every window is copied from the host as
in a real search. Also measured:
  resident   the same pairs with the features already on the device in fp16 (no host copy,
             outputs left on the device): the ceiling for the copy-overlap work;
  profile    one torch.profiler run of ``all`` (bf16): kernel time vs copy time vs wall;
  checks     batch invariance (batched vs batch 1) and, on CUDA, CUDA vs CPU fp32 parity.

Usage:  python benchmarks/gpu/gpu_search.py [--device auto] [--out DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

CASES = {  # name: (windows, queries, queries per window or 0 = all)
    "all": (256, 64, 0),
    "q1": (1024, 64, 1),
    "q8": (512, 64, 8),
}
SMOKE_CASES = {"all": (6, 4, 0), "q1": (8, 4, 1), "q8": (4, 8, 2)}


def make_pairs(windows: int, queries: int, per_window: int) -> list[tuple[int, int]]:
    if per_window == 0:
        return [(w, q) for w in range(windows) for q in range(queries)]
    return [(w, (w * per_window + j) % queries) for w in range(windows) for j in range(per_window)]


def run_case(model, device, precision, distinct, queries, case, args) -> dict:
    windows_n, queries_n, per_window = case
    windows = [distinct[i % len(distinct)] for i in range(windows_n)]
    qs = queries[:queries_n]
    pairs = make_pairs(windows_n, queries_n, per_window)
    g = common.grounder(model, device, precision=precision, batch_size=args.batch_size, chunk_windows=args.chunk)
    g.run(windows[:2], qs[:2], [(0, 0), (1, 1)], fps=0.5)  # warm-up (allocator, kernels, pinned buffer)
    times = []
    for _ in range(args.repeat):
        common.sync(device)
        start = time.perf_counter()
        g.run(windows, qs, pairs, fps=0.5)
        common.sync(device)
        times.append(time.perf_counter() - start)
    best = min(times)
    return {"windows": windows_n, "queries": queries_n, "pairs": len(pairs), "seconds": round(best, 4),
            "pairs_per_s": round(len(pairs) / best, 1), "all_seconds": [round(t, 4) for t in times],
            "batch_size": g.batch_size, "chunk_windows": g.chunk_windows,
            "ignored_kwargs": g._bench_dropped_kwargs}


def run_resident(model, device, precision, distinct, queries, case, args) -> dict:
    """The same pairs with fp16 features already on the device; outputs stay there (the ceiling)."""
    import torch

    windows_n, queries_n, per_window = case
    pairs = make_pairs(windows_n, queries_n, per_window)
    g = common.grounder(model, device, precision=precision, batch_size=args.batch_size, chunk_windows=args.chunk)
    bank = torch.stack([torch.from_numpy(d) for d in distinct]).to(device)  # [D, T, k, P, C] fp16
    q_all, q_mask = g.pad_queries(queries[:queries_n])
    by_window: dict[int, list[int]] = {}
    for w, q in pairs:
        by_window.setdefault(w, []).append(q)
    order = sorted(by_window)

    def once() -> None:
        with torch.inference_mode():
            for start in range(0, len(order), g.chunk_windows):
                chunk = order[start : start + g.chunk_windows]
                rows = torch.tensor([w % len(distinct) for w in chunk], device=device)
                with g._autocast():
                    side = model.encode_video(bank[rows])
                flat = [(i, q) for i, w in enumerate(chunk) for q in by_window[w]]
                for b in range(0, len(flat), g.batch_size):
                    part = flat[b : b + g.batch_size]
                    local = torch.tensor([p[0] for p in part], device=device)
                    qi = torch.tensor([p[1] for p in part], device=device)
                    with g._autocast():
                        out = model.ground(side, q_all[qi], q_mask[qi], local)
                    g.decode(out, 0.5)

    once()
    times = []
    for _ in range(args.repeat):
        common.sync(device)
        start = time.perf_counter()
        once()
        common.sync(device)
        times.append(time.perf_counter() - start)
    best = min(times)
    return {"pairs": len(pairs), "seconds": round(best, 4), "pairs_per_s": round(len(pairs) / best, 1)}


def profile_case(model, device, precision, distinct, queries, case, args) -> dict:
    """Kernel time vs copy time vs wall of one run (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    windows_n, queries_n, per_window = case
    windows = [distinct[i % len(distinct)] for i in range(windows_n)]
    pairs = make_pairs(windows_n, queries_n, per_window)
    g = common.grounder(model, device, precision=precision, batch_size=args.batch_size, chunk_windows=args.chunk)
    g.run(windows[:2], queries[:2], [(0, 0), (1, 1)], fps=0.5)
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    common.sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        g.run(windows, queries[:queries_n], pairs, fps=0.5)
        common.sync(device)
    wall = time.perf_counter() - start
    events = prof.key_averages()

    def dev_self(e) -> float:  # microseconds on the device
        for name in ("self_device_time_total", "self_cuda_time_total"):
            if hasattr(e, name):
                return float(getattr(e, name))
        return 0.0

    result: dict = {"pairs": len(pairs), "wall_s": round(wall, 4)}
    if cuda:
        copies = [e for e in events if "memcpy" in e.key.lower()]
        sets = [e for e in events if "memset" in e.key.lower()]
        kernels = [e for e in events if dev_self(e) > 0 and e not in copies and e not in sets]
        result["device_copy_s"] = round(sum(dev_self(e) for e in copies) / 1e6, 4)
        result["device_copy_by_kind"] = {e.key: round(dev_self(e) / 1e6, 4) for e in copies}
        result["device_kernel_s"] = round(sum(dev_self(e) for e in kernels) / 1e6, 4)
        top = sorted(kernels, key=dev_self, reverse=True)[:12]
        result["top_device_ops"] = [{"name": e.key[:90], "s": round(dev_self(e) / 1e6, 4), "calls": e.count} for e in top]
    top_cpu = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    result["top_cpu_ops"] = [{"name": e.key[:90], "self_cpu_s": round(e.self_cpu_time_total / 1e6, 4), "calls": e.count}
                             for e in top_cpu]
    return result


def checks(model, device, distinct, queries, args) -> dict:
    """Batch invariance on this device, and CUDA vs CPU fp32 parity (on CUDA)."""
    import copy

    import numpy as np

    windows = [distinct[i % len(distinct)] for i in range(4)]
    pairs = [(w, q) for w in range(4) for q in range(2)]
    out: dict = {}
    for precision in args.precisions:
        batched = common.grounder(model, device, precision=precision).run(windows, queries, pairs, fps=0.5)
        single = common.grounder(model, device, precision=precision, batch_size=1, chunk_windows=1)
        sal = bnd = 0.0
        for p in pairs:
            one = single.run(windows, queries, [p], fps=0.5)[p]
            sal = max(sal, float(np.abs(batched[p].saliency - one.saliency).max()))
            n = min(len(batched[p].boundaries), len(one.boundaries))
            bnd = max(bnd, float(np.abs(batched[p].boundaries[:n] - one.boundaries[:n]).max()) if n else 0.0)
        out[f"batch_invariance_{precision}"] = {"max_saliency_diff": sal, "max_boundary_diff": bnd}
    if device.startswith("cuda"):
        cpu_model = copy.deepcopy(model).to("cpu")
        ref = common.grounder(cpu_model, "cpu", precision="fp32").run(windows, queries, pairs, fps=0.5)
        for precision in args.precisions:
            got = common.grounder(model, device, precision=precision).run(windows, queries, pairs, fps=0.5)
            sal = max(float(np.abs(got[p].saliency - ref[p].saliency).max()) for p in pairs)
            top1 = max(float(np.abs(got[p].boundaries[0] - ref[p].boundaries[0]).max()) for p in pairs)
            out[f"cuda_{precision}_vs_cpu_fp32"] = {"max_saliency_diff": sal, "max_top1_boundary_diff": top1}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="folder for gpu_search.json")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CPU check of the script)")
    parser.add_argument("--precisions", default=None, help="comma list (default bf16,fp32; fp32 on a CPU smoke run)")
    parser.add_argument("--cases", default="all,q1,q8")
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--distinct", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--chunk", type=int, default=None)
    parser.add_argument("--no-resident", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    device = common.pick_device(args.device)
    cases = SMOKE_CASES if args.smoke else CASES
    if args.smoke:
        args.clips, args.tokens, args.distinct, args.repeat = min(args.clips, 20), min(args.tokens, 6), 2, 1
    default_precisions = "bf16,fp32" if device.startswith("cuda") else "fp32"
    args.precisions = (args.precisions or default_precisions).split(",")
    model = common.random_head(device, tiny=args.smoke)
    rng = np.random.default_rng(0)
    cfg = model.config
    distinct = [rng.standard_normal((args.clips, cfg.k, cfg.num_tokens, cfg.video_width), dtype=np.float32).astype(np.float16)
                for _ in range(args.distinct)]
    max_q = max(c[1] for c in cases.values())
    gen = torch.Generator().manual_seed(1)
    queries = [torch.randn(args.tokens, cfg.k, cfg.query_width, generator=gen) for _ in range(max_q)]
    result: dict = {"script": "gpu_search", "smoke": args.smoke, **common.machine_info(device),
                    "shapes": {"clips": args.clips, "tokens": args.tokens, "distinct": args.distinct}, "cases": {}}
    wanted = [c for c in args.cases.split(",") if c]
    for precision in args.precisions:
        for name in wanted:
            key = f"{name}_{precision}"
            result["cases"][key] = run_case(model, device, precision, distinct, queries, cases[name], args)
            if not args.no_resident:
                result["cases"][key]["resident"] = run_resident(model, device, precision, distinct, queries,
                                                                cases[name], args)
            print(f"{key}: {result['cases'][key]['pairs_per_s']} pairs/s", file=sys.stderr, flush=True)
    if not args.no_profile:
        precision = "bf16" if "bf16" in args.precisions else args.precisions[0]
        result["profile"] = {"precision": precision,
                             **profile_case(model, device, precision, distinct, queries, cases["all"], args)}
    result["checks"] = checks(model, device, distinct, queries, args)
    common.write_result(args.out, "gpu_search", result)
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [f"### gpu_search {result['date']}: {result.get('gpu', result['cpu'])}, torch {result['torch']}"
             f"{' (smoke)' if result['smoke'] else ''}", "",
             "| case | pairs | pairs/s end to end | pairs/s features resident |", "|---|---|---|---|"]
    for key, r in result["cases"].items():
        lines.append(f"| {key} | {r['pairs']} | {r['pairs_per_s']:,.0f} | "
                     f"{r['resident']['pairs_per_s']:,.0f} |" if "resident" in r else
                     f"| {key} | {r['pairs']} | {r['pairs_per_s']:,.0f} | - |")
    prof = result.get("profile")
    if prof and "device_kernel_s" in prof:
        lines.append(f"\nprofile ({prof['precision']}, {prof['pairs']} pairs): wall {prof['wall_s']} s, kernels "
                     f"{prof['device_kernel_s']} s, copies {prof['device_copy_s']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
