#!/usr/bin/env python3
"""A stand-in for ``ffprobe -v error -of json -show_streams -show_format -select_streams v FILE``.

For machines that have an ffmpeg binary (imageio-ffmpeg ships one) but no ffprobe: it runs
``ffmpeg -hide_banner -i FILE`` and turns the stream banner into the JSON fields that r2cli's
``probe_stream`` reads (index, width, height, sample_aspect_ratio, time_base, pix_fmt, rotation,
attached_pic, duration). Only that one call shape is supported; anything else exits with 2.
Use it with ``R2CLI_FFPROBE=benchmarks/gpu/ffprobe_shim.py`` (ffmpeg from ``$R2CLI_FFMPEG`` or the PATH).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

STREAM = re.compile(r"^\s*Stream #0:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: Video: (.*)$")


def parse(banner: str) -> dict:
    streams, duration, current = [], None, None
    for line in banner.splitlines():
        m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", line)
        if m and duration is None:
            duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        m = STREAM.match(line)
        if m:
            desc = m.group(2)
            size = re.search(r"(?<![\w.])(\d{2,5})x(\d{2,5})(?![\w])", desc)
            sar = re.search(r"SAR (\d+):(\d+)", desc)
            tbn = re.search(r"([\d.]+)(k?) tbn", desc)
            pix = re.search(r", ([a-z0-9_]+)(?:\(|,)", desc)
            base = 90000
            if tbn:
                base = int(round(float(tbn.group(1)) * (1000 if tbn.group(2) else 1)))
            current = {
                "index": int(m.group(1)), "codec_type": "video",
                "width": int(size.group(1)) if size else 0, "height": int(size.group(2)) if size else 0,
                "sample_aspect_ratio": f"{sar.group(1)}:{sar.group(2)}" if sar else "1:1",
                "time_base": f"1/{base}", "pix_fmt": pix.group(1) if pix else None,
                "disposition": {"attached_pic": int("(attached pic)" in desc)}, "side_data_list": [],
            }
            streams.append(current)
            continue
        m = re.search(r"rotation of (-?[\d.]+) degrees", line)
        if m and current is not None:
            current["side_data_list"].append({"rotation": float(m.group(1))})
        if re.match(r"^\s*Stream #", line):
            current = None
    fmt = {"duration": f"{duration:.6f}"} if duration is not None else {}
    return {"streams": streams, "format": fmt}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or "-show_streams" not in argv or argv[-1].startswith("-"):
        print("ffprobe_shim: only '-v error -of json -show_streams -show_format -select_streams v FILE' is supported",
              file=sys.stderr)
        return 2
    path = argv[-1]
    exe = os.environ.get("R2CLI_FFMPEG") or shutil.which("ffmpeg") or "ffmpeg"
    proc = subprocess.run([exe, "-hide_banner", "-nostdin", "-i", path], capture_output=True, text=True,
                          errors="replace", check=False)
    banner = proc.stderr
    if "Input #0" not in banner:
        lines = [line for line in banner.splitlines() if line.strip()]
        print(lines[-1] if lines else f"{path}: cannot be read", file=sys.stderr)
        return 1
    print(json.dumps(parse(banner)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
