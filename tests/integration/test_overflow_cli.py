"""Overflow as a coordinator does it from a terminal: `kith overflow …`, `kith post`, `kith
details` against two real federated `kith serve` processes.

Each step checks what the person reads: the words, the ids, the sealed details opened (or not)
with their own key file, and the errors with their reasons.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Pod, TwoPods, pod_id


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Pods(TwoPods):
    def __init__(self, root: Path) -> None:
        people = [
            ("amara", "a", "member"),
            ("cora", "a", "coordinator"),
            ("bao", "b", "member"),
            ("bea", "b", "coordinator"),
        ]
        super().__init__(root, people, b_peer=("--credit-limit", "30"))


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[Pods]:
    made = Pods(tmp_path)
    yield made
    made.stop()


def last_id(output: str) -> str:
    return output.splitlines()[0].split()[-1]


def test_a_referral_from_the_command_line_with_sealed_details(pods: Pods) -> None:
    a, b = pods.a, pods.b
    marker = uuid.uuid4().hex
    out = pods.run(
        "amara", a, "post", "need", "--title", "Ride to dialysis", "--category", "ride",
        "--urgency", "high", "--area", "North", "--address", f"12 Elm {marker}",
    )  # fmt: skip
    assert "need.posted recorded (need posted): " in out and "personal details sealed" in out
    need = last_id(out)
    # The coordinator opens the sealed address with their own key file.
    assert f"address: 12 Elm {marker}" in pods.run("cora", a, "details", need)

    # A member cannot refer; a coordinator can, and is told what neighbours see.
    err = pods.run("amara", a, "overflow", "refer", need, ok=False)
    assert "HTTP 403" in err and "coordinators" in err
    out = pods.run("cora", a, "overflow", "refer", need)
    assert "referred to neighbour pods:" in out
    assert "they see only: ride/high, area North, 2 hop(s) left" in out
    referral = last_id(out)
    assert "Ride" not in out and marker not in out

    def incoming() -> str:
        return pods.run("bea", b, "overflow", "list")

    wait_for(lambda: referral in incoming(), "the referral to reach B")
    listing = incoming()
    assert "incoming (1)" in listing and "referred" in listing and marker not in listing

    # Only A assigns: B's coordinator is told why not.
    err = pods.run("bea", b, "overflow", "assign", referral, "--to", pod_id(b), ok=False)
    assert "overflow:not-origin" in err

    out = pods.run("bea", b, "overflow", "offer", referral, "--note", "we have a driver")
    assert "offer recorded:" in out
    wait_for(lambda: "offers 1" in pods.run("cora", a, "overflow", "list"), "the offer to reach A")
    out = pods.run("cora", a, "overflow", "assign", referral)  # the only offer: B
    assert f"assigned to {pod_id(b)} with details sealed to its coordinators" in out

    # B's coordinator opens the details; B's member cannot.
    wait_for(
        lambda: "need here:" in pods.run("bea", b, "overflow", "show", referral),
        "the assignment to become a need on B",
    )
    shown = pods.run("bea", b, "overflow", "show", referral)
    assert f"address: 12 Elm {marker}" in shown and "title: Ride to dialysis" in shown
    local = next(line for line in shown.splitlines() if "need here:" in line).split()[-1]
    assert marker not in pods.run("bao", b, "overflow", "show", referral)

    # B's member claims, B's coordinator accepts (re-sealing to the helper), the helper reads.
    claim = last_id(pods.run("bao", b, "post", "claim", "--need", local))
    out = pods.run("bea", b, "post", "accept", "--need", local, "--claim", claim)
    assert (
        "claim.accepted recorded (claim accepted: the helper is assigned): " in out
        and "personal details sealed" in out
    )
    assert f"address: 12 Elm {marker}" in pods.run("bao", b, "details", local)
    pods.run("bao", b, "post", "fulfil", "--need", local, "--minutes", "50")

    # Both pods: fulfilled, cleared on both sides; A's need is fulfilled too.
    def shown_on(who: str, pod: Pod) -> str:
        return pods.run(who, pod, "overflow", "show", referral)

    wait_for(lambda: "clearing by" in shown_on("cora", a).split("need here")[0], "clearing")
    wait_for(lambda: shown_on("cora", a).count("clearing by") == 2, "both clearing sides")
    on_a = shown_on("cora", a)
    assert "fulfilled at" in on_a and "50 min" in on_a
    assert f"clearing by {pod_id(b)[:8]}: +50 min" in on_a
    assert f"clearing by {pod_id(a)[:8]}: -50 min" in on_a
    assert "[fulfilled]" in pods.run("cora", a, "details", need)
