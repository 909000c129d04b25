"""Indexing on a GPU host (issue #13 item 3): video-hours per wall-hour, CPU decode vs NVDEC.

For each of 720p30 and 1080p30 H.264 (testsrc2, x264 veryfast, generated with the ffmpeg found by
r2cli: ``$R2CLI_FFMPEG`` or the PATH; run_all.sh points it at imageio-ffmpeg's static binary):

  decode_1       r2cli's FrameSampler (exact frame rule, 0.5 fps, 224 px), one ffmpeg, all cores
  decode_par     ``--parallel`` ffmpeg processes of the same command at once (cores split between
                 them): the decode ceiling of the machine; frames go to /dev/null
  clip_only      the decoded frames through the CLIP image tower (fp16 on CUDA), all-layer tokens
  index          r2cli's index path for one file: ``extract_video`` (decoder thread + CLIP)
  nvdec_*        the same with ffmpeg's NVDEC decoder (``-hwaccel cuda`` before ``-i``; the filter
                 chain, hence the frame selection, is unchanged): decode_1, decode_par and index
                 (FrameSampler swapped for the NVDEC one in r2cli.features.extract), plus the check
                 that it selects exactly the same frames: clip count, source timestamps equal,
                 pixel difference (max, mean) against the CPU frames.

CLIP weights: random ViT-B/32 in OpenAI layout (tests/tiny_clip.py), loaded through ``load_clip``.
With ``--smoke``: small sizes, the tiny CLIP, CPU, and ``-hwaccel none`` standing in for NVDEC so the
comparison code runs.

Test files: ``--base-seconds`` (30) of testsrc2 encoded once, looped by stream copy to ``--seconds``
(600), so a long file costs no encoding time. CLIP-only throughput runs on ``--clip-images`` (4,096)
images (the sampled frames repeated).

Usage:  python benchmarks/gpu/gpu_index.py [--device auto] [--seconds 600] [--out DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

HERE = Path(__file__).resolve().parent


def ensure_ffprobe() -> str:
    """r2cli needs ffprobe; on a host with only an ffmpeg binary, use ffprobe_shim.py."""
    if os.environ.get("R2CLI_FFPROBE") or shutil.which("ffprobe"):
        return os.environ.get("R2CLI_FFPROBE") or shutil.which("ffprobe") or ""
    os.environ["R2CLI_FFPROBE"] = str(HERE / "ffprobe_shim.py")
    return os.environ["R2CLI_FFPROBE"]


def make_clip(folder: Path, size: str, seconds: float, base_seconds: float) -> Path:
    """``base_seconds`` of testsrc2 encoded with x264, then looped by stream copy to ``seconds`` (no re-encode)."""
    find_ffmpeg = common.need("r2cli.media.ffmpeg", "find_ffmpeg")
    base_seconds = min(base_seconds, seconds)
    base = folder / f"testsrc2-{size}-30fps-{int(base_seconds)}s.mp4"
    path = folder / f"testsrc2-{size}-30fps-{int(base_seconds)}s-x{int(seconds)}s.mp4"
    folder.mkdir(parents=True, exist_ok=True)
    if not base.exists():
        subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                        "-i", f"testsrc2=s={size}:r=30:d={base_seconds}", "-c:v", "libx264", "-preset", "veryfast",
                        "-pix_fmt", "yuv420p", "-threads", str(os.cpu_count() or 1), str(base)], check=True)
    if not path.exists():
        loops = max(0, int(round(seconds / base_seconds)) - 1)
        subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", str(loops),
                        "-i", str(base), "-c", "copy", str(path)], check=True)
    return path


def hw_sampler_class(hwaccel: str):
    """A FrameSampler whose ffmpeg decodes with ``-hwaccel HWACCEL`` (frames come back to system memory)."""
    frame_sampler = common.need("r2cli.media.frames", "FrameSampler")

    class HwSampler(frame_sampler):
        def command(self) -> list[str]:
            args = super().command()
            at = args.index("-i")
            extra = ["-hwaccel", hwaccel] + (["-hwaccel_device", "0"] if hwaccel == "cuda" else [])
            return args[:at] + extra + args[at:]

    HwSampler.__name__ = f"HwSampler_{hwaccel}"
    return HwSampler


def decode(sampler_cls, clip: Path, size: int, threads: int | None):
    import numpy as np

    frames, stamps = [], []
    with sampler_cls(clip, fps=0.5, size=size, threads=threads) as sampler:
        for chunk in sampler:
            frames.append(chunk.frames.copy())
            stamps.append(chunk.timestamps.copy())
    return np.concatenate(frames), np.concatenate(stamps)


def decode_parallel(sampler_cls, clip: Path, size: int, parallel: int) -> float:
    """Wall seconds for ``parallel`` concurrent ffmpeg runs of the sampler's command (output discarded)."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    cmd = sampler_cls(clip, fps=0.5, size=size, threads=threads).command()
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(parallel)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"ffmpeg failed ({codes}): {' '.join(cmd)}")
    return wall


def hwaccel_works(hwaccel: str, clip: Path) -> tuple[bool, str]:
    find_ffmpeg = common.need("r2cli.media.ffmpeg", "find_ffmpeg")
    # warnings on: ffmpeg falls back to software decoding with only a warning when NVDEC cannot start
    cmd = [find_ffmpeg(), "-hide_banner", "-loglevel", "warning", "-hwaccel", hwaccel]
    cmd += (["-hwaccel_device", "0"] if hwaccel == "cuda" else []) + ["-i", str(clip), "-frames:v", "5", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    text = (proc.stderr or "").strip().splitlines()
    bad = [line for line in text if any(w in line.lower() for w in ("fail", "error", "cannot", "not supported", "no device"))]
    return proc.returncode == 0 and not bad, " | ".join((bad or text)[-3:])


class DecoderUtilisation:
    """Samples nvidia-smi's NVDEC utilisation while a run goes (evidence that NVDEC really decoded)."""

    def __enter__(self):
        self.proc = None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.decoder", "--format=csv,noheader,nounits",
                                          "-lms", "250"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return self

    def __exit__(self, *exc):
        self.max_percent = None
        if self.proc is not None:
            self.proc.terminate()
            out, _ = self.proc.communicate(timeout=10)
            values = [int(v) for v in out.split() if v.strip().isdigit()]
            self.max_percent = max(values) if values else None


def bench_size(size_name: str, clip: Path, seconds: float, tower, settings, args, hwaccel: str | None) -> dict:
    import numpy as np
    import torch

    extract_video = common.need("r2cli.features.extract", "extract_video")
    cpu_sampler = common.need("r2cli.media.frames", "FrameSampler")
    hours = seconds / 3600.0
    speed = lambda wall: round(hours / (wall / 3600.0), 1)  # noqa: E731  video-hours per wall-hour
    res: dict = {"clip": clip.name, "seconds": seconds}
    t = time.perf_counter()
    frames, stamps = decode(cpu_sampler, clip, tower.image_size, None)
    res["decode_1"] = {"wall_s": round(time.perf_counter() - t, 3), "clips": len(frames)}
    res["decode_1"]["vh_per_h"] = speed(res["decode_1"]["wall_s"])
    wall = decode_parallel(cpu_sampler, clip, tower.image_size, args.parallel)
    res["decode_par"] = {"parallel": args.parallel, "wall_s": round(wall, 3), "vh_per_h": speed(wall / args.parallel)}
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2)
    if len(pixels) < args.clip_images:  # enough images for a steady throughput
        pixels = pixels.repeat((args.clip_images + len(pixels) - 1) // len(pixels), 1, 1, 1)[: args.clip_images]
    clip_hours = len(pixels) * 2.0 / 3600.0
    import inspect

    extra = {"output_dtype": torch.float16} if "output_dtype" in inspect.signature(tower.video_features).parameters else {}
    bs = args.batch_size
    tower.video_features(pixels[:bs], 4, batch_size=bs, **extra)  # warm-up
    common.sync(args.device)
    t = time.perf_counter()
    for a in range(0, len(pixels), bs):
        tower.video_features(pixels[a : a + bs], 4, batch_size=bs, **extra)
    common.sync(args.device)
    wall = time.perf_counter() - t
    res["clip_only"] = {"images": len(pixels), "wall_s": round(wall, 3), "images_per_s": round(len(pixels) / wall, 1),
                        "vh_per_h": round(clip_hours / (wall / 3600.0), 1)}
    t = time.perf_counter()
    out = extract_video(clip, settings, tower, batch_size=bs)
    wall = time.perf_counter() - t
    res["index"] = {"wall_s": round(wall, 3), "clips": int(out.layers.shape[0]), "vh_per_h": speed(wall)}
    if hwaccel:
        ok, why = hwaccel_works(hwaccel, clip)
        res["nvdec_available"] = ok
        res["nvdec_hwaccel"] = hwaccel
        if not ok:
            res["nvdec_error"] = why
            return res
        hw = hw_sampler_class(hwaccel)
        t = time.perf_counter()
        hw_frames, hw_stamps = decode(hw, clip, tower.image_size, None)
        wall = time.perf_counter() - t
        res["nvdec_decode_1"] = {"wall_s": round(wall, 3), "clips": len(hw_frames), "vh_per_h": speed(wall)}
        same_count = len(hw_frames) == len(frames)
        diff = np.abs(hw_frames.astype(np.int16) - frames.astype(np.int16)) if same_count else None
        res["nvdec_same_frames"] = {
            "same_clip_count": same_count,
            "same_timestamps": bool(same_count and np.array_equal(hw_stamps, stamps)),
            "pixel_max_abs_diff": int(diff.max()) if diff is not None else None,
            "pixel_mean_abs_diff": round(float(diff.mean()), 4) if diff is not None else None,
        }
        with DecoderUtilisation() as util:
            wall = decode_parallel(hw, clip, tower.image_size, args.parallel)
        res["nvdec_decode_par"] = {"parallel": args.parallel, "wall_s": round(wall, 3), "vh_per_h": speed(wall / args.parallel),
                                   "nvdec_utilisation_max_percent": util.max_percent}
        # prototype of `--decoder nvdec` in the index pipeline: every r2cli module that imported
        # FrameSampler (r2cli.features.extract, or .stages in later versions) gets the NVDEC one
        patched = [m for name, m in list(sys.modules.items())
                   if name.startswith("r2cli.") and getattr(m, "FrameSampler", None) is cpu_sampler]
        for m in patched:
            m.FrameSampler = hw
        try:
            t = time.perf_counter()
            hw_out = extract_video(clip, settings, tower, batch_size=bs)
            wall = time.perf_counter() - t
        finally:
            for m in patched:
                m.FrameSampler = cpu_sampler
        res["nvdec_index_patched_modules"] = [m.__name__ for m in patched]
        res["nvdec_index"] = {"wall_s": round(wall, 3), "vh_per_h": speed(wall),
                              "max_layer_diff_vs_cpu_decode": float(np.abs(hw_out.layers.astype(np.float32)
                                                                           - out.layers.astype(np.float32)).max())}
    return res


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seconds", type=float, default=600.0, help="length of each test file (a looped base clip)")
    parser.add_argument("--base-seconds", type=float, default=30.0, help="length of the x264-encoded base clip")
    parser.add_argument("--clip-images", type=int, default=4096, help="images for the CLIP-only throughput")
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--parallel", type=int, default=4, help="concurrent ffmpeg processes for the decode ceiling")
    parser.add_argument("--batch-size", type=int, default=None, help="CLIP frames per forward (default 256 CUDA, 16 CPU)")
    parser.add_argument("--precision", default=None, help="CLIP precision (default fp16 on CUDA, fp32 on CPU)")
    parser.add_argument("--nvdec", default=None, help="hwaccel for the NVDEC run (default cuda on CUDA; 'off' skips)")
    parser.add_argument("--work", default=None)
    args = parser.parse_args(argv)

    import torch

    args.device = common.pick_device(args.device)
    cuda = args.device.startswith("cuda")
    if args.smoke:
        torch.set_num_threads(1)
        args.seconds, args.base_seconds, args.sizes, args.parallel, args.clip_images = 12.0, 4.0, "320x180,480x270", 2, 16
    args.precision = args.precision or ("fp16" if cuda else "fp32")
    args.batch_size = args.batch_size or (256 if cuda else 16)
    hwaccel = args.nvdec or ("cuda" if cuda else ("none" if args.smoke else "off"))
    hwaccel = None if hwaccel == "off" else hwaccel
    ffprobe = ensure_ffprobe()
    find_ffmpeg = common.need("r2cli.media.ffmpeg", "find_ffmpeg")
    tool_version = common.need("r2cli.media.ffmpeg", "tool_version")
    load_clip = common.need("r2cli.features.clip", "load_clip")
    settings_cls = common.need("r2cli.features.store", "FeatureSettings")
    work = Path(args.work or common.REPO / "benchmarks" / "_work" / "gpu-index")
    weights = common.vitb32_random_weights(work, small=args.smoke)
    tower = load_clip(str(weights), device=args.device, precision=args.precision, batch_size=args.batch_size,
                      offline=True)
    settings = settings_cls.for_tower(tower, fps=0.5)
    result: dict = {"script": "gpu_index", "smoke": args.smoke, **common.machine_info(args.device),
                    "ffmpeg": find_ffmpeg(), "ffmpeg_version": tool_version(find_ffmpeg()), "ffprobe": ffprobe,
                    "clip_precision": args.precision, "batch_size": args.batch_size, "sizes": {}}
    for size in args.sizes.split(","):
        clip = make_clip(work, size, args.seconds, args.base_seconds)
        result["sizes"][size] = bench_size(size, clip, args.seconds, tower, settings, args, hwaccel)
        print(f"{size}: {result['sizes'][size]}", file=sys.stderr, flush=True)
    common.write_result(args.out, "gpu_index", result)
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = [f"### gpu_index {result['date']}: {result.get('gpu', result['cpu'])}, {result['cpu_count']} cores, "
             f"ffmpeg {result['ffmpeg_version']}{' (smoke)' if result['smoke'] else ''}", "",
             "video-hours per wall-hour (one file unless noted):", "",
             "| size | decode 1 | decode xN | CLIP only | index | NVDEC decode 1 | NVDEC xN | NVDEC index | same frames |",
             "|---|---|---|---|---|---|---|---|---|"]
    for size, r in result["sizes"].items():
        same = r.get("nvdec_same_frames")
        same_txt = (f"{same['same_timestamps']}, px max {same['pixel_max_abs_diff']}" if same
                    else r.get("nvdec_error", "-")[:60])
        lines.append(f"| {size} | {r['decode_1']['vh_per_h']} | {r['decode_par']['vh_per_h']} | {r['clip_only']['vh_per_h']} | "
                     f"{r['index']['vh_per_h']} | {r.get('nvdec_decode_1', {}).get('vh_per_h', '-')} | "
                     f"{r.get('nvdec_decode_par', {}).get('vh_per_h', '-')} | {r.get('nvdec_index', {}).get('vh_per_h', '-')} | "
                     f"{same_txt} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
