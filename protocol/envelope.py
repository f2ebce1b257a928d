"""The event envelope (DESIGN §2, settled): ``{"head": "<json text>", "sig": "...", "body": ...}``.

The head is carried as a *string*; its UTF-8 bytes are what is signed and hashed, so
no node ever re-serialises it. ``decode_envelope`` is the one decode path for every
wire (HTTP, streams, federation); ``parse_event`` turns an ``Envelope`` into an
``Event`` whose head is strictly checked.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

import msgspec

from protocol.codec import b64d, b64e, quotes_prove_unique, strict_loads
from protocol.crypto import SIGNATURE_SIZE, SigningKey, sha256_b64, verify
from protocol.reasons import TOO_LARGE, RejectedEvent, invalid

#: Limits (announced in the info document).
MAX_HEAD_BYTES = 1024
MAX_BODY_BYTES = 64 * 1024
#: A wire envelope may escape every body byte as ``\\uXXXX`` (6x), plus head and framing.
MAX_ENVELOPE_BYTES = 6 * MAX_BODY_BYTES + 6 * MAX_HEAD_BYTES + 256
MAX_SAFE_INT = 2**53

# Python's ``$`` also matches before a final newline (and msgspec applies patterns with
# ``re.search``); ``(?!\n)`` makes each pattern end at the end, in Python and in JSON Schema.
#: Canonical unpadded base64url of 32 bytes: 42 free characters, then one whose low 2 bits are 0.
KEY_PATTERN = r"^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$(?!\n)"
#: Canonical unpadded base64url of 64 bytes: 85 free characters, then one whose low 4 bits are 0.
SIG_PATTERN = r"^[A-Za-z0-9_-]{85}[AQgw]$(?!\n)"
KIND_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$(?!\n)"

Scope = Literal["pod", "peers", "public"]
SCOPES: tuple[Scope, ...] = ("pod", "peers", "public")
B64Key = Annotated[str, msgspec.Meta(pattern=KEY_PATTERN)]
Kind = Annotated[str, msgspec.Meta(pattern=KIND_PATTERN, max_length=64)]
KindText = Annotated[str, msgspec.Meta(max_length=64)]
Seq = Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
BodySize = Annotated[int, msgspec.Meta(ge=0, le=MAX_BODY_BYTES)]

#: Characters of a signature in unpadded base64url.
_SIG_CHARS = (SIGNATURE_SIZE * 8 + 5) // 6

#: Quotes in a head without repeated keys: ten keys and four always-string values
#: (pod, author, scope, kind), two quotes each; prev and body_hash add two when not null.
_HEAD_QUOTES = 2 * (10 + 4)

# The patterns above, as full matches (no anchors to get wrong).
_is_key = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]").fullmatch
_is_kind = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+").fullmatch
_KEY_RULE = "canonical base64url of 32 bytes"
#: Pods and authors, and kinds, already seen to be valid: few, and met on every event.
_known_keys: set[str] = set()
_known_kinds: set[str] = set()
#: Authors' public keys, decoded once.
_public_keys: dict[str, bytes] = {}
_MEMO_MAX = 4096


class _FieldRule(ValueError):
    """A head field that breaks its pattern; msgspec reports it as a ``ValidationError``."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"`{field}` must be {rule}")
        self.field = field


def _memo(known: set[str], value: str) -> None:
    if len(known) >= _MEMO_MAX:
        known.clear()
    known.add(value)


def _check_names(head: Head) -> None:
    """The slow path of ``Head.__post_init__``: a pod, author or kind not seen before."""
    for field, value in (("pod", head.pod), ("author", head.author)):
        if value not in _known_keys:
            if not _is_key(value):
                raise _FieldRule(field, _KEY_RULE)
            _memo(_known_keys, value)
    if head.kind not in _known_kinds:
        if not _is_kind(head.kind):
            raise _FieldRule("kind", "a dotted lowercase name")
        _memo(_known_kinds, head.kind)


class Head(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The signed part of an event. All ten fields are required and no others are allowed.

    ``pod``, ``author``, ``prev`` and ``body_hash`` are canonical base64url of 32 bytes
    (``KEY_PATTERN``) and ``kind`` matches ``KIND_PATTERN``. These patterns are checked in
    ``__post_init__`` (on decoding, converting and constructing) rather than with
    ``msgspec.Meta(pattern=...)``: the same rules at a third of the cost, as pods, authors
    and kinds repeat on nearly every event.
    """

    v: Literal[1]
    pod: str
    author: str
    scope: Scope
    seq: Seq
    prev: str | None
    ts: Millis
    kind: KindText
    body_hash: str | None
    body_size: BodySize

    def __post_init__(self) -> None:
        if (
            self.pod not in _known_keys
            or self.author not in _known_keys
            or self.kind not in _known_kinds
        ):
            _check_names(self)
        if self.prev is not None and not _is_key(self.prev):
            raise _FieldRule("prev", _KEY_RULE)
        if self.body_hash is not None and not _is_key(self.body_hash):
            raise _FieldRule("body_hash", _KEY_RULE)


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
    if isinstance(exc.__cause__, _FieldRule):
        return f"{prefix}:field:{exc.__cause__.field}"
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
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise RejectedEvent(invalid("envelope:json"), "the envelope is not UTF-8") from None
    if len(data) > MAX_ENVELOPE_BYTES:
        raise RejectedEvent(TOO_LARGE, f"an envelope is at most {MAX_ENVELOPE_BYTES} bytes")
    try:
        env = _envelope_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise RejectedEvent(invalid(_validation_detail("envelope", exc)), str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise RejectedEvent(invalid("envelope:json"), "the envelope is not JSON") from None
    # msgspec keeps the last of repeated keys; strict JSON forbids repeats. Text that is
    # exactly what msgspec writes for the decoded envelope has none; otherwise counting
    # quotes proves it, and only when that cannot does the exact (slow) reader decide.
    written = _encoder.encode(env)
    if (
        data != written
        and not quotes_prove_unique(data, written.count(b'"'))
        and _has_duplicate_keys(data)
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
    except (msgspec.DecodeError, UnicodeDecodeError):
        # Not JSON at all, or JSON msgspec refuses (BOM, lone surrogate, trailing data, bad UTF-8).
        raise RejectedEvent(invalid("head:json"), "the head is not strict JSON") from None
    quotes = _HEAD_QUOTES + 2 * ((head.prev is not None) + (head.body_hash is not None))
    if head_bytes.count(b'"') != quotes:
        raise RejectedEvent(invalid("head:json:duplicate-key"), "the head repeats a key")
    if (head.seq == 1) != (head.prev is None):
        raise RejectedEvent(invalid("head:prev"), "prev must be null exactly when seq is 1")
    if (head.body_hash is None) != (head.body_size == 0):
        raise RejectedEvent(
            invalid("head:body_size"), "body_size is 0 exactly when body_hash is null"
        )
    return head


def parse_event(env: Envelope) -> Event:
    """Check sizes and the head's strict shape, decode the signature, compute the id.

    >>> key = SigningKey.from_seed(bytes(32))
    >>> env = sign_event(key, pod=key.public_b64, scope="public", seq=1, prev=None,
    ...                  ts=1700000000000, kind="pod.created", body={"name": "Elm St"})
    >>> parse_event(env).head.kind
    'pod.created'
    """
    # "surrogatepass": a lone surrogate becomes bytes the head decoder refuses as not UTF-8.
    head_bytes = env.head.encode("utf-8", "surrogatepass")
    if len(head_bytes) > MAX_HEAD_BYTES:
        raise RejectedEvent(TOO_LARGE, f"a head is at most {MAX_HEAD_BYTES} bytes")
    body = env.body
    if body is not None and len(body) > MAX_BODY_BYTES:
        # len(str) <= len(utf-8 bytes): a cheap early check; the exact one is in check_body.
        raise RejectedEvent(TOO_LARGE, f"a body is at most {MAX_BODY_BYTES} bytes")
    head = decode_head(head_bytes)
    sig_text = env.sig
    if len(sig_text) != _SIG_CHARS:
        raise RejectedEvent(invalid("sig:encoding"), "sig is 64 bytes as unpadded base64url")
    try:
        sig = b64d(sig_text)
    except ValueError:
        raise RejectedEvent(invalid("sig:encoding"), "sig is not canonical base64url") from None
    return Event(b64e(hashlib.sha256(head_bytes).digest()), head, head_bytes, sig, body, env)


def verify_event(event: Event) -> bool:
    """Strict Ed25519 check of ``sig`` by ``author`` over the exact head bytes."""
    author = event.head.author
    public_key = _public_keys.get(author)
    if public_key is None:
        public_key = b64d(author)
        if len(_public_keys) >= _MEMO_MAX:
            _public_keys.clear()
        _public_keys[author] = public_key
    return verify(public_key, event.sig, event.head_bytes)


def check_body(event: Event) -> Any:
    """Check the body against ``body_hash``/``body_size`` and parse it as a strict JSON object.

    Returns the parsed body, or ``None`` when the event carries no body (never had one,
    or it was erased: a head with a ``body_hash`` and a null body is a valid, erased event).
    Raises ``RejectedEvent``: ``too-large``, ``invalid:body:hash``, ``invalid:body:json:<detail>``.
    """
    body = event.body
    if body is None:
        return None
    head = event.head
    if head.body_hash is None:
        raise RejectedEvent(invalid("body:unexpected"), "the head declares no body")
    try:
        body_bytes = body.encode("utf-8")
    except UnicodeEncodeError:
        raise RejectedEvent(invalid("body:json:surrogate"), "the body is not valid UTF-8") from None
    if len(body_bytes) > MAX_BODY_BYTES:
        raise RejectedEvent(TOO_LARGE, f"a body is at most {MAX_BODY_BYTES} bytes")
    if (
        len(body_bytes) != head.body_size
        or b64e(hashlib.sha256(body_bytes).digest()) != head.body_hash
    ):
        raise RejectedEvent(invalid("body:hash"), "the body does not match body_hash/body_size")
    try:
        value = strict_loads(body_bytes)
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
        body_hash = sha256_b64(body_bytes)
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
    return sha256_b64(data)
