"""Moderation across two real federated `kith serve` processes (docs/moderation.md).

- A report filed in pod A never leaves A: pod B (a direct peer) never receives it, and in A the
  person it is about cannot read it.
- A block advice from A's coordinator reaches B's coordinators in their `/v1/moderation` and
  changes nothing in B until one of them adopts it (`kith member block KEY --adopt ID`), which
  signs B's own `member.blocked`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from node.client import KithClient
from node.datadir import read_key_file
from protocol.envelope import encode_envelope, sign_event
from tests.integration.conftest import Pod, TwoPods, pod_id
from tests.integration.test_overflow_cli import wait_for


class Pods(TwoPods):
    def __init__(self, root: Path) -> None:
        people = [
            ("amara", "a", "member"),
            ("cora", "a", "coordinator"),
            ("mo", "a", "member"),
            ("bea", "b", "coordinator"),
            ("mo", "b", "member"),  # Mo belongs to both pods
        ]
        super().__init__(root, people)

    def public(self, who: str) -> str:
        return read_key_file(self.key(who)).public

    def client(self, who: str, pod: Pod) -> KithClient:
        return KithClient(pod.url, read_key_file(self.key(who)).signing_key())

    def mo_posts_in(self, pod: Pod) -> dict[str, object]:
        """Mo signs a need as the next event of her pod log in ``pod`` (the head read by that
        pod's coordinator: a blocked key may not even read its own log) and posts it."""
        coordinator = "cora" if pod is self.a else "bea"
        head = self.client(coordinator, pod).get(f"/v1/logs/{pod_id(pod)}/{self.public('mo')}/pod")
        env = sign_event(
            read_key_file(self.key("mo")).signing_key(),
            pod=pod_id(pod),
            scope="pod",
            seq=head["seq"] + 1,
            prev=head["id"],
            ts=int(time.time() * 1000),
            kind="need.posted",
            body={"title": "Lift to the market", "category": "ride", "urgency": "normal"},
        )
        answer = httpx.post(pod.url + "/v1/events", content=encode_envelope(env), timeout=30)
        result: dict[str, object] = answer.json()["results"][0]
        return result


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[Pods]:
    made = Pods(tmp_path)
    yield made
    made.stop()


def recorded(out: str, kind: str) -> str:
    match = re.search(rf"^{re.escape(kind)} recorded[^\n]*: (\S+)$", out, re.M)
    assert match, out
    return match[1]


def test_a_report_stays_home_and_block_advice_waits_for_the_neighbour(pods: Pods) -> None:
    a, b = pods.a, pods.b
    mo = pods.public("mo")
    out = pods.run("amara", a, "report", "--about", mo, "--text", "Took the food-bank keys")
    report = recorded(out, "report.filed")

    # In A, Mo cannot read it (while still active); A's coordinator can.
    mo_reads = httpx.get(
        f"{a.url}/v1/events/{report}",
        headers={"authorization": "Kith " + pods.client("mo", a).token()},
    )
    assert mo_reads.status_code == 404
    assert pods.client("cora", a).get(f"/v1/events/{report}")["id"] == report

    # A blocks Mo on the report and advises its peers.
    out = pods.run(
        "cora", a, "member", "block", mo, "--reason", "fraud", "--note", "keys not returned",
        "--report", report, "--advise", "fraud",
    )  # fmt: skip
    advisory = recorded(out, "block.advised")
    assert "applied only if one of them adopts it" in out
    assert pods.mo_posts_in(a)["reason"] == "blocked"

    def incoming() -> list[dict[str, object]]:
        view = pods.client("bea", b).get("/v1/moderation")
        return [v for v in view["advisories"] if v["id"] == advisory]

    wait_for(lambda: bool(incoming()), "the advice to reach B")
    [seen] = incoming()
    assert seen["direction"] == "incoming" and seen["pod"] == pod_id(a)
    assert (seen["key"], seen["reason"], seen["status"]) == (mo, "fraud", "open")
    assert seen["member_here"] is True and seen["by"] == pods.public("cora")
    shown = pods.run("bea", b, "moderation", "show")
    assert advisory in shown and "never applied unless you adopt it" in shown

    # The report never reached B: not for B's coordinator, not anywhere in B's store.
    assert pods.client("bea", b).get("/v1/events", kinds="report.filed")["events"] == []
    assert "Took the food-bank keys" not in json.dumps(pods.client("bea", b).get("/v1/events"))
    assert httpx.get(f"{b.url}/v1/events/{report}").status_code == 404

    # Not applied by itself: Mo still posts in B.
    posted = pods.mo_posts_in(b)
    assert posted["ok"] and posted.get("reason") is None, posted

    # B's coordinator adopts it: B's own block, signed by Bea, naming the advice.
    err = pods.run("bea", b, "member", "block", pods.public("amara"), "--adopt", advisory, ok=False)
    assert f"is about {mo}" in err
    out = pods.run("bea", b, "member", "block", mo, "--adopt", advisory)
    block = recorded(out, "member.blocked")
    assert pods.mo_posts_in(b)["reason"] == "blocked"
    view = pods.client("bea", b).get("/v1/moderation")
    [seen] = [v for v in view["advisories"] if v["id"] == advisory]
    assert seen["status"] == "adopted" and seen["adopted_by"] == block
    [action] = view["actions"]
    assert action["advisory"] == advisory and action["by"] == pods.public("bea")
    assert action["reason"] == "fraud"  # the advice's word; the advice itself is named
    err = pods.run("bea", b, "member", "block", mo, "--adopt", advisory, ok=False)
    assert "already adopted" in err
