"""Fanout: route groups, the one reading policy per delivery, gathered writes, slow cuts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from websockets.protocol import State

from node.access import ANONYMOUS, Reader, ReportParties, may_read
from node.fanout import CHUNK_DELIVERIES, Fanout, Outbox, Subscription, SubState
from node.ingest import Committed
from node.store.base import NewEvent, Placement
from node.streams import DirectOutbox
from protocol.frames import Filter, websocket_payload

POD = "P" * 43
ADA, BO = "A" * 43, "B" * 43
MEMBER = Reader(person=ADA, role="member", pod=POD)
COORDINATOR = Reader(person=BO, role="coordinator", pod=POD)
NEEDS = (Filter(kinds=("need.*", "claim.*", "report.*")),)


class Transport:
    """What DirectOutbox writes to: each write kept, and a write buffer it can be told of."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.writes.append(data)


class Proto:
    """The bits of uvicorn's websocket protocol that DirectOutbox uses."""

    def __init__(self) -> None:
        self.state = State.OPEN
        self.transport = Transport()


class Client:
    """One connection: a DirectOutbox on a fake transport, and the frames it was sent."""

    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.proto = Proto()
        self.outbox = DirectOutbox(self.proto, max_frames=20_000, max_bytes=max_bytes)

    @property
    def writes(self) -> list[bytes]:
        return self.proto.transport.writes

    def frames(self) -> list[list[Any]]:
        out = []
        for data in self.writes:
            while data:
                n = data[1] & 0x7F
                start = 2 if n < 126 else 4 if n == 126 else 10
                size = n if n < 126 else int.from_bytes(data[2:start], "big")
                out.append(json.loads(websocket_payload(data[: start + size])))
                data = data[start + size :]
        return out

    def events(self, sub_id: str | None = None) -> list[tuple[str, str, int]]:
        """(sub_id, kind, cursor) of each EVENT frame received."""
        return [
            (f[1], json.loads(f[2]["head"])["kind"], f[3])
            for f in self.frames()
            if f[0] == "EVENT" and (sub_id is None or f[1] == sub_id)
        ]


def subscribe(
    fanout: Fanout,
    client: Client,
    reader: Reader = ANONYMOUS,
    filters: tuple[Filter, ...] = NEEDS,
    sub_id: str = "s",
    *,
    live: bool = True,
    max_pending: int = 100,
) -> Subscription:
    sub = Subscription(
        sub_id, filters, client.outbox, reader, max_pending=max_pending, on_close=fanout.remove
    )
    fanout.add(sub)
    if live:
        sub.state = SubState.LIVE
    return sub


def committed(
    cursor: int,
    kind: str = "need.posted",
    scope: str = "public",
    *,
    author: str = ADA,
    body: dict[str, Any] | None = None,
    placement: Placement = Placement.LOG,
) -> Committed:
    event_id = f"{cursor:043d}"
    head = json.dumps({"kind": kind, "scope": scope, "author": author, "n": cursor})
    event = NewEvent(
        id=event_id,
        pod=POD,
        author=author,
        scope=scope,
        seq=cursor,
        ts=1_700_000_000_000,
        kind=kind,
        head=head,
        sig="s" * 86,
        body=msgspec.json.encode(body or {"title": "soup"}).decode(),
    )
    return Committed(cursor=cursor, event=event, placement=placement)


async def test_one_group_of_mixed_readers_anonymous_never_receives_pod_events() -> None:
    fanout = Fanout()
    anon, member = Client(), Client()
    subscribe(fanout, anon)
    subscribe(fanout, member, MEMBER)
    assert len(fanout.groups) == 1  # equal filters: one route group, two reader groups
    await fanout.publish([committed(1, scope="pod"), committed(2), committed(3, scope="peers")])
    assert anon.events() == [("s", "need.posted", 2)]
    assert member.events() == [("s", "need.posted", c) for c in (1, 2, 3)]


async def test_coordinator_kinds_reach_coordinators_and_the_filer_only() -> None:
    asked: list[list[int]] = []

    async def about(cursors: Sequence[int]) -> dict[int, ReportParties]:
        asked.append(list(cursors))
        return {c: ReportParties(filer=str(MEMBER.person), about=frozenset()) for c in cursors}

    fanout = Fanout(about=about)
    anon, ada, bo, cy = Client(), Client(), Client(), Client()
    subscribe(fanout, anon)
    subscribe(fanout, ada, MEMBER)
    subscribe(fanout, bo, COORDINATOR)
    subscribe(fanout, cy, Reader(person="C" * 43, role="member", pod=POD))
    await fanout.publish([committed(1, "report.filed", "pod"), committed(2, "report.filed")])
    assert asked == [[1, 2]]  # once per commit
    assert [c for _, _, c in ada.events()] == [1, 2]  # Ada filed both
    assert [c for _, _, c in bo.events()] == [1, 2]
    assert cy.events() == [] and anon.events() == []  # a public report.filed too


async def test_a_report_never_reaches_the_coordinator_it_is_about() -> None:
    bo_key = COORDINATOR.person
    assert bo_key is not None

    async def about(cursors: Sequence[int]) -> dict[int, ReportParties]:
        ada = str(MEMBER.person)
        return {1: ReportParties(ada, frozenset({bo_key})), 2: ReportParties(ada, frozenset())}

    for lookup in (about, None):  # without a lookup, reports reach their filer only
        fanout = Fanout(about=lookup)
        ada, bo = Client(), Client()
        subscribe(fanout, ada, MEMBER)
        subscribe(fanout, bo, COORDINATOR)
        await fanout.publish([committed(1, "report.filed", "pod"), committed(2, "report.filed")])
        assert [c for _, _, c in ada.events()] == [1, 2]
        assert [c for _, _, c in bo.events()] == ([2] if lookup else [])


async def test_each_subscription_gets_its_own_sub_id_and_equal_ids_share_bytes() -> None:
    fanout = Fanout()
    one, two, three = Client(), Client(), Client()
    subscribe(fanout, one, sub_id="board")
    subscribe(fanout, two, sub_id="board")
    subscribe(fanout, three, sub_id="feed")
    subscribe(fanout, three, sub_id="mine", filters=(Filter(authors=(ADA,)),))
    await fanout.publish([committed(7)])
    assert one.events() == two.events() == [("board", "need.posted", 7)]
    assert one.writes[0] is two.writes[0]  # one frame built, the same bytes written twice
    assert sorted(three.events()) == [("feed", "need.posted", 7), ("mine", "need.posted", 7)]
    envelopes = {json.dumps(f[2], sort_keys=True) for c in (one, three) for f in c.frames()}
    assert len(envelopes) == 1  # the envelope is the same wherever it goes


async def test_a_commit_is_one_write_per_connection_in_commit_order() -> None:
    fanout = Fanout()
    client = Client()
    subscribe(fanout, client, sub_id="a")
    subscribe(fanout, client, sub_id="b")
    await fanout.publish([committed(c) for c in range(1, 6)])
    assert len(client.writes) == 1
    assert [c for _, _, c in client.events("a")] == [1, 2, 3, 4, 5]
    assert [c for _, _, c in client.events("b")] == [1, 2, 3, 4, 5]


async def test_a_large_commit_is_written_in_chunks() -> None:
    fanout = Fanout()
    client = Client(max_bytes=1 << 30)
    subscribe(fanout, client)
    n = CHUNK_DELIVERIES + 10
    await fanout.publish([committed(c) for c in range(1, n + 1)])
    assert len(client.writes) == 2
    assert [c for _, _, c in client.events()] == list(range(1, n + 1))
    assert fanout.published == n


async def test_a_slow_subscriber_is_cut_with_its_resume_cursor_and_others_go_on() -> None:
    fanout = Fanout()
    slow, fast = Client(max_bytes=4096), Client()
    slow_sub = subscribe(fanout, slow)
    subscribe(fanout, fast)
    await fanout.publish([committed(1)])
    slow.proto.transport.buffered = 3000  # the phone stopped reading
    await fanout.publish([committed(c) for c in range(2, 10)])
    frames = slow.frames()
    got = [f[3] for f in frames if f[0] == "EVENT"]
    assert got[0] == 1 and got == list(range(1, len(got) + 1))  # a prefix, nothing skipped
    assert frames[-1] == ["CLOSED", "s", f"slow: resume after {got[-1]}"]
    assert slow_sub.closed and len(fanout) == 1
    await fanout.publish([committed(10)])
    assert slow.frames()[-1][0] == "CLOSED"  # nothing after the CLOSED
    assert [c for _, _, c in fast.events()] == list(range(1, 11))


async def test_live_events_during_backfill_are_held_and_too_many_cut() -> None:
    fanout = Fanout()
    client = Client()
    sub = subscribe(fanout, client, live=False, max_pending=3)
    sub.last_cursor = 1  # backfilled up to 1 so far
    await fanout.publish([committed(1), committed(2), committed(3)])
    assert client.writes == [] and [c for c, _ in sub.pending] == [2, 3]
    await fanout.publish([committed(4), committed(5)])
    assert sub.closed and client.frames() == [["CLOSED", "s", "slow: resume after 1"]]


async def test_auth_moves_open_subscriptions_to_the_new_reader() -> None:
    fanout = Fanout()
    client = Client()
    sub = subscribe(fanout, client)
    await fanout.publish([committed(1, scope="pod")])
    fanout.set_reader(sub, MEMBER)
    await fanout.publish([committed(2, scope="pod")])
    assert client.events() == [("s", "need.posted", 2)]
    sub.close("unsubscribed")
    fanout.set_reader(sub, ANONYMOUS)  # a closed subscription stays out of the routes
    assert len(fanout) == 0 and fanout.groups == {}


async def test_need_filter_follows_claims_of_that_need() -> None:
    fanout = Fanout()
    need = f"{1:043d}"
    watcher, other = Client(), Client()
    subscribe(fanout, watcher, filters=(Filter(need=need),))
    subscribe(fanout, other, filters=(Filter(need=need),))
    assert len(fanout.groups) == 2  # claim state is each subscription's own
    await fanout.publish(
        [
            committed(1),  # the need itself
            committed(2, "claim.made", body={"need": need}),
            committed(3, "claim.withdrawn", body={"claim": f"{2:043d}"}),
            committed(4, "claim.withdrawn", body={"claim": "nope"}),
            committed(5, "need.posted", body={"category": "food"}),
        ]
    )
    assert [c for _, _, c in watcher.events()] == [1, 2, 3]
    assert watcher.events() == other.events()


async def test_body_filters_fork_proofs_and_closing_connections() -> None:
    fanout = Fanout()
    food, closing = Client(), Client()
    subscribe(fanout, food, filters=(Filter(category=("food",)),))
    subscribe(fanout, closing)
    closing.proto.state = State.CLOSING
    await fanout.publish(
        [
            committed(1, body={"category": "food"}),
            committed(2, body={"category": "ride"}),
            committed(3, body={"category": "food"}, placement=Placement.PROOF),
        ]
    )
    assert [c for _, _, c in food.events()] == [1]
    assert closing.writes == []  # nothing may follow a close frame
    assert fanout.published == 3


async def test_the_queue_outbox_holds_frames_for_its_sender() -> None:
    fanout = Fanout()
    outbox = Outbox(max_frames=2, max_bytes=1 << 20)
    sub = Subscription("q", NEEDS, outbox, ANONYMOUS, max_pending=10, on_close=fanout.remove)
    fanout.add(sub)
    sub.state = SubState.LIVE
    await fanout.publish([committed(c) for c in (1, 2, 3)])
    frames = [json.loads(websocket_payload(f)) for f in await outbox.take()]
    assert [f[0] for f in frames] == ["EVENT", "EVENT", "CLOSED"]
    assert frames[-1] == ["CLOSED", "q", "slow: resume after 2"]


@pytest.mark.parametrize("after", [0, 5])
async def test_wait_published(after: int) -> None:
    fanout = Fanout()
    await fanout.publish([committed(5)])
    await fanout.wait_published(after)  # returns at once: routed up to 5
    assert fanout.published == 5


async def test_the_writer_hands_commits_over_without_waiting_for_routing() -> None:
    """Ingestion is never slowed by fanout: the listener returns at once, routing follows in
    commit order; only a backlog beyond MAX_BACKLOG makes the writer wait."""
    import node.fanout as fanout_module

    fanout = Fanout()
    member = Client()
    subscribe(fanout, member, MEMBER)
    assert fanout.enqueue([committed(1)]) is None
    assert fanout.enqueue([committed(2), committed(3)]) is None
    assert member.events() == []  # not routed yet: the writer did not wait
    await fanout.wait_published(3)
    assert member.events() == [("s", "need.posted", c) for c in (1, 2, 3)]
    old = fanout_module.MAX_BACKLOG
    fanout_module.MAX_BACKLOG = 1
    try:
        waiting = fanout.enqueue([committed(4), committed(5)])
        assert waiting is not None  # over the backlog bound: the writer waits for routing
        await waiting
        assert member.events()[-1] == ("s", "need.posted", 5)
    finally:
        fanout_module.MAX_BACKLOG = old
        await fanout.stop()


async def test_an_event_that_fails_to_route_leaves_no_connection_gathering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If routing one event raises, what was gathered before it is still written, and the
    connections it touched take later events: none is left silently holding its frames."""
    import node.fanout as fanout_module

    def failing(reader: Reader, facts: Any) -> bool:
        if facts.kind == "need.updated":
            raise RuntimeError("policy failed")
        return may_read(reader, facts)

    monkeypatch.setattr(fanout_module, "may_read", failing)
    fanout = Fanout()
    member, anyone = Client(), Client()
    subscribe(fanout, member, MEMBER)
    subscribe(fanout, anyone)
    with pytest.raises(RuntimeError):
        await fanout.publish([committed(1), committed(2, "need.updated")])
    assert not member.outbox.gathering and not anyone.outbox.gathering
    await fanout.publish([committed(3)])
    for client in (member, anyone):
        assert [c for _, _, c in client.events()] == [1, 3]
