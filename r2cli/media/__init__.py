"""Media tools: ffmpeg/ffprobe discovery (``ffmpeg``), probing (``probe``), frame sampling
(``frames``), cutting (``clips`` one clip per segment, ``reels`` one reel of many, with ``naming`` and
``segments``) and editor timelines (``timeline``).

Nothing here spawns ffmpeg at import time; each module finds the binaries when first asked.
"""
