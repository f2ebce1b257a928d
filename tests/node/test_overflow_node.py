"""Overflow between pods on one real node, in-process: the routes of ``node.overflow_routes``,
the moves ``node.overflow.Duties`` signs on request, the sealed-recipient rule of ingest, the
``pods`` key listing and the overflow metrics — driven through ``AsyncTestClient``.

The node's own pod is A (made by ``kith init``). A neighbour pod B exists here only as its
public roster (``pod.created``, ``node.key``, ``member.added``), posted as public events: a
client may post public events of any pod. What B's own node would do with an assignment needs a
second, federated node: ``tests/integration/test_overflow.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from node.api import build_app
from node.app import Node
from node.cli import main
from node.datadir import DataDir, read_key_file
from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.envelope import Envelope
from protocol.sealed import SealedField, box_keypair_from_seed, field_aad, open_json, seal_json
from protocol.tokens import make_token
from tests.node.conftest import PodBuilder, Scrape, event_id, post_events, signing_key

DETAILS_AAD = field_aad("overflow.assigned", "details")
NEED_AAD = field_aad("need.posted", "personal")
#: What a need says that must never leave its pod in a referral.
TITLE = "Soup for Amara at 12 Elm Street"
DETAILS = "Amara is in flat 3; ring twice"


def now_ms() -> int:
    return int(time.time() * 1000)


def box_pair(name: str) -> tuple[bytes, bytes]:
    """A real X25519 ``(private, public)`` pair named for readability."""
    return box_keypair_from_seed(hashlib.sha256(f"kith-test-box:{name}".encode()).digest())


@dataclass
class Api:
    client: AsyncTestClient[Any]
    node: Node
    pod: PodBuilder
    other: PodBuilder
    boxes: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)

    def auth(self, key: SigningKey) -> dict[str, str]:
        token = make_token(key, purpose="http", node_key=self.node.key.public_b64, now_ms=now_ms())
        return {"authorization": "Kith " + token}

    def member(self, pod: PodBuilder, name: str, role: str = "member") -> Envelope:
        """``member.added`` of ``name`` to ``pod`` with a real box key, by that pod's node key."""
        self.boxes[name] = box_pair(name)
        body = {"key": pod.key(name).public_b64, "role": role, "box_key": self.box(name)}
        return pod.sign(pod.node, "member.added", body, scope="public")

    def box(self, name: str) -> str:
        return b64e(self.boxes[name][1])

    async def post(self, *envs: Envelope) -> list[dict[str, Any]]:
        return await post_events(self.client, *envs)

    async def posted(self, env: Envelope) -> str:
        [result] = await self.post(env)
        assert result["ok"] and result.get("reason") is None, result
        return event_id(env)

    async def call(
        self, path: str, data: Any = None, *, key: SigningKey | None = None
    ) -> tuple[int, Any]:
        """POST ``data`` to ``path`` as ``key`` (Cy, the coordinator, by default)."""
        who = key if key is not None else self.pod.key("cy")
        response = await self.client.post(path, json=data, headers=self.auth(who))
        return response.status_code, response.json()

    async def get(self, path: str, key: SigningKey | None = None, **params: Any) -> Any:
        headers = self.auth(key) if key is not None else {}
        response = await self.client.get(path, params=params or None, headers=headers)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


@pytest.fixture
def datadir(tmp_path: Path) -> DataDir:
    """A data directory made by ``kith init``."""
    path = tmp_path / "pod"
    assert main(["init", "--dir", str(path), "--name", "Elm Street"]) == 0
    return DataDir(path)


@pytest.fixture
async def api(datadir: DataDir) -> AsyncIterator[Api]:
    """A serving node for pod A (Ada a member, Cy its coordinator) that also holds the public
    roster of pod B (Dee its coordinator, Eve a member)."""
    node = Node(datadir)
    pod = PodBuilder("overflow-a", ts=now_ms())
    pod.root = read_key_file(datadir.root_key_path).signing_key()
    pod.node = node.key
    other = PodBuilder("overflow-b", ts=now_ms())
    async with AsyncTestClient(app=build_app(node)) as client:
        a = Api(client, node, pod, other)
        roster = [
            a.member(pod, "ada"),
            a.member(pod, "cy", "coordinator"),
            *other.genesis(),
            a.member(other, "dee", "coordinator"),
            a.member(other, "eve"),
        ]
        results = await a.post(*roster)
        assert [r["ok"] for r in results] == [True] * len(roster), results
        yield a


def ada(api: Api) -> SigningKey:
    return api.pod.key("ada")


def cy(api: Api) -> SigningKey:
    return api.pod.key("cy")


async def post_need(api: Api, **extra: Any) -> str:
    """Ada's open need, with a title and details that name her."""
    window = {"start": now_ms() + 3_600_000, "end": now_ms() + 7_200_000}
    body = {
        "title": TITLE,
        "details": DETAILS,
        "category": "food",
        "urgency": "high",
        "area": "North",
        "window": window,
        "minutes_estimate": 45,
        **extra,
    }
    return await api.posted(api.pod.sign(ada(api), "need.posted", body))


async def refer(api: Api, need: str) -> dict[str, Any]:
    status, answer = await api.call("/v1/overflow/refer", {"need": need})
    assert status == 200, answer
    assert answer["ok"] is True and answer["id"] == answer["referral"]["referral"]["id"]
    referral: dict[str, Any] = answer["referral"]
    return referral


def sealed_to(*box_keys: bytes) -> dict[str, Any]:
    details = {"title": TITLE, "details": DETAILS, "personal": {"address": "12 Elm Street"}}
    sealed: dict[str, Any] = msgspec.to_builtins(
        seal_json(details, list(box_keys), aad=DETAILS_AAD)
    )
    return sealed


def refused(answer: tuple[int, Any], status: int, reason: str) -> str:
    code, body = answer
    assert (code, body["reason"]) == (status, reason), body
    message: str = body["message"]
    assert message
    return message


async def event_body(api: Api, event: str) -> Any:
    envelope = (await api.get(f"/v1/events/{event}", ada(api)))["envelope"]
    body = envelope["body"]
    return json.loads(body) if isinstance(body, str) else body


# --- refer -----------------------------------------------------------------------------


async def test_coordinator_refers_with_a_summary_of_coarse_fields_only(api: Api) -> None:
    need = await post_need(api)
    item = await refer(api, need)
    assert (item["direction"], item["state"], item["local_need"]) == ("outgoing", "referred", need)
    view = item["referral"]
    assert (view["pod"], view["need"], view["state"]) == (api.pod.id, need, "referred")
    assert (view["category"], view["urgency"], view["area"]) == ("food", "high", "North")
    assert (view["minutes_estimate"], view["hops_left"], view["path"]) == (45, 2, [])

    # The signed event carries the coarse fields and nothing that names Amara.
    body = await event_body(api, view["id"])
    assert set(body) == {"need", "summary", "hops_left", "expires_at"}
    assert set(body["summary"]) == {"category", "urgency", "area", "window", "minutes_estimate"}
    assert body["need"] == need
    for text in (json.dumps(body), json.dumps(item)):
        assert "Amara" not in text and "Elm Street" not in text and "ring twice" not in text

    shown = await api.get(f"/v1/needs/{need}", ada(api))
    assert shown["overflow"] == {"referral": view["id"], "state": "referred", "to_pod": None}
    assert shown["title"] == TITLE  # the need itself is unchanged, in its own pod


async def test_a_need_never_referred_has_no_overflow(api: Api) -> None:
    need = await post_need(api)
    assert (await api.get(f"/v1/needs/{need}", ada(api)))["overflow"] is None


async def test_refer_with_fewer_fields_leaves_them_out(api: Api) -> None:
    body = {"title": TITLE, "category": "ride", "urgency": "normal"}
    need = await api.posted(api.pod.sign(ada(api), "need.posted", body))
    item = await refer(api, need)
    sent = await event_body(api, item["referral"]["id"])
    assert sent["summary"] == {"category": "ride", "urgency": "normal"}


async def test_refer_with_hops_and_expiry_asked_for(api: Api) -> None:
    need = await post_need(api)
    before = now_ms()
    status, answer = await api.call(
        "/v1/overflow/refer", {"need": need, "hops_left": 0, "expires_in_hours": 1}
    )
    assert status == 200, answer
    view = answer["referral"]["referral"]
    assert view["hops_left"] == 0
    assert before + 3_600_000 <= view["expires_at"] <= now_ms() + 3_600_000


async def test_a_member_may_not_refer(api: Api) -> None:
    need = await post_need(api)
    answer = await api.call("/v1/overflow/refer", {"need": need}, key=ada(api))
    refused(answer, 403, "unauthorized")
    assert (await api.get("/v1/overflow", ada(api)))["outgoing"] == []


async def test_refer_an_unknown_need(api: Api) -> None:
    refused(await api.call("/v1/overflow/refer", {"need": "A" * 43}), 404, "overflow:unknown-need")


async def test_refer_a_need_of_another_pod(api: Api) -> None:
    # B's public need is held here, but only a need of this node's own pod is referred here.
    eve = api.other.key("eve")
    body = {"title": "B's need", "category": "food", "urgency": "normal"}
    need = await api.posted(api.other.sign(eve, "need.posted", body, scope="public"))
    refused(await api.call("/v1/overflow/refer", {"need": need}), 404, "overflow:unknown-need")


async def test_refer_twice(api: Api) -> None:
    need = await post_need(api)
    first = await refer(api, need)
    message = refused(
        await api.call("/v1/overflow/refer", {"need": need}), 409, "overflow:already-referred"
    )
    assert first["referral"]["id"] in message
    assert [i["referral"]["id"] for i in (await api.get("/v1/overflow", ada(api)))["outgoing"]] == [
        first["referral"]["id"]
    ]


async def test_refer_a_withdrawn_need(api: Api) -> None:
    need = await post_need(api)
    await api.posted(api.pod.sign(ada(api), "need.withdrawn", {"need": need}))
    refused(await api.call("/v1/overflow/refer", {"need": need}), 409, "overflow:need-withdrawn")


@pytest.mark.parametrize(
    "data",
    [{"hops_left": 9}, {"hops_left": -1}, {"expires_in_hours": 0}, {"surprise": 1}],
    ids=["hops-9", "hops-negative", "no-time", "unknown-field"],
)
async def test_refer_request_out_of_bounds_is_400(api: Api, data: dict[str, Any]) -> None:
    need = await post_need(api)
    status, _ = await api.call("/v1/overflow/refer", {"need": need, **data})
    assert status == 400
    assert (await api.get(f"/v1/needs/{need}", ada(api)))["overflow"] is None


# --- reading ---------------------------------------------------------------------------


async def test_referrals_are_for_members(api: Api) -> None:
    item = await refer(api, await post_need(api))
    anonymous = await api.client.get("/v1/overflow")
    assert (anonymous.status_code, anonymous.json()["reason"]) == (401, "unauthorized")
    one = await api.client.get(f"/v1/overflow/{item['referral']['id']}")
    assert (one.status_code, one.json()["reason"]) == (401, "unauthorized")
    stranger = await api.client.get("/v1/overflow", headers=api.auth(signing_key("stranger")))
    assert stranger.status_code == 401


async def test_listing_and_one_referral(api: Api) -> None:
    item = await refer(api, await post_need(api))
    referral = item["referral"]["id"]
    listing = await api.get("/v1/overflow", ada(api))
    assert listing["pod"] == api.pod.id
    assert [i["referral"]["id"] for i in listing["outgoing"]] == [referral]
    assert listing["incoming"] == []
    assert (await api.get("/v1/overflow", ada(api), state="assigned"))["outgoing"] == []
    assert len((await api.get("/v1/overflow", ada(api), state="referred"))["outgoing"]) == 1
    one = await api.get(f"/v1/overflow/{referral}", ada(api))
    assert one == listing["outgoing"][0]
    missing = await api.client.get(f"/v1/overflow/{'A' * 43}", headers=api.auth(ada(api)))
    assert (missing.status_code, missing.json()["reason"]) == (404, "not-found")


# --- moves -----------------------------------------------------------------------------


async def test_a_pod_cannot_offer_on_its_own_referral(api: Api) -> None:
    referral = (await refer(api, await post_need(api)))["referral"]["id"]
    answer = await api.call(f"/v1/overflow/{referral}/offer", {"note": "we can"})
    refused(answer, 409, "overflow:own-referral")
    assert (await api.get(f"/v1/overflow/{referral}", ada(api)))["referral"]["offers"] == []


async def test_a_member_may_not_move_a_referral(api: Api) -> None:
    referral = (await refer(api, await post_need(api)))["referral"]["id"]
    answer = await api.call(
        f"/v1/overflow/{referral}/assign", {"to_pod": api.other.id}, key=ada(api)
    )
    refused(answer, 403, "unauthorized")


async def test_moves_on_an_unknown_referral(api: Api) -> None:
    for move, data in (("offer", {}), ("assign", {"to_pod": api.other.id}), ("return", {})):
        answer = await api.call(f"/v1/overflow/{'A' * 43}/{move}", data)
        refused(answer, 404, "overflow:unknown-referral")


async def test_never_assigned_to_a_pod_on_its_path(api: Api) -> None:
    referral = (await refer(api, await post_need(api)))["referral"]["id"]
    answer = await api.call(f"/v1/overflow/{referral}/assign", {"to_pod": api.pod.id})
    refused(answer, 409, "overflow:on-path")


async def test_details_sealed_to_a_stranger_are_refused(api: Api) -> None:
    referral = (await refer(api, await post_need(api)))["referral"]["id"]
    stranger = box_pair("stranger")[1]
    for recipients in ([stranger], [api.boxes["dee"][1], stranger], [api.boxes["eve"][1]]):
        data = {"to_pod": api.other.id, "details": sealed_to(*recipients)}
        answer = await api.call(f"/v1/overflow/{referral}/assign", data)
        refused(answer, 400, "invalid:sealed-recipients")
    # A's own coordinator is not a recipient for B's copy either.
    data = {"to_pod": api.other.id, "details": sealed_to(api.boxes["cy"][1])}
    refused(
        await api.call(f"/v1/overflow/{referral}/assign", data), 400, "invalid:sealed-recipients"
    )
    assert (await api.get(f"/v1/overflow/{referral}", ada(api)))["state"] == "referred"


async def test_assign_to_a_neighbour_with_details_sealed_to_its_coordinators(api: Api) -> None:
    need = await post_need(api)
    referral = (await refer(api, need))["referral"]["id"]
    data = {"to_pod": api.other.id, "details": sealed_to(api.boxes["dee"][1])}
    status, answer = await api.call(f"/v1/overflow/{referral}/assign", data)
    assert status == 200, answer
    assert answer["ok"] is True
    item = answer["referral"]
    assert item["state"] == "assigned"
    assignment = item["referral"]["assignment"]
    assert assignment["id"] == answer["id"]
    assert (assignment["to_pod"], assignment["sealed_to"]) == (api.other.id, [api.box("dee")])

    # What was signed opens for B's coordinator only.
    body = await event_body(api, answer["id"])
    assert (body["referral"], body["to_pod"]) == (referral, api.other.id)
    opened = open_json(
        msgspec.convert(body["details"], type=SealedField),
        api.boxes["dee"][0],
        aad=DETAILS_AAD,
    )
    assert opened["title"] == TITLE

    shown = await api.get(f"/v1/needs/{need}", ada(api))
    assert shown["overflow"] == {"referral": referral, "state": "assigned", "to_pod": api.other.id}

    again = await api.call(f"/v1/overflow/{referral}/assign", {"to_pod": api.other.id})
    refused(again, 409, "overflow:state:assigned")
    # Only the pod it was assigned to closes it.
    refused(await api.call(f"/v1/overflow/{referral}/return", {}), 409, "overflow:not-assignee")
    refer_again = await api.call("/v1/overflow/refer", {"need": need})
    refused(refer_again, 409, "overflow:already-referred")


async def test_assign_without_details(api: Api) -> None:
    referral = (await refer(api, await post_need(api)))["referral"]["id"]
    status, answer = await api.call(f"/v1/overflow/{referral}/assign", {"to_pod": api.other.id})
    assert status == 200, answer
    assert answer["referral"]["referral"]["assignment"]["sealed_to"] == []
    assert "details" not in await event_body(api, answer["id"])


async def test_refusals_are_counted_by_reason_in_metrics(api: Api) -> None:
    referral = (await refer(api, await post_need(api)))["referral"]["id"]
    for _ in range(2):
        await api.call(f"/v1/overflow/{referral}/offer", {})
    await api.call(f"/v1/overflow/{referral}/assign", {"to_pod": api.pod.id})
    await api.call("/v1/overflow/refer", {"need": "A" * 43})
    await api.call("/v1/overflow/refer", {"need": "A" * 43}, key=ada(api))  # 403: not a move
    scrape = Scrape.parse((await api.client.get("/metrics")).text)
    assert scrape.labelled("kith_overflow_refused_total") == {
        (("reason", "overflow:on-path"),): 1,
        (("reason", "overflow:own-referral"),): 2,
        (("reason", "overflow:unknown-need"),): 1,
    }
    # The origin signs nothing on its own before the assigned pod answers.
    assert scrape.labelled("kith_overflow_signed_total") == {}


# --- the sealed-recipient rule on client posts ---------------------------------------------


async def test_a_need_sealed_to_a_non_member_is_refused(api: Api) -> None:
    for outsider in (box_pair("stranger")[1], api.boxes["dee"][1]):
        personal = seal_json({"address": "12 Elm Street"}, [outsider], aad=NEED_AAD)
        body = {"title": TITLE, "category": "food", "urgency": "normal"}
        body["personal"] = msgspec.to_builtins(personal)
        env = api.pod.sign(ada(api), "need.posted", body, advance=False)
        [result] = await api.post(env)
        assert (result["ok"], result["reason"]) == (False, "invalid:sealed-recipients"), result
    members = [api.boxes["cy"][1], api.boxes["ada"][1]]
    personal = seal_json({"address": "12 Elm Street"}, members, aad=NEED_AAD)
    body = {"title": TITLE, "category": "food", "urgency": "normal"}
    body["personal"] = msgspec.to_builtins(personal)
    await api.posted(api.pod.sign(ada(api), "need.posted", body))


# --- /v1/pods/{pod}/keys -------------------------------------------------------------------


async def test_pod_keys_list_coordinators_and_members(api: Api) -> None:
    own = await api.get(f"/v1/pods/{api.pod.id}/keys")
    assert own == {
        "pod": api.pod.id,
        "coordinators": [api.box("cy")],
        "members": {
            ada(api).public_b64: api.box("ada"),
            cy(api).public_b64: api.box("cy"),
        },
    }
    other = await api.get(f"/v1/pods/{api.other.id}/keys")
    assert other["coordinators"] == [api.box("dee")]
    assert other["members"] == {
        api.other.key("dee").public_b64: api.box("dee"),
        api.other.key("eve").public_b64: api.box("eve"),
    }


async def test_removed_members_are_not_listed(api: Api) -> None:
    removed = {"key": api.other.key("dee").public_b64, "effective": {"public": 1}}
    await api.posted(api.other.sign(api.other.node, "member.removed", removed, scope="public"))
    keys = await api.get(f"/v1/pods/{api.other.id}/keys")
    assert keys["coordinators"] == []
    assert list(keys["members"]) == [api.other.key("eve").public_b64]


async def test_keys_of_an_unknown_pod(api: Api) -> None:
    response = await api.client.get(f"/v1/pods/{signing_key('nowhere').public_b64}/keys")
    assert (response.status_code, response.json()["reason"]) == (404, "not-found")
