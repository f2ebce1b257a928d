"""A pod that keeps its roster among its direct peers (``kith init --roster peers``, D43).

Its member changes are signed in ``peers`` scope, so strangers never see who or how many are in
it; its members post nothing ``public`` (nobody else could check who signed it); its box keys
are served to its members only. Tested through the real CLI against a real node on loopback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from node.cli import main
from node.client import KithClient
from node.datadir import DataDir, read_key_file
from tests.node.conftest import Served


def test_a_private_roster_stays_among_members_and_peers(
    serve: Callable[..., Served], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = serve("--roster", "peers", name="private")
    url, data = private.url, private.data
    assert DataDir(data.path).config().roster_scope == "peers"
    info = httpx.get(f"{url}/.well-known/kith").json()
    assert info["roster_scope"] == "peers"
    ada_file = tmp_path / "ada.key"
    assert main(["key", "new", "--out", str(ada_file)]) == 0
    argv = ["member", "add", "--dir", str(data.path), "--key-file", str(ada_file), "--url", url]
    assert main(argv) == 0
    assert "member.added recorded (member added)" in capsys.readouterr().out
    ada_key = read_key_file(ada_file)
    ada = KithClient(url, ada_key.signing_key())

    # The member change is in peers scope: an anonymous reader sees no member at all.
    anonymous = httpx.get(f"{url}/v1/events", params={"kinds": "member.*"}).json()["events"]
    assert anonymous == []
    mine = ada.get("/v1/events", kinds="member.added")["events"]
    assert [e["envelope"]["head"] for e in mine] and '"scope":"peers"' in mine[0]["envelope"][
        "head"
    ]
    # The box keys (and so the pod's size) for members only.
    keys = httpx.get(f"{url}/v1/pods/{info['pod']}/keys")
    assert keys.status_code == 401 and "direct peers" in keys.json()["message"]
    assert list(ada.get(f"/v1/pods/{info['pod']}/keys")["members"]) == [ada_key.public]

    # Members post in pod or peers scope; public is refused with the reason.
    body = {"title": "Soup", "category": "food", "urgency": "normal"}
    refused = ada.post("need.posted", body, scope="public")
    assert (refused["ok"], refused["reason"]) == (False, "invalid:roster-scope")
    assert "post in peers scope" in refused["message"]
    assert ada.post("need.posted", body, scope="peers")["ok"]
    # A member change signed in public scope, against the pod's choice, is refused too.
    cy_file = tmp_path / "cy.key"
    assert main(["key", "new", "--out", str(cy_file)]) == 0
    cy = read_key_file(cy_file)
    node = KithClient(url, DataDir(data.path).node_key().signing_key())
    wrong = node.post(
        "member.added",
        {"key": cy.public, "role": "member", "box_key": cy.box_public},
        scope="public",
    )
    assert (wrong["ok"], wrong["reason"]) == (False, "invalid:roster-scope")
    assert "peers scope" in wrong["message"]
