"""Collective decisions: a proposal and its votes, derived purely from facts (no SQL, no clock).

The rules (DESIGN §5, §7), each decided from the fact set alone so that every node agrees:

* ``proposal.opened`` by any member opens a question with 2..10 options and a ``closes_at``.
* Who may vote: the pod's **members as of the proposal's position** — a person whose
  ``member.added`` comes before the proposal in the one order of facts, ``(ts, id)``. Someone
  added later may read the proposal but their vote has no effect; so has a vote by the node or
  root key, which are not people.
* One counted vote per **person**, not per device key (``person`` folds device keys): the
  person's latest vote by ``(ts, id)`` with ``ts ≤ closes_at`` counts. A vote after
  ``closes_at`` has no effect, whatever it says.
* An option index outside the proposal's options has no effect.

Whether the proposal is ``open`` or ``closed`` is a read-time question (``proposal_status_at``):
the tally stored is what the votes cast by ``closes_at`` say, which no later arrival can change
except a vote that was cast in time and arrived late (as every projection, by set).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from node.projections.effects import Effect, applied, no_effect
from node.projections.facts import Fact, order
from node.projections.views import REMOVED

__all__ = [
    "ProposalStatus",
    "ProposalView",
    "derive_proposal",
    "explain_proposal",
    "proposal_status_at",
]

ProposalStatus = Literal["open", "closed"]


class ProposalView(msgspec.Struct, frozen=True, kw_only=True):
    """A proposal with its tally. ``votes`` maps each counted person to the option they chose:
    stored for the node's own use (``you_voted``), never served as is."""

    id: str
    pod: str
    author: str
    ts: int
    title: str
    details: str | None
    options: tuple[str, ...]
    closes_at: int
    tally: tuple[int, ...]
    votes: dict[str, int]
    scope: str
    redacted: bool


def _is_vote(f: Fact, proposal_id: str, pod: str) -> bool:
    return f.kind == "vote.cast" and f.subject == proposal_id and f.pod == pod


def _eligible(facts: list[Fact], opened: Fact) -> set[str]:
    """The people who were members when the proposal was opened."""
    return {
        f.subject
        for f in facts
        if f.kind == "member.added"
        and f.pod == opened.pod
        and f.subject is not None
        and order(f) < order(opened)
    }


def _refusal(f: Fact, opened: Fact, options: int, eligible: set[str]) -> Effect | None:
    """Why a vote does not count (never its timing relative to other votes), or ``None``."""
    data = opened.data
    if data is None or data.closes_at is None:
        return no_effect("no-body", "the proposal's body is not here (erased, or never sent)")
    if f.ts > data.closes_at:
        return no_effect("proposal-closed", "the vote came after the proposal closed")
    if f.person not in eligible:
        return no_effect(
            "not-eligible", "only the pod's members as of the proposal's opening vote on it"
        )
    option = None if f.data is None else f.data.option
    if option is None or not 0 <= option < options:
        return no_effect("no-such-option", "the proposal has no such option")
    return None


def derive_proposal(proposal_id: str, facts: Iterable[Fact]) -> ProposalView | None:
    """The proposal ``proposal_id`` and its tally, or ``None`` while it is unknown here.

    ``facts`` holds the proposal, its votes and the ``member.added`` facts of the voters.
    """
    ordered = sorted(facts, key=order)
    opened = next((f for f in ordered if f.id == proposal_id and f.kind == "proposal.opened"), None)
    if opened is None:
        return None
    data = opened.data
    options = () if data is None or data.options is None else data.options
    eligible = _eligible(ordered, opened)
    votes: dict[str, int] = {}
    for f in ordered:  # later in (ts, id) order overrides earlier: the last vote counts
        if (
            _is_vote(f, proposal_id, opened.pod)
            and _refusal(f, opened, len(options), eligible) is None
        ):
            assert f.data is not None and f.data.option is not None  # checked by _refusal
            votes[f.person] = f.data.option
    tally = [0] * len(options)
    for option in votes.values():
        tally[option] += 1
    return ProposalView(
        id=proposal_id,
        pod=opened.pod,
        author=opened.person,
        ts=opened.ts,
        title=REMOVED if data is None or data.title is None else data.title,
        details=REMOVED if data is None else data.details,
        options=options,
        closes_at=0 if data is None or data.closes_at is None else data.closes_at,
        tally=tuple(tally),
        votes=dict(sorted(votes.items())),
        scope=opened.scope,
        redacted=data is None,
    )


def explain_proposal(fact: Fact, view: ProposalView | None, facts: Iterable[Fact]) -> Effect:
    """What ``fact`` did: a proposal opened, a vote counted, changed, or why it has no effect."""
    if fact.kind == "proposal.opened":
        return applied("proposal opened: members can vote until it closes")
    if view is None:
        return no_effect("unknown-proposal", "a vote on a proposal that is not known here")
    ordered = sorted(facts, key=order)
    opened = next(f for f in ordered if f.id == view.id)
    eligible = _eligible(ordered, opened)
    refusal = _refusal(fact, opened, len(view.options), eligible)
    if refusal is not None:
        return refusal
    mine = [
        f
        for f in ordered
        if _is_vote(f, view.id, view.pod)
        and f.person == fact.person
        and _refusal(f, opened, len(view.options), eligible) is None
    ]
    if mine[-1].id != fact.id:
        return no_effect("superseded", "a later vote of yours is the one that counts")
    assert fact.data is not None and fact.data.option is not None  # checked by _refusal
    chosen = view.options[fact.data.option]
    return applied(f"vote {'changed' if len(mine) > 1 else 'counted'}: {chosen}")


def proposal_status_at(view: ProposalView, now_ms: int) -> ProposalStatus:
    """``open`` until ``closes_at`` has passed, then ``closed``."""
    return "open" if now_ms <= view.closes_at else "closed"
