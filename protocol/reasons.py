"""Stable rejection reasons and the small error hierarchy.

Every rejection carries a machine-readable ``reason`` (a stable string, see
``docs/protocol.md`` §Reasons) and a human ``message``. Reasons with a detail
are written ``<reason>:<detail>``, e.g. ``invalid:head:seq``.
"""

from __future__ import annotations

DUPLICATE = "duplicate"
INVALID = "invalid"
UNAUTHORIZED = "unauthorized"
FORK = "fork"
GAP = "gap"
TOO_LARGE = "too-large"
RATE_LIMITED = "rate-limited"
BLOCKED = "blocked"
OUT_OF_SCOPE = "out-of-scope"

#: Every top-level reason, in no particular order.
ALL_REASONS = frozenset(
    {DUPLICATE, INVALID, UNAUTHORIZED, FORK, GAP, TOO_LARGE, RATE_LIMITED, BLOCKED, OUT_OF_SCOPE}
)


def invalid(detail: str) -> str:
    """Return the reason ``invalid:<detail>``."""
    return f"{INVALID}:{detail}"


def base_reason(reason: str) -> str:
    """Return the top-level part of a reason: ``base_reason("invalid:head:seq") == "invalid"``."""
    return reason.split(":", 1)[0]


class KithError(Exception):
    """Base of every error Kith raises on purpose."""


class RejectedEvent(KithError):
    """An event (or a part of one) was refused; ``reason`` is stable, ``message`` is for people."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason


class InvalidJSON(RejectedEvent):
    """Text that is not strict JSON (duplicate keys, big integers, lone surrogates, BOM, …)."""


class InvalidToken(KithError):
    """An auth token that is malformed, expired, for another node or wrongly signed."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason


class SealError(KithError):
    """A sealed field could not be opened (wrong key, tampered ciphertext, not a recipient)."""
