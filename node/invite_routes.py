"""HTTP routes for invites (docs/invites.md): a newcomer redeems a code; coordinators list.

A coordinator (their browser, or ``kith invite create``) makes a random code, signs
``invite.created {code_hash, expires_at, approve}`` with their own key and hands the code over
as a link (``<node>/#join/<code>``: in the fragment, so it never reaches a server log).

``POST /v1/invites/redeem {code, key, box_key, name?}`` — no member's token: the newcomer's
device proves it holds ``key`` with a token signed by ``key`` itself. The node finds the open
invite by the code's hash and then, for ``approve: auto``, signs ``member.added {key, role:
member, box_key, invite}`` with its node key (``{"status": "added"}``); for ``approve:
coordinator`` it keeps a join request in a node-local table (``{"status": "pending"}``) until a
coordinator approves (signs that ``member.added`` themselves) or declines (``invite.revoked``).
Refusals: ``invite:unknown`` (404), ``invite:used``, ``invite:revoked``, ``invite:expired``,
``invite:already-member`` (409), ``invite:too-many`` (429), a token reason (401).

``GET /v1/invites`` — coordinators (and the node and root keys) only: every invite with its
status, and the join requests waiting (key, box key, the name given, when).
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections import deque
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from node.access import Reader
from node.app import Node
from node.clientaddr import client_address
from node.http import Problem, node_of, problem
from node.projections import invites
from node.projections.facts import COORDINATING_ROLES
from node.store.base import EventQuery, StoredEvent
from protocol import kinds
from protocol.reasons import InvalidToken, RejectedEvent
from protocol.tokens import check_token

__all__ = ["INVITE_ROUTES", "REDEEM_LIMIT", "invite_list"]

#: Redemptions one client address may try in ``REDEEM_WINDOW_S`` (a guess at a code needs
#: 2^128 tries; this keeps a script from filling the node's table or log).
REDEEM_LIMIT = 10
REDEEM_WINDOW_S = 60.0
_PAGE = 1000


class RedeemRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A newcomer's device redeems an invite code for its own key and box key."""

    code: Any  # checked by hand: a wrong code is answered in words, never echoed
    key: kinds.Key
    box_key: kinds.Key
    name: kinds.Name | None = None


class Redeemed(msgspec.Struct, frozen=True, kw_only=True):
    """``added``: the node added the key as a member; ``pending``: a coordinator decides."""

    status: Literal["added", "pending"]
    message: str
    invite: str


class InviteItem(msgspec.Struct, frozen=True, kw_only=True):
    """One invite: who made it and when, until when, who approves, and its status now."""

    id: str
    by: str
    at: int
    expires_at: int
    approve: str
    status: invites.InviteStatus
    member: str | None


class RequestItem(msgspec.Struct, frozen=True, kw_only=True):
    """A newcomer waiting for a coordinator: approve by signing ``member.added {key, role:
    member, box_key, invite}``, decline with ``invite.revoked {invite}``."""

    invite: str
    key: str
    box_key: str
    name: str | None
    at: int


class InviteList(msgspec.Struct, frozen=True, kw_only=True):
    """This pod's invites (newest first), the requests waiting, and the roster's scope (where
    an approving ``member.added`` is signed)."""

    pod: str
    roster_scope: str
    invites: list[InviteItem]
    requests: list[RequestItem]


class _Desk:
    """A node's redemption lock (one redemption at a time: an invite is used once) and
    per-address attempt times."""

    def __init__(self, node: Node) -> None:
        self.lock = asyncio.Lock()
        self.attempts: dict[str, deque[float]] = {}
        self.signer = node.erasure.signer  # the node key's one signer: no two posts race

    def allow(self, address: str, now: float) -> bool:
        seen = self.attempts.setdefault(address, deque())
        while seen and seen[0] <= now - REDEEM_WINDOW_S:
            seen.popleft()
        if len(seen) >= REDEEM_LIMIT:
            return False
        seen.append(now)
        if len(self.attempts) > 10_000:  # forget quiet addresses
            for other in [a for a, times in self.attempts.items() if not times]:
                del self.attempts[other]
        return True


_desks: weakref.WeakKeyDictionary[Node, _Desk] = weakref.WeakKeyDictionary()


def _desk(node: Node) -> _Desk:
    desk = _desks.get(node)
    if desk is None:
        desk = _desks[node] = _Desk(node)
    return desk


class _Wire(msgspec.Struct, frozen=True):
    body: str | None


_wire = msgspec.json.Decoder(_Wire)


def _fact(row: StoredEvent) -> invites.InviteFact | None:
    wire = _wire.decode(row.envelope)
    if wire.body is None:
        return None
    try:
        body = kinds.validate_body(row.kind, msgspec.json.decode(wire.body))
    except (RejectedEvent, msgspec.DecodeError):
        return None
    if not isinstance(body, kinds.InviteCreated | kinds.InviteRevoked | kinds.MemberAdded):
        return None
    return invites.InviteFact(row.id, row.author, row.ts, body)


async def _facts(node: Node, query: EventQuery) -> list[invites.InviteFact]:
    found: list[invites.InviteFact] = []
    q = msgspec.structs.replace(query, limit=_PAGE, in_log=True)
    while True:
        page = await node.store.query(q)
        found.extend(f for f in map(_fact, page) if f is not None)
        if len(page) < _PAGE:
            return found
        q = msgspec.structs.replace(q, after=page[-1].cursor)


async def _state(node: Node) -> tuple[list[invites.InviteRow], list[invites.JoinRequest]]:
    """Every invite's status now and the requests still waiting; requests on an invite that
    is decided, expired or gone are deleted here (they hold a name)."""
    pod = (node.pod,)
    created = await _facts(node, EventQuery(kinds=("invite.created",), pods=pod, scopes=("pod",)))
    revoked = await _facts(node, EventQuery(kinds=("invite.revoked",), pods=pod, scopes=("pod",)))
    added = await _facts(node, EventQuery(kinds=("member.added",), pods=pod))
    roster = node.ingest.roster.pods.get(node.pod)

    def admin(key: str, ts: int) -> bool:
        return roster is not None and roster.role_at(key, ts) in COORDINATING_ROLES

    requests = await node.store.read(invites.list_requests)
    rows = invites.derive(
        created,
        revoked,
        added,
        admin=admin,
        now_ms=node.ingest.now_ms(),
        pending=[r.invite for r in requests],
    )
    waiting = {row.id for row in rows if row.status == "pending"}
    stale = [r.invite for r in requests if r.invite not in waiting]
    if stale:
        await node.store.transact(lambda txn: invites.drop_requests(txn.connection, stale))
    return rows, [r for r in requests if r.invite in waiting]


async def invite_list(node: Node) -> InviteList:
    """The coordinators' view of invites."""
    rows, requests = await _state(node)
    return InviteList(
        pod=node.pod,
        roster_scope=node.config.roster_scope,
        invites=[
            InviteItem(
                id=r.id,
                by=r.by,
                at=r.at,
                expires_at=r.expires_at,
                approve=r.approve,
                status=r.status,
                member=r.member,
            )
            for r in rows
        ],
        requests=[
            RequestItem(invite=r.invite, key=r.key, box_key=r.box_key, name=r.name, at=r.at)
            for r in requests
        ],
    )


@get(
    "/v1/invites",
    summary="This pod's invites and the join requests waiting (coordinators)",
    opt={"token": "required"},
)
async def list_invites(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader]
) -> InviteList | Response[Problem]:
    """Each invite (open, pending, used, expired, revoked) and each newcomer waiting."""
    if not reader.is_member:
        return problem(401, "unauthorized", "invites are for the pod's coordinators: send a token")
    if reader.role not in COORDINATING_ROLES:
        return problem(403, "unauthorized", "invites are for the pod's coordinators only")
    return await invite_list(node_of(request))


_REFUSED: dict[str, tuple[int, str]] = {
    "used": (409, "this invite was already used; ask a coordinator for a new one"),
    "pending": (409, "this invite was already used; ask a coordinator for a new one"),
    "revoked": (409, "this invite was withdrawn by a coordinator"),
    "expired": (409, "this invite has expired; ask a coordinator for a new one"),
}


@post(
    "/v1/invites/redeem",
    status_code=200,
    summary="Join the pod with an invite code",
    opt={"token": "required"},
)
async def redeem(
    request: Request[Any, Any, Any], data: JSONBody[RedeemRequest]
) -> Redeemed | Response[Problem]:
    """Redeem ``code`` for ``key`` (with ``Authorization: Kith <token>`` signed by ``key``).

    ``approve: auto`` invites add the key at once; others wait for a coordinator. The same key
    asking again answers as it stands: ``pending`` while it waits, ``added`` once it joined by
    this invite (a waiting page asks now and then).
    """
    node = node_of(request)
    desk = _desk(node)
    address = client_address(request)  # the forwarded client behind a trusted proxy
    if not desk.allow(address, time.monotonic()):
        return problem(429, "invite:too-many", "too many tries from here; wait a minute")
    code = data.code
    if not isinstance(code, str) or not _good_code(code):
        return problem(404, "invite:unknown", "this is not an invite code of this pod")
    try:
        _prove(request, node, data.key)
    except InvalidToken as exc:
        return problem(401, exc.reason, exc.message)
    wanted = invites.code_hash(code)
    async with desk.lock:
        rows, requests = await _state(node)
        row = next((r for r in rows if r.code_hash == wanted), None)
        if row is None:
            return problem(404, "invite:unknown", "this is not an invite code of this pod")
        mine = next((r for r in requests if r.invite == row.id and r.key == data.key), None)
        if mine is not None:
            return Redeemed(status="pending", message=_WAIT, invite=row.id)
        if row.status == "used" and row.member == data.key:  # asked again after joining
            return Redeemed(status="added", message=_WELCOME, invite=row.id)
        if row.status != "open":
            status, message = _REFUSED[row.status]
            reason = "used" if row.status == "pending" else row.status
            return problem(status, f"invite:{reason}", message)
        roster = node.ingest.roster.pods.get(node.pod)
        if roster is not None and roster.person_of(data.key) is not None:
            return problem(409, "invite:already-member", "this device is in the pod already")
        if row.approve == "auto":
            body = {"key": data.key, "role": "member", "box_key": data.box_key, "invite": row.id}
            result = await desk.signer.post(
                node.key, "member.added", body, scope=node.config.roster_scope
            )
            if not result.ok:  # pragma: no cover - the node key may always add a member
                return problem(500, result.reason or "invite:failed", result.message or "")
            return Redeemed(status="added", message=_WELCOME, invite=row.id)
        join = invites.JoinRequest(
            invite=row.id,
            key=data.key,
            box_key=data.box_key,
            name=data.name,
            at=node.ingest.now_ms(),
        )
        await node.store.transact(lambda txn: invites.add_request(txn.connection, join))
        return Redeemed(status="pending", message=_WAIT, invite=row.id)


_WELCOME = "welcome: you are a member now"
_WAIT = "a coordinator will approve you; this page shows the pod once they do"


_CODE = re.compile(r"[A-Za-z0-9_-]{22,128}")


def _good_code(code: str) -> bool:
    return _CODE.fullmatch(code) is not None


def _prove(request: Request[Any, Any, Any], node: Node, key: str) -> None:
    """The request's token must be signed by ``key`` itself, for this node, fresh."""
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme != "Kith" or not token:
        raise InvalidToken(
            "invalid:token:format", "sign a token with the key you join with: Authorization: Kith"
        )
    claims = check_token(
        token.strip(), purpose="http", node_key=node.key.public_b64, now_ms=node.ingest.now_ms()
    )
    if claims.author != key:
        raise InvalidToken("invalid:token:author", "the token must be signed by `key` itself")


#: The handlers ``node.api.build_app`` mounts.
INVITE_ROUTES = [list_invites, redeem]
