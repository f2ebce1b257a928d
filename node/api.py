"""HTTP API (DESIGN §6, settled routes). Thin handlers over the ``Node``.

Event pages are assembled from stored envelope bytes (no re-encoding per event); every
returned event passes ``may_read``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar, MediaType, Request, Response, WebSocket, get, post, websocket
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.types import Message, Scope

from node import projections
from node.access import (
    EventFacts,
    Reader,
    ReportParties,
    may_read,
    needs_about,
    readable_scopes,
    visible,
)
from node.app import VERSION, Node
from node.board_routes import BOARD_ROUTES, SchemaPage
from node.calendar_routes import CALENDAR_ROUTES
from node.clientaddr import ForwardedClients
from node.erasure_routes import ERASURE_ROUTES
from node.federation import LitestarChannel
from node.gathering_routes import GATHERING_ROUTES
from node.http import (
    EXCEPTION_HANDLERS,
    HTTPProblem,
    Problem,
    may_see_need,
    may_see_offer,
    need_for_reader,
    node_of,
    problem,
)
from node.ingest import Result
from node.invite_routes import INVITE_ROUTES
from node.matching_routes import MATCHING_ROUTES
from node.metrics import MEDIA_TYPE
from node.moderation_routes import MODERATION_ROUTES
from node.openapi import KithSchema
from node.overflow import coordinator_box_keys
from node.overflow_routes import OVERFLOW_ROUTES, InterPod, inter_pod
from node.proposal_routes import PROPOSAL_ROUTES
from node.store.base import EventQuery, Placement, StoredEvent, WireEvent
from node.streams import stream_handler
from protocol.envelope import Envelope
from protocol.logs import LogKey
from protocol.reasons import InvalidToken, KithError
from protocol.validate import CLIENT

MAX_PAGE = 10_000
_json = msgspec.json.Encoder()


class EventOut(msgspec.Struct, frozen=True):
    """One stored event: id, local commit cursor, and the envelope exactly as signed."""

    id: str
    cursor: int
    envelope: Envelope


class EventsPage(msgspec.Struct, frozen=True):
    """A page of events; pass ``next`` as ``after`` to get the following page."""

    events: list[EventOut]
    next: int | None


class PostResults(msgspec.Struct, frozen=True):
    """One result per posted event, in order."""

    results: list[Result]


class LogHead(msgspec.Struct, frozen=True):
    """The head of one log: what a client needs to sign its next event."""

    pod: str
    author: str
    scope: str
    seq: int
    id: str | None
    ts: int | None


class Health(msgspec.Struct, frozen=True):
    """Liveness."""

    ok: bool
    version: str


_problem = problem
_node = node_of


async def _reader(request: Request[Any, Any, Any]) -> Reader:
    header = request.headers.get("authorization")
    node = _node(request)
    if not header:
        return node.anonymous()
    scheme, _, token = header.partition(" ")
    if scheme != "Kith" or not token:
        raise HTTPProblem(
            401,
            "invalid:token:format",
            "the Authorization header is not a Kith token: send 'Authorization: Kith <token>'",
        )
    try:
        return node.reader_for_token(token.strip())
    except InvalidToken as exc:
        raise HTTPProblem(401, exc.reason, exc.message) from None


def _split(values: list[str] | None) -> tuple[str, ...]:
    if not values:
        return ()
    return tuple(part for value in values for part in value.split(",") if part)


def _raw_json(body: bytes) -> Any:
    """A JSON response from bytes already encoded (the handler's annotation documents the shape)."""
    return Response(content=body, media_type=MediaType.JSON)


def _page(events: list[WireEvent], next_cursor: int | None) -> Response[EventsPage]:
    # The wire objects come ready-made from the store: no per-event decode or encode.
    body = (
        b'{"events":['
        + b",".join(e.wire for e in events)
        + b'],"next":'
        + (str(next_cursor).encode() if next_cursor is not None else b"null")
        + b"}"
    )
    return _raw_json(body)  # type: ignore[no-any-return]


def _facts(e: StoredEvent, about: ReportParties | None = None) -> EventFacts:
    return EventFacts(e.pod, e.author, e.scope, e.kind, about)


@post("/v1/events", status_code=200, summary='Post one envelope or {"events": [...]}')
async def post_events(request: Request[Any, Any, Any]) -> PostResults:
    """Validate and store events. Every event gets ``{"id", "ok", "reason"}`` in order.

    The body is read raw (its schema is added by ``node.openapi``): each envelope reaches the
    verifier as the bytes that were signed.
    """
    node = _node(request)
    data = await request.body()
    try:
        top = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
    except msgspec.DecodeError:
        raise HTTPProblem(400, "invalid:request", "the request body is not a JSON object") from None
    if "events" in top:
        try:
            raws = msgspec.json.decode(top["events"], type=list[msgspec.Raw])
        except msgspec.DecodeError:
            raise HTTPProblem(
                400, "invalid:request", "events must be a list of envelopes"
            ) from None
        if len(raws) > node.config.max_batch:
            raise HTTPProblem(
                413, "too-large", f"at most {node.config.max_batch} events per request"
            )
        items: list[bytes] = [bytes(raw) for raw in raws]
    else:
        items = [data]
    results = await node.ingest.submit(items, CLIENT)
    return PostResults(results)


@get("/v1/events", summary="Query events")
async def get_events(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    ids: FromQuery[list[str] | None] = None,
    authors: FromQuery[list[str] | None] = None,
    kinds: FromQuery[list[str] | None] = None,
    scopes: FromQuery[list[str] | None] = None,
    pods: FromQuery[list[str] | None] = None,
    since: FromQuery[int | None] = None,
    until: FromQuery[int | None] = None,
    after: Annotated[
        int | None, QueryParameter(description="cursor: events committed after it")
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 500,
) -> Response[EventsPage]:
    """Events matching the filters (fields AND, comma-separated values OR), in commit order."""
    node = _node(request)
    allowed = readable_scopes(reader)
    wanted = _split(scopes)
    scope_filter = tuple(s for s in wanted if s in allowed) if wanted else allowed
    if not scope_filter:
        return _page([], None)
    query = EventQuery(
        ids=_split(ids),
        authors=_split(authors),
        kinds=_split(kinds),
        scopes=scope_filter,
        pods=_split(pods),
        since=since,
        until=until,
        after=after,
        limit=limit,
        in_log=True,
    )
    rows = await node.store.query_wire(query)
    next_cursor = rows[-1].cursor if len(rows) == limit else None
    about = await node.report_about(needs_about(reader, rows))
    return _page(visible(reader, rows, about), next_cursor)


@get("/v1/events/{event_id:str}", summary="One event by id")
async def get_event(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], event_id: FromPath[str]
) -> Response[EventOut] | Response[Problem]:
    """One event, if it exists and the reader may see it (404 otherwise, to reveal nothing)."""
    node = _node(request)
    stored = await node.store.get(event_id)
    if stored is None or stored.placement is Placement.UNPROJECTED:
        return _problem(404, "not-found", "no such event")
    about = await node.report_about(needs_about(reader, [stored]))
    if not may_read(reader, _facts(stored, about.get(stored.cursor))):
        return _problem(404, "not-found", "no such event")
    body = b'{"id":"' + stored.id.encode() + b'","cursor":' + str(stored.cursor).encode()
    body += b',"envelope":' + stored.envelope + b"}"
    return _raw_json(body)  # type: ignore[no-any-return]


@get("/v1/logs/{pod:str}/{author:str}/{log_scope:str}", summary="The head of one log")
async def get_log(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    pod: FromPath[str],
    author: FromPath[str],
    log_scope: FromPath[str],
) -> LogHead | Response[Problem]:
    """The log's last seq and id (seq 0 and id null when empty): sign the next at seq+1."""
    if log_scope not in ("pod", "peers", "public"):
        return _problem(400, "invalid:scope", "scope is pod, peers or public")
    if not may_read(reader, EventFacts(pod, author, log_scope, "log.head")):
        return _problem(
            401, "unauthorized", "this log is readable by pod members only (send a token)"
        )
    node = _node(request)
    state = node.ingest.heads.get(LogKey(pod, author, log_scope))
    if state is None:
        return LogHead(pod, author, log_scope, 0, None, None)
    return LogHead(pod, author, log_scope, state.seq, state.id, state.ts)


def _visible_scopes(reader: Reader) -> tuple[str, ...]:
    return readable_scopes(reader)


@get("/v1/needs", summary="Needs (read model)")
async def get_needs(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    status: FromQuery[
        Literal["open", "claimed", "fulfilled", "withdrawn", "expired"] | None
    ] = None,
    category: FromQuery[str | None] = None,
    urgency: FromQuery[str | None] = None,
    pod: Annotated[
        list[str] | None, QueryParameter(description="only these pods (repeat or comma-separate)")
    ] = None,
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> list[projections.NeedView]:
    """Needs with their claims and status; ``expired`` is computed now.

    This pod's needs and the ``public`` needs of other pods that reached this node (each
    carries its ``pod``); ``pod=`` keeps those of the pods named.
    """
    node = _node(request)
    now = node.ingest.now_ms()
    scopes = _visible_scopes(reader)

    def read(conn: Any) -> list[projections.NeedView]:
        return projections.list_needs(
            conn,
            now_ms=now,
            status=status,
            category=category,
            urgency=urgency,
            pods=_split(pod),
            home=node.pod,
            limit=limit,
            after=after,
            scopes=scopes,
        )

    views = await node.store.read(read)
    return [need_for_reader(view, reader) for view in views if may_see_need(reader, view)]


@get("/v1/needs/{need_id:str}", summary="One need")
async def get_need(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], need_id: FromPath[str]
) -> projections.NeedView | Response[Problem]:
    """One need with its claims and fulfilment."""
    node = _node(request)
    now = node.ingest.now_ms()
    view = await node.store.read(lambda conn: projections.get_need(conn, need_id, now_ms=now))
    if view is None or not may_see_need(reader, view):
        return _problem(404, "not-found", "no such need")
    return need_for_reader(view, reader)


@get("/v1/offers", summary="Offers (read model)")
async def get_offers(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    category: FromQuery[str | None] = None,
    include_withdrawn: FromQuery[bool] = False,
    pod: Annotated[
        list[str] | None, QueryParameter(description="only these pods (repeat or comma-separate)")
    ] = None,
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> list[projections.OfferView]:
    """Offers of help; withdrawn ones only on request.

    This pod's offers and the ``public`` offers of other pods that reached this node (each
    carries its ``pod``); ``pod=`` keeps those of the pods named.
    """
    node = _node(request)
    now = node.ingest.now_ms()
    scopes = _visible_scopes(reader)
    offers = await node.store.read(
        lambda conn: projections.list_offers(
            conn,
            now_ms=now,
            category=category,
            pods=_split(pod),
            home=node.pod,
            include_withdrawn=include_withdrawn,
            limit=limit,
            after=after,
            scopes=scopes,
        )
    )
    return [offer for offer in offers if may_see_offer(reader, offer)]


class TimebankOut(projections.TimebankView, frozen=True, kw_only=True):
    """The pod's own time bank (zero-sum inside the pod) and its accounts with other pods."""

    pods: InterPod


@get("/v1/timebank", summary="Time bank balances (members only)", opt={"token": "required"})
async def get_timebank(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader]
) -> TimebankOut | Response[Problem]:
    """Balances per person (zero-sum), pending entries, and inter-pod balances with their
    trust lines and nettable cycles. Needs a member's token."""
    if not reader.is_member:
        return _problem(
            401, "unauthorized", "the time bank is readable by pod members only (send a token)"
        )
    node = _node(request)
    bank = await node.store.read(
        lambda conn: projections.timebank(
            conn, pod=node.pod, limit_minutes=node.config.timebank_limit_minutes
        )
    )
    return TimebankOut(**msgspec.structs.asdict(bank), pods=await inter_pod(request))


class PodKeys(msgspec.Struct, frozen=True, kw_only=True):
    """The box keys a client seals to, as this node's copy of a pod's public roster says.

    ``coordinators``: the active coordinators' box keys (the pod's personal fields and a
    referral's details are sealed to these); ``members``: every active member's primary key and
    box key (to re-seal to an accepted helper). Keys and roles only, like the roster itself.
    """

    pod: str
    coordinators: list[str]
    members: dict[str, str]


@get("/v1/pods/{pod:str}/keys", summary="A pod's box keys, for sealing")
async def get_pod_keys(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], pod: FromPath[str]
) -> PodKeys | Response[Problem]:
    """Public when the pod's roster is (its roster events are public too); for the pod's
    members only when the pod keeps its roster among its direct peers (D43)."""
    node = _node(request)
    roster = node.ingest.roster.pods.get(pod)
    if roster is None or not roster.created:
        return _problem(404, "not-found", "this node knows no such pod")
    private = (pod == node.pod and node.config.roster_scope == "peers") or any(
        e.head.scope == "peers" for e in roster.events.values()
    )
    if private and not (reader.is_member or reader.peer_pod is not None):
        return _problem(
            401,
            "unauthorized",
            "this pod keeps its roster among its direct peers: send a member's token",
        )
    members = {key: m.box_key for key, m in sorted(roster.members.items()) if roster.is_active(key)}
    coordinators = coordinator_box_keys(node.ingest.roster, pod)
    return PodKeys(pod=pod, coordinators=coordinators, members=members)


@get("/.well-known/kith", summary="Node information")
async def well_known(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Pod id, node key, version, limits, kinds and the projection hash."""
    return await _node(request).info()


@get("/healthz", summary="Liveness")
async def healthz() -> Health:
    """200 while the node runs."""
    return Health(ok=True, version=VERSION)


@get("/metrics", media_type=MEDIA_TYPE, summary="Prometheus metrics")
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The node's metrics in the Prometheus text format (``node/metrics.py`` lists them)."""
    node = _node(request)
    node.metrics.cursor.set(await node.store.last_cursor())
    return Response(node.metrics.render(), media_type=MEDIA_TYPE)


class SyncRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A one-shot catch-up with a peer node (``kith sync``)."""

    url: str
    pod: str | None = None
    insecure: bool = False


@post(
    "/v1/federation/sync",
    status_code=200,
    summary="One-shot catch-up with a peer (node key)",
    opt={"token": "required"},
)
async def federation_sync(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], data: JSONBody[SyncRequest]
) -> Stream:
    """Dial ``url``, catch up both ways, close; progress as NDJSON lines, then a summary.

    Only the node's own key (or the pod root) may ask: the operator's ``kith sync``.
    """
    node = _node(request)
    if reader.role not in ("node", "root"):
        raise HTTPProblem(403, "unauthorized", "only the node's key may sync")
    try:
        entry = node.federation.resolve_peer(data.url, data.pod, insecure=data.insecure)
    except KithError as exc:
        raise HTTPProblem(400, getattr(exc, "reason", "invalid:request"), str(exc)) from None
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()

    def progress(direction: str, events: int, cursor: int) -> None:
        lines.put_nowait(_json.encode({"direction": direction, "events": events}) + b"\n")

    async def run() -> None:
        try:
            summary = await node.federation.sync_once(entry, progress)
            lines.put_nowait(_json.encode({"done": True, **dataclasses.asdict(summary)}) + b"\n")
        except KithError as exc:
            lines.put_nowait(_json.encode({"done": False, "error": str(exc)}) + b"\n")
        except Exception as exc:  # unreachable peer, handshake refused by it
            message = f"sync with {entry.url} failed: {type(exc).__name__}: {exc}"[:300]
            lines.put_nowait(_json.encode({"done": False, "error": message}) + b"\n")
        finally:
            lines.put_nowait(None)

    task = asyncio.create_task(run())

    async def body() -> AsyncIterator[bytes]:
        try:
            while (line := await lines.get()) is not None:
                yield line
        finally:
            if not task.done():
                task.cancel()

    return Stream(body(), media_type="application/x-ndjson")


@websocket("/v1/federation")
async def federation_handler(socket: WebSocket[Any, Any, Any]) -> None:
    """Peer nodes (frames in ``docs/federation.md``): mutual authentication, then sync."""
    node: Node = socket.app.state.node
    await socket.accept()
    await node.federation.accept(LitestarChannel(socket))


def build_app(node: Node, *, extra_handlers: list[Any] | None = None) -> Litestar:
    """The Litestar application for ``node``."""

    async def startup() -> None:
        await node.start()
        # Only a serving node signs overflow duties: an offline import or rebuild never does.
        node.overflow.start()
        await node.federation.start()
        node.erasure.start()  # after the allowlist is loaded: receipts go to direct peers only

    async def shutdown() -> None:
        await node.federation.stop()
        await node.stop()

    async def count_request(message: Message, scope: Scope) -> None:
        # Every HTTP answer, a routing 404 too, by its route's template — never the raw path,
        # which may hold an event id or a pod id.
        if message["type"] == "http.response.start":
            route: str | None = scope.get("path_template")  # set once a route matched
            node.metrics.observe(str(scope.get("method")), route, message["status"])

    app = Litestar(
        route_handlers=[
            post_events,
            get_events,
            get_event,
            get_log,
            get_needs,
            get_need,
            get_offers,
            get_timebank,
            get_pod_keys,
            well_known,
            healthz,
            metrics,
            stream_handler,
            federation_handler,
            federation_sync,
            *OVERFLOW_ROUTES,
            *PROPOSAL_ROUTES,
            *MODERATION_ROUTES,
            *GATHERING_ROUTES,
            *CALENDAR_ROUTES,
            *MATCHING_ROUTES,
            *ERASURE_ROUTES,
            *INVITE_ROUTES,
            *BOARD_ROUTES,
            *(extra_handlers or []),
        ],
        dependencies={"reader": Provide(_reader)},
        exception_handlers=EXCEPTION_HANDLERS,
        # Behind a trusted reverse proxy, the client is the forwarded one (node/clientaddr.py).
        middleware=[ForwardedClients.factory(node.trusted_proxies)],
        on_startup=[startup],
        on_shutdown=[shutdown],
        before_send=[count_request],
        # A scriptless page at /schema and /schema/openapi.json: no UI loaded from a CDN (D44).
        openapi_config=OpenAPIConfig(
            title="Kith node",
            version=VERSION,
            path="/schema",
            render_plugins=[SchemaPage(), KithSchema(max_batch=node.config.max_batch)],
        ),
        request_max_body_size=node.config.max_request_bytes,
        debug=False,
    )
    app.state.node = node
    return app
