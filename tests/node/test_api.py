"""The HTTP API in-process: the Litestar app on a real node in a data directory made by
``kith init``, driven through ``litestar.testing.AsyncTestClient``."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from node.api import build_app
from node.app import VERSION, Node
from node.cli import main
from node.datadir import DataDir, read_key_file
from node.metrics import CONTENT_TYPE_LATEST
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, encode_envelope
from protocol.kinds import KNOWN_KINDS
from protocol.tokens import make_token
from tests.node.conftest import PodBuilder, Scrape, event_id, post_events, signing_key


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Api:
    client: AsyncTestClient[Any]
    node: Node
    pod: PodBuilder

    def auth(self, key: SigningKey, **kw: Any) -> dict[str, str]:
        kw.setdefault("node_key", self.node.key.public_b64)
        kw.setdefault("now_ms", now_ms())
        return {"authorization": "Kith " + make_token(key, purpose="http", **kw)}

    async def post(self, *envs: Envelope) -> list[dict[str, Any]]:
        return await post_events(self.client, *envs)

    async def events(self, key: SigningKey | None = None, **params: Any) -> dict[str, Any]:
        headers = self.auth(key) if key is not None else {}
        response = await self.client.get("/v1/events", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page


@pytest.fixture
def datadir(tmp_path: Path) -> DataDir:
    """A data directory made by ``kith init`` (genesis signed by the root key)."""
    path = tmp_path / "pod"
    assert main(["init", "--dir", str(path), "--name", "Elm Street"]) == 0
    data = DataDir(path)
    config = data.config()
    config.max_request_bytes = 512 * 1024
    data.write_config(config)
    return data


@pytest.fixture
async def api(datadir: DataDir) -> AsyncIterator[Api]:
    """The app on a running node with Ada, Bo (members) and Cy (coordinator) added."""
    node = Node(datadir)
    pod = PodBuilder("api", ts=now_ms())
    pod.root = read_key_file(datadir.root_key_path).signing_key()
    pod.node = node.key
    async with AsyncTestClient(app=build_app(node)) as client:
        a = Api(client, node, pod)
        results = await a.post(pod.add("ada"), pod.add("bo"), pod.add("cy", "coordinator"))
        assert all(r["ok"] for r in results)
        yield a


def ada(api: Api) -> SigningKey:
    return api.pod.key("ada")


# --- POST /v1/events -------------------------------------------------------------------


async def test_post_one_envelope(api: Api) -> None:
    env = api.pod.need(ada(api), "Soup")
    response = await api.client.post("/v1/events", content=encode_envelope(env))
    assert response.status_code == 200
    # A plain acceptance has no reason (docs/protocol.md §8), and says what it did.
    applied = {"ok": True, "reason": "applied", "message": "need posted"}
    assert response.json() == {"results": [{"id": event_id(env), "ok": True, "effect": applied}]}
    again = await api.client.post("/v1/events", content=encode_envelope(env))
    assert again.json()["results"] == [{"id": event_id(env), "ok": True, "reason": "duplicate"}]


async def test_post_a_batch_answers_every_event_in_order(api: Api) -> None:
    pod = api.pod
    good1, good2 = pod.need(ada(api), "1"), pod.need(ada(api), "2")
    stranger = pod.need(signing_key("stranger"))
    results = await api.post(good1, stranger, good2)
    assert [(r["id"], r["ok"], r.get("reason")) for r in results] == [
        (event_id(good1), True, None),
        (event_id(stranger), False, "unauthorized"),
        (event_id(good2), True, None),
    ]
    assert results[1]["message"]
    response = await api.client.post("/v1/events", content=b'{"events":[{"head":1}]}')
    [bad] = response.json()["results"]
    assert bad["id"] is None and bad["ok"] is False
    assert bad["reason"].startswith("invalid:envelope")


async def test_client_fork_answer_carries_the_log_head(api: Api) -> None:
    pod = api.pod
    first = pod.need(ada(api), "first")
    prev = msgspec.json.decode(first.head)["prev"]
    seq = msgspec.json.decode(first.head)["seq"]
    rival = pod.sign(ada(api), "need.posted", None, seq=seq, prev=prev, advance=False)
    await api.post(first)
    [result] = await api.post(rival)
    assert (result["ok"], result["reason"]) == (False, "fork")
    assert result["head"]["seq"] == seq and result["head"]["id"] == event_id(first)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not json", 400, "invalid:request"),
        (b"[1, 2]", 400, "invalid:request"),
        (b'{"events": 5}', 400, "invalid:request"),
        (b"", 400, "invalid:request"),
    ],
)
async def test_post_that_cannot_be_read_is_400(
    api: Api, body: bytes, status: int, reason: str
) -> None:
    response = await api.client.post("/v1/events", content=body)
    assert response.status_code == status
    assert response.json()["reason"] == reason
    assert response.json()["message"]


async def test_post_too_many_events_is_413(api: Api) -> None:
    api.node.config.max_batch = 2
    envs = [api.pod.need(ada(api), str(i)) for i in range(3)]
    body = b'{"events":[' + b",".join(encode_envelope(e) for e in envs) + b"]}"
    response = await api.client.post("/v1/events", content=body)
    assert response.status_code == 413
    assert response.json()["reason"] == "too-large"
    assert (await api.events(ada(api), kinds="need.posted"))["events"] == []


async def test_oversize_request_body_is_413(api: Api) -> None:
    response = await api.client.post("/v1/events", content=b" " * (600 * 1024))
    assert response.status_code == 413


# --- GET /v1/events --------------------------------------------------------------------


@pytest.fixture
async def filled(api: Api) -> dict[str, Envelope]:
    """Public and pod events by Ada and Bo (ts strictly increasing)."""
    pod = api.pod
    bo = pod.key("bo")
    envs = {
        "ada-pod-need": pod.need(ada(api), "pod need"),
        "ada-public-need": pod.sign(
            ada(api),
            "need.posted",
            {"title": "public need", "category": "ride", "urgency": "high"},
            scope="public",
        ),
        "bo-offer": pod.sign(bo, "offer.posted", {"title": "I drive", "category": "ride"}),
        "bo-public-offer": pod.sign(
            bo, "offer.posted", {"title": "tools", "category": "repair"}, scope="public"
        ),
    }
    assert all(r["ok"] for r in await api.post(*envs.values()))
    return envs


def ids(page: dict[str, Any]) -> list[str]:
    return [e["id"] for e in page["events"]]


async def test_anonymous_sees_public_events_only(api: Api, filled: dict[str, Envelope]) -> None:
    page = await api.events()
    scopes = {msgspec.json.decode(e["envelope"]["head"])["scope"] for e in page["events"]}
    assert scopes == {"public"}
    assert event_id(filled["ada-public-need"]) in ids(page)
    assert event_id(filled["ada-pod-need"]) not in ids(page)
    assert (await api.events(scopes="pod"))["events"] == []


async def test_member_token_shows_pod_events(api: Api, filled: dict[str, Envelope]) -> None:
    page = await api.events(ada(api))
    assert {event_id(e) for e in filled.values()} <= set(ids(page))
    member_only = await api.events(ada(api), scopes="pod")
    assert set(ids(member_only)) == {event_id(filled["ada-pod-need"]), event_id(filled["bo-offer"])}


async def test_events_are_served_as_signed(api: Api, filled: dict[str, Envelope]) -> None:
    page = await api.events(ada(api), ids=event_id(filled["ada-pod-need"]))
    [one] = page["events"]
    assert one["envelope"] == msgspec.to_builtins(filled["ada-pod-need"])
    assert isinstance(one["cursor"], int)


async def test_event_filters(api: Api, filled: dict[str, Envelope]) -> None:
    key = ada(api)
    needs = await api.events(key, kinds="need.*")
    assert set(ids(needs)) == {
        event_id(filled["ada-pod-need"]),
        event_id(filled["ada-public-need"]),
    }
    both = await api.events(key, kinds="need.posted,offer.posted")
    assert len(both["events"]) == 4
    repeated = await api.events(key, kinds=["need.posted", "offer.posted"])
    assert ids(repeated) == ids(both)
    by_bo = await api.events(key, authors=api.pod.key("bo").public_b64)
    assert set(ids(by_bo)) == {event_id(filled["bo-offer"]), event_id(filled["bo-public-offer"])}
    ts = {name: msgspec.json.decode(env.head)["ts"] for name, env in filled.items()}
    window = await api.events(
        key, since=ts["ada-public-need"], until=ts["bo-offer"], kinds="need.*,offer.*"
    )
    assert ids(window) == [event_id(filled["ada-public-need"]), event_id(filled["bo-offer"])]
    assert (await api.events(key, pods="someone-else"))["events"] == []


async def test_pagination_with_after_and_next(api: Api, filled: dict[str, Envelope]) -> None:
    key = ada(api)
    everything = ids(await api.events(key))
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params = {"limit": 2} if after is None else {"limit": 2, "after": after}
        page = await api.events(key, **params)
        pages += 1
        seen += ids(page)
        if page["next"] is None:
            break
        assert page["next"] == page["events"][-1]["cursor"]
        after = page["next"]
    assert seen == everything
    assert pages == len(everything) // 2 + 1


@pytest.mark.parametrize("limit", [0, -1, 10_001])
async def test_limit_out_of_bounds_is_400(api: Api, limit: int) -> None:
    response = await api.client.get("/v1/events", params={"limit": limit})
    assert response.status_code == 400


async def test_one_event_by_id(api: Api, filled: dict[str, Envelope]) -> None:
    public, private = filled["ada-public-need"], filled["ada-pod-need"]
    response = await api.client.get(f"/v1/events/{event_id(public)}")
    assert response.status_code == 200
    assert response.json()["envelope"] == msgspec.to_builtins(public)
    hidden = await api.client.get(f"/v1/events/{event_id(private)}")
    assert (hidden.status_code, hidden.json()["reason"]) == (404, "not-found")
    shown = await api.client.get(f"/v1/events/{event_id(private)}", headers=api.auth(ada(api)))
    assert shown.status_code == 200 and shown.json()["id"] == event_id(private)
    missing = await api.client.get(f"/v1/events/{'A' * 43}", headers=api.auth(ada(api)))
    assert missing.status_code == 404


# --- tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        (lambda api: {"authorization": "Kith nonsense"}, "invalid:token:format"),
        (lambda api: {"authorization": "Bearer abc"}, "invalid:token:format"),
        (lambda api: {"authorization": "Kith"}, "invalid:token:format"),
        (
            lambda api: api.auth(ada(api), now_ms=now_ms() - 10 * 60_000),
            "invalid:token:expired",
        ),
        (
            lambda api: api.auth(ada(api), node_key=signing_key("other-node").public_b64),
            "invalid:token:node",
        ),
        (lambda api: api.auth(signing_key("stranger")), "unauthorized"),
    ],
    ids=["garbage", "scheme", "empty", "expired", "other-node", "non-member"],
)
async def test_bad_tokens_are_401_with_the_reason(api: Api, make_header: Any, reason: str) -> None:
    for path in ("/v1/events", "/v1/needs", "/v1/timebank"):
        response = await api.client.get(path, headers=make_header(api))
        assert response.status_code == 401, path
        assert response.json()["reason"] == reason, response.json()


async def test_every_kind_of_roster_key_may_read(api: Api) -> None:
    for key in (api.node.key, api.pod.root, api.pod.key("cy"), ada(api)):
        response = await api.client.get("/v1/timebank", headers=api.auth(key))
        assert response.status_code == 200


# --- logs ------------------------------------------------------------------------------


async def test_log_heads(api: Api, filled: dict[str, Envelope]) -> None:
    pod, key = api.pod, ada(api)
    public_log = f"/v1/logs/{pod.id}/{key.public_b64}/public"
    response = await api.client.get(public_log)
    head = msgspec.json.decode(filled["ada-public-need"].head)
    assert response.json() == {
        "pod": pod.id,
        "author": key.public_b64,
        "scope": "public",
        "seq": 1,
        "id": event_id(filled["ada-public-need"]),
        "ts": head["ts"],
    }
    pod_log = f"/v1/logs/{pod.id}/{key.public_b64}/pod"
    refused = await api.client.get(pod_log)
    assert (refused.status_code, refused.json()["reason"]) == (401, "unauthorized")
    allowed = await api.client.get(pod_log, headers=api.auth(key))
    assert allowed.json()["seq"] == 1 and allowed.json()["id"] == event_id(filled["ada-pod-need"])
    empty = await api.client.get(f"/v1/logs/{pod.id}/{signing_key('x').public_b64}/public")
    assert (empty.json()["seq"], empty.json()["id"], empty.json()["ts"]) == (0, None, None)
    bad = await api.client.get(f"/v1/logs/{pod.id}/{key.public_b64}/everyone")
    assert (bad.status_code, bad.json()["reason"]) == (400, "invalid:scope")


# --- read models -----------------------------------------------------------------------


async def test_needs_by_reader(api: Api, filled: dict[str, Envelope]) -> None:
    pod = api.pod
    public_need = event_id(filled["ada-public-need"])
    claim = pod.sign(pod.key("bo"), "claim.made", {"need": public_need})
    accept = pod.sign(ada(api), "claim.accepted", {"claim": event_id(claim), "need": public_need})
    assert all(r["ok"] for r in await api.post(claim, accept))

    anonymous = (await api.client.get("/v1/needs")).json()
    assert [n["id"] for n in anonymous] == [public_need]
    # Who claimed and who helps come from pod-scope events: members only.
    assert anonymous[0]["claims"] == [] and anonymous[0]["helper"] is None
    assert anonymous[0]["status"] == "claimed"

    member = (await api.client.get("/v1/needs", headers=api.auth(ada(api)))).json()
    assert {n["id"] for n in member} == {public_need, event_id(filled["ada-pod-need"])}
    claimed = next(n for n in member if n["id"] == public_need)
    assert claimed["helper"] == pod.key("bo").public_b64
    assert [c["id"] for c in claimed["claims"]] == [event_id(claim)]

    headers = api.auth(ada(api))
    only_open = await api.client.get("/v1/needs", params={"status": "open"}, headers=headers)
    assert [n["id"] for n in only_open.json()] == [event_id(filled["ada-pod-need"])]
    rides = await api.client.get("/v1/needs", params={"category": "ride"}, headers=headers)
    assert [n["id"] for n in rides.json()] == [public_need]
    bad = await api.client.get("/v1/needs", params={"status": "lost"})
    assert bad.status_code == 400
    bad_limit = await api.client.get("/v1/needs", params={"limit": 0})
    assert bad_limit.status_code == 400


async def test_one_need_by_reader(api: Api, filled: dict[str, Envelope]) -> None:
    private = event_id(filled["ada-pod-need"])
    hidden = await api.client.get(f"/v1/needs/{private}")
    assert (hidden.status_code, hidden.json()["reason"]) == (404, "not-found")
    shown = await api.client.get(f"/v1/needs/{private}", headers=api.auth(ada(api)))
    assert shown.status_code == 200 and shown.json()["title"] == "pod need"
    public = await api.client.get(f"/v1/needs/{event_id(filled['ada-public-need'])}")
    assert public.status_code == 200 and public.json()["title"] == "public need"
    missing = await api.client.get(f"/v1/needs/{'A' * 43}", headers=api.auth(ada(api)))
    assert missing.status_code == 404


async def test_offers_by_reader(api: Api, filled: dict[str, Envelope]) -> None:
    anonymous = (await api.client.get("/v1/offers")).json()
    assert [o["id"] for o in anonymous] == [event_id(filled["bo-public-offer"])]
    headers = api.auth(ada(api))
    member = (await api.client.get("/v1/offers", headers=headers)).json()
    assert len(member) == 2
    withdraw = api.pod.sign(
        api.pod.key("bo"), "offer.withdrawn", {"offer": event_id(filled["bo-offer"])}
    )
    assert (await api.post(withdraw))[0]["ok"]
    open_only = (await api.client.get("/v1/offers", headers=headers)).json()
    assert [o["id"] for o in open_only] == [event_id(filled["bo-public-offer"])]
    params = {"include_withdrawn": "true", "category": "ride"}
    withdrawn = (await api.client.get("/v1/offers", params=params, headers=headers)).json()
    assert [(o["id"], o["status"]) for o in withdrawn] == [
        (event_id(filled["bo-offer"]), "withdrawn")
    ]


async def test_timebank_is_for_members(api: Api) -> None:
    response = await api.client.get("/v1/timebank")
    assert (response.status_code, response.json()["reason"]) == (401, "unauthorized")
    pod, bo = api.pod, api.pod.key("bo")
    logged = pod.sign(
        bo,
        "hours.logged",
        {"giver": bo.public_b64, "receiver": ada(api).public_b64, "minutes": 45},
    )
    pending_only = pod.sign(
        bo, "hours.logged", {"giver": bo.public_b64, "receiver": ada(api).public_b64, "minutes": 5}
    )
    confirmed = pod.sign(ada(api), "hours.confirmed", {"entry": event_id(logged)})
    assert all(r["ok"] for r in await api.post(logged, pending_only, confirmed))
    bank = (await api.client.get("/v1/timebank", headers=api.auth(ada(api)))).json()
    balances = {m["person"]: m["balance_minutes"] for m in bank["members"]}
    assert balances == {bo.public_b64: 45, ada(api).public_b64: -45}
    assert bank["total_minutes_balance"] == 0
    assert [p["id"] for p in bank["pending"]] == [event_id(pending_only)]
    assert bank["pod"] == pod.id


# --- info, health, metrics, schema ---------------------------------------------------------


async def test_well_known(api: Api, datadir: DataDir) -> None:
    info = (await api.client.get("/.well-known/kith")).json()
    assert info["pod"] == api.pod.id == datadir.config().pod
    assert info["node_key"] == api.node.key.public_b64
    assert info["name"] == "Elm Street"
    assert info["version"] == VERSION and info["protocol"] == 1
    assert info["limits"]["head_bytes"] == 1024 and info["limits"]["body_bytes"] == 65536
    assert info["limits"]["request_bytes"] == 512 * 1024
    assert set(info["kinds"]) == KNOWN_KINDS
    assert info["cursor"] == 5  # pod.created, node.key and three members
    assert (info["held_events"], info["forked_logs"]) == (0, 0)
    before = info["projection_hash"]
    assert len(before) == 43
    assert (await api.post(api.pod.need(ada(api))))[0]["ok"]
    after = (await api.client.get("/.well-known/kith")).json()
    assert after["projection_hash"] != before and after["cursor"] == 6
    # Asked again with nothing new: the cached hash.
    assert (await api.client.get("/.well-known/kith")).json()["projection_hash"] == after[
        "projection_hash"
    ]


async def test_healthz(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "version": VERSION}


async def test_metrics(api: Api) -> None:
    await api.post(api.pod.need(signing_key("stranger")))
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    scrape = Scrape.parse(response.text)
    assert scrape.value("kith_events_total", outcome="accepted") == 3
    assert scrape.value("kith_events_total", outcome="unauthorized") == 1
    assert scrape.value("kith_cursor") == 5
    assert scrape.value("kith_held_events") == 0
    # Federation: counters by what happened, peer links by state — never by pod id.
    peer = signing_key("neighbour").public_b64
    api.node.federation.count("refused:unlisted")
    api.node.federation.status_of(peer).state = "live"
    text = (await api.client.get("/metrics")).text
    scrape = Scrape.parse(text)
    assert scrape.value("kith_federation_total", what="refused:unlisted") == 1
    assert scrape.value("kith_federation_peers", state="live") == 1
    assert peer not in text


async def test_openapi_schema(api: Api) -> None:
    response = await api.client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = json.loads(response.text)
    assert schema["info"]["title"] == "Kith node"
    for path in ("/v1/events", "/v1/needs", "/v1/timebank", "/.well-known/kith"):
        assert path in schema["paths"], path
    ui = await api.client.get("/schema")
    assert ui.status_code == 200
    # The page loads nothing from elsewhere (no CDN): no script at all, no remote link.
    assert ui.headers["content-type"].startswith("text/html")
    assert "<script" not in ui.text
    assert "http://" not in ui.text
    assert "https://" not in ui.text
    assert "/v1/needs" in ui.text


async def test_board_is_served_from_the_node(api: Api) -> None:
    page = await api.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "https://" not in page.text
    for path in ("/board/app.js", "/board/sign.js", "/board/vendor/noble-curves/ed25519.js"):
        module = await api.client.get(path)
        assert module.status_code == 200, path
        assert "javascript" in module.headers["content-type"], path
    for lang in ("en", "es"):
        catalogue = (await api.client.get(f"/board/i18n/{lang}.json")).json()
        assert catalogue["need.heading"]
    assert (await api.client.get("/board/../api.py")).status_code == 404
    assert "/" not in json.loads((await api.client.get("/schema/openapi.json")).text)["paths"]
