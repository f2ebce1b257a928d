"""The pod board in a real browser against a real node (issue 13, first slice).

Two members, each a browser context with its own key made in the page, join by the CLI from the
keys the board shows; one posts a need, the other sees it appear without reload. A title built
to run script is shown as text; axe-core finds no serious or critical problem; the node restarts
and the board says so, comes back and resumes from its cursor.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.board.conftest import ARTIFACTS
from tests.board.helpers import WAIT_MS, XSS, Member, axe_violations, join, need_titles
from tests.integration.conftest import Pod, Poster, member


def test_board(board_pod: Pod, browser: Any, tmp_path: Path) -> None:
    pod = board_pod
    phone = {"viewport": {"width": 360, "height": 780}, "device_scale_factor": 2}
    ana = Member(browser, pod, "ana", locale="en-GB", **phone)
    figures = ana.first_load()
    bea = Member(browser, pod, "bea", locale="es-ES", viewport={"width": 1100, "height": 800})

    # Before joining: the pod's name, "not in this pod yet" and the two keys, in each language.
    assert ana.page.text_content("#pod-name") == "Elm Street"
    assert ana.page.is_visible("#join") and not ana.page.is_visible("#post-form")
    assert "kith member add --key " in (ana.page.text_content("#my-command") or "")
    assert bea.page.text_content("#needs-heading") == "Necesidades abiertas"
    ana.shot("1-not-a-member-yet")
    join(pod, ana)
    join(pod, bea)

    # The same key after a reload: it is kept in IndexedDB.
    key_before = ana.keys()
    ana.page.reload()
    ana.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    assert ana.keys() == key_before

    # A third member with a profile name posts from the CLI side; a title made to run script.
    cy_key = member(pod, tmp_path, "cy")
    cy = Poster(pod.url, cy_key, pod.data.config().pod)
    cy.post([cy.sign("profile.set", {"name": "Cy"})])
    cy.need(XSS, category="ride", urgency="urgent")
    bea.page.wait_for_function(
        "t => [...document.querySelectorAll('#needs-list h3')].some(h => h.textContent === t)",
        arg=XSS,
        timeout=WAIT_MS,
    )
    assert bea.page.evaluate("() => window.__pwned") is None
    assert bea.page.locator("#needs-list img, #needs-list script").count() == 0
    assert bea.page.get_by_text("Cy necesita que la lleven en coche").is_visible()

    # Ana posts a need in the board; Bea's board shows it, without reload.
    ana.page.wait_for_selector("#needs-list li", timeout=WAIT_MS)  # Cy's, live, before posting
    ana.page.fill("#title", "Groceries from the market")
    ana.page.select_option("#category", "groceries")
    ana.page.select_option("#urgency", "high")
    started = time.monotonic()
    ana.page.click("#post-button")
    bea.page.get_by_text("Groceries from the market").wait_for(timeout=WAIT_MS)
    seen_ms = (time.monotonic() - started) * 1000
    ana.page.wait_for_function(
        "() => document.querySelector('#post-result').dataset.ok === 'true' && "
        "document.querySelector('#post-result').textContent.startsWith('Posted')",
        timeout=WAIT_MS,
    )
    # Ana's own list follows from her stream too, a moment after the node's answer.
    ana.page.get_by_text("You asked for groceries").wait_for(timeout=WAIT_MS)
    # Ana has no profile name: Bea sees a neutral word, never a key or part of one.
    bea_text = bea.page.text_content("#needs-list") or ""
    assert "Alguien necesita compras" in bea_text
    assert ana.keys()[0][:6] not in bea_text
    # The node holds exactly what the browser signed, and checked it (signature, chain, schema).
    events = httpx.get(pod.url + "/v1/events", params={"kinds": "need.posted"}).json()
    assert events["events"] == []  # pod scope: nothing for anonymous readers
    ana.shot("2-phone-after-posting")
    # The README's picture (docs/board.png is a copy of one run's): the top of the phone's page.
    ana.page.screenshot(
        path=str(ARTIFACTS / "board-phone.png"),
        full_page=True,
        clip={"x": 0, "y": 0, "width": 360, "height": 1180},
    )
    bea.shot("3-desktop-spanish")

    # An empty title is refused in words, before anything is signed.
    ana.page.fill("#title", " ")
    ana.page.click("#post-button")
    assert ana.page.get_attribute("#title", "aria-invalid") == "true"
    assert ana.page.text_content("#post-result") == "Please say in a few words what you need."

    # Switching language on the page.
    ana.page.select_option("#lang", "es")
    ana.page.wait_for_function(
        "() => document.querySelector('#needs-heading').textContent === 'Necesidades abiertas'"
    )
    ana.page.select_option("#lang", "en")
    ana.page.wait_for_function(
        "() => document.querySelector('#needs-heading').textContent === 'Open needs'"
    )

    for who in (ana, bea):
        assert axe_violations(who) == [], who.name

    # The node restarts: the board says the connection is lost, then back, and resumes from
    # its cursor (a need posted while it was away shows up, once).
    pod.stop()
    bea.page.wait_for_selector("#conn[data-state=lost]", timeout=WAIT_MS)
    pod.start()
    cy.need("Walk the dog this evening", category="pets", urgency="normal")
    bea.page.get_by_text("Walk the dog this evening").wait_for(timeout=WAIT_MS)
    bea.page.wait_for_selector("#conn[data-state=live]", timeout=WAIT_MS)
    assert "Conexión recuperada" in (bea.page.text_content("#conn") or "")
    assert need_titles(bea).count("Walk the dog this evening") == 1

    for who in (ana, bea):
        assert who.errors == [], (who.name, who.errors)
    figures["post_to_other_screen_ms"] = round(seen_ms)
    (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=1))
    print("board figures:", figures)


@pytest.mark.parametrize("path", ["/schema"])
def test_schema_page_loads_nothing_from_elsewhere(board_pod: Pod, browser: Any, path: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(board_pod.url + path)
    assert page.locator("table").count() == 1
    assert all(url.startswith(board_pod.url) for url in requested), requested
    context.close()
