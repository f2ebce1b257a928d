"""Reports, coordinator actions, devices and recovery as people do them: ``kith report``,
``kith member block|unblock|remove|list|devices|revoke-device|recover``, ``kith moderation``,
against a real node serving HTTP (and its stream) on loopback.

The one rule checked through every read route: a report is never readable by the person it is
about — not over ``GET /v1/events``, ``GET /v1/events/{id}``, the stream (backfill and live),
``/v1/moderation`` — even when that person is a coordinator; and never by an anonymous reader.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from node.cli import main
from node.client import KithClient
from node.datadir import read_key_file
from protocol.crypto import SigningKey
from protocol.envelope import event_id, sign_event
from protocol.reasons import KithError
from protocol.tokens import make_token
from tests.node.conftest import Served
from tests.node.test_cli import recorded_id


@dataclass
class People:
    served: Served
    keys: dict[str, Path]
    capsys: pytest.CaptureFixture[str]

    def public(self, name: str) -> str:
        return read_key_file(self.keys[name]).public

    def signing(self, name: str) -> SigningKey:
        return read_key_file(self.keys[name]).signing_key()

    def kith(self, name: str, *argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--key", str(self.keys[name]), "--url", self.served.url])
        out = self.capsys.readouterr()
        assert "Traceback" not in out.err
        return code, out.out, out.err

    def client(self, name: str | None) -> KithClient:
        return KithClient(self.served.url, None if name is None else self.signing(name))


@pytest.fixture
def people(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[People]:
    keys: dict[str, Path] = {}
    roles = {"cora": "coordinator", "cy": "coordinator", "ada": "member", "bo": "member"}
    for name in (*roles, "ada-new", "outsider"):
        keys[name] = tmp_path / f"{name}.key"
        assert main(["key", "new", "--out", str(keys[name])]) == 0
    for name, role in roles.items():
        argv = ["member", "add", "--dir", str(served.data.path), "--key-file", str(keys[name])]
        assert main([*argv, "--role", role, "--url", served.url]) == 0
    capsys.readouterr()
    yield People(served, keys, capsys)


def stream_ids(p: People, name: str | None, then: Any = None) -> tuple[set[str], set[str]]:
    """Subscribe to reports and needs as ``name``; the ids backfilled, and the ids delivered live
    after ``then()`` ran (up to the need ``then`` returns the id of, which comes last)."""
    url = p.served.url.replace("http://", "ws://") + "/v1/stream"
    node_key = p.client(None).info()["node_key"]
    backfilled: set[str] = set()
    live: set[str] = set()
    with connect(url, max_size=2**22) as ws:
        challenge = json.loads(ws.recv(timeout=10))
        assert challenge[0] == "CHALLENGE"
        if name is not None:
            token = make_token(
                p.signing(name),
                purpose="stream",
                node_key=node_key,
                now_ms=int(time.time() * 1000),
                ttl_ms=120_000,
                nonce=challenge[1],
            )
            ws.send(json.dumps(["AUTH", token]))
        filters = [{"kinds": ["report.filed", "report.resolved", "need.posted"]}]
        ws.send(json.dumps(["SUB", "s", {"filters": filters}]))
        into, last = backfilled, None
        while True:
            frame = json.loads(ws.recv(timeout=10))
            if frame[0] == "EVENT":
                into.add(event_id(frame[2]["head"]))
                if last is not None and last in into:
                    return backfilled, live
            elif frame[0] == "LIVE":
                if then is None:
                    return backfilled, live
                into, last = live, then()


def test_a_report_is_never_read_by_the_person_it_is_about_through_any_route(
    people: People,
) -> None:
    p = people
    cy, cora = p.public("cy"), p.public("cora")
    code, out, err = p.kith(
        "ada", "report", "--about", cy, "--text", "Shouted at a volunteer at the food bank"
    )
    assert code == 0, err
    assert "never the person it is about" in out
    report = recorded_id(out, "report.filed")
    code, out, err = p.kith("bo", "report", "--about", cora, "--text", "Late again")
    about_cora = recorded_id(out, "report.filed")

    # GET /v1/events/{id}: the author and the other coordinator read it; Cy, Bo, anyone: 404.
    for name, readable in [("ada", True), ("cora", True), ("cy", False), ("bo", False)]:
        answer = httpx.get(
            f"{p.served.url}/v1/events/{report}",
            headers={"authorization": "Kith " + p.client(name).token()},
        )
        assert (answer.status_code == 200) is readable, name
    assert httpx.get(f"{p.served.url}/v1/events/{report}").status_code == 404

    # GET /v1/events: the same, in lists.
    def listed(name: str | None) -> set[str]:
        page = p.client(name).get("/v1/events", kinds="report.filed")
        return {e["id"] for e in page["events"]}

    assert listed("cora") == {report}  # not the one about herself
    assert listed("cy") == {about_cora}
    assert listed("ada") == {report} and listed("bo") == {about_cora}
    assert listed(None) == set()

    # The moderation view: Cy does not see the report about him.
    code, out, _ = p.kith("cy", "moderation", "show")
    assert code == 0 and report not in out and about_cora in out
    code, out, _ = p.kith("cora", "moderation", "show")
    assert code == 0 and report in out and about_cora not in out and "1 open report(s)" in out

    # The stream: backfill, and live delivery of a new report about Cy (then a need).
    def another() -> str:
        for text in ("Again today", "And once more"):
            assert p.kith("ada", "report", "--about", cy, "--text", text)[0] == 0
        posted = p.client("ada").post("need.posted", needed())
        return str(posted["id"])

    back, live = stream_ids(p, "cy", another)
    assert report not in back and about_cora in back
    kinds = {json.loads(p.client("cora").get(f"/v1/events/{i}")["envelope"]["head"])["kind"]
             for i in live}  # fmt: skip
    assert kinds == {"need.posted"}  # the two new reports about Cy never reached him
    back, live = stream_ids(p, "cora")
    assert report in back and about_cora not in back
    back, _ = stream_ids(p, None)
    assert not back & {report, about_cora}

    # Export (the operator's copy) keeps every report.
    out_file = p.served.data.path.parent / "export.jsonl"
    assert main(["export", "--dir", str(p.served.data.path), "--out", str(out_file)]) == 0
    exported = {event_id(json.loads(line)["head"]) for line in out_file.read_text().splitlines()}
    assert {report, about_cora} <= exported


def post_as(p: People, key: SigningKey, body: dict[str, str] | None = None) -> dict[str, Any]:
    """Sign a need as the next event of ``key``'s pod log (read by a coordinator: a blocked or
    revoked key may not even read its own log head) and post it; the node's result."""
    pod = p.client(None).info()["pod"]
    head = p.client("cora").get(f"/v1/logs/{pod}/{key.public_b64}/pod")
    env = sign_event(
        key,
        pod=pod,
        scope="pod",
        seq=head["seq"] + 1,
        prev=head["id"],
        ts=int(time.time() * 1000),
        kind="need.posted",
        body=body or needed(),
    )
    [result] = p.client(None).post_envelopes([env])
    return result


def needed() -> dict[str, str]:
    return {"title": "Soup", "category": "food", "urgency": "normal"}


def test_a_report_names_an_event_and_its_author_cannot_read_it(people: People) -> None:
    p = people
    need = p.client("cy").post("need.posted", needed())["id"]
    code, out, err = p.kith("ada", "report", "--event", need, "--text", "A scam")
    assert code == 0, err
    report = recorded_id(out, "report.filed")
    assert p.client("cy").get("/v1/events", kinds="report.filed")["events"] == []
    shown = p.client("cora").get("/v1/events", kinds="report.filed")["events"]
    assert [e["id"] for e in shown] == [report]
    [item] = p.client("cora").get("/v1/moderation")["reports"]
    assert item["event"] == need and item["about"] is None and item["by"] == p.public("ada")


def test_bad_report_input_gets_a_clear_message(people: People) -> None:
    p = people
    code, _, err = p.kith("ada", "report", "--text", "something")
    assert code == 1 and "--about KEY (a person) or --event ID" in err
    code, _, err = p.kith("ada", "report", "--about", "ada", "--text", "x")
    assert code == 1 and "--about 'ada': not a key, not a key file, and no member" in err


def test_moderation_view_is_for_coordinators(people: People) -> None:
    p = people
    answer = httpx.get(f"{p.served.url}/v1/moderation")
    assert answer.status_code == 401 and answer.json()["reason"] == "unauthorized"
    answer = httpx.get(
        f"{p.served.url}/v1/moderation",
        headers={"authorization": "Kith " + p.client("ada").token()},
    )
    assert answer.status_code == 403
    assert "coordinators only" in answer.json()["message"]
    code, _, err = p.kith("ada", "moderation", "show")
    assert code == 1 and "HTTP 403" in err and "coordinators only" in err


def test_a_coordinator_blocks_on_a_report_unblocks_and_the_log_says_who(people: People) -> None:
    p = people
    bo = p.public("bo")
    p.client("bo").post("need.posted", needed())
    _, out, _ = p.kith("ada", "report", "--about", bo, "--text", "Threatening messages")
    report = recorded_id(out, "report.filed")

    # A member may not block: refused before anything is signed, with the reason.
    code, _, err = p.kith("ada", "member", "block", bo, "--reason", "spam")
    assert code == 1 and "only the pod's coordinators may block; your key is a member" in err
    # Nor does a forged block get past the node: signed by Ada and posted directly.
    result = p.client("ada").post(
        "member.blocked", {"key": bo, "effective": {"pod": 1}}, scope="public"
    )
    assert not result["ok"] and result["reason"] == "unauthorized"
    # An unknown key, a wrong position.
    code, _, err = p.kith("cora", "member", "block", p.public("outsider"))
    assert code == 1 and "is not a member of this pod" in err and "kith member list" in err
    code, _, err = p.kith("cora", "member", "remove", bo, "--effective", "pod=9")
    assert code == 1
    assert "invalid:future-position: pod seq 9 is after this log's next seq (2)" in err
    code, _, err = p.kith("cora", "member", "remove", bo, "--effective", "galaxy=1")
    assert code == 1 and "--effective takes SCOPE=SEQ" in err

    code, out, err = p.kith(
        "cora",
        "member",
        "block",
        bo,
        "--reason",
        "threats",
        "--note",
        "threats at the pantry",
        "--report",
        report,
    )
    assert code == 0, err
    assert "member.blocked recorded (member blocked)" in out
    assert "from pod seq 2, peers seq 1, public seq 1" in out
    assert "report.resolved recorded" in out
    block = recorded_id(out, "member.blocked")
    refused = post_as(p, p.signing("bo"))
    assert not refused["ok"] and refused["reason"] == "blocked"

    view = p.client("cora").get("/v1/moderation")
    assert view["open_reports"] == 0
    [item] = view["reports"]
    assert item["status"] == "resolved" and item["action"] == block
    assert item["resolved_by"] == p.public("cora") and item["note"] == "threats at the pantry"
    [action] = view["actions"]
    assert (action["action"], action["key"], action["by"], action["reason"]) == (
        "block",
        bo,
        p.public("cora"),
        "threats",
    )
    assert action["position"] == {"pod": 2, "peers": 1, "public": 1}

    code, out, _ = p.kith("ada", "member", "list")
    assert code == 0 and "coordinators (2):" in out and f"{bo}  blocked" in out

    code, out, err = p.kith("cy", "member", "unblock", bo, "--reason", "resolved")
    assert "member.unblocked recorded" in out
    assert code == 0 and "their new events count again" in out, err
    [status] = [m["status"] for m in p.client("cora").get("/v1/members") if m["key"] == bo]
    assert status != "blocked"
    assert post_as(p, p.signing("bo"))["ok"]
    view = p.client("cora").get("/v1/moderation")
    assert [(a["action"], a["by"]) for a in view["actions"]] == [
        ("unblock", p.public("cy")),
        ("block", p.public("cora")),
    ]
    code, _, err = p.kith("cy", "moderation", "resolve", report)
    assert code == 1 and "already resolved" in err


def test_remove_keeps_history_and_refuses_what_comes_after(people: People) -> None:
    p = people
    ada = p.public("ada")
    need = p.client("ada").post("need.posted", needed())["id"]
    code, out, err = p.kith("cora", "member", "remove", ada, "--reason", "left")
    assert code == 0, err
    assert "member.removed recorded (member removed)" in out and "stays (their" in out
    refused = post_as(p, p.signing("ada"))
    assert not refused["ok"] and refused["reason"] == "unauthorized"
    assert p.client("cora").get(f"/v1/needs/{need}")["title"] == "Soup"
    code, _, err = p.kith("cora", "member", "remove", ada)
    assert code == 1 and "already removed" in err


def test_a_lost_phone_is_revoked_and_posts_no_more(people: People, tmp_path: Path) -> None:
    p = people
    ada = p.public("ada")
    phone_path = tmp_path / "ada-phone.key"
    assert main(["key", "new", "--out", str(phone_path)]) == 0
    phone = read_key_file(phone_path)
    # Ada links it herself, signing with the key she already holds.
    p.capsys.readouterr()
    code, out, err = p.kith("ada", "member", "add-device", "--new-key-file", str(phone_path))
    assert code == 0, err
    assert "member.key_added recorded (device key linked)" in out
    code, _, err = p.kith("ada", "member", "add-device", "--new-key-file", str(phone_path))
    assert code == 1 and "already on the roster" in err
    # And a tablet she links and then retires herself: no coordinator needed for her own.
    tablet_path = tmp_path / "ada-tablet.key"
    assert main(["key", "new", "--out", str(tablet_path)]) == 0
    tablet = read_key_file(tablet_path)
    assert p.kith("ada", "member", "add-device", "--new-key-file", str(tablet_path))[0] == 0
    code, out, err = p.kith("ada", "member", "revoke-device", tablet.public, "--reason", "sold")
    assert code == 0 and "member.key_revoked recorded" in out, err
    p.capsys.readouterr()
    phone_client = KithClient(p.served.url, phone.signing_key())
    assert phone_client.post("need.posted", needed())["ok"]

    code, out, _ = p.kith("bo", "member", "devices", ada)
    assert code == 0 and f"{phone.public}  active" in out and "2 linked device(s)" in out
    code, _, err = p.kith("bo", "member", "revoke-device", phone.public)
    assert code == 1 and "only the pod's coordinators may revoke someone else's device" in err
    code, out, err = p.kith("cora", "member", "revoke-device", phone.public, "--reason", "lost")
    assert code == 0, err
    assert "member.key_revoked recorded" in out and "pod seq 1" in out
    assert "nothing it signs later counts" in out

    # The revoked phone posts again: refused with the reason (its own log's next seq).
    env = sign_event(
        phone.signing_key(),
        pod=p.client(None).info()["pod"],
        scope="pod",
        seq=2,
        prev=p.client("ada").get(f"/v1/logs/{p.client(None).info()['pod']}/{phone.public}/pod")[
            "id"
        ],
        ts=int(time.time() * 1000),
        kind="need.posted",
        body=needed(),
    )
    [result] = p.client(None).post_envelopes([env])
    assert not result["ok"] and result["reason"] == "unauthorized"
    assert "key revoked" in result["message"]
    code, out, _ = p.kith("ada", "member", "devices", ada)
    assert "revoked, valid through pod seq 1, peers seq 0, public seq 0" in out
    code, _, err = p.kith("cora", "member", "revoke-device", phone.public)
    assert code == 1 and "already revoked" in err


def test_recovery_links_a_new_key_to_the_same_person(people: People) -> None:
    p = people
    ada = p.public("ada")
    need = p.client("ada").post("need.posted", needed())["id"]
    code, _, err = p.kith(
        "bo", "member", "recover", "--member", ada, "--new-key-file", str(p.keys["ada-new"]),
        "--reason", "x",
    )  # fmt: skip
    assert code == 1 and "only the pod's coordinators may recover a member" in err
    code, _, err = p.kith(
        "cora", "member", "recover", "--member", ada, "--new-key-file", str(p.keys["bo"]),
        "--reason", "checked at the Tuesday meeting",
    )  # fmt: skip
    assert code == 1 and "already on the roster" in err
    code, out, err = p.kith(
        "cora", "member", "recover", "--member", ada, "--new-key-file", str(p.keys["ada-new"]),
        "--reason", "checked in person at the Tuesday meeting",
    )  # fmt: skip
    assert code == 0, err
    assert "member.key_added recorded (device key linked)" in out
    assert "member.added recorded (member updated: new role or box key)" in out
    assert "1 lost key(s) revoked" in out and "stay theirs" in out

    # The old key is refused; the new one acts for Ada: her need is still hers.
    assert post_as(p, p.signing("ada"))["reason"] == "unauthorized"
    new = p.client("ada-new")
    withdrawn = new.post("need.withdrawn", {"need": need})
    assert withdrawn["ok"] and withdrawn["effect"]["ok"], withdrawn
    view = p.client("cora").get("/v1/moderation")
    recovered = [a for a in view["actions"] if a["action"] == "recover"]
    assert recovered[0]["reason"] == "checked in person at the Tuesday meeting"
    assert recovered[0]["person"] == ada and recovered[0]["by"] == p.public("cora")
    [member] = [m for m in p.client("cora").get("/v1/members") if m["key"] == ada]
    assert member["primary_revoked"] and member["devices"][0]["key"] == p.public("ada-new")


def test_an_erased_report_and_its_resolution_stay_hidden_from_the_one_they_name(
    people: People,
) -> None:
    p = people
    cy = p.public("cy")
    _, out, _ = p.kith("ada", "report", "--about", cy, "--text", "Said something cruel")
    report = recorded_id(out, "report.filed")
    _, out, _ = p.kith("bo", "report", "--about", p.public("ada"), "--text", "x")
    about_ada = recorded_id(out, "report.filed")
    code, out, err = p.kith("cora", "moderation", "resolve", report, "--note", "spoke to Cy")
    assert code == 0, err
    resolution = recorded_id(out, "report.resolved")
    assert p.client("ada").post("event.redacted", {"target": report})["ok"]

    def ids(name: str) -> set[str]:
        page = p.client(name).get("/v1/events", kinds="report.*")
        return {e["id"] for e in page["events"]}

    assert not ids("cy") & {report, resolution}
    assert {report, resolution} <= ids("cora")
    erased = p.client("cora").get(f"/v1/events/{report}")
    assert erased["envelope"]["body"] is None  # erased, and still not Cy's to read
    [item] = [r for r in p.client("cora").get("/v1/moderation")["reports"] if r["id"] == report]
    assert item["text"] is None and item["status"] == "resolved" and item["note"] == "spoke to Cy"
    # A resolution by a member is stored but closes nothing; a made-up report id is refused.
    assert p.client("bo").post("report.resolved", {"report": about_ada})["ok"]
    view = p.client("cora").get("/v1/moderation")
    assert [r["status"] for r in view["reports"] if r["id"] == about_ada] == ["open"]
    code, _, err = p.kith("cora", "moderation", "resolve", resolution)
    assert code == 1 and "no report" in err


def test_a_sealed_report_part_is_sealed_to_the_coordinators_but_not_the_one_reported(
    people: People,
) -> None:
    from node.cli.sealed import event_body, open_field

    p = people
    code, out, err = p.kith(
        "ada", "report", "--about", p.public("cy"), "--text", "see sealed",
        "--sealed", "he has my spare key",
    )  # fmt: skip
    assert code == 0, err
    report = recorded_id(out, "report.filed")
    sealed = (event_body(p.client("cora"), report) or {})["sealed"]
    for name, opens in [("cora", True), ("ada", True), ("cy", False)]:
        opened = open_field(read_key_file(p.keys[name]), sealed, "report.filed", "sealed")
        assert (opened == {"text": "he has my spare key"}) is opens, name


def test_the_member_list_is_for_members(people: People) -> None:
    p = people
    answer = httpx.get(f"{p.served.url}/v1/members")
    assert answer.status_code == 401 and answer.json()["reason"] == "unauthorized"
    code, _, err = p.kith("outsider", "member", "list")
    assert code == 1 and "not an active member of this pod" in err
    code, out, _ = p.kith("bo", "member", "devices")
    assert code == 0 and out.count("0 linked device(s)") == 4


def test_a_report_filed_from_a_phone_is_read_by_its_owner_from_any_device(
    people: People, tmp_path: Path
) -> None:
    p = people
    phone_path = tmp_path / "ada-phone2.key"
    assert main(["key", "new", "--out", str(phone_path)]) == 0
    phone = read_key_file(phone_path)
    body = {"member": p.public("ada"), "key": phone.public}
    assert p.client("cora").post("member.key_added", body, scope="public")["ok"]
    p.capsys.readouterr()
    code = main(
        ["report", "--about", p.public("bo"), "--text", "x", "--key", str(phone_path),
         "--url", p.served.url]
    )  # fmt: skip
    assert code == 0
    report = recorded_id(p.capsys.readouterr().out, "report.filed")
    assert p.client("ada").get(f"/v1/events/{report}")["id"] == report
    with pytest.raises(KithError, match="HTTP 404"):
        p.client("bo").get(f"/v1/events/{report}")
    [item] = p.client("cora").get("/v1/moderation")["reports"]
    assert item["by"] == p.public("ada")  # the person, not the phone
