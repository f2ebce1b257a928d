"""Federation benchmarks (issue 6): catch-up, delta sync, live propagation.

Real `kith serve` processes on loopback. Every figure is printed beside a baseline measured
in the same run:

1. **Catch-up**: node A holds N public events (default 100,000; ``KITH_BENCH_EVENTS``), node
   B is new; B dials A. Seconds from B's first federation connection until B holds every
   event, against posting the same events to a fresh node (A itself, before it had peers)
   over HTTP in batches of 5,000. Bytes are counted at the socket: each node dials the
   other through a byte-counting TCP proxy on loopback (``WireTap``), which also reads the
   websocket frame headers, so it reports every frame by verb. Bytes on the wire ÷ bytes of
   the missing events (the envelopes that flowed, read from each node's store: events whose
   ``origin`` is the peer). Round trips: frames that wait for the other side — the
   handshake (HELLO ½ + AUTH ½) plus one per WANT → CAUGHT-UP; EVENTS frames are pipelined
   (8 un-ACKed), so a full window is counted separately as a flow-control stall.
2. **Delta**: with N held in common, ``KITH_BENCH_DELTA`` (default 1,000) new events on each
   side, reconnect: resuming from checkpoints (B restarted), and as a first contact (both
   nodes stopped, their ``peer_checkpoints`` rows deleted, so both sides send vectors).
   The target is bytes ∝ the 2,000 missing events, not the N in common.
3. **Live**: three fresh nodes in a line A–B–C; public events posted to A one at a time at
   a steady rate, received over ``/v1/stream`` at C (two federation hops), and at A itself
   (the baseline: no federation) and B.

Wall time on a shared machine moves with other load, so the catch-up also reports each
node's CPU seconds (``/proc/<pid>/stat``) beside the baseline's.

``KITH_BENCH_PROFILE=DIR`` runs ``py-spy record`` on both nodes during the catch-up and
writes their collapsed stacks there (py-spy must be in the venv; it is not a dependency).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import CATEGORIES, ROOT, RawHTTP, batches, cpu_count, free_port, wait_up
from node.datadir import new_key_file, read_key_file
from protocol.crypto import SigningKey
from protocol.envelope import encode_envelope, event_id, sign_event

N = int(os.environ.get("KITH_BENCH_EVENTS", "100000"))
DELTA = int(os.environ.get("KITH_BENCH_DELTA", "1000"))
AUTHORS = 8  # A's member logs (B has 2)
HTTP_BATCH = 5000
RATE = 50  # live events per second
LIVE_SECONDS = 10
#: Bounds on every wait, so a stalled sync fails the run instead of hanging it.
CATCH_UP_TIMEOUT_S = float(os.environ.get("KITH_BENCH_TIMEOUT", "240"))
DELTA_TIMEOUT_S = 60.0
WINDOW = 8  # un-ACKed EVENTS frames a sender may have out (docs/federation.md)


# -- nodes --------------------------------------------------------------------------------


def kith(*args: str, timeout: float = 120) -> str:
    """Run the real `kith` command (bounded: a hung command fails the run)."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "node.cli", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise SystemExit(f"kith {' '.join(args)}: no answer in {timeout:.0f}s") from None
    if out.returncode:
        raise SystemExit(f"kith {' '.join(args)}: {out.stderr}")
    return out.stdout


class Node:
    """A `kith serve` process on a fresh data directory, with members ready to post.

    Like ``bench.common.Server``, but its members are made in-process (``member.added``
    events signed by the node key, loaded with one `kith import`), not one `kith` process
    each: setting up a pod costs two processes, not two per member.
    """

    def __init__(self, name: str, members: int) -> None:
        self.name = name
        self.tmp = Path(tempfile.mkdtemp(prefix="kith-fedbench-"))
        self.dir = self.tmp / "pod"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        kith("init", "--dir", str(self.dir), "--name", f"Bench {name}", "--port", str(self.port))
        self.pod = json.loads((self.dir / "config.json").read_text())["pod"]
        files = [new_key_file() for _ in range(members)]
        self.keys = [f.signing_key() for f in files]
        self.chains = Chains(self.keys, self.pod)
        if files:
            node_key = read_key_file(self.dir / "node.key").signing_key()
            admin = Chains([node_key], self.pod)
            added = [
                admin.sign_one(
                    "member.added", {"key": f.public, "role": "member", "box_key": f.box_public}
                )
                for f in files
            ]
            import_offline(self, added)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.dir / "kith.db"

    def fed_url(self, port: int | None = None) -> str:
        return f"ws://127.0.0.1:{port or self.port}/v1/federation"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "serve", "--dir", str(self.dir)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_up(self.url + "/healthz")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        """One row of a read-only query on the node's database (running or not)."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchone()
        finally:
            conn.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the running node (all its threads) so far."""
        if self.proc is None:
            return 0.0
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def last_cursor(self) -> int:
        return int(self.query("SELECT coalesce(max(cursor), 0) FROM events")[0])

    def holds(self, ids: list[str]) -> bool:
        marks = ",".join("?" * len(ids))
        sql = f"SELECT count(*) FROM events WHERE placement != 1 AND id IN ({marks})"
        return bool(self.query(sql, tuple(ids))[0] == len(ids))

    def received_from(self, other: Node, after: int) -> tuple[int, int]:
        """(events, envelope bytes) this node stored from ``other`` past cursor ``after``."""
        row = self.query(
            "SELECT count(*), coalesce(sum(length(prefix) + coalesce(length(body), 4) + 1), 0)"
            " FROM events WHERE origin = ? AND cursor > ?",
            (other.pod, after),
        )
        return int(row[0]), int(row[1])

    def info(self) -> dict[str, Any]:
        return httpx.get(self.url + "/.well-known/kith", timeout=30).json()  # type: ignore[no-any-return]

    def peer_status(self, other: Node) -> dict[str, Any]:
        for p in self.info()["federation"]["peers"]:
            if p["pod"] == other.pod:
                return p  # type: ignore[no-any-return]
        return {}

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Chains:
    """Signs consecutive public events on each member's log (round robin), on demand."""

    def __init__(self, keys: list[SigningKey], pod: str) -> None:
        self.keys = keys
        self.pod = pod
        self.state: dict[str, tuple[int, str | None]] = {k.public_b64: (0, None) for k in keys}
        self.made = 0

    def sign_one(self, kind: str, body: dict[str, Any], ts: int | None = None) -> bytes:
        """The next event of the next log (round robin)."""
        key = self.keys[self.made % len(self.keys)]
        self.made += 1
        seq, prev = self.state[key.public_b64]
        env = sign_event(
            key,
            pod=self.pod,
            scope="public",
            seq=seq + 1,
            prev=prev,
            ts=ts or int(time.time() * 1000),
            kind=kind,
            body=body,
        )
        self.state[key.public_b64] = (seq + 1, event_id(env.head))
        return encode_envelope(env)

    def sign(self, n: int, title: str = "Need") -> list[bytes]:
        """``n`` realistic public needs (as ``bench.common.presign``'s)."""
        ts = int(time.time() * 1000)
        out = []
        for _ in range(n):
            i = self.made
            body = {
                "title": f"{title} {i}: help with {CATEGORIES[i % 8]}",
                "category": CATEGORIES[i % 8],
                "urgency": ("low", "normal", "high", "urgent")[i % 4],
                "area": "Elm & 5th",
                "minutes_estimate": 30 + i % 90,
            }
            out.append(self.sign_one("need.posted", body, ts))
        return out

    def heads(self) -> list[str]:
        """The id of the last event signed on each log so far."""
        return [prev for _, prev in self.state.values() if prev is not None]


def post_http(node: Node, raw: list[bytes], batch: int = HTTP_BATCH) -> float:
    """Post ``raw`` in batches over HTTP, one request at a time; seconds taken."""
    with httpx.Client(timeout=300) as client:
        t0 = time.perf_counter()
        for body in batches(raw, batch):
            results = client.post(node.url + "/v1/events", content=body).json()["results"]
            assert all(r["ok"] for r in results), results[:3]
        return time.perf_counter() - t0


def import_offline(node: Node, raw: list[bytes]) -> None:
    """`kith import` into a stopped node."""
    path = node.tmp / "import.jsonl"
    path.write_bytes(b"\n".join(raw) + b"\n")
    kith("import", str(path), "--dir", str(node.dir), "--quiet")
    path.unlink()


def peer(node: Node, other: Node, port: int) -> None:
    """``node`` lists ``other`` at ``ws://127.0.0.1:port`` (its own port or a tap's)."""
    kith("peer", "add", other.fed_url(port), "--pod", other.pod, "--dir", str(node.dir))


def both_live(a: Node, b: Node) -> Callable[[], bool]:
    return lambda: (
        a.peer_status(b).get("state") == "live" and b.peer_status(a).get("state") == "live"
    )


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> float:
    """Poll ``check``; the perf_counter time it first held. SystemExit after ``timeout``."""
    deadline = time.perf_counter() + timeout
    while True:
        if check():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# -- the wire tap -------------------------------------------------------------------------


@dataclass
class WireStats:
    """What crossed one tap (or, summed, both) since the last reset, by direction."""

    connections: int = 0
    first_connect: float | None = None  # perf_counter when the first link reached upstream
    first_events: float | None = None  # … and when the first EVENTS frame crossed
    bytes: dict[str, int] = field(default_factory=dict)  # direction → TCP payload bytes
    frames: dict[tuple[str, str], int] = field(default_factory=dict)  # (direction, verb)
    frame_bytes: dict[tuple[str, str], int] = field(default_factory=dict)
    window_full: dict[str, int] = field(default_factory=dict)  # sender direction → stalls

    def add(self, other: WireStats) -> WireStats:
        out = WireStats(self.connections + other.connections)
        starts = [t for t in (self.first_connect, other.first_connect) if t is not None]
        out.first_connect = min(starts) if starts else None
        firsts = [t for t in (self.first_events, other.first_events) if t is not None]
        out.first_events = min(firsts) if firsts else None
        for name in ("bytes", "frames", "frame_bytes", "window_full"):
            merged: dict[Any, int] = dict(getattr(self, name))
            for k, v in getattr(other, name).items():
                merged[k] = merged.get(k, 0) + v
            setattr(out, name, merged)
        return out

    @property
    def total(self) -> int:
        return sum(self.bytes.values())

    def count(self, verb: str, direction: str | None = None) -> int:
        return sum(n for (d, v), n in self.frames.items() if v == verb and direction in (None, d))


def _bump(table: dict[Any, int], key: Any, n: int = 1) -> None:
    table[key] = table.get(key, 0) + n


class _FrameReader:
    """Websocket frame headers of one direction of one connection (RFC 6455 §5.2).

    Only headers and the first bytes of each payload are looked at (the verb of a
    ``["VERB", …]`` frame, unmasked when the client masked it); the rest is skipped.
    """

    PEEK = 32

    def __init__(self, tap: WireTap, direction: str, link: dict[str, int], back: str) -> None:
        self.tap = tap
        self.direction = direction
        self.back = back  # the other direction's name (whose EVENTS our ACKs acknowledge)
        self.link = link  # un-ACKed EVENTS frames per sender direction, this connection
        self.buf = b""
        self.http = True  # the upgrade request or response comes first
        self.skip = 0

    def feed(self, data: bytes) -> None:
        if self.skip:
            n = min(self.skip, len(data))
            self.skip -= n
            data = data[n:]
        buf = self.buf + data if self.buf else data
        i = 0
        if self.http:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.http = False
            _bump(self.tap.stats.frame_bytes, (self.direction, "http-upgrade"), end + 4)
            i = end + 4
        while len(buf) - i >= 2:
            b0, b1 = buf[i], buf[i + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                head = 4
                if len(buf) - i < head:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
            elif length == 127:
                head = 10
                if len(buf) - i < head:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
            mask = b""
            if b1 & 0x80:
                head += 4
            peek = min(length, self.PEEK)
            if len(buf) - i < head + peek:
                break
            if b1 & 0x80:
                mask = buf[i + head - 4 : i + head]
            payload = buf[i + head : i + head + peek]
            if mask:
                payload = bytes(c ^ mask[j % 4] for j, c in enumerate(payload))
            self._frame(b0 & 0x0F, head + length, payload)
            available = len(buf) - i - head
            if available >= length:
                i += head + length
            else:
                self.skip = length - available
                i = len(buf)
                break
        self.buf = buf[i:]

    def _frame(self, opcode: int, size: int, payload: bytes) -> None:
        verb = {0x0: "continuation", 0x8: "close", 0x9: "ping", 0xA: "pong"}.get(opcode, "")
        if opcode in (0x1, 0x2):
            end = payload.find(b'"', 2)
            verb = payload[2:end].decode(errors="replace") if payload[:2] == b'["' else "?"
            if verb == "WANT":
                verb = "WANT vector" if b'"after":null' in payload else "WANT after"
            elif verb == "EVENTS":
                if self.tap.stats.first_events is None:
                    self.tap.stats.first_events = time.perf_counter()
                self.link[self.direction] = self.link.get(self.direction, 0) + 1
                if self.link[self.direction] >= WINDOW:
                    _bump(self.tap.stats.window_full, self.direction)
            elif verb == "ACK":
                self.link[self.back] = max(0, self.link.get(self.back, 0) - 1)
        stats = self.tap.stats
        _bump(stats.frames, (self.direction, verb))
        _bump(stats.frame_bytes, (self.direction, verb), size)


class WireTap:
    """A TCP proxy on loopback, in its own thread, that counts what crosses it.

    ``client`` dials the tap's port; the tap connects to ``server``'s port. Connections
    whose upstream refuses (the server is down) are dropped and not counted.
    """

    def __init__(self, client: str, server: str, upstream_port: int) -> None:
        self.up = f"{client}→{server}"
        self.down = f"{server}→{client}"
        self.upstream_port = upstream_port
        self.port = free_port()
        self.stats = WireStats()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tap-{server}", daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping: asyncio.Event | None = None

    def start(self) -> WireTap:
        self._thread.start()
        if not self._ready.wait(10):
            raise SystemExit("the wire tap did not start")
        return self

    def reset(self) -> None:
        self.stats = WireStats()

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for w in list(self._writers):
            w.close()
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), 5
            )
        except (OSError, TimeoutError):
            writer.close()
            return
        stats = self.stats
        stats.connections += 1
        if stats.first_connect is None:
            stats.first_connect = time.perf_counter()
        link: dict[str, int] = {}
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer, _FrameReader(self, self.up, link, self.down)),
            self._pipe(up_reader, writer, _FrameReader(self, self.down, link, self.up)),
        )
        self._writers -= {writer, up_writer}

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: _FrameReader
    ) -> None:
        try:
            while data := await reader.read(1 << 16):
                _bump(self.stats.bytes, frames.direction, len(data))
                frames.feed(data)
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()


class Profiler:
    """py-spy profiles of running nodes (``KITH_BENCH_PROFILE=DIR``; else does nothing)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.out = os.environ.get("KITH_BENCH_PROFILE")
        self.spy = Path(sys.executable).parent / "py-spy"
        self.procs: list[subprocess.Popen[bytes]] = []

    def attach(self, nodes: list[Node]) -> None:
        if not self.out or not self.spy.exists():
            return
        Path(self.out).mkdir(parents=True, exist_ok=True)
        for node in nodes:
            assert node.proc is not None
            # Collapsed stacks ("raw"): text to grep, or to feed flamegraph.pl / speedscope.
            target = Path(self.out) / f"{self.label}-{node.name}.txt"
            command = [str(self.spy), "record", "-p", str(node.proc.pid), "-r", "100"]
            self.procs.append(
                subprocess.Popen(
                    [*command, "-f", "raw", "-o", str(target)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def finish(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.procs:
            print(f"      (py-spy profiles in {self.out}/{self.label}-*.txt)", flush=True)
        self.procs = []


# -- 1 and 2: catch-up --------------------------------------------------------------------


@dataclass
class Sync:
    """One measured catch-up between A and B."""

    label: str
    seconds: float
    missing_events: int
    missing_bytes: int
    wire: WireStats
    status_bytes: int  # B's federation status bytes_in + bytes_out for A
    to_b: int  # events B received
    cpu: dict[str, float]  # CPU seconds each node spent from the link's start to done

    @property
    def ratio(self) -> float:
        return self.wire.total / self.missing_bytes if self.missing_bytes else float("nan")

    def round_trips(self) -> str:
        """Frames that wait for the other side: handshake 1, +1 per WANT, worst direction."""
        wants = {
            d: sum(n for (dd, v), n in self.wire.frames.items() if dd == d and "WANT" in v)
            for d in self.wire.bytes
        }
        worst = max(wants.values(), default=0)
        links = self.wire.connections
        extra = f", {links} connections" if links != 1 else ""
        return f"{1 + worst} (handshake + {worst} WANT{extra})"

    def stalls(self) -> int:
        return sum(self.wire.window_full.values())


def measure_sync(
    label: str,
    a: Node,
    b: Node,
    taps: list[WireTap],
    start: Callable[[], None],
    a_wants: list[str],
    b_wants: list[str],
    timeout: float,
    profiler: Profiler | None = None,
) -> Sync:
    """Reset the taps, ``start`` the link, wait until each side holds the other's
    ``*_wants`` ids and both report live; what it cost."""
    a_mark, b_mark = a.last_cursor(), b.last_cursor()
    for tap in taps:
        tap.reset()
    start()
    cpu = {n.name: n.cpu_seconds() for n in (a, b)}
    if profiler is not None:
        profiler.attach([a, b])
    try:
        done = wait_until(lambda: b.holds(a_wants) and a.holds(b_wants), timeout, label)
    finally:
        if profiler is not None:
            profiler.finish()
    cpu = {n.name: n.cpu_seconds() - cpu[n.name] for n in (a, b)}
    wait_until(both_live(a, b), 30, f"{label}: both sides live", every=0.1)
    time.sleep(0.3)  # the last ACKs
    wire = taps[0].stats.add(taps[1].stats)
    if wire.first_connect is None:
        raise SystemExit(f"{label}: no connection went through the taps")
    n_b, bytes_b = b.received_from(a, b_mark)
    n_a, bytes_a = a.received_from(b, a_mark)
    status = b.peer_status(a)
    return Sync(
        label,
        done - wire.first_connect,
        n_a + n_b,
        bytes_a + bytes_b,
        wire,
        int(status["bytes_in"]) + int(status["bytes_out"]),
        n_b,
        cpu,
    )


def delete_checkpoints(node: Node) -> int:
    conn = sqlite3.connect(node.db, timeout=10)
    try:
        with conn:
            return conn.execute("DELETE FROM peer_checkpoints").rowcount
    finally:
        conn.close()


def catch_up(nodes: list[Node], taps: list[WireTap]) -> dict[str, Any]:
    t_setup = time.perf_counter()
    a = Node("A", AUTHORS)
    nodes.append(a)
    b = Node("B", 2)
    nodes.append(b)
    tap_a = WireTap("B", "A", a.port).start()  # B dials A through it
    taps.append(tap_a)
    tap_b = WireTap("A", "B", b.port).start()  # A dials B through it
    taps.append(tap_b)
    a.start()
    t0 = time.perf_counter()
    raw = a.chains.sign(N)
    signing = time.perf_counter() - t0
    print(
        f"      (setup {t0 - t_setup:.0f}s; signed {N} events in {signing:.1f}s,"
        f" {sum(map(len, raw)) / len(raw):.0f} bytes each, {AUTHORS} logs)",
        flush=True,
    )
    cpu = a.cpu_seconds()
    baseline = post_http(a, raw)
    baseline_cpu = a.cpu_seconds() - cpu
    del raw
    print(f"      baseline: {N} events posted to fresh A over HTTP in {baseline:.1f}s", flush=True)

    # Both list each other through the taps; B (stopped) dials A as soon as it starts.
    peer(b, a, tap_a.port)
    peer(a, b, tap_b.port)
    wait_until(lambda: bool(a.peer_status(b)), 10, "A to list B", every=0.2)
    full = measure_sync(
        "catch-up",
        a,
        b,
        [tap_a, tap_b],
        b.start,
        a.chains.heads(),
        [],
        CATCH_UP_TIMEOUT_S,
        Profiler("catch-up"),
    )
    print(f"      catch-up: {full.to_b} events at B in {full.seconds:.1f}s", flush=True)

    # 2a: B offline while each side gets DELTA new events; B restarts from its checkpoint.
    b.stop()
    post_http(a, a.chains.sign(DELTA, "Delta"))
    import_offline(b, b.chains.sign(DELTA, "Delta"))
    resumed = measure_sync(
        "resume", a, b, [tap_a, tap_b], b.start, a.chains.heads(), b.chains.heads(), DELTA_TIMEOUT_S
    )
    print(f"      resume from checkpoints: {resumed.seconds:.2f}s", flush=True)

    # 2b: the same as a first contact: no checkpoints on either side, so vectors.
    b.stop()
    a.stop()
    deleted = delete_checkpoints(a) + delete_checkpoints(b)
    assert deleted == 2, f"expected one checkpoint on each side, deleted {deleted}"
    import_offline(a, a.chains.sign(DELTA, "Vector"))
    import_offline(b, b.chains.sign(DELTA, "Vector"))

    def restart() -> None:
        a.start()
        b.start()

    vector = measure_sync(
        "vector", a, b, [tap_a, tap_b], restart, a.chains.heads(), b.chains.heads(), 90
    )
    print(f"      first contact (vectors): {vector.seconds:.2f}s", flush=True)
    for node in (a, b):
        node.remove()
    return {"baseline": baseline, "baseline_cpu": baseline_cpu, "syncs": [full, resumed, vector]}


# -- 3: live propagation -----------------------------------------------------------------


SUB = b'["SUB","s",{"filters":[{"kinds":["need.*"]}],"after":null}]'


def _title(envelope: dict[str, Any]) -> str:
    body = envelope["body"]
    return str((json.loads(body) if isinstance(body, str) else body)["title"])


async def _listen(port: int, got: dict[str, float], ready: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/stream", max_size=2**22) as ws:
        await ws.send(SUB)
        async for msg in ws:
            frame = json.loads(msg)
            if frame[0] == "LIVE":
                ready.set()
            elif frame[0] == "EVENT":
                got[_title(frame[2])] = time.perf_counter()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _live_run(line: list[Node], raw: list[tuple[str, bytes]]) -> dict[str, list[float]]:
    received: dict[str, dict[str, float]] = {n.name: {} for n in line}
    readies = {n.name: asyncio.Event() for n in line}
    listeners = [
        asyncio.create_task(_listen(n.port, received[n.name], readies[n.name])) for n in line
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies.values())), 30)
        poster = RawHTTP(line[0].port)
        sent: dict[str, float] = {}
        t0 = time.perf_counter()
        for i, (title, env) in enumerate(raw):
            delay = t0 + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[title] = time.perf_counter()
            status, data = await poster.post("/v1/events", b'{"events":[' + env + b"]}")
            assert status == 200 and b'"ok":true' in data, data[:200]
        await poster.close()
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and len(received[line[-1].name]) < len(raw):
            await asyncio.sleep(0.05)
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    return {
        name: [(got[t] - sent[t]) * 1000 for t in sent if t in got]
        for name, got in received.items()
    }


def live(nodes: list[Node]) -> dict[str, list[float]]:
    line = [Node(name, members) for name, members in (("A", 1), ("B", 0), ("C", 0))]
    nodes.extend(line)
    for node in line:
        node.start()
    for left, right in itertools.pairwise(line):
        peer(left, right, right.port)
        peer(right, left, left.port)
    for left, right in itertools.pairwise(line):
        wait_until(both_live(left, right), 60, f"{left.name}–{right.name} live", every=0.2)
    count = RATE * LIVE_SECONDS
    envs = line[0].chains.sign(count, "Live")
    titles = [_title(json.loads(e)) for e in envs]
    latencies = asyncio.run(_live_run(line, list(zip(titles, envs, strict=True))))
    for node in line:
        node.remove()
    return latencies


# -- report -------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _ms(values: list[float]) -> str:
    return f"p50 {_percentile(values, 0.5):6.1f} ms  p99 {_percentile(values, 0.99):6.1f} ms"


def report(result: dict[str, Any], latencies: dict[str, list[float]]) -> None:
    baseline: float = result["baseline"]
    full, resumed, vector = result["syncs"]
    print()
    print(
        f"{'':38} {'seconds':>8} {'ev/s':>6} {'events':>7} {'missing':>10} {'on wire':>10}"
        f" {'wire/missing':>12}  round trips"
    )
    rows = (
        (full, f"catch-up of {N}, A → new B"),
        (resumed, f"{DELTA}+{DELTA} missing, from checkpoints"),
        (vector, f"{DELTA}+{DELTA} missing, first contact"),
    )
    for sync, name in rows:
        print(
            f"{name:38} {sync.seconds:8.2f} {sync.missing_events / sync.seconds:6.0f}"
            f" {sync.missing_events:7d} {_mib(sync.missing_bytes):>10} {_mib(sync.wire.total):>10}"
            f" {sync.ratio:12.3f}  {sync.round_trips()}"
        )
        if sync is full:
            print(
                f"{'  baseline: HTTP POST, batches of ' + str(HTTP_BATCH):38} {baseline:8.2f}"
                f" {N / baseline:6.0f} {N:7d}   → catch-up ÷ baseline"
                f" {full.seconds / baseline:.2f}x"
            )
    base_cpu: float = result["baseline_cpu"]
    print(
        f"CPU seconds (less skewed by other load than wall time): catch-up B {full.cpu['B']:.1f}"
        f" + A {full.cpu['A']:.1f} | baseline (A ingesting the HTTP posts) {base_cpu:.1f} |"
        f" ratio B ÷ baseline {full.cpu['B'] / base_cpu:.2f}x"
    )
    print(
        f"targets: wire/missing <= 1.1 for the catch-up; the delta rows cost ∝ the {2 * DELTA}"
        f" missing events, not the {N} in common; <= 3 round trips"
    )
    print(
        "round trips: frames that wait for the other side, as the taps saw them — HELLO ½ +"
        " AUTH ½, then one per WANT → CAUGHT-UP in the slower direction (EVENTS are pipelined)"
    )
    print()
    first = full.wire.first_events
    handshake = (first - full.wire.first_connect) * 1000 if first and full.wire.first_connect else 0
    print(
        f"catch-up detail: first EVENTS frame {handshake:.0f} ms after B connected;"
        f" {full.stalls()} of {full.wire.count('EVENTS')} EVENTS frames filled the sender's"
        f" {WINDOW}-frame window (it then waits for B's ACKs: B's ingest sets the pace);"
        f" B's own status counted {_mib(full.status_bytes)} (message payloads)"
    )
    for sync in (full, vector):
        parts = sorted(sync.wire.frame_bytes.items(), key=lambda kv: -kv[1])
        print(
            f"  {sync.label} bytes by frame: "
            + ", ".join(
                f"{d} {v} ×{sync.wire.frames.get((d, v), 1)} {_mib(n)}" for (d, v), n in parts[:7]
            )
        )
    print()
    a, b, c = latencies["A"], latencies["B"], latencies["C"]
    sent = RATE * LIVE_SECONDS
    print(f"live: {sent} public events POSTed to A at {RATE}/s, one per request; received at")
    print(f"  C's /v1/stream (A→B→C, 2 hops)  {_ms(c)}   ({len(c)}/{sent} arrived)")
    print(f"  B's /v1/stream (A→B, 1 hop)     {_ms(b)}   ({len(b)}/{sent})")
    print(f"  A's /v1/stream (baseline)       {_ms(a)}   ({len(a)}/{sent})")
    print(
        f"  ratio C ÷ A: p50 {_percentile(c, 0.5) / _percentile(a, 0.5):.1f}x,"
        f" p99 {_percentile(c, 0.99) / _percentile(a, 0.99):.1f}x"
    )


def main() -> None:
    print(
        f"# federation benchmark — catch-up of {N} events, {DELTA} missing on each side,"
        f" live A→B→C at {RATE} ev/s"
    )
    nodes: list[Node] = []
    taps: list[WireTap] = []
    t0 = time.perf_counter()
    load = os.getloadavg()
    try:
        result = catch_up(nodes, taps)
        latencies = live(nodes)
    finally:
        for node in nodes:
            with contextlib.suppress(Exception):
                node.remove()
        for tap in taps:
            tap.stop()
    report(result, latencies)
    print(
        f"(federation benchmark took {time.perf_counter() - t0:.0f}s; load average"
        f" {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {cpu_count()}"
        " CPUs: other processes on the machine skew absolute figures, less the ratios)"
    )


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
