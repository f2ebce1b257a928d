"""Shared pieces of the benchmarks: real `kith` processes and pre-signed event streams."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from node.datadir import read_key_file
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, encode_envelope, event_id, sign_event

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kith(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"kith {' '.join(args)}: {out.stderr}")
    return out.stdout


class Server:
    """A `kith serve` process on a fresh data directory with members ready to post."""

    def __init__(self, members: int = 8, config: dict[str, object] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="kith-bench-"))
        self.dir = self.tmp / "pod"
        self.port = free_port()
        kith("init", "--dir", str(self.dir), "--name", "Bench", "--port", str(self.port))
        if config:
            data = json.loads((self.dir / "config.json").read_text())
            data.update(config)
            (self.dir / "config.json").write_text(json.dumps(data))
        self.keys: list[SigningKey] = []
        for i in range(members):
            path = self.tmp / f"m{i}.key"
            kith("key", "new", "--out", str(path))
            kith("member", "add", "--key-file", str(path), "--dir", str(self.dir))
            self.keys.append(read_key_file(path).signing_key())
        self.pod = json.loads((self.dir / "config.json").read_text())["pod"]
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

    def rss_peak_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def rss_now_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


CATEGORIES = ("food", "groceries", "ride", "repair", "childcare", "goods", "health", "other")


def presign(
    keys: list[SigningKey], pod: str, n: int, *, scope: str = "pod", start_ts: int | None = None
) -> list[Envelope]:
    """``n`` realistic events spread over the members' logs, each log chained."""
    ts = start_ts or int(time.time() * 1000)
    state: dict[str, tuple[int, str | None]] = {k.public_b64: (0, None) for k in keys}
    out = []
    for i in range(n):
        key = keys[i % len(keys)]
        seq, prev = state[key.public_b64]
        if i % 3 == 0:
            kind, body = (
                "offer.posted",
                {"title": f"Offer {i}", "category": CATEGORIES[i % 8], "capacity": 1 + i % 4},
            )
        else:
            kind, body = (
                "need.posted",
                {
                    "title": f"Need {i}: help with {CATEGORIES[i % 8]}",
                    "category": CATEGORIES[i % 8],
                    "urgency": ("low", "normal", "high", "urgent")[i % 4],
                    "area": "Elm & 5th",
                    "minutes_estimate": 30 + i % 90,
                },
            )
        env = sign_event(
            key, pod=pod, scope=scope, seq=seq + 1, prev=prev, ts=ts, kind=kind, body=body
        )  # type: ignore[arg-type]
        state[key.public_b64] = (seq + 1, event_id(env.head))
        out.append(env)
    return out


def batches(raw: list[bytes], size: int) -> Iterator[bytes]:
    for i in range(0, len(raw), size):
        yield b'{"events":[' + b",".join(raw[i : i + size]) + b"]}"


def encoded(envs: list[Envelope]) -> list[bytes]:
    return [encode_envelope(e) for e in envs]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


class RawHTTP:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams: a load generator light enough
    that the server, not the client, is what gets measured (httpx costs ~1 ms a request)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await self.reader.readexactly(length)
        return int(status_line.split()[1]), data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()
