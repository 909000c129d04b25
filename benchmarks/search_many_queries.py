"""Peak resident memory and time of one `search` over many queries (issue #14, defect 5).

Usage:  python benchmarks/search_many_queries.py [--queries 100000] [--query-batch 256]
                                                 [--clip-weights FILE] [--checkpoint FILE] [--device cpu]

The sample archive (sample_media/, five short clips) is indexed once into benchmarks/_work/
(ignored by git) with the given CLIP weights, or with a tiny random CLIP in OpenAI layout
(tests/tiny_clip.py) and a tiny random head when none are given: the memory behaviour under test
(queries streamed in batches, outputs appended per batch) does not depend on the model's size.
A query file of N lines is generated, and a child process runs what `r2cli search --queries FILE`
runs (r2cli.app.search.run_search). The parent samples the child's RSS every 0.1 s and reports the
peak, the child's own getrusage peak, the peak in each quarter of the run (flat when nothing grows
with the file), the wall time and the size of the outputs. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work" / "search_many_queries"

CHILD = """
import json, resource, sys, time
from r2cli.app.search import SearchOptions, run_search
from r2cli.paths import resolve_workspace

workspace, queries, out, clip, head, device, batch = sys.argv[1:8]
started = time.perf_counter()
result = run_search(resolve_workspace(workspace), SearchOptions(
    queries_file=queries, out=out, clip_weights=clip, checkpoint=head, device=device, query_batch=int(batch)))
print(json.dumps({"seconds": time.perf_counter() - started, "counts": result.counts, "timings": result.timings,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def prepare(args) -> tuple[Path, str, str]:
    """Index the sample archive once; returns (workspace, CLIP weights, checkpoint)."""
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "tests" / "search"))
    WORK.mkdir(parents=True, exist_ok=True)
    clip, head = args.clip_weights, args.checkpoint
    if clip is None:
        from tiny_clip import write_tiny_openai_clip

        clip = str(WORK / "tiny-clip-openai.pt")
        if not Path(clip).is_file():
            write_tiny_openai_clip(Path(clip))
    if head is None:
        from fixtures import random_head, save_official

        head = str(WORK / "tiny-head.pth")
        if not Path(head).is_file():
            save_official(random_head(), Path(head))
    workspace = WORK / "ws"
    if not (workspace / "catalog.sqlite").is_file():
        from r2cli.catalog.scan import scan_archive
        from r2cli.features.extract import extract_features
        from r2cli.paths import resolve_workspace

        ws = resolve_workspace(workspace)
        scan_archive([REPO / "sample_media"], ws)
        extract_features(ws, clip_weights=clip, device=args.device)
    return workspace, clip, head


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--query-batch", type=int, default=256)
    parser.add_argument("--clip-weights")
    parser.add_argument("--checkpoint")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    workspace, clip, head = prepare(args)
    queries = WORK / f"queries-{args.queries}.txt"
    if not queries.is_file():
        words = ["dog", "red", "car", "beach", "door", "scene", "blue", "man", "running", "night"]
        with open(queries, "w", encoding="utf-8") as handle:
            for i in range(args.queries):
                handle.write(f"a {words[i % 10]} and a {words[(i // 10) % 10]} number {i}\n")
    out = WORK / f"run-{args.queries}"
    env = dict(os.environ, PYTHONPATH=str(REPO), R2CLI_NO_PROGRESS="1")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(workspace), str(queries), str(out), clip, head,
                              args.device, str(args.query_batch)], env=env, stdout=subprocess.PIPE, text=True)
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    while child.poll() is None:
        samples.append((time.monotonic() - started, _rss_kb(child.pid)))
        time.sleep(0.1)
    wall = time.monotonic() - started
    report = json.loads(child.stdout.read().strip().splitlines()[-1])
    quarters = []
    for q in range(4):
        part = [rss for t, rss in samples if q * wall / 4 <= t < (q + 1) * wall / 4]
        quarters.append(round(max(part, default=0) / 1024, 1))
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    print(json.dumps({
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
        "queries": args.queries,
        "query_batch": args.query_batch,
        "wall_s": round(wall, 1),
        "peak_rss_mb_sampled": round(max((rss for _, rss in samples), default=0) / 1024, 1),
        "peak_rss_mb_getrusage": round(report["maxrss_kb"] / 1024, 1),
        "peak_rss_mb_by_quarter": quarters,
        "counts": report["counts"],
        "timings": report["timings"],
        "output_bytes": sizes,
    }, indent=2))


if __name__ == "__main__":
    main()
