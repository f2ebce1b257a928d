"""Federation between real `kith serve` processes on loopback (issue 6, tests b and d)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol.tokens import make_token
from tests.integration.conftest import Pod, Poster, free_port, kith, member


def fed_url(pod: Pod) -> str:
    return f"ws://127.0.0.1:{pod.port}/v1/federation"


def info(pod: Pod) -> dict[str, Any]:
    return httpx.get(pod.url + "/.well-known/kith", timeout=10).json()  # type: ignore[no-any-return]


def node_token(pod: Pod) -> str:
    """A token by the pod's node key: it reads everything the node holds that members may."""
    key = pod.node_key().signing_key()
    return make_token(key, purpose="http", node_key=key.public_b64, now_ms=int(time.time() * 1000))


def held(pod: Pod) -> dict[str, dict[str, Any]]:
    """Every event the node holds (as its own node key reads them), by id."""
    out: dict[str, dict[str, Any]] = {}
    after = 0
    headers = {"authorization": "Kith " + node_token(pod)}
    while True:
        page = httpx.get(
            pod.url + "/v1/events",
            params={"after": after, "limit": 10_000},
            headers=headers,
            timeout=30,
        ).json()
        for e in page["events"]:
            out[e["id"]] = e
        if page["next"] is None:
            return out
        after = page["next"]


def wait_for(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def peer(a: Pod, b: Pod) -> None:
    """`kith peer add` on both sides (a dials b, b dials a: one link is kept)."""
    kith("peer", "add", fed_url(b), "--pod", info(b)["pod"], "--dir", str(a.dir))
    kith("peer", "add", fed_url(a), "--pod", info(a)["pod"], "--dir", str(b.dir))


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[Callable[[str], Pod]]:
    made: list[Pod] = []

    def make(name: str) -> Pod:
        port = free_port()
        data = tmp_path / name
        kith("init", "--dir", str(data), "--name", f"Pod {name}", "--port", str(port))
        p = Pod(data, port)
        p.start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def peer_state(pod: Pod, other: Pod) -> dict[str, Any]:
    """``other``'s entry in ``pod``'s federation status (empty until it lists it)."""
    want = info(other)["pod"]
    for p in info(pod)["federation"]["peers"]:
        if p["pod"] == want:
            return p  # type: ignore[no-any-return]
    return {}


def test_line_public_multi_hop_peers_one_hop_pod_never(
    pods: Callable[[str], Pod], tmp_path: Path
) -> None:
    a, b, c = pods("a"), pods("b"), pods("c")
    peer(a, b)
    peer(b, c)
    wait_for(lambda: peer_state(a, b).get("state") == "live", what="A–B live")
    wait_for(lambda: peer_state(c, b).get("state") == "live", what="B–C live")
    amara = member(a, tmp_path, "amara")
    pod_a = info(a)["pod"]
    public = Poster(a.url, amara, pod_a, "public")
    peers = Poster(a.url, amara, pod_a, "peers")
    private = Poster(a.url, amara, pod_a, "pod")
    (pub_id,) = public.need("Ride to the clinic", category="ride")
    (peers_id,) = peers.need("Overflow: groceries for a family of five")
    (pod_id,) = private.need("Someone to talk to tonight")

    wait_for(lambda: pub_id in held(c), what="A's public need at C (via B)")
    wait_for(lambda: peers_id in held(b), what="A's peers need at B")
    at_b, at_c = held(b), held(c)
    assert pub_id in at_b
    assert peers_id not in at_c, "peers events are never forwarded"
    assert pod_id not in at_b and pod_id not in at_c, "pod events never leave their node"
    # The roster that authorizes amara travelled too, and C projects A's public need.
    need_at_c = httpx.get(c.url + f"/v1/needs/{pub_id}", timeout=10)
    assert need_at_c.status_code == 200 and need_at_c.json()["title"] == "Ride to the clinic"
    # Nothing is echoed: B received A's events once and sent none of them back.
    assert peer_state(a, b)["rejected"] == {}
    # Live: a new public event flows A → B → C without any reconnect.
    (second,) = public.need("Soup for Thursday")
    wait_for(lambda: second in held(c), what="a live event at C")
    lag = peer_state(c, b)["lag"]
    assert lag["in"] >= 0
    # Erasure follows its target: amara redacts her public need; every copy loses its body.
    (redaction,) = public.post([public.sign("event.redacted", {"target": pub_id})])
    wait_for(lambda: redaction in held(c), what="the redaction at C")
    for node in (a, b, c):
        assert held(node)[pub_id]["envelope"]["body"] is None
    removed = httpx.get(c.url + f"/v1/needs/{pub_id}", timeout=10).json()
    assert removed["title"] == "[removed]"


def public_needs(poster: Poster, n: int, batch: int = 2500) -> list[str]:
    """Post ``n`` public needs in batches; their ids."""
    ids: list[str] = []
    for start in range(0, n, batch):
        envs = [
            poster.sign(
                "need.posted",
                {"title": f"Need {i}", "category": "food", "urgency": "normal"},
            )
            for i in range(start, min(n, start + batch))
        ]
        ids += poster.post(envs)
    return ids


def test_restarted_node_catches_up_10k_missed_events_from_its_checkpoint(
    pods: Callable[[str], Pod], tmp_path: Path
) -> None:
    a, b = pods("a"), pods("b")
    peer(a, b)
    wait_for(lambda: peer_state(b, a).get("state") == "live", what="A–B live")
    amara = member(a, tmp_path, "amara")
    poster = Poster(a.url, amara, info(a)["pod"], "public")
    first = public_needs(poster, 10)
    wait_for(lambda: first[-1] in held(b), what="first events at B")
    b.stop()
    missed = public_needs(poster, 10_000)
    b.start()
    wait_for(lambda: peer_state(b, a).get("state") == "live", what="B back live", timeout=60)
    wait_for(lambda: missed[-1] in held(b), timeout=120, what="10k missed events at B")
    at_b = held(b)
    assert all(i in at_b for i in missed)
    # Resumed from the checkpoint: B was sent only what it missed (plus nothing twice).
    state = peer_state(b, a)
    assert state["received"] == len(missed)
    assert state["rejected"] == {}
    assert state["lag"]["in"] == 0
    # Everything here is public, so both hold the same event set: the same projections.
    wait_for(lambda: info(a)["cursor"] == info(b)["cursor"], what="A holds B's roster too")
    assert info(a)["projection_hash"] == info(b)["projection_hash"]


def test_kith_sync_one_shot_offline_and_beside_a_running_node(
    pods: Callable[[str], Pod], tmp_path: Path
) -> None:
    a, b = pods("a"), pods("b")
    pod_a, pod_b = info(a)["pod"], info(b)["pod"]
    kith("peer", "add", fed_url(b), "--pod", pod_b, "--dir", str(a.dir))
    amara = member(a, tmp_path, "amara")
    ids = public_needs(Poster(a.url, amara, pod_a, "public"), 50)
    b.stop()
    # B lists A by URL; the node is stopped, so `kith sync` runs B's sync in-process.
    kith("peer", "add", fed_url(a), "--pod", pod_a, "--dir", str(b.dir))
    done = kith("sync", fed_url(a), "--dir", str(b.dir), timeout=120)
    assert f"Synced with pod {pod_a}: received" in done.stdout
    received = int(done.stdout.split("received ")[1].split(" ")[0])
    assert received >= len(ids) + 3  # the needs, amara's member.added, A's roster
    b.start()
    assert set(ids) <= set(held(b))
    # With the node running, `kith sync` asks it to sync: nothing new, nothing lost.
    again = kith("sync", fed_url(a), "--dir", str(b.dir), timeout=120)
    assert f"Synced with pod {pod_a}" in again.stdout
    # An unlisted URL without --pod is refused with a reason, not a traceback.
    bad = kith("sync", "ws://127.0.0.1:9/v1/federation", "--dir", str(b.dir), check=False)
    assert bad.returncode != 0 and "not on the allowlist" in bad.stderr
