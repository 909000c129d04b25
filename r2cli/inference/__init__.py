"""Inference stages over the archive, without option parsing (the use cases are ``r2cli.app``).

``query_files`` (query lists, streamed), ``models`` (weights check, model loading, what a preset
decides), ``windows`` (long videos in windows, post-processing), ``grounding`` (batched R2-Tuning),
``search`` (candidates, grounding, merge, rank, outputs), ``summaries`` (saliency, shots, knapsack)
and ``runs`` (run ids, folders and manifests). Modules are imported by name; this package root
imports nothing heavy.
"""
