"""Stream benchmarks (issue 5): fanout latency, burst throughput, memory per connection.

Kith is measured beside a bare `websockets` broadcast server doing the same fanout with no
storage, in the same run, with the same light client. The publisher sends each event over a
websocket (Kith: ``["EVENT", envelope]``, which is validated, committed, then fanned out;
baseline: the server just broadcasts it); latency is publisher send → subscriber receive,
on one clock.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Server, encoded, free_port, presign

RATE = 100  # events per second
SECONDS = 5
BURST = 2000

BASELINE = """
import asyncio, sys, websockets
subs = set()
async def handler(ws):
    if ws.request.path == "/pub":
        n = 0
        async for msg in ws:
            n += 1
            msg = msg if isinstance(msg, str) else msg.decode()
            websockets.broadcast(subs, '["EVENT","s",' + msg + "," + str(n) + "]")
    else:
        subs.add(ws)
        try:
            await ws.wait_closed()
        finally:
            subs.discard(ws)
async def main():
    async with websockets.serve(handler, "127.0.0.1", int(sys.argv[1]), max_size=2**22):
        await asyncio.Future()
asyncio.run(main())
"""


class Subscriber(asyncio.Protocol):
    """A minimal websocket client: handshake, one SUB, then only timestamps EVENT frames."""

    def __init__(self, path: str, sub: bytes | None) -> None:
        self.path = path
        self.sub = sub
        self.buf = b""
        self.open = False
        self.ready = asyncio.get_running_loop().create_future()
        self.arrivals: list[float] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def send_text(self, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x81]) + (
            bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None
        self.transport.write(head + mask + masked)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.open = True
            self.buf = self.buf[end + 4 :]
            if self.sub is not None:
                self.send_text(self.sub)
            else:
                self.ready.set_result(None)
        while len(self.buf) >= 2:
            n = self.buf[1] & 0x7F
            start = 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, start = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, start = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < start + n:
                return
            payload = self.buf[start : start + n]
            self.buf = self.buf[start + n :]
            if payload.startswith(b'["EVENT"'):
                self.arrivals.append(now)
            elif payload.startswith(b'["LIVE"') and not self.ready.done():
                self.ready.set_result(None)


async def run(port: int, kith: bool, n_subs: int, envelopes: list[bytes]) -> dict[str, float]:
    import websockets

    loop = asyncio.get_running_loop()
    sub_frame = (
        b'["SUB","s",{"filters":[{"kinds":["offer.*","need.*"]}],"after":null}]' if kith else None
    )
    path = "/v1/stream" if kith else "/sub"
    subs: list[Subscriber] = []
    for start in range(0, n_subs, 100):
        batch = []
        for _ in range(min(100, n_subs - start)):
            _, proto = await loop.create_connection(
                lambda: Subscriber(path, sub_frame), "127.0.0.1", port
            )
            batch.append(proto)
        await asyncio.wait_for(asyncio.gather(*(p.ready for p in batch)), 60)
        subs += batch
    print(f"      ({n_subs} subscribers connected and live)", flush=True)
    # Publish at RATE, one event at a time; then a burst.
    steady = envelopes[: RATE * SECONDS]
    burst = envelopes[RATE * SECONDS : RATE * SECONDS + BURST]
    sent: list[float] = []
    pub_path = "/v1/stream" if kith else "/pub"
    async with websockets.connect(f"ws://127.0.0.1:{port}{pub_path}", max_size=2**22) as pub:

        async def drain() -> None:  # read the CHALLENGE and OKs, or keepalive pings go unanswered
            async for _ in pub:
                pass

        drainer = asyncio.create_task(drain())
        t0 = time.perf_counter()
        for i, env in enumerate(steady):
            delay = t0 + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent.append(time.perf_counter())
            await pub.send(b'["EVENT",' + env + b"]" if kith else env)
        deadline = time.perf_counter() + 30
        while min(len(s.arrivals) for s in subs) < len(steady) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        burst_start = time.perf_counter()
        for env in burst:
            await pub.send(b'["EVENT",' + env + b"]" if kith else env)
        want = len(steady) + len(burst)
        deadline = time.perf_counter() + 120
        while len(subs[0].arrivals) < want and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        burst_one = (
            (subs[0].arrivals[-1] - burst_start) if len(subs[0].arrivals) >= want else float("nan")
        )
        while min(len(s.arrivals) for s in subs) < want and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        burst_all = time.perf_counter() - burst_start
        drainer.cancel()
    lat = sorted(
        (s.arrivals[i] - sent[i]) * 1000
        for s in subs
        for i in range(min(len(sent), len(s.arrivals)))
    )
    for s in subs:
        assert s.transport is not None
        s.transport.close()
    missing = sum(max(0, want - len(s.arrivals)) for s in subs)
    return {
        "p50": lat[len(lat) // 2] if lat else float("nan"),
        "p99": lat[int(len(lat) * 0.99)] if lat else float("nan"),
        "burst_msgs_per_s_one": BURST / burst_one,
        "burst_all_s": burst_all,
        "missing": missing,
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def idle_memory(port: int, pid: int, n: int) -> float:
    loop = asyncio.get_running_loop()
    before = rss_kib(pid)
    subs = []
    for _ in range(n):
        _, proto = await loop.create_connection(
            # a live subscription with nothing to backfill: what an idle board costs
            lambda: Subscriber("/v1/stream", b'["SUB","s",{"filters":[{"kinds":["report.*"]}]}]'),
            "127.0.0.1",
            port,
        )
        subs.append(proto)
    await asyncio.wait_for(asyncio.gather(*(p.ready for p in subs)), 120)
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    for s in subs:
        assert s.transport is not None
        s.transport.close()
    return (after - before) / n


def main() -> None:
    print(f"# stream benchmark — {RATE} ev/s for {SECONDS}s, then a {BURST}-event burst")
    for n_subs in [int(n) for n in os.environ.get("KITH_BENCH_SUBS", "20,1000").split(",")]:
        server = Server(members=1, config={"stream_connections_per_ip": 5000})
        envs = encoded(presign(server.keys, server.pod, RATE * SECONDS + BURST, scope="public"))
        server.start()
        assert server.proc is not None
        kith = asyncio.run(run(server.port, True, n_subs, envs))
        per_conn = asyncio.run(idle_memory(server.port, server.proc.pid, 200))
        server.stop()
        port = free_port()
        script = Path(tempfile.mkdtemp()) / "baseline.py"
        script.write_text(BASELINE)
        base = subprocess.Popen([sys.executable, str(script), str(port)], cwd=ROOT)
        try:
            time.sleep(1.0)
            bare = asyncio.run(run(port, False, n_subs, envs))
        finally:
            base.terminate()
            base.wait()
        print(
            f"{n_subs:5d} subscribers: kith p50 {kith['p50']:7.1f} ms  p99 {kith['p99']:7.1f} ms"
            f" | bare websockets p50 {bare['p50']:6.1f} ms  p99 {bare['p99']:6.1f} ms"
            f" | p99 ratio {kith['p99'] / bare['p99']:.2f} (target <= 1.5 at 1000);"
            f" missing frames: {kith['missing']:.0f}"
        )
        print(
            f"      burst of {BURST}: one subscriber {kith['burst_msgs_per_s_one']:7.0f} msg/s"
            f" (bare {bare['burst_msgs_per_s_one']:7.0f}); all subscribers done in"
            f" {kith['burst_all_s']:.1f}s (bare {bare['burst_all_s']:.1f}s)"
        )
    print(f"memory per idle subscribed connection: {per_conn:.1f} KiB")


if __name__ == "__main__":
    main()
