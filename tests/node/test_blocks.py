"""A block over the node's real interface: what the blocked person's later events do (nothing),
what others see (not those events), their open claims (lapsed), their token (refused), and an
unblock (later events count again; the blocked stretch stays out)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from protocol.envelope import encode_envelope
from tests.node.conftest import LiveNode, event_id, init_datadir, live_node


@pytest.fixture
def datadir(tmp_path: Path) -> Any:
    return init_datadir(tmp_path)


@pytest.fixture
async def live(datadir: Any) -> AsyncIterator[LiveNode]:
    async for client, node, pod in live_node(datadir, "blocks"):
        live = LiveNode(client, node, pod)
        await live.results(pod.add("ada"), pod.add("bo"), pod.add("cy", "coordinator"))
        yield live


async def test_a_block_lapses_open_claims_hides_later_events_and_refuses_the_token(
    live: LiveNode,
) -> None:
    pod, client = live.pod, live.client
    ada, bo, cy = pod.key("ada"), pod.key("bo"), pod.key("cy")
    need = pod.need(ada, "Groceries on Friday")
    claim = pod.sign(bo, "claim.made", {"need": event_id(need)})
    accept = pod.sign(ada, "claim.accepted", {"claim": event_id(claim), "need": event_id(need)})
    spam = pod.sign(bo, "need.posted", {"title": "spam", "category": "food", "urgency": "low"})
    await live.results(need, claim, accept, spam)
    got = (await client.get(f"/v1/needs/{event_id(need)}", headers=live.auth(ada))).json()
    assert (got["status"], got["helper"]) == ("claimed", bo.public_b64)
    assert (await client.get("/v1/needs", headers=live.auth(bo))).status_code == 200
    listed = (await client.get("/v1/needs", headers=live.auth(ada))).json()
    assert event_id(spam) in {n["id"] for n in listed}

    block = pod.sign(
        cy,
        "member.blocked",
        {"key": bo.public_b64, "effective": {"pod": 2, "peers": 1, "public": 1}},
        scope="public",
    )
    [result] = await live.results(block)
    assert result["effect"]["message"] == "member blocked"

    # Bo's accepted claim lapses: the need is open again, the claim says why.
    got = (await client.get(f"/v1/needs/{event_id(need)}", headers=live.auth(ada))).json()
    assert got["status"] == "open" and got["helper"] is None
    assert [c["status"] for c in got["claims"]] == ["lapsed"]
    # Bo's token is refused; Bo's client posts are refused with the reason.
    refused = await client.get("/v1/needs", headers=live.auth(bo))
    assert refused.status_code in (401, 403), refused.text
    more = pod.sign(
        bo, "need.posted", {"title": "more", "category": "food", "urgency": "low"}, advance=False
    )
    response = await client.post("/v1/events", content=encode_envelope(more))
    assert response.json()["results"][0]["reason"] == "blocked"
    # The need Bo posted at the block's position (seq 2) is un-projected and served to nobody.
    listed = (await client.get("/v1/needs", headers=live.auth(ada))).json()
    assert event_id(spam) not in {n["id"] for n in listed}
    events = (await client.get("/v1/events?kinds=need.posted", headers=live.auth(ada))).json()
    assert event_id(spam) not in {e["id"] for e in events["events"]}
    one = await client.get(f"/v1/events/{event_id(spam)}", headers=live.auth(cy))
    assert one.status_code == 404

    # Unblocked from the next position on: later events count, the blocked one stays out.
    unblock = pod.sign(
        cy,
        "member.unblocked",
        {"key": bo.public_b64, "effective": {"pod": 3, "peers": 1, "public": 1}},
        scope="public",
    )
    [result] = await live.results(unblock)
    assert result["effect"]["message"] == "member unblocked"
    got = (await client.get(f"/v1/needs/{event_id(need)}", headers=live.auth(ada))).json()
    assert (got["status"], got["helper"]) == ("claimed", bo.public_b64)  # the claim is back
    later = pod.need(bo, "Bo can drive")
    await live.results(later)
    listed = (await client.get("/v1/needs", headers=live.auth(ada))).json()
    assert {event_id(later), event_id(need)} <= {n["id"] for n in listed}
    assert event_id(spam) not in {n["id"] for n in listed}


async def test_only_a_coordinator_blocks_and_a_block_of_a_stranger_does_nothing(
    live: LiveNode,
) -> None:
    pod, client = live.pod, live.client
    ada, bo, cy = pod.key("ada"), pod.key("bo"), pod.key("cy")
    by_member = pod.sign(
        ada, "member.blocked", {"key": bo.public_b64, "effective": {"pod": 1}}, scope="public"
    )
    response = await client.post("/v1/events", content=encode_envelope(by_member))
    [result] = response.json()["results"]
    assert (result["ok"], result["reason"]) == (False, "unauthorized")
    assert "coordinator" in result["message"]
    stranger = pod.key("stranger")
    of_stranger = pod.sign(
        cy, "member.blocked", {"key": stranger.public_b64, "effective": {"pod": 1}}, scope="public"
    )
    [result] = await live.results(of_stranger)
    assert result["effect"]["reason"] == "effect:not-a-member"
