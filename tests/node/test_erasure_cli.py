"""``kith erase`` against a real node serving HTTP on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.cli import main
from node.client import KithClient
from node.datadir import read_key_file
from tests.node.conftest import Served
from tests.node.test_cli import recorded_id


def test_erase_a_need_and_what_cannot_be_erased(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = {}
    for name in ("ada", "bo"):
        keys[name] = tmp_path / f"{name}.key"
        assert main(["key", "new", "--out", str(keys[name])]) == 0
        argv = ["member", "add", "--dir", str(served.data.path), "--key-file", str(keys[name])]
        assert main([*argv, "--url", served.url]) == 0
    capsys.readouterr()

    def kith(name: str, *argv: str) -> int:
        return main([*argv, "--key", str(keys[name]), "--url", served.url])

    marker = "MARKER-erase-4711"
    assert kith("ada", "post", "need", "--title", "Lift", "--category", "ride",
                "--details", f"ring at {marker}") == 0  # fmt: skip
    need = recorded_id(capsys.readouterr().out, "need.posted")
    assert kith("bo", "post", "claim", "--need", need) == 0
    claim = recorded_id(capsys.readouterr().out, "claim.made")

    assert kith("ada", "erasures") == 0
    assert "No erasures in this pod (that you may see)." in capsys.readouterr().out
    assert kith("bo", "erase", need) == 1  # not Bo's to erase
    assert "only its author or a coordinator may erase it (effect:not-allowed)" in (
        capsys.readouterr().err
    )
    assert kith("ada", "erase", need) == 0
    out = capsys.readouterr().out
    assert "event.redacted recorded (erased): " in out
    # What the receipts say: a pod-scope need never left this node.
    assert "erased; a pod-scope event never left this node, so no neighbour holds it" in out
    assert kith("ada", "erasures") == 0
    listed = capsys.readouterr().out
    assert need in listed and "need.posted" in listed and "never left this node" in listed
    assert marker not in listed
    assert kith("bo", "erasures") == 0  # Bo sees his own: the one that had no effect
    assert "no effect: only its author or a coordinator may erase it" in capsys.readouterr().out
    shown = KithClient(served.url, read_key_file(keys["ada"]).signing_key()).get(
        f"/v1/needs/{need}"
    )
    assert shown["title"] == "[removed]" and shown["redacted"] is True
    db = served.data.path / "kith.db"
    assert not any(
        marker.encode() in f.read_bytes() for f in (db, db.with_name("kith.db-wal")) if f.exists()
    )

    assert kith("bo", "erase", claim) == 1
    assert "records (claims, hours, roster, votes) are never erased" in capsys.readouterr().err
    assert kith("ada", "erase", "A" * 43) == 1
    assert "no event " + "A" * 43 + " on this node" in capsys.readouterr().err


def test_retention_is_set_shown_and_turned_off(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(served.data.path)
    assert main(["retention", "--dir", data]) == 0
    assert "kept (no retention set)" in capsys.readouterr().out
    assert main(["retention", "--days", "30", "--dir", data]) == 0
    assert "more than 30 days ago" in capsys.readouterr().out
    assert served.data.config().retention_days == 30
    assert main(["retention", "--dir", data]) == 0
    assert "closed more than 30 days ago are erased" in capsys.readouterr().out
    assert main(["retention", "--days", "0", "--dir", data]) == 1
    assert "--days must be a whole number of days from 1 to 36500" in capsys.readouterr().err
    assert main(["retention", "--off", "--dir", data]) == 0
    assert "Retention off" in capsys.readouterr().out
    assert served.data.config().retention_days is None
