"""Real `kith` processes on loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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

    def need(self, title: str, category: str = "food", urgency: str = "normal") -> list[str]:
        return self.post(
            [self.sign("need.posted", {"title": title, "category": category, "urgency": urgency})]
        )


def member(pod: Pod, tmp_path: Path, name: str, role: str = "member") -> SigningKey:
    """A new member key, added to the running pod with the real CLI."""
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
    return read_key_file(key_path).signing_key()


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
