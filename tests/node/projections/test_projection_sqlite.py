"""The SQLite read models: apply, erase, rebuild, read, hash — on real connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from projection_builders import (
    ALICE,
    BOB,
    BOB_PHONE,
    CAROL,
    DAVE,
    OTHER_POD,
    POD,
    Signer,
    event,
    key,
)

from node import projections
from node.projections import (
    REMOVED,
    SCHEMA,
    ProjectionInput,
    apply,
    get_need,
    list_needs,
    list_offers,
    projection_hash,
    redact,
    reset,
    timebank,
)
from node.projections.sqlite import MAX_PAGE
from protocol.kinds import (
    Category,
    ClaimAccepted,
    ClaimMade,
    ClaimWithdrawn,
    FulfilmentRecorded,
    HoursConfirmed,
    HoursLogged,
    NeedPosted,
    NeedUpdated,
    NeedWithdrawn,
    OfferPosted,
    OfferWithdrawn,
    ProfileSet,
    TimeWindow,
    Urgency,
)


@pytest.fixture(params=["memory", "file"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sqlite3.Connection]:
    if request.param == "memory":
        db = sqlite3.connect(":memory:")
    else:  # like the node: a file, autocommit off, rows as sqlite3.Row, an explicit transaction
        db = sqlite3.connect(tmp_path / "kith.db", isolation_level=None)
        db.row_factory = sqlite3.Row
    db.executescript(SCHEMA)
    db.executescript(SCHEMA)  # creating twice is harmless
    db.execute("BEGIN")
    yield db
    db.execute("COMMIT")
    db.close()


@pytest.fixture
def other() -> Iterator[sqlite3.Connection]:
    """A second node's database, to compare with."""
    with closing(sqlite3.connect(":memory:")) as db:
        db.executescript(SCHEMA)
        yield db


def need_posted(
    name: str,
    by: Signer = ALICE,
    ts: int = 100,
    *,
    category: Category = "food",
    urgency: Urgency = "high",
    end: int | None = None,
    pod: str = POD,
) -> ProjectionInput:
    window = None if end is None else TimeWindow(start=0, end=end)
    body = NeedPosted(title=name, category=category, urgency=urgency, window=window)
    return event(name, "need.posted", body, by, ts, pod=pod)


def claim(name: str, need: str, by: Signer = BOB, ts: int = 200) -> ProjectionInput:
    return event(name, "claim.made", ClaimMade(need=key(need)), by, ts)


def accept(name: str, claim_name: str, need: str, by: Signer = ALICE) -> ProjectionInput:
    body = ClaimAccepted(claim=key(claim_name), need=key(need))
    return event(name, "claim.accepted", body, by, 300)


def offer_posted(
    name: str, ts: int = 100, end: int = 1_000, category: Category = "ride"
) -> ProjectionInput:
    window = TimeWindow(start=0, end=end)
    body = OfferPosted(title=name, category=category, windows=(window,))
    return event(name, "offer.posted", body, BOB, ts)


def hours(name: str, by: Signer, giver: Signer, receiver: Signer, minutes: int) -> ProjectionInput:
    body = HoursLogged(giver=giver.author, receiver=receiver.author, minutes=minutes)
    return event(name, "hours.logged", body, by, 100)


def confirm(name: str, entry: str, by: Signer) -> ProjectionInput:
    return event(name, "hours.confirmed", HoursConfirmed(entry=key(entry)), by, 200)


def apply_all(db: sqlite3.Connection, *events: ProjectionInput) -> None:
    for ev in events:
        apply(db, ev)


def titles(db: sqlite3.Connection, now_ms: int = 0, **filters: Any) -> list[str]:
    return [n.title for n in list_needs(db, now_ms=now_ms, **filters)]


def test_the_public_surface() -> None:
    assert projections.apply is apply and projections.ProjectionInput is ProjectionInput
    assert set(projections.__all__) >= {"SCHEMA", "list_needs", "timebank", "projection_hash"}


def test_apply_is_idempotent(conn: sqlite3.Connection) -> None:
    apply_all(conn, need_posted("soup"), claim("c", "soup"))
    before = projection_hash(conn)
    apply_all(conn, need_posted("soup"), claim("c", "soup"))
    assert projection_hash(conn) == before
    need = get_need(conn, key("soup"), now_ms=0)
    assert need is not None and len(need.claims) == 1


def test_unused_and_unknown_kinds_change_nothing(conn: sqlite3.Connection) -> None:
    empty = projection_hash(conn)
    apply(conn, event("p", "profile.set", ProfileSet(name="Al"), ALICE, 1))
    apply(conn, event("x", "chat.sent", None, ALICE, 1))
    apply(conn, event("y", "need.withdrawn", None, ALICE, 1))  # no body: about nothing known
    assert projection_hash(conn) == empty
    assert conn.execute("SELECT count(*) FROM pj_facts").fetchone()[0] == 1


def test_facts_arriving_before_their_subject(conn: sqlite3.Connection) -> None:
    apply(conn, event("w", "claim.withdrawn", ClaimWithdrawn(claim=key("c")), BOB, 400))
    apply(conn, accept("a", "c", "soup"))
    apply(conn, claim("c", "soup"))
    assert get_need(conn, key("soup"), now_ms=0) is None
    apply(conn, need_posted("soup"))
    need = get_need(conn, key("soup"), now_ms=0)
    assert need is not None
    assert (need.status, [c.status for c in need.claims]) == ("open", ["withdrawn"])


def test_a_claim_withdrawal_after_its_claim_recomputes_the_need(conn: sqlite3.Connection) -> None:
    apply_all(conn, need_posted("soup"), claim("c", "soup"), accept("a", "c", "soup"))
    assert titles(conn, status="claimed") == ["soup"]
    apply(conn, event("w", "claim.withdrawn", ClaimWithdrawn(claim=key("c")), BOB_PHONE, 400))
    assert titles(conn, status="open") == ["soup"]


def test_list_needs_filters_and_pages(conn: sqlite3.Connection) -> None:
    apply_all(
        conn,
        need_posted("n1", ts=1, category="food", urgency="low"),
        need_posted("n2", ts=2, category="ride", urgency="low", end=50),
        need_posted("n3", ts=3, category="food", urgency="urgent"),
        need_posted("n4", ts=3, category="ride", urgency="urgent", pod=OTHER_POD),
        need_posted("n5", ts=5, category="repair", urgency="normal"),
        event("w5", "need.withdrawn", NeedWithdrawn(need=key("n5")), ALICE, 6),
    )
    n3_n4 = [n for _, n in sorted([(key("n3"), "n3"), (key("n4"), "n4")], reverse=True)]
    assert titles(conn) == ["n5", *n3_n4, "n2", "n1"]
    assert titles(conn, category="food") == ["n3", "n1"]
    assert titles(conn, urgency="urgent", pod=POD) == ["n3"]
    assert titles(conn, pod=OTHER_POD) == ["n4"]
    assert titles(conn, status="withdrawn") == ["n5"]
    assert titles(conn, status="open", now_ms=50) == [*n3_n4, "n2", "n1"]
    assert titles(conn, status="open", now_ms=51) == [*n3_n4, "n1"]
    assert titles(conn, status="expired", now_ms=51) == ["n2"]
    assert titles(conn, status="nonsense") == []
    assert [n.status for n in list_needs(conn, now_ms=51, category="ride", pod=POD)] == ["expired"]
    assert titles(conn, limit=2) == ["n5", n3_n4[0]]
    assert titles(conn, limit=2, after=key(n3_n4[0])) == [n3_n4[1], "n2"]
    assert titles(conn, after=key("n1")) == []
    assert titles(conn, after=key("unknown")) == []
    assert titles(conn, limit=-5) == []


def test_pages_are_capped(conn: sqlite3.Connection) -> None:
    apply_all(conn, *(need_posted(f"n{i}", ts=i) for i in range(MAX_PAGE + 5)))
    assert len(list_needs(conn, now_ms=0, limit=10**9)) == MAX_PAGE


def test_expiry_is_read_time_only(conn: sqlite3.Connection) -> None:
    apply(conn, need_posted("soup", end=1_000))
    before = projection_hash(conn)
    later = get_need(conn, key("soup"), now_ms=2_000)
    assert later is not None and later.status == "expired"
    earlier = get_need(conn, key("soup"), now_ms=500)
    assert earlier is not None and earlier.status == "open"
    assert projection_hash(conn) == before
    assert get_need(conn, key("nothing"), now_ms=0) is None


def test_list_offers(conn: sqlite3.Connection) -> None:
    apply_all(
        conn,
        offer_posted("o1", ts=1, end=100),
        offer_posted("o2", ts=2, end=1_000, category="tech"),
        offer_posted("o3", ts=3),
        event("w3", "offer.withdrawn", OfferWithdrawn(offer=key("o3")), CAROL, 4),
    )
    offers = list_offers(conn, now_ms=500)
    assert [(o.title, o.status) for o in offers] == [("o2", "open"), ("o1", "expired")]
    every = list_offers(conn, now_ms=500, include_withdrawn=True, pod=POD)
    assert [(o.title, o.status) for o in every] == [
        ("o3", "withdrawn"),
        ("o2", "open"),
        ("o1", "expired"),
    ]
    assert [o.title for o in list_offers(conn, now_ms=0, category="tech")] == ["o2"]
    assert [o.title for o in list_offers(conn, now_ms=0, after=key("o2"))] == ["o1"]
    assert list_offers(conn, now_ms=0, pod=OTHER_POD) == []


def test_lists_by_pod_home_and_neighbours_public(conn: sqlite3.Connection) -> None:
    def scoped(ev: ProjectionInput, scope: str) -> ProjectionInput:
        return msgspec.structs.replace(ev, scope=scope)

    third = key("pod:ash-row")
    apply_all(
        conn,
        need_posted("home-pod", ts=1),
        scoped(need_posted("home-public", ts=2), "public"),
        scoped(need_posted("oak-public", ts=3, pod=OTHER_POD), "public"),
        scoped(need_posted("oak-peers", ts=4, pod=OTHER_POD), "peers"),
        scoped(need_posted("ash-public", ts=5, pod=third), "public"),
        scoped(
            event(
                "oak-offer",
                "offer.posted",
                OfferPosted(title="t", category="ride"),
                BOB,
                6,
                pod=OTHER_POD,
            ),
            "public",
        ),
        scoped(
            event(
                "oak-peers-offer",
                "offer.posted",
                OfferPosted(title="p", category="ride"),
                BOB,
                7,
                pod=OTHER_POD,
            ),
            "peers",
        ),
    )
    home = {"home": POD}
    assert titles(conn, **home) == ["ash-public", "oak-public", "home-public", "home-pod"]
    assert titles(conn, pods=[OTHER_POD], **home) == ["oak-public"]
    assert titles(conn, pods=[OTHER_POD]) == ["oak-peers", "oak-public"]
    assert titles(conn, pods=[OTHER_POD, third], **home) == ["ash-public", "oak-public"]
    assert titles(conn, pods=[POD], scopes=["public"], **home) == ["home-public"]
    offers = list_offers(conn, now_ms=0, home=POD)
    assert [(o.title, o.pod) for o in offers] == [("t", OTHER_POD)]
    assert list_offers(conn, now_ms=0, home=POD, pods=[POD]) == []


def test_helped_needs_are_those_with_a_recent_acceptance_or_fulfilment(
    conn: sqlite3.Connection,
) -> None:
    fulfil = FulfilmentRecorded(need=key("old"), minutes=30)
    apply_all(
        conn,
        need_posted("old", ts=1),
        claim("c-old", "old", ts=2),
        event(
            "a-old", "claim.accepted", ClaimAccepted(claim=key("c-old"), need=key("old")), ALICE, 3
        ),
        event("f-old", "fulfilment.recorded", fulfil, BOB, 900),
        need_posted("new", ts=10),
        claim("c-new", "new", ts=20),
        accept("a-new", "c-new", "new"),
        need_posted("unclaimed", ts=30),
        claim("c-un", "unclaimed", ts=40),
        need_posted("elsewhere", ts=10, pod=OTHER_POD),
    )
    helped = projections.helped_needs(conn, pod=POD, since_ms=300)
    assert sorted(n.title for n in helped) == ["new", "old"]
    assert {n.helper for n in helped} == {BOB.person}
    assert [n.title for n in projections.helped_needs(conn, pod=POD, since_ms=301)] == ["old"]
    assert projections.helped_needs(conn, pod=POD, since_ms=901) == []
    assert projections.helped_needs(conn, pod=OTHER_POD, since_ms=0) == []


def test_timebank_balances_are_per_person_and_zero_sum(conn: sqlite3.Connection) -> None:
    apply_all(
        conn,
        hours("e1", ALICE, ALICE, BOB, 90),
        confirm("c1", "e1", BOB_PHONE),
        hours("e2", BOB_PHONE, BOB_PHONE, DAVE, 30),
        confirm("c2", "e2", DAVE),
        hours("e3", DAVE, CAROL, DAVE, 15),  # logged by the receiver, not yet confirmed
        hours("e4", CAROL, ALICE, BOB, 60),  # logged by neither side: ignored
        confirm("c4", "e4", BOB),
    )
    bank = timebank(conn, pod=POD, limit_minutes=50)
    assert [(m.person, m.balance_minutes, m.over_limit) for m in bank.members] == sorted(
        [(ALICE.person, 90, False), (BOB.person, -60, True), (DAVE.person, -30, False)]
    )
    assert bank.total_minutes_balance == 0
    assert [(e.id, e.giver, e.receiver, e.logged_by) for e in bank.pending] == [
        (key("e3"), CAROL.author, DAVE.person, DAVE.person)
    ]
    assert timebank(conn, pod=OTHER_POD).members == ()
    apply(conn, confirm("c3", "e3", CAROL))
    assert timebank(conn, pod=POD).pending == ()


def test_a_confirmation_before_its_entry(conn: sqlite3.Connection) -> None:
    apply_all(conn, confirm("c1", "e1", BOB), hours("e1", ALICE, ALICE, BOB, 90))
    apply(conn, confirm("c2", "e1", BOB_PHONE))  # a second confirmation changes nothing
    members = {m.person: m.balance_minutes for m in timebank(conn, pod=POD).members}
    assert members == {ALICE.person: 90, BOB.person: -90}


SOUP = need_posted("soup")
SOUP_ERASED = event("soup", "need.posted", None, ALICE, 100)
NEED_HISTORY = [
    event("u", "need.updated", NeedUpdated(need=key("soup"), title="Hot soup"), ALICE, 150),
    claim("c", "soup"),
    event("f", "fulfilment.recorded", FulfilmentRecorded(need=key("soup"), minutes=30), ALICE, 400),
    hours("e", ALICE, ALICE, BOB, 10),
    confirm("k", "e", BOB),
]


def test_erasing_a_need_after_it_arrived(
    conn: sqlite3.Connection, other: sqlite3.Connection
) -> None:
    apply_all(conn, SOUP, *NEED_HISTORY)
    redact(conn, key("soup"))
    redact(conn, key("soup"))  # twice is once
    need = get_need(conn, key("soup"), now_ms=0)
    assert need is not None
    assert (need.title, need.category, need.redacted, need.status) == (
        REMOVED,
        None,
        True,
        "fulfilled",
    )
    apply_all(other, SOUP_ERASED, *NEED_HISTORY)  # a node that never saw the body
    assert projection_hash(conn) == projection_hash(other)


def test_erasing_before_arrival_keeps_the_body_out(
    conn: sqlite3.Connection, other: sqlite3.Connection
) -> None:
    redact(conn, key("soup"))
    apply_all(conn, SOUP, *NEED_HISTORY)
    apply_all(other, SOUP, *NEED_HISTORY)
    redact(other, key("soup"))
    assert projection_hash(conn) == projection_hash(other)


def test_erasing_an_update_undoes_it_but_a_withdrawal_is_not_erasable(
    conn: sqlite3.Connection, other: sqlite3.Connection
) -> None:
    # An erased update no longer says which need it was about, so a node that never saw its
    # body cannot apply it; a node that did must forget it too. Withdrawals are not
    # redactable (erasing one would silently re-open the need): redact() leaves them be.
    withdrawn = event("w", "need.withdrawn", NeedWithdrawn(need=key("soup")), ALICE, 500)
    apply_all(conn, SOUP, NEED_HISTORY[0], withdrawn)
    redact(conn, key("u"))
    redact(conn, key("w"))
    need = get_need(conn, key("soup"), now_ms=0)
    assert need is not None and (need.title, need.status, need.redacted) == (
        "soup",
        "withdrawn",
        False,
    )
    apply_all(other, SOUP, withdrawn)
    assert projection_hash(conn) == projection_hash(other)


def test_erasing_an_offer(conn: sqlite3.Connection) -> None:
    apply(conn, offer_posted("o"))
    redact(conn, key("o"))
    (offer,) = list_offers(conn, now_ms=10**9)
    assert (offer.title, offer.windows, offer.status, offer.redacted) == (
        REMOVED,
        None,
        "open",
        True,
    )


def test_ledgers_and_unknown_targets_are_not_erased(conn: sqlite3.Connection) -> None:
    apply_all(conn, SOUP, *NEED_HISTORY[1:], accept("a", "c", "soup"))
    before = projection_hash(conn)
    for target in ("c", "a", "f", "e", "k", "nothing"):
        redact(conn, key(target))
    assert projection_hash(conn) == before


def test_reset_then_rebuild(conn: sqlite3.Connection, other: sqlite3.Connection) -> None:
    apply_all(conn, SOUP, *NEED_HISTORY)
    redact(conn, key("soup"))
    built = projection_hash(conn)
    reset(conn)
    assert projection_hash(conn) == projection_hash(other)
    assert conn.execute("SELECT count(*) FROM pj_facts").fetchone()[0] == 0
    apply_all(conn, SOUP_ERASED, *NEED_HISTORY)
    assert projection_hash(conn) == built
