"""Stream frames (``/v1/stream``) and the ``Filter`` shared with ``GET /v1/events``.

Frames are JSON arrays in the spirit of Nostr's NIP-01 (settled; see ``docs/streams.md``)::

    client → node   ["SUB", sub_id, {"filters": [filter, ...], "after": cursor | null}]
                    ["UNSUB", sub_id]   ["AUTH", token]   ["EVENT", envelope]
    node → client   ["EVENT", sub_id, envelope, cursor]   ["LIVE", sub_id, cursor]
                    ["CLOSED", sub_id, reason]   ["NOTICE", text]   ["CHALLENGE", nonce]
                    ["OK", id, ok, reason, effect?]

Client frames are msgspec tagged ``array_like`` structs decoded by one ``Decoder``.
Node frames are built by concatenation so an event's envelope is encoded once and its
bytes reused for every subscriber: only the ``sub_id`` prefix and the cursor differ.
``websocket_frame`` wraps a frame for the wire once, for every connection alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from protocol.kinds import KNOWN_CATEGORIES, Category, Urgency, kind_matches
from protocol.reasons import RejectedEvent, invalid

MAX_FILTERS = 10
MAX_FILTER_VALUES = 256
MAX_LIMIT = 10_000
# `$(?!\n)`, as in protocol/envelope.py: a bare `$` also matches before a trailing newline.
SUB_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$(?!\n)"
ID_PATTERN = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$(?!\n)"
KIND_FILTER_PATTERN = r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$(?!\n)"

SubId = Annotated[str, msgspec.Meta(pattern=SUB_ID_PATTERN)]
Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
KindFilter = Annotated[str, msgspec.Meta(pattern=KIND_FILTER_PATTERN, max_length=64)]
Values = msgspec.Meta(max_length=MAX_FILTER_VALUES)


class Filter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """NIP-01-style filter: fields AND, values inside a field OR; absent fields match all.

    ``kinds`` entries may be ``need.*`` (prefix) or ``*``; ``since``/``until`` are inclusive
    ``ts`` bounds in ms; ``limit`` (backfill only) keeps the last N stored matches.
    Care-domain fields: ``category`` and ``urgency`` match the body of needs, offers and
    referrals; ``need`` selects everything about one need (the need, its updates, claims,
    acceptances, fulfilment, withdrawal and redactions).
    """

    ids: Annotated[tuple[Id, ...], Values] = ()
    authors: Annotated[tuple[Id, ...], Values] = ()
    kinds: Annotated[tuple[KindFilter, ...], Values] = ()
    scopes: Annotated[tuple[Literal["pod", "peers", "public"], ...], Values] = ()
    pods: Annotated[tuple[Id, ...], Values] = ()
    since: Annotated[int, msgspec.Meta(ge=0)] | None = None
    until: Annotated[int, msgspec.Meta(ge=0)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] | None = None
    category: Annotated[tuple[Category, ...], Values] = ()
    urgency: Annotated[tuple[Urgency, ...], Values] = ()
    need: Id | None = None

    @property
    def needs_body(self) -> bool:
        """Does matching look inside bodies?"""
        return bool(self.category or self.urgency or self.need)


class EventFacts(msgspec.Struct, frozen=True):
    """What a filter looks at: head facts, the id, and the parsed body (or None)."""

    id: str
    pod: str
    author: str
    scope: str
    kind: str
    ts: int
    body: Mapping[str, Any] | None = None


#: Body fields that point at a need, directly or through a claim.
_NEED_REFS = ("need", "target")


def _category_matches(value: object, wanted: tuple[str, ...]) -> bool:
    """``other`` also matches a category this node does not know (it shows it as other)."""
    if value in wanted:
        return True
    return "other" in wanted and isinstance(value, str) and value not in KNOWN_CATEGORIES


def _care_fields(kind: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """Where a body keeps ``category`` and ``urgency``: a referral in its ``summary``."""
    summary = body.get("summary") if kind == "overflow.referred" else None
    return summary if isinstance(summary, Mapping) else body


def matches(f: Filter, ev: EventFacts, claims_of_need: frozenset[str] = frozenset()) -> bool:
    """Does ``ev`` match ``f``? ``claims_of_need`` lets ``claim.withdrawn`` match its need."""
    if f.ids and ev.id not in f.ids:
        return False
    if f.authors and ev.author not in f.authors:
        return False
    if f.kinds and not any(kind_matches(k, ev.kind) for k in f.kinds):
        return False
    if f.scopes and ev.scope not in f.scopes:
        return False
    if f.pods and ev.pod not in f.pods:
        return False
    if f.since is not None and ev.ts < f.since:
        return False
    if f.until is not None and ev.ts > f.until:
        return False
    body = ev.body or {}
    care = _care_fields(ev.kind, body)
    if f.category and not _category_matches(care.get("category"), f.category):
        return False
    if f.urgency and care.get("urgency") not in f.urgency:
        return False
    if f.need is not None:
        about = ev.id == f.need or any(body.get(ref) == f.need for ref in _NEED_REFS)
        # Bodies of unknown kinds are unchecked: "claim" may be any JSON value, even unhashable.
        claim = body.get("claim")
        of_claim = isinstance(claim, str) and claim in claims_of_need
        if not about and not (of_claim and ev.kind.startswith("claim.")):
            return False
    return True


class SubRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The third element of a SUB frame."""

    filters: Annotated[tuple[Filter, ...], msgspec.Meta(min_length=1, max_length=MAX_FILTERS)]
    after: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Sub(msgspec.Struct, frozen=True, array_like=True, tag="SUB", forbid_unknown_fields=True):
    """Open a subscription (a ``sub_id`` already open is refused, not replaced)."""

    sub_id: SubId
    request: SubRequest


class Unsub(msgspec.Struct, frozen=True, array_like=True, tag="UNSUB", forbid_unknown_fields=True):
    """Close a subscription."""

    sub_id: SubId


class Auth(msgspec.Struct, frozen=True, array_like=True, tag="AUTH", forbid_unknown_fields=True):
    """Answer the node's CHALLENGE with a token (purpose ``stream``, nonce = the challenge)."""

    token: Annotated[str, msgspec.Meta(max_length=512)]


class Publish(
    msgspec.Struct, frozen=True, array_like=True, tag="EVENT", forbid_unknown_fields=True
):
    """Publish one event; answered by ``["OK", id, ok, reason]``."""

    envelope: msgspec.Raw


ClientFrame = Sub | Unsub | Auth | Publish
_client_decoder = msgspec.json.Decoder(ClientFrame)
_encoder = msgspec.json.Encoder()
VERBS = ("SUB", "UNSUB", "AUTH", "EVENT")


def decode_client_frame(data: bytes | str, *, max_bytes: int) -> ClientFrame:
    """Decode one client frame; raise ``RejectedEvent`` with a reason for anything else.

    Reasons: ``too-large``, ``invalid:frame:json``, ``invalid:frame:verb``,
    ``invalid:frame:<detail>`` (the msgspec path of the bad part).
    """
    # Count UTF-8 bytes, not characters: the limit is announced in bytes.
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise RejectedEvent("too-large", f"a frame is at most {max_bytes} bytes")
    try:
        frame: ClientFrame = _client_decoder.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        # Only a top-level "not an array" (no path) is a verb error: a nested part that is
        # not an array (`"kinds": "need.*"`) has a path and is reported by it.
        not_array = text.startswith("Expected `array`, got") and " - at `$" not in text
        if text.endswith("- at `$[0]`") or not_array:
            message = f"a frame is [VERB, ...] with VERB one of {', '.join(VERBS)}"
            raise RejectedEvent(invalid("frame:verb"), message) from None
        if " - at `$" not in text:
            raise RejectedEvent(
                invalid("frame:length"), "wrong number of elements for this verb"
            ) from None
        # The path names the bad element (e.g. ``[2].filters[0].kinds[0]``), never its value.
        path = text.rsplit(" - at `$", 1)[1].rstrip("`")
        raise RejectedEvent(invalid(f"frame:{path}"), text.split(" - at ")[0][:200]) from None
    except (msgspec.DecodeError, UnicodeError, RecursionError):
        # msgspec raises UnicodeError for invalid UTF-8 / lone surrogates and RecursionError
        # for very deep nesting: both are "not one JSON array", never a crash.
        raise RejectedEvent(invalid("frame:json"), "a frame is one JSON array") from None
    return frame


def sub_id_of(data: bytes | str) -> str | None:
    """Best effort: the sub_id of a SUB/UNSUB frame that failed to decode (to CLOSE it)."""
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeError, RecursionError):
        return None
    if isinstance(value, list) and len(value) >= 2 and value[0] in ("SUB", "UNSUB"):
        sub = value[1]
        if (
            isinstance(sub, str)
            and msgspec.json.decode(_encoder.encode(sub)) == sub
            and len(sub) <= 64
        ):
            return sub
    return None


def _s(text: str) -> str:
    return _encoder.encode(text).decode()


def event_prefix(sub_id: str) -> bytes:
    """``["EVENT","<sub_id>",`` as UTF-8 — built once per subscription."""
    return b'["EVENT",' + _encoder.encode(sub_id) + b","


def event_frame(prefix: bytes, envelope: bytes, cursor: int) -> bytes:
    """One EVENT frame from a subscription prefix and an envelope encoded once per event."""
    return b"%s%s,%d]" % (prefix, envelope, cursor)


def websocket_frame(payload: bytes) -> bytes:
    """``payload`` as one websocket text frame from a server: FIN, opcode 1, no mask.

    A server never masks (RFC 6455 §5.1), so a frame's bytes are the same on every
    connection: the fanout builds them once per event and ``sub_id`` and writes the same
    bytes to every subscriber. No extension bits are set, so the frame is valid even where
    permessage-deflate was negotiated (RFC 7692 §6: uncompressed messages stay allowed).
    """
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def websocket_payload(frame: bytes) -> bytes:
    """The payload of a frame made by ``websocket_frame``."""
    n = frame[1]
    return frame[2 if n < 126 else 4 if n == 126 else 10 :]


def live_frame(sub_id: str, cursor: int) -> str:
    """``["LIVE", sub_id, cursor]``: backfill is done; what follows is live."""
    return f'["LIVE",{_s(sub_id)},{cursor}]'


def closed_frame(sub_id: str, reason: str) -> str:
    """``["CLOSED", sub_id, reason]``."""
    return f'["CLOSED",{_s(sub_id)},{_s(reason)}]'


def notice_frame(text: str) -> str:
    """``["NOTICE", text]``."""
    return f'["NOTICE",{_s(text)}]'


def challenge_frame(nonce: str) -> str:
    """``["CHALLENGE", nonce]``."""
    return f'["CHALLENGE",{_s(nonce)}]'


def ok_frame(
    event_id: str | None, ok: bool, reason: str | None, effect: Mapping[str, Any] | None = None
) -> str:
    """``["OK", id, ok, reason]``, or ``["OK", id, ok, reason, effect]`` for an accepted event
    whose effect on the read models is known (``{"ok", "reason", "message"}``)."""
    frame: list[object] = ["OK", event_id, ok, reason]
    if effect is not None:
        frame.append(effect)
    return _encoder.encode(frame).decode()
