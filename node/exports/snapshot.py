"""What the coordinator formats of ``kith export`` are built from: one read of the pod."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

import msgspec

from node.access import EventFacts, Reader, may_read, readable_scopes
from node.projections import list_needs, list_offers
from node.projections.sqlite import MAX_PAGE, hours_entries
from node.projections.timebank import HoursEntry
from node.projections.views import NeedView, OfferView
from node.store.base import EventQuery, Store
from protocol.envelope import check_body, decode_envelope, parse_event
from protocol.reasons import RejectedEvent

__all__ = ["Snapshot", "read_snapshot"]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The pod's needs, offers and hours as one coordinator reads them at ``now_ms``, and the
    display names its members gave themselves (``profile.set``), by key."""

    pod: str
    name: str
    now_ms: int
    needs: tuple[NeedView, ...]
    offers: tuple[OfferView, ...]
    hours: tuple[HoursEntry, ...]
    names: Mapping[str, str]

    def name_of(self, key: str | None) -> str:
        """A member's display name, or ``""`` when the node has none."""
        return self.names.get(key, "") if key is not None else ""


async def read_snapshot(
    store: Store, *, pod: str, name: str, reader_key: str, now_ms: int
) -> Snapshot:
    """Read the pod's snapshot from the projections (and ``profile.set`` events for names),
    keeping what a coordinator of ``pod`` (the node's key, ``reader_key``) may read."""
    reader = Reader(person=reader_key, role="coordinator", pod=pod)
    snapshot: Snapshot = await store.read(
        lambda conn: _read_models(conn, pod=pod, name=name, reader=reader, now_ms=now_ms)
    )
    return msgspec.structs.replace(snapshot, names=await _display_names(store, pod, reader))


def _read_models(
    conn: sqlite3.Connection, *, pod: str, name: str, reader: Reader, now_ms: int
) -> Snapshot:
    scopes = readable_scopes(reader)
    needs: list[NeedView] = []
    after: str | None = None
    while page := list_needs(
        conn, now_ms=now_ms, pod=pod, limit=MAX_PAGE, after=after, scopes=scopes
    ):
        needs += page
        after = page[-1].id
    offers: list[OfferView] = []
    after = None
    while page_o := list_offers(
        conn,
        now_ms=now_ms,
        pod=pod,
        include_withdrawn=True,
        limit=MAX_PAGE,
        after=after,
        scopes=scopes,
    ):
        offers += page_o
        after = page_o[-1].id
    readable_needs = [
        n for n in needs if may_read(reader, EventFacts(n.pod, n.author, n.scope, "need.posted"))
    ]
    readable_offers = [
        o for o in offers if may_read(reader, EventFacts(o.pod, o.author, o.scope, "offer.posted"))
    ]
    return Snapshot(
        pod=pod,
        name=name,
        now_ms=now_ms,
        needs=tuple(sorted(readable_needs, key=lambda n: (n.ts, n.id))),
        offers=tuple(sorted(readable_offers, key=lambda o: (o.ts, o.id))),
        hours=tuple(hours_entries(conn, pod=pod)),
        names={},
    )


async def _display_names(store: Store, pod: str, reader: Reader) -> dict[str, str]:
    """Each member's latest ``profile.set`` name (a redacted or cleared one: none)."""
    names: dict[str, str] = {}
    after = 0
    while rows := await store.query(
        EventQuery(kinds=("profile.set",), pods=(pod,), in_log=True, after=after, limit=500)
    ):
        after = rows[-1].cursor
        for row in rows:
            if not may_read(reader, EventFacts(row.pod, row.author, row.scope, row.kind)):
                continue
            try:
                body = check_body(parse_event(decode_envelope(row.envelope)))
            except RejectedEvent:
                continue  # an erased body: the name is gone
            value = body.get("name") if isinstance(body, dict) else None
            if isinstance(value, str) and value:
                names[row.author] = value
            else:
                names.pop(row.author, None)
    return names
