"""Strict JSON and canonical base64url.

Kith signs and hashes exact bytes, so the *reading* of those bytes must be the
same in every implementation. ``strict_loads`` is the one reader: it refuses
duplicate object keys, integers outside ±2^53, ``NaN``/``Infinity`` (and numbers
too large to be finite), lone surrogates, a byte-order mark and trailing data —
all things on which JSON parsers disagree.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from typing import Any

import msgspec

from protocol.reasons import InvalidJSON, invalid

MAX_SAFE_INT = 2**53

#: The last character of canonical base64url whose unused low bits are zero, by ``len % 4``.
_SPARE_BITS_ZERO = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_PADDING = (b"", b"", b"==", b"=")
_FROM_URL = bytes.maketrans(b"-_+/=", b"+/***")
_TO_URL = bytes.maketrans(b"+/", b"-_")

#: A lone surrogate can come from an escape (``\\ud800``) or, in ``str`` input, be a code point.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
#: Only a number with 16+ digits can be an integer beyond ±2^53 or overflow a float
#: (``1`` followed by 309 zeros); only an exponent of 3+ digits can otherwise overflow.
_BIG_NUMBER = re.compile(r"\d{16}|[eE][+-]?\d{3}")
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_SIXTEEN_ZEROS = b"0" * 16

_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def b64e(data: bytes) -> str:
    """Encode bytes as base64url without padding.

    >>> b64e(b"kith")
    'a2l0aA'
    """
    return binascii.b2a_base64(data, newline=False).translate(_TO_URL).rstrip(b"=").decode("ascii")


def b64d(text: str, length: int | None = None) -> bytes:
    """Decode canonical unpadded base64url; refuse padding, other alphabets and non-zero spare bits.

    Raises ``ValueError`` on any non-canonical input, or when ``length`` is given and
    the decoded size differs.

    >>> b64d("a2l0aA")
    b'kith'
    """
    spare = len(text) % 4
    if spare == 1:
        raise ValueError("not canonical unpadded base64url (length)")
    if spare and text[-1] not in _SPARE_BITS_ZERO[spare]:
        raise ValueError("not canonical unpadded base64url (spare bits set)")
    try:
        # '+', '/' and '=' become '*', which strict mode refuses like any other stray byte.
        data = binascii.a2b_base64(
            text.encode("ascii").translate(_FROM_URL) + _PADDING[spare], strict_mode=True
        )
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("not canonical unpadded base64url") from None
    if length is not None and len(data) != length:
        raise ValueError(f"expected {length} bytes, got {len(data)}")
    return data


def _reject_constant(name: str) -> Any:
    raise InvalidJSON(invalid("json:number"), f"{name} is not JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise InvalidJSON(invalid("json:duplicate-key"), "an object repeats a key")
    return obj


def _check_numbers(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise InvalidJSON(invalid("json:int-range"), "an integer is outside ±2^53")
    elif isinstance(value, float):
        if math.isinf(value):
            raise InvalidJSON(invalid("json:number"), "a number is too large to be finite")
    elif isinstance(value, dict):
        for item in value.values():
            _check_numbers(item)
    elif isinstance(value, list):
        for item in value:
            _check_numbers(item)


def _check_surrogates(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidJSON(
                invalid("json:surrogate"), "a string holds a lone surrogate"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_surrogates(key)
            _check_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _check_surrogates(item)


def _reference_loads(text: str | bytes) -> Any:
    """The reference reader: Python's ``json`` plus the strict rules; slow but plain."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidJSON(invalid("json:utf8"), "text is not UTF-8") from None
    if text.startswith("\ufeff"):
        raise InvalidJSON(invalid("json:bom"), "text starts with a byte-order mark")
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant)
    except InvalidJSON:
        raise
    except (ValueError, RecursionError):
        raise InvalidJSON(invalid("json:malformed"), "text is not JSON") from None
    # Cheap textual pre-filters: only walk the value when the text could hide a problem.
    if _BIG_NUMBER.search(text):
        _check_numbers(value)
    if _SURROGATE.search(text):
        _check_surrogates(value)
    return value


def quotes_prove_unique(text: bytes, decoded_quotes: int) -> bool:
    r"""True only if JSON ``text`` (already read without error) repeats no object key.

    ``decoded_quotes`` counts the quotes msgspec writes when it re-encodes the decoded
    value: two per string (keys and values) plus one ``\"`` per quote character inside.
    In the text each string has two quotes plus one per ``\"`` escape, and a quote
    character may also be escaped as ``\u0022``. Counting every ``\u0022`` (one may be
    an escaped backslash followed by ``u0022``) can only overcount. So without repeated
    keys both sides agree, unless that overcount happens (False: the caller falls back
    to the exact reader); a repeated key adds at least one string (itself) that the
    decoded value dropped, and the text's side is always larger.
    """
    return text.count(b'"') + text.count(b"\\u0022") == decoded_quotes


def strict_loads(text: str | bytes) -> Any:
    """Parse strict JSON; raise ``InvalidJSON`` (reason ``invalid:json:<detail>``) otherwise.

    >>> strict_loads('{"a": 1}')
    {'a': 1}
    >>> strict_loads('{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    protocol.reasons.InvalidJSON: invalid:json:duplicate-key: an object repeats a key
    """
    if isinstance(text, str):
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate code point: the reference names it
            return _reference_loads(text)
    else:
        data = text
    # Fast path: msgspec already refuses lone surrogates, a BOM, trailing data, NaN and
    # numbers beyond float range, but reads integers of any size (beyond ±2^53 needs 16
    # digits in a row) and keeps the last of repeated keys (see quotes_prove_unique).
    # Whatever it cannot prove strict, the reference reader decides and explains.
    if _SIXTEEN_ZEROS not in data.translate(_DIGITS_TO_ZERO):
        try:
            value = _any_decoder.decode(data)
        except (msgspec.DecodeError, ValueError, RecursionError):
            pass
        else:
            if quotes_prove_unique(data, _encoder.encode(value).count(b'"')):
                return value
    return _reference_loads(text)
