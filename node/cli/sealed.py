"""Sealed fields on the member's side: seal personal details to the right keys, open what is
sealed to you, re-seal to a helper or a neighbour pod — all with the user's key file.

The node never sees these in clear and never holds a member's private key; it only checks that
a sealed field is addressed inside the pod (``Roster.sealed_to_outsiders``). Every seal is bound
to its place with ``field_aad(kind, field)``.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from node.client import KithClient
from node.datadir import KeyFile
from protocol.codec import b64d
from protocol.reasons import KithError, SealError
from protocol.sealed import SealedField, field_aad, open_json, seal_json

__all__ = [
    "PersonalDetails",
    "event_body",
    "open_field",
    "pod_keys",
    "seal_for",
]


class PersonalDetails(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A need's personal fields: what only the coordinators and the accepted helper read."""

    address: str | None = None
    phone: str | None = None
    notes: str | None = None


def pod_keys(client: KithClient, pod: str) -> dict[str, Any]:
    """``GET /v1/pods/{pod}/keys``: the coordinators' and members' box keys as the node knows."""
    keys: dict[str, Any] = client.call("GET", f"/v1/pods/{pod}/keys")
    return keys


def seal_for(value: object, box_keys: list[str], kind: str, field: str) -> dict[str, Any]:
    """Seal ``value`` (as JSON) to ``box_keys`` for ``kind``'s ``field``; the wire object."""
    if not box_keys:
        raise KithError(
            "there is no one to seal these details to (no coordinator with a box key yet)"
        )
    recipients = [b64d(key, 32) for key in dict.fromkeys(box_keys)]
    sealed = seal_json(value, recipients, aad=field_aad(kind, field))
    out: dict[str, Any] = msgspec.to_builtins(sealed)
    return out


def event_body(client: KithClient, event_id: str) -> dict[str, Any] | None:
    """The body of a stored event this key may read (``None`` if it has none, e.g. erased)."""
    answer = client.call("GET", f"/v1/events/{event_id}")
    body = answer["envelope"].get("body")
    if body is None:
        return None
    decoded: dict[str, Any] = json.loads(body)
    return decoded


def open_field(key: KeyFile, value: Any, kind: str, field: str) -> dict[str, Any] | None:
    """Open a sealed field with ``key``'s box key; ``None`` if it is not sealed to this key."""
    if value is None:
        return None
    sealed = msgspec.convert(value, SealedField)
    if all(r.key != key.box_public for r in sealed.to):
        return None
    try:
        opened: dict[str, Any] = open_json(sealed, key.box_private(), aad=field_aad(kind, field))
    except SealError as exc:
        raise KithError(f"the sealed {field} does not open: {exc}") from None
    return opened
