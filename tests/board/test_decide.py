"""Deciding, gathering and the calendar on the board, in a real browser against a real node.

Ana (a phone, English) asks the pod a question; Bea (a desktop, Spanish) sees it live and
votes, then changes her vote — it counts once, and Ana's tally follows. A question that
closes while Bea looks at it refuses her late vote with the node's reason, and shows what the
pod chose. Ana plans a gathering; Bea says she comes and Ana sees "2 coming" with both names;
the agenda shows it on its day with a need's and an offer's time windows; a gathering is
called off; a private place is sealed in the browser to the members and opened by them, not by
one who joins later; a private calendar feed is made, read by "a calendar app" and stopped.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.board.conftest import ARTIFACTS
from tests.board.helpers import WAIT_MS, XSS, Member, axe_violations, join
from tests.integration.conftest import Pod, Poster, member

PROFILE = "name => import('/board/core.js').then(core => core.publish('profile.set', {name}))"
READ = "path => import('/board/core.js').then(core => core.getJSON(path))"


def local_ms(day: datetime) -> int:
    return int(day.timestamp() * 1000)


def text(who: Member, selector: str) -> str:
    return " ".join((who.page.text_content(selector) or "").split())


def wait_text(who: Member, selector: str, words: str, timeout: int = WAIT_MS) -> None:
    """Wait until the element's text (spaces folded) contains ``words``."""
    who.page.wait_for_function(
        "([s, w]) => { const e = document.querySelector(s);"
        " return !!e && e.textContent.replace(/\\s+/g, ' ').includes(w); }",
        arg=[selector, words],
        timeout=timeout,
    )


def test_decide_gather_calendar(board_pod: Pod, browser: Any, tmp_path: Path) -> None:
    pod = board_pod
    phone = {"viewport": {"width": 360, "height": 780}, "device_scale_factor": 2}
    ana = Member(
        browser,
        pod,
        "ana",
        locale="en-GB",
        permissions=["clipboard-read", "clipboard-write"],
        **phone,
    )
    bea = Member(browser, pod, "bea", locale="es-ES", viewport={"width": 1100, "height": 800})
    join(pod, ana)
    join(pod, bea)
    for who, name in ((ana, "Ana"), (bea, "Bea")):
        assert who.page.evaluate(PROFILE, name)["changed"] is True
    cy = Poster(pod.url, member(pod, tmp_path, "cy"), pod.data.config().pod)
    cy.post([cy.sign("profile.set", {"name": "Cy"})])

    # --- Ana asks the pod a question, with three choices (one added, one added and removed).
    ana.page.goto(pod.url + "/#decide")
    ana.page.wait_for_selector("#propose-form", state="visible", timeout=WAIT_MS)
    assert ana.page.locator("#propose-option-list li").count() == 2
    ana.page.fill("#propose-title", "How do we share this week's 20 food boxes?")
    ana.page.fill("#propose-details", "The food bank brings them on Thursday.")
    options = ["By need first", "Equal shares", "Half and half"]
    ana.page.click("#propose-add")
    ana.page.click("#propose-add")
    assert ana.page.locator("#propose-option-list li").count() == 4
    ana.page.click("#propose-option-list li:nth-child(4) button")  # remove the fourth again
    assert ana.page.locator("#propose-option-list li").count() == 3
    for i, option in enumerate(options):
        ana.page.fill(f"#propose-option-list li:nth-child({i + 1}) input", option)
    ana.page.click("#propose-button")
    wait_text(ana, "#propose-result", "Asked. Everyone in the pod can vote until")
    question = ana.page.locator("#proposals-list li", has_text="20 food boxes")
    question.wait_for(timeout=WAIT_MS)
    assert "You asked · closes" in (question.text_content() or "")
    assert "You have not voted yet." in (question.text_content() or "")
    ana.shot("decide-1-phone-asked")

    # Bea sees it live (Spanish), and votes for "Equal shares".
    bea.page.goto(pod.url + "/#decide")
    seen = bea.page.locator("#proposals-list li", has_text="20 food boxes")
    seen.wait_for(timeout=WAIT_MS)
    assert "Lo pregunta Ana · cierra" in " ".join((seen.text_content() or "").split())
    started = time.monotonic()
    seen.get_by_role("button", name="Votar por “Equal shares”").click()
    # Ana's tally moves without a reload.
    ana_rows = question.locator("ol.tallied li")
    wait_text(ana, "#proposals-list li", "1 person voted.")
    vote_to_tally_ms = round((time.monotonic() - started) * 1000)
    wait_text(bea, "#proposals-list li .result", "Tu voto por “Equal shares” cuenta")
    assert "1 vote" in (ana_rows.nth(1).text_content() or "")
    assert "0 votes" in (ana_rows.nth(0).text_content() or "")

    # Bea changes her mind: the last vote counts, once.
    seen.get_by_role("button", name="Votar por “By need first”").click()
    wait_text(
        bea,
        "#proposals-list li .result",
        "Voto cambiado a “By need first”. Solo cuenta tu último voto.",
    )
    ana.page.wait_for_function(
        "() => document.querySelector('#proposals-list li ol li[data-option=\"0\"] .tally')"
        "?.textContent === '1 vote'",
        timeout=WAIT_MS,
    )
    assert "1 person voted." in text(ana, "#proposals-list li")
    assert "0 votes" in (ana_rows.nth(1).text_content() or "")
    assert bea.page.locator("#proposals-list li[data-id] li[data-mine=true]").count() == 1
    # The node holds one vote for Bea, on the first choice, and Ana's board agrees.
    (held,) = [p for p in bea.page.evaluate(READ, "/v1/proposals") if p["title"].startswith("How")]
    assert held["tally"] == [1, 0, 0] and held["voters"] == 1 and held["your_choice"] == 0
    bea.shot("decide-2-desktop-es-voted")

    # Cy asks a question that closes in a few seconds, and votes on it at once.
    closes_at = int(time.time() * 1000) + 4000
    (quick,) = cy.post(
        [
            cy.sign(
                "proposal.opened",
                {"title": "Meet on Sundays?", "options": ["Yes", "No"], "closes_at": closes_at},
            )
        ]
    )
    cy.post([cy.sign("vote.cast", {"proposal": quick, "option": 0})])
    # And one nobody votes on, closing just after: it closes by the clock alone.
    (silent,) = cy.post(
        [
            cy.sign(
                "proposal.opened",
                {
                    "title": "Paint the shed?",
                    "options": ["Green", "Blue"],
                    "closes_at": closes_at + 2000,
                },
            )
        ]
    )
    ana.page.wait_for_selector(f"#proposals-list li[data-id='{silent}']", timeout=WAIT_MS)
    late = bea.page.locator(f"#proposals-list li[data-id='{quick}']")
    late.wait_for(timeout=WAIT_MS)
    wait_text(bea, f"#proposals-list li[data-id='{quick}']", "Ha votado 1 persona.")
    while time.time() * 1000 <= closes_at + 300:  # until it has closed (waiting, not asserting)
        time.sleep(0.1)
    late.get_by_role("button", name="Votar por “No”").click()
    # The node kept the vote and says why it does not count; the question shows what was chosen.
    done = bea.page.locator(f"#decided-list li[data-id='{quick}']")
    done.wait_for(timeout=WAIT_MS)
    wait_text(
        bea,
        f"#decided-list li[data-id='{quick}']",
        "Tu voto se guardó, pero no cuenta: la pregunta ya estaba cerrada.",
    )
    wait_text(
        bea,
        f"#decided-list li[data-id='{quick}']",
        "Cerrada. El grupo eligió “Yes” (1 voto, de 1 que votaron).",
    )
    wait_text(
        ana,
        f"#decided-list li[data-id='{quick}']",
        "Closed. The pod chose “Yes” (1 vote, of 1 who voted).",
    )
    assert done.get_by_role("button").count() == 0

    # --- Ana plans a gathering tomorrow at noon, and says she is coming.
    tomorrow = (datetime.now() + timedelta(days=1)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    ana.page.goto(pod.url + "/#calendar")
    ana.page.wait_for_selector("#gather-form", state="visible", timeout=WAIT_MS)
    ana.page.fill("#gather-title", "Sunday soup and sharing")
    ana.page.select_option("#gather-kind", "food_distribution")
    ana.page.fill("#gather-start", tomorrow.strftime("%Y-%m-%dT%H:%M"))
    ana.page.dispatch_event("#gather-start", "change")
    assert ana.page.input_value("#gather-end") == (tomorrow + timedelta(hours=2)).strftime(
        "%Y-%m-%dT%H:%M"
    )
    ana.page.fill("#gather-place", "Community hall")
    ana.page.fill("#gather-capacity", "20")
    ana.page.click("#gather-button")
    wait_text(ana, "#gather-result", "Planned. “Sunday soup and sharing” is on the pod’s calendar.")
    soup = ana.page.locator("#gatherings-list li", has_text="Sunday soup and sharing")
    soup.wait_for(timeout=WAIT_MS)
    for words in ("Food distribution", "Where: Community hall", "room for 20", "you planned it"):
        assert words in (soup.text_content() or ""), words
    soup.get_by_role("button", name="I’m coming").click()
    wait_text(ana, "#gatherings-list li", "You said you are coming.")
    wait_text(ana, "#gatherings-list li .coming", "1 coming: you")

    # Bea sees it live, and is coming too; Ana sees "2 coming" with both names.
    bea.page.goto(pod.url + "/#calendar")
    theirs = bea.page.locator("#gatherings-list li", has_text="Sunday soup and sharing")
    theirs.wait_for(timeout=WAIT_MS)
    assert "Reparto de comida" in (theirs.text_content() or "")
    assert "lo organiza Ana" in (theirs.text_content() or "")
    assert theirs.get_by_text("Suspenderlo").count() == 0  # not hers to call off
    theirs.get_by_role("button", name="Voy").click()
    wait_text(bea, "#gatherings-list li", "Dijiste que vas.")
    wait_text(bea, "#gatherings-list li .coming", "Vienen 2: tú y Ana")
    bea.page.wait_for_selector(
        "#gatherings-list li button[data-answer=yes][aria-pressed=true]", timeout=WAIT_MS
    )
    wait_text(ana, "#gatherings-list li .coming", "2 coming: you and Bea")
    (held_g,) = [
        g
        for g in ana.page.evaluate(READ, "/v1/gatherings?upcoming=true")
        if g["title"] == "Sunday soup and sharing"
    ]
    assert held_g["rsvps"] == {"yes": 2, "no": 0, "maybe": 0}

    # --- The agenda: the gathering on its day, with a need's and an offer's time windows.
    day_after = tomorrow + timedelta(days=1)
    cy.post(
        [
            cy.sign(
                "need.posted",
                {
                    "title": "Ride to the clinic",
                    "category": "ride",
                    "urgency": "normal",
                    "window": {
                        "start": local_ms(day_after.replace(hour=9)),
                        "end": local_ms(day_after.replace(hour=10)),
                    },
                },
            ),
            cy.sign(
                "offer.posted",
                {
                    "title": "Van for moving",
                    "category": "ride",
                    "windows": [
                        {
                            "start": local_ms(day_after.replace(hour=15)),
                            "end": local_ms(day_after.replace(hour=18)),
                        }
                    ],
                },
            ),
        ]
    )
    wait_text(ana, "#agenda-days", "Van for moving")
    days = ana.page.locator("#agenda-days section.day")
    tomorrow_day = days.filter(has=ana.page.get_by_role("heading", name="Tomorrow,"))
    assert "12:00–14:00 Gathering Sunday soup and sharing" in " ".join(
        (tomorrow_day.text_content() or "").split()
    )
    later = days.nth(1)
    later_text = " ".join((later.text_content() or "").split())
    assert "09:00–10:00 Need Ride to the clinic" in later_text and "Cy needs a ride" in later_text
    assert "15:00–18:00 Offer Van for moving" in later_text and "Cy is available" in later_text
    assert later_text.index("Ride to the clinic") < later_text.index("Van for moving")
    wait_text(bea, "#agenda-days", "Necesidad Ride to the clinic")

    # Ana plans another one and calls it off; Bea sees it called off, with the reason.
    ana.page.fill("#gather-title", "Knitting circle")
    ana.page.select_option("#gather-kind", "skill_share")
    ana.page.fill("#gather-start", day_after.replace(hour=17).strftime("%Y-%m-%dT%H:%M"))
    ana.page.fill("#gather-end", day_after.replace(hour=16).strftime("%Y-%m-%dT%H:%M"))
    ana.page.click("#gather-button")
    assert text(ana, "#gather-result") == "It has to end after it starts."
    assert ana.page.get_attribute("#gather-end", "aria-invalid") == "true"
    ana.page.fill("#gather-end", day_after.replace(hour=19).strftime("%Y-%m-%dT%H:%M"))
    ana.page.click("#gather-button")
    knit = ana.page.locator("#gatherings-list li", has_text="Knitting circle")
    knit.wait_for(timeout=WAIT_MS)
    assert "Where: place not given yet" in (knit.text_content() or "")
    knit.locator("summary", has_text="Call it off").click()
    knit.get_by_label("Why (optional, everyone sees it)").fill("The teacher is ill")
    knit.get_by_role("button", name="Yes, call it off").click()
    wait_text(
        ana,
        "#gatherings-list li[data-status=cancelled]",
        "Called off. Everyone sees it is not happening.",
    )
    wait_text(bea, "#gatherings-list li[data-status=cancelled]", "Suspendido: The teacher is ill")
    wait_text(bea, "#agenda-days li[data-cancelled=true]", "Knitting circle (suspendido)")

    # A place only members may read: sealed in Ana's browser to every member's box key.
    ana.page.fill("#gather-title", "Grief circle")
    ana.page.select_option("#gather-kind", "healing_circle")
    ana.page.fill("#gather-start", day_after.replace(hour=20).strftime("%Y-%m-%dT%H:%M"))
    ana.page.fill("#gather-end", day_after.replace(hour=21).strftime("%Y-%m-%dT%H:%M"))
    ana.page.fill("#gather-place", "12 Oak Lane, flat 3")
    ana.page.check("#gather-private")
    ana.page.click("#gather-button")
    wait_text(ana, "#gather-result", "Planned. “Grief circle”")
    grief = bea.page.locator("#gatherings-list li", has_text="Grief circle")
    grief.wait_for(timeout=WAIT_MS)
    wait_text(bea, "#gatherings-list", "Dónde: 12 Oak Lane, flat 3 (solo lo lee el grupo)")
    assert "Círculo de sanación" in (grief.text_content() or "")
    (sealed,) = [
        g for g in ana.page.evaluate(READ, "/v1/gatherings") if g["title"] == "Grief circle"
    ]
    assert sealed["place"] is None and "Oak Lane" not in str(sealed["place_sealed"])
    keys = httpx.get(f"{pod.url}/v1/pods/{pod.data.config().pod}/keys").json()
    assert sorted(r["key"] for r in sealed["place_sealed"]["to"]) == sorted(
        set(keys["members"].values())
    )
    ana.shot("calendar-1-phone")
    bea.shot("calendar-2-desktop-es")

    # --- A private calendar feed: made, read as a calendar app would, and stopped.
    ana.page.click("#feed-button")
    wait_text(ana, "#feed-result", "Here is your link.")
    url = ana.page.input_value("#feed-url")
    assert url.startswith(pod.url + "/v1/calendar/") and url.endswith(".ics")
    assert ana.page.get_attribute("#feed-open", "href") == "webcal:" + url.removeprefix("http:")
    ana.page.click("#feed-copy")
    wait_text(ana, "#feed-copied", "Copied.")
    assert ana.page.evaluate("() => navigator.clipboard.readText()") == url
    feed = httpx.get(url)
    assert feed.status_code == 200 and "SUMMARY:Sunday soup and sharing" in feed.text
    assert "SUMMARY:Need: Ride to the clinic" in feed.text
    assert "SUMMARY:Grief circle" in feed.text and "Oak Lane" not in feed.text
    wait_text(ana, "#feed-count", "You have 1 calendar link in use.")
    ana.shot("calendar-3-phone-feed")
    ana.page.locator("#feed-count button").click()
    wait_text(ana, "#feed-result", "That link no longer works.")
    assert httpx.get(url).status_code == 404

    # Everyone can use it: no serious or critical problem on either tab, for either of them.
    for who in (ana, bea):
        for tab in ("decide", "calendar"):
            who.page.goto(pod.url + f"/#{tab}")
            who.page.wait_for_selector(f"#view-{tab}:not([hidden])", timeout=WAIT_MS)
            assert axe_violations(who) == [], (who.name, tab)
    ana.page.goto(pod.url + "/#decide")
    ana.page.wait_for_selector("#decided-list li", timeout=WAIT_MS)
    ana.shot("decide-3-phone-decided")
    # The phone in Spanish: both tabs drawn again in the other language, without a reload.
    ana.page.select_option("#lang", "es")
    wait_text(ana, "#decided-heading", "Decidido")
    wait_text(ana, f"#decided-list li[data-id='{quick}']", "Cerrada. El grupo eligió “Yes”")
    ana.shot("decide-4-phone-es")
    ana.page.goto(pod.url + "/#calendar")
    wait_text(ana, "#gatherings-list", "Vienen 2: tú y Bea")
    wait_text(ana, "#gatherings-list", "Dijiste que vas.")  # her answer's line, redrawn
    ana.shot("calendar-4-phone-es")
    ana.page.select_option("#lang", "en")
    # The silent question moved to "Decided" on Ana's board by itself (no vote or question has
    # come since it closed), with its outcome; the board reads again 10 s after a closing.
    ana.page.goto(pod.url + "/#decide")
    wait_text(ana, f"#decided-list li[data-id='{silent}']", "Closed with no votes.", 3 * WAIT_MS)

    # Markup in a question, its choices and a gathering from another member is shown as text.
    cy.post(
        [
            cy.sign(
                "proposal.opened",
                {"title": XSS, "options": [XSS, "No"], "closes_at": closes_at + 86_400_000},
            ),
            cy.sign(
                "gathering.scheduled",
                {
                    "title": XSS,
                    "kind": "meeting",
                    "place": XSS,
                    "details": XSS,
                    "window": {
                        "start": local_ms(day_after.replace(hour=7)),
                        "end": local_ms(day_after.replace(hour=8)),
                    },
                },
            ),
        ]
    )
    for tab, where in (("decide", "#proposals-list"), ("calendar", "#gatherings-list")):
        bea.page.goto(pod.url + f"/#{tab}")
        bea.page.wait_for_function(
            "([w, t]) => [...document.querySelectorAll(w + ' h3')].some(h => h.textContent === t)",
            arg=[where, XSS],
            timeout=WAIT_MS,
        )
        assert bea.page.locator(f"{where} img, {where} script").count() == 0
    assert bea.page.locator("#agenda-days img, #agenda-days script").count() == 0
    assert bea.page.evaluate("() => window.__pwned") is None

    # Dee joins after the place was sealed: she reads the gathering, not the place.
    dee = Member(browser, pod, "dee", locale="en-GB", **phone)
    join(pod, dee)
    dee.page.goto(pod.url + "/#calendar")
    dee.page.locator("#gatherings-list li", has_text="Grief circle").wait_for(timeout=WAIT_MS)
    late_text = text(dee, "#gatherings-list")
    assert "Where: place shared with members" in late_text and "Oak Lane" not in late_text
    for who in (ana, bea, dee):
        assert who.errors == [], (who.name, who.errors)
    (ARTIFACTS / "figures-decide.json").write_text(
        json.dumps({"vote_to_tally_ms": vote_to_tally_ms})
    )
    print("decide figures:", {"vote_to_tally_ms": vote_to_tally_ms})
