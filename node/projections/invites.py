"""Invites (docs/invites.md): each invite's status, a pure function of the stored events.

An invite is an ``invite.created`` signed by a coordinator, the node or the root (by anyone
else it counts for nothing, like a report's resolution). Its status is derived when read, never
stored, so that every node with the same events says the same, and ``expired`` follows the
clock:

* ``used`` — a ``member.added`` names it (``invite``): whoever signed that, the node for an
  ``auto`` invite or a coordinator approving a request;
* ``revoked`` — a coordinator signed ``invite.revoked`` naming it (and it was not used first);
* ``expired`` — its ``expires_at`` has passed;
* ``pending`` — a newcomer redeemed it and waits for a coordinator (the node's own table of
  join requests, ``SCHEMA``: node-local, never an event, deleted when decided or expired);
* ``open`` — none of these.

The code itself is never stored: an invite holds ``code_hash`` = base64url(SHA-256(
``"kith-invite/1\\n" + code``)), and the node learns the code when someone redeems it.

>>> code = "A" * 22
>>> created = InviteFact("I1", "CORA", 1_000, kinds.InviteCreated(
...     code_hash=code_hash(code), expires_at=5_000, approve="auto"))
>>> [r.status for r in derive([created], [], [], admin=lambda key, ts: True, now_ms=2_000)]
['open']
>>> [r.status for r in derive([created], [], [], admin=lambda key, ts: True, now_ms=6_000)]
['expired']
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from protocol import kinds
from protocol.codec import b64e

__all__ = [
    "CODE_PREFIX",
    "SCHEMA",
    "InviteFact",
    "InviteRow",
    "InviteStatus",
    "JoinRequest",
    "add_request",
    "code_hash",
    "derive",
    "drop_requests",
    "list_requests",
    "new_code",
]

#: Domain separation of an invite code's hash.
CODE_PREFIX = b"kith-invite/1\n"
#: 128 random bits: the shortest code a node accepts is 22 base64url characters.
CODE_BYTES = 16

InviteStatus = Literal["open", "pending", "used", "expired", "revoked"]

#: Join requests waiting for a coordinator: node-local, never an event, never federated.
#: ``name`` is personal (what the newcomer typed): the row goes when the invite is decided
#: (used, revoked) or expires (``drop_requests``), and is never logged.
SCHEMA = """
CREATE TABLE IF NOT EXISTS node_join_requests (
    invite TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    box_key TEXT NOT NULL,
    name TEXT,
    at INTEGER NOT NULL
) WITHOUT ROWID;
"""


def code_hash(code: str) -> str:
    """base64url(SHA-256("kith-invite/1\\n" + code)): what an ``invite.created`` carries."""
    return b64e(hashlib.sha256(CODE_PREFIX + code.encode("utf-8")).digest())


def new_code() -> str:
    """A fresh invite code: 128 random bits, base64url."""
    return b64e(os.urandom(CODE_BYTES))


@dataclass(frozen=True)
class InviteFact:
    """One stored invite event (``invite.created`` or ``invite.revoked``) or ``member.added``
    naming an invite: its id, author, ``ts`` and validated body."""

    id: str
    author: str
    ts: int
    body: kinds.InviteCreated | kinds.InviteRevoked | kinds.MemberAdded


@dataclass(frozen=True)
class InviteRow:
    """One invite as a coordinator sees it."""

    id: str
    by: str
    at: int
    code_hash: str
    expires_at: int
    approve: kinds.InviteApproval
    status: InviteStatus
    #: The key that joined by it (``used``), else ``None``.
    member: str | None


@dataclass(frozen=True)
class JoinRequest:
    """A newcomer waiting on a ``coordinator`` invite: their keys, the name they gave, when."""

    invite: str
    key: str
    box_key: str
    name: str | None
    at: int


def derive(
    created: Iterable[InviteFact],
    revoked: Iterable[InviteFact],
    added: Iterable[InviteFact],
    *,
    admin: Callable[[str, int], bool],
    now_ms: int,
    pending: Iterable[str] = (),
) -> list[InviteRow]:
    """Every counted invite with its status, newest first.

    ``admin(key, ts)``: was ``key`` a coordinator, the node or the root at ``ts``; ``pending``:
    the invites a join request waits on. A ``member.added`` counts whoever signed it (the
    roster already admitted it); a revocation counts only when an admin signed it.
    """
    used: dict[str, str] = {}
    for fact in sorted(added, key=lambda f: (f.ts, f.id)):
        if isinstance(fact.body, kinds.MemberAdded) and fact.body.invite is not None:
            used.setdefault(fact.body.invite, fact.body.key)
    gone = {
        fact.body.invite
        for fact in revoked
        if isinstance(fact.body, kinds.InviteRevoked) and admin(fact.author, fact.ts)
    }
    waiting = set(pending)
    rows = []
    for fact in created:
        body = fact.body
        if not isinstance(body, kinds.InviteCreated) or not admin(fact.author, fact.ts):
            continue
        status: InviteStatus
        if fact.id in used:
            status = "used"
        elif fact.id in gone:
            status = "revoked"
        elif now_ms > body.expires_at:
            status = "expired"
        elif fact.id in waiting:
            status = "pending"
        else:
            status = "open"
        rows.append(
            InviteRow(
                id=fact.id,
                by=fact.author,
                at=fact.ts,
                code_hash=body.code_hash,
                expires_at=body.expires_at,
                approve=body.approve,
                status=status,
                member=used.get(fact.id),
            )
        )
    rows.sort(key=lambda r: (-r.at, r.id))
    return rows


# --- the node's join requests -------------------------------------------------------------


def add_request(conn: sqlite3.Connection, request: JoinRequest) -> bool:
    """Keep a join request; ``False`` if one already waits on that invite."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO node_join_requests (invite, key, box_key, name, at)"
        " VALUES (?, ?, ?, ?, ?)",
        (request.invite, request.key, request.box_key, request.name, request.at),
    )
    return cur.rowcount == 1


def list_requests(conn: sqlite3.Connection) -> list[JoinRequest]:
    """Every waiting join request, oldest first."""
    rows = conn.execute(
        "SELECT invite, key, box_key, name, at FROM node_join_requests ORDER BY at, invite"
    )
    return [JoinRequest(*row) for row in rows]


def drop_requests(conn: sqlite3.Connection, invites: Iterable[str]) -> int:
    """Delete the requests on these invites (decided or expired); how many went."""
    gone = 0
    for invite in invites:
        gone += conn.execute("DELETE FROM node_join_requests WHERE invite = ?", (invite,)).rowcount
    return gone
