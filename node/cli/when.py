"""Times a person types: ISO 8601 date-times in, epoch milliseconds out, and time windows
that must end after they start — said in one line, before anything is signed.

>>> parse_time("2026-03-01T18:00:00Z")
1772388000000
>>> window_of("2026-03-01T18:00Z", "2026-03-01T20:00Z")
{'start': 1772388000000, 'end': 1772395200000}
>>> try:
...     window_of("2026-03-01T18:00Z", "2026-03-01T17:00Z")
... except KithError as exc:
...     print(exc)
the window must end after it starts (2026-03-01T18:00Z → 2026-03-01T17:00Z)
"""

from __future__ import annotations

import datetime

from protocol.reasons import KithError

__all__ = ["parse_time", "parse_window", "window_of"]


def parse_time(text: str) -> int:
    """An ISO 8601 date-time (``2026-03-01T18:00``, ``…Z``, ``…+01:00``) as epoch ms.

    A time without an offset is read in this computer's local time zone, as a person means it.
    """
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise KithError(
            f"{text!r} is not an ISO 8601 date-time (e.g. 2026-03-01T18:00 or 2026-03-01T18:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


def window_of(start: str, end: str) -> dict[str, int]:
    """A time window body (``{"start", "end"}`` in ms); ``KithError`` unless it ends later."""
    window = {"start": parse_time(start), "end": parse_time(end)}
    if window["end"] <= window["start"]:
        raise KithError(f"the window must end after it starts ({start} → {end})")
    return window


def parse_window(text: str) -> dict[str, int]:
    """``FROM/UNTIL`` (two ISO 8601 date-times joined by ``/``, as in ISO 8601 intervals)."""
    start, slash, end = text.partition("/")
    if not slash or not start or not end:
        raise KithError(
            f"{text!r} is not a window: give FROM/UNTIL, e.g. 2026-03-01T18:00/2026-03-01T20:00"
        )
    return window_of(start, end)
