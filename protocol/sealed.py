"""Sealed fields: a body field encrypted to one or more recipients' X25519 ``box_key``s.

A sealed field is one ciphertext plus the content key wrapped once per recipient
(DESIGN §4), so an address sealed to a helper and a coordinator is stored once::

    {"alg": "x25519-hkdf-sha256-chacha20poly1305",
     "epk": b64(E),                                   # ephemeral X25519 public key, 32 bytes
     "nonce": b64(N),                                 # 12 bytes
     "ct": b64(ChaCha20-Poly1305(CEK).encrypt(N, plaintext, aad)),
     "to": [{"key": b64(R), "wrapped": b64(ChaCha20-Poly1305(KEK_R).encrypt(0^12, CEK, aad))}]}

    KEK_R = HKDF-SHA256(ikm=X25519(e, R), salt=E || R, info="kith-seal/1", length=32)

What a seal does **not** give: sender authentication. Every recipient knows the
content key and could re-seal altered content for the others; the author's event
signature (which covers the body hash, and so this field) is what makes it authentic.
Recipient keys travel in clear so that a reader finds its entry without trial
decryption; they are the ``box_key``s the public roster already lists.

>>> alice_priv, alice_pub = box_keypair_from_seed(bytes(range(32)))
>>> field = seal(b"12 Elm Street", [alice_pub])
>>> open_sealed(field, alice_priv)
b'12 Elm Street'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, Literal, TypeVar, overload

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.codec import b64d, b64e
from protocol.reasons import SealError

B64 = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]*$")]
ALG: Final = "x25519-hkdf-sha256-chacha20poly1305"


class Recipient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One recipient: their X25519 public ``box_key`` and the content key wrapped for them."""

    key: B64
    wrapped: B64


class SealedField(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The JSON object that stands in a body where a sealed value would be."""

    alg: Literal["x25519-hkdf-sha256-chacha20poly1305"]
    epk: B64
    nonce: B64
    ct: B64
    to: Annotated[list[Recipient], msgspec.Meta(min_length=1, max_length=32)]


#: Size of an X25519 private or public key.
BOX_KEY_SIZE = 32
#: Most recipients one field may name; the wire struct enforces the same bound.
MAX_RECIPIENTS = 32
#: HKDF ``info``: a new key-derivation scheme gets a new label, so keys never cross schemes.
HKDF_INFO = b"kith-seal/1"

_CEK_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
_WRAPPED_SIZE = _CEK_SIZE + _TAG_SIZE
# A zero nonce is safe for the wrap: each KEK is derived from a fresh ephemeral key
# and one recipient key, so it encrypts exactly one message ever.
_WRAP_NONCE = bytes(_NONCE_SIZE)

T = TypeVar("T")


def box_keypair_from_seed(seed: bytes) -> tuple[bytes, bytes]:
    """Return ``(private, public)`` X25519 keys (32 bytes each) for a 32-byte seed.

    The seed *is* the private key (RFC 7748 clamps it when used), so the same seed
    always gives the same pair — handy for fixtures and test vectors.

    >>> private, public = box_keypair_from_seed(bytes(32))
    >>> b64e(public)
    'L-V9o0fNYkMVKNqsX7spBzD_9oSvxM_C7ZCZX1jLO3Q'
    """
    if len(seed) != BOX_KEY_SIZE:
        raise ValueError(f"an X25519 seed is {BOX_KEY_SIZE} bytes, got {len(seed)}")
    private = X25519PrivateKey.from_private_bytes(seed)
    return seed, private.public_key().public_bytes_raw()


def generate_box_keypair(*, rng: Callable[[int], bytes] = os.urandom) -> tuple[bytes, bytes]:
    """Make a new random ``(private, public)`` X25519 key pair (a member's ``box_key``)."""
    return box_keypair_from_seed(_random(rng, BOX_KEY_SIZE))


def seal(
    plaintext: bytes,
    recipients: Sequence[bytes],
    *,
    aad: bytes = b"",
    rng: Callable[[int], bytes] = os.urandom,
) -> SealedField:
    """Encrypt ``plaintext`` so that each of ``recipients`` (raw 32-byte X25519 keys) can open it.

    ``aad`` is authenticated but not encrypted; the reader must pass the same bytes.
    ``rng`` is called for the content key (32), the nonce (12) and the ephemeral key
    (32), in that order. Raises ``ValueError`` for no or more than 32 recipients, a
    repeated recipient, a key that is not 32 bytes or a small-order (weak) key.

    >>> _, pub = box_keypair_from_seed(bytes(32))
    >>> [r.key for r in seal(b"hi", [pub]).to] == [b64e(pub)]
    True
    """
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise ValueError(
            f"a sealed field needs 1..{MAX_RECIPIENTS} recipients, got {len(recipients)}"
        )
    for index, key in enumerate(recipients):
        if len(key) != BOX_KEY_SIZE:
            raise ValueError(f"recipient #{index} is {len(key)} bytes, not {BOX_KEY_SIZE}")
    if len(set(recipients)) != len(recipients):
        raise ValueError("a recipient is named twice")

    cek = _random(rng, _CEK_SIZE)
    nonce = _random(rng, _NONCE_SIZE)
    # One ephemeral key per field, not per recipient: every recipient key is distinct,
    # so every (epk, key) pair and hence every KEK is still distinct.
    ephemeral = X25519PrivateKey.from_private_bytes(_random(rng, BOX_KEY_SIZE))
    epk = ephemeral.public_key().public_bytes_raw()

    to = []
    for index, key in enumerate(recipients):
        kek = _kek(ephemeral, key, salt=epk + key)
        if kek is None:
            raise ValueError(f"recipient #{index} is a small-order X25519 key")
        wrapped = ChaCha20Poly1305(kek).encrypt(_WRAP_NONCE, cek, aad)
        to.append(Recipient(key=b64e(key), wrapped=b64e(wrapped)))

    ct = ChaCha20Poly1305(cek).encrypt(nonce, plaintext, aad)
    return SealedField(alg=ALG, epk=b64e(epk), nonce=b64e(nonce), ct=b64e(ct), to=to)


def open_sealed(field: SealedField, private_key: bytes, *, aad: bytes = b"") -> bytes:
    """Decrypt ``field`` with our X25519 ``private_key``; raise ``SealError`` on any failure.

    The whole field is checked for shape first (algorithm, base64url, sizes, 1..32
    distinct recipients), so a malformed field fails the same way for every reader,
    recipient or not.

    >>> priv, pub = box_keypair_from_seed(bytes(32))
    >>> open_sealed(seal(b"hi", [pub], aad=b"ctx"), priv, aad=b"ctx")
    b'hi'
    >>> open_sealed(seal(b"hi", [pub]), box_keypair_from_seed(bytes([1]) * 32)[0])
    Traceback (most recent call last):
    ...
    protocol.reasons.SealError: not a recipient of this sealed field
    """
    if len(private_key) != BOX_KEY_SIZE:
        raise SealError(f"an X25519 private key is {BOX_KEY_SIZE} bytes, got {len(private_key)}")
    if field.alg != ALG:
        raise SealError(f"unknown sealing algorithm {field.alg!r}")
    epk = _field_bytes(field.epk, "epk", BOX_KEY_SIZE)
    nonce = _field_bytes(field.nonce, "nonce", _NONCE_SIZE)
    ct = _field_bytes(field.ct, "ct", None)
    if len(ct) < _TAG_SIZE:
        raise SealError("ct is shorter than its authentication tag")
    if not 1 <= len(field.to) <= MAX_RECIPIENTS:
        raise SealError(f"a sealed field names 1..{MAX_RECIPIENTS} recipients")
    wrapped_for: dict[bytes, bytes] = {}
    for entry in field.to:
        key = _field_bytes(entry.key, "recipient key", BOX_KEY_SIZE)
        wrapped_for[key] = _field_bytes(entry.wrapped, "wrapped key", _WRAPPED_SIZE)
    if len(wrapped_for) != len(field.to):
        raise SealError("a recipient is named twice")

    private = X25519PrivateKey.from_private_bytes(private_key)
    public = private.public_key().public_bytes_raw()
    wrapped = wrapped_for.get(public)
    if wrapped is None:
        raise SealError("not a recipient of this sealed field")
    kek = _kek(private, epk, salt=epk + public)
    if kek is None:
        raise SealError("epk is a small-order X25519 key (all-zero shared secret)")
    try:
        cek = ChaCha20Poly1305(kek).decrypt(_WRAP_NONCE, wrapped, aad)
    except InvalidTag:
        raise SealError("cannot unwrap the content key: epk, wrapped key or aad altered") from None
    try:
        return ChaCha20Poly1305(cek).decrypt(nonce, ct, aad)
    except InvalidTag:
        raise SealError("cannot decrypt: ct, nonce or aad altered") from None


def field_aad(kind: str, field: str) -> bytes:
    """The associated data a sealed field of ``kind`` is bound to: ``b"<kind>/<field>"``.

    Binding the field's place means a ciphertext lifted into another kind or field does not
    open (a need's address pasted into a report, say).

    >>> field_aad("need.posted", "personal")
    b'need.posted/personal'
    """
    return f"{kind}/{field}".encode()


def seal_json(
    value: object,
    recipients: Sequence[bytes],
    *,
    aad: bytes = b"",
    rng: Callable[[int], bytes] = os.urandom,
) -> SealedField:
    """Seal the msgspec-JSON encoding of ``value`` (see ``seal`` for the arguments and errors).

    >>> priv, pub = box_keypair_from_seed(bytes(32))
    >>> open_json(seal_json({"street": "Elm"}, [pub]), priv)
    {'street': 'Elm'}
    """
    return seal(msgspec.json.encode(value), recipients, aad=aad, rng=rng)


@overload
def open_json(field: SealedField, private_key: bytes, *, aad: bytes = b"") -> Any: ...
@overload
def open_json(field: SealedField, private_key: bytes, *, aad: bytes = b"", type: type[T]) -> T: ...
def open_json(field: SealedField, private_key: bytes, *, aad: bytes = b"", type: Any = Any) -> Any:
    """Open ``field`` and decode its JSON plaintext, as ``type`` when given (a msgspec type).

    Raises ``SealError`` when the field does not open or the plaintext does not decode.

    >>> priv, pub = box_keypair_from_seed(bytes(32))
    >>> open_json(seal_json([1, 2], [pub]), priv, type=tuple[int, int])
    (1, 2)
    """
    plaintext = open_sealed(field, private_key, aad=aad)
    try:
        return msgspec.json.decode(plaintext, type=type)
    except msgspec.ValidationError as exc:
        raise SealError(f"sealed JSON does not match the expected type: {exc}") from None
    except msgspec.DecodeError:
        raise SealError("sealed plaintext is not JSON") from None


def _random(rng: Callable[[int], bytes], size: int) -> bytes:
    data = rng(size)
    # A short read from a custom rng would otherwise surface as an obscure error deep
    # inside the cipher, or worse, as a weak key.
    if len(data) != size:
        raise ValueError(f"rng returned {len(data)} bytes, not {size}")
    return data


def _kek(private: X25519PrivateKey, peer: bytes, *, salt: bytes) -> bytes | None:
    """Derive the key-encryption key (salt = epk || recipient key), or None for a weak peer key."""
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError:
        # cryptography (OpenSSL/BoringSSL) refuses an all-zero shared secret, i.e. a
        # small-order peer key, as RFC 7748 §6.1 asks; a test pins that behaviour.
        return None
    return HKDF(algorithm=SHA256(), length=_CEK_SIZE, salt=salt, info=HKDF_INFO).derive(shared)


def _field_bytes(text: str, name: str, length: int | None) -> bytes:
    try:
        return b64d(text, length)
    except (ValueError, TypeError) as exc:
        raise SealError(f"{name} is malformed: {exc}") from None
