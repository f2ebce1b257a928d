"""Real `kith` processes on loopback ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from node.datadir import DataDir, KeyFile, read_key_file
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, encode_envelope, event_id, sign_event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kith(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `kith` command."""
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kith {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@dataclass
class Pod:
    """One initialised data directory and (maybe) a running `kith serve` on it."""

    dir: Path
    port: int
    proc: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data(self) -> DataDir:
        return DataDir(self.dir)

    def node_key(self) -> KeyFile:
        return read_key_file(self.dir / "node.key")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "serve",
                "--dir",
                str(self.dir),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"kith serve exited: {self.proc.stdout.read() if self.proc.stdout else ''}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("kith serve did not come up")

    def follow_log(self) -> None:
        """Read the running node's stdout/stderr into ``log``, line by line, in a thread (so a
        test can search what the node wrote, and a chatty node never blocks on a full pipe)."""
        assert self.proc is not None and self.proc.stdout is not None
        stream = self.proc.stdout

        def pump() -> None:
            try:
                for line in stream:
                    self.log.append(line)
            except (OSError, ValueError):  # closed by stop()
                pass

        threading.Thread(target=pump, name=f"log-{self.port}", daemon=True).start()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    port = free_port()
    data = tmp_path / "pod"
    kith("init", "--dir", str(data), "--name", "Test Pod", "--port", str(port))
    p = Pod(data, port)
    yield p
    p.stop()


class Poster:
    """Signs consecutive events of one member's log and posts them over real HTTP."""

    def __init__(self, url: str, key: SigningKey, pod_id: str, scope: str = "pod") -> None:
        self.url = url
        self.key = key
        self.pod_id = pod_id
        self.scope = scope
        self.seq = 0
        self.prev: str | None = None

    def sign(self, kind: str, body: dict[str, object], scope: str | None = None) -> Envelope:
        import time as _time

        assert scope is None or scope == self.scope, "one Poster per log"
        self.seq += 1
        env = sign_event(
            self.key,
            pod=self.pod_id,
            scope=self.scope,
            seq=self.seq,
            prev=self.prev,  # type: ignore[arg-type]
            ts=int(_time.time() * 1000),
            kind=kind,
            body=body,
        )
        self.prev = event_id(env.head)
        return env

    def post(self, envs: list[Envelope]) -> list[str]:
        body = b'{"events":[' + b",".join(encode_envelope(e) for e in envs) + b"]}"
        results = httpx.post(self.url + "/v1/events", content=body, timeout=60).json()["results"]
        assert all(r["ok"] for r in results), results
        return [r["id"] for r in results]

    def refused(self, kind: str, body: dict[str, object]) -> dict[str, object]:
        """Sign ``kind`` as the next event, post it, and expect the node to refuse it: its
        result. The log is wound back, so the next event is signed at the same seq."""
        seq, prev = self.seq, self.prev
        env = self.sign(kind, body)
        body_bytes = b'{"events":[' + encode_envelope(env) + b"]}"
        answer = httpx.post(self.url + "/v1/events", content=body_bytes, timeout=60)
        (result,) = answer.json()["results"]
        assert not result["ok"], result
        self.seq, self.prev = seq, prev
        return dict(result)

    def need(self, title: str, category: str = "food", urgency: str = "normal") -> list[str]:
        return self.post(
            [self.sign("need.posted", {"title": title, "category": category, "urgency": urgency})]
        )


def member(pod: Pod, tmp_path: Path, name: str, role: str = "member") -> SigningKey:
    """A new member key, added to the running pod with the real CLI."""
    return read_key_file(member_key_file(pod, tmp_path, name, role)).signing_key()


def member_key_file(pod: Pod, tmp_path: Path, name: str, role: str = "member") -> Path:
    """A new member's key file (``tmp_path / "<name>.key"``), added to the running pod with the
    real CLI."""
    key_path = tmp_path / f"{name}.key"
    kith("key", "new", "--out", str(key_path))
    kith(
        "member",
        "add",
        "--key-file",
        str(key_path),
        "--role",
        role,
        "--dir",
        str(pod.dir),
        "--url",
        pod.url,
    )
    return key_path


def pod_id(pod: Pod) -> str:
    """The pod id in ``pod``'s data directory."""
    return str(json.loads((pod.dir / "config.json").read_text())["pod"])


class TwoPods:
    """Two real pods, A and B, each a direct peer of the other, with people's key files in
    ``root``; both started.

    ``people`` lists ``(who, "a" or "b", role)``: each person has one key file, so a person may
    belong to both pods; ``b_peer`` adds options to B's ``kith peer add`` of A
    (``--credit-limit 30`` …).
    """

    def __init__(
        self,
        root: Path,
        people: Sequence[tuple[str, str, str]],
        *,
        b_peer: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.a = self._init("A")
        self.b = self._init("B")
        fed = "ws://127.0.0.1:{}/v1/federation"
        kith("peer", "add", fed.format(self.b.port), "--pod", pod_id(self.b),
             "--dir", str(self.a.dir))  # fmt: skip
        kith("peer", "add", fed.format(self.a.port), "--pod", pod_id(self.a),
             "--dir", str(self.b.dir), *b_peer)  # fmt: skip
        for who in dict.fromkeys(who for who, _, _ in people):
            kith("key", "new", "--out", str(self.key(who)))
        for who, side, role in people:
            pod = {"a": self.a, "b": self.b}[side]
            kith("member", "add", "--key-file", str(self.key(who)), "--role", role,
                 "--dir", str(pod.dir))  # fmt: skip
        self.a.start()
        self.b.start()

    def _init(self, name: str) -> Pod:
        port = free_port()
        kith("init", "--dir", str(self.root / name), "--name", f"Pod {name}", "--port", str(port))
        return Pod(self.root / name, port)

    def key(self, who: str) -> Path:
        """``who``'s key file."""
        return self.root / f"{who}.key"

    def run(self, who: str, pod: Pod, *args: str, ok: bool = True) -> str:
        """`kith ARGS --key WHO --url POD` — the output a person reads (stdout, or stderr)."""
        proc = kith(*args, "--key", str(self.key(who)), "--url", pod.url, check=False)
        assert (proc.returncode == 0) is ok, (args, proc.stdout, proc.stderr)
        return proc.stdout if ok else proc.stderr

    def stop(self) -> None:
        """Stop both pods' nodes."""
        self.a.stop()
        self.b.stop()


class StalledClient:
    """A websocket client on a plain blocking socket that reads only when told to.

    It stands for a phone on a bad network: the node's frames pile up in the socket
    buffers while it does not read. Built on websockets' sans-I/O ``ClientProtocol`` so no
    library-side flow control hides what the node does.
    """

    def __init__(self, port: int, rcvbuf: int = 4096) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/v1/stream"), max_size=2**24)
        self.proto.send_request(self.proto.connect())
        self._flush()
        self.messages: list[str] = []

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.sock.sendall(chunk)

    def send(self, text: str) -> None:
        self.proto.send_text(text.encode())
        self._flush()

    def recv(self, timeout: float = 20.0) -> str:
        from websockets.frames import Frame, Opcode

        self.sock.settimeout(timeout)
        while not self.messages:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the node")
            self.proto.receive_data(data)
            for ev in self.proto.events_received():
                if isinstance(ev, Frame) and ev.opcode is Opcode.TEXT:
                    self.messages.append(ev.data.decode())
            self._flush()  # pongs
        return self.messages.pop(0)

    def close(self) -> None:
        self.sock.close()


class Relay:
    """A TCP relay on loopback, in its own thread, that records every byte both ways.

    Dial ``port`` instead of the upstream node's port: each connection is forwarded to
    ``upstream_port`` over real sockets. ``raw(direction)`` is every byte that crossed
    (``"up"``: dialler → upstream, ``"down"``: back); ``payloads(direction)`` is the websocket
    payloads of those bytes, unmasked (a websocket client masks what it sends, so a search of
    the raw bytes alone would miss text the dialler sent).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._streams: dict[tuple[int, str], bytearray] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("the relay did not start")
        return self

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    @property
    def connections(self) -> int:
        with self._lock:
            return len({conn for conn, _ in self._streams})

    def raw(self, direction: str) -> bytes:
        with self._lock:
            return b"".join(
                bytes(b) for (_, d), b in sorted(self._streams.items()) if d == direction
            )

    def payloads(self, direction: str) -> bytes:
        with self._lock:
            streams = [bytes(b) for (_, d), b in sorted(self._streams.items()) if d == direction]
        return b"".join(websocket_payloads(s) for s in streams)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopping.wait()
        server.close()
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        with self._lock:
            conn = len({c for c, _ in self._streams})
            up, down = bytearray(), bytearray()
            self._streams[(conn, "up")] = up
            self._streams[(conn, "down")] = down
        await asyncio.gather(self._pipe(reader, up_writer, up), self._pipe(up_reader, writer, down))

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray
    ) -> None:
        try:
            while data := await reader.read(1 << 16):
                with self._lock:
                    record += data
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()


def websocket_payloads(stream: bytes) -> bytes:
    """The payloads of the websocket frames in one direction of one connection, unmasked
    (RFC 6455 §5.2), after the HTTP upgrade; a frame cut off at the end is kept as far as it
    goes."""
    end = stream.find(b"\r\n\r\n")
    if end < 0:
        return b""
    i, out = end + 4, bytearray()
    while len(stream) - i >= 2:
        b1 = stream[i + 1]
        length, head = b1 & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(stream[i + 2 : i + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(stream[i + 2 : i + 10], "big"), 10
        mask = stream[i + head : i + head + 4] if b1 & 0x80 else b""
        head += len(mask)
        payload = stream[i + head : i + head + length]
        if mask and payload:
            key = (mask * (len(payload) // 4 + 1))[: len(payload)]
            n = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
            payload = n.to_bytes(len(payload), "big")
        out += payload
        i += head + length
    return bytes(out)
