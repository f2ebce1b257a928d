"""``kith peer list`` against a running node: events received, sent and rejected per peer, and
why a peer is in backoff (wrong pod id, refused, unreachable) — real nodes, the real command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import Pod, free_port, kith, pod_id
from tests.integration.test_federation import fed_url, pods, wait_for
from tests.node.conftest import signing_key

__all__ = ["pods"]  # the fixture, shared with test_federation


def peers_of(pod: Pod) -> dict[str, dict[str, Any]]:
    doc = httpx.get(pod.url + "/.well-known/kith", timeout=10).json()
    return {p["pod"]: p for p in doc["federation"]["peers"]}


def test_peer_list_shows_counts_and_why_a_peer_backs_off(
    pods: Callable[[str], Pod], tmp_path: Path
) -> None:
    a, b, c = pods("A"), pods("B"), pods("C")
    other = signing_key("no such pod").public_b64
    nowhere = f"ws://127.0.0.1:{free_port()}/v1/federation"
    d = ["--dir", str(a.dir)]
    kith("peer", "add", fed_url(a), "--pod", pod_id(a), "--dir", str(b.dir))
    kith("peer", "add", fed_url(b), "--pod", pod_id(b), *d)  # a live link
    kith("peer", "add", fed_url(b), "--pod", other, *d)  # B's node, listed as another pod
    kith("peer", "add", fed_url(c), "--pod", pod_id(c), *d)  # C does not list A: it refuses
    kith("peer", "add", nowhere, "--pod", signing_key("gone").public_b64, *d)

    def settled() -> bool:
        seen = peers_of(a)
        return (
            len(seen) == 4
            and seen.get(pod_id(b), {}).get("state") == "live"
            and all(
                p["state"] == "backoff" and p["last_error"]
                for pod, p in seen.items()
                if pod != pod_id(b)
            )
        )

    wait_for(settled, what="one live peer and three in backoff")
    live = peers_of(a)[pod_id(b)]
    listed = kith("peer", "list", *d)
    lines = listed.stdout.splitlines()
    assert lines[0] == f"node running at {a.url}"
    assert lines[1].split() == [
        "POD", "URL", "INSECURE", "RECEIVED", "SENT", "REJECTED", "STATE", "LAG"
    ]  # fmt: skip
    row = lines[2].split()
    assert row[:7] == [
        pod_id(b), fed_url(b), "no", str(live["received"]), str(live["sent"]), "0", "live"
    ]  # fmt: skip
    assert lines[3].split()[0] == other and lines[3].split()[6] == "backoff"
    assert lines[4] == (
        f"  why: wrong pod id: the node at this URL is pod {pod_id(b)}"
        " (kith peer add URL --pod with the pod id its operator gave you)"
    )
    assert lines[5].split()[0] == pod_id(c) and lines[5].split()[6] == "backoff"
    assert lines[6] == (
        "  why: refused by the peer (unauthorized): does it list this pod?"
        " (kith peer add on its node)"
    )
    assert lines[7].split()[1] == nowhere and lines[7].split()[6] == "backoff"
    assert lines[8].startswith("  why: unreachable: ")
    assert len(lines) == 9
