"""Strict JSON and canonical base64url (protocol/codec.py, docs/protocol.md §5)."""

from __future__ import annotations

import base64
import doctest
import json
import math
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codec import (
    MAX_SAFE_INT,
    _reference_loads,
    b64d,
    b64e,
    quotes_prove_unique,
    strict_loads,
)
from protocol.reasons import InvalidJSON, RejectedEvent

B64URL = string.ascii_letters + string.digits + "-_"

# --- canonical base64url -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"kith", "a2l0aA"),
        (b"\xfb\xff", "-_8"),  # the url-safe characters
        (bytes(32), "A" * 43),
    ],
)
def test_b64_known_values(data: bytes, text: str) -> None:
    assert b64e(data) == text
    assert b64d(text) == data


@given(st.binary(max_size=100))
def test_b64_round_trip(data: bytes) -> None:
    text = b64e(data)
    assert "=" not in text
    assert b64d(text) == data
    assert b64d(text, len(data)) == data


@pytest.mark.parametrize(
    "text",
    [
        "Zg==",  # padding
        "Zg=",
        "Zm9v=",
        "A",  # length mod 4 == 1
        "AAAAA",
        "Zh",  # spare bits set (last character of 2 must be one of AQgw)
        "Zm9",  # spare bits set (last character of 3 must be one of AEIM...)
        "Zm+v",  # standard alphabet
        "Zm/v",
        "Zm9v\n",  # whitespace, even at the end
        " Zm9v",
        "Zm 9v",
        "Zm9vé",  # not ASCII
        "Zm9v\x00",
        "Zm*v",
    ],
)
def test_b64d_refuses_non_canonical(text: str) -> None:
    with pytest.raises(ValueError, match="canonical"):
        b64d(text)


def test_b64d_checks_length() -> None:
    assert b64d("A" * 43, 32) == bytes(32)
    with pytest.raises(ValueError, match="expected 32 bytes, got 31"):
        b64d("A" * 42, 32)


def _canonical_reference(text: str) -> bytes | None:
    """Canonical unpadded base64url by definition: decodes, and re-encodes to itself."""
    if not set(text) <= set(B64URL) or len(text) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return data if base64.urlsafe_b64encode(data).rstrip(b"=").decode() == text else None


@given(st.text(alphabet=B64URL + "=+/ \n", max_size=12))
def test_b64d_accepts_exactly_the_canonical_spelling(text: str) -> None:
    expected = _canonical_reference(text)
    if expected is None:
        with pytest.raises(ValueError):
            b64d(text)
    else:
        assert b64d(text) == expected


# --- strict JSON: what is accepted ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        (b'{"a": 1}', {"a": 1}),
        ("[]", []),
        ('"x"', "x"),
        ("null", None),
        ("true", True),
        (" \t\n\r{} \n", {}),
        ("1.5", 1.5),
        ("-0.0", -0.0),
        ("1e308", 1e308),
        ("1e-400", 0.0),  # underflow is a finite number
        (str(MAX_SAFE_INT), MAX_SAFE_INT),
        (str(-MAX_SAFE_INT), -MAX_SAFE_INT),
        ("1234567890123456", 1234567890123456),  # 16 digits, within ±2^53
        ('{"n": [12345678901234567.5]}', {"n": [12345678901234567.5]}),  # floats: no int rule
        ('"\\ud83d\\ude00"', "😀"),  # a surrogate *pair* is one character
        ('"😀é"', "😀é"),
        ('{"a":{"a":{"a":1}}}', {"a": {"a": {"a": 1}}}),  # same key at different levels
        ('[{"a":1},{"a":1}]', [{"a": 1}, {"a": 1}]),  # same key in different objects
        ('{"a":"\\u0022","b":"\\""}', {"a": '"', "b": '"'}),
        ('{"a\\\\":"\\\\u0022"}', {"a\\": "\\u0022"}),  # escaped backslashes
        ('{"\\u0061":1,"b":2}', {"a": 1, "b": 2}),
        ('[true, null, "s", 1.5, 1234567890123456]', [True, None, "s", 1.5, 1234567890123456]),
        ('{"\\ud83d\\ude00": [1, "\\ud83d\\ude00", null]}', {"😀": [1, "😀", None]}),
    ],
)
def test_strict_loads_accepts(text: str | bytes, value: Any) -> None:
    assert _same(strict_loads(text), value)
    assert _same(_reference_loads(text), value)


# --- strict JSON: what is refused, and why --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": 1, "a": 2}', "invalid:json:duplicate-key"),
        ('{"a": 1, "a": 1}', "invalid:json:duplicate-key"),
        ('{"x": {"a": 1, "a": 2}}', "invalid:json:duplicate-key"),
        ('[1, [{"b": {"a": 1, "a": 2}}]]', "invalid:json:duplicate-key"),
        ('{"a": 1, "\\u0061": 2}', "invalid:json:duplicate-key"),
        ('{"\\"": 1, "\\u0022": 2}', "invalid:json:duplicate-key"),
        ('{"a": {}, "a": {"b": 1}}', "invalid:json:duplicate-key"),
        (str(MAX_SAFE_INT + 1), "invalid:json:int-range"),
        (str(-MAX_SAFE_INT - 1), "invalid:json:int-range"),
        ('{"a": [1, 99999999999999999999]}', "invalid:json:int-range"),
        ("1" * 400, "invalid:json:int-range"),
        ("NaN", "invalid:json:number"),
        ('{"a": Infinity}', "invalid:json:number"),
        ("[-Infinity]", "invalid:json:number"),
        ("1e400", "invalid:json:number"),
        ('{"a": [-1e400]}', "invalid:json:number"),
        ("1" * 310 + ".0", "invalid:json:number"),
        ('"\\ud800"', "invalid:json:surrogate"),
        ('"\\udc00"', "invalid:json:surrogate"),
        ('"\\udc00\\ud800"', "invalid:json:surrogate"),  # a pair in the wrong order
        ('"\\ud800\\u0041"', "invalid:json:surrogate"),
        ('{"\\uDBFF": 1}', "invalid:json:surrogate"),  # in a key, upper-case hex
        ('{"a": ["\\uD800x"]}', "invalid:json:surrogate"),
        ('"\ud800"', "invalid:json:surrogate"),  # a raw surrogate code point in a str
        ('{"a": "\udfff"}', "invalid:json:surrogate"),
        ("\ufeff{}", "invalid:json:bom"),
        (b"\xef\xbb\xbf{}", "invalid:json:bom"),
        ("{} {}", "invalid:json:malformed"),
        ("{}x", "invalid:json:malformed"),
        ("", "invalid:json:malformed"),
        ("{'a': 1}", "invalid:json:malformed"),
        ('{"a": 01}', "invalid:json:malformed"),
        ('{"a": 1,}', "invalid:json:malformed"),
        ('"\x01"', "invalid:json:malformed"),  # a raw control character
        ('"\\x41"', "invalid:json:malformed"),
        ("[" * 100_000 + "]" * 100_000, "invalid:json:malformed"),  # too deep for any reader
        (b"\xff", "invalid:json:utf8"),
        (b'"\xc0\xaf"', "invalid:json:utf8"),  # an overlong encoding
        (b'"\xed\xa0\x80"', "invalid:json:utf8"),  # a surrogate encoded as UTF-8 (CESU)
    ],
)
def test_strict_loads_refuses(text: str | bytes, reason: str) -> None:
    for reader in (strict_loads, _reference_loads):
        with pytest.raises(InvalidJSON) as caught:
            reader(text)
        assert caught.value.reason == reason
        assert isinstance(caught.value, RejectedEvent)
        assert caught.value.message


def test_strict_loads_reports_the_detail_in_the_message() -> None:
    with pytest.raises(InvalidJSON, match="repeats a key"):
        strict_loads('{"a": 1, "a": 2}')


# --- the quote count that proves keys unique -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unique"),
    [
        (b'{"a":1}', True),
        (b'{"a":"x\\"y"}', True),
        (b'{"a":"x\\u0022y"}', True),
        (b'{"a":1,"a":1}', False),
        (b'{"a":"\\\\u0022"}', False),  # an escaped backslash: counted, though not a quote
    ],
)
def test_quotes_prove_unique(text: bytes, unique: bool) -> None:
    written = json.dumps(json.loads(text), separators=(",", ":")).encode()
    assert quotes_prove_unique(text, written.count(b'"')) is unique


# --- the fast reader agrees with the reference -----------------------------------------------

#: Keys from a tiny alphabet so that generated objects often repeat a key.
KEYS = st.sampled_from(["a", "b", "é", '"', "\\", "\ud800", "\U0001f600"])
CHARS = st.sampled_from(["x", "é", '"', "\\", "/", "\n", "\x00", "\ud800", "\udc00", "😀"])
NUMBERS = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.sampled_from([MAX_SAFE_INT, MAX_SAFE_INT + 1, -MAX_SAFE_INT - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def json_string(draw: st.DrawFn, chars: st.SearchStrategy[str] = CHARS) -> str:
    """A JSON string literal, each character written raw or escaped at random."""
    out = []
    for char in draw(st.lists(chars, max_size=4)):
        style = draw(st.sampled_from(["raw", "u", "U"]))
        if char in '"\\' or ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF or style != "raw":
            if ord(char) > 0xFFFF:  # as a surrogate pair
                high, low = divmod(ord(char) - 0x10000, 0x400)
                out.append(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04X}")
            elif char in '"\\' and style == "raw":
                out.append("\\" + char)
            else:
                hex4 = f"{ord(char):04x}"
                out.append("\\u" + (hex4.upper() if style == "U" else hex4))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@st.composite
def json_number(draw: st.DrawFn) -> str:
    number = draw(NUMBERS)
    forms = [repr(number), json.dumps(number)]
    if isinstance(number, int):
        forms.append(f"{number}e0")
    return draw(st.sampled_from([*forms, "1e400", "-1e999", "1E5", "-0", "0.0e-5"]))


def json_text() -> st.SearchStrategy[str]:
    """JSON-like text: objects may repeat keys; strings mix raw characters and escapes."""
    ws = st.sampled_from(["", " ", "\n\t"])
    scalar = st.one_of(
        json_string(), json_number(), st.sampled_from(["null", "true", "false", "NaN"])
    )

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        pair = st.tuples(json_string(KEYS), ws, children)
        return st.one_of(
            st.lists(children, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
            st.lists(pair, max_size=3).map(
                lambda pairs: "{" + ",".join(f"{k}:{w}{v}" for k, w, v in pairs) + "}"
            ),
        )

    return st.recursive(scalar, extend, max_leaves=8)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON types all the way down (``True`` is not ``1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def _read(reader: Any, text: str | bytes) -> tuple[str, Any]:
    try:
        return "ok", reader(text)
    except InvalidJSON as exc:
        return exc.reason, None


@given(json_text(), st.booleans(), st.integers(min_value=0, max_value=3))
def test_strict_loads_agrees_with_the_reference(text: str, as_bytes: bool, junk: int) -> None:
    text += ["", " ", "}", "\ufeff"][junk]
    data: str | bytes = text
    if as_bytes:
        data = text.encode("utf-8", "surrogatepass")  # raw surrogates become invalid UTF-8
    fast, value = _read(strict_loads, data)
    reference, expected = _read(_reference_loads, data)
    assert fast == reference
    assert _same(value, expected)


@given(st.binary(max_size=40))
def test_strict_loads_never_raises_anything_else(data: bytes) -> None:
    fast, value = _read(strict_loads, data)
    reference, expected = _read(_reference_loads, data)
    assert fast == reference
    assert _same(value, expected)


def test_docstring_examples_run() -> None:
    import protocol.codec

    result = doctest.testmod(protocol.codec)
    assert result.attempted > 0
    assert result.failed == 0
