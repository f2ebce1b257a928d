"""The one reading policy, as a table: every kind of reader against every kind of event."""

from __future__ import annotations

import pytest

from node.access import ANONYMOUS, EventFacts, Reader, may_read, readable_scopes

POD, OTHER = "pod-elm", "pod-oak"
ADA, BO, CY = "ada", "bo", "cy"

READERS = {
    "anonymous": ANONYMOUS,
    "member": Reader(person=ADA, role="member", pod=POD),
    "coordinator": Reader(person=CY, role="coordinator", pod=POD),
    "node": Reader(person="node", role="node", pod=POD),
    "root": Reader(person="root", role="root", pod=POD),
    "other-member": Reader(person="zed", role="member", pod=OTHER),
    "other-coordinator": Reader(person="yan", role="coordinator", pod=OTHER),
    "peer": Reader(peer_pod=OTHER, pod=POD),
    "no-role": Reader(person=ADA, pod=POD),  # a person the roster gives no role: not a member
}

EVENTS = {
    "public": EventFacts(POD, BO, "public", "need.posted"),
    "public-other-pod": EventFacts(OTHER, "zed", "public", "need.posted"),
    "pod": EventFacts(POD, BO, "pod", "need.posted"),
    "pod-other-pod": EventFacts(OTHER, "zed", "pod", "need.posted"),
    "peers": EventFacts(POD, BO, "peers", "overflow.referred"),
    "peers-other-pod": EventFacts(OTHER, "zed", "peers", "overflow.referred"),
    "report-by-ada": EventFacts(POD, ADA, "pod", "report.filed"),
    "report-by-bo": EventFacts(POD, BO, "pod", "report.filed"),
    "public-report": EventFacts(POD, BO, "public", "report.filed"),
    "report-in-other-pod": EventFacts(OTHER, "zed", "pod", "report.filed"),
}

Y, N = True, False
# Columns follow EVENTS' order.
TABLE = {
    #                  pub pubO pod podO peers peersO repA repB pubRep repO
    "anonymous": (Y, Y, N, N, N, N, N, N, N, N),
    "member": (Y, Y, Y, N, Y, Y, Y, N, N, N),
    "coordinator": (Y, Y, Y, N, Y, Y, Y, Y, Y, N),
    "node": (Y, Y, Y, N, Y, Y, Y, Y, Y, N),
    "root": (Y, Y, Y, N, Y, Y, Y, Y, Y, N),
    "other-member": (Y, Y, N, Y, Y, Y, N, N, N, Y),  # zed filed that report
    "other-coordinator": (Y, Y, N, Y, Y, Y, N, N, N, Y),
    "peer": (Y, Y, N, N, Y, N, N, N, N, N),
    "no-role": (Y, Y, N, N, N, N, N, N, N, N),
}


@pytest.mark.parametrize("reader", sorted(TABLE))
def test_may_read_table(reader: str) -> None:
    got = tuple(may_read(READERS[reader], event) for event in EVENTS.values())
    expected = TABLE[reader]
    wrong = {
        name: "allowed" if g else "denied"
        for name, g, e in zip(EVENTS, got, expected, strict=True)
        if g != e
    }
    assert not wrong, f"{reader} was wrongly: {wrong}"


@pytest.mark.parametrize(
    ("reader", "scopes"),
    [
        ("anonymous", ("public",)),
        ("no-role", ("public",)),
        ("peer", ("peers", "public")),
        ("member", ("pod", "peers", "public")),
        ("coordinator", ("pod", "peers", "public")),
        ("other-member", ("pod", "peers", "public")),
    ],
)
def test_readable_scopes(reader: str, scopes: tuple[str, ...]) -> None:
    assert readable_scopes(READERS[reader]) == scopes


@pytest.mark.parametrize("reader", sorted(TABLE))
@pytest.mark.parametrize("event", sorted(EVENTS))
def test_readable_scopes_is_a_sound_prefilter(reader: str, event: str) -> None:
    """Whatever ``may_read`` allows lies inside ``readable_scopes`` (SQL may pre-filter)."""
    facts = EVENTS[event]
    if may_read(READERS[reader], facts):
        assert facts.scope in readable_scopes(READERS[reader])


def test_is_member() -> None:
    assert [READERS[r].is_member for r in ("anonymous", "member", "peer", "no-role")] == [
        False,
        True,
        False,
        False,
    ]
