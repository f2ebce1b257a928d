"""Joining without a terminal (issue 13 item 3), in a real browser against a real node.

A coordinator makes invites in the board; newcomers in other browser contexts open the links,
their browsers make their keys and they join: at once (an ``auto`` invite), or once the
coordinator approves them in the board. A used link, a withdrawn one and a declined request are
refused in words.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from protocol.tokens import make_token
from tests.board.helpers import WAIT_MS, Member, axe_violations
from tests.integration.conftest import Pod, kith, member

PHONE = {"viewport": {"width": 360, "height": 780}, "device_scale_factor": 2}


def coordinator(browser: Any, pod: Pod) -> Member:
    """A browser context whose key the CLI adds as a coordinator."""
    cora = Member(browser, pod, "cora", locale="en-GB", viewport={"width": 1100, "height": 900})
    key, box = cora.keys()
    kith("member", "add", "--key", key, "--box-key", box, "--role", "coordinator",
         "--dir", str(pod.dir), "--url", pod.url)  # fmt: skip
    cora.page.wait_for_selector("#post-form", state="visible", timeout=WAIT_MS)
    cora.page.wait_for_selector("#tabs a[href='#invite']", timeout=WAIT_MS)
    return cora


def make_invite(cora: Member, approve: str, expires: str = "3d") -> str:
    """Make an invite in the board; the link it shows."""
    page = cora.page
    page.click("#tabs a[href='#invite']")
    page.wait_for_selector("#invite-form", state="visible", timeout=WAIT_MS)
    before = page.text_content("#invite-link") or ""
    page.select_option("#invite-expires", expires)
    page.select_option("#invite-approve", approve)
    page.click("#invite-button")
    page.wait_for_function(
        "b => { const l = document.querySelector('#invite-link').textContent;"
        " return l && l !== b && document.querySelector('#invite-qr svg path'); }",
        arg=before,
        timeout=WAIT_MS,
    )
    assert "Invite ready" in (page.text_content("#invite-result") or "")
    link = page.text_content("#invite-link") or ""
    assert link.startswith(cora.page.url.split("#")[0] + "#join/")
    return link


def open_link(who: Member, link: str, name: str | None) -> None:
    who.page.goto(link)
    who.page.wait_for_selector("#join-invite", state="visible", timeout=WAIT_MS)
    heading = who.page.text_content("#join-invite-heading")
    assert heading in ("You're invited to Elm Street", "Te invitan a Elm Street")
    assert not who.page.is_visible("#join")  # the by-hand path is for a visit without a link
    if name:
        who.page.fill("#join-name", name)
    who.page.click("#join-button")


def result_says(who: Member, words: str) -> None:
    who.page.wait_for_function(
        "w => document.querySelector('#join-result').textContent.includes(w)",
        arg=words,
        timeout=WAIT_MS,
    )


def test_invites(board_pod: Pod, browser: Any, tmp_path: Path) -> None:
    pod = board_pod
    cora = coordinator(browser, pod)

    # An invite that lets its newcomer in at once.
    link = make_invite(cora, "auto")
    assert cora.page.get_by_role("img", name="QR code of the invite link").is_visible()
    cora.shot("invites-1-made")
    assert axe_violations(cora) == []
    nia = Member(browser, pod, "nia", locale="en-GB", **PHONE)
    nia_key = nia.keys()[0]
    open_link(nia, link, "Nia")
    nia.page.wait_for_selector("#post-form", state="visible", timeout=WAIT_MS)
    assert "#join/" not in nia.page.url  # the spent code leaves the address bar
    # The name given when joining is signed in the browser: the coordinator sees it.
    cora.page.wait_for_function(
        "() => document.querySelector('#invite-all-list').textContent"
        ".includes('Nia joined with it.')",
        timeout=WAIT_MS,
    )
    nia.shot("invites-2-joined")

    # An invite a coordinator approves.
    link2 = make_invite(cora, "coordinator", "1d")
    bo = Member(browser, pod, "bo", locale="es-ES", **PHONE)
    bo_key = bo.keys()[0]
    open_link(bo, link2, "Bo")
    result_says(bo, "Esperando a que alguien de coordinación te apruebe")
    assert axe_violations(bo) == []
    bo.shot("invites-3-waiting-es")
    request = cora.page.locator("#invite-requests-list li", has_text="Bo wants to join")
    request.wait_for(timeout=WAIT_MS)
    cora.shot("invites-4-request")
    assert axe_violations(cora) == []
    request.get_by_role("button", name="Approve").click()
    cora.page.wait_for_function(
        "() => document.querySelector('#invite-requests-result').textContent"
        ".includes('Approved. Bo is in the pod now.')",
        timeout=WAIT_MS,
    )
    bo.page.wait_for_selector("#post-form", state="visible", timeout=WAIT_MS)

    # A used link, and a withdrawn one, are refused in words.
    late = Member(browser, pod, "late", locale="en-GB", **PHONE)
    open_link(late, link, None)
    result_says(late, "This invite has been used already.")
    late.shot("invites-5-used")
    link3 = make_invite(cora, "auto")
    item = cora.page.locator("#invite-all-list li[data-status=open]").first
    item.get_by_role("button", name="Withdraw").click()
    cora.page.wait_for_function(
        "() => document.querySelector('#invite-all-result').textContent.includes('Withdrawn.')",
        timeout=WAIT_MS,
    )
    open_link(late, link3, None)
    result_says(late, "This invite was withdrawn")
    assert not late.page.is_visible("#post-form")
    assert axe_violations(late) == []

    # A request the coordinator declines: the waiting page, asking again, says so.
    link4 = make_invite(cora, "coordinator")
    dee = Member(browser, pod, "dee", locale="en-GB", **PHONE)
    open_link(dee, link4, "Dee")
    result_says(dee, "Waiting for a coordinator to approve you.")
    request = cora.page.locator("#invite-requests-list li", has_text="Dee wants to join")
    request.wait_for(timeout=WAIT_MS)
    request.get_by_role("button", name="Decline").click()
    cora.page.wait_for_function(
        "() => document.querySelector('#invite-requests-result').textContent"
        ".includes('Declined. Dee cannot join with that link.')",
        timeout=WAIT_MS,
    )
    # The waiting page asks every 15 s: wait for its next turn.
    dee.page.wait_for_function(
        "() => document.querySelector('#join-result').textContent.includes('declined it')",
        timeout=WAIT_MS + 15_000,
    )
    assert not dee.page.is_visible("#post-form")

    # The coordinator's screen on a phone, in Spanish.
    cora.page.set_viewport_size({"width": 360, "height": 780})
    cora.page.select_option("#lang", "es")
    cora.page.wait_for_function(
        "() => document.querySelector('#invite-make-heading').textContent === 'Invita a alguien'",
        timeout=WAIT_MS,
    )
    assert cora.page.get_by_text("Retirada", exact=True).first.is_visible()
    cora.shot("invites-6-coordinator-es-360")
    assert axe_violations(cora) == []

    # What the node holds: two used invites (their members), one withdrawn, none waiting.
    eve = member(pod, tmp_path, "eve", role="coordinator")
    info = httpx.get(pod.url + "/.well-known/kith").json()
    token = make_token(
        eve, purpose="http", node_key=info["node_key"], now_ms=int(time.time() * 1000)
    )
    listing = httpx.get(pod.url + "/v1/invites", headers={"authorization": f"Kith {token}"}).json()
    statuses = sorted(i["status"] for i in listing["invites"])
    assert statuses == ["revoked", "revoked", "used", "used"]
    members = {i["member"] for i in listing["invites"] if i["status"] == "used"}
    assert members == {nia_key, bo_key}
    assert listing["requests"] == []
    # Chromium logs every 4xx answer as a console error: the two refusals above are expected,
    # anything else (a page error, a CSP refusal, another failed request) is not.
    refused = "status of 409 (Conflict) " + pod.url + "/v1/invites/redeem"
    for who in (late, dee):
        who.errors = [e for e in who.errors if not e.endswith(refused)]
    for who in (cora, nia, bo, late, dee):
        assert who.errors == [], (who.name, who.errors)
        who.context.close()
