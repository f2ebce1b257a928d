"""The federation allowlist: which peer nodes this node talks to, in ``<dir>/peers.json``.

A file rather than a table, so ``kith peer add`` works the same whether or not the node
runs: the CLI edits the file (under a lock, replaced atomically) and a running node
re-reads it when its modification time changes. Checkpoints, which change with every
sync, live in the store.

    >>> entry = PeerEntry(
    ...     pod="A" * 43, url="wss://oak.example:8470/v1/federation", added_ms=0
    ... )
    >>> peers = PeerList()
    >>> peers.add(entry), peers.add(entry)
    (True, False)
    >>> [p.url for p in peers]
    ['wss://oak.example:8470/v1/federation']
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from protocol.codec import b64d
from protocol.reasons import KithError

#: The one path a federation URL may have (DESIGN §6: ``/v1/federation`` for peer nodes).
FEDERATION_PATH = "/v1/federation"
FILE_VERSION = 1


class PeerError(KithError):
    """A peer entry or the allowlist file is not acceptable; ``reason`` is a stable string.

    Reasons: ``peer:url``, ``peer:url:scheme``, ``peer:url:host``, ``peer:url:port``,
    ``peer:url:path``, ``peer:url:insecure``, ``peer:pod``, ``peer:own-pod``,
    ``peer:unknown``, ``peer:file``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def is_loopback(host: str) -> bool:
    """Is ``host`` this machine: ``localhost``, 127.0.0.0/8 or ::1?"""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, insecure: bool = False) -> None:
    """Refuse a federation URL that is not ``wss://HOST[:PORT]/v1/federation``.

    Plain ``ws://`` is allowed only to a loopback host, or when ``insecure`` says the peer
    is on a lab or LAN network the operator trusts.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError as exc:
        raise PeerError("peer:url", f"{url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("wss", "ws"):
        raise PeerError(
            "peer:url:scheme", f"{url!r}: a federation URL starts with wss:// (or ws://)"
        )
    host = parts.hostname
    if not host:
        raise PeerError("peer:url:host", f"{url!r} names no host")
    if port == 0:
        raise PeerError("peer:url:port", f"{url!r}: port 0 is not a port one can dial")
    if parts.path != FEDERATION_PATH or parts.query or parts.fragment:
        raise PeerError(
            "peer:url:path",
            f"{url!r}: the path must be exactly {FEDERATION_PATH}"
            f" (e.g. wss://{parts.netloc}{FEDERATION_PATH})",
        )
    if parts.username is not None or parts.password is not None:
        raise PeerError("peer:url", f"{url!r}: credentials do not belong in a federation URL")
    if parts.scheme == "ws" and not insecure and not is_loopback(host):
        raise PeerError(
            "peer:url:insecure",
            f"{url!r}: plain ws:// to {host} would send events unencrypted; use wss://,"
            " or --insecure for a lab or LAN peer you trust",
        )


def check_pod(pod: str) -> None:
    """Refuse a pod id that is not base64url of a 32-byte key (43 characters, canonical)."""
    try:
        b64d(pod, 32)
    except (ValueError, TypeError):
        raise PeerError(
            "peer:pod",
            f"{pod!r} is not a pod id (43 base64url characters: the pod's genesis root key,"
            " shown by the peer's `kith init` and in its /.well-known/kith)",
        ) from None


class PeerEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One allowed peer: its pod id, the URL its node serves federation on, when added.

    ``insecure`` permits plain ``ws://`` to a host that is not loopback. Every entry is
    valid by construction: ``__post_init__`` checks the pod id and the URL (also when one
    is decoded from ``peers.json``).
    """

    pod: str
    url: str
    insecure: bool = False
    added_ms: int
    #: This pod's trust line for the peer (minutes of its debt accepted before assignments
    #: from it are flagged); ``None``: the pod's default (``peer_credit_limit_minutes``).
    credit_limit_minutes: int | None = None

    def __post_init__(self) -> None:
        check_pod(self.pod)
        check_url(self.url, insecure=self.insecure)

    @classmethod
    def checked(
        cls,
        *,
        pod: str,
        url: str,
        insecure: bool = False,
        added_ms: int,
        own_pod: str | None = None,
        credit_limit_minutes: int | None = None,
    ) -> PeerEntry:
        """A new entry (``PeerError`` if invalid); refuses ``own_pod``: no node is its own peer."""
        if credit_limit_minutes is not None and not 0 <= credit_limit_minutes <= 1_000_000:
            raise PeerError(
                "peer:credit-limit", "a credit limit is 0 to 1000000 minutes of the peer's debt"
            )
        entry = cls(
            pod=pod,
            url=url,
            insecure=insecure,
            added_ms=added_ms,
            credit_limit_minutes=credit_limit_minutes,
        )
        if own_pod is not None and pod == own_pod:
            raise PeerError("peer:own-pod", f"{pod} is this node's own pod, not a peer")
        return entry


class _PeersFile(msgspec.Struct, kw_only=True):
    version: int = FILE_VERSION
    peers: list[PeerEntry] = msgspec.field(default_factory=list)


_decoder = msgspec.json.Decoder(_PeersFile)


class PeerList:
    """The allowlist in memory, one entry per pod, in the order they were first added."""

    def __init__(self, entries: Iterable[PeerEntry] = ()) -> None:
        self._entries: dict[str, PeerEntry] = {}
        for entry in entries:
            self.add(entry)

    @classmethod
    def load(cls, path: Path) -> PeerList:
        """Read ``peers.json`` (a missing file is an empty list); ``PeerError`` if damaged."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise PeerError("peer:file", f"cannot read {path}: {exc.strerror}") from None
        try:
            file = _decoder.decode(data)
        except PeerError as exc:
            raise PeerError("peer:file", f"{path} is damaged: {exc.message}") from None
        except msgspec.DecodeError as exc:
            raise PeerError(
                "peer:file",
                f"{path} is damaged ({exc}); fix it by hand or remove it and add the peers again",
            ) from None
        if file.version != FILE_VERSION:
            raise PeerError(
                "peer:file", f"{path} has version {file.version}; this kith reads {FILE_VERSION}"
            )
        pods = [entry.pod for entry in file.peers]
        if len(set(pods)) != len(pods):
            raise PeerError("peer:file", f"{path} is damaged: a pod is listed twice")
        return cls(file.peers)

    def save(self, path: Path) -> None:
        """Write the list atomically (temp file, fsync, rename), readable by the owner only."""
        data = msgspec.json.format(
            msgspec.json.encode(_PeersFile(peers=list(self._entries.values())))
        )
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".peers.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(data + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        # The rename is durable only once the directory is.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def add(self, entry: PeerEntry) -> bool:
        """Add or replace the entry for ``entry.pod``; True if the pod is new."""
        new = entry.pod not in self._entries
        self._entries[entry.pod] = entry
        return new

    def remove(self, pod: str) -> bool:
        """Remove a pod's entry; False if it was not listed."""
        return self._entries.pop(pod, None) is not None

    def get(self, pod: str) -> PeerEntry | None:
        """The entry for ``pod``, if listed."""
        return self._entries.get(pod)

    def __iter__(self) -> Iterator[PeerEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, pod: object) -> bool:
        return pod in self._entries


#: Why a dialled link ended before it went live, as the session saw it (``Session.refusal``):
#: ``wrong-pod`` (the node at the URL is another pod: the detail is its pod id), ``peer`` (the
#: peer refused us: the detail is its reason word), ``us`` (we refused it: our own message).
Refusal = tuple[str, str]


def backoff_reason(refusal: Refusal) -> str:
    """What ``kith peer list`` shows for a peer in backoff after ``refusal``: the cause, and
    what to do about it.

    >>> backoff_reason(("peer", "unauthorized"))
    'refused by the peer (unauthorized): does it list this pod? (kith peer add on its node)'
    """
    what, detail = refusal
    if what == "wrong-pod":
        return (
            f"wrong pod id: the node at this URL is pod {detail}"
            " (kith peer add URL --pod with the pod id its operator gave you)"
        )
    if what == "peer":
        # Its reason word only: the text of a peer's notice is the peer's and may hold anything.
        return f"refused by the peer ({detail}): does it list this pod? (kith peer add on its node)"
    return f"refused: {detail}"[:200]


@contextlib.contextmanager
def editing(path: Path) -> Iterator[PeerList]:
    """Read-modify-write ``peers.json`` under an exclusive lock, saving on a clean exit.

    The lock (``peers.json.lock`` beside it) keeps two ``kith peer`` commands from losing
    each other's change; the running node only reads, and atomic replacement means it
    never sees half a file.
    """
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            peers = PeerList.load(path)
            yield peers
            peers.save(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
