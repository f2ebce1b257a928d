"""The board's figures (issue 13): its first load, a warm reload, and a post to another screen.

A real ``kith serve`` in a temp dir and Debian's headless Chromium (``/usr/bin/chromium`` via
Playwright, as in ``tests/board``), on loopback; every baseline is measured in the same run.

- **First load, cold** (``COLD`` fresh browser contexts each, median): requests, bytes over the
  wire, JavaScript decoded, and time to interactive — the page's ``body[data-ready-ms]``: keys
  made, the pod read, the page drawn. Beside it, the same load with ``Accept-Encoding:
  identity``: the board as it was served before compression (same files, same requests).
  The same again on an emulated slow link (``SLOW``: Chromium throttles the bytes on the wire),
  where the bytes saved show in the time.
- **Reload, warm** (``WARM`` reloads of one context, median): every file revalidated; what
  comes back is ``304``s.
- **A post to the other screen** (``POSTS`` posts): member A types a title and clicks "Post my
  need"; timed until the title is in member B's needs list. The clock is the browsers' own
  (``performance.timeOrigin + now()``, one machine, one clock), so the driver's round trips
  are not counted. The baseline: the same posts signed and sent from Python (``Poster``),
  received by a raw websocket stream client (authenticated as a member) — what the node and
  the network cost; the ratio says what the browser adds. Each browser post is split into its
  stages: A reads its log head (the first post only), signs and POSTs; the frame reaches B;
  B waits out the refresh debounce, re-reads ``/v1/needs`` and draws the list.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import threading
import time
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bench.common import Server, kith
from protocol.envelope import encode_envelope, event_id
from protocol.tokens import make_token
from tests.board.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.integration.conftest import Poster

COLD = 5
#: A phone on a busy home Wi-Fi or a weak LAN link, as Chromium emulates it (bytes on the wire).
SLOW = {
    "offline": False,
    "latency": 40,
    "downloadThroughput": 4_000_000 / 8,
    "uploadThroughput": 2_000_000 / 8,
}
WARM = 5
POSTS = 50
WAIT_MS = 20_000

#: In each page, before its own scripts: a clock on the stream's frames, on clicks of "Post my
#: need" and on titles appearing in the needs list (in the DOM, and at the next frame drawn).
PROBE = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  performance.setResourceTimingBufferSize(100000);
  const bench = { frames: {}, clicks: {}, dom: {}, painted: {} };
  window.__bench = bench;
  const Socket = window.WebSocket;
  window.WebSocket = class extends Socket {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (message) => {
        const at = now();
        try {
          const frame = JSON.parse(message.data);
          if (frame[0] !== "EVENT" || typeof frame[2]?.body !== "string") return;
          const title = JSON.parse(frame[2].body)?.title;
          if (typeof title === "string" && !(title in bench.frames)) bench.frames[title] = at;
        } catch {}
      });
    }
  };
  document.addEventListener("click", (event) => {
    if (event.target?.id === "post-button") {
      bench.clicks[document.getElementById("title").value.trim()] = now();
    }
  }, true);
  const look = () => {
    const at = now();
    const fresh = [];
    for (const h of document.querySelectorAll("#needs-list h3")) {
      const title = h.textContent;
      if (!(title in bench.dom)) { bench.dom[title] = at; fresh.push(title); }
    }
    if (fresh.length) requestAnimationFrame(() => {
      const drawn = now();
      for (const title of fresh) bench.painted[title] = drawn;
    });
  };
  document.addEventListener("DOMContentLoaded", () => {
    new MutationObserver(look).observe(document.getElementById("needs-list"),
                                       { childList: true, subtree: true, characterData: true });
  });
})();
"""

LOAD = """() => {
  const entries = [...performance.getEntriesByType('navigation'),
                   ...performance.getEntriesByType('resource')];
  const js = entries.filter(e => e.name.endsWith('.js'));
  return {
    requests: entries.length,
    bytes: entries.reduce((n, e) => n + e.transferSize, 0),
    js_bytes: js.reduce((n, e) => n + e.decodedBodySize, 0),
    ready_ms: Number(document.body.dataset.readyMs),
  };
}"""

#: The board's own reads and writes, on the epoch clock of the page.
REQUESTS = """() => performance.getEntriesByType('resource')
  .filter(e => e.name.includes('/v1/'))
  .map(e => ({name: e.name, start: performance.timeOrigin + e.startTime,
              end: performance.timeOrigin + e.responseEnd}))"""


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return math.nan
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and math.isfinite(a) and math.isfinite(b) else "n/a"


class Browser:
    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing"
        self.pw = sync_playwright().start()
        self.chromium = self.pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    def page(self, url: str, slow: bool = False, **context: Any) -> Any:
        ctx = self.chromium.new_context(**context)
        page = ctx.new_page()
        if slow:
            cdp = ctx.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", SLOW)
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.add_init_script(PROBE)
        page.goto(url + "/", wait_until="commit", timeout=60_000)
        page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
        return page

    def close(self) -> None:
        self.chromium.close()
        self.pw.stop()


def cold_loads(
    b: Browser, url: str, slow: bool = False
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """``COLD`` cold loads with gzip and as many without, taken in turns, each first every
    other time (after one untimed load, which has the node read and compress its files)."""
    plain = {"extra_http_headers": {"accept-encoding": "identity"}}
    b.page(url).context.close()
    rows: tuple[list[dict[str, float]], list[dict[str, float]]] = ([], [])
    for i in range(COLD):
        turns = list(zip(rows, ({}, plain), strict=True))
        for into, extra in turns[:: 1 if i % 2 == 0 else -1]:
            page = b.page(url, slow=slow, **extra)
            into.append(page.evaluate(LOAD))
            page.context.close()
    return rows


def warm_reloads(b: Browser, url: str) -> list[dict[str, float]]:
    page = b.page(url)
    rows = []
    for _ in range(WARM):
        page.reload()
        page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
        rows.append(page.evaluate(LOAD))
    page.context.close()
    return rows


def join(server: Server, page: Any) -> None:
    key = page.text_content("#my-key")
    box = page.text_content("#my-box")
    kith("member", "add", "--key", key, "--box-key", box, "--dir", str(server.dir))
    page.wait_for_selector("#post-form", state="visible", timeout=WAIT_MS)


def browser_posts(server: Server, b: Browser) -> tuple[list[float], dict[str, list[float]]]:
    a, other = b.page(server.url), b.page(server.url)
    join(server, a)
    join(server, other)
    titles = [f"Board post {i:02d}: groceries for the corner house" for i in range(POSTS)]
    for title in titles:
        a.fill("#title", title)
        a.click("#post-button")
        other.wait_for_function("t => t in window.__bench.dom", arg=title, timeout=WAIT_MS)
        a.wait_for_function(
            "() => document.querySelector('#title').value === '' && "
            "document.querySelector('#post-result').dataset.ok === 'true'",
            timeout=WAIT_MS,
        )
    time.sleep(0.2)  # the last frame drawn
    seen_a, seen_b = a.evaluate("() => window.__bench"), other.evaluate("() => window.__bench")
    reqs_a, reqs_b = a.evaluate(REQUESTS), other.evaluate(REQUESTS)
    assert a.errors == [] and other.errors == [], (a.errors, other.errors)
    a.context.close()
    other.context.close()

    def first(reqs: list[dict[str, Any]], part: str, after: float) -> dict[str, Any] | None:
        return next((r for r in reqs if part in r["name"] and r["start"] >= after), None)

    total: list[float] = []
    stages: dict[str, list[float]] = {
        k: [] for k in ("log head", "sign", "POST", "to B's socket", "debounce", "re-read", "draw")
    }
    for title in titles:
        click, dom = seen_a["clicks"][title], seen_b["dom"][title]
        total.append(dom - click)
        head, post = first(reqs_a, "/v1/logs/", click), first(reqs_a, "/v1/events", click)
        frame = seen_b["frames"].get(title)
        if post is None or frame is None:
            continue
        # After its first post the board signs on from its last head without reading it.
        head_end = head["end"] if head is not None and head["end"] <= post["start"] else click
        needs = first(reqs_b, "/v1/needs", frame)
        if needs is None or needs["end"] > dom:
            continue
        stages["log head"].append(head_end - click)
        stages["sign"].append(post["start"] - head_end)
        stages["POST"].append(post["end"] - post["start"])
        stages["to B's socket"].append(frame - click)
        stages["debounce"].append(needs["start"] - frame)
        stages["re-read"].append(needs["end"] - needs["start"])
        stages["draw"].append(dom - needs["end"])
    stages["drawn (next frame)"] = [seen_b["painted"][t] - seen_b["dom"][t] for t in titles]
    return total, stages


def python_posts(server: Server) -> list[float]:
    """The same posts, signed and POSTed from Python, received by a raw stream client."""
    poster = Poster(server.url, server.keys[0], server.pod)
    reader = server.keys[1]
    node_key = httpx.get(server.url + "/.well-known/kith").json()["node_key"]
    arrived: dict[str, float] = {}
    ready, done = threading.Event(), threading.Event()
    sockets: list[Any] = []

    def read() -> None:
        with connect(server.url.replace("http", "ws") + "/v1/stream", max_size=2**22) as ws:
            sockets.append(ws)
            challenge = json.loads(ws.recv(timeout=10))
            token = make_token(
                reader,
                purpose="stream",
                node_key=node_key,
                now_ms=int(time.time() * 1000),
                nonce=challenge[1],
            )
            ws.send(json.dumps(["AUTH", token]))
            ws.send(json.dumps(["SUB", "s", {"filters": [{"kinds": ["need.*"]}], "after": None}]))
            while not done.is_set():
                try:
                    frame = json.loads(ws.recv(timeout=30))
                except (ConnectionClosed, TimeoutError):
                    return
                now = time.perf_counter()
                if frame[0] == "LIVE":
                    ready.set()
                elif frame[0] == "EVENT":
                    arrived.setdefault(event_id(frame[2]["head"]), now)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert ready.wait(30)
    out = []
    with httpx.Client() as http:
        for i in range(POSTS):
            started = time.perf_counter()
            env = poster.sign(
                "need.posted",
                {"title": f"Python post {i:02d}", "category": "groceries", "urgency": "normal"},
            )
            body = b'{"events":[' + encode_envelope(env) + b"]}"
            http.post(server.url + "/v1/events", content=body).raise_for_status()
            eid = event_id(env.head)
            deadline = time.monotonic() + 20
            while eid not in arrived and time.monotonic() < deadline:
                time.sleep(0.0002)
            out.append((arrived[eid] - started) * 1000)
    done.set()
    sockets[0].close()
    thread.join(10)
    return out


def main() -> None:
    print(
        f"Board bench (issue 13): a real node, headless Chromium, loopback; "
        f"cold loads x{COLD}, warm reloads x{WARM}, {POSTS} posts"
    )
    server = Server(members=2)
    server.start()
    b = Browser()
    try:
        gz, ident = cold_loads(b, server.url)
        slow_gz, slow_ident = cold_loads(b, server.url, slow=True)
        warm = warm_reloads(b, server.url)
        base = python_posts(server)  # first: the board's posts then read 50 more needs
        total, stages = browser_posts(server, b)
    finally:
        b.close()
        server.stop()

    print("\nfirst load (median)       gzip      identity   ratio   | warm reload   ratio to cold")
    for key, unit in (("requests", ""), ("bytes", " B"), ("js_bytes", " B"), ("ready_ms", " ms")):
        g, i, w = _median(gz, key), _median(ident, key), _median(warm, key)
        print(
            f"  {key:<20} {g:>9.0f}{unit:<3} {i:>9.0f}{unit:<3} {_ratio(g, i):>7}"
            f"   | {w:>9.0f}{unit:<3} {_ratio(w, g):>7}"
        )

    print(
        f"  {'ready_ms, slow link':<20} {_median(slow_gz, 'ready_ms'):>9.0f} ms "
        f"{_median(slow_ident, 'ready_ms'):>9.0f} ms "
        f"{_ratio(_median(slow_gz, 'ready_ms'), _median(slow_ident, 'ready_ms')):>7}"
        f"   | (Chromium's emulation: {SLOW['downloadThroughput'] * 8 / 1e6:.0f} Mbit/s down,"
        f" {SLOW['latency']} ms latency)"
    )

    print(f"\npost -> other screen ({POSTS})   p50       p90       max     | ratio p50  p90")
    rows = (("board (A click -> B list)", total), ("Python post -> raw stream", base))
    for name, xs in rows:
        print(
            f"  {name:<27} {_pct(xs, 50):>6.1f} ms {_pct(xs, 90):>6.1f} ms {max(xs):>6.1f} ms",
            end="",
        )
        if xs is total:
            print(
                f" | {_ratio(_pct(total, 50), _pct(base, 50)):>6}"
                f" {_ratio(_pct(total, 90), _pct(base, 90)):>6}"
            )
        else:
            print(" | (baseline)")
    print(
        "\n  where the board's time goes (p50 of each stage, ms; 'to B's socket' is from the click)"
    )
    for name, xs in stages.items():
        print(f"    {name:<20} {_pct(xs, 50):>6.1f}  (p90 {_pct(xs, 90):.1f}, n={len(xs)})")


if __name__ == "__main__":
    main()
