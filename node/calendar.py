"""The pod's shared calendar as iCalendar (RFC 5545, built with ``icalendar``).

One VEVENT per need with a time window, per offer availability window and per gathering, each
with a UID that never changes (``<event-id>@kith``; an offer's windows ``<offer-id>-<n>@kith``)
so that a calendar app updates an entry instead of duplicating it. ``SEQUENCE`` counts the
changes a reader would see (need updates, withdrawals, a cancellation) and ``LAST-MODIFIED`` /
``DTSTAMP`` are the time of the latest — taken from the events, never from the clock, so the
same events give the same feed on any node. Withdrawn needs and offers and cancelled
gatherings stay in the feed with ``STATUS:CANCELLED``, which is how a subscribed calendar learns
to strike them out.

What goes in is deliberately little: a title, the kind of help (category) or gathering, a
coarse area or a gathering's public place, and the times. Never details, sealed fields, the
people involved or their keys — a feed URL ends up in calendar apps and sync services.

>>> from node.projections.views import Window
>>> entry = Entry(uid="N@kith", summary="Need: Soup", start_ms=0, end_ms=3_600_000,
...               cancelled=False, sequence=0, modified_ms=0)
>>> b"UID:N@kith" in calendar_ics([entry], name="Elm Street")
True
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Iterable, Sequence

import icalendar
import msgspec

from node import projections
from node.projections.facts import COORDINATING_ROLES, Fact
from node.projections.gatherings import GatheringView
from node.projections.sqlite import MAX_PAGE, facts_about
from node.projections.views import NeedView, OfferView

__all__ = [
    "Entry",
    "Revision",
    "calendar_entries",
    "calendar_ics",
    "gathering_entries",
    "need_entries",
    "offer_entries",
    "revision_of",
]

#: Kinds that change what a calendar shows of a need or offer, when its author or a
#: coordinator makes them (the same rule the read models apply).
_CHANGES = frozenset({"need.updated", "need.withdrawn", "offer.withdrawn"})

_PRODID = "-//Kith//Kith pod calendar//EN"


class Revision(msgspec.Struct, frozen=True, kw_only=True):
    """How often an item changed (``sequence``) and when it last did (``modified_ms``)."""

    sequence: int
    modified_ms: int


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One VEVENT, already stripped to what a feed may show."""

    uid: str
    summary: str
    start_ms: int
    end_ms: int
    cancelled: bool
    sequence: int
    modified_ms: int
    location: str | None = None
    categories: tuple[str, ...] = ()
    description: str | None = None


def revision_of(pod: str, author: str, posted_ts: int, facts: Iterable[Fact]) -> Revision:
    """A need's or offer's revision from the facts about it: the changes its author (the same
    person) or a coordinator made, counted, and the time of the latest."""
    changes = [
        f.ts
        for f in facts
        if f.kind in _CHANGES
        and f.pod == pod
        and (f.person == author or f.role in COORDINATING_ROLES)
    ]
    return Revision(sequence=len(changes), modified_ms=max([posted_ts, *changes]))


def need_entries(view: NeedView, revision: Revision) -> list[Entry]:
    """A need's VEVENT, if it has a window and its content was not erased."""
    if view.window is None or view.redacted:
        return []
    return [
        Entry(
            uid=f"{view.id}@kith",
            summary=f"Need: {view.title}",
            start_ms=view.window.start,
            end_ms=view.window.end,
            cancelled=view.status == "withdrawn",
            sequence=revision.sequence,
            modified_ms=revision.modified_ms,
            location=view.area,
            categories=tuple(c for c in ("need", view.category) if c),
        )
    ]


def offer_entries(view: OfferView, revision: Revision) -> list[Entry]:
    """One VEVENT per availability window of an offer (none once its content was erased)."""
    if view.redacted:
        return []
    return [
        Entry(
            uid=f"{view.id}-{n}@kith",
            summary=f"Offer: {view.title}",
            start_ms=window.start,
            end_ms=window.end,
            cancelled=view.status == "withdrawn",
            sequence=revision.sequence,
            modified_ms=revision.modified_ms,
            location=view.area,
            categories=tuple(c for c in ("offer", view.category) if c),
        )
        for n, window in enumerate(view.windows or ())
    ]


def gathering_entries(view: GatheringView) -> list[Entry]:
    """A gathering's VEVENT. A sealed place stays out: the feed says it is for members."""
    if view.window is None or view.redacted:
        return []
    return [
        Entry(
            uid=f"{view.id}@kith",
            summary=view.title,
            start_ms=view.window.start,
            end_ms=view.window.end,
            cancelled=view.status == "cancelled",
            sequence=view.revision,
            modified_ms=view.modified_ts,
            location=view.place,
            categories=tuple(c for c in ("gathering", view.kind) if c),
            description="The place is shared with the pod's members in Kith."
            if view.place_sealed is not None
            else None,
        )
    ]


def calendar_entries(
    conn: sqlite3.Connection, pod: str, now_ms: int, scopes: Sequence[str]
) -> list[Entry]:
    """The calendar entries of ``pod``'s needs, offers and gatherings in ``scopes``, read from
    the projections (a page of each: ``MAX_PAGE``) — what a feed or ``kith export --format
    ics`` shows."""
    entries: list[Entry] = []
    limit = MAX_PAGE
    for need in projections.list_needs(conn, now_ms=now_ms, pod=pod, limit=limit, scopes=scopes):
        facts = facts_about(conn, need.id)
        entries += need_entries(need, revision_of(need.pod, need.author, need.ts, facts))
    offers = projections.list_offers(
        conn, now_ms=now_ms, pod=pod, include_withdrawn=True, limit=limit, scopes=scopes
    )
    for offer in offers:
        facts = facts_about(conn, offer.id)
        entries += offer_entries(offer, revision_of(offer.pod, offer.author, offer.ts, facts))
    for gathering in projections.list_gatherings(
        conn, now_ms=now_ms, pod=pod, limit=limit, scopes=scopes
    ):
        entries += gathering_entries(gathering)
    return entries


def _utc(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


def calendar_ics(entries: Sequence[Entry], *, name: str) -> bytes:
    """The iCalendar text of ``entries``, ordered by UID so that the feed is reproducible."""
    cal = icalendar.Calendar()
    cal.add("prodid", _PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    for entry in sorted(entries, key=lambda e: e.uid):
        event = icalendar.Event()
        event.add("uid", entry.uid)
        event.add("summary", entry.summary)
        event.add("dtstart", _utc(entry.start_ms))
        event.add("dtend", _utc(entry.end_ms))
        event.add("dtstamp", _utc(entry.modified_ms))
        event.add("last-modified", _utc(entry.modified_ms))
        event.add("sequence", entry.sequence)
        event.add("status", "CANCELLED" if entry.cancelled else "CONFIRMED")
        if entry.location:
            event.add("location", entry.location)
        if entry.categories:
            event.add("categories", list(entry.categories))
        if entry.description:
            event.add("description", entry.description)
        cal.add_component(event)
    ics: bytes = cal.to_ical()
    return ics
