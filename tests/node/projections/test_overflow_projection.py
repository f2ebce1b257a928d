"""A referral's life derived from facts: the transition table, who may move it, what is ignored
and why, clearing, re-referral checks, and the same state for every order of the same facts."""

from __future__ import annotations

import itertools
import sqlite3

import pytest
from projection_builders import OTHER_POD, POD, Signer, event, key

from node.projections import SCHEMA, apply, get_referral, projection_hash
from node.projections.facts import fact_of
from node.projections.overflow import derive_referral, explain_referral, shown_state
from protocol.kinds import (
    ClearingRecorded,
    OverflowAssigned,
    OverflowFulfilled,
    OverflowOffered,
    OverflowReferred,
    OverflowReturned,
    ReferralSummary,
)

THIRD_POD = key("pod:ash-row")
A_NODE = Signer(key("a-node"), key("a-node"), "node")
B_COORD = Signer(key("b-coord"), key("b-coord"), "coordinator")
C_COORD = Signer(key("c-coord"), key("c-coord"), "coordinator")
B_MEMBER = Signer(key("b-member"), key("b-member"))
EXPIRES = 10_000


def referred(name: str = "r", **extra: object) -> OverflowReferred:
    summary = ReferralSummary(category="ride", urgency="high", area="Elm")
    return OverflowReferred(
        need=key("need"), summary=summary, hops_left=2, expires_at=EXPIRES, **extra
    )


def on(pod: str, name: str, kind: str, body: object, by: Signer, ts: int) -> object:
    return event(name, kind, body, by, ts, pod=pod)  # type: ignore[arg-type]


def life() -> list[object]:
    r = key("r")
    return [
        on(POD, "r", "overflow.referred", referred(), A_NODE, 100),
        on(OTHER_POD, "offer-b", "overflow.offered", OverflowOffered(referral=r), B_COORD, 200),
        on(THIRD_POD, "offer-c", "overflow.offered", OverflowOffered(referral=r), C_COORD, 210),
        # only the origin assigns: C's self-assignment is ignored
        on(
            THIRD_POD,
            "steal",
            "overflow.assigned",
            OverflowAssigned(referral=r, to_pod=THIRD_POD),
            C_COORD,
            250,
        ),
        on(
            POD,
            "assign",
            "overflow.assigned",
            OverflowAssigned(referral=r, to_pod=OTHER_POD, offer=key("offer-b")),
            A_NODE,
            300,
        ),
        # fulfilled by B, stamped "before" the assignment by B's clock: phases keep it counted
        on(
            OTHER_POD,
            "done",
            "overflow.fulfilled",
            OverflowFulfilled(referral=r, minutes=90),
            B_COORD,
            290,
        ),
        on(
            OTHER_POD,
            "late-return",
            "overflow.returned",
            OverflowReturned(referral=r),
            B_COORD,
            400,
        ),
        on(
            OTHER_POD,
            "clear-b",
            "clearing.recorded",
            ClearingRecorded(peer_pod=POD, minutes=90, referral=r),
            B_COORD,
            500,
        ),
        on(
            POD,
            "clear-a",
            "clearing.recorded",
            ClearingRecorded(peer_pod=OTHER_POD, minutes=-90, referral=r),
            A_NODE,
            510,
        ),
        on(
            POD,
            "clear-wrong",
            "clearing.recorded",
            ClearingRecorded(peer_pod=OTHER_POD, minutes=-60, referral=r),
            A_NODE,
            520,
        ),
    ]


def test_the_life_of_a_referral() -> None:
    facts = [fact_of(ev) for ev in life()]  # type: ignore[arg-type]
    view = derive_referral(key("r"), [f for f in facts if f is not None])
    assert view is not None
    assert view.state == "fulfilled"
    assert view.assignment is not None and view.assignment.to_pod == OTHER_POD
    assert [o.pod for o in view.offers] == [OTHER_POD, THIRD_POD]
    assert view.closing is not None and view.closing.minutes == 90
    assert {(c.pod, c.minutes) for c in view.clearing} == {(POD, -90), (OTHER_POD, 90)}
    ignored = {i.id: i.reason for i in view.ignored}
    assert ignored == {
        key("steal"): "overflow:not-origin",
        key("late-return"): "overflow:state:fulfilled",
        key("clear-wrong"): "clearing:mismatch",
    }
    steal = next(f for f in facts if f is not None and f.id == key("steal"))
    effect = explain_referral(steal, view)
    assert (effect.ok, effect.reason) == (False, "effect:overflow:not-origin")


def test_offers_from_the_origin_members_or_after_expiry_do_not_count() -> None:
    r = key("r")
    events = [
        on(POD, "r", "overflow.referred", referred(), A_NODE, 100),
        on(POD, "own", "overflow.offered", OverflowOffered(referral=r), A_NODE, 200),
        on(OTHER_POD, "member", "overflow.offered", OverflowOffered(referral=r), B_MEMBER, 210),
        on(
            OTHER_POD, "late", "overflow.offered", OverflowOffered(referral=r), B_COORD, EXPIRES + 1
        ),
    ]
    facts = [f for f in map(fact_of, events) if f is not None]  # type: ignore[arg-type]
    view = derive_referral(r, facts)
    assert view is not None and view.state == "referred" and view.offers == ()
    assert [i.reason for i in view.ignored] == [
        "overflow:own-referral",
        "overflow:not-coordinator",
        "overflow:expired",
    ]
    assert shown_state(view, EXPIRES) == "referred"
    assert shown_state(view, EXPIRES + 1) == "lapsed"


def test_a_re_referral_must_follow_from_its_parent() -> None:
    """B may pass on only what was assigned to it, one hop lower, with the parent's path."""
    r = key("r")
    parent_events = [
        on(POD, "r", "overflow.referred", referred(), A_NODE, 100),
        on(
            POD,
            "assign",
            "overflow.assigned",
            OverflowAssigned(referral=r, to_pod=OTHER_POD),
            A_NODE,
            300,
        ),
    ]
    parent = derive_referral(
        r,
        [f for f in map(fact_of, parent_events) if f is not None],  # type: ignore[arg-type]
    )
    assert parent is not None

    def child(pod: str, hops: int, path: tuple[str, ...]) -> str | None:
        body = OverflowReferred(
            need=key("need-b"),
            summary=ReferralSummary(category="ride", urgency="high"),
            hops_left=hops,
            expires_at=EXPIRES,
            parent=r,
            path=path,
        )
        fact = fact_of(event("child", "overflow.referred", body, B_COORD, 400, pod=pod))
        assert fact is not None
        view = derive_referral(key("child"), [fact], parent)
        assert view is not None
        return None if view.problem is None else view.problem.reason

    assert child(OTHER_POD, 1, (POD,)) is None
    assert child(THIRD_POD, 1, (POD,)) == "overflow:not-assigned-here"
    assert child(OTHER_POD, 2, (POD,)) == "overflow:path"
    assert child(OTHER_POD, 1, (POD, OTHER_POD)) == "overflow:loop"


@pytest.mark.parametrize("seed", range(6))
def test_every_order_gives_the_same_referral(seed: int) -> None:
    events = life()
    hashes, views = set(), []
    orders = itertools.islice(itertools.permutations(events), seed * 5003, None, 100_003)
    for order in itertools.islice(orders, 8):
        with sqlite3.connect(":memory:") as db:
            db.executescript(SCHEMA)
            for ev in order:
                apply(db, ev)  # type: ignore[arg-type]
            hashes.add(projection_hash(db))
            views.append(get_referral(db, key("r")))
    assert len(hashes) == 1
    assert all(v == views[0] for v in views) and views[0] is not None
    assert views[0].state == "fulfilled"
