"""The envelope, the strict head and the body binding (protocol/envelope.py, protocol.md §2-§7)."""

from __future__ import annotations

import doctest
import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol.envelope as envelope_module
from protocol.codec import b64d, b64e, strict_loads
from protocol.crypto import SigningKey, sha256_b64
from protocol.envelope import (
    KEY_PATTERN,
    KIND_PATTERN,
    MAX_BODY_BYTES,
    MAX_ENVELOPE_BYTES,
    MAX_HEAD_BYTES,
    MAX_SAFE_INT,
    SCOPES,
    SIG_PATTERN,
    B64Key,
    Envelope,
    Event,
    Head,
    build_head,
    check_body,
    decode_envelope,
    decode_head,
    encode_envelope,
    event_id,
    parse_event,
    sign_event,
    verify_event,
)
from protocol.reasons import TOO_LARGE, RejectedEvent

KEY = SigningKey.from_seed(bytes(range(32)))
OTHER = SigningKey.from_seed(bytes(range(1, 33)))
POD = KEY.public_b64
ID = sha256_b64(b"some earlier event")
TS = 1_700_000_000_000


def fields(body: str | None = '{"a":1}', **over: Any) -> dict[str, Any]:
    """The fields of a valid head (seq 1 of a public log), with ``over`` replacing some."""
    head: dict[str, Any] = {
        "v": 1,
        "pod": POD,
        "author": KEY.public_b64,
        "scope": "public",
        "seq": 1,
        "prev": None,
        "ts": TS,
        "kind": "test.event",
        "body_hash": None if body is None else sha256_b64(body.encode()),
        "body_size": 0 if body is None else len(body.encode()),
    }
    head.update(over)
    return head


def text(head: dict[str, Any]) -> str:
    return json.dumps(head, separators=(",", ":"))


def signed(head: str, body: str | None = '{"a":1}', key: SigningKey = KEY) -> Envelope:
    """An envelope whose signature is good for exactly this head text."""
    return Envelope(head=head, sig=b64e(key.sign(head.encode("utf-8"))), body=body)


def reason_of(call: Any, *args: Any) -> str:
    with pytest.raises(RejectedEvent) as caught:
        call(*args)
    return caught.value.reason


GOOD = signed(text(fields()))
WIRE = encode_envelope(GOOD)


# --- decode_envelope ------------------------------------------------------------------------


def test_decode_envelope_round_trip() -> None:
    assert json.dumps(msgspec.structs.asdict(GOOD), separators=(",", ":")).encode() == WIRE
    assert decode_envelope(WIRE) == GOOD
    assert decode_envelope(WIRE.decode()) == GOOD
    assert decode_envelope(encode_envelope(Envelope(head="{}", sig="", body=None))).body is None


@pytest.mark.parametrize(
    "wire",
    [
        # Any formatting, member order and escaping of the envelope itself is fine.
        b' {\n "body" : "{\\"a\\":1}" ,\t"sig":"SIG", "head":"HEAD"}\r\n',
        b'{"h\\u0065ad":"HEAD","\\u0073ig":"SIG","body":"{\\"a\\":1}"}',
        b'{"head":"HEAD","sig":"SIG","body":"{\\u0022a\\u0022:1}"}',
        b'{"head":"HEAD","sig":"SIG","body":"{\\"a\\":1}"}',
    ],
)
def test_decode_envelope_accepts_any_formatting(wire: bytes) -> None:
    head = json.dumps(GOOD.head)[1:-1].encode()
    data = wire.replace(b"HEAD", head).replace(b"SIG", GOOD.sig.encode())
    assert decode_envelope(data) == GOOD


def test_decode_envelope_escaped_backslash_is_not_a_repeat() -> None:
    # "\\u0022" is an escaped backslash then "u0022": counted as a quote by the fast
    # check, which then defers to the exact reader.
    env = Envelope(head=GOOD.head, sig=GOOD.sig, body='{"a":"\\u0022"}')
    data = encode_envelope(env).replace(b',"body"', b', "body"')
    assert b"\\\\u0022" in data
    assert decode_envelope(data) == env


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "invalid:envelope:json"),
        (b"{", "invalid:envelope:json"),
        (WIRE + b" x", "invalid:envelope:json"),
        (b"\xef\xbb\xbf" + WIRE, "invalid:envelope:json"),
        (WIRE.replace(b'"sig"', b'"sig\xff"'), "invalid:envelope:json"),  # not UTF-8
        (b'{"head":NaN,"sig":"","body":null}', "invalid:envelope:json"),
        (b'{"head":"\\ud800","sig":"","body":null}', "invalid:envelope:json"),
        (b'{"head":"\\udc00x","sig":"","body":null}', "invalid:envelope:json"),
        (b"[]", "invalid:envelope:not-object"),
        (b'"head"', "invalid:envelope:not-object"),
        (b"null", "invalid:envelope:not-object"),
        (b'{"sig":"","body":null}', "invalid:envelope:missing:head"),
        (b'{"head":"","body":null}', "invalid:envelope:missing:sig"),
        (b'{"head":"","sig":""}', "invalid:envelope:missing:body"),
        (WIRE[:-1] + b',"id":"x"}', "invalid:envelope:unknown-field"),
        (b'{"head":{},"sig":"","body":null}', "invalid:envelope:field:head"),
        (b'{"head":"","sig":null,"body":null}', "invalid:envelope:field:sig"),
        (b'{"head":"","sig":"","body":{}}', "invalid:envelope:field:body"),
        (b'{"head":"","sig":"","body":1}', "invalid:envelope:field:body"),
        (WIRE[:-1] + b',"body":null}', "invalid:envelope:json:duplicate-key"),
        (WIRE[:-1] + b',"sig":"x"}', "invalid:envelope:json:duplicate-key"),
        (b'{"head":"x",' + WIRE[1:], "invalid:envelope:json:duplicate-key"),
        (WIRE[:-1] + b',"b\\u006fdy":null}', "invalid:envelope:json:duplicate-key"),
        (
            WIRE[:-1] + b', "\\u0068\\u0065\\u0061\\u0064" :"x"}',
            "invalid:envelope:json:duplicate-key",
        ),
        (b" " * (MAX_ENVELOPE_BYTES + 1), TOO_LARGE),
    ],
)
def test_decode_envelope_refuses(wire: bytes, reason: str) -> None:
    assert reason_of(decode_envelope, wire) == reason


def test_decode_envelope_measures_str_input_in_utf8_bytes() -> None:
    padding = "é" * (MAX_ENVELOPE_BYTES // 2 + 1)  # fewer characters than the limit, more bytes
    assert len(padding) < MAX_ENVELOPE_BYTES
    assert reason_of(decode_envelope, padding) == TOO_LARGE


def test_decode_envelope_refuses_a_str_with_a_lone_surrogate() -> None:
    data = '{"head":"\ud800","sig":"","body":null}'
    assert reason_of(decode_envelope, data) == "invalid:envelope:json"


# --- decode_head ----------------------------------------------------------------------------


def test_decode_head() -> None:
    head = decode_head(text(fields()).encode())
    assert head == Head(**fields())
    assert head.kind == "test.event"


@pytest.mark.parametrize(
    "head_text",
    [
        # Any formatting, field order and escaping is allowed; the bytes are what count.
        " {\n" + text(fields())[1:-1].replace(",", " ,\t") + "\r\n} ",
        json.dumps(dict(reversed(fields().items()))),
        text(fields()).replace('"v"', '"\\u0076"').replace('"seq"', '"s\\u0065q"'),
        text(fields()).replace("test.event", "te\\u0073t\\u002eevent"),
        text(fields(seq=MAX_SAFE_INT, prev=ID, ts=MAX_SAFE_INT, body=None)),
        text(fields(ts=0, body_size=MAX_BODY_BYTES)),
        text(fields(kind="a." + "b" * 62)),
        text(fields(scope="pod")),
        text(fields(scope="peers", seq=2, prev=ID)),
    ],
)
def test_decode_head_accepts(head_text: str) -> None:
    head = decode_head(head_text.encode())
    assert msgspec.structs.asdict(head) == json.loads(head_text)


def _without(name: str) -> str:
    head = fields()
    del head[name]
    return text(head)


@pytest.mark.parametrize(
    ("head_text", "reason"),
    [
        # strict JSON
        ("", "invalid:head:json"),
        (text(fields())[:-1], "invalid:head:json"),
        (text(fields()) + "x", "invalid:head:json"),
        (text(fields()) + "{}", "invalid:head:json"),
        ("\ufeff" + text(fields()), "invalid:head:json"),
        (text(fields()).replace("test.event", "test.\\ud800"), "invalid:head:json"),
        (text(fields()).replace("test.event", "test.\\udfff"), "invalid:head:json"),
        (text(fields()).replace("1700000000000", "NaN"), "invalid:head:json"),
        (text(fields()).replace('"v":1', '"v":01'), "invalid:head:json"),
        ("[" + text(fields()) + "]", "invalid:head:not-object"),
        ('"x"', "invalid:head:not-object"),
        ("1", "invalid:head:not-object"),
        # repeated keys, however spelled, even with the same value
        (text(fields())[:-1] + ',"seq":1}', "invalid:head:json:duplicate-key"),
        (text(fields())[:-1] + ',"prev":null}', "invalid:head:json:duplicate-key"),
        (text(fields()).replace('"v":1,', '"v":1,"v":1,'), "invalid:head:json:duplicate-key"),
        (text(fields())[:-1] + ',"\\u0073eq":1}', "invalid:head:json:duplicate-key"),
        ('{"prev":"' + ID + '",' + text(fields())[1:], "invalid:head:json:duplicate-key"),
        ('{"kind":"a.b",' + text(fields())[1:], "invalid:head:json:duplicate-key"),
        # missing and extra fields
        *[(_without(name), f"invalid:head:missing:{name}") for name in fields()],
        (text({**fields(), "id": "x"}), "invalid:head:unknown-field"),
        (text({**fields(), "V": 1}), "invalid:head:unknown-field"),
        # wrong types and ranges
        (text(fields(v=2)), "invalid:head:field:v"),
        (text(fields(v=0)), "invalid:head:field:v"),
        (text(fields(v=True)), "invalid:head:field:v"),
        (text(fields(v=1.0)), "invalid:head:field:v"),
        (text(fields(v="1")), "invalid:head:field:v"),
        (text(fields(seq=0)), "invalid:head:field:seq"),
        (text(fields(seq=-1)), "invalid:head:field:seq"),
        (text(fields(seq=1.0)), "invalid:head:field:seq"),
        (text(fields()).replace('"seq":1', '"seq":1e0'), "invalid:head:field:seq"),
        (text(fields(seq=True)), "invalid:head:field:seq"),
        (text(fields(seq="1")), "invalid:head:field:seq"),
        (text(fields(seq=None)), "invalid:head:field:seq"),
        (text(fields(seq=MAX_SAFE_INT + 1, prev=ID)), "invalid:head:field:seq"),
        (text(fields(seq=2**64, prev=ID)), "invalid:head:field:seq"),
        (text(fields()).replace('"seq":1', '"seq":1e400'), "invalid:head:field:seq"),
        (text(fields(ts=-1)), "invalid:head:field:ts"),
        (text(fields(ts=TS + 0.5)), "invalid:head:field:ts"),
        (text(fields(ts=MAX_SAFE_INT + 1)), "invalid:head:field:ts"),
        (text(fields(ts=False)), "invalid:head:field:ts"),
        (text(fields(scope="world")), "invalid:head:field:scope"),
        (text(fields(scope="Pod")), "invalid:head:field:scope"),
        (text(fields(scope=None)), "invalid:head:field:scope"),
        (text(fields(body_size=-1)), "invalid:head:field:body_size"),
        (text(fields(body_size=MAX_BODY_BYTES + 1)), "invalid:head:field:body_size"),
        (text(fields(body_size=7.0)), "invalid:head:field:body_size"),
        # key encodings: pod, author, prev and body_hash are canonical base64url of 32 bytes
        (text(fields(pod=POD[:-1])), "invalid:head:field:pod"),
        (text(fields(pod=POD + "A")), "invalid:head:field:pod"),
        (text(fields(pod=POD + "=")), "invalid:head:field:pod"),
        (text(fields(pod=POD[:-1] + "B")), "invalid:head:field:pod"),  # spare bits set
        (text(fields(pod="+" + POD[1:])), "invalid:head:field:pod"),
        (text(fields(pod="/" + POD[1:])), "invalid:head:field:pod"),
        (text(fields(pod=POD + "\n")), "invalid:head:field:pod"),
        (text(fields(pod=" " + POD[1:])), "invalid:head:field:pod"),
        (text(fields(pod=None)), "invalid:head:field:pod"),
        (text(fields(pod=1)), "invalid:head:field:pod"),
        (text(fields(author=KEY.public_b64[:-1] + "_")), "invalid:head:field:author"),
        (text(fields(author=b64e(bytes(31)))), "invalid:head:field:author"),
        (text(fields(author=b64e(bytes(33)))), "invalid:head:field:author"),
        (text(fields(seq=2, prev=ID[:-1] + "9")), "invalid:head:field:prev"),
        (text(fields(seq=2, prev="")), "invalid:head:field:prev"),
        (text(fields(body_hash=ID + "\n")), "invalid:head:field:body_hash"),
        (text(fields(body_hash=ID.replace(ID[0], "+"))), "invalid:head:field:body_hash"),
        # the kind pattern
        (text(fields(kind="test")), "invalid:head:field:kind"),
        (text(fields(kind="Test.event")), "invalid:head:field:kind"),
        (text(fields(kind="test.Event")), "invalid:head:field:kind"),
        (text(fields(kind="1test.event")), "invalid:head:field:kind"),
        (text(fields(kind="test.1event")), "invalid:head:field:kind"),
        (text(fields(kind="test..event")), "invalid:head:field:kind"),
        (text(fields(kind=".test.event")), "invalid:head:field:kind"),
        (text(fields(kind="test.event.")), "invalid:head:field:kind"),
        (text(fields(kind="test.event\n")), "invalid:head:field:kind"),
        (text(fields(kind="test-x.event")), "invalid:head:field:kind"),
        (text(fields(kind="a." + "b" * 63)), "invalid:head:field:kind"),
        (text(fields(kind="")), "invalid:head:field:kind"),
        # cross-field rules
        (text(fields(prev=ID)), "invalid:head:prev"),
        (text(fields(seq=2)), "invalid:head:prev"),
        (text(fields(body_size=0)), "invalid:head:body_size"),
        (text(fields(body=None, body_size=7)), "invalid:head:body_size"),
    ],
)
def test_decode_head_refuses(head_text: str, reason: str) -> None:
    assert reason_of(decode_head, head_text.encode()) == reason


def test_decode_head_refuses_bytes_that_are_not_utf8() -> None:
    assert reason_of(decode_head, text(fields()).encode().replace(b"test", b"t\xffst")) == (
        "invalid:head:json"
    )


def test_head_checks_patterns_on_construction_too() -> None:
    with pytest.raises(ValueError, match="`author` must be canonical base64url"):
        Head(**fields(author="x"))
    with pytest.raises(msgspec.ValidationError, match="`kind` must be a dotted lowercase name"):
        msgspec.convert(fields(kind="x"), Head)


def test_head_pattern_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Known pods, authors and kinds skip the patterns; the memo is bounded."""
    keys: set[str] = set()
    kinds: set[str] = set()
    monkeypatch.setattr(envelope_module, "_known_keys", keys)
    monkeypatch.setattr(envelope_module, "_known_kinds", kinds)
    monkeypatch.setattr(envelope_module, "_MEMO_MAX", 2)
    Head(**fields())  # pod == author: both learned, and the kind
    assert keys == {POD} and kinds == {"test.event"}
    Head(**fields(author=OTHER.public_b64))  # a new author, a known pod and kind
    assert keys == {POD, OTHER.public_b64}
    Head(**fields(kind="other.event"))  # only the kind is new
    assert kinds == {"test.event", "other.event"}
    Head(**fields(kind="third.event"))  # the memo is full: it starts again
    assert kinds == {"third.event"}
    with pytest.raises(ValueError, match="`pod`"):
        Head(**fields(pod="not a key"))
    assert "not a key" not in keys


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (KEY_PATTERN, POD, [POD + "\n", POD[:-1] + "B", POD[:-1]]),
        (SIG_PATTERN, GOOD.sig, [GOOD.sig + "\n", GOOD.sig[:-1] + "B"]),
        (KIND_PATTERN, "need.posted", ["need.posted\n", "need", "Need.posted"]),
    ],
)
def test_public_patterns_match_whole_strings(pattern: str, good: str, bad: list[str]) -> None:
    """Python's ``$`` also matches before a final newline; the patterns must not."""
    assert re.search(pattern, good)
    for candidate in bad:
        assert not re.search(pattern, candidate)


def test_b64key_type_refuses_a_trailing_newline() -> None:
    assert msgspec.convert(POD, B64Key) == POD
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(POD + "\n", B64Key)


# --- parse_event ----------------------------------------------------------------------------


def test_parse_event() -> None:
    event = parse_event(GOOD)
    assert event.id == sha256_b64(GOOD.head.encode()) == event_id(GOOD.head)
    assert event.head == decode_head(GOOD.head.encode())
    assert event.head_bytes == GOOD.head.encode()
    assert event.sig == b64d(GOOD.sig)
    assert event.body == GOOD.body
    assert event.envelope is GOOD
    assert event.log == (POD, KEY.public_b64, "public")


def test_parse_event_keeps_the_exact_head_bytes() -> None:
    spaced = text(fields()).replace(",", ", ")
    event = parse_event(signed(spaced))
    assert event.head_bytes == spaced.encode()
    assert event.id == sha256_b64(spaced.encode()) != parse_event(GOOD).id
    assert event.head == parse_event(GOOD).head


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        (Envelope(head=text(fields()) + " " * 1000, sig=GOOD.sig, body=None), TOO_LARGE),
        (Envelope(head=GOOD.head, sig=GOOD.sig, body="x" * (MAX_BODY_BYTES + 1)), TOO_LARGE),
        (Envelope(head="{" + "x" * MAX_HEAD_BYTES, sig="", body=None), TOO_LARGE),
        (Envelope(head='{"pod":"\ud800"}', sig=GOOD.sig, body=None), "invalid:head:json"),
        (Envelope(head="nope", sig=GOOD.sig, body=None), "invalid:head:json"),
        (Envelope(head=GOOD.head, sig="", body=GOOD.body), "invalid:sig:encoding"),
        (Envelope(head=GOOD.head, sig=GOOD.sig[:-1], body=GOOD.body), "invalid:sig:encoding"),
        (Envelope(head=GOOD.head, sig=GOOD.sig + "A", body=GOOD.body), "invalid:sig:encoding"),
        (Envelope(head=GOOD.head, sig=GOOD.sig[:-2] + "==", body=None), "invalid:sig:encoding"),
        (Envelope(head=GOOD.head, sig=GOOD.sig[:-1] + "B", body=None), "invalid:sig:encoding"),
        (Envelope(head=GOOD.head, sig="+" + GOOD.sig[1:], body=None), "invalid:sig:encoding"),
        (Envelope(head=GOOD.head, sig="é" + GOOD.sig[1:], body=None), "invalid:sig:encoding"),
    ],
)
def test_parse_event_refuses(env: Envelope, reason: str) -> None:
    assert reason_of(parse_event, env) == reason


def test_the_head_limit_counts_utf8_bytes() -> None:
    head = text(fields()) + " " * (MAX_HEAD_BYTES - len(text(fields())))
    assert len(head.encode()) == MAX_HEAD_BYTES
    parse_event(signed(head))
    assert reason_of(parse_event, signed(head + " ")) == TOO_LARGE


# --- signatures -----------------------------------------------------------------------------


def test_verify_event(monkeypatch: pytest.MonkeyPatch) -> None:
    cache: dict[str, bytes] = {}
    monkeypatch.setattr(envelope_module, "_public_keys", cache)
    monkeypatch.setattr(envelope_module, "_MEMO_MAX", 1)
    assert verify_event(parse_event(GOOD))
    assert cache == {KEY.public_b64: KEY.public}
    assert verify_event(parse_event(GOOD))  # from the cache
    other = signed(text(fields(author=OTHER.public_b64)), key=OTHER)
    assert verify_event(parse_event(other))
    assert cache == {OTHER.public_b64: OTHER.public}  # bounded: started again
    forged = signed(text(fields(author=OTHER.public_b64)), key=KEY)
    assert not verify_event(parse_event(forged))
    respaced = Envelope(head=GOOD.head.replace(",", ", "), sig=GOOD.sig, body=GOOD.body)
    assert not verify_event(parse_event(respaced))  # the signature is over exact bytes


# --- check_body -----------------------------------------------------------------------------


def test_check_body() -> None:
    assert check_body(parse_event(GOOD)) == {"a": 1}
    unicode_body = '{"title":"Suppe für zwei 🍲"}'
    env = signed(text(fields(body=unicode_body)), unicode_body)
    assert parse_event(env).head.body_size == len(unicode_body.encode()) > len(unicode_body)
    assert check_body(parse_event(env)) == {"title": "Suppe für zwei 🍲"}


def test_no_body_and_erased_body() -> None:
    no_body = signed(text(fields(body=None)), None)
    assert check_body(parse_event(no_body)) is None
    erased = Envelope(head=GOOD.head, sig=GOOD.sig, body=None)  # body_hash set, body dropped
    event = parse_event(erased)
    assert event.head.body_hash is not None
    assert check_body(event) is None
    assert verify_event(event)


def _with_body(body: str) -> Event:
    """An event whose head declares exactly this body text."""
    return parse_event(signed(text(fields(body=body)), body))


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (parse_event(Envelope(GOOD.head, GOOD.sig, '{"a":2}')), "invalid:body:hash"),
        (parse_event(Envelope(GOOD.head, GOOD.sig, '{"a": 1}')), "invalid:body:hash"),
        (parse_event(Envelope(GOOD.head, GOOD.sig, "")), "invalid:body:hash"),
        (parse_event(signed(text(fields(body=None)), "{}")), "invalid:body:unexpected"),
        (parse_event(Envelope(GOOD.head, GOOD.sig, '{"\ud800":1}')), "invalid:body:json:surrogate"),
        (_with_body('{"a":1,"a":1}'), "invalid:body:json:duplicate-key"),
        (_with_body('{"a":{"b":[{"c":1,"\\u0063":2}]}}'), "invalid:body:json:duplicate-key"),
        (_with_body('{"a":9007199254740993}'), "invalid:body:json:int-range"),
        (_with_body('{"a":-9007199254740993}'), "invalid:body:json:int-range"),
        (_with_body('{"a":NaN}'), "invalid:body:json:number"),
        (_with_body('{"a":Infinity}'), "invalid:body:json:number"),
        (_with_body('{"a":1e400}'), "invalid:body:json:number"),
        (_with_body('{"a":"\\ud800"}'), "invalid:body:json:surrogate"),
        (_with_body('\ufeff{"a":1}'), "invalid:body:json:bom"),
        (_with_body('{"a":1}{}'), "invalid:body:json:malformed"),
        (_with_body("{a:1}"), "invalid:body:json:malformed"),
        (_with_body("[]"), "invalid:body:not-object"),
        (_with_body("null"), "invalid:body:not-object"),
        (_with_body('"{}"'), "invalid:body:not-object"),
        # fewer characters than the limit, more bytes: refused on the exact byte count
        (parse_event(Envelope(GOOD.head, GOOD.sig, '{"a":"' + "é" * 40_000 + '"}')), TOO_LARGE),
    ],
)
def test_check_body_refuses(event: Event, reason: str) -> None:
    assert reason_of(check_body, event) == reason


def test_body_at_the_limit() -> None:
    body = '{"a":"' + "x" * (MAX_BODY_BYTES - 8) + '"}'
    assert len(body) == MAX_BODY_BYTES
    assert check_body(_with_body(body)) == {"a": "x" * (MAX_BODY_BYTES - 8)}


# --- building and signing -------------------------------------------------------------------


def test_build_head_is_compact_in_documented_order() -> None:
    head = build_head(
        pod=POD,
        author=KEY.public_b64,
        scope="public",
        seq=1,
        prev=None,
        ts=TS,
        kind="test.event",
        body_text='{"a":1}',
    )
    assert head == text(fields())
    assert list(json.loads(head)) == list(Head.__struct_fields__)
    no_body = build_head(
        pod=POD,
        author=KEY.public_b64,
        scope="pod",
        seq=2,
        prev=ID,
        ts=TS,
        kind="a.b",
        body_text=None,
    )
    assert json.loads(no_body)["body_hash"] is None
    assert json.loads(no_body)["body_size"] == 0


def test_sign_event_bodies() -> None:
    as_value = sign_event(
        KEY, pod=POD, scope="public", seq=1, prev=None, ts=TS, kind="test.event", body={"a": 1}
    )
    assert as_value == GOOD
    as_text = sign_event(
        KEY, pod=POD, scope="public", seq=1, prev=None, ts=TS, kind="test.event", body='{"a":1}'
    )
    assert as_text == GOOD
    none = sign_event(KEY, pod=POD, scope="pod", seq=1, prev=None, ts=TS, kind="a.b")
    assert none.body is None
    assert verify_event(parse_event(none))


def test_event_id() -> None:
    assert event_id(GOOD.head) == event_id(GOOD.head.encode()) == parse_event(GOOD).id
    assert len(event_id("{}")) == 43


def test_constants() -> None:
    assert SCOPES == ("pod", "peers", "public")
    assert MAX_HEAD_BYTES == 1024
    assert MAX_BODY_BYTES == 65536
    assert MAX_ENVELOPE_BYTES == 399_616
    assert MAX_SAFE_INT == 2**53


# --- properties -----------------------------------------------------------------------------

KEYS_32 = st.binary(min_size=32, max_size=32).map(b64e)
KINDS = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z][a-z0-9_]{0,6}){1,3}", fullmatch=True)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.none() | st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5)


@st.composite
def heads(draw: st.DrawFn) -> dict[str, Any]:
    """The fields of any valid head (the body is drawn separately)."""
    seq = draw(st.integers(min_value=1, max_value=MAX_SAFE_INT))
    return {
        "pod": draw(KEYS_32),
        "scope": draw(st.sampled_from(SCOPES)),
        "seq": seq,
        "prev": None if seq == 1 else draw(KEYS_32),
        "ts": draw(st.integers(min_value=0, max_value=MAX_SAFE_INT)),
        "kind": draw(KINDS.filter(lambda k: len(k) <= 64)),
    }


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=32, max_size=32), heads(), BODIES)
def test_sign_then_parse_round_trip(seed: bytes, head: dict[str, Any], body: Any) -> None:
    key = SigningKey(seed)
    env = sign_event(key, body=body, **head)
    wire = encode_envelope(env)
    event = parse_event(decode_envelope(wire))
    assert event.head == Head(v=1, author=key.public_b64, **head, **_body_fields(env.body))
    assert event.id == event_id(env.head)
    assert verify_event(event)
    parsed = check_body(event)
    assert parsed == body
    assert msgspec.json.encode(parsed) == msgspec.json.encode(body)


def _body_fields(body: str | None) -> dict[str, Any]:
    if body is None:
        return {"body_hash": None, "body_size": 0}
    return {"body_hash": sha256_b64(body.encode()), "body_size": len(body.encode())}


# The fast head decoder against the reference reading: strict_loads, then msgspec.convert,
# then the two cross-field rules.


def reference_head(data: bytes) -> Head | None:
    try:
        head = msgspec.convert(strict_loads(data), Head)
    except (RejectedEvent, msgspec.ValidationError):
        return None
    if (head.seq == 1) != (head.prev is None):
        return None
    if (head.body_hash is None) != (head.body_size == 0):
        return None
    return head


def fast_head(data: bytes) -> Head | None:
    try:
        return decode_head(data)
    except RejectedEvent:
        return None


WHITESPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n  ", "\u00a0", "\x0b"])


@st.composite
def key_spelling(draw: st.DrawFn, name: str) -> str:
    """A field name, some characters written as ``\\uXXXX`` escapes."""
    chars = [
        f"\\u{ord(c):04{draw(st.sampled_from('xX'))}}" if draw(st.booleans()) else c for c in name
    ]
    return '"' + "".join(chars) + '"'


#: Values that are wrong for some field, or right for another.
ODD_VALUES = st.sampled_from(
    [
        "1.0",
        "1e0",
        "true",
        "false",
        "null",
        '"1"',
        "-1",
        "0",
        "2",
        "[]",
        "{}",
        "1e400",
        "9007199254740993",
        '"\\ud800"',
        '"pod"',
        '"a.b"',
        "NaN",
        '"' + ID + '"',
        '"' + ID + '\\n"',
        '"' + ID[:-1] + 'B"',
    ]
)


@st.composite
def near_valid_heads(draw: st.DrawFn) -> bytes:
    """A valid head, then written with reordering, whitespace, escapes, repeats and odd values."""
    values = {**fields(body=draw(st.sampled_from([None, '{"a":1}']))), **draw(heads())}
    values["v"] = 1
    values["author"] = draw(st.sampled_from([KEY.public_b64, values["pod"]]))
    pairs = [(name, json.dumps(value)) for name, value in values.items()]
    pairs = draw(st.permutations(pairs))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        name, value = draw(st.sampled_from(pairs))
        action = draw(st.sampled_from(["repeat", "drop", "odd", "extra"]))
        if action == "repeat":
            again = draw(st.sampled_from([value, draw(ODD_VALUES)]))
            pairs.insert(draw(st.integers(min_value=0, max_value=len(pairs))), (name, again))
        elif action == "drop":
            pairs.remove((name, value))
        elif action == "odd":
            pairs[pairs.index((name, value))] = (name, draw(ODD_VALUES))
        else:
            pairs.append((draw(st.sampled_from(["x", "V", "seq ", "prev\u0000"])), "1"))
    ws = draw(WHITESPACE)
    members = [f"{draw(key_spelling(name))}{draw(WHITESPACE)}:{ws}{value}" for name, value in pairs]
    head = "{" + ws + f"{draw(WHITESPACE)},".join(members) + draw(WHITESPACE) + "}"
    head = draw(st.sampled_from(["", "", " ", "\ufeff"])) + head
    head += draw(st.sampled_from(["", "", "\n", "x", "{}"]))
    return head.encode("utf-8")


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_heads())
def test_decode_head_agrees_with_the_reference(data: bytes) -> None:
    assert fast_head(data) == reference_head(data)


def test_docstring_examples_run() -> None:
    import protocol.envelope

    result = doctest.testmod(protocol.envelope)
    assert result.attempted > 0
    assert result.failed == 0
