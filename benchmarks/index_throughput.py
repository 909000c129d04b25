"""Indexing throughput on this machine: decode vs CLIP time, overlapped pipeline vs two passes.

Usage:  python benchmarks/index_throughput.py [--seconds 600] [--size 1280x720] [--fps 0.5]
                                              [--batch-size 16] [--precision fp32] [--skip-sample-media]

CLIP: ViT-B/32-shaped *random* weights in OpenAI layout (tests/tiny_clip.py with ViT-B/32 widths;
no download possible here), run through ``load_clip`` like real weights. The source clip is
generated once into benchmarks/_work/ (ignored by git):
    ffmpeg -f lavfi -i testsrc2=s=SIZE:r=30:d=SECONDS -c:v libx264 -preset veryfast -pix_fmt yuv420p clip.mp4
Measured on that clip, in one run:
  1. decode only: r2cli's exact frame rule (FrameSampler), wall time and ffmpeg CPU time;
  2. CLIP only: the decoded frames through the tower, wall and CPU time;
  3. overlapped: ``extract_video`` (decoder thread + CLIP on the main thread, the index pipeline);
  4. two passes: every sampled frame to a .npy file on disk, then features from that file.
Reports video-hours per wall-hour and wall / ((decode CPU + CLIP CPU) / cores). Then
``index_archive`` on sample_media/ (scan + features) for the sample clips, and the feature
bytes per video-hour. Prints a markdown block for benchmarks/RESULTS-index.md.
A benchmark, not a test: nothing is asserted.
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
sys.path.insert(0, str(REPO / "tests"))  # tiny_clip.py builds OpenAI-layout state dicts


def cpu_times() -> tuple[float, float]:
    """(CPU seconds of this process, CPU seconds of its finished children)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def vitb32_random_weights() -> Path:
    import torch
    from tiny_clip import tiny_openai_state_dict

    path = WORK / "vit-b-32-random-openai.pt"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        state = tiny_openai_state_dict(
            vision_width=768, vision_layers=12, patch_size=32, image_size=224,
            text_width=512, text_layers=12, embed_dim=512,
        )
        torch.save(state, path)
    return path


def make_clip(seconds: float, size: str) -> Path:
    from r2cli.media.ffmpeg import find_ffmpeg

    path = WORK / f"testsrc2-{size}-{int(seconds)}s.mp4"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=s={size}:r=30:d={seconds}", "-c:v", "libx264", "-preset", "veryfast",
             "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )
    return path


def measure(label: str, fn, results: dict) -> object:
    wall0 = time.perf_counter()
    self0, kids0 = cpu_times()
    value = fn()
    self1, kids1 = cpu_times()
    results[label] = {"wall": time.perf_counter() - wall0, "cpu": self1 - self0, "child_cpu": kids1 - kids0}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--skip-sample-media", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch

    from r2cli.features.clip import load_clip
    from r2cli.app.index import index_archive
    from r2cli.features.extract import extract_video
    from r2cli.features.store import FeatureSettings
    from r2cli.media.ffmpeg import find_ffmpeg, tool_version
    from r2cli.media.frames import FrameSampler, default_decode_threads
    from r2cli.paths import resolve_workspace

    cores = default_decode_threads()
    load_before = os.getloadavg()[0]
    weights = vitb32_random_weights()
    clip = make_clip(args.seconds, args.size)
    tower = load_clip(weights, device="cpu", precision=args.precision, batch_size=args.batch_size)
    settings = FeatureSettings.for_tower(tower, fps=args.fps)
    results: dict[str, dict] = {}

    def decode_only():
        frames = []
        with FrameSampler(clip, fps=args.fps, size=tower.image_size) as sampler:
            for chunk in sampler:
                frames.append(chunk.frames.copy())
        return np.concatenate(frames)

    frames = measure("decode", decode_only, results)

    def clip_only():
        pixels = torch.from_numpy(frames).permute(0, 3, 1, 2)
        for start in range(0, len(pixels), args.batch_size):
            tower.video_features(pixels[start : start + args.batch_size], 4, batch_size=args.batch_size)

    threads_all = torch.get_num_threads()
    torch.set_num_threads(max(1, cores // 2))  # what the pipeline gives CLIP while ffmpeg decodes
    measure("clip", clip_only, results)
    torch.set_num_threads(threads_all)
    measure("clip_all_cores", clip_only, results)
    overlapped = measure(
        "overlapped", lambda: extract_video(clip, settings, tower, batch_size=args.batch_size), results
    )

    def two_pass():
        with tempfile.TemporaryDirectory(dir=WORK) as folder:
            dump = Path(folder) / "frames.npy"
            chunks = []
            with FrameSampler(clip, fps=args.fps, size=tower.image_size) as sampler:
                for chunk in sampler:
                    chunks.append(chunk.frames.copy())
            np.save(dump, np.concatenate(chunks))
            del chunks
            pixels = torch.from_numpy(np.load(dump)).permute(0, 3, 1, 2)
            for start in range(0, len(pixels), args.batch_size):
                tower.video_features(pixels[start : start + args.batch_size], 4, batch_size=args.batch_size)

    measure("two_pass", two_pass, results)

    hours = args.seconds / 3600.0
    decode_cpu = results["decode"]["child_cpu"]
    clip_cpu = results["clip"]["cpu"]
    bound = (decode_cpu + clip_cpu) / cores
    layers_bytes = overlapped.layers.nbytes + overlapped.embed.nbytes + overlapped.timestamps.nbytes

    sample = None
    if not args.skip_sample_media:
        with tempfile.TemporaryDirectory(dir=WORK) as folder:
            workspace = resolve_workspace(Path(folder) / "ws")
            start = time.perf_counter()
            report = index_archive([REPO / "sample_media"], workspace, clip_weights=str(weights), device="cpu",
                                   batch_size=args.batch_size)
            sample = (report, time.perf_counter() - start)

    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"\n### {now}: {platform.node()}, {platform.processor() or platform.machine()}, {cores} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), ffmpeg {tool_version(find_ffmpeg())}; "
          f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other work shares these cores)\n")
    print(f"Clip: testsrc2 {args.size} 30 fps, {args.seconds:g} s, x264 veryfast; {len(frames)} clips at "
          f"{args.fps:g} fps; CLIP: random ViT-B/32 weights, {args.precision}, batch {args.batch_size}.\n")
    print("| step | wall s | CPU s (this process) | CPU s (ffmpeg) | video-h per wall-h |")
    print("|---|---|---|---|---|")
    for label in ("decode", "clip", "clip_all_cores", "overlapped", "two_pass"):
        r = results[label]
        print(f"| {label} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['child_cpu']:.1f} | {hours / (r['wall'] / 3600):.1f} |")
    print()
    print(f"- decode CPU per video-hour: {decode_cpu / hours:.0f} s; CLIP CPU per video-hour: {clip_cpu / hours:.0f} s")
    print(f"- (decode CPU + CLIP CPU) / cores = {bound:.1f} s; overlapped wall = {results['overlapped']['wall']:.1f} s "
          f"-> ratio {results['overlapped']['wall'] / bound:.2f}")
    print(f"- overlapped / two-pass wall: {results['overlapped']['wall'] / results['two_pass']['wall']:.2f}")
    print(f"- overlapped: {results['overlapped']['wall'] / hours:.0f} s per video-hour "
          f"({hours / (results['overlapped']['wall'] / 3600):.1f} video-hours per wall-hour)")
    print(f"- feature bytes per video-hour (fp16 layers [T,4,50,768] + embed + timestamps, safetensors data): "
          f"{layers_bytes / hours / 1e6:.0f} MB")
    if sample is not None:
        report, wall = sample
        f = report.features
        print(f"- sample_media ({f.videos_extracted} clips, {f.video_seconds:.0f} s of video): index_archive "
              f"{wall:.1f} s wall (scan + load + features; pipeline {f.pipeline_seconds:.1f} s), "
              f"{f.speed:.1f} video-hours per pipeline-hour, {f.bytes_written / f.video_hours / 1e6:.0f} MB "
              f"per video-hour on disk, failures: {len(f.failures)}")


if __name__ == "__main__":
    main()
