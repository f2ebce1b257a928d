"""Live streams against a real `kith serve` process with real websocket clients."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import websockets

from protocol.crypto import SigningKey
from protocol.envelope import encode_envelope, event_id
from protocol.tokens import make_token
from tests.integration.conftest import Pod, Poster, StalledClient, member

WS_MAX = 2**22


def ws_url(pod: Pod) -> str:
    return f"ws://127.0.0.1:{pod.port}/v1/stream"


async def challenge(ws: Any) -> str:
    frame = json.loads(await ws.recv())
    assert frame[0] == "CHALLENGE"
    return str(frame[1])


async def subscribe(
    ws: Any, sub_id: str, filters: list[dict[str, Any]], after: int | None = None
) -> None:
    await ws.send(json.dumps(["SUB", sub_id, {"filters": filters, "after": after}]))


async def collect_until_live(ws: Any, sub_id: str) -> tuple[list[tuple[str, int]], int]:
    events: list[tuple[str, int]] = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if frame[0] == "EVENT" and frame[1] == sub_id:
            events.append((json.loads(frame[2]["head"])["kind"], frame[3]))
        elif frame[0] == "LIVE" and frame[1] == sub_id:
            return events, frame[2]


async def auth(ws: Any, nonce: str, key: SigningKey, node_key: str) -> None:
    token = make_token(
        key, purpose="stream", node_key=node_key, now_ms=int(time.time() * 1000), nonce=nonce
    )
    await ws.send(json.dumps(["AUTH", token]))
    frame = json.loads(await ws.recv())
    assert frame[0] == "NOTICE" and frame[1].startswith("auth: ok"), frame


def info(pod: Pod) -> dict[str, Any]:
    return httpx.get(pod.url + "/.well-known/kith").json()  # type: ignore[no-any-return]


@pytest.fixture
def running(pod: Pod) -> Pod:
    pod.start()
    return pod


async def test_anonymous_sees_public_only_member_sees_pod(running: Pod, tmp_path: Path) -> None:
    pod = running
    amara = member(pod, tmp_path, "amara")
    meta = info(pod)
    private = Poster(pod.url, amara, meta["pod"], "pod")
    public = Poster(pod.url, amara, meta["pod"], "public")
    private.need("Private need")
    public.need("Public need")
    async with (
        websockets.connect(ws_url(pod), max_size=WS_MAX) as anon,
        websockets.connect(ws_url(pod), max_size=WS_MAX) as mem,
    ):
        await challenge(anon)
        nonce = await challenge(mem)
        await auth(mem, nonce, amara, meta["node_key"])
        await subscribe(anon, "a", [{"kinds": ["need.*"]}])
        await subscribe(mem, "m", [{"kinds": ["need.*"]}])
        anon_events, _ = await collect_until_live(anon, "a")
        mem_events, _ = await collect_until_live(mem, "m")
        assert len(anon_events) == 1 and len(mem_events) == 2
        # and live: a new pod event reaches the member only
        private.need("Another private need")
        public.need("Another public need")
        frame = json.loads(await asyncio.wait_for(anon.recv(), 10))
        assert frame[0] == "EVENT" and json.loads(frame[2]["head"])["scope"] == "public"
        scopes = set()
        for _ in range(2):
            frame = json.loads(await asyncio.wait_for(mem.recv(), 10))
            scopes.add(json.loads(frame[2]["head"])["scope"])
        assert scopes == {"pod", "public"}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anon.recv(), 0.5)


async def test_backfill_then_live_without_gap_or_duplicate_under_concurrent_writes(
    running: Pod, tmp_path: Path
) -> None:
    pod = running
    amara = member(pod, tmp_path, "amara")
    meta = info(pod)
    poster = Poster(pod.url, amara, meta["pod"], "public")
    posted: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set() and len(posted) < 3000:
            posted.extend(
                poster.post(
                    [
                        poster.sign("offer.posted", {"title": f"o{i}", "category": "goods"})
                        for i in range(25)
                    ]
                )
            )

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(posted) < 300:
            await asyncio.sleep(0.01)
        async with websockets.connect(ws_url(pod), max_size=WS_MAX) as ws:
            await challenge(ws)
            await subscribe(ws, "s", [{"authors": [amara.public_b64]}])
            backfill, live_cursor = await collect_until_live(ws, "s")
            stop.set()
            thread.join()
            cursors = [c for _, c in backfill]
            total = len(posted)
            while len(cursors) < total:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert frame[0] == "EVENT", frame
                cursors.append(frame[3])
    finally:
        stop.set()
        thread.join()
    assert all(c > live_cursor for c in cursors[len(backfill) :])
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors) == total
    assert 0 < len(backfill) < total  # the boundary really was crossed during writes


async def test_resume_after_a_killed_connection(running: Pod, tmp_path: Path) -> None:
    pod = running
    amara = member(pod, tmp_path, "amara")
    meta = info(pod)
    poster = Poster(pod.url, amara, meta["pod"], "public")
    first = poster.post(
        [poster.sign("offer.posted", {"title": f"a{i}", "category": "goods"}) for i in range(50)]
    )
    seen: list[int] = []
    async with websockets.connect(ws_url(pod), max_size=WS_MAX) as ws:
        await challenge(ws)
        await subscribe(ws, "r", [{"kinds": ["offer.*"]}])
        events, live = await collect_until_live(ws, "r")
        seen += [c for _, c in events]
        ws.transport.abort()  # the phone loses its signal: no close handshake
    second = poster.post(
        [poster.sign("offer.posted", {"title": f"b{i}", "category": "goods"}) for i in range(50)]
    )
    async with websockets.connect(ws_url(pod), max_size=WS_MAX) as ws:
        await challenge(ws)
        await subscribe(ws, "r", [{"kinds": ["offer.*"]}], after=live)
        events, _ = await collect_until_live(ws, "r")
        seen += [c for _, c in events]
    assert len(seen) == len(set(seen)) == len(first) + len(second)
    assert seen == sorted(seen)


async def test_a_slow_consumer_is_cut_with_a_resume_cursor_and_the_fast_one_is_not(
    pod: Pod, tmp_path: Path
) -> None:
    config = json.loads((pod.dir / "config.json").read_text())
    config["stream_outbox_frames"] = 400  # above one commit's burst (100 events)
    (pod.dir / "config.json").write_text(json.dumps(config))
    pod.start()
    amara = member(pod, tmp_path, "amara")
    meta = info(pod)
    poster = Poster(pod.url, amara, meta["pod"], "public")
    total = 6000
    pad = "a bag of winter coats in good repair " * 50  # ~2 KiB frames fill every buffer
    fast_seen: list[int] = []
    slow = StalledClient(pod.port)
    try:
        assert json.loads(slow.recv())[0] == "CHALLENGE"
        slow.send(json.dumps(["SUB", "s", {"filters": [{"kinds": ["offer.*"]}], "after": None}]))
        assert json.loads(slow.recv())[0] == "LIVE"
        async with websockets.connect(ws_url(pod), max_size=WS_MAX) as fast:
            await challenge(fast)
            await subscribe(fast, "f", [{"kinds": ["offer.*"]}])
            await collect_until_live(fast, "f")

            async def read_fast() -> None:
                while len(fast_seen) < total:
                    frame = json.loads(await asyncio.wait_for(fast.recv(), 30))
                    assert frame[0] == "EVENT", frame  # never cut
                    fast_seen.append(frame[3])

            reader = asyncio.create_task(read_fast())
            for start in range(0, total, 100):
                envs = [
                    poster.sign(
                        "offer.posted", {"title": f"x{i}", "category": "goods", "details": pad}
                    )
                    for i in range(start, start + 100)
                ]
                await asyncio.to_thread(poster.post, envs)
            await reader
        # The stalled phone now reads: some events, then CLOSED with a resume cursor.
        slow_seen: list[int] = []
        while True:
            frame = json.loads(await asyncio.to_thread(slow.recv))
            if frame[0] == "CLOSED":
                reason = frame[2]
                break
            slow_seen.append(frame[3])
    finally:
        slow.close()
    assert reason.startswith("slow: resume after ")
    resume = int(reason.rsplit(" ", 1)[1])
    assert len(slow_seen) < total and resume == (slow_seen[-1] if slow_seen else resume)
    async with websockets.connect(ws_url(pod), max_size=WS_MAX) as again:
        await challenge(again)
        await subscribe(again, "s", [{"kinds": ["offer.*"]}], after=resume)
        rest, _ = await collect_until_live(again, "s")
    # Nothing missed, nothing twice: what it got before the cut plus the resumed rest is all.
    assert sorted(slow_seen + [c for _, c in rest]) == sorted(fast_seen)
    assert len(fast_seen) == total == len(set(fast_seen))


#: What the board subscribes to (node/board/app.js): families, exact kinds, and repeats.
BOARD_KINDS = [
    "pod.*", "member.*", "profile.set", "need.*", "claim.*", "fulfilment.*", "event.redacted",
    "offer.*", "hours.*", "proposal.*", "vote.*", "gathering.*", "invite.*", "member.added",
    "need.*", "event.redacted",
]  # fmt: skip


async def test_the_boards_subscription_gets_every_live_event_on_every_connection(
    running: Pod, tmp_path: Path
) -> None:
    """Three boards as the board opens them (AUTH and SUB sent together, the board's kinds)
    — a coordinator, a member, and a member whose AUTH comes after its SUB (its open
    subscription changes reader) — plus one anonymous: each member's board gets each of
    another member's events live, once, in order, and as it is posted (not with the next)."""
    pod = running
    meta = info(pod)
    ana = member(pod, tmp_path, "ana", "coordinator")
    bea, dee, cy = (member(pod, tmp_path, n) for n in ("bea", "dee", "cy"))
    poster = Poster(pod.url, cy, meta["pod"])
    board = {"filters": [{"kinds": BOARD_KINDS}], "after": None}

    def token(key: SigningKey, nonce: str) -> str:
        now = int(time.time() * 1000)
        return make_token(key, purpose="stream", node_key=meta["node_key"], now_ms=now, nonce=nonce)

    async def until_live(ws: Any) -> None:
        while json.loads(await asyncio.wait_for(ws.recv(), 20))[0] != "LIVE":
            pass

    async with (
        websockets.connect(ws_url(pod), max_size=WS_MAX) as a,
        websockets.connect(ws_url(pod), max_size=WS_MAX) as b,
        websockets.connect(ws_url(pod), max_size=WS_MAX) as d,
        websockets.connect(ws_url(pod), max_size=WS_MAX) as anon,
    ):
        for ws, key in ((a, ana), (b, bea)):
            nonce = await challenge(ws)
            await ws.send(json.dumps(["AUTH", token(key, nonce)]))
            await ws.send(json.dumps(["SUB", "board", board]))
        nonce = await challenge(d)
        await d.send(json.dumps(["SUB", "board", board]))
        await until_live(d)
        await d.send(json.dumps(["AUTH", token(dee, nonce)]))
        assert json.loads(await d.recv())[1].startswith("auth: ok as member")
        await challenge(anon)
        await anon.send(json.dumps(["SUB", "board", board]))
        for ws in (a, b, anon):
            await until_live(ws)
        boards = {"ana": a, "bea": b, "dee": d}
        now = int(time.time() * 1000)
        window = {"start": now + 86_400_000, "end": now + 90_000_000}
        question: dict[str, object] = {
            "title": "Sundays?",
            "options": ["Yes", "No"],
            "closes_at": now + 600_000,
        }
        gathering: dict[str, object] = {
            "title": "Soup",
            "kind": "meeting",
            "window": window,
            "place": "<b>hall</b>",
        }
        need: dict[str, object] = {"title": "Soup", "category": "food", "urgency": "normal"}
        posts = [
            [poster.sign("profile.set", {"name": "Cy"})],
            [poster.sign("proposal.opened", question)],
            [poster.sign("gathering.scheduled", gathering)],
            [
                poster.sign("proposal.opened", question),
                poster.sign("gathering.scheduled", gathering),
            ],
            [poster.sign("need.posted", need)],
        ]
        for envs in posts:
            ids = await asyncio.to_thread(poster.post, envs)
            for name, ws in boards.items():
                for want in ids:  # each event now, before anything is posted after it
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    assert frame[0] == "EVENT" and frame[1] == "board", (name, frame)
                    assert event_id(frame[2]["head"]) == want, name
        for ws in boards.values():
            with pytest.raises(TimeoutError):  # nothing twice, nothing left over
                await asyncio.wait_for(ws.recv(), 0.3)
        with pytest.raises(TimeoutError):  # pod events only for members
            await asyncio.wait_for(anon.recv(), 0.3)


async def test_bad_frames_get_reasons_and_the_connection_keeps_working(
    running: Pod, tmp_path: Path
) -> None:
    pod = running
    poster = Poster(pod.url, member(pod, tmp_path, "ada"), info(pod)["pod"])
    async with websockets.connect(ws_url(pod), max_size=WS_MAX) as ws:
        await challenge(ws)
        cases = [
            ("not json", "NOTICE", "invalid:frame:json"),
            (json.dumps(["HELLO"]), "NOTICE", "invalid:frame:verb"),
            (
                json.dumps(["SUB", "x", {"filters": [{"kinds": ["Need"]}]}]),
                "CLOSED",
                "invalid:frame:[2]",
            ),
            (json.dumps(["SUB", "y", {"filters": []}]), "CLOSED", "invalid:frame:[2]"),
            (json.dumps(["UNSUB", "nope"]), "NOTICE", "invalid:sub"),
            (json.dumps(["AUTH", "kith1.bad"]), "NOTICE", "auth-failed: invalid:token"),
            ("[" * 100 + "]" * 100, "NOTICE", "invalid:frame"),
            (
                json.dumps(["SUB", "big", {"filters": [{}], "pad": "x" * 500_000}]),
                "NOTICE",
                "too-large",
            ),
        ]
        for raw, verb, reason in cases:
            await ws.send(raw)
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame[0] == verb and str(frame[-1]).startswith(reason), (raw[:40], frame)
        await subscribe(ws, "ok", [{"kinds": ["pod.*"]}])
        events, _ = await collect_until_live(ws, "ok")
        assert [k for k, _ in events] == ["pod.created"]
        await subscribe(ws, "ok", [{}])
        frame = json.loads(await ws.recv())
        assert frame[:2] == ["CLOSED", "ok"] and frame[2].startswith("duplicate")
        # publishing over the stream: a forged event is refused with its reason
        await ws.send(json.dumps(["EVENT", {"head": "{}", "sig": "x", "body": None}]))
        frame = json.loads(await ws.recv())
        assert frame[0] == "OK" and frame[2] is False and frame[3].startswith("invalid:head")
        # an accepted event says what it did: a claim on a need the node does not know is
        # stored, with no effect, and the reason
        claim = poster.sign("claim.made", {"need": "A" * 43})
        await ws.send(json.dumps(["EVENT", msgspec.json.decode(encode_envelope(claim))]))
        frame = json.loads(await ws.recv())
        assert frame[:4] == ["OK", event_id(claim.head), True, None]
        assert frame[4]["ok"] is False and frame[4]["reason"] == "effect:unknown-need"
    assert httpx.get(pod.url + "/healthz").status_code == 200


async def test_kith_tail_prints_live_events(running: Pod, tmp_path: Path) -> None:
    pod = running
    amara = member(pod, tmp_path, "amara")
    meta = info(pod)
    poster = Poster(pod.url, amara, meta["pod"], "public")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "tail",
            "--url",
            pod.url,
            "--kind",
            "need.*",
            "--category",
            "food",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert line.startswith("-- live after")
        poster.need("Soup for the Garcias", category="food")
        poster.need("Fix a bike", category="repair")
        poster.need("Bread run", category="food")
        lines = [
            await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20) for _ in range(2)
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert "need.posted" in lines[0] and "title=Soup for the Garcias" in lines[0]
    assert "title=Bread run" in lines[1]
