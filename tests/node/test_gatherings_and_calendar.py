"""Gatherings and the shared calendar over HTTP, on a real node in a data directory made by
``kith init``: reads by scope, a sealed place served as ciphertext, the iCalendar feeds parsed
back with ``icalendar``, and private feed capabilities created, used and revoked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import icalendar
import pytest

from node.cli.sealed import seal_for
from node.datadir import DataDir
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, encode_envelope
from tests.node.conftest import LiveNode, event_id, init_datadir, live_node, now_ms

HOUR = 3_600_000


class Pod(LiveNode):
    async def post(self, *envs: Envelope) -> list[dict[str, Any]]:
        return await self.results(*envs)

    def key(self, name: str) -> SigningKey:
        return self.pod.key(name)


@pytest.fixture
def datadir(tmp_path: Path) -> DataDir:
    """A data directory made by ``kith init``."""
    return init_datadir(tmp_path)  # type: ignore[no-any-return]


@pytest.fixture
async def elm(datadir: DataDir) -> AsyncIterator[Pod]:
    """A running node with Ada, Bo (members) and Cy (coordinator)."""
    async for client, node, pod in live_node(datadir, "cal"):
        p = Pod(client, node, pod)
        await p.post(pod.add("ada"), pod.add("bo"), pod.add("cy", "coordinator"))
        yield p


def window(start_h: int, end_h: int) -> dict[str, int]:
    base = now_ms() - now_ms() % HOUR
    return {"start": base + start_h * HOUR, "end": base + end_h * HOUR}


async def test_gatherings_by_reader_with_answers_and_cancellation(elm: Pod) -> None:
    ada, bo, cy = elm.key("ada"), elm.key("bo"), elm.key("cy")
    keys = (await elm.client.get(f"/v1/pods/{elm.pod.id}/keys")).json()
    place = seal_for(
        {"place": "12 Elm St"},
        list(keys["members"].values()),
        "gathering.scheduled",
        "place_sealed",
    )
    public = elm.pod.sign(
        ada,
        "gathering.scheduled",
        {"title": "Seed swap", "kind": "skill_share", "window": window(2, 4), "place": "Park"},
        scope="public",
    )
    private = elm.pod.sign(
        bo,
        "gathering.scheduled",
        {
            "title": "Peer support",
            "kind": "peer_support",
            "window": window(5, 6),
            "place_sealed": place,
            "capacity": 1,
        },
    )
    await elm.post(public, private)
    pid, gid = event_id(public), event_id(private)
    await elm.post(
        elm.pod.sign(ada, "gathering.rsvp", {"gathering": gid, "answer": "yes"}),
        elm.pod.sign(cy, "gathering.rsvp", {"gathering": gid, "answer": "maybe"}),
        elm.pod.sign(ada, "gathering.cancelled", {"gathering": pid, "reason": "rain"}),
    )

    anonymous = (await elm.client.get("/v1/gatherings")).json()
    assert [g["id"] for g in anonymous] == [pid]
    assert (await elm.client.get(f"/v1/gatherings/{gid}")).status_code == 404

    member = (await elm.client.get("/v1/gatherings", headers=elm.auth(bo))).json()
    assert {g["id"] for g in member} == {pid, gid}
    shown = (await elm.client.get(f"/v1/gatherings/{gid}", headers=elm.auth(bo))).json()
    assert shown["rsvps"] == {"yes": 1, "no": 0, "maybe": 1} and shown["full"] is True
    assert shown["place"] is None and shown["place_sealed"]["ct"] == place["ct"]
    assert "12 Elm" not in str(shown)
    upcoming = await elm.client.get("/v1/gatherings?upcoming=true", headers=elm.auth(bo))
    assert [g["id"] for g in upcoming.json()] == [gid]
    cancelled = await elm.client.get("/v1/gatherings?state=cancelled", headers=elm.auth(bo))
    assert [(g["id"], g["cancel_reason"]) for g in cancelled.json()] == [(pid, "rain")]


def events_of(ics: bytes) -> dict[str, Any]:
    calendar = icalendar.Calendar.from_ical(ics)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


async def test_the_public_calendar(elm: Pod) -> None:
    ada, bo = elm.key("ada"), elm.key("bo")
    need = elm.pod.sign(
        ada,
        "need.posted",
        {
            "title": "Lift to clinic",
            "category": "ride",
            "urgency": "high",
            "window": window(1, 2),
            "details": "Ada, 12 Elm St, ring twice",
        },
        scope="public",
    )
    offer = elm.pod.sign(
        bo,
        "offer.posted",
        {"title": "Bike repair", "category": "repair", "windows": [window(3, 4), window(27, 28)]},
        scope="public",
    )
    circle = elm.pod.sign(
        ada,
        "gathering.scheduled",
        {"title": "Circle", "kind": "healing_circle", "window": window(5, 7), "place": "Hall"},
        scope="public",
    )
    secret = elm.pod.sign(
        ada,
        "need.posted",
        {"title": "Pod only", "category": "food", "urgency": "low", "window": window(1, 3)},
    )
    await elm.post(need, offer, circle, secret)
    nid, oid, cid = event_id(need), event_id(offer), event_id(circle)
    await elm.post(
        elm.pod.sign(ada, "need.updated", {"need": nid, "urgency": "urgent"}, scope="public"),
        elm.pod.sign(ada, "need.withdrawn", {"need": nid}, scope="public"),
        elm.pod.sign(ada, "gathering.cancelled", {"gathering": cid}, scope="public"),
    )

    response = await elm.client.get("/v1/calendar.ics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    events = events_of(response.content)
    assert set(events) == {f"{nid}@kith", f"{oid}-0@kith", f"{oid}-1@kith", f"{cid}@kith"}
    need_ev = events[f"{nid}@kith"]
    w = window(1, 2)
    assert int(need_ev.decoded("DTSTART").timestamp() * 1000) == w["start"]
    assert int(need_ev.decoded("DTEND").timestamp() * 1000) == w["end"]
    assert str(need_ev["STATUS"]) == "CANCELLED" and int(need_ev["SEQUENCE"]) == 2
    second = events[f"{oid}-1@kith"]
    assert int(second.decoded("DTSTART").timestamp() * 1000) == window(27, 28)["start"]
    assert str(second["STATUS"]) == "CONFIRMED" and int(second["SEQUENCE"]) == 0
    circle_ev = events[f"{cid}@kith"]
    assert str(circle_ev["STATUS"]) == "CANCELLED" and str(circle_ev["LOCATION"]) == "Hall"
    text = response.content.decode()
    assert "12 Elm" not in text and "Pod only" not in text
    assert ada.public_b64 not in text and bo.public_b64 not in text
    # The same events give the same feed: nothing in it comes from the clock.
    assert (await elm.client.get("/v1/calendar.ics")).content == response.content
    # A calendar app polling an unchanged feed gets a 304; a new event changes the feed.
    etag = response.headers["etag"]
    unchanged = await elm.client.get("/v1/calendar.ics", headers={"if-none-match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    more = elm.pod.sign(
        bo, "offer.posted", {"title": "Soup", "category": "food", "windows": [window(8, 9)]},
        scope="public",
    )  # fmt: skip
    await elm.post(more)
    changed = await elm.client.get("/v1/calendar.ics", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert f"{event_id(more)}-0@kith" in events_of(changed.content)


async def test_private_feeds_are_capabilities(elm: Pod) -> None:
    ada, bo = elm.key("ada"), elm.key("bo")
    await elm.post(
        elm.pod.sign(
            ada,
            "gathering.scheduled",
            {"title": "Pod supper", "kind": "meeting", "window": window(2, 3)},
        )
    )
    assert (await elm.client.post("/v1/calendar/feeds")).json()["reason"] == "unauthorized"
    created = await elm.client.post("/v1/calendar/feeds", headers=elm.auth(ada))
    assert created.status_code == 201, created.text
    feed = created.json()
    path = feed["url"].split("://", 1)[1].split("/", 1)[1]
    capability = path.removeprefix("v1/calendar/").removesuffix(".ics")
    assert (
        len(capability) == 43
        and capability not in (elm.node.datadir.path / "calendar_feeds.json").read_text()
    )

    private = await elm.client.get(f"/{path}")
    assert private.status_code == 200
    assert [str(e["SUMMARY"]) for e in events_of(private.content).values()] == ["Pod supper"]
    assert "Pod supper" not in (await elm.client.get("/v1/calendar.ics")).text

    listed = (await elm.client.get("/v1/calendar/feeds", headers=elm.auth(ada))).json()
    assert [(f["id"], f["url"], f["revoked_ms"]) for f in listed] == [(feed["id"], None, None)]
    assert (await elm.client.get("/v1/calendar/feeds", headers=elm.auth(bo))).json() == []
    other = await elm.client.delete(f"/v1/calendar/feeds/{feed['id']}", headers=elm.auth(bo))
    assert other.status_code == 404 and other.json()["reason"] == "not-found"

    revoked = await elm.client.delete(f"/v1/calendar/feeds/{feed['id']}", headers=elm.auth(ada))
    assert revoked.status_code == 200 and revoked.json()["revoked_ms"] is not None
    gone = await elm.client.get(f"/{path}")
    assert gone.status_code == 404 and gone.json()["reason"] == "revoked"
    unknown = await elm.client.get("/v1/calendar/" + "A" * 43 + ".ics")
    assert unknown.status_code == 404 and unknown.json()["reason"] == "not-found"
    no_suffix = await elm.client.get(f"/v1/calendar/{capability}")
    assert no_suffix.status_code == 404

    # The feed book is node-local: it never changes the projection hash.
    before = (await elm.client.get("/.well-known/kith")).json()["projection_hash"]
    await elm.client.post("/v1/calendar/feeds", headers=elm.auth(bo))
    assert (await elm.client.get("/.well-known/kith")).json()["projection_hash"] == before


async def test_a_place_sealed_to_an_outsider_is_refused(elm: Pod) -> None:
    outsider = elm.pod.key("stranger").public_b64
    place = seal_for({"place": "12 Elm St"}, [outsider], "gathering.scheduled", "place_sealed")
    env = elm.pod.sign(
        elm.key("ada"),
        "gathering.scheduled",
        {"title": "Supper", "kind": "meeting", "window": window(1, 2), "place_sealed": place},
    )
    body = b'{"events":[' + encode_envelope(env) + b"]}"
    [result] = (await elm.client.post("/v1/events", content=body)).json()["results"]
    assert (result["ok"], result["reason"]) == (False, "invalid:sealed-recipients")


def test_feed_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A feed id is typed after `kith calendar feed revoke`: a leading dash would be an option."""
    from node import calendar_feeds

    draws = iter([b"\xfb" + bytes(8), b"\x00" * 9])  # "-…" first, then "AAAA…"
    monkeypatch.setattr(calendar_feeds.secrets, "token_bytes", lambda n: next(draws))
    assert calendar_feeds._feed_id() == "AAAAAAAAAAAA"
