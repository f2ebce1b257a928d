"""Asking for help in full, filtering needs, and offers, on the board in a real browser.

Ana posts a need with a time window, an estimate and private details; the browser seals those
to the pod's coordinator (Cora) and to Ana, and the node holds exactly that sealed field. Cora's
board shows them opened, Bea's never. A window that ends before it starts is refused in words
before anything is signed, keeping what was typed. Filters narrow the list and are kept across a
reload. Bea offers a lift; Ana sees it appear live, in words, and it goes when Bea withdraws it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from node.datadir import read_key_file
from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.envelope import encode_envelope, event_id, sign_event
from protocol.sealed import box_keypair_from_seed
from protocol.tokens import make_token
from tests.board.helpers import WAIT_MS, Member, axe_violations, join, need_titles
from tests.integration.conftest import Pod, Poster, kith, member

PHONE = {"viewport": {"width": 360, "height": 780}, "device_scale_factor": 2}
ADDRESS = "Calle Mayor 3, 2º izq."
PHONE_NO = "+34 600 111 222"


def join_as_coordinator(pod: Pod, who: Member) -> None:
    key, box = who.keys()
    kith(
        "member", "add", "--key", key, "--box-key", box, "--role", "coordinator",
        "--dir", str(pod.dir), "--url", pod.url,
    )  # fmt: skip
    who.page.wait_for_selector("#post-form", state="visible", timeout=WAIT_MS)


def set_name(who: Member, name: str) -> None:
    """Sign a profile.set with the board's own code, in the member's browser."""
    outcome = who.page.evaluate(
        "async (name) => (await import('/board/core.js')).publish('profile.set', {name})", name
    )
    assert outcome["changed"], outcome


def read_as(who: Member, path: str) -> Any:
    """GET a route with the member's own token, signed in their browser."""
    return who.page.evaluate(
        "async (path) => (await (await import('/board/core.js')).api(path)).json()", path
    )


def neighbour_need(pod: Pod, title: str) -> None:
    """A neighbouring pod's public need reaching this node: its public roster, then the need."""
    root, helper = SigningKey.generate(), SigningKey.generate()
    other, now = root.public_b64, int(time.time() * 1000)
    created = sign_event(
        root, pod=other, scope="public", seq=1, prev=None, ts=now, kind="pod.created",
        body={"name": "Birch Lane"},
    )  # fmt: skip
    added = sign_event(
        root, pod=other, scope="public", seq=2, prev=event_id(created.head), ts=now,
        kind="member.added",
        body={"key": helper.public_b64, "role": "member", "box_key": root.public_b64},
    )  # fmt: skip
    need = sign_event(
        helper, pod=other, scope="public", seq=1, prev=None, ts=now, kind="need.posted",
        body={"title": title, "category": "goods", "urgency": "low", "area": "Birch Lane"},
    )  # fmt: skip
    body = b'{"events":[' + b",".join(encode_envelope(e) for e in (created, added, need)) + b"]}"
    results = httpx.post(pod.url + "/v1/events", content=body).json()["results"]
    assert all(r["ok"] for r in results), results


def local(day: datetime, hour: int) -> str:
    return day.replace(hour=hour, minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M")


def status(who: Member, selector: str, text: str, ok: bool = True) -> None:
    who.page.wait_for_function(
        "([sel, text, ok]) => { const l = document.querySelector(sel);"
        " return l.dataset.ok === String(ok) && l.textContent.includes(text); }",
        arg=[selector, text, ok],
        timeout=WAIT_MS,
    )


def test_needs_and_offers(board_pod: Pod, browser: Any, tmp_path: Path) -> None:
    pod = board_pod
    cora = Member(browser, pod, "cora", locale="es-ES", viewport={"width": 1100, "height": 900})
    ana = Member(browser, pod, "ana", locale="en-GB", **PHONE)
    bea = Member(browser, pod, "bea", locale="en-GB", viewport={"width": 1100, "height": 900})
    cora_box = cora.keys()[1]
    ana_box = ana.keys()[1]
    join_as_coordinator(pod, cora)
    join(pod, ana)
    join(pod, bea)
    set_name(cora, "Cora")
    set_name(bea, "Bea")
    # A second coordinator, Dee, who uses the command line (her key file is on disk).
    dee_key = member(pod, tmp_path, "dee", role="coordinator")
    dee = Poster(pod.url, dee_key, pod.data.config().pod)
    dee.post([dee.sign("profile.set", {"name": "Dee"})])
    dee_box = read_key_file(tmp_path / "dee.key").box_public

    # The form says plainly who will be able to read the private details.
    who_reads = "Only you and the pod's coordinators (Cora and Dee) will be able to read these."
    # The optional part of the form is folded away on a phone until asked for.
    assert not ana.page.is_visible("#needs-address")
    ana.page.click("#needs-more summary")
    ana.page.get_by_text(who_reads).wait_for(timeout=WAIT_MS)

    tomorrow = datetime.now() + timedelta(days=1)
    ana.page.fill("#title", "Help carrying a sofa upstairs")
    ana.page.select_option("#category", "repair")
    ana.page.select_option("#urgency", "high")
    ana.page.fill("#needs-details", "Third floor, no lift.")
    ana.page.fill("#needs-area", "Old Town")
    ana.page.fill("#needs-from", local(tomorrow, 12))
    ana.page.fill("#needs-until", local(tomorrow, 10))
    ana.page.fill("#needs-hours", "1")
    ana.page.fill("#needs-address", ADDRESS)
    ana.page.fill("#needs-phone", PHONE_NO)
    ana.page.fill("#needs-notes", "Ring twice")

    # A window that ends before it starts: refused in words, nothing signed, nothing lost.
    ana.page.click("#post-button")
    status(ana, "#post-result", "The end time must be after the start time", ok=False)
    assert ana.page.get_attribute("#needs-until", "aria-invalid") == "true"
    assert ana.page.input_value("#title") == "Help carrying a sofa upstairs"
    assert ana.page.input_value("#needs-address") == ADDRESS
    assert read_as(ana, "/v1/needs") == []
    ana.shot("needs-1-bad-window-phone")

    ana.page.fill("#needs-until", local(tomorrow, 12))
    ana.page.fill("#needs-from", local(tomorrow, 10))
    ana.page.click("#post-button")
    status(ana, "#post-result", "Your private details are sealed")
    assert ana.page.input_value("#needs-address") == ""  # posted: the form is empty again

    # The node holds a sealed field for exactly Cora and Ana (the raw event, read as Ana).
    (need,) = read_as(ana, "/v1/needs")
    assert need["window"]["end"] - need["window"]["start"] == 2 * 3600 * 1000
    assert (need["minutes_estimate"], need["area"]) == (60, "Old Town")
    raw = read_as(ana, f"/v1/events/{need['id']}")
    body = json.loads(raw["envelope"]["body"])
    assert body["personal"]["alg"] == "x25519-hkdf-sha256-chacha20poly1305"
    assert sorted(r["key"] for r in body["personal"]["to"]) == sorted([cora_box, dee_box, ana_box])
    # What the browser sealed, Python opens: Dee reads it with `kith details`.
    details = kith("details", need["id"], "--key", str(tmp_path / "dee.key"), "--url", pod.url)
    assert ADDRESS in details.stdout and PHONE_NO in details.stdout, details.stdout
    assert ADDRESS not in raw["envelope"]["body"] and PHONE_NO not in raw["envelope"]["body"]
    assert httpx.get(pod.url + "/v1/events", params={"kinds": "need.posted"}).json() == {
        "events": [],
        "next": None,
    }

    # Sealed to someone outside the pod: the node refuses it, and the board says so in words.
    outsider = b64e(box_keypair_from_seed(bytes([9]) * 32)[1])
    refused = ana.page.evaluate(
        """async (key) => {
          const core = await import('/board/core.js');
          const { seal } = await import('/board/seal.js');
          const personal = seal('{"phone":"1"}', [key], 'need.posted/personal');
          const body = {title: 'x', category: 'food', urgency: 'low', personal};
          return core.publish('need.posted', body);
        }""",
        outsider,
    )
    assert not refused["ok"] and "Nothing was posted" in refused["text"], refused

    # Ana and Cora see the details opened; Bea sees the need, never the details.
    for who, when_words, estimate in (
        (ana, "Tomorrow, 10:00–12:00", "about 1\u00a0h"),
        (cora, "Mañana, 10:00–12:00", "aprox. 1\u00a0h"),
    ):
        card = who.page.locator(f"#needs-list li[data-id='{need['id']}']")
        card.get_by_text(ADDRESS).wait_for(timeout=WAIT_MS)
        text = card.inner_text()
        assert PHONE_NO in text and "Ring twice" in text and when_words in text, text
        assert estimate in text, text
    bea.page.locator("#needs-list").get_by_text("Help carrying a sofa upstairs").wait_for(
        timeout=WAIT_MS
    )
    bea_card = bea.page.locator(f"#needs-list li[data-id='{need['id']}']").inner_text()
    assert "Tomorrow, 10:00–12:00" in bea_card and "Third floor, no lift." in bea_card
    bea_page = bea.page.content()
    assert ADDRESS not in bea_page and PHONE_NO not in bea_page and "Ring twice" not in bea_page
    ana.shot("needs-2-posted-phone")
    cora.shot("needs-3-coordinator-spanish")

    # Filters: a second need from the CLI side; each filter narrows Bea's list.
    cy_key = member(pod, tmp_path, "cy")
    cy = Poster(pod.url, cy_key, pod.data.config().pod)
    cy.need("Walk the dog this evening", category="pets", urgency="normal")
    neighbour_need(pod, "Lend a ladder")
    bea.page.get_by_text("Walk the dog this evening").wait_for(timeout=WAIT_MS)
    bea.page.get_by_text("Lend a ladder").wait_for(timeout=WAIT_MS)
    every = ["Help carrying a sofa upstairs", "Lend a ladder", "Walk the dog this evening"]
    assert sorted(need_titles(bea)) == every
    ladder = bea.page.locator("#needs-list li", has_text="Lend a ladder").inner_text()
    assert "From a neighbouring pod" in ladder
    sofa = bea.page.locator("#needs-list li", has_text="Help carrying a sofa").inner_text()
    assert "From a neighbouring pod" not in sofa

    assert not bea.page.is_visible("#needs-f-category")  # folded until asked for
    bea.page.click("#needs-filter-box summary")

    def shown(**choice: str) -> list[str]:
        for name, value in choice.items():
            bea.page.select_option(f"#needs-f-{name}", value)
        return need_titles(bea)

    assert shown(category="pets") == ["Walk the dog this evening"]
    assert bea.page.text_content("#needs-count") == "Showing 1 of 3 open needs."
    assert shown(category="", urgency="high") == ["Help carrying a sofa upstairs"]
    assert shown(urgency="", area="Old Town") == ["Help carrying a sofa upstairs"]
    assert shown(area="", pod="neighbours") == ["Lend a ladder"]
    assert shown(urgency="urgent") == []
    assert "No open need matches" in (bea.page.text_content("#needs-empty") or "")
    assert shown(urgency="") == ["Lend a ladder"]
    assert shown(pod="home", category="pets") == ["Walk the dog this evening"]
    bea.page.reload()  # the choice is kept on this device
    bea.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    bea.page.get_by_text("Walk the dog this evening").wait_for(timeout=WAIT_MS)
    assert bea.page.input_value("#needs-f-category") == "pets"
    assert bea.page.is_visible("#needs-f-category")  # filters in use are shown, not folded
    assert need_titles(bea) == ["Walk the dog this evening"]
    bea.shot("needs-4-filtered-desktop")
    bea.page.click("#needs-f-clear")
    assert sorted(need_titles(bea)) == every

    for who in (ana, bea, cora):
        assert axe_violations(who) == [], who.name

    # Offers: Bea offers lifts; Ana, on the Offers tab, sees it live in words.
    ana.page.click("#tabs a[href='#offers']")
    ana.page.wait_for_selector("#offers-form", state="visible")
    bea.page.goto(pod.url + "/#offers")
    bea.page.wait_for_selector("#offers-form", state="visible", timeout=WAIT_MS)
    bea.page.fill("#offers-title", "Lifts to the clinic")
    bea.page.select_option("#offers-category", "ride")
    bea.page.fill("#offers-from-1", local(tomorrow, 18))
    bea.page.fill("#offers-until-1", local(tomorrow, 20))
    bea.page.fill("#offers-capacity", "3")
    bea.page.fill("#offers-area", "Old Town")
    bea.page.click("#offers-button")
    status(bea, "#offers-result", "Posted. The pod can see what you can do.")
    line = "Bea can drive people: Tomorrow, 18:00–20:00"
    ana.page.get_by_text(line).wait_for(timeout=WAIT_MS)
    assert "Up to 3 people at once" in (ana.page.text_content("#offers-list") or "")
    assert ana.page.locator("#offers-list button").count() == 0  # not Ana's to withdraw
    bea.page.get_by_text("You can drive people: Tomorrow, 18:00–20:00").wait_for(timeout=WAIT_MS)

    token = make_token(
        cy_key,
        purpose="http",
        node_key=httpx.get(pod.url + "/.well-known/kith").json()["node_key"],
        now_ms=int(time.time() * 1000),
    )
    offers = httpx.get(pod.url + "/v1/offers", headers={"authorization": f"Kith {token}"}).json()
    assert [(o["title"], o["capacity"], len(o["windows"])) for o in offers] == [
        ("Lifts to the clinic", 3, 1)
    ]
    cora.page.click("#tabs a[href='#offers']")
    cora.page.get_by_text("Bea puede llevar a gente en coche: Mañana, 18:00–20:00").wait_for(
        timeout=WAIT_MS
    )
    cora.shot("offers-3-spanish")
    ana.shot("offers-1-phone")
    bea.shot("offers-2-desktop")
    for who in (ana, bea, cora):
        assert axe_violations(who) == [], who.name

    # Bea withdraws it; it leaves Ana's board live.
    bea.page.click("#offers-list button")
    status(bea, "#offers-list-result", "Withdrawn.")
    ana.page.get_by_text(line).wait_for(state="detached", timeout=WAIT_MS)
    assert ana.page.is_visible("#offers-empty")

    for who in (ana, bea, cora):
        assert who.errors == [], (who.name, who.errors)
