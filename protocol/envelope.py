"""The event envelope (DESIGN §2, settled): ``{"head": "<json text>", "sig": "...", "body": ...}``.

The head is carried as a *string*; its UTF-8 bytes are what is signed and hashed, so
no node ever re-serialises it. ``decode_envelope`` is the one decode path for every
wire (HTTP, streams, federation); ``parse_event`` turns an ``Envelope`` into an
``Event`` whose head is strictly checked.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import msgspec

from protocol.codec import b64d, b64e, strict_loads
from protocol.crypto import SigningKey, verify
from protocol.reasons import TOO_LARGE, RejectedEvent, invalid

#: Limits (announced in the info document).
MAX_HEAD_BYTES = 1024
MAX_BODY_BYTES = 64 * 1024
#: A wire envelope may escape every body byte as ``\\uXXXX`` (6x), plus head and framing.
MAX_ENVELOPE_BYTES = 6 * MAX_BODY_BYTES + 6 * MAX_HEAD_BYTES + 256
MAX_SAFE_INT = 2**53

#: Canonical unpadded base64url of 32 bytes: 42 free characters, then one whose low 2 bits are 0.
KEY_PATTERN = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$"
#: Canonical unpadded base64url of 64 bytes: 85 free characters, then one whose low 4 bits are 0.
SIG_PATTERN = r"^[A-Za-z0-9_-]{85}[AQgw]$"
KIND_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"

Scope = Literal["pod", "peers", "public"]
SCOPES: tuple[Scope, ...] = ("pod", "peers", "public")
B64Key = Annotated[str, msgspec.Meta(pattern=KEY_PATTERN)]
Kind = Annotated[str, msgspec.Meta(pattern=KIND_PATTERN, max_length=64)]
Seq = Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
BodySize = Annotated[int, msgspec.Meta(ge=0, le=MAX_BODY_BYTES)]

#: Head fields whose values are strings that cannot contain a quote (patterns or enums).
_STRING_FIELDS = ("pod", "author", "scope", "prev", "kind", "body_hash")
_HEAD_FIELDS = 10


class Head(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The signed part of an event. All ten fields are required and no others are allowed."""

    v: Literal[1]
    pod: B64Key
    author: B64Key
    scope: Scope
    seq: Seq
    prev: B64Key | None
    ts: Millis
    kind: Kind
    body_hash: B64Key | None
    body_size: BodySize


class Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An event as it travels: head text, signature, and body text (or null)."""

    head: str
    sig: str
    body: str | None


class Event(msgspec.Struct, frozen=True):
    """A parsed event: its computed ``id``, strict ``head``, exact head bytes and raw signature.

    The signature has **not** necessarily been checked: see ``verify_event``.
    """

    id: str
    head: Head
    head_bytes: bytes
    sig: bytes
    body: str | None
    envelope: Envelope

    @property
    def log(self) -> tuple[str, str, str]:
        """The log this event belongs to: ``(pod, author, scope)``."""
        return (self.head.pod, self.head.author, self.head.scope)


_envelope_decoder = msgspec.json.Decoder(Envelope)
_head_decoder = msgspec.json.Decoder(Head)
_encoder = msgspec.json.Encoder()


def _validation_detail(prefix: str, exc: msgspec.ValidationError) -> str:
    """Turn a msgspec error into a stable ``<prefix>:<detail>`` (field names only, no content)."""
    text = str(exc)
    if text.startswith("Object missing required field `"):
        return f"{prefix}:missing:{text.split('`')[1]}"
    if text.startswith("Object contains unknown field `"):
        return f"{prefix}:unknown-field"
    if " - at `$." in text:
        return f"{prefix}:field:{text.rsplit(' - at `$.', 1)[1].rstrip('`')}"
    return f"{prefix}:not-object"


def decode_envelope(data: bytes | str) -> Envelope:
    """Decode one wire envelope (the only way envelopes enter Kith).

    Raises ``RejectedEvent`` with ``too-large`` or ``invalid:envelope:<detail>``.
    """
    if len(data) > MAX_ENVELOPE_BYTES:
        raise RejectedEvent(TOO_LARGE, f"an envelope is at most {MAX_ENVELOPE_BYTES} bytes")
    try:
        env = _envelope_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise RejectedEvent(invalid(_validation_detail("envelope", exc)), str(exc)) from None
    except msgspec.DecodeError:
        raise RejectedEvent(invalid("envelope:json"), "the envelope is not JSON") from None
    raw = data.encode() if isinstance(data, str) else data
    # msgspec keeps the last of repeated keys; strict JSON forbids repeats. A key can only
    # appear twice in the text if its quoted name occurs twice, so the exact check runs rarely.
    if (raw.count(b'"head"') > 1 or raw.count(b'"sig"') > 1 or raw.count(b'"body"') > 1) and (
        _has_duplicate_keys(raw)
    ):
        raise RejectedEvent(invalid("envelope:json:duplicate-key"), "the envelope repeats a key")
    return env


def _has_duplicate_keys(raw: bytes) -> bool:
    try:
        strict_loads(raw)
    except RejectedEvent as exc:
        return exc.reason == invalid("json:duplicate-key")
    return False


def decode_head(head_bytes: bytes) -> Head:
    """Strictly decode head text; raise ``RejectedEvent`` (``invalid:head:<detail>``).

    The fast path is msgspec; strict-JSON rules it does not enforce are checked here:
    duplicate keys (counted from quotes, exact because every string value of a valid
    head is drawn from a quote-free alphabet) and integer bounds (in the types).
    """
    try:
        head = _head_decoder.decode(head_bytes)
    except msgspec.ValidationError as exc:
        raise RejectedEvent(invalid(_validation_detail("head", exc)), str(exc)) from None
    except msgspec.DecodeError:
        # Either not JSON at all, or JSON msgspec refuses (BOM, lone surrogate, trailing data).
        raise RejectedEvent(invalid("head:json"), "the head is not strict JSON") from None
    strings = sum(1 for name in _STRING_FIELDS if getattr(head, name) is not None)
    if head_bytes.count(b'"') != 2 * (_HEAD_FIELDS + strings):
        raise RejectedEvent(invalid("head:json:duplicate-key"), "the head repeats a key")
    if (head.seq == 1) != (head.prev is None):
        raise RejectedEvent(invalid("head:prev"), "prev must be null exactly when seq is 1")
    if (head.body_hash is None) != (head.body_size == 0):
        raise RejectedEvent(invalid("head:body_size"), "body_size is 0 exactly when body_hash is null")
    return head


def parse_event(env: Envelope) -> Event:
    """Check sizes and the head's strict shape, decode the signature, compute the id.

    >>> key = SigningKey.from_seed(bytes(32))
    >>> env = sign_event(key, pod=key.public_b64, scope="public", seq=1, prev=None,
    ...                  ts=1700000000000, kind="pod.created", body={"name": "Elm St"})
    >>> parse_event(env).head.kind
    'pod.created'
    """
    head_bytes = env.head.encode("utf-8", "surrogatepass")
    if len(head_bytes) > MAX_HEAD_BYTES:
        raise RejectedEvent(TOO_LARGE, f"a head is at most {MAX_HEAD_BYTES} bytes")
    if env.body is not None and len(env.body) > MAX_BODY_BYTES:
        # len(str) <= len(utf-8 bytes): a cheap early check; the exact one is in check_body.
        raise RejectedEvent(TOO_LARGE, f"a body is at most {MAX_BODY_BYTES} bytes")
    head = decode_head(head_bytes)
    if len(env.sig) != 86:
        raise RejectedEvent(invalid("sig:encoding"), "sig is 64 bytes as unpadded base64url")
    try:
        sig = b64d(env.sig, 64)
    except ValueError:
        raise RejectedEvent(invalid("sig:encoding"), "sig is not canonical base64url") from None
    event_id = b64e(hashlib.sha256(head_bytes).digest())
    return Event(id=event_id, head=head, head_bytes=head_bytes, sig=sig, body=env.body, envelope=env)


def verify_event(event: Event) -> bool:
    """Strict Ed25519 check of ``sig`` by ``author`` over the exact head bytes."""
    return verify(b64d(event.head.author), event.sig, event.head_bytes)


def check_body(event: Event) -> Any:
    """Check the body against ``body_hash``/``body_size`` and parse it as a strict JSON object.

    Returns the parsed body, or ``None`` when the event carries no body (never had one,
    or it was erased: a head with a ``body_hash`` and a null body is a valid, erased event).
    Raises ``RejectedEvent``: ``too-large``, ``invalid:body:hash``, ``invalid:body:json:<detail>``.
    """
    if event.body is None:
        return None
    if event.head.body_hash is None:
        raise RejectedEvent(invalid("body:unexpected"), "the head declares no body")
    try:
        body_bytes = event.body.encode("utf-8")
    except UnicodeEncodeError:
        raise RejectedEvent(invalid("body:json:surrogate"), "the body is not valid UTF-8") from None
    if len(body_bytes) > MAX_BODY_BYTES:
        raise RejectedEvent(TOO_LARGE, f"a body is at most {MAX_BODY_BYTES} bytes")
    if len(body_bytes) != event.head.body_size or (
        b64e(hashlib.sha256(body_bytes).digest()) != event.head.body_hash
    ):
        raise RejectedEvent(invalid("body:hash"), "the body does not match body_hash/body_size")
    try:
        value = strict_loads(event.body)
    except RejectedEvent as exc:
        raise RejectedEvent(f"invalid:body:{exc.reason.split(':', 1)[1]}", exc.message) from None
    if not isinstance(value, dict):
        raise RejectedEvent(invalid("body:not-object"), "a body is a JSON object")
    return value


def build_head(
    *,
    pod: str,
    author: str,
    scope: Scope,
    seq: int,
    prev: str | None,
    ts: int,
    kind: str,
    body_text: str | None,
) -> str:
    """Return compact head text with fields in the documented order."""
    body_hash = None
    body_size = 0
    if body_text is not None:
        body_bytes = body_text.encode("utf-8")
        body_hash = b64e(hashlib.sha256(body_bytes).digest())
        body_size = len(body_bytes)
    head = Head(
        v=1,
        pod=pod,
        author=author,
        scope=scope,
        seq=seq,
        prev=prev,
        ts=ts,
        kind=kind,
        body_hash=body_hash,
        body_size=body_size,
    )
    return _encoder.encode(head).decode("utf-8")


def sign_event(
    key: SigningKey,
    *,
    pod: str,
    scope: Scope,
    seq: int,
    prev: str | None,
    ts: int,
    kind: str,
    body: Any = None,
) -> Envelope:
    """Build and sign an event. ``body`` is a JSON-able value (encoded compactly) or exact text."""
    body_text: str | None
    if body is None or isinstance(body, str):
        body_text = body
    else:
        body_text = _encoder.encode(body).decode("utf-8")
    head_text = build_head(
        pod=pod,
        author=key.public_b64,
        scope=scope,
        seq=seq,
        prev=prev,
        ts=ts,
        kind=kind,
        body_text=body_text,
    )
    sig = b64e(key.sign(head_text.encode("utf-8")))
    return Envelope(head=head_text, sig=sig, body=body_text)


def encode_envelope(env: Envelope) -> bytes:
    """Encode an envelope for the wire (compact JSON)."""
    return _encoder.encode(env)


def event_id(head_text: str | bytes) -> str:
    """An event's id: base64url(SHA-256(head bytes)), 43 characters."""
    data = head_text.encode("utf-8") if isinstance(head_text, str) else head_text
    return b64e(hashlib.sha256(data).digest())
