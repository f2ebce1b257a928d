"""Inter-pod time-bank balances, trust lines and nettable cycles — computed when read.

Each pod records its own side of the time given across pods (``clearing.recorded``, tied to a
fulfilled referral: see ``overflow``); the projection keeps the valid sides in ``pj_clearing``.
This module turns those sides into what a coordinator reads:

* per peer pod, the balance as **this pod** recorded it (positive: the peer owes us) beside the
  balance as **the peer** recorded it (its own entries, which reach us over federation) — equal
  when both books agree;
* the **trust line**: how much of a peer's debt this pod accepts (``limit_minutes``, a pod's own
  policy, as Komunitin's inter-community credit limit). Past it, new assignments from that peer
  are *flagged* to coordinators, never refused: a limit is policy, never validity;
* **nettable cycles**: debts that go round (A owes B, B owes C, C owes A) can be cancelled by
  the smallest of them without anyone's balance changing — shown, never applied automatically.

Nothing here is stored or hashed: limits are local policy and change without events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

__all__ = ["NettableCycle", "PeerBalance", "nettable_cycles", "peer_balances"]

#: Longest debt cycle looked for; pods federate with few neighbours, so cycles are short.
MAX_CYCLE = 6


class PeerBalance(msgspec.Struct, frozen=True, kw_only=True):
    """This pod's account with one neighbour pod, in minutes.

    ``balance_minutes`` > 0: the peer owes us (we gave more); < 0: we owe the peer.
    ``peer_recorded_minutes`` is the same account as the peer's own entries tell it (negated to
    our point of view), ``None`` when none of its entries reached us yet.
    """

    peer_pod: str
    balance_minutes: int
    peer_recorded_minutes: int | None
    agreed: bool
    limit_minutes: int
    over_limit: bool


class NettableCycle(msgspec.Struct, frozen=True, kw_only=True):
    """Pods whose debts go round: each owes the next (the last owes the first) at least
    ``minutes``, so that much could be cancelled on every edge at once."""

    pods: tuple[str, ...]
    minutes: int


Totals = Iterable[tuple[str, str, int]]


def peer_balances(
    pod: str, totals: Totals, limits: Mapping[str, int], default_limit: int
) -> list[PeerBalance]:
    """This pod's balance with every pod it or a peer recorded clearing with."""
    own: dict[str, int] = {}
    theirs: dict[str, int] = {}
    for giver, peer, minutes in totals:
        if giver == pod:
            own[peer] = own.get(peer, 0) + minutes
        elif peer == pod:
            theirs[giver] = theirs.get(giver, 0) - minutes
    out = []
    for peer in sorted(own.keys() | theirs.keys()):
        balance = own.get(peer, 0)
        recorded = theirs.get(peer)
        limit = limits.get(peer, default_limit)
        out.append(
            PeerBalance(
                peer_pod=peer,
                balance_minutes=balance,
                peer_recorded_minutes=recorded,
                agreed=recorded == balance,
                limit_minutes=limit,
                over_limit=balance > limit,
            )
        )
    return out


def nettable_cycles(totals: Totals) -> list[NettableCycle]:
    """Simple cycles of debt among the pods whose own entries are known here.

    Each pod's own entries are the edges: a pod that gave ``m`` net minutes to a peer is owed
    ``m`` by it (edge peer → pod). Each cycle is reported once, starting at its smallest pod id.
    """
    owes: dict[str, dict[str, int]] = {}
    for giver, peer, minutes in totals:
        if minutes > 0:
            owes.setdefault(peer, {})[giver] = owes.get(peer, {}).get(giver, 0) + minutes
    cycles: list[NettableCycle] = []

    def walk(start: str, path: list[str], smallest: int) -> None:
        for creditor, minutes in sorted(owes.get(path[-1], {}).items()):
            low = min(smallest, minutes)
            if creditor == start and len(path) > 1:
                cycles.append(NettableCycle(pods=tuple(path), minutes=low))
            elif creditor > start and creditor not in path and len(path) < MAX_CYCLE:
                walk(start, [*path, creditor], low)

    for start in sorted(owes):
        walk(start, [start], 1 << 62)
    return cycles
