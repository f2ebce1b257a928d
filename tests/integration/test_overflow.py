"""Overflow between pods across three real federated `kith serve` processes A, B and C.

A–B, A–C and B–C are peered with `kith peer add` both ways. The A–B and A–C links run through
recording TCP relays (``Relay``: real sockets), so the last test can read what crossed the wire.
Every person is a real key file added with `kith member add`; every move goes over real HTTP.
The pods are shared by the tests of this module, so each test works on needs of its own and
checks balances as differences.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from node.client import KithClient
from node.datadir import KeyFile, read_key_file
from protocol.codec import b64d
from protocol.reasons import SealError
from protocol.sealed import SealedField, open_json, seal_json
from tests.integration.conftest import Pod, Relay, free_port, kith

NEED_AAD = b"need.posted/personal"
DETAILS_AAD = b"overflow.assigned/details"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Person:
    """One member's key file and the node they talk to; every answer the node gives is kept."""

    pod: Node
    keyfile: KeyFile

    @property
    def client(self) -> KithClient:
        return KithClient(self.pod.pod.url, self.keyfile.signing_key())

    def request(self, method: str, path: str, data: Any = None, **params: Any) -> httpx.Response:
        headers = {"authorization": "Kith " + self.client.token()}
        answer = httpx.request(
            method,
            self.pod.pod.url + path,
            json=data,
            params=params or None,
            headers=headers,
            timeout=30,
        )
        self.pod.answers.append(answer.content)
        return answer

    def ok(self, method: str, path: str, data: Any = None, **params: Any) -> Any:
        answer = self.request(method, path, data, **params)
        assert answer.status_code == 200, (method, path, answer.status_code, answer.text)
        return answer.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.ok("GET", path, **params)

    def refused(self, method: str, path: str, data: Any, status: int, reason: str) -> str:
        """The move is refused with ``status`` and the stable ``reason``; the message."""
        answer = self.request(method, path, data)
        assert answer.status_code == status, (path, answer.status_code, answer.text)
        assert answer.json()["reason"] == reason, answer.text
        return str(answer.json()["message"])

    def post(self, kind: str, body: Any, scope: str = "pod") -> dict[str, Any]:
        """Sign the next event of this person's ``scope`` log and POST it; the result."""
        result = self.client.post(kind, body, scope=scope)  # type: ignore[arg-type]
        self.pod.answers.append(json.dumps(result).encode())
        return result

    def posted(self, kind: str, body: Any, scope: str = "pod") -> str:
        result = self.post(kind, body, scope)
        assert result["ok"], result
        return str(result["id"])

    def box_private(self) -> bytes:
        return self.keyfile.box_private()


@dataclass
class Node:
    """A pod's running node, its coordinator and member, and what it answered."""

    name: str
    pod: Pod
    id: str
    coordinator: Person = field(init=False)
    member: Person = field(init=False)
    answers: list[bytes] = field(default_factory=list)


@dataclass
class Federation:
    a: Node
    b: Node
    c: Node
    relays: dict[str, Relay]
    markers: list[str] = field(default_factory=list)

    def marker(self) -> str:
        """A fresh marker, remembered so the plaintext scan looks for it too."""
        marker = uuid.uuid4().hex
        self.markers.append(marker)
        return marker


def fed_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/v1/federation"


def peer_live(node: Node, other: Node) -> bool:
    doc = httpx.get(node.pod.url + "/.well-known/kith", timeout=10).json()
    return any(p["pod"] == other.id and p["state"] == "live" for p in doc["federation"]["peers"])


def knows_coordinators(node: Node, other: Node) -> bool:
    answer = httpx.get(node.pod.url + f"/v1/pods/{other.id}/keys", timeout=10)
    return answer.status_code == 200 and bool(answer.json()["coordinators"])


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("overflow")
    pods: dict[str, Pod] = {}
    for name in "ABC":
        port = free_port()
        kith("init", "--dir", str(root / name), "--name", f"Pod {name}", "--port", str(port))
        pods[name] = Pod(root / name, port)
    ids = {n: json.loads((p.dir / "config.json").read_text())["pod"] for n, p in pods.items()}
    # The A–B and A–C links both ways through relays (whichever side's dial is kept, the
    # traffic crosses a relay); B–C direct.
    relays = {f"{x}{y}": Relay(pods[y].port).start() for x, y in ("AB", "BA", "AC", "CA")}
    for x, y in ("AB", "BA", "AC", "CA"):
        url = fed_url(relays[x + y].port)
        kith("peer", "add", url, "--pod", ids[y], "--dir", str(pods[x].dir))
    for x, y in ("BC", "CB"):
        url = fed_url(pods[y].port)
        kith("peer", "add", url, "--pod", ids[y], "--dir", str(pods[x].dir))
    nodes = {n: Node(n, pods[n], ids[n]) for n in "ABC"}
    for n, node in nodes.items():
        for role in ("coordinator", "member"):
            path = root / f"{n}-{role}.key"
            kith("key", "new", "--out", str(path))
            kith(
                "member", "add", "--key-file", str(path), "--role", role, "--dir", str(node.pod.dir)
            )
            setattr(node, role, Person(node, read_key_file(path)))
    for node in nodes.values():
        node.pod.start()
        node.pod.follow_log()
    federation = Federation(nodes["A"], nodes["B"], nodes["C"], relays)
    try:
        for x, y in ("AB", "AC", "BC", "BA", "CA", "CB"):
            here, there = nodes[x], nodes[y]
            wait_for(lambda: peer_live(here, there), f"{x}–{y} live")  # noqa: B023 - called now
            wait_for(lambda: knows_coordinators(here, there), f"{x} knows {y}'s roster")  # noqa: B023
        yield federation
    finally:
        for node in nodes.values():
            node.pod.stop()
        for relay in relays.values():
            relay.stop()


# -- steps ------------------------------------------------------------------------------


def box_keys(asker: Person, pod: Node) -> list[bytes]:
    keys = asker.get(f"/v1/pods/{pod.id}/keys")["coordinators"]
    assert keys, f"{asker.pod.name} knows no coordinator of {pod.name}"
    return [b64d(k, 32) for k in keys]


def post_need(fed: Federation, marker: str, category: str = "ride") -> str:
    """A's member asks for help, the marker in the title, the details and a sealed field."""
    ma = fed.a.member
    personal = {"address": f"12 Elm Street {marker}", "phone": "555-0100", "notes": marker}
    recipients = [*box_keys(ma, fed.a), b64d(ma.keyfile.box_public, 32)]
    body = {
        "title": f"Ride to dialysis for Amara {marker}",
        "details": f"Amara ({marker}) needs a ride on Tuesday morning",
        "category": category,
        "urgency": "high",
        "area": "North",
        "minutes_estimate": 60,
        "personal": msgspec.to_builtins(seal_json(personal, recipients, aad=NEED_AAD)),
    }
    return fed.a.member.posted("need.posted", body)


def event_body(who: Person, event: str) -> Any:
    """The body of one event as ``who``'s node holds it (the envelope carries it as JSON)."""
    body = who.get(f"/v1/events/{event}")["envelope"]["body"]
    return json.loads(body) if isinstance(body, str) else body


def refer(who: Person, need: str, **extra: Any) -> dict[str, Any]:
    answer = who.ok("POST", "/v1/overflow/refer", {"need": need, **extra})
    assert answer["ok"] and answer["id"] == answer["referral"]["referral"]["id"]
    return answer["referral"]  # type: ignore[no-any-return]


def item(who: Person, referral: str) -> dict[str, Any] | None:
    answer = who.request("GET", f"/v1/overflow/{referral}")
    return answer.json() if answer.status_code == 200 else None  # type: ignore[no-any-return]


def wait_item(
    who: Person, referral: str, check: Callable[[dict[str, Any]], bool], what: str
) -> Any:
    return wait_for(
        lambda: (it := item(who, referral)) is not None and check(it) and it,
        f"{what} at {who.pod.name}",
    )


def listed(who: Person, referral: str, direction: str = "incoming") -> dict[str, Any] | None:
    items = who.get("/v1/overflow")[direction]
    return next((i for i in items if i["referral"]["id"] == referral), None)


def sealed_details(fed: Federation, marker: str, to: Node) -> dict[str, Any]:
    details = {
        "title": f"Ride to dialysis for Amara {marker}",
        "details": f"Amara ({marker}) needs a ride on Tuesday morning",
        "personal": {"address": f"12 Elm Street {marker}", "phone": "555-0100"},
    }
    return msgspec.to_builtins(  # type: ignore[no-any-return]
        seal_json(details, box_keys(fed.a.coordinator, to), aad=DETAILS_AAD)
    )


def assign(who: Person, referral: str, to: Node, details: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = {"to_pod": to.id}
    if details is not None:
        data["details"] = details
    answer = who.ok("POST", f"/v1/overflow/{referral}/assign", data)
    assert answer["referral"]["state"] == "assigned"
    return answer  # type: ignore[no-any-return]


def local_need(who: Person, referral: str) -> str:
    it = wait_item(who, referral, lambda i: i["local_need"] is not None, "the local need")
    return str(it["local_need"])


def meet(node: Node, need: str, minutes: int) -> None:
    """The pod's member claims the need, the coordinator accepts, the member fulfils it."""
    claim = node.member.posted("claim.made", {"need": need})
    node.coordinator.posted("claim.accepted", {"need": need, "claim": claim})
    node.member.posted("fulfilment.recorded", {"need": need, "minutes": minutes})


def balance(who: Person, peer: Node) -> tuple[int, int, bool]:
    """(this pod's balance with ``peer``, what ``peer`` recorded, agreed)."""
    for entry in who.get("/v1/timebank")["pods"]["peers"]:
        if entry["peer_pod"] == peer.id:
            return entry["balance_minutes"], entry["peer_recorded_minutes"], entry["agreed"]
    return 0, 0, True


def cleared(who: Person, referral: str) -> Any:
    return wait_item(who, referral, lambda i: len(i["referral"]["clearing"]) == 2, "both sides")


@dataclass
class Cycle:
    need: str
    referral: str
    assignment: str
    local: str


def fulfilled_via_b(fed: Federation, marker: str, minutes: int) -> Cycle:
    """A refers a need, B offers and gets it, B's member meets it; both sides cleared."""
    need = post_need(fed, marker)
    referral = refer(fed.a.coordinator, need)["referral"]["id"]
    wait_for(lambda: listed(fed.b.coordinator, referral), "the referral at B")
    fed.b.coordinator.ok("POST", f"/v1/overflow/{referral}/offer", {"note": "we have a driver"})
    wait_item(fed.a.coordinator, referral, lambda i: i["referral"]["offers"], "B's offer")
    assignment = assign(fed.a.coordinator, referral, fed.b, sealed_details(fed, marker, fed.b))
    local = local_need(fed.b.coordinator, referral)
    meet(fed.b, local, minutes)
    cleared(fed.a.coordinator, referral)
    cleared(fed.b.coordinator, referral)
    return Cycle(need, referral, assignment["id"], local)


# -- 1. the whole life cycle -------------------------------------------------------------


def test_life_cycle_a_to_b_fulfilled_and_cleared_on_both_sides(fed: Federation) -> None:
    a, b, c = fed.a.coordinator, fed.b.coordinator, fed.c.coordinator
    marker, minutes = fed.marker(), 45
    a_before, b_before = balance(a, fed.b), balance(b, fed.a)
    need = post_need(fed, marker)
    # A's coordinator can open the need's personal fields (sealed to them and the author).
    stored = event_body(a, need)
    personal = msgspec.convert(stored["personal"], SealedField)
    assert marker in open_json(personal, a.box_private(), aad=NEED_AAD)["notes"]

    referred = refer(a, need)
    referral = referred["referral"]["id"]
    assert referred["direction"] == "outgoing" and referred["state"] == "referred"
    assert referred["referral"]["need"] == need and referred["local_need"] == need
    summary = {k: referred["referral"][k] for k in ("category", "urgency", "area")}
    assert summary == {"category": "ride", "urgency": "high", "area": "North"}

    incoming = wait_for(lambda: listed(b, referral), "the referral listed at B")
    assert incoming["state"] == "referred" and incoming["referral"]["pod"] == fed.a.id
    assert incoming["local_need"] is None
    offered = b.ok("POST", f"/v1/overflow/{referral}/offer", {"note": "we have a driver"})
    assert offered["referral"]["state"] == "offered"
    outgoing = wait_item(a, referral, lambda i: i["referral"]["offers"], "B's offer")
    assert [o["pod"] for o in outgoing["referral"]["offers"]] == [fed.b.id]
    # The origin's coordinator is shown the keys to seal to: B's coordinators, as A knows them.
    b_keys = a.get(f"/v1/pods/{fed.b.id}/keys")["coordinators"]
    assert outgoing["box_keys"] == {fed.b.id: b_keys}

    assigned = assign(a, referral, fed.b, sealed_details(fed, marker, fed.b))
    assert assigned["referral"]["referral"]["assignment"]["to_pod"] == fed.b.id
    assert assigned["referral"]["referral"]["assignment"]["sealed_to"] == b_keys

    # B's coordinator opens the details from the assignment event as B's node holds it.
    wait_for(lambda: b.request("GET", f"/v1/events/{assigned['id']}").status_code == 200, "at B")
    sealed_at_b = event_body(b, assigned["id"])["details"]
    details = msgspec.convert(sealed_at_b, SealedField)
    opened = open_json(details, b.box_private(), aad=DETAILS_AAD)
    assert marker in opened["details"] and marker in opened["personal"]["address"]

    local = local_need(b, referral)
    shown = b.get(f"/v1/needs/{local}")
    assert shown["status"] == "open" and shown["referral"] == referral
    assert shown["category"] == "ride" and marker not in json.dumps(shown)
    meet(fed.b, local, minutes)

    at_a, at_b = cleared(a, referral), cleared(b, referral)
    assert at_a["referral"] == at_b["referral"]
    assert at_a["state"] == at_b["state"] == "fulfilled"
    assert at_a["direction"] == "outgoing" and at_b["direction"] == "incoming"
    assert at_b["local_need"] == local
    closing = at_a["referral"]["closing"]
    assert closing["outcome"] == "fulfilled" and closing["minutes"] == minutes
    sides = {(s["pod"], s["peer_pod"], s["minutes"]) for s in at_a["referral"]["clearing"]}
    assert sides == {(fed.b.id, fed.a.id, minutes), (fed.a.id, fed.b.id, -minutes)}
    assert at_a["referral"]["ignored"] == []
    wait_for(lambda: a.get(f"/v1/needs/{need}")["status"] == "fulfilled", "A's need fulfilled")

    a_after, b_after = balance(a, fed.b), balance(b, fed.a)
    assert (a_after[0] - a_before[0], a_after[1] - a_before[1]) == (-minutes, -minutes)
    assert (b_after[0] - b_before[0], b_after[1] - b_before[1]) == (minutes, minutes)
    assert a_after[2] and b_after[2]

    # C holds the same referral (A's and B's peers events) but cannot open the details.
    at_c = wait_item(c, referral, lambda i: i["state"] == "fulfilled", "fulfilled")
    assert at_c["referral"]["assignment"]["to_pod"] == fed.b.id and at_c["local_need"] is None
    assert event_body(c, assigned["id"])["details"] == sealed_at_b
    with pytest.raises(SealError):
        open_json(details, c.box_private(), aad=DETAILS_AAD)
    # … nor the need itself: a pod-scope event never leaves A.
    assert c.request("GET", f"/v1/events/{need}").status_code == 404
    assert b.request("GET", f"/v1/events/{need}").status_code == 404


# -- 2. returned -----------------------------------------------------------------------


def test_returned_referral_reopens_the_need_and_withdraws_the_local_one(fed: Federation) -> None:
    a, b = fed.a.coordinator, fed.b.coordinator
    marker = fed.marker()
    need = post_need(fed, marker)
    referral = refer(a, need)["referral"]["id"]
    wait_for(lambda: listed(b, referral), "the referral at B")
    assign(a, referral, fed.b, sealed_details(fed, marker, fed.b))  # no offer needed
    local = local_need(b, referral)

    returned = b.ok("POST", f"/v1/overflow/{referral}/return", {"reason": "our driver is ill"})
    assert returned["referral"]["state"] == "returned"
    at_a = wait_item(a, referral, lambda i: i["state"] == "returned", "returned")
    assert at_a["referral"]["closing"]["reason"] == "our driver is ill"
    assert at_a["referral"]["closing"]["pod"] == fed.b.id
    wait_for(lambda: a.get(f"/v1/needs/{need}")["status"] == "open", "A's need open again")
    wait_for(lambda: b.get(f"/v1/needs/{local}")["status"] == "withdrawn", "B's need withdrawn")
    # A returned referral is closed: B cannot offer on it, nor return it twice.
    b.refused("POST", f"/v1/overflow/{referral}/return", {}, 409, "overflow:state:returned")

    again = refer(a, need)
    assert again["referral"]["id"] != referral and again["state"] == "referred"
    assert again["referral"]["need"] == need
    wait_for(lambda: listed(b, again["referral"]["id"]), "the second referral at B")
    # The first referral stays as it was: returned, with no clearing.
    first = item(a, referral)
    assert first is not None and first["state"] == "returned"
    assert first["referral"]["clearing"] == []


# -- 3. who may move -------------------------------------------------------------------


def test_only_the_origin_assigns_and_only_coordinators_move(fed: Federation) -> None:
    a, b, c = fed.a.coordinator, fed.b.coordinator, fed.c.coordinator
    need = post_need(fed, fed.marker())
    referral = refer(a, need)["referral"]["id"]
    wait_for(lambda: listed(b, referral), "the referral at B")
    wait_for(lambda: listed(c, referral), "the referral at C")
    b.ok("POST", f"/v1/overflow/{referral}/offer", {})
    c.ok("POST", f"/v1/overflow/{referral}/offer", {"note": "we could too"})
    wait_item(a, referral, lambda i: len(i["referral"]["offers"]) == 2, "both offers")

    b.refused(
        "POST", f"/v1/overflow/{referral}/assign", {"to_pod": fed.c.id}, 409, "overflow:not-origin"
    )
    c.refused(
        "POST", f"/v1/overflow/{referral}/assign", {"to_pod": fed.b.id}, 409, "overflow:not-origin"
    )
    # Signed by hand, C's assignment is stored (C's own log) but has no effect anywhere.
    forged = c.posted("overflow.assigned", {"referral": referral, "to_pod": fed.c.id}, "peers")
    for who in (a, c):
        it = wait_item(
            who,
            referral,
            lambda i: any(g["id"] == forged for g in i["referral"]["ignored"]),
            "ignored",
        )
        (ignored,) = it["referral"]["ignored"]
        assert ignored["reason"] == "overflow:not-origin" and ignored["pod"] == fed.c.id
        assert it["state"] == "offered" and it["referral"]["assignment"] is None
    assert event_body(c, forged) == {"referral": referral, "to_pod": fed.c.id}

    unknown = "A" * 43
    b.refused("POST", f"/v1/overflow/{unknown}/offer", {}, 404, "overflow:unknown-referral")
    a.refused(
        "POST",
        f"/v1/overflow/{unknown}/assign",
        {"to_pod": fed.b.id},
        404,
        "overflow:unknown-referral",
    )
    # A member reads referrals but moves none; without a token nothing is readable.
    for member, path, data in [
        (fed.b.member, f"/v1/overflow/{referral}/offer", {}),
        (fed.a.member, f"/v1/overflow/{referral}/assign", {"to_pod": fed.b.id}),
        (fed.a.member, "/v1/overflow/refer", {"need": need}),
        (fed.b.member, f"/v1/overflow/{referral}/return", {}),
    ]:
        member.refused("POST", path, data, 403, "unauthorized")
    assert fed.b.member.get(f"/v1/overflow/{referral}")["state"] == "offered"
    assert httpx.get(fed.b.pod.url + "/v1/overflow", timeout=10).status_code == 401
    # Nothing above changed the referral: still offered, unassigned, at the origin.
    final = item(a, referral)
    assert final is not None and final["state"] == "offered"
    assert final["referral"]["assignment"] is None


# -- 4. expiry -------------------------------------------------------------------------


def test_a_referral_past_its_expiry_lapses_and_refuses_offers(fed: Federation) -> None:
    a, b = fed.a.coordinator, fed.b.coordinator
    need = post_need(fed, fed.marker())
    expires_at = int(time.time() * 1000) + 3000
    body = {
        "need": need,
        "summary": {"category": "ride", "urgency": "high"},
        "hops_left": 1,
        "expires_at": expires_at,
    }
    referral = a.posted("overflow.referred", body, "peers")
    wait_item(b, referral, lambda i: True, "the short-lived referral")
    wait_for(lambda: time.time() * 1000 > expires_at + 50, "the expiry to pass", timeout=10)
    for who in (a, b):
        it = item(who, referral)
        assert it is not None and it["state"] == "lapsed"
        assert it["referral"]["state"] == "referred"  # lapsing is read-time, not a fact
        lapsed = who.get("/v1/overflow", state="lapsed")
        assert referral in [i["referral"]["id"] for i in lapsed["outgoing"] + lapsed["incoming"]]
    b.refused("POST", f"/v1/overflow/{referral}/offer", {}, 409, "overflow:expired")
    a.refused(
        "POST", f"/v1/overflow/{referral}/assign", {"to_pod": fed.b.id}, 409, "overflow:expired"
    )
    # A lapsed referral does not block referring the need again.
    again = refer(a, need)
    assert again["referral"]["id"] != referral and again["state"] == "referred"


# -- 5. re-referral and hops -------------------------------------------------------------


def test_re_referral_follows_the_path_and_runs_out_of_hops(fed: Federation) -> None:
    a, b, c = fed.a.coordinator, fed.b.coordinator, fed.c.coordinator
    marker = fed.marker()
    need = post_need(fed, marker)
    first = refer(a, need, hops_left=1)["referral"]
    assert first["hops_left"] == 1
    wait_for(lambda: listed(b, first["id"]), "the referral at B")
    assign(a, first["id"], fed.b, sealed_details(fed, marker, fed.b))
    local_b = local_need(b, first["id"])

    passed = refer(b, local_b)
    second = passed["referral"]
    assert second["pod"] == fed.b.id and second["parent"] == first["id"]
    assert second["path"] == [fed.a.id] and second["hops_left"] == 0
    assert second["need"] == local_b and second["problem"] is None
    assert second["category"] == first["category"] and second["urgency"] == first["urgency"]

    at_c = wait_for(lambda: listed(c, second["id"]), "the re-referral at C")
    assert at_c["state"] == "referred"
    # A holds the re-referral (B's peers log) but is on its path: not incoming there.
    at_a = wait_item(a, second["id"], lambda i: True, "the re-referral")
    assert at_a["direction"] == "incoming" and at_a["referral"]["problem"] is None
    assert second["id"] not in [i["referral"]["id"] for i in a.get("/v1/overflow")["incoming"]]
    a.refused("POST", f"/v1/overflow/{second['id']}/offer", {}, 409, "overflow:on-path")
    # B cannot send it back to A either.
    b.refused(
        "POST", f"/v1/overflow/{second['id']}/assign", {"to_pod": fed.a.id}, 409, "overflow:on-path"
    )

    c.ok("POST", f"/v1/overflow/{second['id']}/offer", {})
    wait_item(b, second["id"], lambda i: i["referral"]["offers"], "C's offer")
    assigned = b.ok("POST", f"/v1/overflow/{second['id']}/assign", {"to_pod": fed.c.id})
    assert assigned["referral"]["state"] == "assigned"
    local_c = local_need(c, second["id"])
    assert c.get(f"/v1/needs/{local_c}")["referral"] == second["id"]
    c.refused("POST", "/v1/overflow/refer", {"need": local_c}, 409, "overflow:no-hops-left")
    # The parent stays assigned to B; the child is assigned to C, seen alike at A.
    wait_item(a, second["id"], lambda i: i["state"] == "assigned", "the child assigned")
    parent = item(a, first["id"])
    assert parent is not None and parent["state"] == "assigned"
    assert parent["referral"]["assignment"]["to_pod"] == fed.b.id


# -- 6. bad input --------------------------------------------------------------------------


def test_bad_input_is_refused_or_ignored_and_sync_goes_on(fed: Federation) -> None:
    a, b = fed.a.coordinator, fed.b.coordinator
    need = post_need(fed, fed.marker())
    # The summary is closed: a title (which may name someone) is refused at the door.
    leaky = {
        "need": need,
        "summary": {"category": "ride", "urgency": "high", "title": "Ride for Amara"},
        "hops_left": 1,
        "expires_at": int(time.time() * 1000) + 3_600_000,
    }
    result = a.post("overflow.referred", leaky, "peers")
    assert result["ok"] is False and result["reason"] == "invalid:body:field:summary.title"

    referral = refer(a, need)["referral"]["id"]
    wait_for(lambda: listed(b, referral), "the referral at B")
    stranger = os.urandom(32)
    misaddressed = msgspec.to_builtins(seal_json({"x": 1}, [stranger], aad=DETAILS_AAD))
    body = {"referral": referral, "to_pod": fed.b.id, "details": misaddressed}
    result = a.post("overflow.assigned", body, "peers")
    assert result["ok"] is False and result["reason"] == "invalid:sealed-recipients"
    a.refused(
        "POST",
        f"/v1/overflow/{referral}/assign",
        {"to_pod": fed.b.id, "details": misaddressed},
        400,
        "invalid:sealed-recipients",
    )
    # Sealed to B's coordinators *and* a stranger: still refused.
    mixed = seal_json({"x": 1}, [*box_keys(a, fed.b), stranger], aad=DETAILS_AAD)
    a.refused(
        "POST",
        f"/v1/overflow/{referral}/assign",
        {"to_pod": fed.b.id, "details": msgspec.to_builtins(mixed)},
        400,
        "invalid:sealed-recipients",
    )
    still = item(a, referral)
    assert still is not None and still["state"] == "referred"
    assert still["referral"]["assignment"] is None

    # A forged clearing entry (wrong minutes) by B's coordinator is stored but ignored.
    cycle = fulfilled_via_b(fed, fed.marker(), 30)
    a_before, b_before = balance(a, fed.b), balance(b, fed.a)
    forged = b.posted(
        "clearing.recorded",
        {"peer_pod": fed.a.id, "minutes": 300, "referral": cycle.referral},
        "peers",
    )
    for who in (a, b):
        it = wait_item(
            who,
            cycle.referral,
            lambda i: any(g["id"] == forged for g in i["referral"]["ignored"]),
            "the forged entry ignored",
        )
        (ignored,) = [g for g in it["referral"]["ignored"] if g["id"] == forged]
        assert ignored["reason"] == "clearing:mismatch"
        assert len(it["referral"]["clearing"]) == 2
    # Federation goes on: a later peers event from B arrives at A after the forged one.
    later = b.posted("offer.posted", {"title": "Spare car seat", "category": "goods"}, "peers")
    wait_for(lambda: a.request("GET", f"/v1/events/{later}").status_code == 200, "B's next event")
    assert balance(a, fed.b) == a_before
    assert balance(b, fed.a) == b_before


# -- 7. plaintext never leaves A ------------------------------------------------------------


def files_under(directory: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_personal_text_never_reaches_neighbours_disk_logs_answers_or_wire(fed: Federation) -> None:
    marker = fed.marker()
    cycle = fulfilled_via_b(fed, marker, 20)
    wait_item(fed.c.coordinator, cycle.referral, lambda i: i["state"] == "fulfilled", "at C")
    markers = [m.encode() for m in fed.markers]
    ref = cycle.referral.encode()

    # Disk: every file in B's and C's data directories (database, WAL, keys, config).
    for node in (fed.b, fed.c):
        files = files_under(node.pod.dir)
        assert any(p.name == "kith.db" for p in files), files.keys()
        everything = b"".join(files.values())
        assert ref in everything  # the scan reads what the node stored
        for m in markers:
            leaked = [p for p, data in files.items() if m in data]
            assert leaked == [], (node.name, m, leaked)
    assert marker.encode() in b"".join(files_under(fed.a.pod.dir).values())  # the origin's own

    # Logs, and every answer B and C gave in this module.
    for node in (fed.b, fed.c):
        log = "".join(node.pod.log).encode()
        answers = b"\n".join(node.answers)
        assert ref in answers
        for m in markers:
            assert m not in log, node.name
            assert m not in answers, node.name

    # The wire: every byte of the A–B and A–C links, raw and as unmasked websocket payloads.
    sent_by_a = fed.relays["AB"].payloads("up") + fed.relays["BA"].payloads("down")
    assert ref in sent_by_a  # the capture is real: A sent B the referral
    for pair in ("AB", "AC"):
        assert fed.relays[pair].connections + fed.relays[pair[::-1]].connections >= 1, pair
    wire = b"".join(
        relay.raw(d) + relay.payloads(d) for relay in fed.relays.values() for d in ("up", "down")
    )
    assert len(wire) > 10_000 and ref in wire
    for m in markers:
        assert m not in wire
