"""Search names, in a module light enough for the CLI's help text (#23).

Defined here once; ``r2cli.inference.search`` re-exports them.
"""

from __future__ import annotations

FEATURE_DTYPE_CHOICES = ("auto", "float16", "int8")  # search --feature-dtype; auto prefers float16
