"""HTTP routes for overflow between pods (docs/overflow.md): list, show, refer, offer, assign,
return. Thin handlers over ``node.overflow.Duties`` and the referral read model.

Reading needs a member's token (referrals are ``peers`` scope); every move needs a coordinator's
(or the node's) token, and the node signs the move with its node key after the projection's own
guards — so a refused move gets the same stable reason a move without effect would show.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from node import projections
from node.access import Reader
from node.http import Problem, node_of, problem
from node.overflow import DEFAULT_HOPS, OverflowError, coordinator_box_keys
from node.projections.clearing import NettableCycle, PeerBalance, nettable_cycles, peer_balances
from node.projections.overflow import ReferralView, ShownState, shown_state
from protocol.kinds import MAX_HOPS, EventId, Key, Note, Reason
from protocol.sealed import SealedField

__all__ = ["OVERFLOW_ROUTES", "inter_pod"]

_ADMIN = ("root", "node", "coordinator")


class OverflowItem(msgspec.Struct, frozen=True, kw_only=True):
    """One referral as this pod sees it.

    ``direction``: ``outgoing`` (this pod referred it) or ``incoming`` (a neighbour did).
    ``state`` is the state now (``lapsed`` past ``expires_at`` while unassigned).
    ``local_need``: the need it stands for here (the original need on the origin; on the pod it
    was assigned to, the need it became). ``flag`` warns coordinators, e.g. of a peer beyond its
    trust line; it never blocks anything. ``box_keys``: for the origin's coordinators, each
    offering pod's coordinators' box keys — the only keys the details may be sealed to.
    """

    direction: Literal["outgoing", "incoming"]
    state: ShownState
    local_need: str | None
    flag: str | None
    box_keys: dict[str, list[str]]
    referral: ReferralView


class OverflowList(msgspec.Struct, frozen=True, kw_only=True):
    """Referrals this pod made and referrals neighbours made to it, newest first."""

    pod: str
    outgoing: list[OverflowItem]
    incoming: list[OverflowItem]


class ReferRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Refer one of this pod's open needs: the node builds the redacted summary from it."""

    need: EventId
    hops_left: Annotated[int, msgspec.Meta(ge=0, le=MAX_HOPS)] = DEFAULT_HOPS
    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 30)] = 72


class OfferRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """This pod can take the referral."""

    note: Note | None = None


class AssignRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Give the referral to ``to_pod``; ``details`` sealed by the client to that pod's
    coordinators' box keys (see ``box_keys`` in the listing)."""

    to_pod: Key
    details: SealedField | None = None


class ReturnRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """This pod cannot meet the need after all: hand it back to the origin."""

    reason: Reason | None = None


class MoveResult(msgspec.Struct, frozen=True, kw_only=True):
    """The signed event's id and the referral as it stands now."""

    id: str
    ok: bool
    referral: OverflowItem | None


class InterPod(msgspec.Struct, frozen=True, kw_only=True):
    """This pod's accounts with neighbour pods and the debt cycles that could be netted."""

    peers: list[PeerBalance]
    nettable: list[NettableCycle]


def _member(reader: Reader) -> Response[Problem] | None:
    if not reader.is_member:
        return problem(
            401, "unauthorized", "referrals are readable by pod members only (send a token)"
        )
    return None


def _coordinator(reader: Reader) -> Response[Problem] | None:
    if reader.role not in _ADMIN:
        return problem(
            403, "unauthorized", "only the pod's coordinators move referrals (use their key)"
        )
    return None


def _limits(request: Request[Any, Any, Any]) -> tuple[dict[str, int], int]:
    node = node_of(request)
    limits = {
        entry.pod: entry.credit_limit_minutes
        for entry in node.federation.peers
        if entry.credit_limit_minutes is not None
    }
    return limits, node.config.peer_credit_limit_minutes


async def inter_pod(request: Request[Any, Any, Any]) -> InterPod:
    """The inter-pod section of ``GET /v1/timebank``."""
    node = node_of(request)
    totals = await node.store.read(projections.clearing_totals)
    limits, default = _limits(request)
    return InterPod(
        peers=peer_balances(node.pod, totals, limits, default), nettable=nettable_cycles(totals)
    )


async def _items(
    request: Request[Any, Any, Any], reader: Reader, views: list[ReferralView]
) -> list[OverflowItem]:
    node = node_of(request)
    now = node.ingest.now_ms()
    pod = node.pod
    balances = {b.peer_pod: b for b in (await inter_pod(request)).peers}
    limits, default_limit = _limits(request)

    def local_needs(conn: Any) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for view in views:
            if view.pod == pod:
                out[view.id] = view.need
            else:
                ids = projections.needs_for_referral(conn, pod, view.id)
                out[view.id] = min(ids) if ids else None
        return out

    needs = await node.store.read(local_needs)
    items = []
    for view in views:
        outgoing = view.pod == pod
        flag = None
        balance = balances.get(view.pod)
        assigned_here = view.assignment is not None and view.assignment.to_pod == pod
        if assigned_here and view.state == "assigned":
            owed = 0 if balance is None else balance.balance_minutes
            limit = limits.get(view.pod, default_limit)
            if owed + (view.minutes_estimate or 0) > limit:
                flag = (
                    f"the referring pod already owes this pod {owed} minutes; taking this one"
                    f" goes past the trust line of {limit} minutes (a flag, not a refusal)"
                )
        box_keys: dict[str, list[str]] = {}
        if outgoing and reader.role in _ADMIN:
            for offer in view.offers:
                box_keys[offer.pod] = coordinator_box_keys(node.ingest.roster, offer.pod)
        items.append(
            OverflowItem(
                direction="outgoing" if outgoing else "incoming",
                state=shown_state(view, now),
                local_need=needs.get(view.id),
                flag=flag,
                box_keys=box_keys,
                referral=view,
            )
        )
    return items


@get("/v1/overflow", summary="Referrals between pods (members only)")
async def list_overflow(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    referral_state: Annotated[ShownState | None, QueryParameter(name="state")] = None,
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> OverflowList | Response[Problem]:
    """Outgoing and incoming referrals with their state, peer pods and timestamps.

    A referral that passed through this pod already (``path``) is not incoming here.
    """
    refused = _member(reader)
    if refused is not None:
        return refused
    node = node_of(request)
    views = await node.store.read(
        lambda conn: projections.list_referrals(conn, limit=limit, after=after)
    )
    pod = node.pod
    mine = [v for v in views if v.pod == pod or pod not in v.path]
    items = await _items(request, reader, mine)
    if referral_state is not None:
        items = [i for i in items if i.state == referral_state]
    return OverflowList(
        pod=pod,
        outgoing=[i for i in items if i.direction == "outgoing"],
        incoming=[i for i in items if i.direction == "incoming"],
    )


@get("/v1/overflow/{referral_id:str}", summary="One referral (members only)")
async def get_overflow(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], referral_id: FromPath[str]
) -> OverflowItem | Response[Problem]:
    """One referral, with the events about it that had no effect and why (``ignored``)."""
    refused = _member(reader)
    if refused is not None:
        return refused
    node = node_of(request)
    view = await node.store.read(lambda conn: projections.get_referral(conn, referral_id))
    if view is None:
        return problem(404, "not-found", "no such referral here")
    return (await _items(request, reader, [view]))[0]


async def _answer(
    request: Request[Any, Any, Any], reader: Reader, event_id: str | None, referral_id: str
) -> MoveResult:
    node = node_of(request)
    view = await node.store.read(lambda conn: projections.get_referral(conn, referral_id))
    item = None if view is None else (await _items(request, reader, [view]))[0]
    return MoveResult(id=event_id or "", ok=True, referral=item)


def _refused(request: Request[Any, Any, Any], exc: OverflowError) -> Response[Problem]:
    """Answer a refused move, counted by its reason (``kith_overflow_refused_total``)."""
    node_of(request).overflow.count_refusal(exc.reason)
    return problem(exc.status, exc.reason, exc.message)


@post("/v1/overflow/refer", status_code=200, summary="Refer an open need to neighbour pods")
async def refer(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], data: JSONBody[ReferRequest]
) -> MoveResult | Response[Problem]:
    """Build the redacted summary from the need and sign ``overflow.referred`` (coordinators)."""
    refused = _coordinator(reader)
    if refused is not None:
        return refused
    node = node_of(request)
    try:
        result = await node.overflow.refer(
            data.need,
            hops_left=data.hops_left,
            expires_in_ms=data.expires_in_hours * 3600 * 1000,
        )
    except OverflowError as exc:
        return _refused(request, exc)
    assert result.id is not None
    return await _answer(request, reader, result.id, result.id)


async def _move(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    referral_id: str,
    kind: str,
    **fields: Any,
) -> MoveResult | Response[Problem]:
    refused = _coordinator(reader)
    if refused is not None:
        return refused
    node = node_of(request)
    try:
        result = await node.overflow.move(referral_id, kind, **fields)
    except OverflowError as exc:
        return _refused(request, exc)
    return await _answer(request, reader, result.id, referral_id)


@post("/v1/overflow/{referral_id:str}/offer", status_code=200, summary="Offer to take a referral")
async def offer(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    referral_id: FromPath[str],
    data: JSONBody[OfferRequest],
) -> MoveResult | Response[Problem]:
    """A neighbour's coordinator: this pod can take it (``overflow.offered``)."""
    return await _move(request, reader, referral_id, "overflow.offered", note=data.note)


@post("/v1/overflow/{referral_id:str}/assign", status_code=200, summary="Assign a referral")
async def assign(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    referral_id: FromPath[str],
    data: JSONBody[AssignRequest],
) -> MoveResult | Response[Problem]:
    """The origin pod's coordinator gives it to one pod, with details sealed to that pod."""
    return await _move(
        request,
        reader,
        referral_id,
        "overflow.assigned",
        to_pod=data.to_pod,
        details=data.details,
    )


@post("/v1/overflow/{referral_id:str}/return", status_code=200, summary="Return a referral")
async def return_(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    referral_id: FromPath[str],
    data: JSONBody[ReturnRequest],
) -> MoveResult | Response[Problem]:
    """The assigned pod's coordinator hands it back (``overflow.returned``)."""
    return await _move(request, reader, referral_id, "overflow.returned", note=data.reason)


#: The handlers ``node.api.build_app`` mounts.
OVERFLOW_ROUTES = [list_overflow, get_overflow, refer, offer, assign, return_]
