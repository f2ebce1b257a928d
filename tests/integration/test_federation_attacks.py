"""Federation under bad input and attacks (issue 6): a fake peer against a real `kith serve`.

One target node T and one legit peer L (real `kith serve` processes, peered and live) are
shared by the module. Each test lists fresh fake pods at T with the real `kith peer add` and
dials T as them (``tests/integration/fake_peer.py``). Every refusal and rejection must come
with its machine-readable reason — in T's NOTICE, in its ACK's ``rejected`` counts, and in
its ``/.well-known/kith`` counters — and afterwards T must still serve: ``/healthz``, and a
new public event at L still reaches T (and the fake peer, when its link is still open).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from node.datadir import new_key_file, read_key_file
from node.federation import MAX_REJECTED, WANT_BURST
from protocol import federation as fed
from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.envelope import (
    MAX_BODY_BYTES,
    MAX_ENVELOPE_BYTES,
    Envelope,
    decode_envelope,
    encode_envelope,
)
from tests.integration.conftest import Pod, Poster, free_port, kith, member
from tests.integration.fake_peer import FakePeer, FakePod, Log, event_id
from tests.integration.test_federation import info, node_token, peer, peer_state


@dataclass
class Net:
    """T (the target), L (a legit peer of T, live) and a member of L who posts."""

    t: Pod
    legit: Pod
    legit_pod: str
    legit_member: SigningKey
    legit_public: Poster

    def fed(self) -> dict[str, Any]:
        return info(self.t)["federation"]  # type: ignore[no-any-return]

    def counters(self) -> dict[str, int]:
        return self.fed()["counters"]  # type: ignore[no-any-return]

    def status(self, pod: str) -> dict[str, Any]:
        return next(p for p in self.fed()["peers"] if p["pod"] == pod)

    def stored(self, event: str) -> dict[str, Any] | None:
        """T's copy of an event (as T's node key reads it), or None."""
        r = httpx.get(
            self.t.url + f"/v1/events/{event}",
            headers={"authorization": "Kith " + node_token(self.t)},
            timeout=10,
        )
        assert r.status_code in (200, 404), r.text
        return r.json() if r.status_code == 200 else None


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("attacks")
    made = [Pod(root / name, free_port()) for name in ("t", "l")]

    def init(p: Pod) -> None:
        kith("init", "--dir", str(p.dir), "--name", f"Pod {p.dir.name}", "--port", str(p.port))

    try:
        with ThreadPoolExecutor(2) as pool:  # each takes seconds on a busy machine
            list(pool.map(init, made))
            list(pool.map(Pod.start, made))
        t, legit = made
        peer(t, legit)
        wait_for(lambda: peer_state(t, legit).get("state") == "live", what="T–L live")
        amara = member(legit, root, "amara")
        pod = info(legit)["pod"]
        yield Net(t, legit, pod, amara, Poster(legit.url, amara, pod, "public"))
    finally:
        for p in made:
            p.stop()


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """``wait_for`` that lets the event loop (a fake peer's websocket) run meanwhile."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def listed(net: Net, n: int = 1, node: SigningKey | None = None) -> list[FakePod]:
    """``n`` fake pods on T's allowlist (URLs of a closed port: T's dialling just backs off)."""
    pods = [FakePod(f"Fake {i}", node) for i in range(n)]

    def add(fp: FakePod) -> None:
        url = f"ws://127.0.0.1:{free_port()}/v1/federation"
        kith("peer", "add", url, "--pod", fp.pod, "--dir", str(net.t.dir))

    with ThreadPoolExecutor(n) as pool:  # `kith peer add` edits peers.json under a lock
        list(pool.map(add, pods))
    want = {fp.pod for fp in pods}
    wait_for(lambda: want <= {p["pod"] for p in net.fed()["peers"]}, what="T lists the fakes")
    return pods


async def still_serving(net: Net, *open_peers: FakePeer) -> None:
    """T answers /healthz, and a new public event at L reaches T (and every open fake link)."""
    assert httpx.get(net.t.url + "/healthz", timeout=10).status_code == 200
    (need,) = net.legit_public.need(f"Still here at {time.monotonic()}")
    await eventually(lambda: net.stored(need) is not None, what="L's new event at T")
    for fake in open_peers:
        await fake.until(lambda f=fake: need in f.received_ids, what="L's event at the fake")  # type: ignore[misc]


def events_frame(upto: int, envelopes: list[bytes]) -> bytes:
    return fed.events_frame(upto, envelopes)


def need_body(title: str) -> dict[str, str]:
    return {"title": title, "category": "food", "urgency": "normal"}


# -- the handshake ---------------------------------------------------------------------------


async def test_unknown_or_unattested_peers_are_refused_with_a_reason(net: Net) -> None:
    (fp,) = listed(net)
    before = net.counters()
    stranger = SigningKey.generate()

    async def refused(fake: FakePeer) -> tuple[str | None, list[str]]:
        async with fake:
            fake.conn.start()
            await fake.flush()
            reason = await fake.close_reason()
            assert not fake.authenticated
            return reason, [n.message for n in fake.notices]

    # A pod T does not list.
    assert await refused(FakePeer(net.t.port, FakePod("Unlisted"))) == (
        "unauthorized",
        ["this node does not federate with that pod"],
    )
    # A listed pod, but a roster that does not attest the node key.
    created_only = [fp.created]
    other_key = Log(fp.root, fp.pod)
    other_roster = [
        other_key.sign("pod.created", {"name": "Fake"}),
        other_key.sign("node.key", {"key": stranger.public_b64}),
    ]
    by_stranger = Log(stranger, fp.pod)
    stranger_roster = [
        by_stranger.sign("pod.created", {"name": "Fake"}),
        by_stranger.sign("node.key", {"key": fp.node.public_b64}),
    ]
    env = decode_envelope(fp.node_key)
    bad_sig = encode_envelope(Envelope(env.head, b64e(stranger.sign(env.head.encode())), env.body))
    messages = {
        "no node.key": (created_only, "the node key is not attested by the pod's roster"),
        "node.key of another key": (
            other_roster,
            "the node key is not attested by the pod's roster",
        ),
        "signed by a stranger": (stranger_roster, "pod.created in HELLO is not signed"),
        "a roster sig that fails": (
            [fp.created, bad_sig],
            "a roster event in HELLO is invalid (invalid:sig)",
        ),
        "a pod-scope roster": (
            [fp.created, Log(fp.root, fp.pod, "pod").sign("node.key", {"key": fp.node.public_b64})],
            "HELLO's roster holds only the pod's root events",
        ),
        "no roster": ([], "the node key is not attested by the pod's roster"),
    }
    for case, (roster, message) in messages.items():
        reason, notices = await refused(FakePeer(net.t.port, fp, roster=roster))
        assert reason == "unauthorized", case
        assert notices[-1].startswith(message), (case, notices)
    # Another pod's (T's own peer L's) node key claimed with our roster: not attested either.
    l_node = net.legit.node_key().signing_key()
    reason, _ = await refused(FakePeer(net.t.port, fp, node=l_node))
    assert reason == "unauthorized"
    # T's own node key, T's own pod.
    t_node = net.t.node_key().signing_key()
    assert (await refused(FakePeer(net.t.port, fp, node=t_node)))[0] == "invalid:hello:self"
    t_root = read_key_file(net.t.data.root_key_path).signing_key()
    assert (await refused(FakePeer(net.t.port, FakePod(root=t_root))))[0] == "invalid:hello:pod"
    after = net.counters()
    assert after.get("refused:unlisted", 0) - before.get("refused:unlisted", 0) == 1
    assert after.get("refused:attestation", 0) - before.get("refused:attestation", 0) == 7
    await still_serving(net)


async def test_a_forged_expired_or_replayed_auth_is_refused(net: Net) -> None:
    (fp,) = listed(net)
    stranger = SigningKey.generate()

    def forged(frame: bytes) -> bytes:
        auth = fed.decode_frame(frame)
        assert isinstance(auth, fed.Auth)
        sig = b64e(stranger.sign(b"kith-auth/1\nfederation-dialer\n"))
        return fed.encode_frame(fed.Auth(sig, auth.expiry_ms))

    def expired(frame: bytes) -> bytes:
        auth = fed.decode_frame(frame)
        assert isinstance(auth, fed.Auth)
        return fed.encode_frame(fed.Auth(auth.sig, int(time.time() * 1000) - 1000))

    async def auth_refused(fake: FakePeer) -> str | None:
        async with fake:
            fake.conn.start()
            await fake.flush()
            reason = await fake.close_reason()
            # We may have checked T's AUTH; T refused ours, so it asked for nothing.
            assert not any(isinstance(f, fed.Want | fed.Events) for f in fake.frames)
            return reason

    assert await auth_refused(FakePeer(net.t.port, fp, tamper_auth=forged)) == "unauthorized"
    assert await auth_refused(FakePeer(net.t.port, fp, tamper_auth=expired)) == "unauthorized"
    # A genuine AUTH of an earlier session does not open another: the transcript differs.
    async with FakePeer(net.t.port, fp) as first:
        await first.handshake()
        old_auth = next(f for f in first.sent if f.startswith(b'["AUTH"'))
    await eventually(lambda: net.status(fp.pod)["state"] != "catching-up", what="link closed")
    replay = FakePeer(net.t.port, fp, tamper_auth=lambda _frame: old_auth)
    assert await auth_refused(replay) == "unauthorized"
    assert replay.notices[-1].message == "the AUTH signature does not verify"
    await still_serving(net)


async def test_no_event_flows_before_both_sides_are_authenticated(net: Net) -> None:
    (fp,) = listed(net)
    events = events_frame(1, fp.roster)
    want = fed.encode_frame(fed.Want(fed.WantRequest(vector=())))
    # Before any HELLO; after our HELLO but before our AUTH (T already sent its AUTH).
    for early in (events, want):
        for say_hello in (False, True):
            async with FakePeer(net.t.port, fp, auto_accept=False) as fake:
                if say_hello:
                    fake.conn.start()
                    await fake.flush()
                    await fake.until(lambda f=fake: f.hello is not None, what="T's HELLO")  # type: ignore[misc]
                await fake.send_raw(early)
                assert await fake.close_reason() == "unauthorized"
                assert fake.notices[-1].message.endswith("before both sides are authenticated")
                assert not any(isinstance(f, fed.Events) for f in fake.frames), "T sent events"
    for envelope in fp.roster:
        assert net.stored(event_id(envelope)) is None, "an unauthenticated event was stored"
    await still_serving(net)


# -- events after a good handshake ---------------------------------------------------------


async def test_bad_events_are_rejected_with_reasons_counted_and_the_sync_goes_on(
    net: Net,
) -> None:
    (fp,) = listed(net)
    member_keys = new_key_file()
    m = member_keys.signing_key()
    stranger = SigningKey.generate()
    t_pod = info(net.t)["pod"]
    async with FakePeer(net.t.port, fp) as fake:
        await fake.handshake()
        await fake.start_sync()
        await fake.until(lambda: fake.caught_up, what="T's catch-up to us")
        # Roster events first, so that the authors are known.
        added = fp.root_log.sign(
            "member.added",
            {"key": m.public_b64, "role": "member", "box_key": member_keys.box_public},
        )
        assert await fake.send_events([*fp.roster, added]) == {}
        await fake.send_caught_up()
        public = Log(m, fp.pod, "public")
        first = public.sign("need.posted", need_body("Soup for Thursday"))
        assert await fake.send_events([first]) == {}

        # Replayed: the same event again, alone and twice in one frame: duplicates, no error.
        assert await fake.send_events([first]) == {}
        assert await fake.send_events([first, first, *fp.roster]) == {}

        nxt = public.envelope("need.posted", need_body("Blankets"), advance=False)
        # Forged: a stranger signs as our pod's member (its own key: not a member, held).
        forged = Log(stranger, fp.pod).sign("need.posted", need_body("Send money"))
        assert await fake.send_events([forged]) == {"unauthorized": 1}
        # Forged: the member's next event with a signature that is not the member's.
        wrong_sig = Envelope(nxt.head, b64e(stranger.sign(nxt.head.encode())), nxt.body)
        assert await fake.send_events([encode_envelope(wrong_sig)]) == {"invalid:sig": 1}
        # Tampered: the body changed (head and signature intact); the head changed.
        assert nxt.body is not None
        body = nxt.body.replace("Blankets", "Bitcoins")
        tampered = encode_envelope(Envelope(nxt.head, nxt.sig, body))
        assert await fake.send_events([tampered]) == {"invalid:body:hash": 1}
        head = nxt.head.replace('"scope":"public"', '"scope":"peers"')
        retargeted = encode_envelope(Envelope(head, nxt.sig, nxt.body))
        assert await fake.send_events([retargeted]) == {"invalid:sig": 1}
        # Out of scope: our pod's `pod` events; `peers` events of a third pod (L's, by L's
        # real member, signed and fresh), and of T's own pod.
        private = Log(m, fp.pod, "pod").sign("need.posted", need_body("Private"))
        third = Log(net.legit_member, net.legit_pod, "peers").sign("need.posted", need_body("L's"))
        t_own = Log(stranger, t_pod, "peers").sign("need.posted", need_body("T's?"))
        assert await fake.send_events([private, third, t_own]) == {"out-of-scope": 3}
        # Not allowed: a member attesting a node key (the root's only).
        grab = Log(m, fp.pod, "public")
        grab.seq, grab.prev = public.seq, public.prev
        attest = grab.sign("node.key", {"key": stranger.public_b64})
        assert await fake.send_events([attest]) == {"unauthorized": 1}
        # Oversized: a body over 64 KiB; an envelope over the envelope limit.
        big = public.sign("need.posted", need_body("x" * MAX_BODY_BYTES), advance=False)
        huge = b'{"head":"' + b"h" * MAX_ENVELOPE_BYTES + b'","sig":"","body":null}'
        assert await fake.send_events([big, huge]) == {"too-large": 2}
        # Not envelopes at all.
        assert await fake.send_events([b"42", b'{"head":1}', b"[]"]) == {
            "invalid:envelope:not-object": 2,
            "invalid:envelope:field:head": 1,
        }
        # The sync goes on: the good event, in a frame with a bad one, is stored.
        good = encode_envelope(nxt)
        public.seq, public.prev = public.seq + 1, event_id(nxt)
        own_peers = Log(m, fp.pod, "peers").sign("need.posted", need_body("Neighbours only"))
        assert await fake.send_events([tampered, good, own_peers]) == {"invalid:body:hash": 1}
        # A tampered copy of an event T already holds is a duplicate: T keeps its copy.
        assert await fake.send_events([tampered]) == {}

        for envelope in (*fp.roster, added, first, good, own_peers):
            assert net.stored(event_id(envelope)) is not None
        assert json.loads(net.stored(event_id(nxt))["envelope"]["body"])["title"] == "Blankets"  # type: ignore[index]
        for envelope in (forged, private, third, t_own):
            assert net.stored(event_id(envelope)) is None
        # The attestation was held for a roster event that would let a member sign it (none
        # came); once `good` took its log position it is only a fork's proof, never counted.
        status = net.status(fp.pod)
        assert status["rejected"] == {
            "unauthorized": 2,
            "invalid:sig": 2,
            "invalid:body:hash": 2,
            "out-of-scope": 3,
            "too-large": 2,
            "invalid:envelope:not-object": 2,
            "invalid:envelope:field:head": 1,
        }
        assert status["received"] == 6, "duplicates are not counted as received"
        assert status["state"] == "live"
        await still_serving(net, fake)


async def test_an_oversized_websocket_message_closes_the_link_and_t_keeps_serving(
    net: Net,
) -> None:
    (fp,) = listed(net)
    async with FakePeer(net.t.port, fp) as fake:
        await fake.handshake()
        await fake.start_sync()
        assert await fake.send_oversized(fed.MAX_FRAME_BYTES + 1) == 1009  # message too big
    await still_serving(net)
    # The same peer reconnects and syncs.
    async with FakePeer(net.t.port, fp) as again:
        await again.handshake()
        await again.start_sync()
        assert await again.send_events(fp.roster) == {}


async def test_a_peer_dialling_again_replaces_its_old_link(net: Net) -> None:
    # A node key above T's: the order in which T's tie-break between two links (one dialled
    # by each side) would keep the old link, though both were dialled by the peer.
    t_key = net.t.node_key().public
    node = next(k for k in iter(SigningKey.generate, None) if k.public_b64 > t_key)
    (fp,) = listed(net, node=node)
    async with FakePeer(net.t.port, fp) as old:
        await old.handshake()
        await old.start_sync()
        await old.until(lambda: old.caught_up, what="T's catch-up")
        # The old link goes quiet (cut, not yet noticed by T); the peer dials again.
        async with FakePeer(net.t.port, fp) as new:
            await new.handshake()
            await new.start_sync()
            assert await new.send_events(fp.roster) == {}
            assert await old.close_reason() == "duplicate"
            await still_serving(net, new)


# -- flooding --------------------------------------------------------------------------------


async def test_a_flooding_peer_is_rate_limited_then_disconnected(net: Net) -> None:
    by_frames, by_wants, by_rejects = listed(net, 3)
    before = net.counters()
    # More than WINDOW EVENTS frames without waiting for ACKs.
    async with FakePeer(net.t.port, by_frames) as fake:
        await fake.handshake()
        await fake.start_sync()
        for upto in range(1, 4 * fed.WINDOW + 1):
            await fake.send_raw(events_frame(upto, []))
        assert await fake.close_reason() == "rate-limited"
        assert fake.ws.close_code == 1008
        assert len(fake.acks) <= fed.WINDOW
    # WANTs faster than a catch-up may restart.
    async with FakePeer(net.t.port, by_wants) as fake:
        await fake.handshake()
        want = fed.encode_frame(fed.Want(fed.WantRequest(vector=())))
        for _ in range(WANT_BURST + 2):
            await fake.send_raw(want)
        assert await fake.close_reason() == "rate-limited"
        assert fake.ws.close_code == 1008
    # Frames of events that are all rejected.
    async with FakePeer(net.t.port, by_rejects) as fake:
        await fake.handshake()
        await fake.start_sync()
        private = Log(by_rejects.root, by_rejects.pod, "pod").sign("pod.created", {"name": "x"})
        per_frame = fed.MAX_EVENTS_PER_FRAME
        for _ in range(MAX_REJECTED // per_frame + 1):
            assert await fake.send_events([private] * per_frame) == {"out-of-scope": per_frame}
        assert await fake.close_reason() == "rate-limited"  # then closed, not left hanging
        assert fake.ws.close_code == 1008
    after = net.counters()
    for key in ("session:rate-limited", "flood:want", "flood:rejected"):
        assert after.get(key, 0) - before.get(key, 0) == 1, key
    assert net.status(by_rejects.pod)["rejected"] == {"out-of-scope": 6 * per_frame}
    await still_serving(net)


# -- malformed frames ------------------------------------------------------------------------

AFTER_HANDSHAKE: list[tuple[bytes | str, str]] = [
    (b"not json", "invalid:frame:json"),
    (b"\xff\xfe\x00", "invalid:frame:json"),
    ("text, not JSON either", "invalid:frame:json"),
    (b"[" * 100_000, "invalid:frame:json"),
    (b'["EVENTS",1,[]] and more', "invalid:frame:json"),
    (b"{}", "invalid:frame:verb"),
    (b"[]", "invalid:frame:verb"),
    (b'["PING"]', "invalid:frame:verb"),
    (b'"EVENTS"', "invalid:frame:verb"),
    (b'["EVENTS","1",[]]', "invalid:frame:[1]"),
    (b'["EVENTS",-1,[]]', "invalid:frame:[1]"),
    (b'["EVENTS",9007199254740993,[]]', "invalid:frame:[1]"),
    (b'["EVENTS",1,{}]', "invalid:frame:[2]"),
    (b'["ACK",1,{"x":"y"}]', "invalid:frame:[2][...]"),
    (b'["WANT",{"bogus":1}]', "invalid:frame:[1]"),
    (b'["WANT",{"vector":[[1,2,3,4,5]]}]', "invalid:frame:[1].vector[0][0]"),
    (b'["NOTICE",5]', "invalid:frame:[1]"),
    (b'["ACK",1,{}]', "invalid:frame:ack"),  # nothing to acknowledge
    (fed.encode_frame(fed.Auth("A" * 86, 1)), "invalid:frame:unexpected"),
]


async def test_malformed_frames_get_a_reason_and_a_close_never_a_crash(net: Net) -> None:
    (fp,) = listed(net)
    for frame, reason in AFTER_HANDSHAKE:
        async with FakePeer(net.t.port, fp) as fake:
            await fake.handshake()
            await fake.send_raw(frame)
            assert await fake.close_reason() == reason, frame[:40]
            assert fake.ws.close_code == 1008
    # A HELLO once open, and upto going backwards, are malformed too.
    async with FakePeer(net.t.port, fp) as fake:
        await fake.handshake()
        await fake.send_raw(fed.encode_frame(fed.Hello(fake.conn.ours)))
        assert await fake.close_reason() == "invalid:frame:unexpected"
    async with FakePeer(net.t.port, fp) as fake:
        await fake.handshake()
        await fake.start_sync()
        assert await fake.send_events([]) == {}
        await fake.send_raw(events_frame(0, []))
        assert await fake.close_reason() == "invalid:frame:upto"
    # Before the handshake: garbage instead of a HELLO; a HELLO of another version.
    for first, reason in (
        (b"\x00garbage", "invalid:frame:json"),
        (b'["HELLO"]', "invalid:frame:verb"),
    ):
        async with FakePeer(net.t.port, fp) as fake:
            await fake.send_raw(first)
            assert await fake.close_reason() == reason
    hello = json.loads(fed.encode_frame(fed.Hello(FakePeer(net.t.port, fp).conn.ours)))
    hello[1]["v"] = 2
    async with FakePeer(net.t.port, fp) as fake:
        await fake.send_raw(json.dumps(hello).encode())
        assert await fake.close_reason() == "unsupported"
    # Through all this, another link stays up and syncs.
    async with FakePeer(net.t.port, fp) as fake:
        await fake.handshake()
        await fake.start_sync()
        await fake.until(lambda: fake.caught_up, what="catch-up")
        await still_serving(net, fake)


# Last: the cut link it leaves behind must not be in the way of the tests above.
async def test_events_stored_as_their_link_is_cut_still_count_as_received(net: Net) -> None:
    """Frames still being written when their link drops are stored, and counted: every event
    a node holds of another pod was received over some link (what the netns chaos test sums)."""
    (fp,) = listed(net)
    member_keys = new_key_file()
    m = member_keys.signing_key()
    added = fp.root_log.sign(
        "member.added", {"key": m.public_b64, "role": "member", "box_key": member_keys.box_public}
    )
    public = Log(m, fp.pod, "public")
    needs = [public.sign("need.posted", need_body(f"Soup {i}")) for i in range(800)]
    async with FakePeer(net.t.port, fp) as fake:
        await fake.handshake()
        await fake.start_sync()
        await fake.until(lambda: fake.caught_up, what="T's catch-up to us")
        assert await fake.send_events([*fp.roster, added]) == {}
        before = net.status(fp.pod)["received"]
        # Frames back to back; once T holds the first, the TCP connection is closed with no
        # closing handshake: T is writing a later frame when it sees the link end.
        for i in range(0, len(needs), 100):  # 8 frames: the window
            fake.upto += 1
            fake.conn.send_events(fake.upto, needs[i : i + 100])
        await fake.flush()
        await eventually(lambda: net.stored(event_id(needs[0])) is not None, what="a first frame")
        fake.ws.transport.close()

    await eventually(lambda: net.status(fp.pod)["state"] != "live", what="T sees the cut")
    # A new event of L's stored at T: T's writer (first in, first out) is past every frame.
    await still_serving(net)
    stored = sum(net.stored(event_id(e)) is not None for e in needs)
    assert stored >= 100  # the first frame, and whatever was written as the link ended
    assert net.status(fp.pod)["received"] - before == stored
