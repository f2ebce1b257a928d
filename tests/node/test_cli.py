"""The ``kith`` command in-process: help, one-line errors, and the offline life of a pod
(init, keys, members, export/import, verify, backup)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from node.app import Node
from node.cli import build_parser, main
from node.client import KithClient
from node.datadir import DataDir, KeyFile, read_key_file
from node.demo import populate
from protocol.reasons import KithError
from tests.node.conftest import Served, free_port, init, signing_key


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line of a failed command (and check it is one line, no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kith: error: "), err
    return lines[0]


def event_ids(path: Path) -> list[str]:
    from protocol.envelope import decode_envelope, parse_event

    return [parse_event(decode_envelope(line)).id for line in path.read_bytes().splitlines()]


# --- help ------------------------------------------------------------------------------

SUBCOMMANDS = [
    ["init"],
    ["serve"],
    ["demo"],
    ["key"],
    ["key", "new"],
    ["key", "show"],
    ["member"],
    ["member", "add"],
    ["post"],
    *(
        ["post", what]
        for what in ("need", "offer", "claim", "accept", "fulfil", "hours", "confirm", "withdraw")
    ),
    ["needs"],
    ["offers"],
    ["timebank"],
    ["token"],
    ["tail"],
    ["export"],
    ["import"],
    ["verify"],
    ["backup"],
    ["migrate"],
    ["erase"],
    ["erasures"],
    ["retention"],
    ["peer"],
    ["peer", "add"],
    ["peer", "list"],
    ["peer", "remove"],
    ["gathering"],
    *(["gathering", what] for what in ("schedule", "cancel", "rsvp", "list")),
    ["calendar"],
    ["calendar", "url"],
    ["calendar", "feed"],
    *(["calendar", "feed", what] for what in ("new", "list", "revoke")),
]


@pytest.mark.parametrize("argv", [[], *SUBCOMMANDS], ids=lambda a: " ".join(a) or "kith")
def test_help_of_every_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: kith {' '.join(argv)}".rstrip())
    if (
        argv and argv[0] in ("init", "serve", "export", "import", "verify", "backup", "migrate")
    ) or (argv[:1] == ["peer"] and len(argv) == 2):
        assert "--dir" in out and "./kith-data" in out  # every data command takes --dir


def test_every_subcommand_is_in_the_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    text = build_parser().format_help()
    for name in ("init", "serve", "demo", "key", "member", "post", "tail", "export", "import"):
        assert name in text
    for name in ("verify", "backup", "migrate", "peer"):
        assert name in text


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "usage: kith" in capsys.readouterr().err


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["verify"],
        ["export"],
        ["backup", "{tmp}/b.db"],
        ["serve"],
        ["member", "add", "--key", "k", "--box-key", "b"],
        ["import", "{tmp}/dump.jsonl"],
        ["migrate"],
        ["peer", "list"],
        ["peer", "add", "wss://oak.example/v1/federation", "--pod", "P" * 43],
        ["peer", "remove", "P" * 43],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_missing_data_dir(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    (tmp_path / "dump.jsonl").write_bytes(b"")
    args = [a.format(tmp=tmp_path) for a in argv]
    assert main([*args, "--dir", str(missing)]) == 1
    line = error_line(capsys)
    assert line == (
        "kith: error: no Kith data directory here (use --dir, or kith init to create a new pod):"
        f" {missing} has no config.json"
    )
    assert not missing.exists()


def test_init_refuses_an_existing_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init(tmp_path / "pod")
    capsys.readouterr()
    before = (tmp_path / "pod" / "config.json").read_bytes()
    assert main(["init", "--dir", str(tmp_path / "pod"), "--name", "Again"]) == 1
    assert "already holds a pod (config.json exists)" in error_line(capsys)
    assert (tmp_path / "pod" / "config.json").read_bytes() == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read key file"),
        (b"not json", "is not a valid Kith key file"),
        (b'{"public": "x"}', "is not a valid Kith key file"),
        ("mismatch", "public key does not match the seed"),
    ],
)
def test_bad_key_file(
    content: bytes | str | None,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.key"
    if content == "mismatch":
        assert main(["key", "new", "--out", str(tmp_path / "a.key")]) == 0
        assert main(["key", "new", "--out", str(tmp_path / "b.key")]) == 0
        a = read_key_file(tmp_path / "a.key")
        b = read_key_file(tmp_path / "b.key")
        path.write_bytes(msgspec.json.encode(msgspec.structs.replace(a, public=b.public)))
        capsys.readouterr()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    argv = ["post", "need", "--key", str(path), "--title", "t", "--category", "food"]
    assert main(argv) == 1
    assert expected in error_line(capsys)


def test_post_to_an_unreachable_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "me.key"
    assert main(["key", "new", "--out", str(key)]) == 0
    url = f"http://127.0.0.1:{free_port()}"
    argv = ["post", "need", "--key", str(key), "--url", url, "--title", "t", "--category", "food"]
    capsys.readouterr()
    assert main(argv) == 1
    assert f"cannot reach the node at {url}" in error_line(capsys)


def test_post_with_a_body_the_schema_refuses_is_caught_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "me.key"
    assert main(["key", "new", "--out", str(key)]) == 0
    capsys.readouterr()
    url = f"http://127.0.0.1:{free_port()}"  # never contacted
    someone = signing_key("someone").public_b64
    argv = ["post", "hours", "--key", str(key), "--url", url, "--minutes", "2000"]
    assert main([*argv, "--giver", someone, "--receiver", someone]) == 1
    assert "invalid:body:field:minutes" in error_line(capsys)


def test_key_new_refuses_to_overwrite_and_reports_os_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "me.key"
    assert main(["key", "new", "--out", str(key)]) == 0
    before = key.read_bytes()
    capsys.readouterr()
    assert main(["key", "new", "--out", str(key)]) == 1
    assert "refusing to overwrite" in error_line(capsys)
    assert key.read_bytes() == before
    assert main(["key", "new", "--out", str(tmp_path / "no" / "dir" / "k.key")]) == 1
    assert "No such file or directory" in error_line(capsys)


def test_member_add_needs_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = init(tmp_path / "pod")
    capsys.readouterr()
    assert main(["member", "add", "--dir", str(data.path), "--key", "k"]) == 1
    assert "--key-file" in error_line(capsys)


def test_import_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = init(tmp_path / "pod")
    capsys.readouterr()
    assert main(["import", "--dir", str(data.path), str(tmp_path / "missing.jsonl")]) == 1
    assert "does not exist" in error_line(capsys)


def test_damaged_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = init(tmp_path / "pod")
    data.config_path.write_text("{oops")
    capsys.readouterr()
    assert main(["verify", "--dir", str(data.path)]) == 1
    assert "is damaged" in error_line(capsys)


def test_backup_refuses_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = init(tmp_path / "pod")
    target = tmp_path / "exists.db"
    target.write_bytes(b"keep")
    capsys.readouterr()
    assert main(["backup", "--dir", str(data.path), str(target)]) == 1
    assert "exists" in error_line(capsys)
    assert target.read_bytes() == b"keep"


def test_backups_and_exports_are_readable_by_their_owner_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = init(tmp_path / "pod")
    old = os.umask(0o022)  # a usual umask would make them world-readable
    try:
        backup, dump = tmp_path / "b.db", tmp_path / "dump.jsonl"
        dump.write_bytes(b"an older, world-readable export")
        dump.chmod(0o644)
        assert main(["backup", "--dir", str(data.path), str(backup)]) == 0
        assert main(["export", "--dir", str(data.path), "--out", str(dump)]) == 0
    finally:
        os.umask(old)
    for path in (backup, dump):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert b"pod.created" in dump.read_bytes()  # the older export was replaced


# --- the offline life of a pod ---------------------------------------------------------


def test_init_makes_keys_config_and_genesis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = init(tmp_path / "pod")
    out = capsys.readouterr().out
    config = data.config()
    assert config.name == "Elm"
    root, node = read_key_file(data.root_key_path), read_key_file(data.node_key_path)
    assert config.pod == root.public and config.node_key == node.public
    assert config.pod in out and "move it offline" in out
    for key in (data.root_key_path, data.node_key_path):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.path.stat().st_mode) == 0o700
    conn = sqlite3.connect(data.db_path)
    try:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY cursor")]
    finally:
        conn.close()
    assert kinds == ["pod.created", "node.key"]


def test_key_new_writes_a_private_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ada.key"
    assert main(["key", "new", "--out", str(path)]) == 0
    key = read_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.type == "kith-key/1"
    assert key.public in capsys.readouterr().out
    assert key.signing_key().public_b64 == key.public
    assert len(key.box_private()) == 32


def _add_member(data: DataDir, key_path: Path, *extra: str) -> None:
    assert (
        main(["member", "add", "--dir", str(data.path), "--key-file", str(key_path), *extra]) == 0
    )


def test_life_of_a_pod_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = init(tmp_path / "pod")
    ada_path, bo_path = tmp_path / "ada.key", tmp_path / "bo.key"
    assert main(["key", "new", "--out", str(ada_path)]) == 0
    assert main(["key", "new", "--out", str(bo_path)]) == 0
    capsys.readouterr()

    # member add: the node is not running, so the event is signed and stored offline.
    _add_member(data, ada_path, "--role", "coordinator")
    assert "member.added recorded (member added): " in capsys.readouterr().out
    bo = read_key_file(bo_path)
    argv = [
        "member",
        "add",
        "--dir",
        str(data.path),
        "--key",
        bo.public,
        "--box-key",
        bo.box_public,
    ]
    assert main(argv) == 0
    capsys.readouterr()

    # Fill the pod with members, needs, claims and hours (all pod-scope, client-signed).
    async def fill() -> None:
        node = Node(data)
        await node.start()
        try:
            await populate(node)
        finally:
            await node.stop()

    asyncio.run(fill())

    # export
    dump = tmp_path / "dump.jsonl"
    assert main(["export", "--dir", str(data.path), "--out", str(dump)]) == 0
    exported = event_ids(dump)
    conn = sqlite3.connect(data.db_path)
    try:
        (count,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        (pod_events,) = conn.execute("SELECT COUNT(*) FROM events WHERE scope = 'pod'").fetchone()
    finally:
        conn.close()
    assert len(exported) == count and pod_events > 0
    assert f"exported {count} events" in capsys.readouterr().err

    # import into a second data directory of the same pod (a restore: keys and config only)
    restored = DataDir(tmp_path / "restored")
    restored.path.mkdir()
    for name in ("config.json", "node.key"):
        shutil.copy2(data.path / name, restored.path / name)
    assert main(["import", "--dir", str(restored.path), "--quiet", str(dump)]) == 0
    assert f"stored: {count}" in capsys.readouterr().out
    again = tmp_path / "again.jsonl"
    assert main(["export", "--dir", str(restored.path), "--out", str(again)]) == 0
    assert sorted(event_ids(again)) == sorted(exported)
    assert main(["import", "--dir", str(restored.path), "--quiet", str(dump)]) == 0
    assert f"duplicate: {count}" in capsys.readouterr().out

    # verify: both copies check out and show the same projection hash
    hashes = []
    for d in (data, restored):
        assert main(["verify", "--dir", str(d.path)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[-1] == "OK"
        assert f"events checked:   {count}" in out
        hashes.append(next(line for line in out if line.startswith("projection hash:")))
    assert hashes[0] == hashes[1]

    # verify --rebuild: the rebuilt read models give the same hash
    assert main(["verify", "--dir", str(data.path), "--rebuild"]) == 0
    out = capsys.readouterr().out
    assert "(same)" in out and out.strip().endswith("OK")

    # backup: a valid SQLite database with the same events
    backup = tmp_path / "backup.db"
    assert main(["backup", "--dir", str(data.path), str(backup)]) == 0
    assert "backup written to" in capsys.readouterr().out
    conn = sqlite3.connect(backup)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (count,)
    finally:
        conn.close()


def test_export_to_stdout(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    data = init(tmp_path / "pod")
    capsysbinary.readouterr()
    assert main(["export", "--dir", str(data.path)]) == 0
    captured = capsysbinary.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2
    assert [json.loads(json.loads(line)["head"])["kind"] for line in lines] == [
        "pod.created",
        "node.key",
    ]
    assert b"exported 2 events" in captured.err


def test_import_with_bad_lines_fails_but_keeps_the_good(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = init(tmp_path / "pod")
    dump = tmp_path / "dump.jsonl"
    assert main(["export", "--dir", str(data.path), "--out", str(dump)]) == 0
    other = init(tmp_path / "other")
    lines = dump.read_bytes().splitlines()
    dump.write_bytes(b"\n".join([lines[0], b"{broken", b"", lines[1]]) + b"\n")
    capsys.readouterr()
    # Another pod's public genesis is welcome anywhere; the broken line is reported.
    assert main(["import", "--dir", str(other.path), "--quiet", str(dump)]) == 1
    out = capsys.readouterr().out
    assert "stored: 2" in out and "invalid:envelope:json: 1" in out


def test_member_add_key_file_roles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = init(tmp_path / "pod")
    key = tmp_path / "cy.key"
    assert main(["key", "new", "--out", str(key)]) == 0
    _add_member(data, key, "--role", "coordinator")
    capsys.readouterr()
    # Adding the same key again is a new roster event (a role change), not an error.
    _add_member(data, key)
    assert "member.added recorded (member updated: new role or box key): " in (
        capsys.readouterr().out
    )
    # With nothing new, it is stored but changes nothing: said on stderr, exit 1.
    argv = ["member", "add", "--dir", str(data.path), "--key-file", str(key)]
    assert main(argv) == 1
    assert "member already added, with this role and key (effect:already-member)" in (
        capsys.readouterr().err
    )

    async def roles() -> str | None:
        node = Node(data)
        await node.start()
        try:
            pod = node.ingest.roster.pods[node.pod]
            return pod.role_of(read_key_file(key).public)
        finally:
            await node.stop()

    assert asyncio.run(roles()) == "member"


def test_key_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    assert main(["key", "new", "--out", str(path)]) == 0
    key = msgspec.json.decode(path.read_bytes(), type=KeyFile)
    assert read_key_file(path) == key
    assert os.stat(path).st_size > 0


# --- against a running node --------------------------------------------------------------


def recorded_id(out: str, kind: str) -> str:
    """The id from ``<kind> recorded (<what it did>): <id>``."""
    prefix = f"{kind} recorded"
    [line] = [line for line in out.splitlines() if line.startswith(prefix)]
    return line.rsplit(": ", 1)[1]


def test_member_add_and_every_post_against_a_running_node(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ada_path, bo_path = tmp_path / "ada.key", tmp_path / "bo.key"
    for path in (ada_path, bo_path):
        assert main(["key", "new", "--out", str(path)]) == 0
    for path in (ada_path, bo_path):
        argv = ["member", "add", "--dir", str(served.data.path), "--key-file", str(path)]
        assert main([*argv, "--url", served.url]) == 0
    capsys.readouterr()
    ada, bo = read_key_file(ada_path), read_key_file(bo_path)

    def post(key: Path, what: str, *args: str) -> str:
        argv = ["post", what, "--key", str(key), "--url", served.url, *args]
        assert main(argv) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        kind = out.split(" recorded")[0]
        return recorded_id(out, kind)

    need = post(
        ada_path,
        "need",
        "--title",
        "Ride",
        "--category",
        "ride",
        "--urgency",
        "high",
        "--details",
        "to the clinic",
        "--area",
        "Elm",
        "--minutes",
        "60",
    )
    post(bo_path, "offer", "--title", "I drive", "--category", "ride", "--capacity", "2")
    claim = post(bo_path, "claim", "--need", need, "--note", "on my way")
    post(ada_path, "accept", "--claim", claim, "--need", need)
    post(bo_path, "fulfil", "--need", need, "--claim", claim, "--minutes", "45", "--note", "ok")
    entry = post(
        bo_path,
        "hours",
        "--giver",
        bo.public,
        "--receiver",
        ada.public,
        "--minutes",
        "45",
        "--need",
        need,
    )
    post(ada_path, "confirm", "--entry", entry)

    def no_effect(key: Path, what: str, *args: str) -> str:
        argv = ["post", what, "--key", str(key), "--url", served.url, *args]
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        [line] = captured.err.splitlines()
        assert line.startswith("kith: ") and "is stored, but it changed nothing: " in line
        return line

    assert "you cannot confirm your own hours (effect:own-entry)" in no_effect(
        bo_path, "confirm", "--entry", entry
    )
    assert "the entry was already confirmed" in no_effect(ada_path, "confirm", "--entry", entry)
    assert "the need is already fulfilled" in no_effect(
        ada_path, "fulfil", "--need", need, "--minutes", "5"
    )
    assert "(effect:unknown-need)" in no_effect(bo_path, "claim", "--need", entry)
    other = post(ada_path, "need", "--title", "Soup", "--category", "food")
    post(ada_path, "withdraw", "--need", other)
    post(ada_path, "need", "--title", "Public", "--category", "goods", "--scope", "public")

    client = KithClient(served.url, ada.signing_key())
    needs = {n["id"]: n for n in client.get("/v1/needs", status=None)}
    assert needs[need]["status"] == "fulfilled"
    assert needs[need]["helper"] == bo.public
    assert needs[other]["status"] == "withdrawn"
    bank = client.get("/v1/timebank")
    assert {m["person"]: m["balance_minutes"] for m in bank["members"]} == {
        bo.public: 45,
        ada.public: -45,
    }
    offers = KithClient(served.url).get("/v1/offers")
    assert offers == []  # Bo's offer is pod-scope: anonymous readers see none


def test_refusals_and_http_errors_are_one_line(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = tmp_path / "stranger.key"
    assert main(["key", "new", "--out", str(stranger)]) == 0
    capsys.readouterr()
    argv = ["post", "need", "--key", str(stranger), "--url", served.url]
    assert main([*argv, "--title", "t", "--category", "food"]) == 1
    # The log head of a non-member's pod log is refused before anything is signed.
    assert "HTTP 401" in error_line(capsys)
    # A member removed from seq 1 on: the node answers, and refuses the event.
    argv_add = ["member", "add", "--dir", str(served.data.path), "--key-file", str(stranger)]
    assert main([*argv_add, "--url", served.url]) == 0
    node = KithClient(served.url, served.data.node_key().signing_key())
    body = {"key": read_key_file(stranger).public, "effective": {"pod": 1}}
    assert node.post("member.removed", body, scope="public")["ok"]
    capsys.readouterr()
    assert main([*argv, "--title", "t", "--category", "food"]) == 1
    # a removed member cannot even get a token accepted any more, and hears how to be added
    line = error_line(capsys)
    assert "HTTP 401: unauthorized: the token's key is not an active member" in line
    assert "a coordinator adds a key with `kith member add --key-file KEY`" in line

    with pytest.raises(
        KithError, match="HTTP 401: unauthorized: the token's key is not an active member"
    ):
        KithClient(served.url, signing_key("nobody")).get("/v1/timebank")
    with pytest.raises(KithError, match="HTTP 404: not-found: no such event"):
        KithClient(served.url).get("/v1/events/" + "A" * 43)
    with pytest.raises(KithError, match="a key file is needed"):
        KithClient(served.url).post("need.posted", {})
    with pytest.raises(KithError, match="a key file is needed"):
        KithClient(served.url).token()


def test_client_re_signs_after_a_fork(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another device of the same person took the seq first: the client re-reads and re-signs."""
    node_key = served.data.node_key().signing_key()
    client = KithClient(served.url, node_key)
    raced = KithClient(served.url, node_key)
    original = client.post_envelopes
    calls: list[int] = []

    def racing(envelopes: list[Any]) -> list[dict[str, Any]]:
        calls.append(1)
        if len(calls) == 1:  # the other device posts first, at the same seq
            raced.post("profile.set", {"name": "other device"})
        return original(envelopes)

    monkeypatch.setattr(client, "post_envelopes", racing)
    result = client.post("profile.set", {"name": "this device"})
    assert result["ok"] and result.get("reason") is None
    assert len(calls) == 2
    head = client.get(f"/v1/logs/{client.info()['pod']}/{node_key.public_b64}/pod")
    assert head["seq"] == 2 and head["id"] == result["id"]


# --- small pieces --------------------------------------------------------------------------


#: Ids of the shape the options take (the CLI refuses anything else before posting).
_N, _C, _E = (signing_key(f"id:{what}").public_b64 for what in ("need", "claim", "entry"))


@pytest.mark.parametrize(
    ("argv", "kind", "body"),
    [
        (
            ["need", "--title", "T", "--category", "food"],
            "need.posted",
            {"title": "T", "category": "food", "urgency": "normal"},
        ),
        (
            ["offer", "--title", "T", "--category", "ride", "--area", "Elm"],
            "offer.posted",
            {"title": "T", "category": "ride", "capacity": 1, "area": "Elm"},
        ),
        (["claim", "--need", _N], "claim.made", {"need": _N}),
        (["accept", "--claim", _C, "--need", _N], "claim.accepted", {"claim": _C, "need": _N}),
        (["fulfil", "--need", _N], "fulfilment.recorded", {"need": _N}),
        (
            ["hours", "--giver", "G", "--receiver", "R", "--minutes", "5"],
            "hours.logged",
            {"giver": "G", "receiver": "R", "minutes": 5},
        ),
        (["confirm", "--entry", _E], "hours.confirmed", {"entry": _E}),
        (["withdraw", "--need", _N], "need.withdrawn", {"need": _N}),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_post_bodies_carry_only_what_was_given(
    argv: list[str], kind: str, body: dict[str, Any]
) -> None:
    from node.cli import _post_body

    args = build_parser().parse_args(["post", argv[0], "--key", "k", *argv[1:]])
    assert _post_body(args) == (kind, body)


def test_serve_and_demo_wire_the_node_to_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import node.cli.pod

    calls: list[tuple[str, str, int]] = []

    def fake_serve(node: Node, host: str, port: int, banner: Any = None, **kw: Any) -> None:
        calls.append((node.pod, host, port))
        if banner is not None:
            banner()

    monkeypatch.setattr(node.cli.pod, "_serve", fake_serve)
    data = init(tmp_path / "pod")
    assert main(["serve", "--dir", str(data.path), "--port", "9999"]) == 0
    assert calls == [(data.config().pod, "127.0.0.1", 9999)]
    assert main(["serve", "--dir", str(data.path)]) == 0
    assert calls[-1] == (data.config().pod, data.config().host, data.config().port)

    demo = tmp_path / "demo"
    assert main(["demo", "--dir", str(demo), "--port", "9998"]) == 0
    out = capsys.readouterr().out
    assert "Demo pod with members" in out and "http://127.0.0.1:9998/v1/needs" in out
    # A one-time link to join the demo pod from the board, whose invite the node holds.
    (code,) = re.findall(r"http://127\.0\.0\.1:9998/#join/([A-Za-z0-9_-]{22,})", out)
    from node.projections.invites import code_hash

    with sqlite3.connect(DataDir(demo).db_path) as conn:
        rows = conn.execute("SELECT body FROM events WHERE kind = 'invite.created'").fetchall()
    assert len(rows) == 1 and code_hash(code) in bytes(rows[0][0]).decode()
    keys = sorted(p.name for p in demo.glob("*.key") if p.name not in ("root.key", "node.key"))
    assert len(keys) == 8 and "bao.key" in keys
    for name in keys:
        assert stat.S_IMODE((demo / name).stat().st_mode) == 0o600
        read_key_file(demo / name)  # a valid key file
    assert calls[-1][1:] == ("127.0.0.1", 9998)


def test_tail_passes_its_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    import node.tail

    seen: list[tuple[str, dict[str, Any], Any]] = []

    async def fake_tail(url: str, filt: dict[str, Any], **kw: Any) -> int:
        seen.append((url, filt, kw["after"]))
        raise KeyboardInterrupt

    monkeypatch.setattr(node.tail, "tail", fake_tail)
    argv = ["tail", "--url", "http://x", "--kind", "need.*", "--urgency", "high", "--after", "7"]
    assert main(argv) == 0
    assert seen == [("http://x", {"kinds": ["need.*"], "urgency": ["high"]}, 7)]


def test_import_in_batches_of_a_thousand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = init(tmp_path / "pod")
    dump = tmp_path / "dump.jsonl"
    assert main(["export", "--dir", str(data.path), "--out", str(dump)]) == 0
    lines = dump.read_bytes().splitlines()
    dump.write_bytes(b"\n".join(lines * 600) + b"\n")
    capsys.readouterr()
    assert main(["import", "--dir", str(data.path), "--quiet", str(dump)]) == 0
    assert "duplicate: 1200" in capsys.readouterr().out


def test_interrupt_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import node.datadir

    def interrupted() -> KeyFile:
        raise KeyboardInterrupt

    monkeypatch.setattr(node.datadir, "new_key_file", interrupted)
    assert main(["key", "new", "--out", str(tmp_path / "k.key")]) == 130


def test_client_reports_a_non_json_error_page(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import urllib.error
    import urllib.request
    from email.message import Message

    def bad_gateway(*args: Any, **kw: Any) -> Any:
        raise urllib.error.HTTPError(
            "http://n/.well-known/kith", 502, "Bad Gateway", Message(), io.BytesIO(b"<html>")
        )

    monkeypatch.setattr(urllib.request, "urlopen", bad_gateway)
    with pytest.raises(KithError, match=r"^http://n/.well-known/kith: HTTP 502: Bad Gateway$"):
        KithClient("http://n/").info()


def test_client_gives_up_after_three_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    client = KithClient("http://n", signing_key("me"))
    client._info = {"pod": signing_key("pod").public_b64, "node_key": signing_key("n").public_b64}
    monkeypatch.setattr(client, "_request", lambda *a, **kw: {"seq": 4, "id": "A" * 43, "ts": 1})
    posted: list[Any] = []

    def always_fork(envelopes: list[Any]) -> list[dict[str, Any]]:
        posted.extend(envelopes)
        return [{"id": None, "ok": False, "reason": "fork"}]

    monkeypatch.setattr(client, "post_envelopes", always_fork)
    assert client.post("profile.set", {"name": "x"})["reason"] == "fork"
    assert len(posted) == 3
    assert all(msgspec.json.decode(e.head)["seq"] == 5 for e in posted)


# --- migrate ---------------------------------------------------------------------------


def test_migrate_brings_a_version_1_database_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.node.test_store_sqlite import _v1_database

    data = init(tmp_path / "pod")
    for path in data.path.glob("kith.db*"):
        path.unlink()
    _v1_database(data.db_path)
    capsys.readouterr()
    assert main(["migrate", "--dir", str(data.path)]) == 0
    assert capsys.readouterr().out == (f"{data.db_path}: migrated from schema version 1 to 3\n")
    conn = sqlite3.connect(data.db_path)
    assert "origin" in {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    conn.close()
    assert main(["migrate", "--dir", str(data.path)]) == 0
    assert capsys.readouterr().out == f"{data.db_path}: schema version 3, already current\n"
    for path in data.path.glob("kith.db*"):
        path.unlink()
    assert main(["migrate", "--dir", str(data.path)]) == 0
    assert capsys.readouterr().out == f"{data.db_path}: created at schema version 3\n"


def test_migrate_refuses_while_the_node_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import fcntl

    data = init(tmp_path / "pod")
    capsys.readouterr()
    with open(data.path / "node.lock", "a+") as held:  # as a running `kith serve` holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["migrate", "--dir", str(data.path)]) == 1
    assert "is in use by another kith process" in error_line(capsys)
    assert main(["migrate", "--dir", str(data.path)]) == 0  # released


# --- peer add / list / remove ------------------------------------------------------------

OAK_POD = signing_key("oak:root").public_b64
ASH_POD = signing_key("ash:root").public_b64


def peer_list_json(data: DataDir, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["peer", "list", "--dir", str(data.path), "--json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def test_peer_add_list_remove_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = init(tmp_path / "pod")
    d = ["--dir", str(data.path)]
    capsys.readouterr()
    assert main(["peer", "list", *d]) == 0
    assert "No peers" in capsys.readouterr().out

    url = "wss://oak.example:8470/v1/federation"
    assert main(["peer", "add", url, "--pod", OAK_POD, *d]) == 0
    out = capsys.readouterr().out
    assert f"Added peer {OAK_POD} at {url}" in out
    assert "a running node picks it up within seconds" in out
    assert stat.S_IMODE(data.peers_path.stat().st_mode) == 0o600
    lan = "ws://10.0.0.9:8470/v1/federation"
    assert main(["peer", "add", lan, "--pod", ASH_POD, "--insecure", *d]) == 0
    assert "--insecure" in capsys.readouterr().out
    first_added = peer_list_json(data, capsys)["peers"][0]["added_ms"]

    moved = "wss://oak.example:9000/v1/federation"
    assert main(["peer", "add", moved, "--pod", OAK_POD, *d]) == 0
    assert f"Updated peer {OAK_POD}: {url} -> {moved}" in capsys.readouterr().out
    assert main(["peer", "add", moved, "--pod", OAK_POD, *d]) == 0
    assert "already listed" in capsys.readouterr().out

    doc = peer_list_json(data, capsys)
    assert doc["node"] == "node not running"
    assert [(p["pod"], p["url"], p["insecure"], p["state"], p["lag"]) for p in doc["peers"]] == [
        (OAK_POD, moved, False, "node not running", None),
        (ASH_POD, lan, True, "node not running", None),
    ]
    assert doc["peers"][0]["added_ms"] == first_added  # an update keeps the first date

    assert main(["peer", "list", *d]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "node not running"
    header = ["POD", "URL", "INSECURE", "RECEIVED", "SENT", "REJECTED", "STATE", "LAG"]
    assert table[1].split() == header
    assert table[2].split() == [OAK_POD, moved, "no", "-", "-", "-", "node", "not", "running"]
    assert table[3].split() == [ASH_POD, lan, "yes", "-", "-", "-", "node", "not", "running"]

    assert main(["peer", "remove", OAK_POD, *d]) == 0
    assert f"Removed peer {OAK_POD}" in capsys.readouterr().out
    assert [p["pod"] for p in peer_list_json(data, capsys)["peers"]] == [ASH_POD]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["add", "ws://oak.example:8470/v1/federation", "--pod", OAK_POD],
            "plain ws:// to oak.example would send events unencrypted",
        ),
        (["add", "wss://oak.example:8470/v1/stream", "--pod", OAK_POD], "the path must be"),
        (["add", "https://oak.example/v1/federation", "--pod", OAK_POD], "starts with wss://"),
        (["add", "wss://oak.example/v1/federation", "--pod", "oak"], "is not a pod id"),
        (["add", "wss://oak.example/v1/federation", "--pod", "{own}"], "this node's own pod"),
        (["remove", OAK_POD], "is not a peer here"),
    ],
    ids=["ws-non-loopback", "path", "scheme", "pod-id", "own-pod", "remove-unknown"],
)
def test_peer_bad_input_is_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = init(tmp_path / "pod")
    capsys.readouterr()
    args = [a.replace("{own}", data.config().pod) for a in argv]
    assert main(["peer", *args, "--dir", str(data.path)]) == 1
    assert message in error_line(capsys)
    assert not data.peers_path.exists()  # nothing written


def test_peer_commands_on_a_damaged_peers_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = init(tmp_path / "pod")
    data.peers_path.write_bytes(b'{"peers": [')
    capsys.readouterr()
    for argv in (
        ["list"],
        ["add", "wss://oak.example/v1/federation", "--pod", OAK_POD],
        ["remove", OAK_POD],
    ):
        assert main(["peer", *argv, "--dir", str(data.path)]) == 1
        line = error_line(capsys)
        assert f"{data.peers_path} is damaged" in line
    assert data.peers_path.read_bytes() == b'{"peers": ['  # left for a person to look at


@pytest.mark.parametrize(
    ("info", "node", "states"),
    [
        # The node reports federation: each listed peer's state and lag.
        (
            {
                "federation": {
                    "peers": [
                        {"pod": OAK_POD, "state": "live", "lag": 3, "url": "x"},
                        {"pod": ASH_POD, "state": "dialling", "lag": {"in": 2, "out": None}},
                        {"pod": "someone-else", "state": "live", "lag": 0},
                    ]
                }
            },
            "running",
            [("live", 3), ("dialling", {"in": 2, "out": None})],
        ),
        ({}, "running", [("unknown", None), ("unknown", None)]),  # no "federation" key yet
        ({"federation": {"peers": "?"}}, "running", [("unknown", None), ("unknown", None)]),
        ({"pod": "another"}, "another node answers", [("node not running", None)] * 2),
    ],
    ids=["live", "no-federation-key", "odd-federation-key", "another-pod"],
)
def test_peer_list_shows_the_running_nodes_view(
    info: dict[str, Any],
    node: str,
    states: list[tuple[str, int | None]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = init(tmp_path / "pod")
    config = data.config()
    d = ["--dir", str(data.path)]
    assert main(["peer", "add", "wss://oak.example/v1/federation", "--pod", OAK_POD, *d]) == 0
    assert main(["peer", "add", "wss://ash.example/v1/federation", "--pod", ASH_POD, *d]) == 0
    asked: list[str] = []

    def fake_info(self: KithClient) -> dict[str, Any]:
        asked.append(self.url)
        return {"pod": config.pod, **info}

    monkeypatch.setattr(KithClient, "info", fake_info)
    doc = peer_list_json(data, capsys)
    assert asked == [f"http://{config.host}:{config.port}"]
    assert doc["node"].startswith(node)
    assert [(p["state"], p["lag"]) for p in doc["peers"]] == states
    if node == "running":
        assert main(["peer", "list", *d]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"node running at http://{config.host}:{config.port}")
        if states[0] == ("live", 3):
            assert out.splitlines()[2].split()[-2:] == ["live", "3"]
            assert out.splitlines()[3].split()[-3:] == ["dialling", "in", "2"]


def test_peer_list_reaches_a_node_bound_to_every_interface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = init(tmp_path / "pod", "--host", "0.0.0.0")
    asked: list[str] = []

    def fake_info(self: KithClient) -> dict[str, Any]:
        asked.append(self.url)
        return {"pod": data.config().pod}

    monkeypatch.setattr(KithClient, "info", fake_info)
    assert peer_list_json(data, capsys)["node"].startswith("running at http://127.0.0.1:")
    config = data.config()
    data.write_config(msgspec.structs.replace(config, host="::1"))
    peer_list_json(data, capsys)
    assert asked[-1] == f"http://[::1]:{config.port}"


def test_peer_list_against_a_real_running_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The node that answers at the configured address is asked (state from its info doc)."""
    import uvicorn

    from node.api import build_app

    data = init(tmp_path / "pod")
    d = ["--dir", str(data.path)]
    assert main(["peer", "add", "wss://oak.example/v1/federation", "--pod", OAK_POD, *d]) == 0
    config = data.config()
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(Node(data)),
            host=config.host,
            port=config.port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name="kith-test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        doc = peer_list_json(data, capsys)
        assert doc["node"] == f"running at http://{config.host}:{config.port}"
        [peer] = doc["peers"]
        assert peer["pod"] == OAK_POD and peer["state"] not in ("node not running", "")
    finally:
        server.should_exit = True
        thread.join(20)
    assert not thread.is_alive()


def test_ids_that_start_with_a_dash_are_read_as_values_not_options() -> None:
    from node.cli import _glue_ids

    dash = "-" + "A" * 42
    assert _glue_ids(["post", "claim", "--need", dash, "--key", "k"]) == [
        "post",
        "claim",
        f"--need={dash}",
        "--key",
        "k",
    ]
    assert _glue_ids(["peer", "remove", dash, "--dir", "d"]) == [
        "peer",
        "remove",
        "--dir",
        "d",
        "--",
        dash,
    ]
    assert _glue_ids(["--need=" + dash]) == ["--need=" + dash]
    args = build_parser().parse_args(_glue_ids(["peer", "remove", dash, "--dir", "d"]))
    assert args.pod == dash and args.dir == "d"
    args = build_parser().parse_args(_glue_ids(["post", "claim", "--key", "k", "--need", dash]))
    assert args.need == dash


# --- time windows, gatherings and the calendar ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "field", "windows"),
    [
        (
            [
                "need",
                "--title",
                "T",
                "--category",
                "food",
                "--from",
                "2026-03-01T18:00Z",
                "--until",
                "2026-03-01T19:30Z",
            ],
            "window",
            {"start": 1772388000000, "end": 1772393400000},
        ),
        (
            [
                "offer",
                "--title",
                "T",
                "--category",
                "ride",
                "--window",
                "2026-03-01T18:00Z/2026-03-01T19:00Z",
                "--window",
                "2026-03-02T18:00+00:00/2026-03-02T19:00+00:00",
            ],
            "windows",
            [
                {"start": 1772388000000, "end": 1772391600000},
                {"start": 1772474400000, "end": 1772478000000},
            ],
        ),
        (
            [
                "offer",
                "--title",
                "T",
                "--category",
                "ride",
                "--from",
                "2026-03-01T18:00Z",
                "--until",
                "2026-03-01T19:00Z",
                "--from",
                "2026-03-02T18:00Z",
                "--until",
                "2026-03-02T19:00Z",
            ],
            "windows",
            [
                {"start": 1772388000000, "end": 1772391600000},
                {"start": 1772474400000, "end": 1772478000000},
            ],
        ),
    ],
    ids=["need", "offer-windows", "offer-pairs"],
)
def test_posts_take_time_windows(argv: list[str], field: str, windows: object) -> None:
    from node.cli import _post_body

    args = build_parser().parse_args(["post", argv[0], "--key", "k", *argv[1:]])
    assert _post_body(args)[1][field] == windows


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["need", "--from", "2026-03-01T18:00Z", "--until", "2026-03-01T17:00Z"],
            "kith: error: the window must end after it starts"
            " (2026-03-01T18:00Z → 2026-03-01T17:00Z)",
        ),
        (
            ["offer", "--window", "2026-03-01T18:00Z/2026-03-01T18:00Z"],
            "kith: error: the window must end after it starts",
        ),
        (["offer", "--window", "tomorrow"], "kith: error: 'tomorrow' is not a window"),
        (["need", "--from", "2026-03-01T18:00Z"], "kith: error: give --from and --until in pairs"),
        (["need", "--from", "soon", "--until", "later"], "kith: error: 'soon' is not an ISO 8601"),
        (
            ["need", *["--from", "2026-03-01T18:00Z", "--until", "2026-03-01T19:00Z"] * 2],
            "kith: error: a need has one time window",
        ),
    ],
)
def test_bad_windows_are_one_line_errors_before_sending(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "ada.key"
    assert main(["key", "new", "--out", str(key)]) == 0
    capsys.readouterr()
    what, *rest = argv
    full = ["post", what, "--key", str(key), "--url", "http://127.0.0.1:9"]
    full += ["--title", "T", "--category", "food", *rest]
    assert main(full) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_gatherings_and_calendar_feeds_against_a_running_node(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import urllib.error
    import urllib.request

    import icalendar

    paths = {name: tmp_path / f"{name}.key" for name in ("ada", "bo")}
    for path in paths.values():
        assert main(["key", "new", "--out", str(path)]) == 0
        argv = ["member", "add", "--dir", str(served.data.path), "--key-file", str(path)]
        assert main([*argv, "--url", served.url]) == 0
    capsys.readouterr()

    def kith(who: str | None, *argv: str) -> str:
        key = ["--key", str(paths[who])] if who else []
        assert main([*argv, *key, "--url", served.url]) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    when = ["--from", "2030-05-01T18:00Z", "--until", "2030-05-01T20:00Z"]
    out = kith("ada", "gathering", "schedule", "--title", "Seed swap", "--kind", "skill_share",
               *when, "--place", "Park", "--scope", "public")  # fmt: skip
    swap = recorded_id(out, "gathering.scheduled")
    out = kith("ada", "gathering", "schedule", "--title", "Supper", "--kind", "peer_support",
               *when, "--place-private", "12 Elm St", "--capacity", "1")  # fmt: skip
    assert "place sealed" in out
    supper = recorded_id(out, "gathering.scheduled")
    assert "gathering.rsvp recorded" in kith("bo", "gathering", "rsvp", supper, "--answer", "yes")

    listed = kith("bo", "gathering", "list", "--upcoming")
    assert "Supper" in listed and "yes 1/1 full" in listed and "at 12 Elm St" in listed
    public = kith(None, "gathering", "list")
    assert "Seed swap" in public and "Supper" not in public
    kith("ada", "gathering", "cancel", swap, "--reason", "rain")
    assert "[cancelled]" in kith(None, "gathering", "list")
    # Bo may not cancel Ada's supper: stored, changes nothing, said with its reason, exit 1.
    assert (
        main(["gathering", "cancel", supper, "--key", str(paths["bo"]), "--url", served.url]) == 1
    )
    assert "(effect:not-organiser)" in capsys.readouterr().err

    with urllib.request.urlopen(served.url + "/v1/calendar.ics") as response:
        feed = icalendar.Calendar.from_ical(response.read())
    [event] = feed.walk("VEVENT")
    assert str(event["UID"]) == f"{swap}@kith" and str(event["STATUS"]) == "CANCELLED"

    url = kith("ada", "calendar", "feed", "new").splitlines()[0]
    with urllib.request.urlopen(url) as response:
        private = icalendar.Calendar.from_ical(response.read())
    assert {str(e["SUMMARY"]) for e in private.walk("VEVENT")} == {"Seed swap", "Supper"}
    assert "12 Elm" not in private.to_ical().decode()
    [line] = kith("ada", "calendar", "feed", "list").splitlines()
    feed_id = line.split()[0]
    assert "live" in line
    assert f"feed {feed_id} revoked" in kith("ada", "calendar", "feed", "revoke", feed_id)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url)
    assert info.value.code == 404 and json.loads(info.value.read())["reason"] == "revoked"
    assert "revoked" in kith("ada", "calendar", "feed", "list")
