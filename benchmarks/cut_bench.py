"""Time cutting N clips in parallel against one at a time (re-encode and stream copy).

Usage:  python benchmarks/cut_bench.py [--clips 50] [--clip-seconds 2] [--source-seconds 120]
                                       [--size 640x360] [--jobs N] [--repeats 1]

The source is generated with ffmpeg (testsrc2 + a sine tone, libx264 ultrafast, GOP 2 s):
    ffmpeg -f lavfi -i testsrc2=s=SIZE:r=25:d=SECONDS -f lavfi -i sine=frequency=440:duration=SECONDS
           -c:v libx264 -preset ultrafast -g 50 -pix_fmt yuv420p -c:a aac -shortest source.mp4
Clips start at evenly spaced, non frame-aligned times. Prints a markdown table row per mode
for benchmarks/RESULTS-cut.md. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from r2cli.media._process import default_jobs
from r2cli.media.clips import cut_segments
from r2cli.media.segments import Segment
from r2cli.media.ffmpeg import find_ffmpeg, tool_version


def make_source(path: Path, seconds: float, size: str) -> Path:
    ffmpeg = find_ffmpeg()
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--source-seconds", type=float, default=120.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs per mode")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="r2cli-cut-bench-"))
    try:
        source = make_source(work / "source.mp4", args.source_seconds, args.size)
        span = args.source_seconds - args.clip_seconds - 0.5
        segments = [
            Segment(str(source), 0.13 + span * i / args.clips, 0.13 + span * i / args.clips + args.clip_seconds, rank=i + 1)
            for i in range(args.clips)
        ]
        print(f"date: {datetime.date.today().isoformat()}  machine: {platform.node()} ({cpu_name()}, "
              f"{os.cpu_count()} logical CPUs, {default_jobs()} usable)  ffmpeg {tool_version(find_ffmpeg())}")
        print(f"{args.clips} clips of {args.clip_seconds} s from a {args.source_seconds:.0f} s {args.size} 25 fps "
              f"H.264+AAC source, best of {args.repeats}")
        print()
        print("| mode | jobs | wall s | clips/s | speed-up | ffmpeg CPU s |")
        print("|---|---|---|---|---|---|")
        for copy in (False, True):
            times, cpu = {}, {}
            for jobs in (1, args.jobs):
                best = float("inf")
                for _ in range(args.repeats):
                    out = work / f"out-{copy}-{jobs}"
                    shutil.rmtree(out, ignore_errors=True)
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    start = time.perf_counter()
                    report = cut_segments(segments, out, copy=copy, jobs=jobs)
                    wall = time.perf_counter() - start
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if wall < best:
                        best = wall
                        cpu[jobs] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                    if report.counts()["written"] != args.clips:
                        raise SystemExit(f"only {report.counts()} clips: {report.failed[:1]}")
                times[jobs] = best
            for jobs, wall in times.items():
                mode = "copy" if copy else "re-encode"
                print(f"| {mode} | {jobs} | {wall:.2f} | {args.clips / wall:.1f} | {times[1] / wall:.2f}x | {cpu[jobs]:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
