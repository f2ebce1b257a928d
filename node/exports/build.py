"""One coordinator export, rendered: its files (a name and bytes each) and a summary line."""

from __future__ import annotations

import json

import msgspec

from node.access import Reader, readable_scopes
from node.calendar import calendar_entries, calendar_ics
from node.exports.snapshot import read_snapshot
from node.exports.tables import csv_tables
from node.exports.valueflows import valueflows_document
from node.store.base import Store

__all__ = ["Rendered", "render"]


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    """An export's files by name (one for ``ics`` and ``valueflows``, four for ``csv``) and
    what ``kith export`` says of it."""

    files: dict[str, bytes]
    summary: str


async def render(
    store: Store, *, fmt: str, pod: str, name: str, reader_key: str, now_ms: int
) -> Rendered:
    """Read the pod from ``store`` as a coordinator (``reader_key``) and render ``fmt``
    (``csv``, ``ics`` or ``valueflows``)."""
    if fmt == "ics":
        reader = Reader(person=reader_key, role="coordinator", pod=pod)
        scopes = readable_scopes(reader)
        entries = await store.read(lambda conn: calendar_entries(conn, pod, now_ms, scopes))
        body = calendar_ics(entries, name=name or "Kith pod")
        return Rendered(files={"calendar.ics": body}, summary=f"{len(entries)} calendar entries")
    snap = await read_snapshot(store, pod=pod, name=name, reader_key=reader_key, now_ms=now_ms)
    if fmt == "valueflows":
        document = valueflows_document(snap)
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        return Rendered(
            files={"valueflows.jsonld": text.encode()},
            summary=f"{len(document['@graph'])} ValueFlows objects",
        )
    if fmt != "csv":
        raise ValueError(f"no export format {fmt!r}")
    claims = sum(len(n.claims) for n in snap.needs)
    return Rendered(
        files=csv_tables(snap),
        summary=f"{len(snap.needs)} needs, {len(snap.offers)} offers, {claims} claims and"
        f" {len(snap.hours)} hours entries",
    )
