"""The one reading policy, as a table: every kind of reader against every kind of event."""

from __future__ import annotations

import pytest

from node.access import ANONYMOUS, EventFacts, Reader, ReportParties, may_read, readable_scopes

POD, OTHER = "pod-elm", "pod-oak"
ADA, BO, CY = "ada", "bo", "cy"
NO_ONE: frozenset[str] = frozenset()  # a report recorded as naming no one


def filed(author: str, about: frozenset[str] = NO_ONE) -> ReportParties:
    """The recorded parties of a report ``author`` filed (from their primary key)."""
    return ReportParties(filer=author, about=about)


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
    "report-by-ada": EventFacts(POD, ADA, "pod", "report.filed", filed(ADA)),
    "report-by-bo": EventFacts(POD, BO, "pod", "report.filed", filed(BO)),
    "public-report": EventFacts(POD, BO, "public", "report.filed", filed(BO)),
    "report-in-other-pod": EventFacts(OTHER, "zed", "pod", "report.filed", filed("zed")),
    # Bo reports Cy, a coordinator: Cy never reads it, nor the resolution that closes it.
    "report-about-cy": EventFacts(POD, BO, "pod", "report.filed", filed(BO, frozenset({CY}))),
    "resolved-about-cy": EventFacts(
        POD, "node", "pod", "report.resolved", filed("node", frozenset({CY}))
    ),
    # Ada reports herself (about her own key): she never reads it either.
    "report-about-ada": EventFacts(POD, ADA, "pod", "report.filed", filed(ADA, frozenset({ADA}))),
    # Whom it is about was never recorded (stored without its body): its author's alone.
    "report-unrecorded": EventFacts(POD, BO, "pod", "report.filed"),
}

Y, N = True, False
# Columns follow EVENTS' order.
TABLE = {
    #                  pub pubO pod podO peers peersO repA repB pubRep repO
    #                  aboutCy resCy aboutAda unrec
    "anonymous": (Y, Y, N, N, N, N, N, N, N, N, N, N, N, N),
    "member": (Y, Y, Y, N, Y, Y, Y, N, N, N, N, N, N, N),
    "coordinator": (Y, Y, Y, N, Y, Y, Y, Y, Y, N, N, N, Y, N),
    "node": (Y, Y, Y, N, Y, Y, Y, Y, Y, N, Y, Y, Y, N),
    "root": (Y, Y, Y, N, Y, Y, Y, Y, Y, N, Y, Y, Y, N),
    "other-member": (Y, Y, N, Y, Y, Y, N, N, N, Y, N, N, N, N),  # zed filed that report
    "other-coordinator": (Y, Y, N, Y, Y, Y, N, N, N, Y, N, N, N, N),
    "peer": (Y, Y, N, N, Y, N, N, N, N, N, N, N, N, N),
    "no-role": (Y, Y, N, N, N, N, N, N, N, N, N, N, N, N),
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


def test_bo_reads_his_own_report_even_when_whom_it_is_about_is_not_recorded() -> None:
    bo = Reader(person=BO, role="member", pod=POD)
    assert may_read(bo, EVENTS["report-unrecorded"]) and may_read(bo, EVENTS["report-about-cy"])


def test_visible_needs_the_subjects_of_reports_by_cursor() -> None:
    from node.access import needs_about, report_parties, visible
    from node.store.base import WireEvent

    rows = [
        WireEvent(1, POD, BO, "pod", "report.filed", b""),
        WireEvent(2, POD, BO, "pod", "need.posted", b""),
        WireEvent(3, POD, BO, "pod", "report.filed", b""),
    ]
    cy = READERS["coordinator"]
    assert needs_about(cy, rows) == [1, 3] and needs_about(ANONYMOUS, rows) == []
    # Report 1 names Cy's phone (a device key of Cy's); report 3 names no one.
    raw = {1: (BO, frozenset({"cy-phone"})), 3: (BO, NO_ONE)}
    about = report_parties(raw, {"cy-phone": CY}.get)
    assert [r.cursor for r in visible(cy, rows, about)] == [2, 3]
    assert [r.cursor for r in visible(cy, rows)] == [2]  # not looked up: fails closed


def test_a_report_filed_from_a_phone_is_its_owners_to_read() -> None:
    ada = READERS["member"]
    from_phone = EventFacts(POD, "ada-phone", "pod", "report.filed", filed(ADA))
    assert may_read(ada, from_phone)
    assert not may_read(ada, EventFacts(POD, "ada-phone", "pod", "report.filed"))  # unknown
