"""``kith proposal`` and ``GET /v1/proposals`` against a real node serving HTTP on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from node.cli import main
from node.client import KithClient
from node.datadir import read_key_file
from tests.node.conftest import Served


def test_a_pod_decides_how_to_share_the_food_boxes(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = {}
    for name in ("amara", "bao", "chen", "late"):
        path = tmp_path / f"{name}.key"
        assert main(["key", "new", "--out", str(path)]) == 0
        keys[name] = path
    for name in ("amara", "bao", "chen"):
        argv = ["member", "add", "--dir", str(served.data.path), "--key-file", str(keys[name])]
        assert main([*argv, "--url", served.url]) == 0
    capsys.readouterr()

    def kith(name: str, *argv: str) -> tuple[int, str, str]:
        code = main(["proposal", *argv, "--key", str(keys[name]), "--url", served.url])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = kith(
        "amara",
        "open",
        "--title",
        "How do we share this week's 20 food boxes?",
        "--option",
        "By need: larger households and those without income first",
        "--option",
        "Equal shares",
        "--closes",
        "2d",
    )
    assert code == 0, err
    assert "proposal.opened recorded (proposal opened: " in out and "votes count until" in out
    proposal = out.splitlines()[0].split()[-1]

    assert kith("bao", "vote", proposal, "2")[0] == 0
    code, out, _ = kith(
        "bao", "vote", proposal, "by need: larger households and those without income first"
    )
    assert code == 0 and "vote changed" in out and "you can change it until" in out
    code, out, _ = kith("chen", "vote", proposal, "1")
    assert code == 0 and "vote counted" in out

    # Someone who joined after it opened may read it, but their vote has no effect.
    argv = ["member", "add", "--dir", str(served.data.path), "--key-file", str(keys["late"])]
    assert main([*argv, "--url", served.url]) == 0
    capsys.readouterr()
    code, out, err = kith("late", "vote", proposal, "2")
    assert code == 1 and out == ""
    assert "changed nothing: only the pod's members as of the proposal's opening vote" in err

    code, out, err = kith("chen", "vote", proposal, "3")
    assert code == 1 and "'3' is not one of the options" in err and "1. By need" in err

    code, out, _ = kith("chen", "list", "--state", "open")
    assert code == 0
    assert "[open] How do we share this week's 20 food boxes?" in out and "2 voted" in out
    assert "* 1. By need: larger households and those without income first: 2  <- your vote" in out
    assert "  2. Equal shares: 0" in out

    chen = KithClient(served.url, read_key_file(keys["chen"]).signing_key())
    shown = chen.get(f"/v1/proposals/{proposal}")
    assert shown["tally"] == [2, 0] and shown["leading"] == [0]
    assert shown["you_voted"] is True and shown["your_choice"] == 0
    assert "votes" not in shown  # who voted for what is never served
    amara = KithClient(served.url, read_key_file(keys["amara"]).signing_key())
    assert amara.get(f"/v1/proposals/{proposal}")["you_voted"] is False
    assert chen.get("/v1/proposals", state="closed") == []

    # Anonymous readers see no pod proposal; unknown ids are a clear 404.
    assert httpx.get(f"{served.url}/v1/proposals").json() == []
    missing = httpx.get(f"{served.url}/v1/proposals/{proposal}")
    assert missing.status_code == 404 and missing.json()["reason"] == "not-found"
    assert kith("chen", "show", "A" * 43)[0] == 1


def test_bad_proposals_are_refused_before_anything_is_sent(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "k.key"
    assert main(["key", "new", "--out", str(path)]) == 0
    base = ["proposal", "open", "--key", str(path), "--url", served.url, "--title", "Q"]
    assert main([*base, "--option", "only one", "--closes", "2d"]) == 1
    assert "at least two --option" in capsys.readouterr().err
    assert main([*base, "--option", "a", "--option", "b", "--closes", "soon"]) == 1
    assert "give a span like 3d" in capsys.readouterr().err
    assert main([*base, "--option", "a", "--option", "b", "--closes", "2001-01-01"]) == 1
    assert "is in the past" in capsys.readouterr().err
    assert main([*base, "--option", "a", "--option", "a", "--closes", "1d"]) == 1
    assert "options must be unique" in capsys.readouterr().err
