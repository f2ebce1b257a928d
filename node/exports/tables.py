"""``kith export --format csv``: the pod's needs, offers, claims and hours as four CSV tables.

Columns have human names; people appear by the display name they gave the pod (empty where the
node has none) and by key, so a spreadsheet can group by either; times are ISO 8601 in UTC;
durations are in minutes and, for hours, in hours too. Each table is UTF-8 with a header row,
one row per need, offer, claim or hours entry, oldest first.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Sequence

from node.exports.snapshot import Snapshot

__all__ = ["TABLES", "csv_tables", "iso"]

#: The files of a CSV export, in the order they are written.
TABLES = ("needs.csv", "offers.csv", "claims.csv", "hours.csv")

NEEDS_HEADER = (
    "Need id",
    "Posted at",
    "Title",
    "Details",
    "Category",
    "Urgency",
    "Area",
    "Status",
    "Asked by",
    "Asked by (key)",
    "Estimate (minutes)",
    "Window start",
    "Window end",
    "Helper",
    "Helper (key)",
    "Fulfilled at",
    "Minutes given",
    "Scope",
)
OFFERS_HEADER = (
    "Offer id",
    "Posted at",
    "Title",
    "Details",
    "Category",
    "Status",
    "Offered by",
    "Offered by (key)",
    "Capacity",
    "Area",
    "Scope",
)
CLAIMS_HEADER = (
    "Claim id",
    "Need id",
    "Need",
    "Claimed at",
    "Claimed by",
    "Claimed by (key)",
    "Status",
)
HOURS_HEADER = (
    "Entry id",
    "Logged at",
    "Giver",
    "Giver (key)",
    "Receiver",
    "Receiver (key)",
    "Minutes",
    "Hours",
    "Status",
    "Logged by (key)",
)


def iso(ms: int | None) -> str:
    """``ms`` since the epoch as ISO 8601 in UTC (``2026-12-07T09:30:00Z``); ``""`` for none.

    >>> iso(0)
    '1970-01-01T00:00:00Z'
    """
    if ms is None:
        return ""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180, as spreadsheets expect
    writer.writerow(header)
    writer.writerows([_text(v) for v in row] for row in rows)
    return out.getvalue().encode("utf-8")


def csv_tables(snap: Snapshot) -> dict[str, bytes]:
    """The four tables of ``snap``, by file name (``TABLES``)."""
    needs = []
    claims = []
    for n in snap.needs:
        f = n.fulfilment
        needs.append(
            (
                n.id,
                iso(n.ts),
                n.title,
                n.details,
                n.category,
                n.urgency,
                n.area,
                n.status,
                snap.name_of(n.author),
                n.author,
                n.minutes_estimate,
                iso(n.window.start) if n.window else "",
                iso(n.window.end) if n.window else "",
                snap.name_of(n.helper),
                n.helper,
                iso(f.ts) if f else "",
                f.minutes if f else "",
                n.scope,
            )
        )
        for c in n.claims:
            claims.append(
                (c.id, n.id, n.title, iso(c.ts), snap.name_of(c.person), c.person, c.status)
            )
    offers = [
        (
            o.id,
            iso(o.ts),
            o.title,
            o.details,
            o.category,
            o.status,
            snap.name_of(o.author),
            o.author,
            o.capacity,
            o.area,
            o.scope,
        )
        for o in snap.offers
    ]
    hours = [
        (
            h.id,
            iso(h.ts),
            snap.name_of(h.giver),
            h.giver,
            snap.name_of(h.receiver),
            h.receiver,
            h.minutes,
            f"{h.minutes / 60:.2f}",
            h.status,
            h.logged_by,
        )
        for h in snap.hours
    ]
    return {
        "needs.csv": _table(NEEDS_HEADER, needs),
        "offers.csv": _table(OFFERS_HEADER, offers),
        "claims.csv": _table(CLAIMS_HEADER, sorted(claims, key=lambda r: (r[3], r[0]))),
        "hours.csv": _table(HOURS_HEADER, hours),
    }
