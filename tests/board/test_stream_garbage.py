"""The board never breaks on what the stream brings (issue 13, "Bad input").

A member's live link runs through a proxy in the browser (Playwright's websocket routing), which
passes the node's frames on and, in the middle, slips in frames no node should send: not JSON,
the wrong shapes, heads that are not JSON, unknown kinds, known kinds with empty, null, list or
ill-typed bodies — one for every kind the board follows. Nothing throws, nothing shown changes,
the line still says "Up to date", every tab still draws, and a real need posted afterwards still
appears live.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.board.helpers import WAIT_MS, Member, join, need_titles
from tests.integration.conftest import Pod, Poster, member

KINDS = [
    "need.posted", "need.updated", "need.withdrawn", "offer.posted", "offer.withdrawn",
    "claim.made", "claim.withdrawn", "claim.accepted", "fulfilment.recorded", "hours.logged",
    "hours.confirmed", "proposal.opened", "vote.cast", "gathering.scheduled",
    "gathering.cancelled", "gathering.rsvp", "profile.set", "member.added", "member.removed",
    "member.key_added", "member.key_revoked", "member.blocked", "member.unblocked",
    "invite.created", "invite.revoked", "event.redacted", "pod.created", "report.filed",
    "overflow.referred", "weird.kind", "",
]  # fmt: skip
AUTHOR = "A" * 43


def garbage() -> list[str]:
    """Frames no node sends: each must change nothing on the page."""
    frames: list[Any] = [
        "not json at all",
        {"an": "object"},
        [],
        ["EVENT"],
        ["EVENT", "board", "a string"],
        ["EVENT", "board", {"head": "{not json"}],
        ["EVENT", "board", {"head": 42, "body": 42}],
        ["EVENT", "board", {"head": json.dumps({"kind": 5, "author": AUTHOR})}],
        ["EVENT", "board", {"head": json.dumps(["a", "list"])}],
        ["EVENT", "other-sub", {"head": json.dumps({"kind": "need.posted", "author": AUTHOR})}],
        ["NOTICE", 42],
        ["NOTICE", "something the board has never heard of"],
        ["LIVE", "board", "not a cursor"],
        ["OK", "board"],
        ["WHAT", "board"],
    ]
    for kind in KINDS:
        head = json.dumps({"kind": kind, "author": AUTHOR, "ts": 1, "pod": AUTHOR, "seq": 1})
        for body in ["{}", "null", "[1, 2]", '"text"', "{not json", json.dumps(_typed_wrong())]:
            frames.append(["EVENT", "board", {"head": head, "body": body}])
        frames.append(["EVENT", "board", {"head": head}])
    return [f if isinstance(f, str) else json.dumps(f) for f in frames]


def _typed_wrong() -> dict[str, Any]:
    """A body whose every field the board reads has the wrong type."""
    names = ["name", "title", "key", "member", "need", "claim", "entry", "proposal", "option"]
    names += ["gathering", "answer", "target", "giver", "receiver", "minutes", "options", "window"]
    return {n: {"nested": [1, None]} for n in names}


def test_the_board_takes_garbage_from_the_stream_calmly(
    board_pod: Pod, browser: Any, tmp_path: Path
) -> None:
    pod = board_pod
    ana = Member(browser, pod, "ana", locale="en-GB", viewport={"width": 360, "height": 780})
    join(pod, ana)
    cy_key = member(pod, tmp_path, "cy")
    cy = Poster(pod.url, cy_key, pod.data.config().pod)
    cy.post([cy.sign("profile.set", {"name": "Cy"})])
    cy.need("Soup for the week", category="food", urgency="normal")

    links: list[Any] = []

    def proxy(ws: Any) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(ws.send)
        links.append(ws)

    ana.page.route_web_socket("**/v1/stream", proxy)
    ana.page.reload()
    ana.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    ana.page.wait_for_selector("#conn[data-state=live]", timeout=WAIT_MS)
    ana.page.locator("#needs-list").get_by_text("Soup for the week").wait_for(timeout=WAIT_MS)
    before = need_titles(ana)
    assert links, "the board's live link went through the proxy"

    frames = garbage()
    for frame in frames:
        links[-1].send(frame)
    # A real event after the garbage: it shows, so the garbage was read (in order) and survived.
    cy.need("Milk and bread", category="groceries", urgency="high")
    ana.page.locator("#needs-list").get_by_text("Milk and bread").wait_for(timeout=WAIT_MS)
    assert need_titles(ana) == ["Milk and bread", *before]
    assert "Cy needs groceries" in (ana.page.text_content("#needs-list") or "")
    assert ana.page.get_attribute("#conn", "data-state") == "live"
    # The proxy's frames do reach the board: a well-formed name for Cy, slipped in the same way,
    # is shown (the board takes names from the stream).
    head = json.dumps({"kind": "profile.set", "author": cy_key.public_b64, "ts": 2**52})
    links[-1].send(json.dumps(["EVENT", "board", {"head": head, "body": '{"name": "Zed"}'}]))
    ana.page.locator("#needs-list").get_by_text("Zed needs groceries").wait_for(timeout=WAIT_MS)

    # Every tab still draws after all that.
    for tab in ana.page.locator("#tabs a").all():
        view = (tab.get_attribute("href") or "").lstrip("#")
        tab.click()
        ana.page.wait_for_selector(f"#view-{view}", state="visible", timeout=WAIT_MS)
    ana.shot("garbage-after")
    assert len(frames) > 200
    assert ana.errors == [], ana.errors
