"""Fine stage side by side with the official R2-Tuning code: one process, interleaved, same weights.

Runs ``../shared/anchor/side_by_side_cpu.py`` (outside the package: it imports the official code,
which is never part of r2cli) once per query mix, in the anchor's own virtual environment (the
official code needs nncore; see ``../shared/anchor/README.md``), with this checkout (or another one,
``--checkout``, e.g. the previous release for a before/after) first on ``PYTHONPATH``. Each run times
the official batch-of-one path and r2cli's ``Grounder`` over the same (video, query) pairs in
alternating rounds and reports the median ratio, so load from other processes hits both alike.

Usage:
    python benchmarks/search_side_by_side.py --python /path/to/.venv-anchor/bin/python
        [--cases 1x8,8x4,32x2] [--rounds 3] [--official-pairs 6] [--checkout PATH] [--threads 2]

``--cases`` lists QxV: Q queries per video over V videos (T = 75 clips, L = 20 tokens).
Prints one JSON object: the anchor's output per case plus the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_case(python: str, anchor: Path, checkout: Path, queries: int, videos: int, rounds: int,
             official_pairs: int, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout), V=str(videos), Q=str(queries), ROUNDS=str(rounds),
               N_OFFICIAL=str(min(official_pairs, videos * queries)), THREADS=str(threads))
    done = subprocess.run([python, str(anchor)], env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"anchor run failed (Q={queries}, V={videos}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="python of the anchor environment (official code + nncore)")
    parser.add_argument("--anchor", default=str(ROOT.parent / "shared" / "anchor" / "side_by_side_cpu.py"))
    parser.add_argument("--checkout", default=str(ROOT), help="r2cli checkout to measure (default: this one)")
    parser.add_argument("--cases", default="1x8,8x4,32x2", help="QxV list: queries per video x videos")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--official-pairs", type=int, default=6, help="pairs the official path runs per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    out = {"checkout": args.checkout, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu_count": os.cpu_count(),
           "load_before": [round(x, 2) for x in os.getloadavg()], "cases": []}
    for case in args.cases.split(","):
        queries, videos = (int(x) for x in case.lower().split("x"))
        result = run_case(args.python, Path(args.anchor), Path(args.checkout), queries, videos, args.rounds,
                          args.official_pairs, args.threads)
        out["cases"].append(result)
        print(f"Q={queries} V={videos}: official {result['official_pairs_per_s']} pairs/s, r2cli "
              f"{result['r2cli_pairs_per_s']} pairs/s, ratio {result['ratio_median']} (rounds {result['ratios']})",
              file=sys.stderr, flush=True)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
