"""``/v1/stream``: clients subscribe to events over a websocket (see ``docs/streams.md``).

One connection = one receive loop (frames in), one sender task (frames out, from a bounded
outbox), and any number of subscriptions routed by the node's ``Fanout``. A SUB is first
registered with the fanout (live events wait in its pending list), then its backfill is read
from the store in cursor order, then the pending events past the backfill are queued and
``LIVE`` is sent: no gap and no duplicate at the boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from websockets.protocol import State

from node.access import EventFacts as AccessFacts
from node.access import Reader, may_read, needs_about, readable_scopes
from node.clientaddr import client_address
from node.context import NodeContext, StreamLimits
from node.fanout import Outbox, Subscription, SubState, parse_body
from node.store.base import EventQuery, StoredEvent
from protocol.codec import b64e
from protocol.frames import (
    Auth,
    EventFacts,
    Filter,
    Publish,
    Sub,
    Unsub,
    challenge_frame,
    closed_frame,
    decode_client_frame,
    event_frame,
    live_frame,
    matches,
    notice_frame,
    ok_frame,
    sub_id_of,
    websocket_frame,
    websocket_payload,
)
from protocol.reasons import InvalidToken, RejectedEvent
from protocol.validate import CLIENT

log = logging.getLogger("kith.streams")
_OPEN = State.OPEN  # KithWebSocketProtocol.state speaks websockets' State
#: Scope extension under which KithWebSocketProtocol exposes the connection.
DIRECT_EXTENSION = "kith.direct-websocket"


def to_query(
    f: Filter, reader: Reader, *, after: int | None, limit: int, descending: bool = False
) -> EventQuery | None:
    """The store query for a filter, narrowed to what the reader may see at all.

    None when the filter asks only for scopes the reader may not read (nothing can match).
    """
    allowed = readable_scopes(reader)
    scopes = tuple(s for s in f.scopes if s in allowed) if f.scopes else allowed
    if not scopes:
        return None
    return EventQuery(
        ids=f.ids,
        authors=f.authors,
        kinds=f.kinds,
        scopes=scopes,
        pods=f.pods,
        since=f.since,
        until=f.until,
        after=after,
        limit=limit,
        descending=descending,
        in_log=True,
    )


def direct_websocket_protocol() -> type[Any]:
    """uvicorn's sans-I/O websockets protocol, handing itself to ``/v1/stream`` through the
    ASGI scope.

    Fanout then writes frames straight onto the connection's transport (what
    ``websockets.broadcast`` does) instead of one ASGI ``send`` per frame per subscriber. The
    protocol's own ``ServerProtocol`` (``conn``) keeps no record of the data frames a server
    sends (they are not masked), so writing beside it is safe; what ``DirectOutbox`` needs is
    only ``state``, ``open``, ``transport`` and ``handshake_completed_event``, given here.
    Built on demand, so that only ``kith serve`` imports uvicorn.
    """
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class KithWebSocketProtocol(WebSocketsSansIOProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.handshake_completed_event = asyncio.Event()

        @property
        def state(self) -> State:
            """The connection's state as fanout sees it: CLOSING from our close frame on
            (nothing may follow it), CLOSED once the transport is lost."""
            if self.disconnected:
                return State.CLOSED
            if self.close_sent or self.transport.is_closing():
                return State.CLOSING
            return self.conn.state

        @property
        def open(self) -> bool:
            """Frames may still be written."""
            return self.state is _OPEN

        async def run_asgi(self) -> None:
            extensions: dict[str, Any] = self.scope["extensions"]
            extensions[DIRECT_EXTENSION] = self
            await super().run_asgi()

        async def send(self, message: Any) -> None:
            await super().send(message)
            if self.handshake_complete:  # the 101 (or a refusal) is on the wire
                self.handshake_completed_event.set()

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            self.handshake_completed_event.set()  # nothing waits for a handshake that never comes

    return KithWebSocketProtocol


class DirectOutbox(Outbox):
    """Frames written straight onto the connection's transport; its write buffer is the queue.

    The frames come ready-made (``websocket_frame``: the same bytes for every connection), so
    a write is one ``transport.write`` — no per-connection framing, what made fanout slow.
    Only while the websocket is OPEN: once uvicorn's protocol has begun the closing
    handshake nothing may follow its close frame, and the receive loop ends the connection.
    A byte buffer cannot count frames, so the bound is bytes: the smaller of ``max_bytes`` and
    ``max_frames`` KiB. No sender task is needed.
    """

    def __init__(self, proto: Any, *, max_frames: int, max_bytes: int) -> None:
        super().__init__(max_frames=max_frames, max_bytes=min(max_bytes, max_frames * 1024))
        self._proto = proto
        self._gathered: list[bytes] = []
        self._gathered_bytes = 0

    async def handshake_done(self) -> None:
        """Wait until the 101 response is on the wire."""
        await self._proto.handshake_completed_event.wait()

    def _buffered(self) -> int:
        transport = self._proto.transport
        return int(transport.get_write_buffer_size()) if transport is not None else 0

    @property
    def pending_bytes(self) -> int:
        return self._buffered()

    def flush(self) -> None:
        self.gathering = False
        if self._gathered:
            data = b"".join(self._gathered)
            self._gathered = []
            self._gathered_bytes = 0
            self._write(data)

    def offer(self, frame: bytes) -> bool:
        proto = self._proto
        if proto.state is not _OPEN:
            return True  # closing: dropped with the connection, whose client resumes
        transport = proto.transport
        if self.gathering:
            size = self._gathered_bytes + len(frame)
            if transport.get_write_buffer_size() + size > self.max_bytes:
                return False
            self._gathered.append(frame)
            self._gathered_bytes = size
            return True
        if transport.get_write_buffer_size() + len(frame) > self.max_bytes:
            return False
        transport.write(frame)
        return True

    def force(self, frame: bytes) -> None:
        if self.gathering:  # after the frames gathered before it, as a CLOSED must be
            self._gathered.append(frame)
            self._gathered_bytes += len(frame)
        else:
            self._write(frame)

    def _write(self, data: bytes) -> None:
        if self._proto.state is _OPEN:
            self._proto.transport.write(data)

    async def take(self) -> list[bytes]:  # pragma: no cover - no sender task runs in direct mode
        await asyncio.Event().wait()
        return []

    async def room(self) -> None:
        while self._buffered() > self.max_bytes // 2 and self._proto.open:
            await asyncio.sleep(0.005)


class StreamConnection:
    """One client websocket."""

    def __init__(
        self, node: NodeContext, socket: WebSocket[Any, Any, Any], limits: StreamLimits
    ) -> None:
        self.node = node
        self.socket = socket
        self.limits = limits
        self.reader: Reader = node.anonymous()
        proto = (socket.scope.get("extensions") or {}).get(DIRECT_EXTENSION)
        self.outbox: Outbox = (
            DirectOutbox(proto, max_frames=limits.outbox_frames, max_bytes=limits.outbox_bytes)
            if proto is not None
            else Outbox(max_frames=limits.outbox_frames, max_bytes=limits.outbox_bytes)
        )
        self.subs: dict[str, Subscription] = {}
        self.nonce = b64e(os.urandom(18))
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Serve the connection until the client leaves."""
        sender = (
            asyncio.create_task(self._send_loop())
            if not isinstance(self.outbox, DirectOutbox)
            else None
        )
        if isinstance(self.outbox, DirectOutbox):
            # accept() only starts the handshake: frames may follow the 101 response only.
            await self.outbox.handshake_done()
        self.outbox.control(challenge_frame(self.nonce))
        try:
            while True:
                # Text or binary frames alike: clients' libraries differ in what they send.
                message = await self.socket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text: str | None = message.get("text")  # type: ignore[assignment]
                raw: bytes | None = message.get("bytes")  # type: ignore[assignment]
                await self.handle(text if text is not None else raw or b"")
        except WebSocketDisconnect:
            pass
        finally:
            for sub in list(self.subs.values()):
                sub.close("closed", notify=False)
            for task in list(self._tasks):
                task.cancel()
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender

    async def _send_loop(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                for frame in await self.outbox.take():
                    await self.socket.send_text(websocket_payload(frame).decode())

    async def handle(self, data: str | bytes) -> None:
        """Handle one client frame; a bad frame gets NOTICE or CLOSED, never a crash."""
        try:
            frame = decode_client_frame(data, max_bytes=self.limits.frame_bytes)
        except RejectedEvent as exc:
            sub_id = sub_id_of(data) if len(data) <= self.limits.frame_bytes else None
            if sub_id is not None and exc.reason.startswith("invalid:frame:[2]"):
                self.outbox.control(closed_frame(sub_id, f"{exc.reason}: {exc.message}"))
            else:
                self.outbox.control(notice_frame(f"{exc.reason}: {exc.message}"))
            return
        if isinstance(frame, Sub):
            self.subscribe(frame)
        elif isinstance(frame, Unsub):
            sub = self.subs.get(frame.sub_id)
            if sub is None:
                self.outbox.control(notice_frame(f"invalid:sub: no subscription {frame.sub_id!r}"))
            else:
                sub.close("unsubscribed")
        elif isinstance(frame, Auth):
            self.authenticate(frame.token)
        elif isinstance(frame, Publish):
            await self.publish(bytes(frame.envelope))

    def authenticate(self, token: str) -> None:
        """AUTH: a member token answering this connection's CHALLENGE."""
        try:
            self.reader = self.node.reader_for_token(token, purpose="stream", nonce=self.nonce)
        except InvalidToken as exc:
            self.outbox.control(notice_frame(f"auth-failed: {exc.reason}: {exc.message}"))
            return
        for sub in self.subs.values():  # open subscriptions now read live events as it
            self.node.fanout.set_reader(sub, self.reader)
        self.outbox.control(
            notice_frame(f"auth: ok as {self.reader.role} of pod {self.reader.pod}")
        )

    async def publish(self, raw: bytes) -> None:
        """EVENT from the client: ingest it and answer OK."""
        result = (await self.node.ingest.submit([raw], CLIENT))[0]
        effect = None if result.effect is None else msgspec.structs.asdict(result.effect)
        self.outbox.control(ok_frame(result.id, result.ok, result.reason, effect))

    def subscribe(self, frame: Sub) -> None:
        """SUB: register with the fanout, then backfill in the background."""
        if frame.sub_id in self.subs:
            self.outbox.control(
                closed_frame(frame.sub_id, "duplicate: this sub_id is already open; UNSUB it first")
            )
            return
        if len(self.subs) >= self.limits.subs_per_connection:
            self.outbox.control(
                closed_frame(
                    frame.sub_id,
                    f"rate-limited: at most {self.limits.subs_per_connection} subscriptions"
                    " per connection",
                )
            )
            return
        sub = Subscription(
            frame.sub_id,
            frame.request.filters,
            self.outbox,
            self.reader,
            max_pending=self.limits.pending_frames,
            on_close=self._closed,
        )
        self.subs[frame.sub_id] = sub
        self.node.fanout.add(sub)
        task = asyncio.create_task(self._backfill(sub, frame.request.after))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _closed(self, sub: Subscription) -> None:
        self.node.fanout.remove(sub)
        if self.subs.get(sub.sub_id) is sub:
            del self.subs[sub.sub_id]

    async def _backfill(self, sub: Subscription, after: int | None) -> None:
        try:
            sub.last_cursor = after or 0
            async for stored in self._stored_matches(sub, after):
                if sub.state is SubState.CLOSED:
                    return
                frame = websocket_frame(event_frame(sub.prefix, stored.envelope, stored.cursor))
                if not self.outbox.offer(frame):
                    await self.outbox.room()
                    if sub.closed:  # cut while we waited: nothing may follow its CLOSED
                        return
                    self.outbox.force(frame)
                sub.last_cursor = stored.cursor
                if self.outbox.pending_bytes > self.outbox.max_bytes // 2:
                    await self.outbox.room()
            # Everything committed up to `covered` is either backfilled or in `pending`
            # once the fanout has routed it: wait for that, then flush and go live.
            covered = await self.node.store.last_cursor()
            await self.node.fanout.wait_published(covered)
            if sub.state is SubState.CLOSED:
                return
            for cursor, frame in sub.pending:
                if cursor > sub.last_cursor and self.outbox.offer(frame):
                    sub.last_cursor = cursor
                elif cursor > sub.last_cursor:
                    sub.close(f"slow: resume after {sub.last_cursor}")
                    return
            sub.pending = []
            sub.last_cursor = max(sub.last_cursor, covered)
            sub.state = SubState.LIVE
            self.outbox.control(live_frame(sub.sub_id, sub.last_cursor))
        except Exception:  # pragma: no cover - a store failure must not kill the connection
            log.exception("backfill failed")
            sub.close("error: backfill failed; resubscribe")

    async def _stored_matches(
        self, sub: Subscription, after: int | None
    ) -> AsyncIterator[StoredEvent]:
        """Stored events matching any filter, in cursor order, each once."""
        streams = [self._filter_stream(f, after, sub) for f in sub.filters]
        heap: list[tuple[int, int, StoredEvent]] = []
        for index, stream in enumerate(streams):
            first = await anext(stream, None)
            if first is not None:
                heapq.heappush(heap, (first.cursor, index, first))
        last = -1
        while heap:
            cursor, index, stored = heapq.heappop(heap)
            nxt = await anext(streams[index], None)
            if nxt is not None:
                heapq.heappush(heap, (nxt.cursor, index, nxt))
            if cursor == last:
                continue
            last = cursor
            about = await self.node.report_about(needs_about(self.reader, [stored]))
            facts = AccessFacts(
                stored.pod, stored.author, stored.scope, stored.kind, about.get(stored.cursor)
            )
            if not may_read(self.reader, facts):
                continue
            yield stored

    async def _filter_stream(
        self, f: Filter, after: int | None, sub: Subscription
    ) -> AsyncIterator[StoredEvent]:
        page = self.limits.backfill_page
        base = to_query(f, self.reader, after=after, limit=page)
        if base is None:
            return
        if f.limit is not None:
            # The last `limit` matches, oldest first. Body filters are checked in Python, so
            # read backwards page by page until enough match.
            found: list[StoredEvent] = []
            q = msgspec.structs.replace(base, after=None, descending=True)
            while len(found) < f.limit:
                rows = await self.node.store.query(q)
                for row in rows:
                    if after is not None and row.cursor <= after:
                        rows = []
                        break
                    if self._body_matches(f, row, sub):
                        found.append(row)
                        if len(found) == f.limit:
                            break
                if len(rows) < page:
                    break
                q = msgspec.structs.replace(q, after=rows[-1].cursor)
            for row in reversed(found):
                yield row
            return
        q = base
        while True:
            rows = await self.node.store.query(q)
            for row in rows:
                if self._body_matches(f, row, sub):
                    yield row
            if len(rows) < page:
                return
            q = msgspec.structs.replace(q, after=rows[-1].cursor)

    @staticmethod
    def _body_matches(f: Filter, row: StoredEvent, sub: Subscription) -> bool:
        if not f.needs_body:
            return True
        env = msgspec.json.decode(row.envelope)
        body = parse_body(env.get("body"))
        facts = EventFacts(row.id, row.pod, row.author, row.scope, row.kind, row.ts, body)
        if not matches(f, facts, frozenset(sub.claims)):
            return False
        if f.need is not None and row.kind == "claim.made":
            sub.claims.add(row.id)  # so its later claim.withdrawn matches too
        return True


@websocket("/v1/stream")
async def stream_handler(socket: WebSocket[Any, Any, Any]) -> None:
    """Client event streams (frames in ``docs/streams.md``)."""
    node: NodeContext = socket.app.state.node
    limits = node.stream_limits
    ip = client_address(socket)  # the forwarded client behind a trusted proxy
    await socket.accept()
    if node.stream_connections.get(ip, 0) >= limits.connections_per_ip:
        await socket.send_text(
            notice_frame(
                f"rate-limited: at most {limits.connections_per_ip} connections per address"
            )
        )
        await socket.close(code=1008, reason="rate-limited")
        return
    node.stream_connections[ip] = node.stream_connections.get(ip, 0) + 1
    try:
        await StreamConnection(node, socket, limits).run()
    finally:
        node.stream_connections[ip] -= 1
        if not node.stream_connections[ip]:
            del node.stream_connections[ip]
