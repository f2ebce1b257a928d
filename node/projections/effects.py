"""What an accepted event *did* to the read models: derived from facts, never stored.

An event is accepted into its log by the check order of DESIGN §2; whether it changes a read
model is a separate question, answered here. The answer (an ``Effect``) goes back to the
poster — in ``POST /v1/events`` results, stream ``OK`` frames and every ``kith post`` — and is
recomputed the same way on any node that holds the same facts. Nothing about acceptance, and
nothing that is hashed or replicated, depends on it.

Each family's module has a pure ``explain_*(fact, facts)`` that says, from the fact and every
fact about the same subject, whether the fact counts and why not. ``reason`` is a stable
machine word (``effect:<what>``); ``message`` says it for a person.

>>> applied().ok, no_effect("unknown-need", "claim on an unknown need").reason
(True, 'effect:unknown-need')
"""

from __future__ import annotations

import msgspec

__all__ = ["APPLIED", "Effect", "applied", "no_effect"]

#: The reason of an event that changed what the read models show.
APPLIED = "applied"


class Effect(msgspec.Struct, frozen=True, kw_only=True):
    """An event's effect: ``ok`` when it changed a read model; else ``reason`` says why not."""

    ok: bool
    reason: str
    message: str


def applied(message: str = "applied") -> Effect:
    """The event took effect."""
    return Effect(ok=True, reason=APPLIED, message=message)


def no_effect(what: str, message: str) -> Effect:
    """The event is stored (it stays in its log and replicates) but changes nothing shown."""
    return Effect(ok=False, reason=f"effect:{what}", message=message)
