"""Matching and neighbours' items as people meet them: `kith match` against a real `kith serve`,
and a neighbour's public need and offer reaching another real node's lists by federation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol.tokens import make_token
from tests.integration.conftest import Pod, Poster, free_port, kith, member
from tests.integration.test_federation import held, info, peer, peer_state, wait_for

HOUR = 3600 * 1000


def window(start_h: int, end_h: int) -> dict[str, int]:
    now = int(time.time() * 1000)
    return {"start": now + start_h * HOUR, "end": now + end_h * HOUR}


def test_kith_match_prints_each_match_with_its_reasons(pod: Pod, tmp_path: Path) -> None:
    pod.start()
    pod_id = info(pod)["pod"]
    ada = member(pod, tmp_path, "ada")
    bo = member(pod, tmp_path, "bo")
    cy = member(pod, tmp_path, "cy")
    asks = Poster(pod.url, ada, pod_id)
    body = {
        "title": "Soup for two",
        "category": "food",
        "urgency": "high",
        "area": "North End",
        "window": window(1, 5),
    }
    (need,) = asks.post([asks.sign("need.posted", body)])
    for key, title, area in ((bo, "Bo cooks", "North End"), (cy, "Cy bakes", "Docklands")):
        poster = Poster(pod.url, key, pod_id)
        offer = {"title": title, "category": "food", "area": area, "windows": [window(2, 6)]}
        poster.post([poster.sign("offer.posted", offer)])

    out = kith("match", need, "--key", str(tmp_path / "ada.key"), "--url", pod.url).stdout
    lines = out.splitlines()
    assert lines[0].startswith(f"need {need}  open  food/high  'Soup for two' in North End")
    assert lines[1] == "2 matches, best first, helpers' load over the last 14 days:"
    assert lines[2].startswith("1. 'Bo cooks'  score 180")
    assert "     - offers food, which this need asks for (category)" in lines
    assert "     - available while the need is open (window-overlap)" in lines
    assert "     - also in North End (same-area)" in lines
    assert "     - helped 0 needs in the last 14 days (low-load)" in lines
    assert any(line.startswith("2. 'Cy bakes'  score 155") for line in lines)

    ada_key = str(tmp_path / "ada.key")
    short = kith("match", need, "--key", ada_key, "--url", pod.url, "--limit", "1").stdout
    assert "2. " not in short and short.splitlines()[-1].startswith("... and 1 more")
    (lonely,) = asks.post([asks.sign("need.posted", {**body, "category": "pets", "area": "Hill"})])
    nothing = kith("match", lonely, "--key", ada_key, "--url", pod.url).stdout
    assert nothing.splitlines()[1] == "no open offer matches this need yet"

    # Anyone may ask about a public need only; a pod need is "not found" to them.
    hidden = kith("match", need, "--url", pod.url, check=False)
    assert hidden.returncode == 1
    assert hidden.stderr.count("\n") == 1 and "not-found" in hidden.stderr
    unknown = kith(
        "match", "A" * 43, "--key", str(tmp_path / "ada.key"), "--url", pod.url, check=False
    )
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.startswith("kith: error: ") and "HTTP 404: not-found" in unknown.stderr
    assert unknown.stderr.count("\n") == 1


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Pod, Pod]]:
    made = []
    for name in ("a", "b"):
        port = free_port()
        kith("init", "--dir", str(tmp_path / name), "--name", f"Pod {name}", "--port", str(port))
        p = Pod(tmp_path / name, port)
        p.start()
        made.append(p)
    yield made[0], made[1]
    for p in made:
        p.stop()


def listed(node: Pod, path: str, token: str | None = None, **params: Any) -> Any:
    headers = {} if token is None else {"authorization": "Kith " + token}
    response = httpx.get(node.url + path, params=params, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_neighbours_public_need_and_offer_show_in_the_lists_with_their_pod(
    two: tuple[Pod, Pod], tmp_path: Path
) -> None:
    a, b = two
    peer(a, b)
    wait_for(lambda: peer_state(a, b).get("state") == "live", what="A–B live")
    pod_a, pod_b = info(a)["pod"], info(b)["pod"]
    amara = member(a, tmp_path, "amara")
    obi = member(a, tmp_path, "obi")
    bea = member(b, tmp_path, "bea")
    (public_need,) = Poster(a.url, amara, pod_a, "public").need("Ride to the clinic", "ride")
    (peers_need,) = Poster(a.url, amara, pod_a, "peers").need("Groceries, peers only")
    offers = Poster(a.url, obi, pod_a, "public")
    (public_offer,) = offers.post(
        [offers.sign("offer.posted", {"title": "I drive", "category": "ride"})]
    )
    (own_need,) = Poster(b.url, bea, pod_b).need("Bea's own need")

    wait_for(
        lambda: {public_need, peers_need, public_offer} <= held(b).keys(), what="A's events at B"
    )
    bea_token = make_token(
        bea, purpose="http", node_key=info(b)["node_key"], now_ms=int(time.time() * 1000)
    )
    for token in (None, bea_token):
        needs = listed(b, "/v1/needs", token)
        assert (public_need, pod_a) in {(n["id"], n["pod"]) for n in needs}
        # A neighbour's peers-scope need stays out of the lists, whoever reads them.
        assert peers_need not in {n["id"] for n in needs}
    member_needs = {n["id"]: n for n in listed(b, "/v1/needs", bea_token)}
    assert member_needs.keys() == {public_need, own_need}
    assert member_needs[public_need]["title"] == "Ride to the clinic"
    assert [n["id"] for n in listed(b, "/v1/needs", bea_token, pod=pod_a)] == [public_need]
    assert [n["id"] for n in listed(b, "/v1/needs", bea_token, pod=pod_b)] == [own_need]
    both = listed(b, "/v1/needs", bea_token, pod=f"{pod_a},{pod_b}")
    assert {n["id"] for n in both} == {public_need, own_need}

    offers_at_b = listed(b, "/v1/offers")
    assert [(o["id"], o["pod"]) for o in offers_at_b] == [(public_offer, pod_a)]
    assert listed(b, "/v1/offers", pod=pod_b) == []
    # And B can match A's need with A's offer, for anyone to read (both are public).
    matches = listed(b, f"/v1/needs/{public_need}/matches")
    assert [m["offer"]["id"] for m in matches["matches"]] == [public_offer]
