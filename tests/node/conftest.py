"""Fixtures and builders for node tests: real keys, real signed events, a real store.

A ``PodBuilder`` holds a pod's root and node keys and signs events as the next entry of
each log it writes (seq, prev and ts tracked per ``(pod, author, scope)``), so a test can
say *what* happens — "Ada posts a need", "the node adds Ada" — and get exact wire envelopes.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from node import projections
from node.datadir import DataDir
from node.ingest import Ingestor
from node.store.sqlite import SQLiteStore
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, Scope, parse_event, sign_event
from protocol.logs import LogKey

#: The fixed "now" of the fake clock, in seconds (the ingestor's clock unit) and in ms.
NOW_S = 1_700_000_000.0
NOW_MS = int(NOW_S * 1000)


def signing_key(name: str) -> SigningKey:
    """A deterministic Ed25519 key named for readability."""
    return SigningKey.from_seed(hashlib.sha256(f"kith-test:{name}".encode()).digest())


def box_key(name: str) -> str:
    """A valid-looking X25519 public key (base64url of 32 bytes)."""
    return signing_key(f"box:{name}").public_b64


def event_id(env: Envelope) -> str:
    """The id of a signed envelope."""
    return parse_event(env).id


class FakeClock:
    """A clock callable (seconds) that tests move by hand."""

    def __init__(self, now_s: float = NOW_S) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance_ms(self, ms: int) -> None:
        """Move the clock forward."""
        self.now_s += ms / 1000


@dataclass
class _LogPos:
    seq: int = 0
    prev: str | None = None
    ts: int = 0


@dataclass
class PodBuilder:
    """Signs the events of one pod, tracking every log it writes.

    ``genesis()`` is ``pod.created`` + ``node.key`` by the root (pod id = root public key);
    ``add()`` is ``member.added`` by the node key.
    """

    name: str = "elm"
    ts: int = NOW_MS
    root: SigningKey = field(init=False)
    node: SigningKey = field(init=False)
    logs: dict[LogKey, _LogPos] = field(default_factory=dict)
    #: Ids of events a fixture or test wants to find again, by a name it chooses.
    named: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = signing_key(f"{self.name}:root")
        self.node = signing_key(f"{self.name}:node")

    @property
    def id(self) -> str:
        """The pod id: the genesis root public key."""
        return self.root.public_b64

    def key(self, person: str) -> SigningKey:
        """A member's key in this pod."""
        return signing_key(f"{self.name}:{person}")

    def sign(
        self,
        key: SigningKey,
        kind: str,
        body: Any = None,
        *,
        scope: Scope = "pod",
        pod: str | None = None,
        seq: int | None = None,
        prev: str | bool | None = True,
        ts: int | None = None,
        advance: bool = True,
    ) -> Envelope:
        """Sign ``kind`` as the next event of ``key``'s log (override seq/prev/ts to misbehave).

        ``prev=True`` means "the right prev"; ``advance=False`` leaves the log position alone
        (to sign a second event for the same place: a fork).
        """
        pod = pod or self.id
        log = LogKey(pod, key.public_b64, scope)
        pos = self.logs.setdefault(log, _LogPos())
        self.ts += 1
        the_seq = pos.seq + 1 if seq is None else seq
        the_prev = pos.prev if prev is True else (prev or None)
        the_ts = max(self.ts, pos.ts) if ts is None else ts
        if isinstance(body, msgspec.Struct):
            body = msgspec.to_builtins(body)
        env = sign_event(
            key,
            pod=pod,
            scope=scope,
            seq=the_seq,
            prev=the_prev,
            ts=the_ts,
            kind=kind,
            body=body,
        )
        if advance:
            self.logs[log] = _LogPos(the_seq, event_id(env), the_ts)
        return env

    def genesis(self) -> list[Envelope]:
        """``pod.created`` and ``node.key``, both signed by the root, public scope."""
        return [
            self.sign(self.root, "pod.created", {"name": self.name}, scope="public"),
            self.sign(self.root, "node.key", {"key": self.node.public_b64}, scope="public"),
        ]

    def add(
        self,
        person: str | SigningKey,
        role: str = "member",
        *,
        by: SigningKey | None = None,
        advance: bool = True,
    ) -> Envelope:
        """``member.added`` for ``person`` signed by the node key (or ``by``)."""
        key = self.key(person) if isinstance(person, str) else person
        body = {"key": key.public_b64, "role": role, "box_key": box_key(key.public_b64)}
        return self.sign(by or self.node, "member.added", body, scope="public", advance=advance)

    def need(
        self, key: SigningKey, title: str = "Soup", *, advance: bool = True, **extra: Any
    ) -> Envelope:
        """A ``need.posted`` in pod scope (``extra`` adds body fields)."""
        body = {"title": title, "category": "food", "urgency": "normal", **extra}
        return self.sign(key, "need.posted", body, advance=advance)

    def redact(self, key: SigningKey, target: str, *, scope: Scope = "pod") -> Envelope:
        """An ``event.redacted`` of ``target``."""
        return self.sign(key, "event.redacted", {"target": target}, scope=scope)


@pytest.fixture
def clock() -> FakeClock:
    """The ingestor's clock."""
    return FakeClock()


@pytest.fixture
def pod() -> PodBuilder:
    """A pod with its root and node keys (nothing ingested yet)."""
    return PodBuilder()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A real SQLite store with the projection tables."""
    s = SQLiteStore(tmp_path / "kith.db", extra_schema=projections.SCHEMA)
    await s.open()
    yield s
    await s.close()


MakeIngestor = Callable[..., Any]


@pytest.fixture
async def make_ingestor(
    store: SQLiteStore, pod: PodBuilder, clock: FakeClock
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_ingestor(**kwargs)``: a started ingestor on ``store`` (stopped at the end)."""
    started: list[Ingestor] = []

    async def make(**kwargs: Any) -> Ingestor:
        kwargs.setdefault("home_pod", pod.id)
        kwargs.setdefault("clock", clock)
        ing = Ingestor(kwargs.pop("store", store), **kwargs)
        await ing.start()
        started.append(ing)
        return ing

    yield make
    for ing in started:
        await ing.stop()


@pytest.fixture
async def ingestor(make_ingestor: Callable[..., Any]) -> Ingestor:
    """A started ingestor for ``pod`` on ``store``, with the fake clock."""
    ing: Ingestor = await make_ingestor()
    return ing


# --- a real node app in-process, for route tests -------------------------------------------


def now_ms() -> int:
    """The wall clock in ms (route tests run a real node on real time)."""
    import time

    return int(time.time() * 1000)


def init_datadir(tmp_path: Path) -> Any:
    """A data directory made by ``kith init`` (before the event loop runs)."""
    from node.cli import main
    from node.datadir import DataDir

    path = tmp_path / "pod"
    assert main(["init", "--dir", str(path), "--name", "Elm Street"]) == 0
    return DataDir(path)


@dataclass
class LiveNode:
    """A running node's app under a test client, and the builder that signs its pod's events."""

    client: Any
    node: Any
    pod: PodBuilder

    def auth(self, key: SigningKey) -> dict[str, str]:
        """The ``Authorization`` header of a fresh token by ``key``."""
        from protocol.tokens import make_token

        token = make_token(key, purpose="http", node_key=self.node.key.public_b64, now_ms=now_ms())
        return {"authorization": "Kith " + token}

    async def results(self, *envs: Envelope) -> list[dict[str, Any]]:
        """``POST /v1/events`` of ``envs``; the results, every one accepted."""
        results = await post_events(self.client, *envs)
        assert all(r["ok"] for r in results), results
        return results


async def post_events(client: Any, *envs: Envelope) -> list[dict[str, Any]]:
    """``POST /v1/events`` of ``envs`` through a test ``client``; the results, whatever they say."""
    from protocol.envelope import encode_envelope

    body = b'{"events":[' + b",".join(encode_envelope(e) for e in envs) + b"]}"
    response = await client.post("/v1/events", content=body)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def live_node(datadir: Any, name: str) -> AsyncIterator[tuple[Any, Any, PodBuilder]]:
    """A node on ``datadir`` started under a test client: (client, node, pod builder)."""
    from litestar.testing import AsyncTestClient

    from node.api import build_app
    from node.app import Node
    from node.datadir import read_key_file

    node = Node(datadir)
    pod = PodBuilder(name, ts=now_ms())
    pod.root = read_key_file(datadir.root_key_path).signing_key()
    pod.node = node.key
    async with AsyncTestClient(app=build_app(node)) as client:
        yield client, node, pod


# --- a real node serving HTTP on loopback -------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init(path: Path, *extra: str) -> DataDir:
    """``kith init`` on a port nothing listens on (so online commands fall back offline)."""
    from node.cli import main

    assert (
        main(["init", "--dir", str(path), "--name", "Elm", "--port", str(free_port()), *extra]) == 0
    )
    return DataDir(path)


@dataclass
class Served:
    """A node serving HTTP from a thread: its data directory and its URL."""

    data: DataDir
    url: str


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start real nodes serving HTTP on loopback ports from threads (uvicorn, as `kith serve`).

    ``serve(*init_args, name="served")`` runs ``kith init`` in ``tmp_path / name`` with
    ``init_args`` (``"--roster", "peers"`` …) and serves it; every node is stopped at teardown.
    ``handlers`` adds route handlers to the app; keyword arguments set ``config.json`` fields
    (``max_request_bytes=4096``) before the node starts.
    """
    import uvicorn

    from node.api import build_app
    from node.app import Node

    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(
        *init_args: str, name: str = "served", handlers: Sequence[Any] = (), **config: Any
    ) -> Served:
        data = init(tmp_path / name, *init_args)
        if config:
            settings = data.config()
            for field_name, value in config.items():
                setattr(settings, field_name, value)
            data.write_config(settings)
        port = free_port()
        app = build_app(Node(data), extra_handlers=list(handlers))
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="on",
                proxy_headers=False,  # as `kith serve`: node/clientaddr.py reads them (D48)
            )
        )
        thread = threading.Thread(target=server.run, name="kith-test-server", daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return Served(data, f"http://127.0.0.1:{port}")

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, thread in running:
        thread.join(20)
        assert not thread.is_alive()


@pytest.fixture
def served(serve: Callable[..., Served]) -> Served:
    """A real node of a pod made by a plain ``kith init``, serving HTTP on loopback."""
    return serve()


# --- /metrics --------------------------------------------------------------------------------


@dataclass
class Scrape:
    """A ``GET /metrics`` answer parsed with ``prometheus_client.parser``: samples by name."""

    samples: list[Any]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        """Parse the Prometheus text format (raises on a malformed line)."""
        from prometheus_client.parser import text_string_to_metric_families

        families = text_string_to_metric_families(text)
        return cls([sample for family in families for sample in family.samples])

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the sample ``name`` with exactly ``labels`` (``None``: no such sample)."""
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else None

    def labelled(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample named ``name``: its labels (sorted pairs) to its value."""
        return {tuple(sorted(s.labels.items())): s.value for s in self.samples if s.name == name}
