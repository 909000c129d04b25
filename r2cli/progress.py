"""Progress reporting without printing.

Long library calls accept a ``Reporter``. The default one does nothing; the CLI
passes one that draws rich progress bars. Library code only calls these methods,
so it stays usable from notebooks, services and tests.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("r2cli")


class Reporter:
    """Receives progress events from long-running library calls. Every method is optional."""

    def begin(self, stage: str, total: float | None = None, unit: str = "items") -> None:
        """A stage starts; ``total`` is the expected amount of work, if known."""

    def advance(self, stage: str, amount: float = 1.0, **fields: object) -> None:
        """``amount`` more work of ``stage`` is done; ``fields`` carry extra counters (frames/s, bytes)."""

    def set_total(self, stage: str, total: float) -> None:
        """The expected amount of work of ``stage`` became known or changed."""

    def end(self, stage: str) -> None:
        """A stage has finished."""

    def warn(self, message: str) -> None:
        """Something the user should know about; the work goes on."""
        logger.warning(message)


NULL_REPORTER = Reporter()
