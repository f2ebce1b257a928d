"""What the board's browser tests share: a member's browser context, joining, axe-core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.board.conftest import ARTIFACTS
from tests.integration.conftest import Pod, kith

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
#: How long the board may take to show what happened (live updates take milliseconds).
WAIT_MS = 10_000


class Member:
    """One person's browser context on the board, failing on any page error or CSP refusal."""

    def __init__(self, browser: Any, pod: Pod, name: str, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.name = name
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.goto(pod.url + "/")
        self.page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)

    def first_load(self) -> dict[str, float]:
        """What the first (cold) load cost: bytes over the wire, JS bytes, time to ready."""
        return dict(
            self.page.evaluate(
                """() => {
                const entries = [...performance.getEntriesByType('navigation'),
                                 ...performance.getEntriesByType('resource')];
                const js = entries.filter(e => e.name.endsWith('.js'));
                return {
                  requests: entries.length,
                  bytes_transferred: entries.reduce((n, e) => n + e.transferSize, 0),
                  js_bytes: js.reduce((n, e) => n + e.decodedBodySize, 0),
                  ready_ms: Number(document.body.dataset.readyMs),
                };
              }"""
            )
        )

    def _console(self, message: Any) -> None:
        # While the node restarts, Chromium logs each refused reconnection: expected.
        if message.type == "error" and not message.text.startswith("WebSocket connection to"):
            self.errors.append(f"{message.text} {message.location.get('url')}")

    def keys(self) -> tuple[str, str]:
        return self.page.text_content("#my-key") or "", self.page.text_content("#my-box") or ""

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def join(pod: Pod, who: Member) -> None:
    """A coordinator adds the keys the board shows, with the CLI (invites are a later slice)."""
    key, box = who.keys()
    assert len(key) == 43 and len(box) == 43 and key != box
    kith("member", "add", "--key", key, "--box-key", box, "--dir", str(pod.dir), "--url", pod.url)
    # The board sees its own member.added on the stream and reads again as a member.
    who.page.wait_for_selector("#post-form", state="visible", timeout=WAIT_MS)
    who.page.wait_for_selector("#join", state="hidden", timeout=WAIT_MS)


def need_titles(who: Member) -> list[str]:
    return [t.strip() for t in who.page.locator("#needs-list h3").all_inner_texts()]


def axe_violations(who: Member) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations (injected by the test, never served)."""
    who.page.evaluate(AXE.read_text("utf-8"))
    result = who.page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
