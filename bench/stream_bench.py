"""Stream benchmarks (issue 5): fanout latency, burst throughput, memory per connection.

Kith is measured beside a bare `websockets` broadcast server doing the same fanout with no
storage, in the same run, with the same load: the same publishers and the same lean
subscriber client (``bench/subscribers.py``, its own process, so that it is not what gets
measured).

- **Publishers**: ``PUBLISHERS`` websocket connections, one author each, share ``RATE``
  events/s (Kith: ``["EVENT", envelope]``, validated, committed, then fanned out; baseline:
  the envelope, broadcast on arrival). Kith answers one connection's frames in order, after
  each durable commit, so several connections let group commit do its work, as many
  phones would.
- **Fanout latency** (the target): from the moment the server holds the event — Kith: the
  commit is durable and handed to its listeners (recorded by an extra listener ahead of the
  fanout); baseline: the message arrived — to the subscriber's receive, on one clock
  (``perf_counter``, system-wide). Printed beside it: Kith end to end, publisher send →
  receive, which adds signature checks and the durable commit.
- **Burst**: ``BURST`` events at once — to Kith as one ``POST /v1/events`` batch (one
  commit, then its fanout), to the baseline from the publishers as fast as they can send —
  delivered to one subscriber (msg/s) and to every subscriber (seconds), from the first send.
- **Memory per idle connection**: RSS growth with 200 connections holding one live
  subscription that nothing matches.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from bench import subscribers
from bench.common import ROOT, RawHTTP, Server, batches, free_port, presign, wait_up
from protocol.envelope import encode_envelope, event_id

RATE = 100  # events per second, all publishers together
SECONDS = 5
BURST = 2000
BURST_DEADLINE = 60  # seconds; a server that is not done by then is reported as such
PUBLISHERS = 8
KITH_SUB = b'["SUB","s",{"filters":[{"kinds":["offer.*","need.*"]}],"after":null}]'
IDLE_SUB = b'["SUB","s",{"filters":[{"kinds":["report.*"]}]}]'

# `kith serve` itself (node.cli.pod._serve), plus a listener ahead of the fanout that notes when
# each commit was handed over; the notes are written out when the node stops.
KITH = """
import json, signal, sys, time
from node.app import Node
from node.cli import _serve
from node.datadir import DataDir
from node.store.base import Placement
node = Node(DataDir(sys.argv[1]))
notes = []
def note(committed):
    now = time.perf_counter()
    notes.extend([now, c.event.id] for c in committed if c.placement is not Placement.PROOF)
node.ingest.listeners.insert(0, note)
# uvicorn re-raises the SIGTERM it caught once it has shut down: exit, through `finally`.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    _serve(node, "127.0.0.1", int(sys.argv[2]))
finally:
    with open(sys.argv[3], "w") as f:
        json.dump(notes, f)
"""

BASELINE = """
import asyncio, json, signal, sys, time, zlib, websockets
subs = set()
notes = []
async def handler(ws):
    if ws.request.path == "/pub":
        async for msg in ws:
            raw = msg if isinstance(msg, bytes) else msg.encode()
            notes.append([time.perf_counter(), zlib.crc32(raw)])
            msg = msg if isinstance(msg, str) else msg.decode()
            websockets.broadcast(subs, '["EVENT","s",' + msg + "," + str(len(notes)) + "]")
    else:
        subs.add(ws)
        await ws.send('["LIVE","s",0]')  # registered, as Kith's LIVE says
        try:
            await ws.wait_closed()
        finally:
            subs.discard(ws)
async def main():
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(handler, "127.0.0.1", int(sys.argv[1]), max_size=2**22):
        await stop
asyncio.run(main())
with open(sys.argv[2], "w") as f:
    json.dump(notes, f)
"""


class Subscribers:
    """The lean load client (``bench/subscribers.py``) in its own process."""

    def __init__(
        self, port: int, path: str, sub: bytes | None, n: int, milestones: list[int]
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=subscribers.run, args=(child, port, path, sub, n, milestones), daemon=True
        )
        self.proc.start()
        child.close()

    async def expect(self, verb: str, value: int | None = None, timeout: float = 60) -> Any:
        """Wait for the child's ``verb`` message (and value); None after ``timeout``."""
        deadline = time.perf_counter() + timeout
        while (left := deadline - time.perf_counter()) > 0:
            if not await asyncio.to_thread(self.conn.poll, min(left, 0.5)):
                if not self.proc.is_alive():
                    raise SystemExit("the load client died")
                continue
            msg = self.conn.recv()
            if msg[0] == verb and (value is None or msg[1] == value):
                return msg
        return None

    def ask(self, *msg: Any) -> Any:
        """Send a message and wait for the answer."""
        self.conn.send(msg)
        return self.conn.recv()

    def stop(self) -> None:
        """End the child."""
        self.conn.send(("stop",))
        self.proc.join(30)


class Run:
    """One server under the steady load and the burst; its results once the server stopped."""

    def __init__(self, envelopes: list[bytes], keys: list[str]) -> None:
        self.envelopes = envelopes
        self.keys = keys  # what each server notes per event: Kith the id, bare a CRC
        self.sent: dict[str, float] = {}
        self.burst_start = 0.0
        self.load: Subscribers | None = None

    async def publish(self, port: int, kith: bool, n_subs: int) -> None:
        """Connect the subscribers, publish steadily, then the burst; close the subscribers."""
        import websockets

        steady = RATE * SECONDS
        want = steady + BURST
        path = "/v1/stream" if kith else "/sub"
        self.load = load = Subscribers(
            port, path, KITH_SUB if kith else None, n_subs, [steady, want]
        )
        if await load.expect("ready", timeout=180) is None:
            raise SystemExit("subscribers did not connect")
        print(f"      ({n_subs} subscribers connected and live)", flush=True)
        url = f"ws://127.0.0.1:{port}{'/v1/stream' if kith else '/pub'}"
        pubs = [await websockets.connect(url, max_size=2**22) for _ in range(PUBLISHERS)]

        async def drain(pub: Any) -> None:  # CHALLENGE and OKs; keepalive pings get answered
            async for _ in pub:
                pass

        drainers = [asyncio.create_task(drain(p)) for p in pubs]
        frames = [b'["EVENT",' + env + b"]" if kith else env for env in self.envelopes]
        t0 = time.perf_counter()
        for i in range(steady):
            delay = t0 + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sent[self.keys[i]] = time.perf_counter()
            await pubs[i % PUBLISHERS].send(frames[i])
        await load.expect("reached", steady, timeout=30)
        self.burst_start = time.perf_counter()
        for i in range(steady, want):
            self.sent[self.keys[i]] = self.burst_start
        if kith:  # as a bulk client (an import, a catching-up phone) sends it: one batch
            http = RawHTTP(port)
            status, _ = await http.post("/v1/events", next(batches(self.envelopes[steady:], BURST)))
            await http.close()
            assert status == 200, status
        else:

            async def burst(j: int) -> None:
                for i in range(steady + j, want, PUBLISHERS):
                    await pubs[j].send(frames[i])

            await asyncio.gather(*(burst(j) for j in range(PUBLISHERS)))
        await load.expect("reached", want, timeout=BURST_DEADLINE)
        for task in drainers:
            task.cancel()
        for p in pubs:
            await p.close()
        load.ask("close")  # before the node stops: it need not close them one by one

    def report(self, notes: list[list[Any]]) -> dict[str, float]:
        """Latencies against the server's notes (``[time, key]`` in fanout order)."""
        assert self.load is not None
        held = [t for t, _ in notes]
        sent = [self.sent.get(k, float("nan")) for _, k in notes]
        out: dict[str, float] = self.load.ask(
            "report", held, sent, RATE * SECONDS, self.burst_start, BURST
        )
        self.load.stop()
        return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def idle_memory(port: int, pid: int, path: str, n: int) -> float:
    """RSS growth per connection with one live subscription that nothing matches."""
    before = rss_kib(pid)
    load = Subscribers(port, path, IDLE_SUB if path == "/v1/stream" else None, n, [])
    if await load.expect("ready", timeout=120) is None:
        raise SystemExit("idle subscribers did not connect")
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    load.stop()
    return (after - before) / n


def measure_kith(n_subs: int, idle: bool) -> tuple[dict[str, float], list[bytes], float | None]:
    server = Server(members=PUBLISHERS, config={"stream_connections_per_ip": 5000})
    envs = presign(server.keys, server.pod, RATE * SECONDS + BURST, scope="public")
    raw = [encode_envelope(e) for e in envs]
    notes_file = server.tmp / "notes.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", KITH, str(server.dir), str(server.port), str(notes_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run = Run(raw, [event_id(e.head) for e in envs])
    per_conn = None
    try:
        wait_up(server.url + "/healthz")
        asyncio.run(run.publish(server.port, True, n_subs))
        if idle:
            per_conn = asyncio.run(idle_memory(server.port, proc.pid, "/v1/stream", 200))
    finally:
        proc.terminate()
        proc.wait(60)
    return run.report(json.loads(notes_file.read_text())), raw, per_conn


def measure_bare(
    n_subs: int, raw: list[bytes], idle: bool
) -> tuple[dict[str, float], float | None]:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="kith-bench-bare-"))
    script, notes_file = tmp / "baseline.py", tmp / "notes.json"
    script.write_text(BASELINE)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port), str(notes_file)],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,  # an overloaded baseline logs every failed write
    )
    run = Run(raw, [str(zlib.crc32(r)) for r in raw])
    per_conn = None
    try:
        time.sleep(1.0)
        asyncio.run(run.publish(port, False, n_subs))
        if idle:
            per_conn = asyncio.run(idle_memory(port, proc.pid, "/sub", 200))
    finally:
        proc.terminate()
        proc.wait(60)
    notes = [[t, str(k)] for t, k in json.loads(notes_file.read_text())]
    return run.report(notes), per_conn


def _seconds(s: float) -> str:
    return f"{s:.2f}s" if s != float("inf") else f"not done in {BURST_DEADLINE}s"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and math.isfinite(a) and math.isfinite(b) else "n/a"


def main() -> None:
    print(
        f"# stream benchmark — {RATE} ev/s for {SECONDS}s from {PUBLISHERS} publishers,"
        f" then a {BURST}-event burst; latency: server holds the event → subscriber receives"
    )
    idle: tuple[float, float] | None = None
    counts = [int(n) for n in os.environ.get("KITH_BENCH_SUBS", "20,1000").split(",")]
    for index, n_subs in enumerate(counts):
        kith, raw, kith_idle = measure_kith(n_subs, idle=index == 0)
        bare, bare_idle = measure_bare(n_subs, raw, idle=index == 0)
        if kith_idle is not None and bare_idle is not None:
            idle = (kith_idle, bare_idle)
        print(
            f"{n_subs:5d} subscribers: kith p50 {kith['p50']:7.1f} ms  p99 {kith['p99']:7.1f} ms"
            f" | bare websockets p50 {bare['p50']:6.1f} ms  p99 {bare['p99']:6.1f} ms"
            f" | ratio p50 {_ratio(kith['p50'], bare['p50'])}"
            f"  p99 {_ratio(kith['p99'], bare['p99'])}"
            + (" (target <= 1.5x)" if n_subs >= 1000 else "")
        )
        print(
            f"      end to end (send → receive): kith p50 {kith['e2e_p50']:.1f} ms"
            f"  p99 {kith['e2e_p99']:.1f} ms (signature checks, durable commit)"
            f" | bare p50 {bare['e2e_p50']:.1f} ms  p99 {bare['e2e_p99']:.1f} ms"
        )
        one, bare_one = BURST / kith["burst_one_s"], BURST / bare["burst_one_s"]
        print(
            f"      burst of {BURST}: to one subscriber {one:7.0f} msg/s (bare {bare_one:7.0f},"
            f" ratio {_ratio(one, bare_one)}); every subscriber done in"
            f" {_seconds(kith['burst_all_s'])} (bare {_seconds(bare['burst_all_s'])},"
            f" ratio {_ratio(kith['burst_all_s'], bare['burst_all_s'])})"
        )
        print(
            f"      missing frames: kith {kith['missing']:.0f} (slow cuts {kith['cut']:.0f}),"
            f" bare {bare['missing']:.0f}"
        )
    if idle is not None:
        print(
            f"memory per idle subscribed connection: kith {idle[0]:.1f} KiB"
            f" (bare {idle[1]:.1f} KiB, ratio {_ratio(*idle)})"
        )


if __name__ == "__main__":
    main()
