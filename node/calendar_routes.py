"""HTTP routes for the shared calendar (docs/calendar.md).

* ``GET /v1/calendar.ics`` — public: the pod's public needs, offers and gatherings.
* ``GET /v1/calendar/<capability>.ics`` — a member's private feed: adds the pod-scope ones.
  The capability is the only credential (calendar apps cannot sign); unknown → 404
  ``not-found``, revoked (or its member gone from the pod) → 404 ``revoked``.
* ``POST /v1/calendar/feeds`` (member token) → a new private feed's URL, shown once;
  ``GET /v1/calendar/feeds`` lists the member's feeds; ``DELETE /v1/calendar/feeds/{id}``
  revokes one (its owner or a coordinator).

Feeds hold titles, categories, coarse areas, public places and times only (``node.calendar``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from node.access import Reader
from node.calendar import calendar_entries, calendar_ics
from node.calendar_feeds import Feed, FeedBook, FeedError
from node.http import Problem, node_of, problem

__all__ = ["CALENDAR_ROUTES"]

_ICS = "text/calendar; charset=utf-8"
_MEMBER_SCOPES = ("pod", "peers", "public")


class FeedOut(msgspec.Struct, frozen=True, kw_only=True):
    """A private feed as its owner sees it; ``url`` only in the answer that created it."""

    id: str
    created_ms: int
    revoked_ms: int | None
    url: str | None = None


def _out(feed: Feed, url: str | None = None) -> FeedOut:
    return FeedOut(id=feed.id, created_ms=feed.created_ms, revoked_ms=feed.revoked_ms, url=url)


def _book(request: Request[Any, Any, Any]) -> FeedBook:
    """The node's feed book, loaded on first use (node-local; not part of any event)."""
    state = request.app.state
    book: FeedBook | None = getattr(state, "calendar_feeds", None)
    if book is None:
        book = FeedBook(node_of(request).datadir.path / "calendar_feeds.json")
        state.calendar_feeds = book
    return book


class _Built(msgspec.Struct, frozen=True):
    """A feed as built for one state of the log: its bytes and their ETag."""

    key: tuple[tuple[str, ...], int, int]
    body: bytes
    etag: str


async def _feed(request: Request[Any, Any, Any], scopes: Sequence[str]) -> Response[bytes]:
    """The feed for ``scopes``. Calendar apps poll it: it is built once per state of the log
    (the store's last cursor) and minute, then served from memory, with an ``ETag`` so an
    unchanged feed costs a ``304``. Serializing iCalendar is most of the cost of a feed."""
    node = node_of(request)
    now = node.ingest.now_ms()
    key = (tuple(scopes), await node.store.last_cursor(), now // 60_000)
    built: dict[tuple[str, ...], _Built] = request.app.state.setdefault("calendar_built", {})
    cached = built.get(key[0])
    if cached is None or cached.key != key:
        entries = await node.store.read(lambda conn: calendar_entries(conn, node.pod, now, scopes))
        roster = node.ingest.roster.pods.get(node.pod)
        name = (roster.name if roster is not None else "") or "Kith pod"
        body = calendar_ics(entries, name=name)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        cached = built[key[0]] = _Built(key, body, etag)
    headers = {"etag": cached.etag, "cache-control": "no-cache"}
    if request.headers.get("if-none-match") == cached.etag:
        return Response(content=b"", status_code=304, headers=headers, media_type=_ICS)
    return Response(content=cached.body, media_type=_ICS, headers=headers)


@get("/v1/calendar.ics", summary="The pod's public calendar (iCalendar)", media_type=_ICS)
async def public_calendar(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Public needs' windows, public offers' availability and public gatherings."""
    return await _feed(request, ("public",))


@get("/v1/calendar/{file:str}", summary="A member's private calendar feed (iCalendar)")
async def private_calendar(
    request: Request[Any, Any, Any], file: FromPath[str]
) -> Response[bytes] | Response[Problem]:
    """``<capability>.ics``: the public calendar plus the pod's own needs, offers, gatherings."""
    capability = file.removesuffix(".ics")
    feed = None if capability == file else _book(request).lookup(capability)
    if feed is None:
        return problem(404, "not-found", "no such calendar feed")
    node = node_of(request)
    roster = node.ingest.roster.pods.get(node.pod)
    if feed.revoked_ms is not None:
        return problem(404, "revoked", "this calendar feed was revoked; ask for a new one")
    if roster is None or not roster.is_active(feed.person):
        return problem(404, "revoked", "this feed's member is no longer active in the pod")
    return await _feed(request, _MEMBER_SCOPES)


def _member(reader: Reader) -> Response[Problem] | None:
    if not reader.is_member or reader.person is None:
        return problem(401, "unauthorized", "private calendar feeds are for members (send a token)")
    return None


@post("/v1/calendar/feeds", status_code=201, summary="A new private calendar feed (members)")
async def create_feed(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader]
) -> FeedOut | Response[Problem]:
    """A new capability URL for the member's calendar app; it is shown only in this answer."""
    refused = _member(reader)
    if refused is not None:
        return refused
    assert reader.person is not None
    node = node_of(request)
    try:
        feed, capability = _book(request).create(reader.person, now_ms=node.ingest.now_ms())
    except FeedError as exc:
        return problem(exc.status, exc.reason, exc.message)
    url = str(request.base_url).rstrip("/") + f"/v1/calendar/{capability}.ics"
    return _out(feed, url)


@get("/v1/calendar/feeds", summary="Your private calendar feeds (members)")
async def list_feeds(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader]
) -> list[FeedOut] | Response[Problem]:
    """The member's feeds, revoked ones included (their URLs are never shown again)."""
    refused = _member(reader)
    if refused is not None:
        return refused
    assert reader.person is not None
    return [_out(feed) for feed in _book(request).of(reader.person)]


@delete("/v1/calendar/feeds/{feed_id:str}", status_code=200, summary="Revoke a calendar feed")
async def revoke_feed(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], feed_id: FromPath[str]
) -> FeedOut | Response[Problem]:
    """Revoke a feed: its URL answers 404 ``revoked`` from now on. Owner or coordinator."""
    refused = _member(reader)
    if refused is not None:
        return refused
    assert reader.person is not None
    node = node_of(request)
    try:
        feed = _book(request).revoke(
            feed_id,
            by=reader.person,
            coordinator=reader.role in ("root", "node", "coordinator"),
            now_ms=node.ingest.now_ms(),
        )
    except FeedError as exc:
        return problem(exc.status, exc.reason, exc.message)
    return _out(feed)


#: The handlers ``node.api.build_app`` mounts.
CALENDAR_ROUTES = [public_calendar, private_calendar, create_feed, list_feeds, revoke_feed]
