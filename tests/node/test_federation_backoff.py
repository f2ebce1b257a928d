"""The dialler's reconnect backoff (``Federation._dial_forever``), with a fake dial and clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import node.federation as federation
from node.federation import BACKOFF_FIRST_S, Federation
from node.peers import PeerEntry
from tests.node.conftest import signing_key


async def backoff_delays(
    outcomes: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[float]:
    """The sleeps between dials when each dial fails, ends after going live, or ends early."""
    fed = Federation(SimpleNamespace(datadir=SimpleNamespace(path=tmp_path)))  # type: ignore[arg-type]
    fed._running = True
    entry = PeerEntry(
        pod=signing_key("oak").public_b64, url="ws://127.0.0.1:9/v1/federation", added_ms=0
    )
    delays: list[float] = []
    real_sleep = asyncio.sleep
    left = list(outcomes)

    async def dial(entry: PeerEntry) -> Any:
        outcome = left.pop(0)
        if not left:
            fed._running = False
        if outcome == "unreachable":
            raise OSError("ENETUNREACH")
        return SimpleNamespace(went_live=outcome == "live")  # "refused": closed before live

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(federation, "BACKOFF_JITTER", 0.0)
    monkeypatch.setattr(fed, "dial", dial)
    monkeypatch.setattr(federation.asyncio, "sleep", sleep)
    await asyncio.wait_for(fed._dial_forever(entry), 5)
    return delays


async def test_failures_double_the_delay_up_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays = await backoff_delays(["unreachable"] * 9, tmp_path, monkeypatch)
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert delays[0] == BACKOFF_FIRST_S


async def test_a_link_that_went_live_starts_the_next_backoff_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flapping link: each outage backs off from the first delay again, however many came
    # before, so a healed link is back within about a second (not 30 s after a few flaps).
    outcomes = ["unreachable", "unreachable", "live", "unreachable", "live", "live", "unreachable"]
    delays = await backoff_delays(outcomes, tmp_path, monkeypatch)
    assert delays == [0.5, 1, 0.5, 1, 0.5, 0.5, 1]


async def test_a_link_closed_before_going_live_keeps_backing_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A peer that accepts and then closes at once (refused, duplicate) is not hammered.
    delays = await backoff_delays(["refused"] * 4, tmp_path, monkeypatch)
    assert delays == [0.5, 1, 2, 4]
