"""Names the media modules accept, in a module light enough for the CLI's help text (#23).

Each value is defined here once; ``media.frames``, ``media.naming`` and ``media.timeline`` re-export
them, so the options classes in ``r2cli.app`` can build flags without loading those modules.
"""

from __future__ import annotations

# How frames are sized for CLIP (see r2cli.media.frames): "display" (r2cli's default, by the shown
# size) or "official" (by the coded size, like the official extractor).
GEOMETRY_DISPLAY = "display"
GEOMETRY_OFFICIAL = "official"
GEOMETRIES = (GEOMETRY_DISPLAY, GEOMETRY_OFFICIAL)

# the default name template of `r2cli cut` clips (fields: r2cli.media.naming.TEMPLATE_FIELDS)
DEFAULT_TEMPLATE = "{video}-{query}-{rank}.mp4"

TIMELINE_FORMATS = ("edl", "otio", "fcpxml", "fcp7", "vtt", "srt", "chapters")
"""Every ``--format`` of ``r2cli cut`` that writes a file describing the cut list (not media)."""
