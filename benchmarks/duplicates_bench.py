"""Benchmark of `r2cli duplicates` on a synthetic archive with planted copies (issue #20.3).

The archive is generated deterministically (seed below) and written through the feature store
(``FeatureStore.put``: real safetensors files, read back memory-mapped exactly as `r2cli duplicates`
reads them; ``layers`` is a 1x1x1 placeholder per clip, since duplicates reads only ``embed``):

- originals: videos of 10-60 minutes at 0.5 clips/s; each is a chain of shots (mean 5 clips), a
  clip's embedding is ``normalise(0.7 * common + shot + jitter)`` in 512 dimensions (the common
  direction plays CLIP's cone: unrelated clips have cosine ~0.5);
- planted copies (the rest of the hours): ``whole`` re-encodes (every clip + noise, cosine ~0.93 to
  its source, half of them also shifted by half a clip: the frame sampled between two source
  clips), ``trimmed`` copies (a 2-15 minute part of a source, + noise) and ``compilation`` videos
  (unrelated filler around a 2-10 minute part of a source).

Recall: planted (copy, source) pairs found with the right offset (+-1 clip) and ranges overlapping
the truth by at least half. Precision: found pairs that are planted ones (originals are
independent, so any other pair is a false positive). Peak memory: the process's max RSS.

Usage: python benchmarks/duplicates_bench.py [--hours 1000] [--keep DIR]

The search runs in a child process, so its peak memory (max RSS) is the search's alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from r2cli.app.duplicates import DuplicatesOptions  # noqa: E402
from r2cli.features.store import FeatureSettings, FeatureStore  # noqa: E402
from r2cli.inference.duplicates import find_duplicates  # noqa: E402

SEED = 2026
WIDTH = 512
FPS = 0.5
COPY_NOISE = 0.4  # noise norm relative to the clip: cosine to the source ~0.93


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def original(rng: np.random.Generator, clips: int, common: np.ndarray) -> np.ndarray:
    """[clips, WIDTH] float32: shots of geometric length (mean 5 clips), jitter within a shot."""
    shot_ids = np.cumsum(rng.random(clips) < 0.2)
    shots = rng.standard_normal((int(shot_ids[-1]) + 1, WIDTH)).astype(np.float32) / np.sqrt(WIDTH)
    jitter = rng.standard_normal((clips, WIDTH)).astype(np.float32) * (0.25 / np.sqrt(WIDTH))
    return _unit(0.7 * common + shots[shot_ids] + jitter).astype(np.float32)


def copy_of(rng: np.random.Generator, source: np.ndarray, shift: bool) -> np.ndarray:
    """A re-encode: every clip + noise; ``shift``: sampled half a clip later (a mix of two clips)."""
    clips = source
    if shift:
        clips = 0.5 * source + 0.5 * np.concatenate([source[1:], source[-1:]])
    noise = rng.standard_normal(clips.shape).astype(np.float32) * (COPY_NOISE / np.sqrt(WIDTH))
    return _unit(_unit(clips) + noise).astype(np.float32)


def build_archive(root: Path, hours: float) -> tuple[list[Path], list[dict], dict]:
    """Write the archive into a feature store under ``root``; the files and the planted truth."""
    rng = np.random.default_rng(SEED)
    store = FeatureStore(root)
    settings = FeatureSettings(clip_model="synthetic", weights_id="synthetic/bench", fps=FPS, k=1)
    common = _unit(rng.standard_normal(WIDTH)).astype(np.float32)
    budget_clips = int(hours * 3600 * FPS)
    copy_share = 0.15  # of the hours: planted copies
    files: list[Path] = []
    truth: list[dict] = []
    sources: list[int] = []  # file numbers of the originals (read back from the store: memory stays flat)
    written = 0

    def put(embed: np.ndarray) -> int:
        nonlocal written
        number = len(files)
        count = embed.shape[0]
        placeholder = np.zeros((count, 1, 1, 1), dtype=np.float16)
        stored = store.put(f"bench:{number:08d}", settings, placeholder, embed.astype(np.float16),
                           np.arange(count, dtype=np.float64) / FPS, duration=count / FPS)
        files.append(root / stored.relpath)
        written += count
        return number

    kinds = ("whole", "trimmed", "compilation")
    originals_budget = int(budget_clips * (1 - copy_share))
    while written < originals_budget:
        embed = original(rng, int(rng.integers(300, 1801)), common)
        sources.append(put(embed))
    n = 0
    while written < budget_clips:
        kind = kinds[n % 3]
        n += 1
        from r2cli.features.store import open_features

        source_id = sources[int(rng.integers(len(sources)))]
        source = np.asarray(open_features(files[source_id]).embed, dtype=np.float32)
        if kind == "whole":
            shift = bool(n % 2)
            copy = copy_of(rng, source, shift)
            number = put(copy)
            truth.append({"kind": kind, "source": source_id, "copy": number, "src": (0, len(source)), "offset": 0})
            continue
        length = int(rng.integers(60, 451 if kind == "trimmed" else 301))
        length = min(length, len(source) - 1)
        begin = int(rng.integers(0, len(source) - length))
        part = copy_of(rng, source[begin:begin + length], False)
        if kind == "trimmed":
            number = put(part)
            offset = -begin
        else:
            before = original(rng, int(rng.integers(30, 300)), common)
            after = original(rng, int(rng.integers(30, 300)), common)
            number = put(np.concatenate([before, part, after]))
            offset = len(before) - begin
        truth.append({"kind": kind, "source": source_id, "copy": number, "src": (begin, begin + length),
                      "offset": offset})
    return files, truth, {"videos": len(files), "clips": written, "hours": written / FPS / 3600,
                          "originals": len(sources), "copies": len(truth)}


def score(pairs, truth, videos: int) -> dict:
    """Recall of the planted pairs (per kind) and precision of the found pairs.

    A planted (source, copy) pair is found when the pairs found between the two videos at its
    offset (+-1 clip) cover at least half of the planted range (a copy may come back in a few
    pieces). A found pair is true when the two videos hold the same source footage at its offset:
    a copy and its source, or two copies of one source (they are duplicates of each other too).
    """
    holds: dict[int, list[tuple[int, int, int, int]]] = {v: [(v, 0, 0, 1 << 30)] for v in range(videos)}
    for t in truth:  # video -> (source, offset = clip in video - clip in source, source range)
        holds[t["copy"]] = [(t["source"], t["offset"], *t["src"])]

    def true_pair(pair) -> bool:
        for source_a, off_a, lo_a, hi_a in holds[pair.a]:
            for source_b, off_b, lo_b, hi_b in holds[pair.b]:
                if source_a == source_b and abs((off_b - off_a) - (pair.b_start - pair.a_start)) <= 1:
                    return True
        return False

    covered: dict[tuple[int, int], int] = {}
    true_found = 0
    for pair in pairs:
        if not true_pair(pair):
            continue
        true_found += 1
        covered[(pair.a, pair.b)] = covered.get((pair.a, pair.b), 0) + (pair.a_end - pair.a_start)
        covered[(pair.b, pair.a)] = covered[(pair.a, pair.b)]
    hits: dict[str, list[int]] = {}
    for t in truth:
        hits.setdefault(t["kind"], [0, 0])
        hits[t["kind"]][1] += 1
        hits[t["kind"]][0] += covered.get((t["source"], t["copy"]), 0) >= 0.5 * (t["src"][1] - t["src"][0])
    found = sum(v[0] for v in hits.values())
    return {"recall": found / max(1, len(truth)), "precision": true_found / max(1, len(pairs)),
            "found_pairs": len(pairs), "true_pairs": true_found,
            "recall_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in hits.items()}}


def search(folder: Path) -> dict:
    """Open every feature file of the archive and run the duplicate finder (what `r2cli duplicates`
    does after the catalog query); run in a fresh process so that its peak memory is its own."""
    import json

    from r2cli.features.store import open_features

    files = json.loads((folder / "archive.json").read_text())["files"]
    options = DuplicatesOptions()
    params = options.params(FPS)
    tick = time.perf_counter()
    embeddings = [open_features(folder / name).embed for name in files]
    open_s = time.perf_counter() - tick
    tick = time.perf_counter()
    found = find_duplicates(embeddings, params)
    run_s = time.perf_counter() - tick
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"open_s": open_s, "run_s": run_s, "timings": found.timings, "counts": found.counts,
            "params": str(params), "peak_mib": peak,
            "pairs": [[p.a, p.b, p.a_start, p.a_end, p.b_start, p.b_end] for p in found.pairs]}


def brute_force(folder: Path) -> dict:
    """The baseline the banding avoids: the exact cosine of every pair of clips of different videos
    (blocks of 2,048 clips against the whole archive), counting the pairs at or above min_similarity."""
    import json

    from r2cli.features.store import open_features

    files = json.loads((folder / "archive.json").read_text())["files"]
    threshold = DuplicatesOptions().min_similarity
    parts = [np.asarray(open_features(folder / name).embed, dtype=np.float32) for name in files]
    video = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    everything = np.concatenate(parts)
    del parts
    tick = time.perf_counter()
    above = 0
    for start in range(0, len(everything), 2048):
        block = everything[start:start + 2048] @ everything.T  # [2048, N]
        other = video[start:start + 2048, None] != video[None, :]
        above += int(((block >= threshold) & other).sum())
    return {"seconds": time.perf_counter() - tick, "clip_pairs": len(everything) * (len(everything) - 1) // 2,
            "pairs_above": above // 2}


def main() -> None:
    import json
    import subprocess
    from types import SimpleNamespace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1000.0)
    parser.add_argument("--keep", type=Path, default=None,
                        help="Keep the generated store here and reuse it when it is there (default: a temp folder, removed).")
    parser.add_argument("--brute-force", action="store_true",
                        help="Also time the exact all-pairs baseline (small archives only: quadratic).")
    parser.add_argument("--search-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search_only is not None:  # the child process
        print(json.dumps(search(args.search_only)))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="r2cli-dups-bench-"))
    try:
        record = folder / "archive.json"
        if record.is_file():
            saved = json.loads(record.read_text())
            generate_s = saved["generate_s"]
        else:
            tick = time.perf_counter()
            files, truth, archive = build_archive(folder, args.hours)
            generate_s = time.perf_counter() - tick
            saved = {"files": [str(f.relative_to(folder)) for f in files], "truth": truth, "archive": archive,
                     "generate_s": generate_s, "generate_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            record.write_text(json.dumps(saved))
        tick = time.perf_counter()
        child = subprocess.run([sys.executable, __file__, "--search-only", str(folder)], check=True,
                               capture_output=True, text=True)
        wall_s = time.perf_counter() - tick
        found = json.loads(child.stdout)
        pairs = [SimpleNamespace(a=a, b=b, a_start=a0, a_end=a1, b_start=b0, b_end=b1)
                 for a, b, a0, a1, b0, b1 in found["pairs"]]
        result = score(pairs, saved["truth"], len(saved["files"]))
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
              f"python {platform.python_version()}, numpy {np.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        print(f"archive: {saved['archive']}; generated in {generate_s:.0f} s")
        print(f"params: {found['params']}")
        print(f"search process: {wall_s:.1f} s wall (open {found['open_s']:.1f} s, find_duplicates {found['run_s']:.1f} s); "
              f"stages {found['timings']}")
        print(f"counts: {found['counts']}")
        print(f"recall {result['recall']:.3f} ({result['recall_by_kind']}), precision {result['precision']:.3f} "
              f"({result['true_pairs']} of {result['found_pairs']} found pairs)")
        print(f"peak RSS of the search process: {found['peak_mib']:.0f} MiB")
        if args.brute_force:
            baseline = brute_force(folder)
            print(f"exact all-pairs baseline: {baseline['seconds']:.1f} s for {baseline['clip_pairs']:,} clip pairs "
                  f"({baseline['pairs_above']:,} at or above min_similarity); find_duplicates is "
                  f"{baseline['seconds'] / found['run_s']:.1f}x faster here")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
