"""Choosing the default window and stride for long videos: containment of real moments vs cost.

A moment can only be predicted whole if some window contains it whole (the head sees nothing
outside its window). For windows of W seconds every S seconds (last window end-aligned), a moment
of length l is contained in some window wherever it lies iff l <= W - S (+ one clip of rounding);
for longer moments, the fraction of start positions that are contained falls. This script
measures, for the ground-truth moments of QVHighlights val and TACoS test (lengths in seconds
from the official annotations), the fraction of moments that a random placement in a long
video leaves whole inside at least one window, and the cost (windows per video-hour, which
is what the fine stage pays: one video side per window).

It also reports how far a window's length is from what the released checkpoints were trained on
(QVHighlights: every video is 150 s = 75 clips), which matters because the temporal endpoint
features and the positional encoding are normalised by the window length: a window of 300 s
makes every moment look half as long to the model as in training.

Usage:  python benchmarks/search_windows.py [--datasets ../shared/datasets]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FPS = 0.5
VIDEO_S = 3600.0  # the long video the moments are placed in


def moment_lengths(datasets: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    qvh = datasets / "qvhighlights" / "highlight_val_release.jsonl"
    if qvh.is_file():
        lengths = []
        for line in qvh.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            lengths += [end - start for start, end in record.get("relevant_windows", [])]
        out["QVHighlights val"] = np.array(lengths, dtype=np.float64)
    tacos = datasets / "tacos" / "test.jsonl"
    if tacos.is_file():
        lengths = []
        for line in tacos.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            lengths += [end - start for start, end in record.get("relevant_windows", [])]
        if lengths:
            out["TACoS test"] = np.array(lengths, dtype=np.float64)
    return out


def contained_fraction(lengths: np.ndarray, window_s: float, stride_s: float, rng: np.random.Generator) -> float:
    from r2cli.inference.windows import plan_windows, window_sizes

    window_clips, stride_clips = window_sizes(window_s, stride_s, FPS)
    windows = plan_windows(int(VIDEO_S * FPS), window_clips, stride_clips)
    starts = np.array([w.start_clip / FPS for w in windows])
    ends = np.array([w.end_clip / FPS for w in windows])
    placed = rng.uniform(0, VIDEO_S - lengths)  # one random placement per moment
    finish = placed + lengths
    inside = (starts[None, :] <= placed[:, None] + 1e-9) & (finish[:, None] <= ends[None, :] + 1e-9)
    return float(inside.any(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sets = moment_lengths(Path(args.datasets))
    if not sets:
        raise SystemExit(f"no annotations under {args.datasets}")
    configs = [(60, 30), (150, 150), (150, 100), (150, 75), (150, 50), (300, 150), (600, 300)]
    for name, lengths in sets.items():
        print(f"{name}: {len(lengths)} moments, length mean {lengths.mean():.1f} s, "
              f"p50 {np.percentile(lengths, 50):.1f}, p90 {np.percentile(lengths, 90):.1f}, max {lengths.max():.1f}")
    header = "| window s | stride s | windows / video-hour | clips vs training (75) | " + " | ".join(
        f"whole in a window: {name}" for name in sets) + " |"
    print(header)
    print("|" + "---|" * (4 + len(sets)))
    from r2cli.inference.windows import plan_windows, window_sizes

    for window_s, stride_s in configs:
        window_clips, stride_clips = window_sizes(window_s, stride_s, FPS)
        per_hour = len(plan_windows(int(VIDEO_S * FPS), window_clips, stride_clips))
        fractions = [contained_fraction(lengths, window_s, stride_s, rng) for lengths in sets.values()]
        print(f"| {window_s} | {stride_s} | {per_hour} | {window_clips / 75:.1f}x | "
              + " | ".join(f"{f:.1%}" for f in fractions) + " |")


if __name__ == "__main__":
    main()
