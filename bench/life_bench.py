"""The life of a pod at scale: reading proposals and the calendar at 200k stored events.

Fills a real ``kith serve`` over HTTP with 200k events — needs, offers, proposals with votes
and gatherings with RSVPs — then times the read routes over HTTP with a member's token, each
beside ``GET /v1/needs`` measured in the same run (the baseline the issue names). A calendar
feed is built once per state of the log and then served from memory: its ``first`` time is the
build, the median is what a polling calendar app sees.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from bench.common import CATEGORIES, Server, batches, encoded
from node.client import KithClient
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, event_id, sign_event

BIG = 200_000
RUNS = 41
HOUR = 3_600_000


def presign_life(keys: list[SigningKey], pod: str, n: int) -> list[Envelope]:
    """``n`` events across the members' logs: mostly needs and offers, one proposal in 400
    with votes after it, one gathering in 400 with RSVPs; a quarter of the logs are public
    (what the public calendar shows), the rest pod scope."""
    ts = int(time.time() * 1000)
    state: dict[str, tuple[int, str | None]] = {k.public_b64: (0, None) for k in keys}
    proposals: list[str] = []
    gatherings: list[str] = []
    out: list[Envelope] = []
    for i in range(n):
        key = keys[i % len(keys)]
        seq, prev = state[key.public_b64]
        kind, body = _event(i, ts, proposals, gatherings)
        scope = "public" if i % len(keys) < len(keys) // 4 else "pod"
        if scope == "public" and kind in ("vote.cast", "gathering.rsvp", "proposal.opened"):
            scope = "pod"  # decisions and who comes stay in the pod
            key = keys[len(keys) - 1]
            seq, prev = state[key.public_b64]
        env = sign_event(
            key, pod=pod, scope=scope, seq=seq + 1, prev=prev, ts=ts + i, kind=kind, body=body
        )
        state[key.public_b64] = (seq + 1, event_id(env.head))
        if kind == "proposal.opened":
            proposals.append(event_id(env.head))
        elif kind == "gathering.scheduled":
            gatherings.append(event_id(env.head))
        out.append(env)
    return out


def _event(i: int, ts: int, proposals: list[str], gatherings: list[str]) -> tuple[str, Any]:
    start = ts + (i % 500) * HOUR
    if i % 400 == 7:
        return "proposal.opened", {
            "title": f"Decision {i}",
            "options": ["by need", "equal shares", "half and half"],
            "closes_at": ts + (i % 50) * HOUR + 10 * HOUR,
        }
    if i % 400 == 13:
        return "gathering.scheduled", {
            "title": f"Circle {i}",
            "kind": "peer_support",
            "window": {"start": start, "end": start + 2 * HOUR},
            "place": "the library, room 2",
            "capacity": 12,
        }
    if i % 10 == 3 and proposals:
        return "vote.cast", {"proposal": proposals[-1 - i % len(proposals)], "option": i % 3}
    if i % 10 == 5 and gatherings:
        return "gathering.rsvp", {"gathering": gatherings[-1], "answer": ("yes", "maybe")[i % 2]}
    if i % 3 == 0:
        return "offer.posted", {
            "title": f"Offer {i}",
            "category": CATEGORIES[i % 8],
            "windows": [{"start": start, "end": start + 3 * HOUR}],
        }
    return "need.posted", {
        "title": f"Need {i}: help with {CATEGORIES[i % 8]}",
        "category": CATEGORIES[i % 8],
        "urgency": ("low", "normal", "high", "urgent")[i % 4],
        "window": {"start": start, "end": start + HOUR},
        "area": "Elm & 5th",
    }


def p50_ms(http: httpx.Client, url: str) -> tuple[float, int, float]:
    """The median over ``RUNS`` requests, the answer's size, and the first request's time."""
    times, size = [], 0
    for _ in range(RUNS):
        t0 = time.perf_counter()
        response = http.get(url)
        times.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: HTTP {response.status_code} {response.text[:200]}")
        size = len(response.content)
    return statistics.median(times) * 1000, size, times[0] * 1000


def main() -> None:
    print(f"# life-of-a-pod benchmark — reads at {BIG} stored events, p50 of {RUNS} over HTTP")
    server = Server(members=16)
    server.start()
    try:
        raw = encoded(presign_life(server.keys, server.pod, BIG))
        t0 = time.perf_counter()
        with httpx.Client(timeout=120) as http:
            for body in batches(raw, 500):
                results = http.post(server.url + "/v1/events", content=body).json()["results"]
                assert all(r["ok"] for r in results), results[:3]
        print(f"filled {BIG} events in {time.perf_counter() - t0:.0f}s")
        del raw
        token = KithClient(server.url, server.keys[0]).token()
        with httpx.Client(timeout=60, headers={"authorization": "Kith " + token}) as http:
            base, base_size, _ = p50_ms(http, server.url + "/v1/needs")
            print(f"GET {'/v1/needs (baseline):':<27} p50 {base:6.1f} ms  ({base_size} B)")
            feed = http.post(server.url + "/v1/calendar/feeds").json()["url"]
            reads = {
                "/v1/proposals": server.url + "/v1/proposals",
                "/v1/gatherings": server.url + "/v1/gatherings",
                "/v1/calendar.ics (public)": server.url + "/v1/calendar.ics",
                "private feed .ics": feed,
            }
            for label, url in reads.items():
                took, size, first = p50_ms(http, url)
                print(
                    f"GET {label + ':':<27} p50 {took:6.1f} ms  ({size} B)"
                    f"  ratio {took / base:.2f} against GET /v1/needs; first {first:.0f} ms"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
