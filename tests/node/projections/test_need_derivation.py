"""The need rules, one at a time, on the pure ``derive_need`` (no SQL)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from projection_builders import (
    ALICE,
    BOB,
    BOB_PHONE,
    CAROL,
    DAVE,
    NODE,
    OTHER_POD,
    ROOT,
    Signer,
    event,
    facts,
    key,
)

from node.projections.facts import ProjectionInput
from node.projections.needs import derive_need, need_status_at
from node.projections.views import REMOVED, ClaimView, FulfilmentView, NeedView, Window
from protocol.kinds import (
    ClaimAccepted,
    ClaimMade,
    ClaimWithdrawn,
    FulfilmentRecorded,
    NeedPosted,
    NeedUpdated,
    NeedWithdrawn,
    TimeWindow,
)

N = key("n")
SOUP = NeedPosted(
    title="Soup",
    category="food",
    urgency="high",
    details="vegetarian",
    window=TimeWindow(start=1_000, end=5_000),
    area="north",
    minutes_estimate=30,
)


def posted(by: Signer = ALICE, body: NeedPosted | None = SOUP, ts: int = 100) -> ProjectionInput:
    return event("n", "need.posted", body, by, ts)


def claim(name: str, by: Signer, ts: int = 200, need: str = N) -> ProjectionInput:
    return event(name, "claim.made", ClaimMade(need=need), by, ts)


def accept(name: str, claim_name: str, by: Signer = ALICE, ts: int = 300) -> ProjectionInput:
    return event(name, "claim.accepted", ClaimAccepted(claim=key(claim_name), need=N), by, ts)


def unclaim(name: str, claim_name: str, by: Signer, ts: int = 400) -> ProjectionInput:
    return event(name, "claim.withdrawn", ClaimWithdrawn(claim=key(claim_name)), by, ts)


def fulfil(name: str, by: Signer, ts: int = 500, minutes: int | None = 40) -> ProjectionInput:
    return event(name, "fulfilment.recorded", FulfilmentRecorded(need=N, minutes=minutes), by, ts)


def withdraw(name: str, by: Signer = ALICE, ts: int = 600) -> ProjectionInput:
    return event(name, "need.withdrawn", NeedWithdrawn(need=N), by, ts)


def update(name: str, by: Signer = ALICE, ts: int = 150, **fields: Any) -> ProjectionInput:
    return event(name, "need.updated", NeedUpdated(need=N, **fields), by, ts)


def need(*events: ProjectionInput) -> NeedView:
    view = derive_need(N, facts(*events))
    assert view is not None
    return view


def statuses(view: NeedView) -> dict[str, str]:
    return {c.id: c.status for c in view.claims}


def test_a_posted_need_is_open_with_its_content() -> None:
    assert need(posted()) == NeedView(
        id=N,
        pod=posted().pod,
        author=ALICE.person,
        ts=100,
        status="open",
        title="Soup",
        details="vegetarian",
        category="food",
        urgency="high",
        area="north",
        window=Window(start=1_000, end=5_000),
        minutes_estimate=30,
        claims=(),
        accepted_claim=None,
        helper=None,
        fulfilment=None,
        redacted=False,
    )


def test_no_need_without_its_posting() -> None:
    assert derive_need(N, facts(claim("c1", BOB), accept("a1", "c1"))) is None


def test_the_author_is_the_person_not_the_device() -> None:
    assert need(posted(by=BOB_PHONE)).author == BOB.person


def test_an_erased_need_keeps_its_history_but_not_its_content() -> None:
    view = need(posted(body=None), update("u", title="Hot soup"), claim("c1", BOB))
    assert (view.title, view.details, view.redacted) == (REMOVED, REMOVED, True)
    assert (view.category, view.urgency, view.area, view.window, view.minutes_estimate) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert view.claims == (ClaimView(id=key("c1"), person=BOB.person, ts=200, status="pending"),)


def test_updates_by_the_author_or_a_coordinator_apply_field_by_field_latest_wins() -> None:
    view = need(
        posted(),
        update("u1", ALICE, 150, title="Hot soup", urgency="urgent"),
        update("u2", CAROL, 160, urgency="low", window=TimeWindow(start=1, end=2)),
        update("u3", BOB, 170, title="Bob was here"),  # not the author, not a coordinator
    )
    assert (view.title, view.urgency, view.window) == ("Hot soup", "low", Window(start=1, end=2))
    assert (view.details, view.category) == ("vegetarian", "food")


def test_updates_with_equal_ts_are_ordered_by_id() -> None:
    first, second = sorted(["ua", "ub"], key=key)
    view = need(posted(), update(second, ts=150, area="east"), update(first, ts=150, area="west"))
    assert view.area == "east"


def test_an_erased_update_changes_nothing() -> None:
    erased = event("u", "need.updated", None, ALICE, 150)
    assert need(posted(), erased) == need(posted())


def test_claims_are_pending_until_accepted_and_listed_in_order() -> None:
    view = need(posted(), claim("c2", DAVE, 250), claim("c1", BOB, 200))
    assert [c.id for c in view.claims] == [key("c1"), key("c2")]
    assert set(statuses(view).values()) == {"pending"}
    assert view.status == "open"


def test_the_claimer_and_only_the_claimer_withdraws_a_claim() -> None:
    view = need(
        posted(),
        claim("c1", BOB),
        claim("c2", DAVE),
        unclaim("w1", "c1", BOB_PHONE),
        unclaim("w2", "c2", ALICE),
    )
    assert statuses(view) == {key("c1"): "withdrawn", key("c2"): "pending"}


def test_acceptance_by_the_author_assigns_and_declines_the_others() -> None:
    view = need(
        posted(),
        claim("c1", BOB),
        claim("c2", DAVE),
        claim("c3", CAROL),
        unclaim("w3", "c3", CAROL),
        accept("a", "c2"),
    )
    assert (view.status, view.accepted_claim, view.helper) == ("claimed", key("c2"), DAVE.person)
    assert statuses(view) == {key("c1"): "declined", key("c2"): "accepted", key("c3"): "withdrawn"}


def test_coordinators_root_and_node_may_accept_other_members_may_not() -> None:
    for by in (CAROL, ROOT, NODE):
        assert need(posted(), claim("c1", BOB), accept("a", "c1", by)).helper == BOB.person
    assert need(posted(), claim("c1", BOB), accept("a", "c1", DAVE)).status == "open"
    assert need(posted(), claim("c1", BOB), accept("a", "c1", BOB)).status == "open"


def test_competing_acceptances_the_earliest_valid_one_wins() -> None:
    events = [posted(), claim("c1", BOB), claim("c2", DAVE)]
    assert need(*events, accept("a1", "c1", ts=310), accept("a2", "c2", CAROL, 300)).helper == (
        DAVE.person
    )
    first, second = sorted(["a1", "a2"], key=key)
    tied = need(*events, accept(first, "c1", ts=300), accept(second, "c2", CAROL, 300))
    assert tied.accepted_claim == key("c1")


def test_an_invalid_earlier_acceptance_does_not_win() -> None:
    view = need(
        posted(),
        claim("c1", BOB),
        claim("c2", DAVE),
        accept("a1", "c1", DAVE, 300),
        accept("a2", "c2", ALICE, 310),
    )
    assert view.helper == DAVE.person


def test_accepting_a_withdrawn_claim_does_nothing_and_the_next_acceptance_takes_over() -> None:
    events = [posted(), claim("c1", BOB), claim("c2", DAVE), accept("a1", "c1", ts=300)]
    assert need(*events, unclaim("w", "c1", BOB)).status == "open"
    view = need(*events, accept("a2", "c2", ts=900), unclaim("w", "c1", BOB))
    assert (view.helper, statuses(view)[key("c1")]) == (DAVE.person, "withdrawn")


def test_acceptance_of_a_claim_on_another_need_is_ignored() -> None:
    other = claim("c9", BOB, need=key("other-need"))
    assert need(posted(), other, accept("a", "c9")).status == "open"
    assert need(posted(), accept("a", "c1")).status == "open"  # the claim is not known yet


def test_fulfilment_by_the_author_the_helper_or_a_coordinator() -> None:
    events = [posted(), claim("c1", BOB), accept("a", "c1")]
    for by in (ALICE, BOB_PHONE, CAROL):
        view = need(*events, fulfil("f", by))
        assert view.status == "fulfilled"
        assert view.fulfilment == FulfilmentView(id=key("f"), person=by.person, minutes=40, ts=500)
    assert need(*events, fulfil("f", DAVE)).status == "claimed"
    assert need(posted(), claim("c1", BOB), fulfil("f", BOB)).status == "open"  # not accepted


def test_the_earliest_valid_fulfilment_is_shown() -> None:
    view = need(
        posted(), fulfil("f1", DAVE, 400), fulfil("f2", ALICE, 600, None), fulfil("f3", CAROL, 500)
    )
    assert view.fulfilment is not None
    assert (view.fulfilment.id, view.fulfilment.minutes) == (key("f3"), 40)


def test_withdrawal_by_the_author_or_a_coordinator() -> None:
    assert need(posted(), withdraw("w", ALICE)).status == "withdrawn"
    assert need(posted(), withdraw("w", CAROL)).status == "withdrawn"
    assert need(posted(), withdraw("w", BOB)).status == "open"
    assert need(posted(), event("w", "need.withdrawn", None, ALICE, 600)).status == "open"


def test_status_precedence_fulfilled_withdrawn_claimed_open() -> None:
    claimed = [posted(), claim("c1", BOB), accept("a", "c1")]
    assert need(*claimed).status == "claimed"
    assert need(*claimed, withdraw("w")).status == "withdrawn"
    assert need(*claimed, withdraw("w"), fulfil("f", BOB)).status == "fulfilled"


def test_facts_from_another_pod_are_not_about_this_need() -> None:
    foreign = event("c1", "claim.made", ClaimMade(need=N), BOB, 200, pod=OTHER_POD)
    assert need(posted(), foreign).claims == ()


def test_expiry_is_a_read_time_status_of_open_needs_only() -> None:
    view = need(posted())
    assert [need_status_at(view, t) for t in (4_999, 5_000, 5_001)] == ["open", "open", "expired"]
    claimed = need(posted(), claim("c1", BOB), accept("a", "c1"))
    assert need_status_at(claimed, 10_000) == "claimed"
    no_window = need(posted(body=NeedPosted(title="t", category="food", urgency="low")))
    assert need_status_at(no_window, 10**12) == "open"


EVENTS = [
    posted(),
    update("u1", CAROL, 150, title="Hot soup"),
    update("u2", ALICE, 150, title="Warm soup"),
    claim("c1", BOB),
    claim("c2", DAVE),
    claim("c3", CAROL, 200),
    accept("a1", "c1", ts=300),
    accept("a2", "c2", CAROL, 300),
    accept("a3", "c3", ROOT, 250),
    unclaim("w1", "c1", BOB),
    unclaim("w3", "c3", CAROL, 260),
    fulfil("f1", DAVE, 900),
    withdraw("w", ALICE, 800),
]


@given(st.permutations(EVENTS))
def test_derivation_ignores_the_order_of_its_facts(events: list[ProjectionInput]) -> None:
    assert need(*events) == need(*EVENTS)
