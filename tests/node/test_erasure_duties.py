"""The node's erasure duties (node/erasure.py) on a real store and ingestor: receipts for a
neighbour's erasures, and retention of closed needs' details, each signed once."""

from __future__ import annotations

from typing import Any

import msgspec

from node.erasure import DAY_MS, ErasureDuties
from node.ingest import Ingestor
from node.projections import erasures
from node.store.base import EventQuery
from node.store.sqlite import SQLiteStore
from protocol.validate import CLIENT, from_peer
from tests.node.conftest import NOW_S, FakeClock, PodBuilder, event_id


async def bodies_of(store: SQLiteStore, kind: str) -> list[dict[str, Any]]:
    rows = await store.query(EventQuery(kinds=(kind,), after=0, limit=100))
    out = []
    for row in rows:
        env = msgspec.json.decode(row.envelope)
        out.append(msgspec.json.decode(env["body"]))
    return out


async def test_a_neighbours_erasure_is_confirmed_once(
    ingestor: Ingestor, store: SQLiteStore, pod: PodBuilder
) -> None:
    oak = PodBuilder("oak", ts=pod.ts)
    ada = oak.key("ada")
    need = oak.sign(ada, "need.posted", {"title": "Lift", "category": "ride", "urgency": "normal"},
                    scope="peers")  # fmt: skip
    other = oak.sign(ada, "need.posted", {"title": "Soup", "category": "food", "urgency": "normal"},
                     scope="peers")  # fmt: skip
    relayed = [*oak.genesis(), oak.add("ada"), need, other]
    results = await ingestor.submit(relayed, from_peer(oak.id))
    assert all(r.ok for r in results), results
    peers: list[str] = []
    duties = ErasureDuties(
        pod=pod.id, key=pod.node, ingest=ingestor, store=store, peers=lambda: peers
    )
    await ingestor.submit([*pod.genesis()], CLIENT)
    # Redactions of both needs arrive; one names the other need but is not Ada's to sign.
    bo = oak.key("bo")
    redactions = [
        oak.add("bo"),
        oak.redact(ada, event_id(need), scope="peers"),
        oak.redact(bo, event_id(other), scope="peers"),
    ]
    assert all(r.ok for r in await ingestor.submit(redactions, from_peer(oak.id)))
    assert await duties.run_due() == 0  # oak is not a direct peer: nobody there would count it
    peers.append(oak.id)
    assert await duties.run_due() == 1
    assert await duties.run_due() == 0  # decided from what is stored: never twice
    assert await bodies_of(store, "erasure.confirmed") == [
        {"redaction": event_id(redactions[1]), "target": event_id(need)}
    ]
    # A restarted node's duties read the same state.
    again = ErasureDuties(
        pod=pod.id, key=pod.node, ingest=ingestor, store=store, peers=lambda: peers
    )
    assert await again.run_due() == 0
    mine = await store.read(
        lambda c: erasures.confirmed_pods(c, event_id(need), erasing_pod=oak.id)
    )
    assert mine == [pod.id]


async def test_a_redaction_before_its_target_is_confirmed_when_the_target_arrives(
    ingestor: Ingestor, store: SQLiteStore, pod: PodBuilder
) -> None:
    oak = PodBuilder("oak", ts=pod.ts)
    ada = oak.key("ada")
    need = oak.sign(ada, "need.posted", {"title": "Lift", "category": "ride", "urgency": "normal"},
                    scope="peers")  # fmt: skip
    await ingestor.submit([*pod.genesis()], CLIENT)
    await ingestor.submit([*oak.genesis(), oak.add("ada")], from_peer(oak.id))
    # Oak's node erases Ada's need; its redaction (in the node's own log) arrives first.
    redaction = oak.redact(oak.node, event_id(need), scope="peers")
    duties = ErasureDuties(
        pod=pod.id, key=pod.node, ingest=ingestor, store=store, peers=lambda: [oak.id]
    )
    assert (await ingestor.submit([redaction], from_peer(oak.id)))[0].ok
    assert await duties.run_due() == 0  # nothing held here yet: nothing to confirm
    await ingestor.submit([need], from_peer(oak.id))
    assert await duties.run_due() == 1
    rows = await store.read(lambda c: erasures.list_erasures(c, pod=oak.id))
    assert [(r.status, r.confirmed_by) for r in rows] == [("erased", (pod.id,))]


async def test_retention_erases_closed_needs_once_with_an_injected_clock(
    ingestor: Ingestor, store: SQLiteStore, pod: PodBuilder, clock: FakeClock
) -> None:
    ada = pod.key("ada")
    await ingestor.submit([*pod.genesis(), pod.add("ada")], CLIENT)
    marker = "MARKER-retention-31"
    done = pod.need(ada, f"Lift to {marker}")
    kept = pod.need(ada, "Still open")
    recent = pod.need(ada, "Withdrawn today")
    later = {"need": event_id(done), "title": f"Lift to {marker}, 2nd floor"}
    events = [
        done,
        kept,
        recent,
        pod.sign(ada, "need.updated", later),
        pod.sign(ada, "fulfilment.recorded", {"need": event_id(done)}),
    ]
    assert all(r.ok for r in await ingestor.submit(events, CLIENT))
    days: list[int | None] = [None]
    later_clock = FakeClock(NOW_S)
    duties = ErasureDuties(
        pod=pod.id,
        key=pod.node,
        ingest=ingestor,
        store=store,
        retention_days=lambda: days[0],
        clock=later_clock,
    )
    assert await duties.run_due() == 0  # off: kept
    days[0] = 30
    assert await duties.run_due() == 0  # fulfilled just now
    clock.advance_ms(5 * DAY_MS)  # the node's clock: Ada withdraws one need 5 days in
    withdraw = pod.sign(
        ada, "need.withdrawn", {"need": event_id(recent)}, ts=int(clock.now_s * 1000)
    )
    assert (await ingestor.submit([withdraw], CLIENT))[0].ok
    later_clock.advance_ms(31 * DAY_MS)
    assert await duties.run_due() == 2  # the fulfilled need and its update, not the others
    assert await duties.run_due() == 0
    rows = await store.read(lambda c: erasures.list_erasures(c, pod=pod.id))
    assert {r.target for r in rows} == {event_id(done), event_id(events[3])}
    assert {(r.status, r.role) for r in rows} == {("erased", "node")}
    stored = await store.query(EventQuery(after=0, limit=1000))
    assert not any(marker.encode() in (row.envelope or b"") for row in stored)
