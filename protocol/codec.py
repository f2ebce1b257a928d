"""Strict JSON and canonical base64url.

Kith signs and hashes exact bytes, so the *reading* of those bytes must be the
same in every implementation. ``strict_loads`` is the reference reader: it
refuses duplicate object keys, integers outside ±2^53, ``NaN``/``Infinity``,
lone surrogates, a byte-order mark and trailing data — all things on which
JSON parsers disagree.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from protocol.reasons import InvalidJSON, invalid

MAX_SAFE_INT = 2**53

_B64_RE = re.compile(r"^[A-Za-z0-9_-]*$")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB]|\\u[dD][c-fC-F]")
_LONG_DIGITS = re.compile(r"\d{16}")


def b64e(data: bytes) -> str:
    """Encode bytes as base64url without padding.

    >>> b64e(b"kith")
    'a2l0aA'
    """
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str, length: int | None = None) -> bytes:
    """Decode canonical unpadded base64url; refuse padding, other alphabets and non-zero spare bits.

    Raises ``ValueError`` on any non-canonical input, or when ``length`` is given and
    the decoded size differs.

    >>> b64d("a2l0aA")
    b'kith'
    """
    if not _B64_RE.match(text) or len(text) % 4 == 1:
        raise ValueError("not canonical unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # pragma: no cover - excluded by the regex and length check
        raise ValueError("not base64url") from exc
    if b64e(data) != text:
        raise ValueError("non-canonical base64url (spare bits set)")
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


def _check_ints(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise InvalidJSON(invalid("json:int-range"), "an integer is outside ±2^53")
    elif isinstance(value, dict):
        for item in value.values():
            _check_ints(item)
    elif isinstance(value, list):
        for item in value:
            _check_ints(item)


def _check_surrogates(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidJSON(invalid("json:surrogate"), "a string holds a lone surrogate") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_surrogates(key)
            _check_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _check_surrogates(item)


def strict_loads(text: str | bytes) -> Any:
    """Parse strict JSON; raise ``InvalidJSON`` (reason ``invalid:json:<detail>``) otherwise.

    >>> strict_loads('{"a": 1}')
    {'a': 1}
    >>> strict_loads('{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    protocol.reasons.InvalidJSON: invalid:json:duplicate-key: an object repeats a key
    """
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
    if _LONG_DIGITS.search(text):
        _check_ints(value)
    if _SURROGATE_ESCAPE.search(text):
        _check_surrogates(value)
    return value
