"""Compact (int8) layer tokens against fp16: bytes per video-hour, read cost, and what changes in R2-Tuning's
outputs (issue #19 item 3). Prints a markdown block for benchmarks/RESULTS-compact.md.

Usage:  python benchmarks/compact_features.py [--skip-vitb32]

Measured, in one run:
  1. size: a feature file of 60 clips at ViT-B/32 shapes (k=4, 50 tokens, 768 channels, 512-d
     embeddings) written by the store in each dtype; bytes per video-hour at 0.5 fps (1,800 clips);
  2. read: one 75-clip window from the memory map (warm page cache) to float32, the dtype the head
     computes in (fp16 converted, or int8 + scales dequantised), best of 5;
  3. golden: the committed golden CLIP file's end-to-end case (tests/golden, the official cache
     path's fp16 features of the tiny official CLIP, dims-64 head): fp16 vs int8 outputs;
  4. parity head: the shared full head file (QVHighlights config at ViT-B/32 widths, official random
     init, its 4 cases) when ../shared/parity is present;
  5. sample media, tiny: sample_media/ indexed with the tests' tiny CLIP in both dtypes, then
     searched with the tests' tiny random head and 5 queries, ``--feature-dtype float16`` vs ``int8``;
  6. sample media, ViT-B/32: the same with ViT-B/32-shaped *random* CLIP weights (no real weights
     can be downloaded here) and the parity head (skipped with --skip-vitb32 or without the parity file).
The comparisons are ``golden.compact_fidelity`` (3, 4) and ``fixtures.compare_runs`` (tests/fixtures.py) (5, 6), the
functions whose bounds the tests pin. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

QUERIES = ["a person opens a door", "a dog runs on the beach", "cars at night", "someone cooks", "a red ball"]
VIT_B32 = (4, 50, 768, 512)  # k, tokens, channels, embedding


def sizes_and_reads(tmp: Path) -> list[str]:
    import dataclasses

    import numpy as np

    from r2cli.features.store import FeatureSettings, FeatureStore

    k, tokens, width, dim = VIT_B32
    clips = 60
    rng = np.random.default_rng(0)
    layers = rng.standard_normal((clips, k, tokens, width)).astype(np.float32)
    layers[..., :4] *= 40.0  # a few outlier channels, as CLIP has
    embed, stamps = rng.standard_normal((clips, dim)), np.arange(clips) * 2.0
    store = FeatureStore(tmp / "sizes")
    base = FeatureSettings(clip_model="ViT-B-32", weights_id="ViT-B-32/openai")
    lines = ["| stored as | bytes per clip | MB per video-hour (0.5 fps) | one 75-clip window to float32 (ms, page cache) |",
             "|---|---|---|---|"]
    for dtype in ("float16", "int8"):
        settings = dataclasses.replace(base, dtype=dtype)
        stored = store.put("blake2b:" + "77" * 32, settings, layers, embed, stamps, duration=clips * 2.0)
        path = store.path("blake2b:" + "77" * 32, settings)
        header = 8 + int.from_bytes(path.read_bytes()[:8], "little")
        per_clip = (stored.bytes - header) / clips
        features = store.get("blake2b:" + "77" * 32, settings)
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            window = np.array(features.layers[0:clips], dtype=np.float32)  # read + what the head computes in
            best = min(best, time.perf_counter() - started)
        lines.append(f"| {dtype} | {per_clip:,.0f} | {per_clip * 1800 / 1e6:,.1f} | "
                     f"{best * 1000 * 75 / clips:.1f} |")
    return lines


def _row(name: str, figures: dict) -> str:
    ties = figures.get("top5_near_ties", 0)
    cases = figures.get("cases", figures.get("queries"))
    return (f"| {name} | {figures['saliency_max_diff']:.2e} | {figures['score_max_diff']:.2e} | "
            f"{figures['boundary_max_diff_s']:.3g} | {figures['top5_unchanged']} / {cases}"
            f"{f' (+{ties} near-tie)' if ties else ''} |")


def sample_media_run(tmp: Path, clip: Path, head: Path, name: str) -> dict:
    from fixtures import compare_runs

    from r2cli.app.search import SearchOptions, search
    from r2cli.features.extract import index_archive
    from r2cli.paths import resolve_workspace

    workspace = resolve_workspace(tmp / f"ws-{name}")
    media = sorted((REPO / "sample_media").glob("*.mp4"))
    seconds = {}
    for dtype in ("float16", "int8"):
        started = time.perf_counter()
        index_archive(media, workspace, clip_weights=str(clip), device="cpu", feature_dtype=dtype)
        seconds[dtype] = time.perf_counter() - started
    runs = {}
    for dtype in ("float16", "int8"):
        options = SearchOptions(checkpoint=str(head), clip_weights=str(clip), device="cpu", top_k=1000,
                                feature_dtype=dtype, out=tmp / f"run-{name}-{dtype}")
        runs[dtype] = search(workspace, QUERIES, options=options)
    figures = compare_runs(runs["float16"], runs["int8"])
    figures["index_s"] = seconds
    figures["videos"] = runs["int8"].counts.get("videos_searched")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-vitb32", action="store_true", help="skip the ViT-B/32-shaped sample media run")
    args = parser.parse_args()

    import torch

    from fixtures import tiny_model
    from golden.compact_fidelity import golden_e2e_fidelity, parity_head_fidelity
    from golden.parity_files import GOLDEN_DIR

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="r2cli-compact-"))
    try:
        os.environ.setdefault("R2CLI_CACHE", str(tmp / "cache"))
        parity = Path(os.environ.get("R2CLI_PARITY_DIR", REPO.parent.parent / "shared" / "parity"))
        if not parity.is_dir():
            parity = Path("/work/shared/parity")
        print(f"## compact features: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
              f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, torch {torch.__version__}\n")
        print("\n".join(sizes_and_reads(tmp)))
        print("\n| set | max saliency diff | max score diff | max boundary diff (s) | top-5 unchanged |")
        print("|---|---|---|---|---|")
        print(_row("golden e2e (committed, tiny official CLIP, 3 videos)", golden_e2e_fidelity(
            GOLDEN_DIR / "clip_tower_golden.pt.xz", tmp)), flush=True)
        head_file = parity / "r2_head_official.pt"
        if head_file.is_file():
            print(_row("parity head (shared, ViT-B/32 widths, 6 videos)", parity_head_fidelity(head_file)), flush=True)
        clip, head = tiny_model("clip-tiny", tmp / "models"), tiny_model("head-random", tmp / "models")
        tiny = sample_media_run(tmp, clip, head, "tiny")
        print(_row(f"sample_media, tiny CLIP + tiny random head ({tiny['videos']} videos, 5 queries)", tiny),
              flush=True)
        if not args.skip_vitb32 and head_file.is_file():
            sys.path.insert(0, str(REPO / "benchmarks"))
            from index_throughput import vitb32_random_weights

            from golden.parity_files import load_parity

            data = load_parity(head_file)
            head_path = tmp / "models" / "parity-head.pth"
            torch.save({"state_dict": data["state_dict"], "meta": {}}, head_path)
            vit = sample_media_run(tmp, vitb32_random_weights(), head_path, "vitb32")
            print(_row(f"sample_media, ViT-B/32 random CLIP + parity head ({vit['videos']} videos, 5 queries)", vit))
            print(f"\nindex seconds (ViT-B/32 random, CPU): {vit['index_s']}")
        print(f"index seconds (tiny): {tiny['index_s']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # benchmarks clean up after themselves


if __name__ == "__main__":
    main()
