"""Claim, accept, mark as done, log and confirm hours, balances — in two browsers (issue 13).

Ana and Bea are each a browser context with their own key, joined by the CLI. Ana asks for
help in the board; Bea sees it live and offers to help; Ana accepts; Bea marks it done and logs
the hours; Ana confirms; both balances move, in the page and in ``GET /v1/timebank``. A second
tab of Ana's whose live link went quiet (a sleeping phone) confirms again: the node stores it
and changes nothing, and the board says why in words.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from node.client import KithClient
from tests.board.helpers import WAIT_MS, Member, axe_violations, join
from tests.integration.conftest import Pod, Poster, member

TITLE = "Help carrying a sofa upstairs"
PHONE = {"viewport": {"width": 360, "height": 780}, "device_scale_factor": 2}


def set_name(who: Member, name: str) -> None:
    """A profile name, signed in the page (the profile form is another part of the board)."""
    outcome = who.page.evaluate(
        "async n => (await import('/board/core.js')).publish('profile.set', {name: n})", name
    )
    assert outcome["changed"], outcome


def wait_text(who: Member, selector: str, text: str) -> None:
    who.page.wait_for_function(
        "([s, t]) => [...document.querySelectorAll(s)].some(e => e.textContent.includes(t))",
        arg=[selector, text],
        timeout=WAIT_MS,
    )


def open_tab(page: Any, view: str) -> None:
    page.click(f"#tabs a[href='#{view}']")
    page.wait_for_selector(f"#view-{view}", state="visible", timeout=WAIT_MS)


def test_hours(board_pod: Pod, browser: Any, tmp_path: Path) -> None:
    pod = board_pod
    ana = Member(browser, pod, "ana", locale="en-GB", **PHONE)
    bea = Member(browser, pod, "bea", locale="en-GB", **PHONE)
    join(pod, ana)
    join(pod, bea)
    set_name(ana, "Ana")
    set_name(bea, "Bea")
    ana_key, bea_key = ana.keys()[0], bea.keys()[0]
    cy_key = member(pod, tmp_path, "cy")
    cy, cy_pub = Poster(pod.url, cy_key, pod.data.config().pod), cy_key.public_b64
    cy.post([cy.sign("profile.set", {"name": "Cy"})])
    reader = KithClient(pod.url, cy_key)

    # Ana asks for help; Bea's list shows it without reload, with "I can help".
    ana.page.fill("#title", TITLE)
    ana.page.select_option("#category", "repair")
    ana.page.select_option("#urgency", "normal")
    ana.page.click("#post-button")
    wait_text(ana, "#post-result", "Posted")
    bea_need = bea.page.locator("#needs-list li", has_text=TITLE)
    bea_need.wait_for(timeout=WAIT_MS)
    wait_text(bea, "#needs-list li", "Ana needs a repair")
    need_id = bea_need.get_attribute("data-id")
    assert need_id
    # Ana's own need has no "I can help".
    ana_need = ana.page.locator("#needs-list li", has_text=TITLE)
    ana_need.wait_for(timeout=WAIT_MS)
    assert ana_need.locator("summary").count() == 0

    # Bea offers to help, with a note.
    bea_need.locator("summary").click()
    bea_need.get_by_label("A short note (optional)").fill("I have a strong back")
    bea_need.get_by_role("button", name="Offer my help").click()
    wait_text(bea, "#needs-list li", "Offered. Ana can now accept your help.")
    wait_text(bea, "#needs-list li", "You offered to help. Waiting for Ana to accept.")
    assert bea_need.get_by_role("button", name="Withdraw my offer of help").is_visible()
    bea.shot("hours-1-bea-offered")

    # Ana sees "Bea can help", live, and accepts; the need is no longer open.
    wait_text(ana, "#needs-list li", "Bea can help")
    wait_text(ana, "#needs-list li .note", "“I have a strong back”")
    ana.shot("hours-2-ana-bea-can-help")
    ana_need.get_by_role("button", name="Accept").click()
    wait_text(ana, "#need-actions-result", "Accepted. Bea is helping you now")
    ana_need.wait_for(state="detached", timeout=WAIT_MS)
    need = reader.get(f"/v1/needs/{need_id}")
    assert need["status"] == "claimed" and need["helper"] == bea_key
    assert [c["status"] for c in need["claims"]] == ["accepted"]

    # Bea, in her Hours tab: helping Ana; she marks it done with the time it took.
    open_tab(bea.page, "hours")
    progress = bea.page.locator("#hours-progress li", has_text=TITLE)
    progress.wait_for(timeout=WAIT_MS)
    assert "You are helping Ana." in (progress.text_content() or "")
    assert "Offered." not in (progress.text_content() or "")  # that outcome was for an open need
    assert "You have not given or received any hours yet." in (
        bea.page.text_content("#hours-balance") or ""
    )
    progress.get_by_label("Hours").fill("1")
    progress.get_by_label("Minutes").fill("30")
    bea.shot("hours-3-bea-marks-done")
    progress.get_by_role("button", name="Mark as done and log the hours").click()
    wait_text(bea, "#view-hours", "Done, and 1 h 30 min logged. Ana confirms them under Hours.")
    wait_text(bea, "#hours-waiting li", "You gave Ana 1 h 30 min")
    wait_text(bea, "#hours-waiting li", "Waiting for Ana to confirm.")
    need = reader.get(f"/v1/needs/{need_id}")
    assert need["status"] == "fulfilled" and need["fulfilment"]["minutes"] == 90
    bank = reader.get("/v1/timebank")
    assert [(p["giver"], p["receiver"], p["minutes"], p["logged_by"]) for p in bank["pending"]] == [
        (bea_key, ana_key, 90, bea_key)
    ]
    assert bank["members"] == []  # nothing counts before Ana confirms

    # A second tab of Ana's whose live link goes quiet (a phone asleep): it keeps what it showed.
    quiet = {"on": False}

    def hold(ws: Any) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(lambda message: None if quiet["on"] else ws.send(message))

    stale = ana.context.new_page()
    stale_errors: list[str] = []
    stale.on("pageerror", lambda exc: stale_errors.append(str(exc)))
    stale.route_web_socket("**/v1/stream", hold)
    stale.goto(pod.url + "/#hours")
    stale.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    stale.locator("#hours-confirm button").wait_for(timeout=WAIT_MS)

    # Ana confirms in her Hours tab.
    quiet["on"] = True
    open_tab(ana.page, "hours")
    entry = ana.page.locator("#hours-confirm li", has_text="Bea gave you 1 h 30 min")
    entry.wait_for(timeout=WAIT_MS)
    assert f"For “{TITLE}”" in (entry.text_content() or "")
    ana.shot("hours-4-ana-to-confirm")
    entry.get_by_role("button", name="Confirm").click()
    wait_text(ana, "#hours-notice", "Confirmed. 1 h 30 min counted between you and Bea.")
    wait_text(ana, "#hours-balance", "You have received 1 h 30 min more than you gave.")
    wait_text(ana, "#hours-totals", "Given: 0 min · Received: 1 h 30 min")
    wait_text(ana, "#hours-history li", "Bea gave you 1 h 30 min")
    assert ana.page.locator("#hours-confirm li").count() == 0
    # Bea's balance moves live.
    wait_text(bea, "#hours-balance", "You have given 1 h 30 min more than you received.")
    wait_text(bea, "#hours-history li", "You gave Ana 1 h 30 min")
    assert bea.page.locator("#hours-waiting li").count() == 0
    bank = reader.get("/v1/timebank")
    assert {m["person"]: m["balance_minutes"] for m in bank["members"]} == {
        ana_key: -90,
        bea_key: 90,
    }
    assert bank["pending"] == [] and bank["total_minutes_balance"] == 0
    # The pod's limit, as a flag (never a block).
    assert bank["limit_minutes"] == 40 * 60
    wait_text(ana, "#hours-limit", "you can receive up to 40 h more than you give")

    # The quiet tab still shows the Confirm button: the node stores a second confirmation and
    # changes nothing, and the board says why.
    stale.locator("#hours-confirm button").click()
    stale.wait_for_function(
        "() => document.querySelector('#hours-notice').textContent === "
        "'Nothing changed: these hours were already confirmed.' && "
        "document.querySelector('#hours-notice').dataset.ok === 'false'",
        timeout=WAIT_MS,
    )
    stale.screenshot(path=str(Path(__file__).parent / "artifacts" / "hours-5-refused.png"))
    assert {m["person"]: m["balance_minutes"] for m in reader.get("/v1/timebank")["members"]} == {
        ana_key: -90,
        bea_key: 90,
    }
    stale.close()
    assert stale_errors == []

    # Cy gives Ana two full days of help (the most one entry holds) and logs it; Ana confirms
    # both in the board: she is past the pod's limit of 40 h received — flagged, never blocked.
    entry = {"giver": cy_pub, "receiver": ana_key, "minutes": 24 * 60}
    cy.post([cy.sign("hours.logged", entry), cy.sign("hours.logged", entry)])
    for left in (2, 1):
        ana.page.wait_for_function(
            "n => document.querySelectorAll('#hours-confirm li').length === n", arg=left
        )
        from_cy = ana.page.locator("#hours-confirm li", has_text="Cy gave you 24 h").first
        from_cy.get_by_role("button", name="Confirm").click()
        ana.page.wait_for_function(
            "n => document.querySelectorAll('#hours-confirm li').length === n", arg=left - 1
        )
    wait_text(ana, "#hours-notice", "Confirmed. 24 h counted between you and Cy.")
    wait_text(ana, "#hours-balance", "You have received 49 h 30 min more than you gave.")
    wait_text(ana, "#hours-limit", "You have received more than the pod's 40 h.")
    assert ana.page.get_attribute("#hours-limit", "data-over") == "true"
    bank = reader.get("/v1/timebank")
    over = {m["person"]: (m["balance_minutes"], m["over_limit"]) for m in bank["members"]}
    assert over == {ana_key: (-2970, True), bea_key: (90, False), cy_pub: (2880, False)}

    # Everyone can use it: axe on both Hours tabs and on the needs list with its actions.
    ana.shot("hours-6-ana-balance")
    bea.shot("hours-7-bea-balance")
    for who in (ana, bea):
        assert axe_violations(who) == [], who.name
    open_tab(bea.page, "needs")
    assert axe_violations(bea) == []
    # Spanish, at 360 px.
    bea.page.select_option("#lang", "es")
    open_tab(bea.page, "hours")
    wait_text(bea, "#hours-balance", "Has dado 1 h 30 min más de lo que has recibido.")
    wait_text(bea, "#hours-progress li", "Hecho, y 1 h 30 min anotadas. Ana las confirma en Horas.")
    wait_text(bea, "#hours-history li", "Diste a Ana 1 h 30 min")
    bea.shot("hours-8-bea-spanish")
    assert axe_violations(bea) == []

    # And on a desktop.
    ana.page.set_viewport_size({"width": 1100, "height": 800})
    ana.shot("hours-9-ana-desktop")

    for who in (ana, bea):
        assert who.errors == [], (who.name, who.errors)


def test_offer_withdrawn_then_hours_logged_after_done(
    board_pod: Pod, browser: Any, tmp_path: Path
) -> None:
    """Dee offers, takes it back, offers again; Eve (posting from Python) accepts and marks her
    need done without hours; Dee logs them from the Hours tab; Eve confirms; Dee's balance moves."""
    pod = board_pod
    dee = Member(browser, pod, "dee", locale="en-GB", **PHONE)
    join(pod, dee)
    set_name(dee, "Dee")
    dee_key = dee.keys()[0]
    eve_key = member(pod, tmp_path, "eve")
    eve = Poster(pod.url, eve_key, pod.data.config().pod)
    eve.post([eve.sign("profile.set", {"name": "Eve"})])
    (need_id,) = eve.need("Fix a bike tyre", category="repair")
    reader = KithClient(pod.url, eve_key)

    item = dee.page.locator("#needs-list li", has_text="Fix a bike tyre")
    item.wait_for(timeout=WAIT_MS)
    item.locator("summary").click()
    item.get_by_role("button", name="Offer my help").click()
    wait_text(dee, "#needs-list li", "Offered. Eve can now accept your help.")
    item.get_by_role("button", name="Withdraw my offer of help").click()
    wait_text(dee, "#needs-list li", "Withdrawn. Eve can see you can no longer help.")
    item.locator("summary", has_text="I can help").wait_for(timeout=WAIT_MS)
    assert [c["status"] for c in reader.get(f"/v1/needs/{need_id}")["claims"]] == ["withdrawn"]
    item.locator("summary").click()
    item.get_by_role("button", name="Offer my help").click()
    wait_text(dee, "#needs-list li", "You offered to help. Waiting for Eve to accept.")

    # Eve accepts the live offer and marks the need done, without logging hours.
    claims = reader.get(f"/v1/needs/{need_id}")["claims"]
    (live,) = [c["id"] for c in claims if c["status"] == "pending"]
    eve.post(
        [
            eve.sign("claim.accepted", {"claim": live, "need": need_id}),
            eve.sign("fulfilment.recorded", {"need": need_id, "claim": live}),
        ]
    )
    item.wait_for(state="detached", timeout=WAIT_MS)

    # Dee's Hours tab: done, hours not logged yet. A time of nothing is refused before signing.
    open_tab(dee.page, "hours")
    done = dee.page.locator("#hours-progress li", has_text="Fix a bike tyre")
    done.wait_for(timeout=WAIT_MS)
    assert "You helped Eve" in (done.text_content() or "")
    assert "Done. The hours with Eve are not logged yet." in (done.text_content() or "")
    done.get_by_label("Hours").fill("0")
    done.get_by_label("Minutes").fill("0")
    done.get_by_role("button", name="Log the hours").click()
    wait_text(dee, "#hours-progress li", "Please give a time between 1 minute and 24 hours.")
    done.get_by_label("Minutes").fill("45")
    done.get_by_role("button", name="Log the hours").click()
    wait_text(dee, "#hours-progress li", "45 min logged. Eve confirms them under Hours.")
    wait_text(dee, "#hours-waiting li", "You gave Eve 45 min")
    (pending,) = [p for p in reader.get("/v1/timebank")["pending"] if p["giver"] == dee_key]
    assert (pending["receiver"], pending["minutes"]) == (eve_key.public_b64, 45)
    dee.shot("hours-10-dee-logged")

    # Eve confirms; Dee's balance moves, live.
    eve.post([eve.sign("hours.confirmed", {"entry": pending["id"]})])
    wait_text(dee, "#hours-balance", "You have given 45 min more than you received.")
    wait_text(dee, "#hours-history li", "You gave Eve 45 min")
    assert axe_violations(dee) == []
    assert dee.errors == [], dee.errors


def test_accepting_passes_private_details_to_the_helper(
    board_pod: Pod, browser: Any, tmp_path: Path
) -> None:
    """Fay's need has sealed private details; accepting Gus re-seals them to him and the
    coordinators (``claim.accepted.personal``), and only his browser opens them."""
    pod = board_pod
    fay = Member(browser, pod, "fay", locale="en-GB", **PHONE)
    gus = Member(browser, pod, "gus", locale="en-GB", **PHONE)
    for who, name in ((fay, "Fay"), (gus, "Gus")):
        join(pod, who)
        set_name(who, name)
    reader = KithClient(pod.url, member(pod, tmp_path, "hal"))
    details = '{"address": "3 Elm Street, flat 2", "phone": "555 0100"}'
    # The needs form's private details are another part of the board: sealed here as it does.
    posted = fay.page.evaluate(
        """async ([title, details]) => {
          const core = await import('/board/core.js');
          const sealed = await import('/board/seal.js');
          const keys = await core.getJSON(`/v1/pods/${core.state.info.pod}/keys`);
          const to = [...new Set([core.state.keys.boxKey, ...keys.coordinators])];
          const personal = sealed.seal(details, to, sealed.fieldAad('need.posted', 'personal'));
          const body = {title, category: 'repair', urgency: 'high', personal};
          return core.publish('need.posted', body);
        }""",
        ["Change a light bulb", details],
    )
    assert posted["changed"], posted
    item = gus.page.locator("#needs-list li", has_text="Change a light bulb")
    item.wait_for(timeout=WAIT_MS)
    item.locator("summary").click()
    item.get_by_role("button", name="Offer my help").click()
    wait_text(gus, "#needs-list li", "Offered. Fay can now accept your help.")
    mine = fay.page.locator("#needs-list li", has_text="Change a light bulb")
    wait_text(fay, "#needs-list li", "Gus can help")
    mine.get_by_role("button", name="Accept").click()
    wait_text(
        fay, "#need-actions-result", "Gus is helping you now and can see your private details"
    )

    accepted = [
        e
        for e in reader.get("/v1/events", kinds="claim.accepted")["events"]
        if '"need":"' + posted["id"] + '"' in e["envelope"]["body"]
    ]
    assert len(accepted) == 1
    sealed = json.loads(accepted[0]["envelope"]["body"])["personal"]
    coordinators = reader.get(f"/v1/pods/{pod.data.config().pod}/keys")["coordinators"]
    assert {r["key"] for r in sealed["to"]} == {gus.keys()[1], *coordinators}
    assert "Elm Street" not in accepted[0]["envelope"]["body"]
    opened = gus.page.evaluate(
        """async (sealedField) => {
          const core = await import('/board/core.js');
          const s = await import('/board/seal.js');
          return s.open(sealedField, core.state.keys.box, core.state.keys.boxKey,
                        s.fieldAad('claim.accepted', 'personal'));
        }""",
        sealed,
    )
    assert opened == details
    for who in (fay, gus):
        assert who.errors == [], (who.name, who.errors)
