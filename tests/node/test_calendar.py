"""The calendar's pure parts: entries from read models, revisions from facts, the iCalendar
text parsed back; and the node-local book of private feed capabilities."""

from __future__ import annotations

import doctest
from pathlib import Path

import icalendar
import pytest

import node.calendar
import node.calendar_feeds
import node.cli.when
from node.calendar import (
    Entry,
    Revision,
    calendar_ics,
    gathering_entries,
    need_entries,
    offer_entries,
    revision_of,
)
from node.calendar_feeds import MAX_FEEDS_PER_PERSON, FeedBook, FeedError
from node.projections.facts import Fact
from node.projections.gatherings import GatheringView, RsvpCounts
from node.projections.views import NeedView, OfferView, Window

HOUR = 3_600_000


def test_doctests() -> None:
    for module in (node.calendar, node.calendar_feeds, node.cli.when):
        assert doctest.testmod(module).failed == 0


def need(**changes: object) -> NeedView:
    base = {
        "id": "N",
        "pod": "P",
        "author": "ADA",
        "ts": 5,
        "status": "open",
        "title": "Lift",
        "details": "personal words",
        "category": "ride",
        "urgency": "high",
        "area": "north",
        "window": Window(start=HOUR, end=2 * HOUR),
        "minutes_estimate": None,
        "claims": (),
        "accepted_claim": None,
        "helper": None,
        "fulfilment": None,
        "redacted": False,
    }
    return NeedView(**{**base, **changes})  # type: ignore[arg-type]


def offer(**changes: object) -> OfferView:
    base = {
        "id": "O",
        "pod": "P",
        "author": "BO",
        "ts": 5,
        "status": "open",
        "title": "Rides",
        "details": None,
        "category": "ride",
        "windows": (Window(start=0, end=HOUR), Window(start=2 * HOUR, end=3 * HOUR)),
        "capacity": 1,
        "area": None,
        "redacted": False,
    }
    return OfferView(**{**base, **changes})  # type: ignore[arg-type]


def gathering(**changes: object) -> GatheringView:
    base = {
        "id": "G",
        "pod": "P",
        "organiser": "ADA",
        "ts": 5,
        "status": "scheduled",
        "title": "Circle",
        "kind": "healing_circle",
        "window": Window(start=0, end=HOUR),
        "place": None,
        "place_sealed": None,
        "capacity": None,
        "details": None,
        "rsvps": RsvpCounts(yes=0, no=0, maybe=0),
        "full": False,
        "cancelled_by": None,
        "cancel_reason": None,
        "redacted": False,
        "revision": 0,
        "modified_ts": 5,
    }
    return GatheringView(**{**base, **changes})  # type: ignore[arg-type]


def fact(kind: str, person: str, ts: int, role: str = "member", pod: str = "P") -> Fact:
    return Fact(
        id=f"{kind}{ts}",
        pod=pod,
        kind=kind,
        person=person,
        author=person,
        role=role,
        ts=ts,
        subject="N",
        ref=None,
        data=None,
    )


def test_revisions_count_the_changes_that_count() -> None:
    facts = [
        fact("need.updated", "ADA", 10),
        fact("need.updated", "BO", 20),  # not hers to change
        fact("need.withdrawn", "CY", 30, role="coordinator"),
        fact("claim.made", "BO", 40),
        fact("need.updated", "ADA", 50, pod="ELSEWHERE"),
    ]
    assert revision_of("P", "ADA", 5, facts) == Revision(sequence=2, modified_ms=30)
    assert revision_of("P", "ADA", 5, []) == Revision(sequence=0, modified_ms=5)


def test_entries_show_little() -> None:
    rev = Revision(sequence=1, modified_ms=7)
    [n] = need_entries(need(status="withdrawn"), rev)
    assert (n.uid, n.summary, n.cancelled, n.location, n.categories) == (
        "N@kith",
        "Need: Lift",
        True,
        "north",
        ("need", "ride"),
    )
    assert need_entries(need(window=None), rev) == []
    assert need_entries(need(redacted=True), rev) == []
    assert [e.uid for e in offer_entries(offer(), rev)] == ["O-0@kith", "O-1@kith"]
    assert offer_entries(offer(redacted=True), rev) == []
    assert offer_entries(offer(windows=None), rev) == []
    [g] = gathering_entries(gathering(status="cancelled", revision=1, place="Hall"))
    assert (g.cancelled, g.sequence, g.location, g.description) == (True, 1, "Hall", None)
    assert gathering_entries(gathering(window=None)) == []


def test_the_ics_parses_back() -> None:
    entries = [
        Entry(uid="b@kith", summary="B", start_ms=HOUR, end_ms=2 * HOUR, cancelled=True,
              sequence=3, modified_ms=HOUR, location="Hall", categories=("gathering",),
              description="for members"),
        Entry(uid="a@kith", summary="A", start_ms=0, end_ms=HOUR, cancelled=False,
              sequence=0, modified_ms=0),
    ]  # fmt: skip
    text = calendar_ics(entries, name="Elm Street")
    cal = icalendar.Calendar.from_ical(text)
    assert str(cal["X-WR-CALNAME"]) == "Elm Street"
    a, b = cal.walk("VEVENT")
    assert (str(a["UID"]), str(b["UID"])) == ("a@kith", "b@kith")  # sorted: reproducible
    assert b.decoded("DTSTART").timestamp() == 3600 and b.decoded("DTEND").timestamp() == 7200
    assert (str(b["STATUS"]), int(b["SEQUENCE"]), str(b["LOCATION"])) == ("CANCELLED", 3, "Hall")
    assert b.decoded("LAST-MODIFIED").timestamp() == 3600
    assert str(a["STATUS"]) == "CONFIRMED" and "LOCATION" not in a
    assert calendar_ics(list(reversed(entries)), name="Elm Street") == text


def test_the_feed_book(tmp_path: Path) -> None:
    path = tmp_path / "calendar_feeds.json"
    book = FeedBook(path)
    feed, capability = book.create("ADA", now_ms=1)
    assert capability not in path.read_text() and feed.digest in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    again = FeedBook(path)  # survives a restart
    assert again.lookup(capability) == feed and again.lookup(capability + "x") is None
    with pytest.raises(FeedError) as info:
        again.revoke(feed.id, by="BO", coordinator=False, now_ms=2)
    assert (info.value.status, info.value.reason) == (404, "not-found")
    with pytest.raises(FeedError):
        again.revoke("nope", by="ADA", coordinator=False, now_ms=2)
    revoked = again.revoke(feed.id, by="CY", coordinator=True, now_ms=3)
    assert revoked.revoked_ms == 3
    assert again.revoke(feed.id, by="ADA", coordinator=False, now_ms=9).revoked_ms == 3
    assert FeedBook(path).lookup(capability) == revoked
    for n in range(MAX_FEEDS_PER_PERSON - 1):
        again.create("ADA", now_ms=10 + n)
    with pytest.raises(FeedError) as info:
        again.create("ADA", now_ms=99)
    assert info.value.reason == "too-many-feeds"
    assert len(again.of("ADA")) == MAX_FEEDS_PER_PERSON and again.of("BO") == []
