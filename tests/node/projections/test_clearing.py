"""Inter-pod balances and nettable debt cycles on the pure functions of
``node.projections.clearing``: totals in, read models out, no store and no clock.

A total is ``(pod, peer_pod, minutes)``: the sum of ``pod``'s own ``clearing.recorded``
entries with ``peer_pod`` — positive when ``pod`` gave time, negative when it received.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from node.projections.clearing import (
    MAX_CYCLE,
    NettableCycle,
    PeerBalance,
    nettable_cycles,
    peer_balances,
)

HOME = "home"


def owes(debtor: str, creditor: str, minutes: int) -> tuple[str, str, int]:
    """The creditor's own entry: it gave ``minutes`` to the debtor."""
    return (creditor, debtor, minutes)


# --- peer_balances ---------------------------------------------------------------------


def test_own_and_peer_recorded_sides_that_agree() -> None:
    totals = [(HOME, "b", 90), ("b", HOME, -90)]
    assert peer_balances(HOME, totals, {}, 600) == [
        PeerBalance(
            peer_pod="b",
            balance_minutes=90,
            peer_recorded_minutes=90,
            agreed=True,
            limit_minutes=600,
            over_limit=False,
        )
    ]


def test_sides_that_disagree_are_shown_side_by_side() -> None:
    # We say we gave b 90 minutes; b's own entries say it received 60 from us.
    [balance] = peer_balances(HOME, [(HOME, "b", 90), ("b", HOME, -60)], {}, 600)
    assert (balance.balance_minutes, balance.peer_recorded_minutes) == (90, 60)
    assert balance.agreed is False


def test_a_debt_we_owe_is_negative_and_the_peer_side_is_negated_to_our_view() -> None:
    # b helped us for 45 minutes: b records +45 with us, we record -45 with b.
    [balance] = peer_balances(HOME, [("b", HOME, 45), (HOME, "b", -45)], {}, 600)
    assert (balance.balance_minutes, balance.peer_recorded_minutes) == (-45, -45)
    assert balance.agreed is True
    assert balance.over_limit is False


def test_only_our_side_known_yet() -> None:
    [balance] = peer_balances(HOME, [(HOME, "b", 30)], {}, 600)
    assert balance.peer_recorded_minutes is None
    assert balance.agreed is False
    assert balance.balance_minutes == 30


def test_only_the_peer_side_known_yet() -> None:
    [balance] = peer_balances(HOME, [("b", HOME, -30)], {}, 600)
    assert (balance.balance_minutes, balance.peer_recorded_minutes) == (0, 30)
    assert balance.agreed is False


def test_entries_between_other_pods_are_not_our_accounts() -> None:
    totals = [("b", "c", 50), ("c", "b", -50), (HOME, "c", 10)]
    assert [b.peer_pod for b in peer_balances(HOME, totals, {}, 600)] == ["c"]


def test_totals_for_one_peer_add_up() -> None:
    totals = [(HOME, "b", 30), (HOME, "b", -10), ("b", HOME, -5), ("b", HOME, -15)]
    [balance] = peer_balances(HOME, totals, {}, 600)
    assert (balance.balance_minutes, balance.peer_recorded_minutes) == (20, 20)


def test_peers_come_sorted_by_pod_id() -> None:
    totals = [(HOME, "zed", 1), ("mid", HOME, -1), (HOME, "alpha", 1)]
    assert [b.peer_pod for b in peer_balances(HOME, totals, {}, 600)] == ["alpha", "mid", "zed"]


def test_per_peer_limit_overrides_the_default() -> None:
    totals = [(HOME, "b", 100), (HOME, "c", 100)]
    balances = {b.peer_pod: b for b in peer_balances(HOME, totals, {"b": 50}, 600)}
    assert (balances["b"].limit_minutes, balances["b"].over_limit) == (50, True)
    assert (balances["c"].limit_minutes, balances["c"].over_limit) == (600, False)


def test_over_limit_only_past_the_limit() -> None:
    at = peer_balances(HOME, [(HOME, "b", 60)], {}, 60)
    past = peer_balances(HOME, [(HOME, "b", 61)], {}, 60)
    assert at[0].over_limit is False
    assert past[0].over_limit is True


def test_what_we_owe_is_never_over_our_limit() -> None:
    [balance] = peer_balances(HOME, [(HOME, "b", -5000)], {"b": 0}, 0)
    assert balance.over_limit is False


def test_no_totals_no_balances() -> None:
    assert peer_balances(HOME, [], {"b": 10}, 600) == []


# --- nettable_cycles -------------------------------------------------------------------


def test_a_three_cycle_is_reported_once_with_its_smallest_debt() -> None:
    totals = [owes("kilo", "alfa", 30), owes("alfa", "zulu", 20), owes("zulu", "kilo", 50)]
    # Reported from the smallest pod id, each pod owing the next: alfa → zulu → kilo → alfa.
    assert nettable_cycles(totals) == [NettableCycle(pods=("alfa", "zulu", "kilo"), minutes=20)]


def test_the_order_of_the_totals_does_not_matter() -> None:
    totals = [owes("kilo", "alfa", 30), owes("alfa", "zulu", 20), owes("zulu", "kilo", 50)]
    assert nettable_cycles(list(reversed(totals))) == nettable_cycles(totals)


def test_a_two_cycle() -> None:
    totals = [owes("b", "a", 10), owes("a", "b", 4)]
    assert nettable_cycles(totals) == [NettableCycle(pods=("a", "b"), minutes=4)]


def test_a_chain_is_not_a_cycle() -> None:
    assert nettable_cycles([owes("a", "b", 10), owes("b", "c", 10)]) == []


def test_giving_to_oneself_is_not_a_cycle() -> None:
    assert nettable_cycles([("a", "a", 10)]) == []


def test_only_positive_totals_make_edges() -> None:
    ring = [owes("a", "b", 10), owes("b", "c", 10)]
    # The receiving side of each entry (negative) is the same debt seen from the other pod:
    # it adds no edge, so b's -10 with c does not close a → b → c → a.
    assert nettable_cycles([*ring, ("a", "c", -10), ("b", "a", -10)]) == []
    assert nettable_cycles([*ring, owes("c", "a", 0)]) == []
    assert nettable_cycles([*ring, owes("c", "a", 1)]) == [
        NettableCycle(pods=("a", "b", "c"), minutes=1)
    ]


def test_positive_totals_for_one_edge_add_up() -> None:
    totals = [owes("a", "b", 50), owes("b", "a", 3), owes("b", "a", 4)]
    assert nettable_cycles(totals) == [NettableCycle(pods=("a", "b"), minutes=7)]


def ring(n: int) -> list[tuple[str, str, int]]:
    """p0 owes p1 owes … owes p(n-1) owes p0, 10 minutes each."""
    pods = [f"p{i}" for i in range(n)]
    return [owes(pods[i], pods[(i + 1) % n], 10) for i in range(n)]


def test_a_cycle_of_max_length_is_found() -> None:
    assert nettable_cycles(ring(MAX_CYCLE)) == [
        NettableCycle(pods=tuple(f"p{i}" for i in range(MAX_CYCLE)), minutes=10)
    ]


def test_cycles_longer_than_max_are_ignored() -> None:
    assert nettable_cycles(ring(MAX_CYCLE + 1)) == []


def test_every_simple_cycle_is_reported() -> None:
    # a ⇄ b, and a → b → c → a: two cycles sharing the edge a → b.
    totals = [owes("a", "b", 10), owes("b", "a", 2), owes("b", "c", 5), owes("c", "a", 7)]
    assert sorted(nettable_cycles(totals), key=lambda c: c.pods) == [
        NettableCycle(pods=("a", "b"), minutes=2),
        NettableCycle(pods=("a", "b", "c"), minutes=5),
    ]


# --- netting keeps every pod's position ----------------------------------------------------

PODS = st.sampled_from(["a", "b", "c", "d", "e"])
TOTALS = st.dictionaries(st.tuples(PODS, PODS), st.integers(-100, 100), max_size=20)


def positions(edges: dict[tuple[str, str], int]) -> dict[str, int]:
    """What each pod is owed minus what it owes, over the positive totals (the debts)."""
    net: dict[str, int] = defaultdict(int)
    for (creditor, debtor), minutes in edges.items():
        if minutes > 0:
            net[creditor] += minutes
            net[debtor] -= minutes
    return {pod: value for pod, value in net.items() if value}


@given(TOTALS)
def test_netting_a_cycle_never_changes_a_pods_net_position(
    totals: dict[tuple[str, str], int],
) -> None:
    before = positions(totals)
    cycles = nettable_cycles((g, p, m) for (g, p), m in totals.items())
    assert len({c.pods for c in cycles}) == len(cycles)  # each cycle once
    for cycle in cycles:
        pods = cycle.pods
        assert 2 <= len(pods) <= MAX_CYCLE
        assert len(set(pods)) == len(pods)
        assert pods[0] == min(pods)
        netted = dict(totals)
        debts = []
        for i, debtor in enumerate(pods):
            creditor = pods[(i + 1) % len(pods)]
            debts.append(totals[(creditor, debtor)])
            netted[(creditor, debtor)] -= cycle.minutes
        assert cycle.minutes == min(debts) > 0
        assert all(netted[(pods[(i + 1) % len(pods)], d)] >= 0 for i, d in enumerate(pods))
        assert positions(netted) == before
