"""r2cli: R2-Tuning video temporal grounding for media archives.

The package root stays import-light on purpose: `r2cli --help` must not pay for
torch, open_clip or pyarrow. Heavy modules are imported inside the functions
that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
