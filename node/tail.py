"""``kith tail``: print a node's live events readably, resuming after a dropped connection."""

from __future__ import annotations

import asyncio
import datetime
import json
import random
import sys
import time
from typing import Any, TextIO

import websockets

from protocol.crypto import SigningKey
from protocol.reasons import KithError
from protocol.tokens import make_token


class NodeDown(KithError):
    """The node's stream could not be opened at all (not running, or not a Kith node there).

    Only the first connection raises it: once a tail has followed a node, a lost connection
    is said and retried (the node may be restarting), and the tail resumes where it was.
    """

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"no Kith node answers at {url} ({why})")
        self.url = url
        self.why = why


_SHOWN = (
    "title",
    "summary",
    "name",
    "note",
    "reason",
    "minutes",
    "need",
    "claim",
    "entry",
    "target",
)


def describe(envelope: dict[str, Any], cursor: int) -> str:
    """One readable line for an event (never the full body: it may be personal)."""
    head = json.loads(envelope["head"])
    when = datetime.datetime.fromtimestamp(head["ts"] / 1000, tz=datetime.UTC).strftime("%H:%M:%S")
    body = json.loads(envelope["body"]) if envelope.get("body") else None
    parts = [f"#{cursor}", when, f"{head['kind']:<20}", f"{head['scope']:<6}", head["author"][:8]]
    if body is None and head.get("body_hash"):
        parts.append("[removed]")
    elif isinstance(body, dict):
        for name in _SHOWN:
            if name in body:
                value = body[name]
                text = value if isinstance(value, str) else json.dumps(value)
                parts.append(f"{name}={text[:60]}")
        for name in ("category", "urgency"):
            if name in body:
                parts.append(f"{name}={body[name]}")
    return "  ".join(parts)


def stream_url(url: str) -> str:
    """http(s)://host:port → ws(s)://host:port/v1/stream"""
    base = url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base if base.endswith("/v1/stream") else base + "/v1/stream"


async def tail(
    url: str,
    filt: dict[str, Any],
    *,
    key: SigningKey | None = None,
    after: int | None = None,
    out: TextIO = sys.stdout,
    max_events: int | None = None,
    node_key: str | None = None,
) -> int:
    """Follow the stream forever (or until ``max_events``); returns the last cursor seen."""
    last = after
    shown = 0
    delay = 0.5
    followed = False  # has the stream ever opened? (before: a node down is an error)
    down = False  # is the node gone right now? (said once, then "still down")
    while True:
        try:
            async with websockets.connect(stream_url(url), max_size=2**22) as ws:
                delay = 0.5
                if down:
                    print("-- the node is back; resuming --", file=sys.stderr, flush=True)
                followed, down = True, False
                sub = dict(filt)
                if last is None:
                    sub.setdefault("limit", 10)  # like tail(1): the last few, then follow
                else:
                    sub.pop("limit", None)
                while True:  # recv, not `async for`: a node that closes must be said
                    frame = json.loads(await ws.recv())
                    verb = frame[0]
                    if verb == "CHALLENGE":
                        if key is not None and node_key is not None:
                            token = make_token(
                                key,
                                purpose="stream",
                                node_key=node_key,
                                now_ms=int(time.time() * 1000),
                                ttl_ms=120_000,
                                nonce=frame[1],
                            )
                            await ws.send(json.dumps(["AUTH", token]))
                        await ws.send(
                            json.dumps(["SUB", "tail", {"filters": [sub], "after": last}])
                        )
                    elif verb == "EVENT":
                        last = frame[3]
                        print(describe(frame[2], frame[3]), file=out, flush=True)
                        shown += 1
                        if max_events is not None and shown >= max_events:
                            return last or 0
                    elif verb == "LIVE":
                        last = max(last or 0, frame[2])
                        print(f"-- live after #{frame[2]} --", file=out, flush=True)
                    elif verb == "CLOSED":
                        print(f"-- closed: {frame[2]} (resuming) --", file=sys.stderr, flush=True)
                        break
                    elif verb == "NOTICE":
                        print(f"-- {frame[1]} --", file=sys.stderr, flush=True)
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            if not followed:
                raise NodeDown(url, _why(exc)) from None
            print(
                f"-- {'the node went away' if not down else 'still down'} ({_why(exc)});"
                f" retrying in {delay:.1f}s (Ctrl-C to stop) --",
                file=sys.stderr,
                flush=True,
            )
            down = True
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 30.0)


def _why(exc: BaseException) -> str:
    """A short reason a connection failed or ended, for a person."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        return f"HTTP {exc.response.status_code} on {_STREAM}: is it a Kith node?"
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        return "connection closed"
    text = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return str(text)


_STREAM = "/v1/stream"
