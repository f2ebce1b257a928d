"""Private calendar feeds: revocable capabilities a member puts in a calendar app's URL.

A calendar app cannot sign tokens, so a member's private feed is reached through a random
capability in its URL (``/v1/calendar/<capability>.ics``) — never through a signing key or a
token. The capability is 32 random bytes (base64url); only its SHA-256 is kept, in
``<dir>/calendar_feeds.json`` (replaced atomically), so a copy of the data directory does not
hand out working URLs. The file is node-local state: it is not an event, is not replicated and
is not part of the projection hash.

>>> import tempfile, pathlib
>>> book = FeedBook(pathlib.Path(tempfile.mkdtemp()) / "calendar_feeds.json")
>>> feed, capability = book.create("PERSON", now_ms=1)
>>> book.lookup(capability) == feed, book.lookup("nope")
(True, None)
>>> book.revoke(feed.id, by="PERSON", coordinator=False, now_ms=2).revoked_ms
2
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from pathlib import Path

import msgspec

from protocol.codec import b64e
from protocol.reasons import KithError

__all__ = ["CAPABILITY_BYTES", "Feed", "FeedBook", "FeedError"]

#: Random bytes in a capability.
CAPABILITY_BYTES = 32
#: Most feeds one person may hold (live or revoked), so the file stays small.
MAX_FEEDS_PER_PERSON = 20


class FeedError(KithError):
    """A feed request refused: a stable ``reason`` and a ``message`` for a person."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class Feed(msgspec.Struct, frozen=True, kw_only=True):
    """One private feed: whose it is, the capability's hash, and when it was revoked (if)."""

    id: str
    person: str
    digest: str
    created_ms: int
    revoked_ms: int | None = None


class _FeedsFile(msgspec.Struct, kw_only=True):
    feeds: list[Feed] = msgspec.field(default_factory=list)


def _feed_id() -> str:
    """A new feed's id, 12 base64url characters, never starting with ``-`` (a person types it
    after ``kith calendar feed revoke``, where a leading dash would read as an option)."""
    while True:
        feed_id = b64e(secrets.token_bytes(9))
        if not feed_id.startswith("-"):
            return feed_id


def _digest(capability: str) -> str:
    return b64e(hashlib.sha256(capability.encode()).digest())


class FeedBook:
    """The node's private feeds, loaded from and saved to one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._feeds: dict[str, Feed] = {}
        if path.exists():
            loaded = msgspec.json.decode(path.read_bytes(), type=_FeedsFile)
            self._feeds = {feed.id: feed for feed in loaded.feeds}

    def create(self, person: str, *, now_ms: int) -> tuple[Feed, str]:
        """A new feed for ``person``: the stored feed and the capability (shown once only)."""
        mine = [f for f in self._feeds.values() if f.person == person]
        if len(mine) >= MAX_FEEDS_PER_PERSON:
            raise FeedError(
                409, "too-many-feeds", f"at most {MAX_FEEDS_PER_PERSON} feeds per member"
            )
        capability = b64e(secrets.token_bytes(CAPABILITY_BYTES))
        feed = Feed(
            id=_feed_id(),
            person=person,
            digest=_digest(capability),
            created_ms=now_ms,
        )
        self._feeds[feed.id] = feed
        self._save()
        return feed, capability

    def lookup(self, capability: str) -> Feed | None:
        """The feed a capability opens (revoked ones included: the caller says so), or None."""
        digest = _digest(capability)
        return next(
            (f for f in self._feeds.values() if secrets.compare_digest(f.digest, digest)), None
        )

    def revoke(self, feed_id: str, *, by: str, coordinator: bool, now_ms: int) -> Feed:
        """Revoke a feed: its owner or a coordinator may. Revoking twice keeps the first time."""
        feed = self._feeds.get(feed_id)
        if feed is None or (feed.person != by and not coordinator):
            raise FeedError(404, "not-found", "no such calendar feed of yours")
        if feed.revoked_ms is None:
            feed = msgspec.structs.replace(feed, revoked_ms=now_ms)
            self._feeds[feed_id] = feed
            self._save()
        return feed

    def of(self, person: str) -> list[Feed]:
        """A person's feeds, oldest first."""
        return sorted(
            (f for f in self._feeds.values() if f.person == person),
            key=lambda f: (f.created_ms, f.id),
        )

    def _save(self) -> None:
        data = msgspec.json.format(
            msgspec.json.encode(_FeedsFile(feeds=list(self._feeds.values())))
        )
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".feeds.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
