"""``kith invite create|list|revoke`` against a real node serving HTTP on loopback; the
newcomer's side is the public route the board uses, ``POST /v1/invites/redeem``."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from node.cli import main
from node.cli.invites import parse_expires
from node.datadir import read_key_file
from protocol.crypto import SigningKey
from protocol.reasons import KithError
from protocol.tokens import make_token
from tests.node.test_cli import Served, recorded_id, served

__all__ = ["served"]

LINK = re.compile(r"^  (http://pods\.example:8470/#join/([A-Za-z0-9_-]{22}))$", re.M)


def redeem(served: Served, code: str, seed: bytes, name: str | None = None) -> httpx.Response:
    """What a newcomer's browser does: its own key, a token signed by it, the code."""
    key = SigningKey.from_seed(seed)
    node_key = httpx.get(served.url + "/.well-known/kith").json()["node_key"]
    token = make_token(key, purpose="http", node_key=node_key, now_ms=int(time.time() * 1000))
    body = {"code": code, "key": key.public_b64, "box_key": key.public_b64, "name": name}
    return httpx.post(
        served.url + "/v1/invites/redeem", json=body, headers={"authorization": f"Kith {token}"}
    )


@pytest.fixture
def cora(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "cora.key"
    assert main(["key", "new", "--out", str(path)]) == 0
    argv = ["member", "add", "--dir", str(served.data.path), "--key-file", str(path)]
    assert main([*argv, "--role", "coordinator", "--url", served.url]) == 0
    capsys.readouterr()
    return path


def fails(capsys: pytest.CaptureFixture[str], words: str, argv: list[str]) -> None:
    """The command fails with exit code 1 and says ``words`` (no traceback)."""
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err


def kith(capsys: pytest.CaptureFixture[str], key: Path, served: Served, *argv: str) -> str:
    assert main([*argv, "--key", str(key), "--url", served.url]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return out.out


def test_create_list_and_join_by_link(
    served: Served, cora: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svg = tmp_path / "invite.svg"
    out = kith(
        capsys, cora, served, "invite", "create", "--approve", "auto", "--expires", "2h",
        "--link", "http://pods.example:8470", "--qr", str(svg),
    )  # fmt: skip
    invite = recorded_id(out, "invite.created")
    [(_, code)] = LINK.findall(out)
    assert "▀" in out or "█" in out  # the QR code, drawn in the terminal
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    assert "expires in 2 hours" in out
    listed = kith(capsys, cora, served, "invite", "list")
    assert f"[open] {invite}" in listed and "joins at once" in listed
    answer = redeem(served, code, b"n" * 32, "Nia")
    assert answer.json()["status"] == "added", answer.text
    listed = kith(capsys, cora, served, "invite", "list")
    assert f"[used] {invite}" in listed
    assert SigningKey.from_seed(b"n" * 32).public_b64 in listed
    fails(
        capsys,
        "used already",
        ["invite", "revoke", invite, "--key", str(cora), "--url", served.url],
    )


def test_approve_and_decline_from_the_terminal(
    served: Served, cora: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = kith(capsys, cora, served, "invite", "create", "--link", "http://pods.example:8470")
    invite = recorded_id(out, "invite.created")
    [(_, code)] = LINK.findall(out)
    assert "a coordinator approves them" in out
    assert redeem(served, code, b"b" * 32, "Bo Lind").json()["status"] == "pending"
    listed = kith(capsys, cora, served, "invite", "list")
    assert f"[pending] {invite}" in listed
    bo = SigningKey.from_seed(b"b" * 32).public_b64
    assert f"Waiting: Bo Lind on invite {invite}" in listed
    argv = ["member", "add", "--dir", str(served.data.path), "--key", bo, "--box-key", bo]
    assert main([*argv, "--invite", invite, "--url", served.url]) == 0
    capsys.readouterr()
    listed = kith(capsys, cora, served, "invite", "list")
    assert f"[used] {invite}" in listed and "Waiting" not in listed

    out = kith(capsys, cora, served, "invite", "create", "--no-qr")
    other = recorded_id(out, "invite.created")
    assert "█" not in out and "▀" not in out
    code = re.search(r"#join/([A-Za-z0-9_-]+)", out)
    assert code is not None
    out = kith(capsys, cora, served, "invite", "revoke", other)
    assert "invite.revoked recorded" in out
    refused = redeem(served, code.group(1), b"c" * 32)
    assert (refused.status_code, refused.json()["reason"]) == (409, "invite:revoked")


def test_wrong_flags_say_what_is_wanted(
    served: Served, cora: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["invite", "create", "--approve", "always", "--key", str(cora)])
    assert "invalid choice: 'always'" in capsys.readouterr().err
    for text, words in (("soon", "30m, 72h or 7d"), ("31d", "between 10m and 30d"), ("5m", "10m")):
        with pytest.raises(KithError, match=words):
            parse_expires(text)
    assert parse_expires("72h") == 72 * 3_600_000
    fails(
        capsys, "invite's id", ["invite", "revoke", "nope", "--key", str(cora), "--url", served.url]
    )
    fails(
        capsys, "no invite", ["invite", "revoke", "A" * 43, "--key", str(cora), "--url", served.url]
    )
    argv = ["member", "add", "--dir", str(served.data.path), "--key", "A" * 43]
    fails(
        capsys,
        "only ever makes a member",
        [*argv, "--box-key", "A" * 43, "--role", "coordinator", "--invite", "A" * 43],
    )
    # A plain member may not list invites.
    ada = tmp_path / "ada.key"
    assert main(["key", "new", "--out", str(ada)]) == 0
    argv = ["member", "add", "--dir", str(served.data.path), "--key-file", str(ada)]
    assert main([*argv, "--url", served.url]) == 0
    fails(capsys, "coordinators only", ["invite", "list", "--key", str(ada), "--url", served.url])
    fails(capsys, "coordinators only", ["invite", "create", "--key", str(ada), "--url", served.url])
    assert read_key_file(ada).public
    capsys.readouterr()
    assert main(["invite", "create", "--no-qr", "--key", str(cora), "--url", served.url]) == 0
    assert "a phone cannot reach" in capsys.readouterr().err
