"""Your profile, the people of the pod, and your other devices, in a real browser (issue 13
items 2 and 3; issue 9).

Ana sets her name, pronouns and languages; Bea's board shows Ana's name on Ana's need and in
"People in the pod". Pronouns too long are refused in words and nothing typed is lost. A second
browser context is Ana's new phone: it shows a device code, Ana links it from her first device,
and the phone becomes a member and posts a need as Ana. Asked to remove itself, it wants a
clear yes first. Ana removes it from her first device, and the node refuses its next post, in
words.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from node.cli.sealed import open_field
from node.datadir import read_key_file
from protocol.tokens import make_token
from tests.board.helpers import WAIT_MS, Member, axe_violations, join
from tests.integration.conftest import Pod, member

PHONE = {"viewport": {"width": 360, "height": 780}, "device_scale_factor": 2}


def read(pod: Pod, key: Any, path: str, **params: Any) -> Any:
    """GET a read model as member ``key`` (a token of theirs, as the board sends)."""
    token = make_token(
        key, purpose="http", node_key=pod.node_key().public, now_ms=int(time.time() * 1000)
    )
    answer = httpx.get(pod.url + path, params=params, headers={"authorization": f"Kith {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def profiles(pod: Pod, key: Any) -> list[dict[str, Any]]:
    events = read(pod, key, "/v1/events", kinds="profile.set")["events"]
    return [json.loads(e["envelope"]["body"]) for e in events]


def status(who: Member, line: str, starts: str) -> None:
    """Wait until the `role=status` line `line` says something starting with `starts`."""
    who.page.wait_for_function(
        "([id, s]) => (document.getElementById(id).textContent || '').startsWith(s)",
        arg=[line, starts],
        timeout=WAIT_MS,
    )


COPIED = "Copied. Now paste it on your other device."
BY_HAND = "The code is selected: copy it by hand."


def test_profile_and_devices(board_pod: Pod, browser: Any, tmp_path: Path) -> None:
    pod = board_pod
    ana = Member(browser, pod, "ana", locale="en-GB", **PHONE)
    bea = Member(browser, pod, "bea", locale="es-ES", viewport={"width": 1100, "height": 900})
    join(pod, ana)
    join(pod, bea)
    cy = member(pod, tmp_path, "cy")  # reads the node's models from Python
    member(pod, tmp_path, "cora", role="coordinator")
    cora = read_key_file(tmp_path / "cora.key")

    # --- a profile, and another member seeing the name -----------------------------------
    ana.page.goto(pod.url + "/#me")
    ana.page.wait_for_selector("#me-profile-form", state="visible", timeout=WAIT_MS)
    ana.page.fill("#me-name", "Ana")
    ana.page.fill("#me-pronouns", "she/her")
    ana.page.fill("#me-languages", "Spanish, English, pt-BR")
    ana.page.click("#me-profile-save")
    status(ana, "me-profile-result", "Saved. The pod now sees you as Ana (she/her).")
    assert ana.page.get_attribute("#me-profile-result", "data-ok") == "true"
    wanted = {"name": "Ana", "pronouns": "she/her", "languages": ["es", "en", "pt-BR"]}
    assert profiles(pod, cy) == [wanted]

    ana.page.goto(pod.url + "/#needs")
    ana.page.fill("#title", "Soup for Tuesday")
    ana.page.click("#post-button")
    status(ana, "post-result", "Posted")
    bea.page.get_by_text("Ana necesita comida").wait_for(timeout=WAIT_MS)

    bea.page.goto(pod.url + "/#me")
    people = bea.page.locator("#me-people-list")
    people.get_by_text("Ana", exact=True).wait_for(timeout=WAIT_MS)
    shown = people.inner_text()
    assert "(she/her)" in shown
    assert "Habla español, inglés, portugués de Brasil" in shown, shown
    assert "Alguien que aún no tiene nombre" in shown  # Bea and Cy have no name yet
    bea.shot("me-desktop-spanish")

    # --- bad input: refused in words, nothing typed is lost, nothing changes on the node ----
    ana.page.goto(pod.url + "/#me")
    ana.page.wait_for_function(
        "() => document.getElementById('me-name').value === 'Ana'", timeout=WAIT_MS
    )
    assert ana.page.input_value("#me-languages") == "Spanish, English, Brazilian Portuguese"
    long = "she/her/hers — and please ask me about it"  # 41 characters
    ana.page.fill("#me-pronouns", long)
    ana.page.fill("#me-about", "I cook on Sundays.")
    ana.page.click("#me-profile-save")
    status(ana, "me-profile-result", "Pronouns can be at most 40 characters (these have 41).")
    assert ana.page.get_attribute("#me-profile-result", "data-ok") == "false"
    assert ana.page.get_attribute("#me-pronouns", "aria-invalid") == "true"
    assert ana.page.input_value("#me-pronouns") == long
    assert ana.page.input_value("#me-about") == "I cook on Sundays."
    ana.page.fill("#me-languages", "Spanish, Elvish")
    ana.page.fill("#me-pronouns", "she/her")
    ana.page.click("#me-profile-save")
    status(ana, "me-profile-result", "We do not know the language “Elvish”.")
    assert ana.page.input_value("#me-about") == "I cook on Sundays."
    assert profiles(pod, cy) == [wanted]
    ana.page.fill("#me-languages", "Spanish, English, Brazilian Portuguese")
    ana.page.fill("#me-contact", "Phone 555 0101, evenings")
    ana.page.click("#me-profile-save")
    status(ana, "me-profile-result", "Saved.")
    saved = profiles(pod, cy)[-1]
    contact = saved.pop("contact")
    assert saved == {**wanted, "about": "I cook on Sundays."}
    # The contact is sealed in the browser to the coordinators and Ana, and opens for them only.
    ana_box = ana.keys()[1]
    assert {r["key"] for r in contact["to"]} == {ana_box, cora.box_public}
    assert "555" not in json.dumps(contact)
    opened = open_field(cora, contact, "profile.set", "contact")
    assert opened == {"text": "Phone 555 0101, evenings"}

    # In Spanish, the form names the same languages in Spanish (and reads them back).
    ana.page.select_option("#lang", "es")
    ana.page.wait_for_function(
        "() => document.getElementById('me-languages').value === "
        "'español, inglés, portugués de Brasil'",
        timeout=WAIT_MS,
    )
    ana.shot("me-phone-spanish")
    ana.page.click("#me-profile-save")
    status(ana, "me-profile-result", "Guardado. El grupo ahora te ve como Ana (she/her).")
    assert profiles(pod, cy)[-1]["languages"] == ["es", "en", "pt-BR"]
    ana.page.select_option("#lang", "en")

    # --- a new phone: its device code, linked from the first device ------------------------
    phone = Member(browser, pod, "ana-phone", locale="en-GB", **PHONE)
    assert phone.page.is_visible("#join")  # someone new still opens on joining
    phone.page.goto(pod.url + "/#me")
    phone.page.wait_for_selector("#me-link", state="visible", timeout=WAIT_MS)
    assert not phone.page.is_visible("#me-member")
    code = phone.page.text_content("#me-code") or ""
    phone_key = phone.keys()[0]
    assert code == f"kith-device {phone_key} {phone.keys()[1]}"
    phone.page.click("#me-copy")
    # Copied, or (no clipboard permission in this browser) the code selected to copy by hand:
    # an answer either way, never a silent button.
    phone.page.wait_for_function(
        "() => document.getElementById('me-copy-result').textContent !== ''", timeout=WAIT_MS
    )
    said = phone.page.text_content("#me-copy-result")
    assert said in (COPIED, BY_HAND), said
    if said == BY_HAND:
        assert phone.page.evaluate("() => String(getSelection())") == code
    phone.shot("me-new-phone-device-code")
    assert axe_violations(phone) == []

    ana.page.fill("#me-code-in", "not a code")
    ana.page.click("#me-link-button")
    status(ana, "me-link-result", "That does not look like a device code.")
    ana.page.fill("#me-code-in", f"\n  {code}  \n")
    ana.page.fill("#me-note", "my new phone")
    ana.page.click("#me-link-button")
    status(ana, "me-link-result", "Linked. The new device now shows the pod")
    ana_key = ana.keys()[0]

    # The phone sees its link on the stream and reads again as a member: it posts as Ana.
    phone.page.wait_for_selector("#me-member", state="visible", timeout=WAIT_MS)
    phone.page.goto(pod.url + "/#needs")
    phone.page.wait_for_selector("#post-form", state="visible", timeout=WAIT_MS)
    phone.page.fill("#title", "A ride to the clinic")
    phone.page.select_option("#category", "ride")
    phone.page.click("#post-button")
    status(phone, "post-result", "Posted")
    bea.page.goto(pod.url + "/#needs")
    bea.page.get_by_text("Ana necesita que la lleven en coche").wait_for(timeout=WAIT_MS)
    needs = read(pod, cy, "/v1/needs", status="open")
    # The need is Ana's (the read model counts people, not keys).
    assert {n["title"]: n["author"] for n in needs}["A ride to the clinic"] == ana_key

    (ana_person,) = [m for m in read(pod, cy, "/v1/members") if m["key"] == ana_key]
    assert [(d["key"], d["revoked"]) for d in ana_person["devices"]] == [(phone_key, False)]

    # Removing the device in use asks for a clear yes first; "no" changes nothing.
    phone.page.goto(pod.url + "/#me")
    phone.page.wait_for_selector("#me-contact-closed", state="visible", timeout=WAIT_MS)
    assert phone.page.input_value("#me-name") == "Ana"
    assert phone.page.input_value("#me-contact") == ""
    item = phone.page.locator(f"#me-device-list li[data-key='{phone_key}']")
    item.get_by_text("my new phone").wait_for(timeout=WAIT_MS)
    assert "this device" in item.inner_text()
    item.get_by_role("button", name="Remove the device I am using").click()
    phone.page.wait_for_selector("#me-remove-yes", state="visible", timeout=WAIT_MS)
    assert "This is the device you are using now" in item.inner_text()
    phone.shot("me-phone-confirm-remove")
    phone.page.click("#me-remove-no")
    status(phone, "me-devices-result", "Kept. Nothing changed.")
    assert phone.page.locator("#me-remove-yes").count() == 0
    assert axe_violations(phone) == []

    # --- the first device removes the phone; the node refuses its next post, in words ------
    ana.page.reload()
    ana.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    row = ana.page.locator(f"#me-device-list li[data-key='{phone_key}']")
    row.get_by_text("my new phone").wait_for(timeout=WAIT_MS)
    assert ana.page.input_value("#me-contact") == "Phone 555 0101, evenings"  # opened here
    first = ana.page.locator(f"#me-device-list li[data-key='{ana_key}']")
    assert "this device" in first.inner_text()
    assert first.get_by_role("button").count() == 0  # the joined-with key: a coordinator's
    ana.shot("me-phone-devices")
    assert axe_violations(ana) == []
    assert phone.errors == []
    row.get_by_role("button", name="Remove this device").click()
    status(ana, "me-devices-result", "Removed. That device can no longer post for you")
    row.get_by_text("Removed: nothing it signs from now on counts.").wait_for(timeout=WAIT_MS)
    (ana_person,) = [m for m in read(pod, cy, "/v1/members") if m["key"] == ana_key]
    (device,) = ana_person["devices"]
    assert device["revoked"] is True
    assert device["valid_through"] == {"pod": 1, "peers": 0, "public": 0}

    phone.page.goto(pod.url + "/#needs")
    phone.page.fill("#title", "Posted after the phone was removed")
    phone.page.click("#post-button")
    status(phone, "post-result", "This device can no longer post for you")
    assert phone.page.get_attribute("#post-result", "data-ok") == "false"
    titles = [n["title"] for n in read(pod, cy, "/v1/needs", status="open")]
    assert "Posted after the phone was removed" not in titles
    assert "A ride to the clinic" in titles  # what it did before stays valid
    phone.shot("me-removed-phone-refused")

    for who in (ana, bea):
        assert who.errors == [], (who.name, who.errors)
    # The removed phone's only complaints are Chromium's notes of the node's 401s to its key.
    refused = "the server responded with a status of 401 (Unauthorized)"
    assert all(refused in e for e in phone.errors), phone.errors
