"""``GET /v1/erasures`` and ``POST /v1/erasures`` on a real node in a data directory made by
``kith init``, with one neighbour pod on its allowlist whose receipts arrive as from a peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.cli import main
from node.datadir import DataDir
from protocol.crypto import SigningKey
from protocol.envelope import Envelope
from protocol.validate import from_peer
from tests.node.conftest import (
    LiveNode,
    PodBuilder,
    Scrape,
    event_id,
    init_datadir,
    live_node,
    now_ms,
)


class Api(LiveNode):
    oak: PodBuilder
    oak_genesis: list[Envelope]

    async def post(self, *envs: Envelope) -> list[dict[str, Any]]:
        return await self.results(*envs)

    async def erase(self, target: str, key: SigningKey | None) -> Any:
        headers = {} if key is None else self.auth(key)
        return await self.client.post("/v1/erasures", json={"target": target}, headers=headers)

    async def erasures(self, key: SigningKey | None, **params: Any) -> Any:
        headers = {} if key is None else self.auth(key)
        return await self.client.get("/v1/erasures", params=params, headers=headers)

    async def from_oak(self, *envs: Envelope) -> None:
        """Submit as relayed by oak's node — on the node's own event loop (the test client
        runs the app in a thread of its own), where federation would submit them."""
        writer = self.node.ingest._writer
        assert writer is not None
        submit = self.node.ingest.submit(list(envs), from_peer(self.oak.id))
        results = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(submit, writer.get_loop())
        )
        assert all(r.ok for r in results), results


@pytest.fixture
def datadir(tmp_path: Path) -> DataDir:
    """A data directory made by ``kith init``, with the pod ``oak`` as its one peer."""
    data = init_datadir(tmp_path)
    oak = PodBuilder("oak")
    # Nothing listens there: the node keeps trying to dial, which changes nothing here.
    url = "ws://127.0.0.1:9/v1/federation"
    assert main(["peer", "add", url, "--pod", oak.id, "--dir", str(data.path)]) == 0
    return data  # type: ignore[no-any-return]


@pytest.fixture
async def api(datadir: DataDir) -> AsyncIterator[Api]:
    """A running node with Ada and Bo (members) and Eve (coordinator)."""
    async for client, node, pod in live_node(datadir, "erase"):
        a = Api(client, node, pod)
        a.oak = PodBuilder("oak", ts=now_ms())
        await a.post(pod.add("ada"), pod.add("bo"), pod.add("eve", "coordinator"))
        a.oak_genesis = a.oak.genesis()
        await a.from_oak(*a.oak_genesis)
        yield a


def need(api: Api, key: SigningKey, scope: str = "peers") -> Envelope:
    body = {"title": "Lift", "category": "ride", "urgency": "normal", "details": "MARKER-r"}
    return api.pod.sign(key, "need.posted", body, scope=scope)  # type: ignore[arg-type]


async def test_a_coordinator_erases_and_sees_the_neighbours_receipt(api: Api) -> None:
    pod, oak = api.pod, api.oak
    ada, eve = pod.key("ada"), pod.key("eve")
    posted = need(api, ada)
    await api.post(posted)
    target = event_id(posted)
    answer = await api.erase(target, eve)
    assert answer.status_code == 200, answer.text
    erased = answer.json()
    item = erased["erasure"]
    assert erased["ok"] and item["id"] == erased["id"]
    assert item["status"] == "erased" and item["target_kind"] == "need.posted"
    assert item["summary"] == "erased on 0 of 1 neighbours (waiting for 1)"
    assert item["pending"] == [oak.id] and item["erased_by"] == pod.node.public_b64
    shown = (await api.client.get(f"/v1/needs/{target}", headers=api.auth(ada))).json()
    assert shown["title"] == "[removed]"

    # Oak's node confirms; a member of oak cannot speak for it.
    await api.from_oak(oak.add("olu"))
    body = {"redaction": erased["id"], "target": target}
    await api.from_oak(oak.sign(oak.key("olu"), "erasure.confirmed", body, scope="peers"))
    listing = (await api.erasures(eve)).json()
    assert listing["erasures"][0]["summary"] == "erased on 0 of 1 neighbours (waiting for 1)"
    await api.from_oak(oak.sign(oak.node, "erasure.confirmed", body, scope="peers"))
    listing = (await api.erasures(eve)).json()
    assert listing["peers"] == [oak.id] and listing["pod"] == api.node.pod
    (item,) = listing["erasures"]
    assert item["summary"] == "erased on 1 of 1 neighbours"
    assert item["confirmed"] == [oak.id] and item["pending"] == [] and item["neighbours"] == 1
    assert "MARKER" not in str(listing) and "Lift" not in str(listing)  # never a body

    again = await api.erase(target, eve)
    assert again.status_code == 409 and again.json()["reason"] == "erasure:already-erased"
    scrape = Scrape.parse((await api.client.get("/metrics")).text)
    assert scrape.value("kith_erasure_signed_total", kind="event.redacted") == 1


async def test_a_member_signs_their_own_erasure_and_sees_only_their_own(api: Api) -> None:
    pod = api.pod
    ada, bo, eve = pod.key("ada"), pod.key("bo"), pod.key("eve")
    mine = need(api, ada)
    await api.post(mine)
    told = await api.erase(event_id(mine), ada)
    assert told.status_code == 409
    sign = told.json()
    assert sign["reason"] == "erasure:sign-your-own" and "/v1/events" in sign["message"]
    assert sign["kind"] == "event.redacted" and sign["scope"] == "peers"
    (result,) = await api.post(pod.sign(ada, sign["kind"], sign["body"], scope=sign["scope"]))
    assert result["effect"]["message"] == "erased"
    for reader, count in ((ada, 1), (eve, 1), (bo, 0)):
        listing = (await api.erasures(reader)).json()
        assert len(listing["erasures"]) == count
    (item,) = (await api.erasures(ada, target=event_id(mine))).json()["erasures"]
    assert item["erased_by"] == ada.public_b64 and item["status"] == "erased"


async def test_refusals_say_why(api: Api) -> None:
    pod = api.pod
    ada, bo, eve = pod.key("ada"), pod.key("bo"), pod.key("eve")
    hers = need(api, ada)
    private = need(api, ada, scope="pod")
    claim = pod.sign(bo, "claim.made", {"need": event_id(hers)})
    await api.post(hers, private, claim)

    async def refused(target: str, key: SigningKey | None, status: int, reason: str) -> None:
        answer = await api.erase(target, key)
        assert answer.status_code == status, answer.text
        assert answer.json()["reason"] == reason and answer.json()["message"]

    await refused(event_id(hers), bo, 403, "erasure:not-allowed")
    await refused(event_id(claim), bo, 409, "erasure:not-redactable")
    await refused(event_id(claim), eve, 409, "erasure:not-redactable")
    await refused("A" * 43, eve, 404, "erasure:unknown-target")
    await refused(event_id(hers), None, 401, "unauthorized")
    await refused(event_id(api.oak_genesis[0]), eve, 403, "erasure:other-pod")
    bad = await api.client.post("/v1/erasures", json={"target": "x"}, headers=api.auth(eve))
    assert bad.status_code == 400
    anonymous = await api.erasures(None)
    assert anonymous.status_code == 401 and anonymous.json()["reason"] == "unauthorized"

    # Bo signs a redaction of Ada's need himself: stored, no effect, and listed as such.
    (result,) = await api.post(pod.redact(bo, event_id(hers), scope="peers"))
    assert result["effect"]["reason"] == "effect:not-allowed"
    (item,) = (await api.erasures(eve)).json()["erasures"]
    assert item["status"] == "not-allowed" and item["neighbours"] == 0
    assert item["summary"] == "no effect: only its author or a coordinator may erase it"

    # A pod-scope need never left the node: nothing for a neighbour to confirm.
    answer = (await api.erase(event_id(private), eve)).json()
    assert answer["erasure"]["neighbours"] == 0
    assert "never left this node" in answer["erasure"]["summary"]
