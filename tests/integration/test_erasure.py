"""Erasure across real `kith serve` processes federated over websockets (issue 12 item 2).

A erases a need that carries a marker; its neighbours B and C (C offline during the erasure,
catching up later) drop the body and confirm; A's ``GET /v1/erasures`` counts the receipts;
no node's database file or WAL holds the marker afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import Pod, Poster, member
from tests.integration.test_federation import (
    held,
    info,
    node_token,
    peer,
    peer_state,
    pods,
    wait_for,
)

__all__ = ["pods"]  # the fixture

MARKER = "MARKER-erasure-5c2e-Ada-12-Elm-St"


def erasures(pod: Pod) -> list[dict[str, Any]]:
    headers = {"authorization": "Kith " + node_token(pod)}
    answer = httpx.get(pod.url + "/v1/erasures", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["erasures"]  # type: ignore[no-any-return]


def summary(pod: Pod) -> str:
    items = erasures(pod)
    return str(items[0]["summary"]) if items else ""


def raw_files_hold(pod: Pod, marker: str) -> list[str]:
    db = pod.dir / "kith.db"
    files = (db, db.with_name("kith.db-wal"))
    return [f.name for f in files if f.exists() and marker.encode() in f.read_bytes()]


def test_an_erasure_reaches_every_neighbour_and_is_confirmed(
    pods: Callable[[str], Pod], tmp_path: Path
) -> None:
    a, b, c = pods("a"), pods("b"), pods("c")
    peer(a, b)
    peer(a, c)
    for other in (b, c):
        wait_for(lambda o=other: peer_state(a, o).get("state") == "live", what="A's links live")
    pod_b, pod_c = info(b)["pod"], info(c)["pod"]
    amara = member(a, tmp_path, "amara")
    poster = Poster(a.url, amara, info(a)["pod"], "peers")
    body = {
        "title": f"Groceries for {MARKER}",
        "category": "food",
        "urgency": "high",
        "details": f"ring at {MARKER}",
    }
    (need,) = poster.post([poster.sign("need.posted", body)])
    for node in (b, c):
        wait_for(lambda n=node: need in held(n), what="the need at B and C")
    assert raw_files_hold(b, MARKER) and raw_files_hold(c, MARKER)  # the scan sees it

    c.stop()  # C is offline while A erases
    headers = {"authorization": "Kith " + node_token(a)}
    answer = httpx.post(a.url + "/v1/erasures", json={"target": need}, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    redaction = answer.json()["id"]
    wait_for(
        lambda: summary(a) == "erased on 1 of 2 neighbours (waiting for 1)", what="B's receipt"
    )
    (item,) = erasures(a)
    assert item["confirmed"] == [pod_b] and item["pending"] == [pod_c]
    assert held(b)[need]["envelope"]["body"] is None

    c.start()  # catches up from its checkpoint, drops the body and confirms
    wait_for(lambda: summary(a) == "erased on 2 of 2 neighbours", timeout=60, what="C's receipt")
    (item,) = erasures(a)
    assert item["id"] == redaction and item["pending"] == [] and item["neighbours"] == 2
    assert sorted(item["confirmed"]) == sorted([pod_b, pod_c])
    assert MARKER not in str(item)
    for node in (a, b, c):
        assert held(node)[need]["envelope"]["body"] is None
        assert not raw_files_hold(node, MARKER), node.dir.name
    # Each neighbour confirmed once, in its own peers log, naming the redaction and its target.
    for node in (b, c):
        receipts = [
            e
            for e in held(node).values()
            if '"kind":"erasure.confirmed"' in e["envelope"]["head"].replace(" ", "")
        ]
        assert len(receipts) == 1
        assert redaction in receipts[0]["envelope"]["body"]
    for node in (a, b, c):
        node.stop()
        assert not raw_files_hold(node, MARKER), node.dir.name
