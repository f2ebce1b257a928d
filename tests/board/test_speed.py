"""The board's files as a real node serves them: gzip when asked, exactly the bytes in git once
decoded, validators that make a reload a ``304``, and nothing compressed outside the board.
"""

from __future__ import annotations

import gzip
import re
from typing import Any

import httpx
import pytest

from node.board_routes import BOARD_DIR, accepts_gzip
from tests.board.helpers import Member
from tests.integration.conftest import Pod

#: Every file the page names (its styles and each preloaded module), the page and a catalogue.
PAGE = (BOARD_DIR / "index.html").read_text("utf-8")
FILES = [
    "index.html",
    "i18n/en.json",
    "i18n/es.json",
    *(u.removeprefix("/board/") for u in re.findall(r'href="(/board/[^"]+)"', PAGE)),
]


def url_of(rel: str) -> str:
    return "/" if rel == "index.html" else "/board/" + rel


@pytest.mark.parametrize("rel", FILES)
def test_a_board_file_is_sent_compressed_and_decodes_to_the_file_in_git(
    board_pod: Pod, rel: str
) -> None:
    in_git = (BOARD_DIR / rel).read_bytes()
    with httpx.Client(base_url=board_pod.url) as http:
        # httpx would decode for us: ask for the raw stream to see the bytes on the wire.
        with http.stream("GET", url_of(rel), headers={"accept-encoding": "gzip"}) as r:
            wire = b"".join(r.iter_raw())
            headers = r.headers
        assert r.status_code == 200
        etag = headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]{32}(-gz)?"', etag)
        assert headers["cache-control"] == "no-cache"
        assert headers["x-content-type-options"] == "nosniff"
        assert "last-modified" in headers
        if len(in_git) >= 512:
            assert headers["content-encoding"] == "gzip"
            assert headers["vary"] == "accept-encoding"
            assert etag.endswith('-gz"')
            assert len(wire) < len(in_git)
            assert gzip.decompress(wire) == in_git
        else:
            assert "content-encoding" not in headers
            assert wire == in_git

        # The browser revalidates with what it holds: unchanged, so 304 and no body.
        again = http.get(url_of(rel), headers={"accept-encoding": "gzip", "if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        since = headers["last-modified"]
        assert http.get(url_of(rel), headers={"if-modified-since": since}).status_code == 304
        odd = {"if-modified-since": "last tuesday"}  # not a date: the file
        assert http.get(url_of(rel), headers=odd).status_code == 200
        old = {"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"}
        assert http.get(url_of(rel), headers=old).status_code == 200

        # A client that takes no gzip gets the file itself, under the identity form's tag.
        plain = http.get(url_of(rel), headers={"accept-encoding": "identity"})
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert plain.content == in_git
        assert plain.headers["etag"] == etag.removesuffix('-gz"').removesuffix('"') + '"'
        # Either form's tag is the same bytes: still a 304.
        held = {"accept-encoding": "identity", "if-none-match": etag}
        assert http.get(url_of(rel), headers=held).status_code == 304
        # A tag of other bytes (an older node's file) gets the new file.
        stale = {"accept-encoding": "gzip", "if-none-match": '"' + "0" * 32 + '-gz"'}
        assert http.get(url_of(rel), headers=stale).status_code == 200


def test_the_page_keeps_its_policy_headers(board_pod: Pod) -> None:
    r = httpx.get(board_pod.url + "/", headers={"accept-encoding": "gzip"})
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'")
    assert r.headers["referrer-policy"] == "no-referrer"
    js = httpx.get(board_pod.url + "/board/app.js")
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"


def test_only_the_board_is_compressed(board_pod: Pod) -> None:
    """The API answers as before: the compression is the board's files', nothing else's."""
    for path in ("/v1/needs", "/healthz", "/.well-known/kith", "/schema/openapi.json"):
        r = httpx.get(board_pod.url + path, headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in r.headers, path
        assert "etag" not in r.headers, path


@pytest.mark.parametrize(
    "path", ["/board/nope.js", "/board/../pyproject.toml", "/board/%2e%2e/%2e%2e/pyproject.toml"]
)
def test_nothing_outside_the_board_directory_is_served(board_pod: Pod, path: str) -> None:
    with httpx.Client(base_url=board_pod.url) as http:
        r = http.send(http.build_request("GET", path))
        assert r.status_code == 404, r.text


@pytest.mark.parametrize(
    ("value", "takes"),
    [
        ("gzip, deflate, br, zstd", True),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("identity", False),
        ("", False),
        ("gzip;q=0", False),
        ("*", True),
        ("*;q=0", False),
        ("br, *;q=0.5, gzip;q=0", False),
        ("x-gzip", True),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding(value: str, takes: bool) -> None:
    assert accepts_gzip(value) is takes


def test_the_browser_loads_the_board_compressed_and_a_reload_revalidates(
    board_pod: Pod, browser: Any
) -> None:
    who = Member(browser, board_pod, "dee")
    cold = who.first_load()
    encodings: dict[str, str | None] = {}
    statuses: dict[str, int] = {}

    def seen(response: Any) -> None:
        if response.url.startswith(board_pod.url + "/board/"):
            statuses[response.url] = response.status
            encodings[response.url] = response.headers.get("content-encoding")

    who.page.on("response", seen)
    who.page.reload()
    who.page.wait_for_selector("body[data-ready=true]")
    warm = who.first_load()
    # Less over the wire than the decoded JavaScript alone, and far less again once cached.
    assert cold["bytes_transferred"] < cold["js_bytes"]
    assert warm["bytes_transferred"] < cold["bytes_transferred"] / 4
    assert encodings and all(e in ("gzip", None) for e in encodings.values())
    assert any(e == "gzip" for e in encodings.values())
    # Each module and the stylesheet revalidates to a 304 (the catalogues, fetched by script,
    # may come from Chromium's memory cache as a 200).
    files = {u: s for u, s in statuses.items() if u.endswith((".js", ".css"))}
    assert len(files) >= 20 and set(files.values()) == {304}, statuses

    # The views' refresh (core.js debounce): one run for a burst, never two at once, and one
    # more run for calls made while it ran.
    runs = who.page.evaluate(
        """async () => {
        const { debounce } = await import("/board/core.js");
        const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
        const seen = { runs: 0, running: 0, most: 0 };
        const refresh = debounce(async () => {
          seen.runs += 1; seen.running += 1; seen.most = Math.max(seen.most, seen.running);
          await sleep(60);
          seen.running -= 1;
        });
        for (let i = 0; i < 5; i += 1) refresh();
        await sleep(30);  // after the debounce's timer: the first run is under way
        refresh(); refresh();
        while (seen.runs < 2 || seen.running) await sleep(10);
        await sleep(100);  // nothing else was asked: no third run
        return seen;
      }"""
    )
    assert runs == {"runs": 2, "running": 0, "most": 1}
    assert who.errors == []
    who.context.close()
