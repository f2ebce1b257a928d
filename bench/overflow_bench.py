"""Overflow benchmark: how long a referral takes to reach a neighbour pod, and its size.

Two real `kith serve` processes A and B on loopback, peered both ways through byte-counting
TCP proxies (``WireTap`` from ``bench.federation_bench``), so every byte of the A–B link is
seen. Printed beside a baseline measured in the same run, interleaved with it:

* **referral latency**: from ``POST /v1/overflow/refer`` returning on A to the referral being
  listed in B's ``GET /v1/overflow`` (polled as fast as the client can), over
  ``KITH_BENCH_REFERRALS`` (default 20) referrals, and from the request being sent;
  baseline: from a plain ``peers``-scope ``need.posted`` by A's member being accepted to
  its being returned by B's ``GET /v1/events?kinds=need.posted``.
* **size**: one ``overflow.referred`` envelope as A stores it (its JSON bytes), and the
  websocket ``EVENTS`` frame bytes A sent B for it, beside one plain ``need.posted``'s.

Run: ``python -m bench.overflow_bench``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.common import ROOT, free_port, kith, wait_up
from bench.federation_bench import WireStats, WireTap
from node.client import KithClient
from node.datadir import read_key_file

N = int(os.environ.get("KITH_BENCH_REFERRALS", "20"))
TIMEOUT_S = 30.0


class Pod:
    """A `kith serve` process with a coordinator and a member (real key files)."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.dir = root / name
        self.port = free_port()
        kith("init", "--dir", str(self.dir), "--name", f"Bench {name}", "--port", str(self.port))
        self.pod = json.loads((self.dir / "config.json").read_text())["pod"]
        self.clients: dict[str, KithClient] = {}
        for role in ("coordinator", "member"):
            path = root / f"{name}-{role}.key"
            kith("key", "new", "--out", str(path))
            kith("member", "add", "--key-file", str(path), "--role", role, "--dir", str(self.dir))
            self.clients[role] = KithClient(self.url, read_key_file(path).signing_key())
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "serve", "--dir", str(self.dir)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_up(self.url + "/healthz")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None


def until(check: Callable[[], bool], what: str) -> float:
    """Poll ``check`` with no pause; the perf_counter when it first held."""
    deadline = time.perf_counter() + TIMEOUT_S
    while not check():
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
    return time.perf_counter()


def live(a: Pod, b: Pod) -> bool:
    doc = httpx.get(a.url + "/.well-known/kith", timeout=10).json()
    return any(p["pod"] == b.pod and p["state"] == "live" for p in doc["federation"]["peers"])


def need(a: Pod, i: int, scope: str) -> str:
    body = {"title": f"Ride {i}", "category": "ride", "urgency": "high", "area": "North"}
    result = a.clients["member"].post("need.posted", body, scope=scope)  # type: ignore[arg-type]
    if not result["ok"]:
        raise SystemExit(f"need.posted refused: {result}")
    return str(result["id"])


def refer_once(a: Pod, b: Pod, i: int) -> tuple[str, float, float]:
    """One referral: its id, seconds from the refer call's answer to B listing it, and from the
    call being made."""
    need_id = need(a, i, "pod")
    sent = time.perf_counter()
    answer = a.clients["coordinator"].call("POST", "/v1/overflow/refer", {"need": need_id})
    t0 = time.perf_counter()
    referral = answer["id"]
    cb = b.clients["coordinator"]

    def listed() -> bool:
        incoming = cb.call("GET", "/v1/overflow")["incoming"]
        return any(item["referral"]["id"] == referral for item in incoming)

    seen = until(listed, "the referral at B")
    return referral, seen - t0, seen - sent


def plain_once(a: Pod, b: Pod, i: int) -> tuple[str, float, float]:
    """One plain peers-scope need: its id, seconds from A's answer to B returning it, and from
    the post being made (which includes the client's read of its log head)."""
    sent = time.perf_counter()
    event = need(a, i, "peers")
    t0 = time.perf_counter()
    mb = b.clients["member"]

    def seen() -> bool:
        page = mb.get("/v1/events", kinds="need.posted", ids=event)
        return any(e["id"] == event for e in page["events"])

    at_b = until(seen, "the need at B")
    return event, at_b - t0, at_b - sent


def frame_bytes(stats: WireStats, direction: str) -> tuple[int, int]:
    """(EVENTS frames, their bytes) sent in ``direction`` since the last reset."""
    frames = stats.frames.get((direction, "EVENTS"), 0)
    return frames, stats.frame_bytes.get((direction, "EVENTS"), 0)


def envelope_bytes(a: Pod, event: str) -> int:
    """The envelope's JSON bytes as A stores and serves it."""
    raw = httpx.get(
        a.url + f"/v1/events/{event}",
        headers={"authorization": "Kith " + a.clients["coordinator"].token()},
        timeout=10,
    ).content
    doc = json.loads(raw)
    return len(json.dumps(doc["envelope"], separators=(",", ":")).encode())


def wire_size(
    a: Pod, taps: list[WireTap], once: Callable[[], tuple[str, float, float]]
) -> tuple[str, int, int]:
    """Send one event A→B with the taps reset; (its id, EVENTS frames, their bytes)."""
    for tap in taps:
        tap.reset()
    event, _, _ = once()
    time.sleep(0.5)  # let the frame's ACK and anything else of this event cross
    total = taps[0].stats.add(taps[1].stats)
    frames, size = frame_bytes(total, "A→B")
    return event, frames, size


def main() -> None:
    print(f"# overflow benchmark — {N} referrals A→B beside {N} plain peers-scope needs")
    root = Path(tempfile.mkdtemp(prefix="kith-overflowbench-"))
    a, b = Pod("A", root), Pod("B", root)
    # A dials B through tap_ab and B dials A through tap_ba: whichever link is kept is seen.
    tap_ab = WireTap("A", "B", b.port).start()
    tap_ba = WireTap("B", "A", a.port).start()
    taps = [tap_ab, tap_ba]
    pods: list[Pod] = [a, b]
    try:
        kith("peer", "add", f"ws://127.0.0.1:{tap_ab.port}/v1/federation", "--pod", b.pod,
             "--dir", str(a.dir))  # fmt: skip
        kith("peer", "add", f"ws://127.0.0.1:{tap_ba.port}/v1/federation", "--pod", a.pod,
             "--dir", str(b.dir))  # fmt: skip
        a.start()
        b.start()
        until(lambda: live(a, b) and live(b, a), "A–B live")
        refer_once(a, b, -1)  # warm both paths (first requests, roster lookups)
        plain_once(a, b, -1)
        referrals: list[tuple[float, float]] = []
        plain: list[tuple[float, float]] = []
        for i in range(N):  # interleaved, so load on the machine skews both alike
            referrals.append(refer_once(a, b, i)[1:])
            plain.append(plain_once(a, b, i)[1:])
        ref_id, ref_frames, ref_wire = wire_size(a, taps, lambda: refer_once(a, b, 10_000))
        need_id, need_frames, need_wire = wire_size(a, taps, lambda: plain_once(a, b, 10_001))
        ref_env, need_env = envelope_bytes(a, ref_id), envelope_bytes(a, need_id)
    finally:
        for pod in pods:
            with contextlib.suppress(Exception):
                pod.stop()
        for tap in taps:
            tap.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(referrals, plain, (ref_env, ref_frames, ref_wire), (need_env, need_frames, need_wire))


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(label: str, values: list[float]) -> str:
    p50 = statistics.median(values) * 1000
    return f"  {label:47s} p50 {p50:6.1f}   p90 {_ms(values, 0.9):6.1f}   max {_ms(values, 1):6.1f}"


def report(
    referrals: list[tuple[float, float]],
    plain: list[tuple[float, float]],
    ref_size: tuple[int, int, int],
    need_size: tuple[int, int, int],
) -> None:
    print()
    for column, words in ((0, "A's answer"), (1, "A's request sent")):
        ref, base = [r[column] for r in referrals], [p[column] for p in plain]
        print(f"time from {words} to visible in B's read API, ms:")
        print(_row("referral  (POST refer → GET /v1/overflow)", ref))
        print(_row("baseline  (peers need.posted → GET /v1/events)", base))
        ratio = statistics.median(ref) / statistics.median(base)
        print(f"  ratio referral / baseline (p50): {ratio:.2f}")
    print()
    print("size of one event A→B:")
    for label, (env, frames, wire) in (("overflow.referred", ref_size), ("need.posted", need_size)):
        print(f"  {label:18s} envelope JSON {env:5d} B   {frames} EVENTS frame(s), {wire:5d} B")
    print()
    print("(the refer route answers after reading the referral back, so B may hold it before A"
          " answers; the baseline's 'sent' includes the client's GET of its log head)")  # fmt: skip


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
