"""Inference over the archive: query files, batched grounding, long-video windows, search, run records.

Modules are imported by name (``r2cli.inference.search``); this package root imports nothing heavy.
"""
