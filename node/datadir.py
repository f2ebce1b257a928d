"""A node's data directory: keys (mode 0600), config, database — all in one folder.

kith-data/
  config.json    pod id, node key, name, host/port, limits
  root.key       the pod's root key (move it offline after `kith init`)
  node.key       the node's own key (a coordinator for daily work)
  kith.db        the SQLite event store (+ -wal, -shm)
  peers.json     the federation allowlist (`kith peer add|list|remove`, node/peers.py)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from protocol.codec import b64d, b64e
from protocol.crypto import SigningKey
from protocol.reasons import KithError
from protocol.sealed import box_keypair_from_seed


class KeyFile(msgspec.Struct, frozen=True, kw_only=True):
    """A key file: an Ed25519 signing seed and an X25519 box seed, both base64url."""

    type: str = "kith-key/1"
    public: str
    seed: str
    box_public: str
    box_seed: str

    def signing_key(self) -> SigningKey:
        """The Ed25519 signing key."""
        return SigningKey(b64d(self.seed, 32))

    def box_private(self) -> bytes:
        """The X25519 private key (for opening sealed fields)."""
        return b64d(self.box_seed, 32)


class Config(msgspec.Struct, kw_only=True):
    """What ``kith init`` writes and ``kith serve`` reads."""

    pod: str
    node_key: str
    name: str
    host: str = "127.0.0.1"
    port: int = 8470
    timebank_limit_minutes: int = 40 * 60
    #: A trust line: how many minutes of a neighbour pod's debt this pod accepts before new
    #: assignments from it are flagged (``kith peer add --credit-limit`` sets one per peer).
    peer_credit_limit_minutes: int = 20 * 60
    max_request_bytes: int = 16 * 1024 * 1024
    max_batch: int = 5000
    #: Live streams: frames a connection may have queued before a subscription is cut.
    stream_outbox_frames: int = 20_000
    stream_outbox_bytes: int = 16 * 1024 * 1024
    stream_subs_per_connection: int = 20
    stream_connections_per_ip: int = 256
    #: Days the details of a fulfilled, withdrawn or expired need are kept before the node
    #: erases them (``kith retention set``; docs/erasure.md). ``None``: kept.
    retention_days: int | None = None
    #: Where the pod's member changes live: ``public`` (anyone can check any author; the
    #: pod's size is public) or ``peers`` (only direct peers see the roster; members post
    #: nothing public). Chosen at ``kith init --roster peers``; docs/privacy.md, D43.
    roster_scope: Literal["public", "peers"] = "public"
    #: Reverse proxies (addresses or networks, e.g. ``172.16.0.0/12``) whose ``X-Forwarded-For``
    #: names the client for per-client limits; empty: none, every peer is its own client
    #: (``kith serve --trusted-proxy`` overrides it for one run; node/clientaddr.py, D48).
    trusted_proxies: list[str] = []


def new_key_file() -> KeyFile:
    """Make a fresh key file (both seeds from the OS's CSPRNG)."""
    key = SigningKey.generate()
    box_seed = os.urandom(32)
    _, box_public = box_keypair_from_seed(box_seed)
    return KeyFile(
        public=key.public_b64,
        seed=b64e(key.seed),
        box_public=b64e(box_public),
        box_seed=b64e(box_seed),
    )


def write_key_file(path: Path, key: KeyFile) -> None:
    """Write a key file readable by its owner only (0600), refusing to overwrite one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(msgspec.json.format(msgspec.json.encode(key)) + b"\n")


def read_key_file(path: Path) -> KeyFile:
    """Read and check a key file; raise ``KithError`` with a readable message."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KithError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        key = msgspec.json.decode(data, type=KeyFile)
        if key.signing_key().public_b64 != key.public:
            raise ValueError("public key does not match the seed")
    except (msgspec.DecodeError, ValueError) as exc:
        raise KithError(f"{path} is not a valid Kith key file ({exc})") from None
    return key


class DataDir:
    """Paths and loaders for one node's data directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        """config.json"""
        return self.path / "config.json"

    @property
    def db_path(self) -> Path:
        """kith.db"""
        return self.path / "kith.db"

    @property
    def peers_path(self) -> Path:
        """peers.json"""
        return self.path / "peers.json"

    @property
    def root_key_path(self) -> Path:
        """root.key"""
        return self.path / "root.key"

    @property
    def node_key_path(self) -> Path:
        """node.key"""
        return self.path / "node.key"

    def exists(self) -> bool:
        """Has ``kith init`` run here?"""
        return self.config_path.exists()

    def config(self) -> Config:
        """Load config.json, with a readable error."""
        if not self.exists():
            raise KithError(
                "no Kith data directory here (use --dir, or kith init to create a new pod):"
                f" {self.path} has no config.json"
            )
        try:
            return msgspec.json.decode(self.config_path.read_bytes(), type=Config)
        except msgspec.DecodeError as exc:
            raise KithError(f"{self.config_path} is damaged: {exc}") from None

    def write_config(self, config: Config) -> None:
        """Write config.json."""
        self.config_path.write_bytes(msgspec.json.format(msgspec.json.encode(config)) + b"\n")

    def node_key(self) -> KeyFile:
        """The node's key."""
        return read_key_file(self.node_key_path)
