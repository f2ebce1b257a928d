"""The coordinators' tab in a real browser against real nodes (issue 13 item 4).

A coordinator's board and an ordinary member's: the member never sees the tab; a report filed by
another member appears for the coordinator, who blocks the person from it (the report resolves),
and the blocked person's next post is refused in words on their own board; members are listed
by name with role and status; an erasure shows with what it reached; a need is referred to
neighbours. Then overflow across two real federated pods on loopback: one refers, the other
offers, the first assigns, the second records it done, and each board says so in words.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from node.client import KithClient
from node.datadir import read_key_file
from protocol.codec import b64d
from protocol.sealed import seal_json
from tests.board.helpers import WAIT_MS, Member, axe_violations
from tests.integration.conftest import Pod, Poster, free_port, kith, member

PHONE = {"viewport": {"width": 360, "height": 780}, "device_scale_factor": 2}


def join_as(pod: Pod, who: Member, role: str = "member") -> None:
    """Add the keys the board shows with the CLI, with ``role``; wait until it reads as one."""
    key, box = who.keys()
    kith(
        "member",
        "add",
        "--key",
        key,
        "--box-key",
        box,
        "--role",
        role,
        "--dir",
        str(pod.dir),
        "--url",
        pod.url,
    )
    who.page.wait_for_selector("#post-form", state="visible", timeout=WAIT_MS)


def set_name(who: Member, name: str) -> None:
    """The board signs the person's profile.set (the profile form is another tab's work)."""
    ok = who.page.evaluate(
        """async (name) => {
          const core = await import('/board/core.js');
          return (await core.publish('profile.set', {name})).changed;
        }""",
        name,
    )
    assert ok


def status_says(who: Member, selector: str, text: str, ok: bool = True) -> None:
    """Wait until the status line ``selector`` says ``text`` (as an outcome, ok or not)."""
    try:
        who.page.wait_for_function(
            """([sel, text, ok]) => {
              const line = document.querySelector(sel);
              return line && line.dataset.ok === String(ok) && line.textContent.includes(text);
            }""",
            arg=[selector, text, ok],
            timeout=WAIT_MS,
        )
    except Exception as exc:
        said = who.page.text_content(selector)
        raise AssertionError(f"{selector} says {said!r}, not {text!r}") from exc


def item(who: Member, selector: str, text: str) -> Any:
    locator = who.page.locator(selector, has_text=text)
    locator.first.wait_for(timeout=WAIT_MS)
    return locator.first


def test_coordinator_screens(board_pod: Pod, browser: Any, tmp_path: Path) -> None:
    pod = board_pod
    pod_id = pod.data.config().pod
    cora = Member(browser, pod, "cora", locale="en-GB", viewport={"width": 1100, "height": 900})
    ana = Member(browser, pod, "ana", locale="en-GB", **PHONE)
    join_as(pod, cora, "coordinator")
    join_as(pod, ana)
    set_name(cora, "Cora")
    set_name(ana, "Ana")
    dee_key = member(pod, tmp_path, "dee")
    dee = Poster(pod.url, dee_key, pod_id)
    dee.post([dee.sign("profile.set", {"name": "Dee"})])
    node = KithClient(pod.url, pod.node_key().signing_key())

    # The member sees no Coordinate tab, and #coordinate opens the needs instead.
    ana.page.wait_for_selector("#tabs a[href='#needs']", timeout=WAIT_MS)
    assert ana.page.locator("#tabs a[href='#coordinate']").count() == 0
    ana.page.goto(pod.url + "/#coordinate")
    ana.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    ana.page.wait_for_selector("#post-form", state="visible", timeout=WAIT_MS)
    assert not ana.page.is_visible("#view-coordinate")
    # The coordinator does, with its four parts.
    cora.page.click("#tabs a[href='#coordinate']")
    cora.page.wait_for_selector("#view-coordinate", state="visible", timeout=WAIT_MS)
    for heading in ("Overflow", "Reports", "Members", "Erasure"):
        assert cora.page.locator("#coord-menu a", has_text=heading).count() == 1

    # Dee reports Ana: the coordinator sees it, by name, with its words.
    (report_id,) = dee.post(
        [dee.sign("report.filed", {"about": ana.keys()[0], "text": "Shouted at a volunteer"})]
    )
    report = item(cora, "#coord-reports-list li", "Shouted at a volunteer")
    assert "Dee reported Ana" in report.inner_text()
    # The roster, by name, with role, status and devices.
    roster = cora.page.locator("#coord-members-list")
    item(cora, "#coord-members-list li", "Ana")
    assert "Member · active · 1 device" in roster.inner_text()
    assert "Coordinator · active" in roster.inner_text()
    assert ana.keys()[0][:6] not in (cora.page.text_content("#view-coordinate") or "")
    cora.shot("coordinate-1-report")

    # A note being typed survives the tab redrawing itself when something happens meanwhile.
    report.get_by_label("Note for the other coordinators (stays in the pod)").fill("Talked to both")
    dee.need("Soup for Friday", category="food")
    item(cora, "#coord-refer-list li", "Soup for Friday")
    note = report.get_by_label("Note for the other coordinators (stays in the pod)")
    assert note.input_value() == "Talked to both"
    assert cora.page.evaluate("() => document.activeElement.id").startswith("coord-note-")

    # Block Ana from the report: a confirmation in words, a reason word, then the outcome.
    errors_before_block = len(ana.errors)
    report.get_by_role("button", name="Block Ana…").click()
    panel = cora.page.locator("#coord-reports-list .coord-confirm")
    assert "From now their posts are refused" in panel.inner_text()
    panel.get_by_label("Why (one word, seen by every pod)").select_option("harassment")
    panel.get_by_role("button", name="Yes, block Ana").click()
    status_says(
        cora, "#coord-reports-result", "Ana is blocked from now, and the report is resolved."
    )
    people = {p["key"]: p for p in node.get("/v1/members")}
    assert people[ana.keys()[0]]["status"] == "blocked"
    view = node.get("/v1/moderation")
    (resolved,) = [r for r in view["reports"] if r["id"] == report_id]
    assert resolved["status"] == "resolved" and resolved["note"] == "Talked to both"
    assert resolved["resolved_by"] == cora.keys()[0] and resolved["action"]
    (action,) = [a for a in view["actions"] if a["action"] == "block"]
    assert action["reason"] == "harassment" and action["by"] == cora.keys()[0]
    item(cora, "#coord-resolved-list li", "resolved by you: Talked to both")
    item(cora, "#coord-members-list li[data-status=blocked]", "Ana")

    # Ana's next post is refused, in words, on her own board.
    ana.page.fill("#title", "Help with the garden")
    ana.page.click("#post-button")
    blocked_words = "This device can no longer post for you: a coordinator blocked or removed you"
    status_says(ana, "#post-result", blocked_words, ok=False)
    ana.shot("coordinate-2-blocked-member")

    # Unblock from the roster; Ana can post again.
    cora.page.get_by_role("button", name="Unblock Ana").click()
    status_says(cora, "#coord-members-result", "Ana is unblocked")
    assert {p["key"]: p for p in node.get("/v1/members")}[ana.keys()[0]]["status"] == "active"
    ana.page.click("#post-button")
    status_says(ana, "#post-result", "Posted.")
    # While blocked, the node refused Ana's token (401), and Chromium logged each refusal.
    while_blocked = ana.errors[errors_before_block:]
    assert while_blocked and all("401 (Unauthorized)" in e for e in while_blocked), while_blocked
    del ana.errors[errors_before_block:]

    # Refer one of the pod's open needs: the referral waits for a neighbour.
    (dee_need,) = dee.need("Ride to the clinic on Tuesday", category="ride", urgency="high")
    need = item(cora, "#coord-refer-list li", "Ride to the clinic on Tuesday")
    need.get_by_role("button", name="Refer to neighbours: Ride to the clinic on Tuesday").click()
    status_says(cora, "#coord-overflow-result", "Passed on.")
    out = item(cora, "#coord-out-list li", "A ride")
    assert "Waiting for a neighbour" in out.inner_text()
    assert "Today" in out.inner_text()
    assert "Ride to the clinic" not in out.inner_text()  # the summary only, as neighbours see it
    listing = node.get("/v1/overflow")
    assert [i["referral"]["need"] for i in listing["outgoing"]] == [dee_need]
    assert listing["outgoing"][0]["state"] == "referred"
    # Referring it again is refused with the node's reason in words.
    result = cora.page.evaluate(
        """async (need) => {
          const core = await import('/board/core.js');
          const r = await core.postJSON('/v1/overflow/refer', {need});
          return [r.ok, r.answer.reason];
        }""",
        dee_need,
    )
    assert result == [False, "overflow:already-referred"]
    # Chromium logs the refused request (409) as a console error: this one was asked for.
    refused = [e for e in cora.errors if "409 (Conflict)" in e and "/v1/overflow/refer" in e]
    assert len(refused) == 1
    cora.errors.remove(refused[0])

    # Erase Dee's other need: a plain-words confirmation, then the erasure is listed.
    (erase_need,) = dee.need("Old sofa to give away, call 555 0199", category="goods")
    cora.page.wait_for_function(
        "t => [...document.querySelectorAll('#coord-erase-select option')]"
        ".some(o => o.textContent === t)",
        arg="Old sofa to give away, call 555 0199",
        timeout=WAIT_MS,
    )
    cora.page.select_option("#coord-erase-select", label="Old sofa to give away, call 555 0199")
    cora.page.click("#coord-erase-button")
    confirm = cora.page.locator("#coord-erase-confirm")
    words = confirm.inner_text()
    assert "It does not reach backups or exports made before" in words
    assert "This cannot be undone." in words
    cora.shot("coordinate-3-erase-confirm")
    confirm.get_by_role("button", name="Yes, erase it").click()
    status_says(cora, "#coord-erase-result", "Erased: “Old sofa to give away, call 555 0199”.")
    erased = item(cora, "#coord-erasures-list li", "A need, erased by you")
    assert "It never left this pod" in erased.inner_text()
    erasures = node.get("/v1/erasures")["erasures"]
    assert [(e["target"], e["status"], e["erased_by"]) for e in erasures] == [
        (erase_need, "erased", cora.keys()[0])
    ]
    assert node.get(f"/v1/needs/{erase_need}")["redacted"] is True

    # Remove asks first; Cancel changes nothing.
    cora.page.get_by_role("button", name="Remove Dee…").click()
    assert (
        "This cannot be undone"
        in cora.page.locator("#coord-members-list .coord-confirm").inner_text()
    )
    cora.page.locator("#coord-members-list .coord-confirm").get_by_role(
        "button", name="Cancel"
    ).click()
    assert {p["key"]: p for p in node.get("/v1/members")}[dee_key.public_b64]["status"] == "active"

    cora.shot("coordinate-4-desktop")
    for who in (cora, ana):
        assert axe_violations(who) == [], who.name
    # The coordinator's tab at 360 px, in Spanish.
    cora.page.set_viewport_size({"width": 360, "height": 780})
    cora.page.select_option("#lang", "es")
    cora.page.wait_for_function(
        "() => document.querySelector('#coord-reports-heading').textContent === 'Avisos'"
    )
    assert "Esperando a un vecino" in (cora.page.text_content("#coord-out-list") or "")
    assert axe_violations(cora) == []
    cora.shot("coordinate-5-phone-spanish")
    for who in (cora, ana):
        assert who.errors == [], (who.name, who.errors)


def wait_until(check: Any, what: str) -> Any:
    """Poll ``check`` (a node's read model over HTTP) until it is truthy; that value."""
    deadline = time.monotonic() + 30
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def peered(here: Pod, there_id: str) -> bool:
    """``here`` is live with ``there`` and holds its roster (its coordinators' box keys)."""
    doc = httpx.get(here.url + "/.well-known/kith", timeout=10).json()
    live = any(p["pod"] == there_id and p["state"] == "live" for p in doc["federation"]["peers"])
    keys = httpx.get(here.url + f"/v1/pods/{there_id}/keys", timeout=10)
    return live and keys.status_code == 200 and bool(keys.json()["coordinators"])


@pytest.fixture
def two_pods(tmp_path: Path) -> Iterator[tuple[Pod, Pod]]:
    """Elm Street and Oak Lane, two real `kith serve` processes peered on loopback."""
    pods = []
    for name in ("Elm Street", "Oak Lane"):
        port = free_port()
        data = tmp_path / name.replace(" ", "-")
        kith("init", "--dir", str(data), "--name", name, "--port", str(port))
        pods.append(Pod(data, port))
    elm, oak = pods
    for here, there in ((elm, oak), (oak, elm)):
        url = f"ws://127.0.0.1:{there.port}/v1/federation"
        kith("peer", "add", url, "--pod", there.data.config().pod, "--dir", str(here.dir))
    try:
        for p in pods:
            p.start()
        yield elm, oak
    finally:
        for p in pods:
            p.stop()


def test_overflow_between_two_pods(two_pods: tuple[Pod, Pod], browser: Any, tmp_path: Path) -> None:
    elm, oak = two_pods
    elm_id, oak_id = elm.data.config().pod, oak.data.config().pod
    cora = Member(browser, elm, "cora", locale="en-GB", viewport={"width": 1100, "height": 900})
    bea = Member(browser, oak, "bea", locale="en-GB", **PHONE)
    join_as(elm, cora, "coordinator")
    join_as(oak, bea, "coordinator")
    wait_until(
        lambda: peered(elm, oak_id) and peered(oak, elm_id), "Elm Street and Oak Lane peered"
    )
    amara_key = member(elm, tmp_path, "amara")
    amara = Poster(elm.url, amara_key, elm_id)
    amara.post([amara.sign("profile.set", {"name": "Amara"})])
    # Her address is sealed to Elm Street's coordinators and herself, as the need form does.
    coordinator = KithClient(elm.url, elm.node_key().signing_key())
    boxes = coordinator.get(f"/v1/pods/{elm_id}/keys")["coordinators"]
    boxes.append(read_key_file(tmp_path / "amara.key").box_public)
    personal = seal_json(
        {"address": "12 Elm Street, flat 3"},
        [b64d(k, 32) for k in boxes],
        aad=b"need.posted/personal",
    )
    body = {"title": "Ride to dialysis on Tuesday", "category": "ride", "urgency": "high"}
    body["personal"] = msgspec.to_builtins(personal)
    (need,) = amara.post([amara.sign("need.posted", body)])
    for who in (cora, bea):
        who.page.click("#tabs a[href='#coordinate']")
        who.page.wait_for_selector("#view-coordinate", state="visible", timeout=WAIT_MS)

    # Elm Street refers it: waiting for a neighbour.
    item(cora, "#coord-refer-list li", "Ride to dialysis on Tuesday").get_by_role(
        "button", name="Refer to neighbours: Ride to dialysis on Tuesday"
    ).click()
    status_says(cora, "#coord-overflow-result", "Passed on.")
    item(cora, "#coord-out-list li[data-state=referred]", "Waiting for a neighbour")

    # Oak Lane sees the summary only, from Elm Street by name, and offers to help.
    incoming = item(bea, "#coord-in-list li", "Elm Street: A ride · Today")
    assert "Ride to dialysis" not in (bea.page.text_content("#view-coordinate") or "")
    assert "Asking for help" in incoming.inner_text()
    bea.shot("coordinate-6-incoming-phone")
    incoming.get_by_role("button", name="Offer to help").click()
    status_says(bea, "#coord-overflow-result", "Offer sent. Elm Street decides who takes it.")
    item(bea, "#coord-in-list li", "You offered to help")

    # Elm Street: "Oak Lane can help"; assigned, without details (said so).
    out = item(cora, "#coord-out-list li[data-state=offered]", "Oak Lane can help")
    out.get_by_role("button", name="Give it to Oak Lane").click()
    status_says(cora, "#coord-overflow-result", "Assigned to Oak Lane.")
    said = cora.page.text_content("#coord-overflow-result") or ""
    assert "private details were sealed to their coordinators only" in said
    item(cora, "#coord-out-list li[data-state=assigned]", "Assigned to Oak Lane")
    # Oak Lane's coordinator opens them on her own device; nobody else can.
    opened = bea.page.evaluate(
        """async () => {
          const core = await import('/board/core.js');
          const sealed = await import('/board/seal.js');
          const page = await core.getJSON('/v1/events?kinds=overflow.assigned');
          const body = JSON.parse(page.events[0].envelope.body);
          return JSON.parse(sealed.open(body.details, core.state.keys.box,
            core.state.keys.boxKey, 'overflow.assigned/details'));
        }"""
    )
    assert opened == {"title": "Ride to dialysis on Tuesday", "address": "12 Elm Street, flat 3"}

    # Oak Lane: assigned to it; done, with the minutes it took.
    mine = item(bea, "#coord-in-list li[data-state=assigned]", "Assigned to your pod")
    mine.get_by_label("How many minutes it took").fill("45")
    mine.get_by_role("button", name="Done").click()
    status_says(bea, "#coord-overflow-result", "Recorded as done: 45 minutes.")
    item(bea, "#coord-in-list li[data-state=fulfilled]", "Done")

    # Elm Street's board and node: done, by Oak Lane, 45 minutes.
    item(cora, "#coord-out-list li[data-state=fulfilled]", "Done: Oak Lane gave 45 minutes")
    (referral,) = coordinator.get("/v1/overflow")["outgoing"]
    assert referral["state"] == "fulfilled" and referral["referral"]["need"] == need
    assert referral["referral"]["assignment"]["to_pod"] == oak_id
    cora.shot("coordinate-7-overflow-done")

    # Another: assigned to Oak Lane, which hands it back; open again on Elm Street.
    (groceries,) = amara.need("Groceries for Mr K", category="groceries", urgency="normal")
    item(cora, "#coord-refer-list li", "Groceries for Mr K").get_by_role(
        "button", name="Refer to neighbours: Groceries for Mr K"
    ).click()
    status_says(cora, "#coord-overflow-result", "Passed on.")
    item(bea, "#coord-in-list li", "Elm Street: Groceries · Soon").get_by_role(
        "button", name="Offer to help"
    ).click()
    status_says(bea, "#coord-overflow-result", "Offer sent.")
    item(cora, "#coord-out-list li[data-state=offered]", "Groceries").get_by_role(
        "button", name="Give it to Oak Lane"
    ).click()
    status_says(cora, "#coord-overflow-result", "Assigned to Oak Lane.")
    back = item(bea, "#coord-in-list li[data-state=assigned]", "Groceries")
    back.get_by_label("Why you cannot take it (optional)").fill("No driver after all")
    back.get_by_role("button", name="Hand it back").click()
    status_says(bea, "#coord-overflow-result", "Handed back. The need is open again at Elm Street.")
    item(bea, "#coord-in-list li[data-state=returned]", "You handed it back")
    item(cora, "#coord-out-list li[data-state=returned]", "Returned by Oak Lane")
    item(cora, "#coord-refer-list li", "Groceries for Mr K")  # can be passed on anew
    returned = [i for i in coordinator.get("/v1/overflow")["outgoing"] if i["state"] == "returned"]
    assert [i["referral"]["need"] for i in returned] == [groceries]
    assert returned[0]["referral"]["closing"]["reason"] == "No driver after all"

    # An offer Amara made public reached Oak Lane; Elm Street erases it, Oak Lane confirms.
    public = Poster(elm.url, amara_key, elm_id, scope="public")
    (offer_id,) = public.post(
        [public.sign("offer.posted", {"title": "Spare bike", "category": "goods"})]
    )
    wait_until(
        lambda: httpx.get(oak.url + f"/v1/events/{offer_id}").status_code == 200, "offer on Oak"
    )
    cora.page.wait_for_function(
        "() => [...document.querySelectorAll('#coord-erase-select option')]"
        ".some(o => o.textContent === 'Spare bike')",
        timeout=WAIT_MS,
    )
    cora.page.select_option("#coord-erase-select", label="Spare bike")
    cora.page.click("#coord-erase-button")
    cora.page.locator("#coord-erase-confirm").get_by_role("button", name="Yes, erase it").click()
    status_says(cora, "#coord-erase-result", "Erased: “Spare bike”.")
    erased = item(cora, "#coord-erasures-list li", "An offer, erased by you")
    erased.get_by_text("Erased here; 1 of 1 neighbouring pods confirmed.").wait_for(timeout=WAIT_MS)
    (listed,) = coordinator.get("/v1/erasures")["erasures"]
    assert listed["target"] == offer_id and listed["confirmed"] == [oak_id]
    cora.shot("coordinate-8-erasure-confirmed")

    # Amara is in Oak Lane too. Elm Street blocks her and tells its neighbours; Oak Lane's
    # coordinator sees the advice (nothing applied by itself) and adopts it.
    kith(
        "member",
        "add",
        "--key-file",
        str(tmp_path / "amara.key"),
        "--dir",
        str(oak.dir),
        "--url",
        oak.url,
    )
    on_oak = Poster(oak.url, amara_key, oak_id)
    on_oak.post([on_oak.sign("profile.set", {"name": "Amara"})])
    item(cora, "#coord-members-list li", "Amara").get_by_role("button", name="Block Amara…").click()
    panel = cora.page.locator("#coord-members-list .coord-confirm")
    panel.get_by_label("Why (one word, seen by every pod)").select_option("fraud")
    panel.get_by_label("Also tell our neighbouring pods").check()
    panel.get_by_role("button", name="Yes, block Amara").click()
    status_says(
        cora, "#coord-members-result", "Amara is blocked from now. Neighbouring pods are told"
    )
    advice = item(bea, "#coord-advice-list li", "Elm Street blocked Amara (fraud or scams)")
    assert "Nothing happens unless you adopt it." in advice.inner_text()
    oak_node = KithClient(oak.url, oak.node_key().signing_key())
    assert {p["key"]: p for p in oak_node.get("/v1/members")}[amara_key.public_b64][
        "status"
    ] == "active"
    bea.shot("coordinate-9-advice-phone")
    advice.get_by_role("button", name="Block them here too").click()
    status_says(bea, "#coord-reports-result", "Amara is blocked here too, from now.")
    item(bea, "#coord-advice-list li", "Adopted: blocked here too")
    assert {p["key"]: p for p in oak_node.get("/v1/members")}[amara_key.public_b64][
        "status"
    ] == "blocked"
    (adopted,) = [
        a for a in oak_node.get("/v1/moderation")["advisories"] if a["direction"] == "incoming"
    ]
    assert adopted["status"] == "adopted" and adopted["reason"] == "fraud"
    for who in (cora, bea):
        assert axe_violations(who) == [], who.name
        assert who.errors == [], (who.name, who.errors)
