"""Feature-store names and defaults, in a module light enough for the CLI's help text (#23).

Defined here once; ``r2cli.features.store`` re-exports them.
"""

from __future__ import annotations

from r2cli.model.config import DEFAULT_FPS

# The clips per second of r2cli's features unless a setting or a checkpoint's preset says otherwise:
# the one clip rate r2cli.model.config.DEFAULT_FPS (0.5, like the official QVHighlights features),
# which a preset without its own rate also uses (#23).
FEATURE_FPS = DEFAULT_FPS

# what `layers` are stored as: fp16 (default: the official features are fp16) or int8 with per-(clip,
# layer, channel) scales (r2cli.features.compact); `embed` is always fp16
STORED_DTYPES = ("float16", "int8")
