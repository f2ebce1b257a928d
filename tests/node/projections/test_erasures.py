"""The erasures read model (node/projections/erasures.py): redactions and receipts as rows that
are a function of the event set, the one rule of what a redaction did, and retention's query."""

from __future__ import annotations

import doctest
import itertools
import sqlite3

import msgspec
import pytest
from projection_builders import (
    ALICE,
    BOB,
    BOB_PHONE,
    CAROL,
    NODE,
    OTHER_POD,
    POD,
    Signer,
    event,
    key,
)

from node import projections
from node.projections import erasures
from node.projections.erasures import TargetHead, status_of
from node.projections.facts import ProjectionInput
from protocol.kinds import (
    ErasureConfirmed,
    EventRedacted,
    FulfilmentRecorded,
    NeedPosted,
    NeedUpdated,
    NeedWithdrawn,
    TimeWindow,
)


def fresh() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(projections.SCHEMA)
    return conn


def redaction(name: str, target: str, by: Signer = ALICE, ts: int = 500) -> ProjectionInput:
    return event(name, "event.redacted", EventRedacted(target=key(target)), by, ts)


def receipt(
    name: str, target: str, *, by: Signer = NODE, pod: str = OTHER_POD, scope: str = "peers"
) -> ProjectionInput:
    body = ErasureConfirmed(redaction=key("r1"), target=key(target))
    ev = event(name, "erasure.confirmed", body, by, 600, pod=pod)
    return msgspec.structs.replace(ev, scope=scope)


def test_doctests() -> None:
    assert doctest.testmod(erasures).failed == 0


def test_rows_are_a_function_of_the_event_set() -> None:
    events = [
        redaction("r1", "need"),
        redaction("r2", "need", by=CAROL, ts=400),
        receipt("c1", "need"),
        receipt("c2", "need", pod=key("pod:third")),
    ]
    hashes = set()
    for order in itertools.permutations(events):
        conn = fresh()
        for ev in (*order, *order):  # applied twice: a repeat changes nothing
            projections.apply(conn, ev)
        hashes.add(projections.projection_hash(conn))
    assert len(hashes) == 1
    empty = fresh()
    assert projections.projection_hash(empty) not in hashes  # the hash covers the rows
    conn = fresh()
    for ev in events:
        projections.apply(conn, ev)
    projections.reset(conn)
    assert projections.projection_hash(conn) == projections.projection_hash(empty)


def test_a_receipt_counts_from_a_node_or_coordinator_in_peers_scope_only() -> None:
    conn = fresh()
    assert projections.apply(conn, receipt("c1", "need")) == projections.apply(
        fresh(), receipt("c1", "need")
    )
    ok = erasures.apply(fresh(), receipt("c9", "need"))
    assert ok is not None and ok.ok and ok.message == "erasure confirmed"
    member = erasures.apply(conn, receipt("c2", "need", by=BOB, pod=key("pod:member")))
    assert member is not None and member.reason == "effect:not-allowed"
    public = erasures.apply(conn, receipt("c3", "need", pod=key("pod:public"), scope="public"))
    assert public is not None and public.reason == "effect:scope"
    assert erasures.apply(conn, receipt("c1", "need")) is None  # a repeat
    assert erasures.confirmed_pods(conn, key("need"), erasing_pod=POD) == [OTHER_POD]
    # The erasing pod's own receipt never counts toward its neighbours.
    erasures.apply(conn, receipt("c4", "need", pod=POD))
    assert erasures.confirmed_pods(conn, key("need"), erasing_pod=POD) == [OTHER_POD]


def test_a_redaction_has_no_effect_of_its_own_here() -> None:
    conn = fresh()
    assert projections.apply(conn, redaction("r1", "need")) is None
    blank = event("r2", "event.redacted", None, ALICE, 1)
    assert erasures.apply(conn, blank) is None  # no body: nothing to record
    assert conn.execute("SELECT COUNT(*) FROM pj_erasures").fetchone()[0] == 1


def head(kind: str = "need.posted", **over: object) -> TargetHead:
    fields: dict[str, object] = {
        "pod": POD,
        "author": ALICE.author,
        "person": ALICE.person,
        "scope": "pod",
        "kind": kind,
        "has_body": False,
    }
    fields.update(over)
    return TargetHead(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("by", "target", "status"),
    [
        (ALICE, head(), "erased"),
        (Signer(key("alice:phone"), ALICE.person), head(), "erased"),  # her other device
        (BOB_PHONE, head(author=BOB.author, person=BOB.person), "erased"),
        (BOB, head(), "not-allowed"),
        (CAROL, head(), "erased"),  # a coordinator
        (NODE, head(), "erased"),
        (ALICE, head("claim.made"), "not-redactable"),
        (ALICE, head("need.withdrawn"), "not-redactable"),
        (ALICE, head(scope="peers"), "not-allowed"),  # a redaction names its target's scope
        (CAROL, head(pod=OTHER_POD), "not-allowed"),  # another pod's coordinator
        (ALICE, None, "waiting"),
    ],
)
def test_status_of(by: Signer, target: TargetHead | None, status: str) -> None:
    got = status_of(
        pod=POD, scope="pod", author=by.author, person=by.person, role=by.role, target=target
    )
    assert got == status


def test_needs_past_retention() -> None:
    conn = fresh()
    day = 24 * 3600 * 1000

    def need(name: str, ts: int, **extra: object) -> None:
        body = NeedPosted(title=name, category="food", urgency="normal", **extra)  # type: ignore[arg-type]
        projections.apply(conn, event(name, "need.posted", body, ALICE, ts))

    def close(name: str, kind: str, body: msgspec.Struct, ts: int) -> None:
        projections.apply(conn, event(name, kind, body, ALICE, ts))

    old, late = key("fulfilled-long-ago"), key("withdrawn-lately")
    need("fulfilled-long-ago", 1)
    close("upd", "need.updated", NeedUpdated(need=old, title="x"), 2)
    close("f1", "fulfilment.recorded", FulfilmentRecorded(need=old), 10 * day)
    need("withdrawn-lately", 1)
    close("w1", "need.withdrawn", NeedWithdrawn(need=late), 40 * day)
    need("expired", 1, window=TimeWindow(start=0, end=5 * day))
    need("open-for-ever", 1)
    need("other-pods", 1)
    conn.execute("UPDATE pj_needs SET pod = ? WHERE id = ?", (OTHER_POD, key("other-pods")))
    got = erasures.needs_past_retention(conn, pod=POD, closed_before=30 * day)
    assert sorted(got) == sorted([key("fulfilled-long-ago"), key("upd"), key("expired")])
    projections.redact(conn, key("upd"))  # an erased body is not asked for again
    got = erasures.needs_past_retention(conn, pod=POD, closed_before=30 * day)
    assert sorted(got) == sorted([key("fulfilled-long-ago"), key("expired")])
    assert erasures.needs_past_retention(conn, pod=POD, closed_before=day) == []


def test_unapply_takes_a_redaction_or_receipt_row_back_out() -> None:
    """A late removal un-projects its author's redaction or receipt (D38): the rows go, so the
    hash is that of a node that never projected them, and a standing change re-applies them."""
    conn = fresh()
    empty = projections.projection_hash(conn)
    red, rec = redaction("r1", "n1"), receipt("c1", "n1")
    for ev in (red, rec):
        projections.apply(conn, ev)
    assert projections.projected_as(conn, red.id) == (red.person, red.role)
    assert projections.projected_as(conn, rec.id) == ("", rec.role)  # never equal: re-applied
    assert projections.unapply(conn, red.id) and projections.unapply(conn, rec.id)
    assert projections.projection_hash(conn) == empty
    assert projections.projected_as(conn, red.id) is None
    assert not projections.unapply(conn, red.id)
