"""The federation allowlist (``node/peers.py``): validation, the file, and its lock."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import msgspec
import pytest

from node.peers import PeerEntry, PeerError, PeerList, check_url, editing, is_loopback
from tests.node.conftest import signing_key

OAK = signing_key("oak:root").public_b64
ASH = signing_key("ash:root").public_b64
URL = "wss://oak.example:8470/v1/federation"


def entry(pod: str = OAK, url: str = URL, *, insecure: bool = False) -> PeerEntry:
    return PeerEntry(pod=pod, url=url, insecure=insecure, added_ms=1_000)


@pytest.mark.parametrize(
    "url",
    [
        "wss://oak.example/v1/federation",
        "wss://oak.example:443/v1/federation",
        "wss://10.0.0.7:8470/v1/federation",
        "wss://[2001:db8::1]:8470/v1/federation",
        "ws://127.0.0.1:8470/v1/federation",
        "ws://127.8.9.10/v1/federation",
        "ws://[::1]:8470/v1/federation",
        "ws://localhost:8470/v1/federation",
        "ws://LOCALHOST:8470/v1/federation",
    ],
)
def test_good_urls(url: str) -> None:
    check_url(url)
    assert entry(url=url).url == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ws://oak.example:8470/v1/federation", "peer:url:insecure"),
        ("ws://10.0.0.7/v1/federation", "peer:url:insecure"),
        ("ws://[2001:db8::1]/v1/federation", "peer:url:insecure"),
        ("https://oak.example/v1/federation", "peer:url:scheme"),
        ("oak.example:8470/v1/federation", "peer:url:scheme"),
        ("wss:///v1/federation", "peer:url:host"),
        ("wss://oak.example:8470/v1/stream", "peer:url:path"),
        ("wss://oak.example:8470/", "peer:url:path"),
        ("wss://oak.example:8470", "peer:url:path"),
        ("wss://oak.example/v1/federation/", "peer:url:path"),
        ("wss://oak.example/v1/federation?x=1", "peer:url:path"),
        ("wss://oak.example/v1/federation#x", "peer:url:path"),
        ("wss://oak.example:99999/v1/federation", "peer:url"),
        ("wss://oak.example:port/v1/federation", "peer:url"),
        ("wss://oak.example:0/v1/federation", "peer:url:port"),
        ("wss://me:secret@oak.example/v1/federation", "peer:url"),
        ("wss://[::1/v1/federation", "peer:url"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(PeerError) as info:
        entry(url=url)
    assert info.value.reason == reason
    assert url in str(info.value)


def test_insecure_allows_plain_ws_to_a_lan_host() -> None:
    assert entry(url="ws://10.0.0.7:8470/v1/federation", insecure=True).insecure
    check_url("wss://oak.example/v1/federation", insecure=True)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("localhost.example")


@pytest.mark.parametrize(
    "pod",
    ["", "oak", OAK[:-1], OAK + "A", OAK[:-1] + "B", OAK[:-1] + "=", "+" + OAK[1:], OAK + "\n"],
)
def test_bad_pod_ids_are_refused(pod: str) -> None:
    with pytest.raises(PeerError) as info:
        entry(pod=pod)
    assert info.value.reason == "peer:pod"
    assert "not a pod id" in info.value.message


def test_add_remove_get_iterate() -> None:
    peers = PeerList()
    assert peers.add(entry()) is True
    assert peers.add(entry(ASH)) is True
    moved = entry(url="wss://oak.example:9000/v1/federation")
    assert peers.add(moved) is False  # updated in place
    assert peers.get(OAK) == moved and OAK in peers and len(peers) == 2
    assert [e.pod for e in peers] == [OAK, ASH]  # the order they were first added
    assert peers.remove(OAK) is True
    assert peers.remove(OAK) is False
    assert peers.get(OAK) is None and [e.pod for e in peers] == [ASH]


def test_save_and_load_round_trip_privately(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    assert len(PeerList.load(path)) == 0  # no file yet: no peers
    PeerList([entry(), entry(ASH, "ws://10.0.0.2/v1/federation", insecure=True)]).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = PeerList.load(path)
    assert list(loaded) == [entry(), entry(ASH, "ws://10.0.0.2/v1/federation", insecure=True)]
    assert msgspec.json.decode(path.read_bytes())["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["peers.json"]  # no temp file left behind


def test_a_failed_save_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "peers.json"
    PeerList([entry()]).save(path)

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        PeerList([entry(), entry(ASH)]).save(path)
    assert list(PeerList.load(path)) == [entry()]
    assert [p.name for p in tmp_path.iterdir()] == ["peers.json"]


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"{not json", "is damaged"),
        (b"[]", "is damaged"),
        (b'{"peers": [{"pod": "x"}]}', "is damaged"),
        (b'{"peers": [{"pod": "oak", "url": "' + URL.encode() + b'", "added_ms": 1}]}', "pod id"),
        (
            b'{"peers": [{"pod": "' + OAK.encode() + b'", "url": "ws://oak.example/v1/federation",'
            b' "added_ms": 1}]}',
            "unencrypted",
        ),
        (b'{"version": 2, "peers": []}', "has version 2"),
    ],
)
def test_a_damaged_file_is_a_clear_error(tmp_path: Path, content: bytes, detail: str) -> None:
    path = tmp_path / "peers.json"
    path.write_bytes(content)
    with pytest.raises(PeerError) as info:
        PeerList.load(path)
    assert info.value.reason == "peer:file"
    assert str(path) in info.value.message and detail in info.value.message


def test_a_pod_listed_twice_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    one = msgspec.to_builtins(entry())
    path.write_bytes(msgspec.json.encode({"peers": [one, one]}))
    with pytest.raises(PeerError, match="listed twice"):
        PeerList.load(path)


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.mkdir()  # reading a directory fails with an OSError other than "not found"
    with pytest.raises(PeerError, match="cannot read"):
        PeerList.load(path)


def test_editing_saves_only_on_a_clean_exit(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    with editing(path) as peers:
        peers.add(entry())
    assert list(PeerList.load(path)) == [entry()]
    with pytest.raises(RuntimeError), editing(path) as peers:
        peers.add(entry(ASH))
        raise RuntimeError("changed my mind")
    assert list(PeerList.load(path)) == [entry()]
    assert stat.S_IMODE((tmp_path / "peers.json.lock").stat().st_mode) == 0o600


def _add_many(path: str, pods: list[str]) -> None:
    for pod in pods:
        with editing(Path(path)) as peers:
            peers.add(PeerEntry(pod=pod, url=URL, added_ms=0))


def test_concurrent_editors_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    pods = [signing_key(f"pod{n}:root").public_b64 for n in range(40)]
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_add_many, args=(str(path), pods[k::4])) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert {e.pod for e in PeerList.load(path)} == set(pods)
