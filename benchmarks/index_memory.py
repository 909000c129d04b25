"""Peak resident memory of a whole `index` run over a generated two-hour clip.

Usage:  python benchmarks/index_memory.py [--hours 2] [--size 320x180] [--rate 10] [--precision fp32|bf16]
                                          [--batch-size N]

The clip is generated once into benchmarks/_work/ (ignored by git); small frames and a low frame
rate keep generation and decoding short, while the number of clips (and so of features: 3,600
clips x 4 x 50 x 768 fp16 = 1.1 GB for two hours at 0.5 fps) is that of any two-hour video:
    ffmpeg -f lavfi -i testsrc2=s=SIZE:r=RATE:d=SECONDS -c:v libx264 -preset ultrafast -pix_fmt yuv420p long.mp4
The run is a child process doing what `r2cli index` does (scan, load CLIP as extract_features loads
it, extract, write) with ViT-B/32-shaped random weights in OpenAI layout; `--precision fp32` is
what `r2cli index` runs by default, bf16 (opt-in) halves the weights and makes the 3,600 forward
passes faster. The parent samples the RSS of the child and of all its descendants (ffmpeg
included) every 0.1 s and reports the peak of their sum, plus the child's own peak from
getrusage, and the peak in each quarter of the extraction phase (flat when nothing grows with
the video's length). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work"

CHILD = """
import sys, time
from r2cli.app.index import index_archive
from r2cli.features.extract import extract_features
from r2cli.paths import resolve_workspace

started = time.perf_counter()
# The two calls `r2cli index` makes (scan, then features), loading CLIP as extract_features does
# (text tower deferred), in the precision asked for.
workspace = resolve_workspace(sys.argv[2])
index_archive([sys.argv[1]], workspace, features=False)
from r2cli.features.clip import load_clip
batch_size = int(sys.argv[5]) if sys.argv[5] != "default" else None
tower = load_clip(sys.argv[3], device="cpu", precision=sys.argv[4], batch_size=batch_size, lazy_text=True)
print("LOADED", flush=True)  # the parent splits its memory samples here: loading CLIP vs extracting
report = extract_features(workspace, tower=tower)
print("RESULT", report.clips, report.video_seconds, report.bytes_written, report.pipeline_seconds,
      report.decode_cpu_seconds, report.model_cpu_seconds, time.perf_counter() - started, flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--rate", type=int, default=10)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--batch-size", default="default", help="frames per CLIP forward (default: the library's, 16 on the CPU)")
    args = parser.parse_args()

    import psutil

    sys.path.insert(0, str(REPO / "benchmarks"))
    from index_throughput import vitb32_random_weights

    from r2cli.media.ffmpeg import find_ffmpeg

    seconds = int(args.hours * 3600)
    WORK.mkdir(parents=True, exist_ok=True)
    clip_dir = WORK / f"long-{args.size}-{args.rate}fps-{seconds}s"
    clip = clip_dir / "long.mp4"
    if not clip.exists():
        clip_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=s={args.size}:r={args.rate}:d={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
             "-pix_fmt", "yuv420p", str(clip)],
            check=True,
        )
    weights = vitb32_random_weights()
    with tempfile.TemporaryDirectory(dir=WORK) as folder:
        env = {**os.environ, "R2CLI_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(clip_dir), str(Path(folder) / "ws"), str(weights), args.precision, str(args.batch_size)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        proc = psutil.Process(child.pid)
        peak_tree = 0
        peak_ffmpeg = 0
        peak_loading = 0
        extracting: list[tuple[float, int]] = []  # (monotonic time, tree RSS) after LOADED
        lines: list[str] = []
        import threading

        reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
        reader.start()
        while child.poll() is None:
            if not any(line.startswith("LOADED") for line in lines):
                peak_loading = max(peak_loading, peak_tree)
                peak_tree = 0
            try:
                members = [proc, *proc.children(recursive=True)]
                rss = 0
                for member in members:
                    try:
                        value = member.memory_info().rss
                    except psutil.Error:
                        continue
                    rss += value
                    if member.pid != proc.pid:
                        peak_ffmpeg = max(peak_ffmpeg, value)
                peak_tree = max(peak_tree, rss)
                if any(line.startswith("LOADED") for line in lines):
                    extracting.append((time.monotonic(), rss))
            except psutil.Error:
                pass
            time.sleep(0.1)
        reader.join()
        output = "".join(lines)
        child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    result = next((line.split()[1:] for line in output.splitlines() if line.startswith("RESULT")), None)
    batch_label = "16 (the CPU default)" if args.batch_size == "default" else args.batch_size
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"\n### {now}: peak memory, {platform.node()}, {os.cpu_count()} cores\n")
    print(f"Clip: testsrc2 {args.size}, {args.rate} fps, {seconds} s ({args.hours:g} h), x264 ultrafast; "
          f"CLIP: random ViT-B/32 weights, {args.precision}, batch {batch_label}, 0.5 fps.\n")
    if result is None:
        print(f"the child failed (exit code {child.returncode})")
        return
    clips, video_seconds, written, pipeline, decode_cpu, model_cpu, wall = result
    print(f"- clips {clips}, feature file {int(written) / 1e9:.2f} GB")
    print(f"- peak RSS of the process tree (python + ffmpeg), sampled every 0.1 s, while extracting: "
          f"{peak_tree / 2**20:.0f} MiB; while scanning and loading CLIP: {peak_loading / 2**20:.0f} MiB")
    if len(extracting) >= 4:
        begin, end = extracting[0][0], extracting[-1][0]
        quarters = [0, 0, 0, 0]
        for moment, rss in extracting:
            index = min(3, int(4 * (moment - begin) / max(end - begin, 1e-9)))
            quarters[index] = max(quarters[index], rss)
        print("- peak RSS of the tree in each quarter of the extraction phase: "
              + ", ".join(f"{q / 2**20:.0f}" for q in quarters) + " MiB")
    print(f"- peak RSS of the python process (getrusage): {child_peak / 2**20:.0f} MiB; of ffmpeg: "
          f"{peak_ffmpeg / 2**20:.0f} MiB")
    print(f"- wall {float(wall):.0f} s (pipeline {float(pipeline):.0f} s; decode CPU {float(decode_cpu):.0f} s, "
          f"python CPU {float(model_cpu):.0f} s)")


if __name__ == "__main__":
    main()
