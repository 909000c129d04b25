"""The one way r2cli shows a point in time to people and in JSON: ISO 8601, local time, with its offset.

``2026-12-05T17:03:12+01:00`` reads as the wall clock of the machine that printed it and still names
one instant, so a log line, a ``--json`` document and a table agree (#22.11). The catalog stores
naive UTC datetimes (``r2cli.catalog.schema``) and file times as epoch seconds; both pass through
``iso_local`` on their way out. Nothing else formats a time.
"""

from __future__ import annotations

import datetime as _dt
from typing import Union

When = Union[_dt.datetime, float, int]


def iso_local(value: When | None, *, timespec: str = "seconds") -> str | None:
    """``value`` as ISO 8601 local time with its UTC offset; None stays None.

    A naive ``datetime`` is taken as UTC (the form the catalog stores); an aware one keeps its
    instant; a number is seconds since the epoch (``st_mtime``).
    """
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = _dt.datetime.fromtimestamp(float(value), tz=_dt.timezone.utc)
    else:
        raise TypeError(f"iso_local takes a datetime or epoch seconds, got {type(value).__name__}")
    return moment.astimezone().isoformat(timespec=timespec)


def now_local(*, timespec: str = "seconds") -> str:
    """The current time as ``iso_local`` shows it."""
    return iso_local(_dt.datetime.now(_dt.timezone.utc), timespec=timespec)  # type: ignore[return-value]
