"""Non-event signatures (DESIGN §2): HTTP tokens, stream AUTH and the federation handshake.

Every such signature covers exactly these ASCII bytes::

    kith-auth/1\\n<purpose>\\n<node_key>\\n<nonce>\\n<expiry_ms>

Each part is validated so that no part can hold a newline and the message always
starts with ``k`` — it can never be mistaken for an event head, which starts with
``{``, nor can two different part lists give the same bytes.

A *token* carries the signature and everything needed to check it as one string,
used in ``Authorization: Kith <token>`` and in a stream's ``AUTH`` frame::

    kith1.<purpose>.<author>.<node_key>.<nonce>.<expiry_ms>.<sig>

No part may contain ``.``, so splitting on it is unambiguous. Tokens live at most
five minutes and are bound to one node's key.

>>> from protocol.crypto import SigningKey
>>> member, node = SigningKey.from_seed(bytes(32)), SigningKey.from_seed(bytes([1]) * 32)
>>> token = make_token(member, purpose="http", node_key=node.public_b64, now_ms=1_000)
>>> claims = check_token(token, purpose="http", node_key=node.public_b64, now_ms=2_000)
>>> claims.author == member.public_b64
True
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Final

import msgspec

from protocol.codec import b64d, b64e
from protocol.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, verify
from protocol.reasons import InvalidToken

#: Domain-separation prefix of every non-event signature.
AUTH_PREFIX: Final = b"kith-auth/1\n"
#: First part of every token; a new token layout gets a new prefix.
TOKEN_PREFIX: Final = "kith1"
#: No token may claim to live longer than this (DESIGN §2).
MAX_TTL_MS: Final = 300_000

FORMAT: Final = "invalid:token:format"
PURPOSE: Final = "invalid:token:purpose"
NODE: Final = "invalid:token:node"
EXPIRED: Final = "invalid:token:expired"
LIFETIME: Final = "invalid:token:lifetime"
NONCE: Final = "invalid:token:nonce"
SIG: Final = "invalid:token:sig"

#: Every reason ``check_token`` may raise, in check order.
TOKEN_REASONS: Final = (FORMAT, PURPOSE, NODE, EXPIRED, LIFETIME, NONCE, SIG)

# ASCII-only classes (no \d, no re.UNICODE surprises) and \Z rather than $, which
# would also match before a trailing newline.
_PURPOSE_RE = re.compile(r"[a-z][a-z0-9-]{0,31}\Z")
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,128}\Z")
# Canonical decimal: no sign, no leading zeros, so every expiry has one spelling.
_EXPIRY_RE = re.compile(r"(?:0|[1-9][0-9]{0,15})\Z")
_MAX_EXPIRY_MS = 2**53
# Longest well-formed token is 359 characters; refuse anything far beyond before splitting.
_MAX_TOKEN_LEN = 512


class TokenClaims(msgspec.Struct, frozen=True, kw_only=True):
    """What a valid token asserts: ``author`` signed for ``purpose`` at ``node_key`` till expiry."""

    author: str
    purpose: str
    node_key: str
    nonce: str
    expiry_ms: int


def auth_message(purpose: str, node_key: str, nonce: str, expiry_ms: int) -> bytes:
    """Return the exact bytes a non-event signature covers; ``ValueError`` on a bad part.

    ``purpose`` matches ``^[a-z][a-z0-9-]{0,31}$``; ``node_key`` is the canonical
    base64url of a 32-byte Ed25519 key; ``nonce`` is 16..128 base64url-alphabet
    characters; ``expiry_ms`` is an integer in 0..2^53 (ms since the Unix epoch).

    >>> auth_message("http", "A" * 43, "n" * 16, 1700000000000)
    b'kith-auth/1\\nhttp\\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\nnnnnnnnnnnnnnnnn\\n1700000000000'
    """
    if not isinstance(purpose, str) or not _PURPOSE_RE.match(purpose):
        raise ValueError("purpose must match ^[a-z][a-z0-9-]{0,31}$")
    if not _is_b64(node_key, PUBLIC_KEY_SIZE):
        raise ValueError("node_key must be the base64url of a 32-byte Ed25519 key")
    if not isinstance(nonce, str) or not _NONCE_RE.match(nonce):
        raise ValueError("nonce must be 16..128 base64url characters")
    # bool is an int subclass; True must not sign as "1".
    if type(expiry_ms) is not int or not 0 <= expiry_ms <= _MAX_EXPIRY_MS:
        raise ValueError("expiry_ms must be an integer in 0..2^53")
    return AUTH_PREFIX + b"\n".join(
        [purpose.encode(), node_key.encode(), nonce.encode(), b"%d" % expiry_ms]
    )


def sign_auth(key: SigningKey, purpose: str, node_key: str, nonce: str, expiry_ms: int) -> str:
    """Sign ``auth_message(...)`` with ``key``; return the base64url signature.

    >>> key = SigningKey.from_seed(bytes(32))
    >>> sig = sign_auth(key, "stream", key.public_b64, "n" * 22, 60_000)
    >>> verify_auth(key.public_b64, sig, "stream", key.public_b64, "n" * 22, 60_000)
    True
    """
    return b64e(key.sign(auth_message(purpose, node_key, nonce, expiry_ms)))


def verify_auth(
    author_b64: str, sig_b64: str, purpose: str, node_key: str, nonce: str, expiry_ms: int
) -> bool:
    """Return True iff ``sig_b64`` is ``author_b64``'s strict Ed25519 signature of the message.

    Never raises: malformed keys, signatures or parts are simply ``False``. Checks
    only the signature — expiry, node and nonce are the caller's (or ``check_token``'s).
    """
    try:
        message = auth_message(purpose, node_key, nonce, expiry_ms)
        author = b64d(author_b64, PUBLIC_KEY_SIZE)
        sig = b64d(sig_b64, SIGNATURE_SIZE)
    except (ValueError, TypeError):
        return False
    return verify(author, sig, message)


def make_token(
    key: SigningKey,
    *,
    purpose: str,
    node_key: str,
    now_ms: int,
    ttl_ms: int = MAX_TTL_MS,
    nonce: str | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> str:
    """Make a token by ``key`` for ``purpose`` at the node ``node_key``, valid ``ttl_ms`` from now.

    ``ttl_ms`` is 1..300000. Pass the ``nonce`` a node issued (stream AUTH, federation
    handshake); otherwise a fresh 16-byte random one is used. ``ValueError`` on bad input.

    >>> key = SigningKey.from_seed(bytes(32))
    >>> make_token(key, purpose="http", node_key=key.public_b64, now_ms=0, nonce="n" * 16)[:54]
    'kith1.http.O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik'
    """
    if type(ttl_ms) is not int or not 1 <= ttl_ms <= MAX_TTL_MS:
        raise ValueError(f"ttl_ms must be an integer in 1..{MAX_TTL_MS}")
    if type(now_ms) is not int:
        raise ValueError("now_ms must be an integer")
    if nonce is None:
        nonce = b64e(rng(16))
    expiry_ms = now_ms + ttl_ms
    sig = sign_auth(key, purpose, node_key, nonce, expiry_ms)
    return ".".join([TOKEN_PREFIX, purpose, key.public_b64, node_key, nonce, str(expiry_ms), sig])


def check_token(
    token: str,
    *,
    purpose: str,
    node_key: str,
    now_ms: int,
    expected_nonce: str | None = None,
    max_ttl_ms: int = MAX_TTL_MS,
) -> TokenClaims:
    """Return the claims of a valid ``token``; else raise ``InvalidToken`` with a stable reason.

    Checks, in order: format, purpose, node, expiry (``now_ms > expiry``) and
    lifetime (``expiry - now_ms > max_ttl_ms``), nonce (only when
    ``expected_nonce`` is given), signature. The cheap checks come first so a
    stale or misdirected token costs no signature verification. Whether the author
    may act (the roster) is for the caller to decide.

    >>> check_token("kith1.x", purpose="http", node_key="", now_ms=0)
    Traceback (most recent call last):
    ...
    protocol.reasons.InvalidToken: invalid:token:format: a token has 7 dot-separated parts
    """
    if type(max_ttl_ms) is not int or not 1 <= max_ttl_ms <= MAX_TTL_MS:
        raise ValueError(f"max_ttl_ms must be an integer in 1..{MAX_TTL_MS}")
    claims, author, sig = _parse(token)
    if claims.purpose != purpose:
        raise InvalidToken(PURPOSE, f"token is for {claims.purpose!r}, not {purpose!r}")
    if claims.node_key != node_key:
        raise InvalidToken(NODE, "token is bound to another node")
    if now_ms > claims.expiry_ms:
        raise InvalidToken(EXPIRED, f"token expired {now_ms - claims.expiry_ms} ms ago")
    if claims.expiry_ms - now_ms > max_ttl_ms:
        raise InvalidToken(LIFETIME, f"token claims to live longer than {max_ttl_ms} ms")
    if expected_nonce is not None and claims.nonce != expected_nonce:
        raise InvalidToken(NONCE, "token answers another challenge")
    message = auth_message(claims.purpose, claims.node_key, claims.nonce, claims.expiry_ms)
    if not verify(author, sig, message):
        raise InvalidToken(SIG, "token signature does not verify")
    return claims


def _parse(token: str) -> tuple[TokenClaims, bytes, bytes]:
    """Split and validate the token's syntax; every failure is ``invalid:token:format``."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LEN:
        raise InvalidToken(FORMAT, "a token is a string of at most 512 characters")
    parts = token.split(".")
    if len(parts) != 7:
        raise InvalidToken(FORMAT, "a token has 7 dot-separated parts")
    prefix, purpose, author, node_key, nonce, expiry, sig_b64 = parts
    if prefix != TOKEN_PREFIX:
        raise InvalidToken(FORMAT, f"a token starts with {TOKEN_PREFIX!r}")
    if not _is_b64(author, PUBLIC_KEY_SIZE):
        raise InvalidToken(FORMAT, "author is not the base64url of a 32-byte key")
    if not _is_b64(sig_b64, SIGNATURE_SIZE):
        raise InvalidToken(FORMAT, "sig is not the base64url of a 64-byte signature")
    if not _EXPIRY_RE.match(expiry) or int(expiry) > _MAX_EXPIRY_MS:
        raise InvalidToken(FORMAT, "expiry is not a canonical integer in 0..2^53")
    try:
        auth_message(purpose, node_key, nonce, int(expiry))
    except ValueError as exc:
        raise InvalidToken(FORMAT, str(exc)) from None
    claims = TokenClaims(
        author=author, purpose=purpose, node_key=node_key, nonce=nonce, expiry_ms=int(expiry)
    )
    return claims, b64d(author), b64d(sig_b64)


def _is_b64(text: object, length: int) -> bool:
    if not isinstance(text, str):
        return False
    try:
        b64d(text, length)
    except ValueError:
        return False
    return True
