"""``POST /v1/invites/redeem`` and ``GET /v1/invites`` on a real node (docs/invites.md): a
coordinator signs ``invite.created``, a newcomer's device redeems the code with its own key."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.datadir import DataDir
from node.invite_routes import REDEEM_LIMIT
from node.projections.invites import code_hash, new_code
from protocol.crypto import SigningKey
from tests.node.conftest import LiveNode, box_key, event_id, init_datadir, live_node, now_ms

HOUR = 3_600_000


class Api(LiveNode):
    async def make_invite(
        self, by: str = "eve", *, approve: str = "auto", expires_in: int = HOUR
    ) -> tuple[str, str]:
        """Sign and post an invite by ``by``: its code and id."""
        code = new_code()
        body = {
            "code_hash": code_hash(code),
            "expires_at": now_ms() + expires_in,
            "approve": approve,
        }
        env = self.pod.sign(self.pod.key(by), "invite.created", body)
        await self.results(env)
        return code, event_id(env)

    async def redeem(
        self, code: Any, who: SigningKey, *, signer: SigningKey | None = None, **extra: Any
    ) -> Any:
        body = {"code": code, "key": who.public_b64, "box_key": box_key(who.public_b64), **extra}
        headers = self.auth(signer or who) if signer is not False else {}
        return await self.client.post("/v1/invites/redeem", json=body, headers=headers)

    async def invites(self, key: SigningKey | None) -> Any:
        headers = {} if key is None else self.auth(key)
        return await self.client.get("/v1/invites", headers=headers)

    async def status_of(self, invite: str) -> str:
        listing = (await self.invites(self.pod.key("eve"))).json()
        return next(i["status"] for i in listing["invites"] if i["id"] == invite)

    def members(self) -> set[str]:
        roster = self.node.ingest.roster.pods[self.node.pod]
        return set(roster.members)


@pytest.fixture
def datadir(tmp_path: Path) -> DataDir:
    return init_datadir(tmp_path)  # type: ignore[no-any-return]


@pytest.fixture
async def api(datadir: DataDir) -> AsyncIterator[Api]:
    """A running node with Ada (member) and Eve (coordinator)."""
    async for client, node, pod in live_node(datadir, "inv"):
        a = Api(client, node, pod)
        await a.results(pod.add("ada"), pod.add("eve", "coordinator"))
        yield a


def newcomer(name: str) -> SigningKey:
    return SigningKey.from_seed(name.encode().ljust(32, b"."))


async def test_an_auto_invite_adds_the_newcomer_once(api: Api) -> None:
    code, invite = await api.make_invite(approve="auto")
    assert await api.status_of(invite) == "open"
    nia = newcomer("nia")
    answer = await api.redeem(code, nia, name="Nia")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "added"
    assert nia.public_b64 in api.members()
    listing = (await api.invites(api.pod.key("eve"))).json()
    item = next(i for i in listing["invites"] if i["id"] == invite)
    assert (item["status"], item["member"], item["approve"]) == ("used", nia.public_b64, "auto")
    assert listing["requests"] == []
    # The node signed member.added naming the invite, with the node key, role member.
    events = (await api.client.get("/v1/events", params={"kinds": "member.added"})).json()
    last = events["events"][-1]["envelope"]
    assert json.loads(last["head"])["author"] == api.node.key.public_b64
    assert json.loads(last["body"]) == {
        "key": nia.public_b64,
        "role": "member",
        "box_key": box_key(nia.public_b64),
        "invite": invite,
    }
    again = await api.redeem(code, newcomer("other"))
    assert again.status_code == 409
    assert again.json()["reason"] == "invite:used"
    # The same device again: it joined by this invite.
    assert (await api.redeem(code, nia)).json()["status"] == "added"


async def test_a_coordinator_approves_a_waiting_request(api: Api, datadir: DataDir) -> None:
    code, invite = await api.make_invite(approve="coordinator")
    bo = newcomer("bo")
    answer = await api.redeem(code, bo, name="Bo Lind")
    assert answer.json()["status"] == "pending"
    assert bo.public_b64 not in api.members()
    # Asking again from the same device: still waiting; from another: refused.
    assert (await api.redeem(code, bo)).json()["status"] == "pending"
    other = await api.redeem(code, newcomer("cy"))
    assert (other.status_code, other.json()["reason"]) == (409, "invite:used")
    listing = (await api.invites(api.pod.key("eve"))).json()
    assert next(i for i in listing["invites"] if i["id"] == invite)["status"] == "pending"
    [request] = listing["requests"]
    assert (request["invite"], request["key"], request["name"]) == (
        invite,
        bo.public_b64,
        "Bo Lind",
    )
    assert request["box_key"] == box_key(bo.public_b64)
    # Eve approves: she signs member.added naming the invite.
    body = {"key": bo.public_b64, "role": "member", "box_key": request["box_key"], "invite": invite}
    await api.results(api.pod.sign(api.pod.key("eve"), "member.added", body, scope="public"))
    assert bo.public_b64 in api.members()
    assert (await api.redeem(code, bo)).json()["status"] == "added"
    listing = (await api.invites(api.pod.key("eve"))).json()
    assert listing["requests"] == []
    assert next(i for i in listing["invites"] if i["id"] == invite)["status"] == "used"
    # The name is gone from the node's table once decided.
    with sqlite3.connect(datadir.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM node_join_requests").fetchone() == (0,)


async def test_declining_revokes_and_the_request_goes(api: Api) -> None:
    code, invite = await api.make_invite(approve="coordinator")
    dee = newcomer("dee")
    assert (await api.redeem(code, dee, name="Dee")).json()["status"] == "pending"
    await api.results(api.pod.sign(api.pod.key("eve"), "invite.revoked", {"invite": invite}))
    listing = (await api.invites(api.pod.key("eve"))).json()
    assert listing["requests"] == []
    assert await api.status_of(invite) == "revoked"
    answer = await api.redeem(code, dee)
    assert (answer.status_code, answer.json()["reason"]) == (409, "invite:revoked")


async def test_refusals_say_why(api: Api) -> None:
    code, invite = await api.make_invite(expires_in=-1)
    answer = await api.redeem(code, newcomer("late"))
    assert (answer.status_code, answer.json()["reason"]) == (409, "invite:expired")
    assert await api.status_of(invite) == "expired"
    unknown = await api.redeem(new_code(), newcomer("x"))
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "invite:unknown")
    for bad in ("short", "é" * 30, 12345, None):
        answer = await api.redeem(bad, newcomer("x"))
        assert (answer.status_code, answer.json()["reason"]) == (404, "invite:unknown")
        assert str(bad) not in answer.text or bad is None
    # An invite signed by a plain member counts for nothing.
    code, _ = await api.make_invite("ada")
    assert (await api.redeem(code, newcomer("y"))).json()["reason"] == "invite:unknown"
    # A member who is in the pod already.
    code, invite = await api.make_invite()
    ada = await api.redeem(code, api.pod.key("ada"))
    assert (ada.status_code, ada.json()["reason"]) == (409, "invite:already-member")
    assert await api.status_of(invite) == "open"


async def test_the_token_must_be_the_newcomers_own(api: Api) -> None:
    code, invite = await api.make_invite()
    zed = newcomer("zed")
    stolen = await api.redeem(code, zed, signer=newcomer("mallory"))
    assert (stolen.status_code, stolen.json()["reason"]) == (401, "invalid:token:author")
    bare = await api.redeem(code, zed, signer=False)
    assert (bare.status_code, bare.json()["reason"]) == (401, "invalid:token:format")
    assert await api.status_of(invite) == "open"


async def test_only_coordinators_list_invites(api: Api) -> None:
    assert (await api.invites(None)).status_code == 401
    member = await api.invites(api.pod.key("ada"))
    assert (member.status_code, member.json()["reason"]) == (403, "unauthorized")
    listing = (await api.invites(api.pod.key("eve"))).json()
    assert listing["roster_scope"] == "public"
    assert listing["pod"] == api.node.pod


async def test_a_revocation_by_a_member_changes_nothing(api: Api) -> None:
    code, invite = await api.make_invite()
    await api.results(api.pod.sign(api.pod.key("ada"), "invite.revoked", {"invite": invite}))
    assert await api.status_of(invite) == "open"
    assert (await api.redeem(code, newcomer("ok"))).json()["status"] == "added"


async def test_redemption_is_rate_limited_per_address(api: Api) -> None:
    for _ in range(REDEEM_LIMIT):
        assert (await api.redeem(new_code(), newcomer("guess"))).status_code == 404
    answer = await api.redeem(new_code(), newcomer("guess"))
    assert (answer.status_code, answer.json()["reason"]) == (429, "invite:too-many")
