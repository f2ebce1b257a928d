"""Many websocket subscribers in one lean process: the stream benchmark's load client.

A Python client that decodes every frame with a websocket library costs more per frame than
the server it measures, and 1,000 subscribers at 100 events/s are 100,000 frames/s: the
client, not the server, would be what gets measured. So this client runs in its own process
(the publisher's process keeps its core for publishing), drives plain non-blocking sockets
from one ``epoll`` loop, and parses nothing but websocket frame headers: per received chunk
it takes one timestamp and counts the ``EVENT`` frames in it. A subscriber's k-th ``EVENT`` is
the k-th event published (one publisher, one subscription, events in commit order), so
counts are enough to compute each event's latency. It answers pings, so servers' keepalive
never cuts a slow run short.

The same client, with the same code path, subscribes to Kith and to the bare baseline.
Timestamps are ``time.perf_counter()`` (``CLOCK_MONOTONIC`` on Linux), one clock for every
process on the machine, so the publisher's send times and these receive times compare.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

# Not more: CPython allocates the whole size per recv() and 256 KiB is past malloc's mmap
# threshold, which costs ~20 µs a call — more than the frame it reads.
_RECV = 1 << 16


def _masked(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (clients must mask, RFC 6455 §5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


@dataclass
class _Sub:
    """One subscriber socket: handshake, frame headers, EVENT counts per received chunk."""

    sock: socket.socket
    sub: bytes | None
    buf: bytes = b""
    upgraded: bool = False
    live: bool = False
    closed: list[bytes] = field(default_factory=list)  # CLOSED frames (a slow cut says why)
    events: int = 0
    times: list[float] = field(default_factory=list)  # when a chunk with EVENTs arrived …
    counts: list[int] = field(default_factory=list)  # … and the EVENT total after it
    eof: bool = False

    def feed(self, data: bytes, now: float) -> None:
        buf = self.buf + data if self.buf else data
        i = 0
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"handshake refused: {buf[:200]!r}")
            self.upgraded = True
            i = end + 4
            if self.sub is not None:
                self.sock.sendall(_masked(0x1, self.sub))
        n = len(buf)
        events = 0
        while n - i >= 2:
            length = buf[i + 1] & 0x7F
            start = i + 2
            if length == 126:
                if n - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                start = i + 4
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                start = i + 10
            end = start + length
            if end > n:
                break
            opcode = buf[i] & 0x0F
            if opcode == 0x1 or opcode == 0x2:
                if buf.startswith(b'["EVENT"', start):
                    events += 1
                elif buf.startswith(b'["LIVE"', start):
                    self.live = True
                elif buf.startswith(b'["CLOSED"', start):
                    self.closed.append(buf[start:end])
            elif opcode == 0x9:
                self.sock.sendall(_masked(0xA, buf[start:end]))
            elif opcode == 0x8:
                self.eof = True
            i = end
        self.buf = buf[i:]
        if events:
            self.events += events
            self.times.append(now)
            self.counts.append(self.events)

    def arrivals(self, first: int, count: int) -> list[float]:
        """Receive times of EVENTs ``first`` .. ``first + count - 1`` (as many as arrived)."""
        out: list[float] = []
        k = first
        for t, total in zip(self.times, self.counts, strict=True):
            while k < total and len(out) < count:
                out.append(t)
                k += 1
            if len(out) == count:
                break
        return out


def _connect(port: int, path: str, sub: bytes | None) -> _Sub:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.setblocking(False)
    return _Sub(sock, sub)


def run(
    ctl: Connection, port: int, path: str, sub: bytes | None, n: int, milestones: list[int]
) -> None:
    """Open ``n`` subscribers, receive, answer the parent (the child process's body).

    To the parent on ``ctl``: ``("ready", n)`` once every subscriber is live (it saw
    ``LIVE``), then ``("reached", m)`` once every subscriber has ``m`` EVENTs, for each
    milestone. From the parent: ``("close",)`` (close the sockets, keep the counts; answered
    ``("closed",)``), ``("report", held, sent, first, burst_start, burst)`` (answered with
    ``_report``'s figures) and ``("stop",)``.
    """
    ep = select.epoll()
    ep.register(ctl.fileno(), select.EPOLLIN)
    subs: dict[int, _Sub] = {}
    while len(subs) < n or not all(s.live for s in subs.values()):
        # Connect in batches of 100: a listen backlog overflow costs a 1 s SYN retry.
        if all(s.live for s in subs.values()):
            for _ in range(min(100, n - len(subs))):
                s = _connect(port, path, sub)
                subs[s.sock.fileno()] = s
                ep.register(s.sock.fileno(), select.EPOLLIN)
        for fd, _ in ep.poll(0.05):
            if fd == ctl.fileno():
                return  # the parent gave up
            s = subs[fd]
            data = s.sock.recv(_RECV)
            if not data:
                raise SystemExit("a subscriber was disconnected while connecting")
            s.feed(data, time.perf_counter())
    ctl.send(("ready", len(subs)))
    every = list(subs.values())
    pending = list(milestones)
    last_check = 0.0
    while True:
        for fd, _ in ep.poll(0.02):
            if fd == ctl.fileno():
                msg = ctl.recv()
                if msg[0] == "stop":
                    return
                if msg[0] == "close":
                    for s in every:
                        ep.unregister(s.sock.fileno())
                        s.sock.close()
                    subs.clear()
                    ctl.send(("closed",))
                elif msg[0] == "report":
                    ctl.send(_report(every, *msg[1:]))
                continue
            s = subs.get(fd)
            if s is None:  # closed earlier in this same batch of poll results
                continue
            try:
                data = s.sock.recv(_RECV)
            except ConnectionError:
                data = b""
            if not data:
                ep.unregister(fd)
                del subs[fd]
                s.eof = True
                continue
            s.feed(data, time.perf_counter())
        now = time.perf_counter()
        if pending and now - last_check > 0.02:
            last_check = now
            low = min(s.events for s in every)
            while pending and low >= pending[0]:
                ctl.send(("reached", pending.pop(0)))


def _percentiles(values: list[float]) -> tuple[float, float]:
    values.sort()
    if not values:
        return float("nan"), float("nan")
    return values[len(values) // 2], values[int(len(values) * 0.99)]


def _report(
    subs: list[_Sub],
    held: list[float],
    sent: list[float],
    first: int,
    burst_start: float,
    burst: int,
) -> dict[str, Any]:
    """Latencies of the first ``first`` events and the burst's completion times.

    ``held[k]``/``sent[k]``: when the server held / the publisher sent the k-th event in the
    order the server fanned them out — the order each subscriber receives them in.
    """
    fanout: list[float] = []
    e2e: list[float] = []
    for s in subs:
        for t, h, t0 in zip(s.arrivals(0, first), held, sent, strict=False):
            fanout.append((t - h) * 1000)
            e2e.append((t - t0) * 1000)
    want = first + burst

    def burst_done(s: _Sub) -> float:
        last = s.arrivals(want - 1, 1)
        return last[0] - burst_start if last else float("inf")

    p50, p99 = _percentiles(fanout)
    e2e_p50, e2e_p99 = _percentiles(e2e)
    return {
        "p50": p50,
        "p99": p99,
        "e2e_p50": e2e_p50,
        "e2e_p99": e2e_p99,
        "burst_one_s": burst_done(subs[0]),  # inf: not every burst event arrived
        "burst_all_s": max(burst_done(s) for s in subs),
        "missing": sum(max(0, want - s.events) for s in subs),
        "cut": sum(len(s.closed) for s in subs),
        "disconnected": sum(1 for s in subs if s.eof),
    }
