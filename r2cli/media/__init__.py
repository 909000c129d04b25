"""Media tools: ffmpeg/ffprobe discovery (``ffmpeg``), probing (``probe``), frame sampling
(``frames``), cutting (``cut``) and editor timelines (``timeline``).

Nothing here spawns ffmpeg at import time; each module finds the binaries when first asked.
"""
