"""Stream frames and the shared ``Filter``: matching semantics, validation, every decode reason,
the node's frame builders, and fuzzing (nothing but ``RejectedEvent`` ever escapes)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.envelope import encode_envelope, event_id, sign_event
from protocol.frames import (
    MAX_FILTER_VALUES,
    MAX_FILTERS,
    MAX_LIMIT,
    VERBS,
    Auth,
    EventFacts,
    Filter,
    Publish,
    Sub,
    SubRequest,
    Unsub,
    challenge_frame,
    closed_frame,
    decode_client_frame,
    event_frame,
    event_prefix,
    live_frame,
    matches,
    notice_frame,
    ok_frame,
    sub_id_of,
    websocket_frame,
    websocket_payload,
)
from protocol.reasons import RejectedEvent

BIG = 1 << 22  # a max_bytes no test frame reaches


def ident(label: str) -> str:
    """A well-formed id or key (canonical base64url of 32 bytes)."""
    return b64e(hashlib.sha256(label.encode()).digest())


NEED, OTHER_NEED, CLAIM, OTHER_CLAIM = (ident(x) for x in ("need", "need2", "claim", "claim2"))
ADA, BEN = ident("ada"), ident("ben")
POD, OTHER_POD = ident("pod"), ident("pod2")


def ev(
    kind: str = "need.posted",
    body: dict[str, Any] | None = None,
    *,
    id: str = NEED,
    author: str = ADA,
    scope: str = "public",
    pod: str = POD,
    ts: int = 1_000,
) -> EventFacts:
    return EventFacts(id, pod, author, scope, kind, ts, body)


def flt(**fields: Any) -> Filter:
    """A filter exactly as the wire would give it (validated)."""
    return msgspec.convert(fields, Filter)


# --- matches: one field at a time ---------------------------------------------------------

FOOD_NEED = ev(body={"title": "Soup", "category": "food", "urgency": "high"})
RIDE_REFERRAL = ev(
    kind="overflow.referred", body={"summary": {"category": "ride", "urgency": "urgent"}}
)

MATCH_TABLE: list[tuple[str, dict[str, Any], EventFacts, frozenset[str], bool]] = [
    # empty filter
    ("empty/any", {}, FOOD_NEED, frozenset(), True),
    ("empty/no body", {}, ev("pod.created", id=ident("x")), frozenset(), True),
    # ids
    ("ids/hit", {"ids": [NEED]}, FOOD_NEED, frozenset(), True),
    ("ids/miss", {"ids": [OTHER_NEED]}, FOOD_NEED, frozenset(), False),
    ("ids/or", {"ids": [OTHER_NEED, NEED]}, FOOD_NEED, frozenset(), True),
    # authors
    ("authors/hit", {"authors": [ADA]}, FOOD_NEED, frozenset(), True),
    ("authors/miss", {"authors": [BEN]}, FOOD_NEED, frozenset(), False),
    ("authors/or", {"authors": [BEN, ADA]}, FOOD_NEED, frozenset(), True),
    # kinds: exact, family prefix, everything
    ("kinds/exact", {"kinds": ["need.posted"]}, ev("need.posted"), frozenset(), True),
    ("kinds/exact miss", {"kinds": ["need.posted"]}, ev("need.updated"), frozenset(), False),
    ("kinds/prefix", {"kinds": ["need.*"]}, ev("need.updated"), frozenset(), True),
    ("kinds/prefix other", {"kinds": ["need.*"]}, ev("offer.posted"), frozenset(), False),
    ("kinds/prefix is dotted", {"kinds": ["need.*"]}, ev("needs.posted"), frozenset(), False),
    ("kinds/prefix not bare", {"kinds": ["need.*"]}, ev("need"), frozenset(), False),
    ("kinds/deep prefix", {"kinds": ["a.b.*"]}, ev("a.b.c"), frozenset(), True),
    ("kinds/star", {"kinds": ["*"]}, ev("chat.sent"), frozenset(), True),
    ("kinds/or", {"kinds": ["offer.*", "need.posted"]}, ev("need.posted"), frozenset(), True),
    # scopes
    ("scopes/hit", {"scopes": ["public"]}, FOOD_NEED, frozenset(), True),
    ("scopes/miss", {"scopes": ["pod"]}, FOOD_NEED, frozenset(), False),
    ("scopes/or", {"scopes": ["pod", "peers"]}, ev(scope="peers"), frozenset(), True),
    # pods
    ("pods/hit", {"pods": [POD]}, FOOD_NEED, frozenset(), True),
    ("pods/miss", {"pods": [OTHER_POD]}, FOOD_NEED, frozenset(), False),
    ("pods/or", {"pods": [OTHER_POD, POD]}, FOOD_NEED, frozenset(), True),
    # since / until: inclusive
    ("since/equal", {"since": 1_000}, ev(ts=1_000), frozenset(), True),
    ("since/after", {"since": 1_000}, ev(ts=1_001), frozenset(), True),
    ("since/before", {"since": 1_000}, ev(ts=999), frozenset(), False),
    ("until/equal", {"until": 1_000}, ev(ts=1_000), frozenset(), True),
    ("until/before", {"until": 1_000}, ev(ts=999), frozenset(), True),
    ("until/after", {"until": 1_000}, ev(ts=1_001), frozenset(), False),
    ("since=until", {"since": 7, "until": 7}, ev(ts=7), frozenset(), True),
    ("since>until", {"since": 8, "until": 7}, ev(ts=7), frozenset(), False),
    ("since 0", {"since": 0}, ev(ts=0), frozenset(), True),
    # category
    ("category/hit", {"category": ["food"]}, FOOD_NEED, frozenset(), True),
    ("category/referral summary", {"category": ["ride"]}, RIDE_REFERRAL, frozenset(), True),
    ("urgency/referral summary", {"urgency": ["low"]}, RIDE_REFERRAL, frozenset(), False),
    (
        "category/referral without a summary object",
        {"category": ["ride"]},
        ev(kind="overflow.referred", body={"category": "ride", "summary": "ride"}),
        frozenset(),
        True,
    ),
    (
        "category/summary counts only on a referral",
        {"category": ["ride"]},
        ev(body={"summary": {"category": "ride"}}),
        frozenset(),
        False,
    ),
    ("category/miss", {"category": ["ride"]}, FOOD_NEED, frozenset(), False),
    ("category/or", {"category": ["ride", "food"]}, FOOD_NEED, frozenset(), True),
    ("category/no body", {"category": ["food"]}, ev(), frozenset(), False),
    ("category/no field", {"category": ["food"]}, ev(body={"title": "x"}), frozenset(), False),
    (
        "category/a list",
        {"category": ["food"]},
        ev(body={"category": ["food"]}),
        frozenset(),
        False,
    ),
    (
        "category/other matches one this node does not know",
        {"category": ["other"]},
        ev(body={"title": "x", "category": "bike_repair"}),
        frozenset(),
        True,
    ),
    (
        "category/other does not match a known one",
        {"category": ["other"]},
        FOOD_NEED,
        frozenset(),
        False,
    ),
    (
        "category/other does not match a non-word",
        {"category": ["other"]},
        ev(body={"category": 7}),
        frozenset(),
        False,
    ),
    # urgency
    ("urgency/hit", {"urgency": ["high"]}, FOOD_NEED, frozenset(), True),
    ("urgency/miss", {"urgency": ["low"]}, FOOD_NEED, frozenset(), False),
    ("urgency/or", {"urgency": ["low", "high"]}, FOOD_NEED, frozenset(), True),
    ("urgency/no body", {"urgency": ["high"]}, ev(), frozenset(), False),
    # fields AND
    (
        "and/all hold",
        {
            "kinds": ["need.*"],
            "authors": [ADA],
            "category": ["food"],
            "since": 1_000,
            "until": 1_000,
            "scopes": ["public"],
            "pods": [POD],
            "ids": [NEED],
            "urgency": ["high"],
            "need": NEED,
        },
        FOOD_NEED,
        frozenset(),
        True,
    ),
    ("and/one fails", {"kinds": ["need.*"], "authors": [BEN]}, FOOD_NEED, frozenset(), False),
    (
        "and/body field fails",
        {"kinds": ["need.*"], "category": ["ride"]},
        FOOD_NEED,
        frozenset(),
        False,
    ),
]

# `need`: the need itself, every event whose body's `need` or `target` is it, and any claim.*
# event whose body's `claim` is one of `claims_of_need` (how claim.withdrawn finds its need).
# (name, kind, body, event id, claims_of_need, expected) — the filter is {"need": NEED}.
NEED_TABLE: list[tuple[str, str, dict[str, Any] | None, str, set[str], bool]] = [
    ("itself", "need.posted", {"title": "Soup"}, NEED, set(), True),
    ("itself, body erased", "need.posted", None, NEED, set(), True),
    ("another need", "need.posted", {"title": "Soup"}, OTHER_NEED, set(), False),
    ("need.updated", "need.updated", {"need": NEED}, ident("u"), set(), True),
    ("need.withdrawn", "need.withdrawn", {"need": NEED}, ident("w"), set(), True),
    ("claim.made", "claim.made", {"need": NEED}, CLAIM, set(), True),
    ("claim.accepted", "claim.accepted", {"claim": CLAIM, "need": NEED}, ident("a"), set(), True),
    ("fulfilment", "fulfilment.recorded", {"need": NEED}, ident("f"), set(), True),
    ("hours.logged for it", "hours.logged", {"need": NEED}, ident("h"), set(), True),
    ("its redaction", "event.redacted", {"target": NEED}, ident("r"), set(), True),
    ("another redaction", "event.redacted", {"target": OTHER_NEED}, ident("r"), set(), False),
    ("another need's claim", "claim.made", {"need": OTHER_NEED}, OTHER_CLAIM, set(), False),
    ("claim.withdrawn, known", "claim.withdrawn", {"claim": CLAIM}, ident("c"), {CLAIM}, True),
    ("claim.withdrawn, unknown", "claim.withdrawn", {"claim": CLAIM}, ident("c"), set(), False),
    (
        "claim.withdrawn, other",
        "claim.withdrawn",
        {"claim": OTHER_CLAIM},
        ident("c"),
        {CLAIM},
        False,
    ),
    ("claim ref outside claim.*", "hours.logged", {"claim": CLAIM}, ident("h"), {CLAIM}, False),
    ("no body", "claim.withdrawn", None, ident("c"), {CLAIM}, False),
    # Unknown kinds' bodies are unchecked: odd values must not match, nor crash matching.
    ("claim is a list", "claim.x", {"claim": [CLAIM]}, ident("z"), {CLAIM}, False),
    ("claim is an object", "chat.sent", {"claim": {}}, ident("z"), {CLAIM}, False),
    ("need is a list", "chat.sent", {"need": [NEED]}, ident("z"), set(), False),
]


@pytest.mark.parametrize(
    ("kind", "body", "event_id", "claims", "expected"),
    [row[1:] for row in NEED_TABLE],
    ids=[row[0] for row in NEED_TABLE],
)
def test_need_filter(
    kind: str, body: dict[str, Any] | None, event_id: str, claims: set[str], expected: bool
) -> None:
    event = ev(kind, body, id=event_id)
    assert matches(flt(need=NEED), event, frozenset(claims)) is expected


@pytest.mark.parametrize(
    ("fields", "event", "claims", "expected"),
    [row[1:] for row in MATCH_TABLE],
    ids=[row[0] for row in MATCH_TABLE],
)
def test_matches(
    fields: dict[str, Any], event: EventFacts, claims: frozenset[str], expected: bool
) -> None:
    assert matches(flt(**fields), event, claims) is expected


def test_claims_of_need_defaults_to_none_known() -> None:
    withdrawn = ev("claim.withdrawn", {"claim": CLAIM}, id=ident("cw"))
    assert not matches(flt(need=NEED), withdrawn)


@pytest.mark.parametrize(
    ("fields", "needs_body"),
    [
        ({}, False),
        ({"kinds": ["need.*"], "authors": [ADA], "since": 1, "limit": 5}, False),
        ({"category": ["food"]}, True),
        ({"urgency": ["low"]}, True),
        ({"need": NEED}, True),
    ],
)
def test_needs_body(fields: dict[str, Any], needs_body: bool) -> None:
    assert flt(**fields).needs_body is needs_body


# Fields AND and values OR, as properties over a small world of events.
KINDS = ("need.posted", "need.updated", "offer.posted", "claim.made", "chat.sent")
field_values = {
    "ids": st.sampled_from((NEED, OTHER_NEED, CLAIM)),
    "authors": st.sampled_from((ADA, BEN)),
    "kinds": st.sampled_from((*KINDS, "need.*", "claim.*", "*")),
    "scopes": st.sampled_from(("pod", "peers", "public")),
    "pods": st.sampled_from((POD, OTHER_POD)),
    "category": st.sampled_from(("food", "ride", "repair")),
    "urgency": st.sampled_from(("low", "high")),
}
events = st.builds(
    ev,
    st.sampled_from(KINDS),
    st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "category": st.sampled_from(("food", "ride")),
                "urgency": st.sampled_from(("low", "high")),
                "need": st.sampled_from((NEED, OTHER_NEED)),
                "claim": st.sampled_from((CLAIM, OTHER_CLAIM)),
            },
        ),
    ),
    id=st.sampled_from((NEED, OTHER_NEED, CLAIM)),
    author=st.sampled_from((ADA, BEN)),
    scope=st.sampled_from(("pod", "peers", "public")),
    pod=st.sampled_from((POD, OTHER_POD)),
    ts=st.integers(0, 20),
)
filters = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.lists(values, min_size=1, max_size=3) for name, values in field_values.items()},
        "since": st.integers(0, 20),
        "until": st.integers(0, 20),
        "need": st.sampled_from((NEED, OTHER_NEED)),
    },
)


@given(filters, events, st.sets(st.sampled_from((CLAIM, OTHER_CLAIM))))
def test_fields_and(fields: dict[str, Any], event: EventFacts, claims: set[str]) -> None:
    whole = matches(flt(**fields), event, frozenset(claims))
    each = [
        matches(flt(**{name: value}), event, frozenset(claims)) for name, value in fields.items()
    ]
    assert whole is all(each)


@given(
    st.sampled_from(sorted(field_values)),
    st.data(),
    events,
)
def test_values_or(name: str, data: st.DataObject, event: EventFacts) -> None:
    values = data.draw(st.lists(field_values[name], min_size=1, max_size=4))
    whole = matches(flt(**{name: values}), event)
    assert whole is any(matches(flt(**{name: [value]}), event) for value in values)


# --- Filter validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"kinds": ["*"]},
        {"kinds": ["need.*", "need.posted", "a_b.c1", "need.posted.*", "x"]},
        {"kinds": ["a" * 64]},
        {"ids": [NEED], "authors": [ADA], "pods": [POD], "need": CLAIM},
        {"ids": [ident(str(i)) for i in range(MAX_FILTER_VALUES)]},
        {"scopes": ["pod", "peers", "public"]},
        {"since": 0, "until": 2**53},
        {"limit": 1},
        {"limit": MAX_LIMIT},
        {"category": ["food", "emotional_support"], "urgency": ["urgent"]},
        {"need": None, "since": None, "until": None, "limit": None},
    ],
)
def test_filter_accepts(fields: dict[str, Any]) -> None:
    decoded = msgspec.json.decode(json.dumps(fields), type=Filter)
    assert msgspec.json.decode(msgspec.json.encode(decoded), type=Filter) == decoded


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"kinds": ["Need"]}, "kinds[0]"),
        ({"kinds": ["need."]}, "kinds[0]"),
        ({"kinds": ["need.*.posted"]}, "kinds[0]"),
        ({"kinds": ["*.posted"]}, "kinds[0]"),
        ({"kinds": ["need..posted"]}, "kinds[0]"),
        ({"kinds": ["need*"]}, "kinds[0]"),
        ({"kinds": [""]}, "kinds[0]"),
        ({"kinds": ["1need"]}, "kinds[0]"),
        ({"kinds": ["need.posted\n"]}, "kinds[0]"),
        ({"kinds": ["a" * 65]}, "kinds[0]"),
        ({"kinds": "need.*"}, "kinds"),
        ({"kinds": ["need.*", 1]}, "kinds[1]"),
        ({"ids": ["x"]}, "ids[0]"),
        ({"ids": [NEED + "A"]}, "ids[0]"),
        ({"ids": [NEED + "\n"]}, "ids[0]"),
        ({"need": NEED + "\n"}, "need"),
        ({"ids": [NEED[:42] + "B"]}, "ids[0]"),  # spare bits set: not canonical
        ({"ids": ["+" + NEED[1:]]}, "ids[0]"),
        ({"authors": [NEED + "="]}, "authors[0]"),
        ({"pods": ["pod"]}, "pods[0]"),
        ({"need": "x"}, "need"),
        ({"ids": [ident(str(i)) for i in range(MAX_FILTER_VALUES + 1)]}, "ids"),
        ({"scopes": ["private"]}, "scopes[0]"),
        ({"since": -1}, "since"),
        ({"until": -1}, "until"),
        ({"since": 1.5}, "since"),
        ({"since": "1"}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": MAX_LIMIT + 1}, "limit"),
        ({"limit": True}, "limit"),
        ({"category": ["Food"]}, "category[0]"),
        ({"urgency": ["asap"]}, "urgency[0]"),
        ({"kind": ["need.*"]}, ""),  # unknown field (a typo) is refused, never ignored
        ({"after": 3}, ""),  # `after` belongs to the SUB request, not a filter
    ],
)
def test_filter_rejects(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(json.dumps(fields), type=Filter)
    frame = json.dumps(["SUB", "s", {"filters": [{}, fields]}])
    assert reason_of(frame) == "invalid:frame:[2].filters[1]" + ("." + path if path else "")


# --- decode_client_frame: every verb ------------------------------------------------------


def reason_of(data: bytes | str, max_bytes: int = BIG) -> str:
    with pytest.raises(RejectedEvent) as info:
        decode_client_frame(data, max_bytes=max_bytes)
    assert info.value.message  # always a human message too
    return info.value.reason


MEMBER = SigningKey.from_seed(bytes([7]) * 32)
ENVELOPE = sign_event(
    MEMBER, pod=POD, scope="public", seq=1, prev=None, ts=1_000, kind="need.posted",
    body={"title": "Soup", "category": "food", "urgency": "high"},
)  # fmt: skip
ENVELOPE_TEXT = encode_envelope(ENVELOPE).decode()


def test_sub() -> None:
    frame = decode_client_frame(
        '["SUB", "feed:1", {"filters": [{"kinds": ["need.*"]}, {"ids": ["' + NEED + '"]}],'
        ' "after": 42}]',
        max_bytes=BIG,
    )
    assert frame == Sub(
        "feed:1", SubRequest(filters=(flt(kinds=["need.*"]), flt(ids=[NEED])), after=42)
    )


@pytest.mark.parametrize("request_text", ['{"filters": [{}]}', '{"filters": [{}], "after": null}'])
def test_sub_after_is_optional(request_text: str) -> None:
    frame = decode_client_frame(f'["SUB","s",{request_text}]'.encode(), max_bytes=BIG)
    assert frame == Sub("s", SubRequest(filters=(Filter(),), after=None))


def test_sub_id_alphabet() -> None:
    sub_id = "Az09_.:-" + "x" * 56
    assert decode_client_frame(json.dumps(["UNSUB", sub_id]), max_bytes=BIG) == Unsub(sub_id)


def test_unsub_auth() -> None:
    assert decode_client_frame(b'["UNSUB","s"]', max_bytes=BIG) == Unsub("s")
    assert decode_client_frame('["AUTH","kith1.x"]', max_bytes=BIG) == Auth("kith1.x")
    assert decode_client_frame(json.dumps(["AUTH", "t" * 512]), max_bytes=BIG) == Auth("t" * 512)


def test_event_keeps_the_envelope_bytes_exactly() -> None:
    spaced = ENVELOPE_TEXT.replace('","', '", "')  # any formatting: bytes travel as sent
    for text in (ENVELOPE_TEXT, spaced):
        frame = decode_client_frame(f'[ "EVENT" , {text} ]', max_bytes=BIG)
        assert isinstance(frame, Publish)
        assert bytes(frame.envelope) == text.encode()
    # The envelope is not judged here: ingest answers OK false with its reason.
    frame = decode_client_frame('["EVENT", 1]', max_bytes=BIG)
    assert isinstance(frame, Publish) and bytes(frame.envelope) == b"1"


def test_size_limit_counts_utf8_bytes() -> None:
    frame = json.dumps(["AUTH", "é" * 10], ensure_ascii=False)
    size = len(frame.encode())
    assert size == len(frame) + 10
    assert decode_client_frame(frame, max_bytes=size) == Auth("é" * 10)
    assert decode_client_frame(frame.encode(), max_bytes=size) == Auth("é" * 10)
    assert reason_of(frame, max_bytes=size - 1) == "too-large"
    assert reason_of(frame.encode(), max_bytes=size - 1) == "too-large"
    assert reason_of("x" * 11, max_bytes=10) == "too-large"  # before any parsing


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[",
        b'["UNSUB","s",]',
        b'["UNSUB","s"] x',
        b'["UNSUB","s"]["UNSUB","s"]',
        b"\xef\xbb\xbf" + b'["UNSUB","s"]',  # BOM
        b'["AUTH","\xff"]',  # invalid UTF-8
        b'["AUTH","\xed\xa0\x80"]',  # UTF-8-encoded surrogate
        '["AUTH","\ud800"]',  # lone surrogate in a str
        b'["AUTH","\\ud800"]',  # lone surrogate escape
        b'["UNSUB",NaN]',
        b"[" * 5000 + b"]" * 5000,  # nested past the parser's depth
        b'["EVENT",' + b"[" * 5000 + b"]" * 5000 + b"]",
    ],
)
def test_invalid_json(data: bytes | str) -> None:
    assert reason_of(data) == "invalid:frame:json"


@pytest.mark.parametrize(
    "data",
    ["{}", '{"SUB": "s"}', "1", "null", '"SUB"', '["HELLO"]', '["REQ","s",{}]', '["sub","s"]',
     "[1]", "[null]", "[[]]", '[["SUB"]]', '["SUB - at `$[1]`"]'],
)  # fmt: skip
def test_invalid_verb(data: str) -> None:
    assert reason_of(data) == "invalid:frame:verb"


@pytest.mark.parametrize(
    "data",
    [
        "[]",
        '["SUB"]',
        '["SUB","s"]',
        '["UNSUB"]',
        '["AUTH"]',
        '["EVENT"]',
        # extra elements are refused, never ignored: a NIP-01 habit of one filter per element
        # would otherwise silently lose all but the first
        '["SUB","s",{"filters":[{}]},{"filters":[{}]}]',
        '["UNSUB","s","t"]',
        '["AUTH","t",null]',
        '["EVENT",{},{}]',
    ],
)
def test_invalid_length(data: str) -> None:
    assert reason_of(data) == "invalid:frame:length"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (["SUB", "a b", {"filters": [{}]}], "invalid:frame:[1]"),
        (["SUB", "", {"filters": [{}]}], "invalid:frame:[1]"),
        (["SUB", "x" * 65, {"filters": [{}]}], "invalid:frame:[1]"),
        (["SUB", "é", {"filters": [{}]}], "invalid:frame:[1]"),
        (["SUB", "s\n", {"filters": [{}]}], "invalid:frame:[1]"),
        (["SUB", 1, {"filters": [{}]}], "invalid:frame:[1]"),
        (["UNSUB", None], "invalid:frame:[1]"),
        (["UNSUB", "s/t"], "invalid:frame:[1]"),
        (["AUTH", 1], "invalid:frame:[1]"),
        (["AUTH", "t" * 513], "invalid:frame:[1]"),
        (["SUB", "s", []], "invalid:frame:[2]"),
        (["SUB", "s", {}], "invalid:frame:[2]"),
        (["SUB", "s", {"filters": [{}], "pad": 1}], "invalid:frame:[2]"),
        (["SUB", "s", {"filters": []}], "invalid:frame:[2].filters"),
        (["SUB", "s", {"filters": [{}] * (MAX_FILTERS + 1)}], "invalid:frame:[2].filters"),
        (["SUB", "s", {"filters": {}}], "invalid:frame:[2].filters"),
        (["SUB", "s", {"filters": [[]]}], "invalid:frame:[2].filters[0]"),
        (["SUB", "s", {"filters": [{"kinds": ["Need"]}]}], "invalid:frame:[2].filters[0].kinds[0]"),
        (["SUB", "s", {"filters": [{}], "after": -1}], "invalid:frame:[2].after"),
        (["SUB", "s", {"filters": [{}], "after": "5"}], "invalid:frame:[2].after"),
    ],
)
def test_invalid_part_names_its_path(frame: list[Any], reason: str) -> None:
    assert reason_of(json.dumps(frame)) == reason


def test_max_filters() -> None:
    frame = decode_client_frame(
        json.dumps(["SUB", "s", {"filters": [{}] * MAX_FILTERS}]), max_bytes=BIG
    )
    assert isinstance(frame, Sub) and len(frame.request.filters) == MAX_FILTERS


def test_path_is_never_the_value() -> None:
    sneaky = "x - at `$[9]`"
    with pytest.raises(RejectedEvent) as info:
        decode_client_frame(json.dumps(["SUB", "s", {"filters": [{sneaky: 1}]}]), max_bytes=BIG)
    assert info.value.reason == "invalid:frame:[2].filters[0]"
    assert len(info.value.message) <= 200


# --- sub_id_of --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "sub_id"),
    [
        ('["SUB","s",{"filters":[]}]', "s"),
        (b'["UNSUB","s",1]', "s"),
        ('["SUB","a b"]', "a b"),  # best effort: any short string, to CLOSE what the client named
        (json.dumps(["SUB", "x" * 64]), "x" * 64),
        (json.dumps(["SUB", "x" * 65]), None),
        ('["AUTH","s"]', None),
        ('["EVENT","s"]', None),
        ('["SUB"]', None),
        ('["SUB",1]', None),
        ('{"SUB":"s"}', None),
        ('"SUB"', None),
        ("not json", None),
        (b'["SUB","\xff"]', None),
        ('["SUB","\ud800"]', None),
        (b"[" * 5000 + b"]" * 5000, None),
    ],
)
def test_sub_id_of(data: bytes | str, sub_id: str | None) -> None:
    assert sub_id_of(data) == sub_id


# --- node → client frames -----------------------------------------------------------------

AWKWARD = ['"', "\\", "\n", "\t", "\x00", "\x7f", "\u2028", "é", "😀", "</script>", 'a"b\\c']


def decoded(frame: str | bytes) -> Any:
    value = msgspec.json.decode(frame)  # strict: what any client's parser must accept
    assert json.loads(frame) == value
    assert isinstance(value, list)
    return value


def test_event_frame() -> None:
    prefix = event_prefix("feed")
    assert prefix == b'["EVENT","feed",'
    frame = event_frame(prefix, ENVELOPE_TEXT.encode(), 7)
    assert decoded(frame) == ["EVENT", "feed", json.loads(ENVELOPE_TEXT), 7]
    # The envelope travels byte-for-byte: its head still hashes to the event's id.
    envelope = decoded(frame)[2]
    assert event_id(envelope["head"]) == event_id(ENVELOPE.head)
    assert ENVELOPE_TEXT.encode() in frame


def test_event_frame_redacted_body() -> None:
    raw = encode_envelope(msgspec.structs.replace(ENVELOPE, body=None))
    assert decoded(event_frame(event_prefix("s"), raw, 1))[2]["body"] is None


@pytest.mark.parametrize("text", AWKWARD)
def test_frames_escape(text: str) -> None:
    assert decoded(event_frame(event_prefix(text), b"{}", 1)) == ["EVENT", text, {}, 1]
    assert decoded(live_frame(text, 0)) == ["LIVE", text, 0]
    assert decoded(closed_frame(text, text)) == ["CLOSED", text, text]
    assert decoded(notice_frame(text)) == ["NOTICE", text]
    assert decoded(challenge_frame(text)) == ["CHALLENGE", text]
    assert decoded(ok_frame(text, False, text)) == ["OK", text, False, text]


def test_documented_frames() -> None:
    assert live_frame("feed", 1234) == '["LIVE","feed",1234]'
    assert closed_frame("feed", "slow: resume after 812") == (
        '["CLOSED","feed","slow: resume after 812"]'
    )
    assert notice_frame("auth: ok") == '["NOTICE","auth: ok"]'
    assert challenge_frame("n" * 24) == '["CHALLENGE","' + "n" * 24 + '"]'
    assert ok_frame(NEED, True, None) == f'["OK","{NEED}",true,null]'
    assert ok_frame(None, False, "invalid:json") == '["OK",null,false,"invalid:json"]'
    assert ok_frame(NEED, True, "duplicate") == f'["OK","{NEED}",true,"duplicate"]'
    effect = {"ok": False, "reason": "effect:unknown-need", "message": "claims an unknown need"}
    assert decoded(ok_frame(NEED, True, None, effect)) == ["OK", NEED, True, None, effect]


@given(st.text(), st.text(), st.integers(0, 2**53))
def test_frames_round_trip(sub_id: str, text: str, cursor: int) -> None:
    assert decoded(event_frame(event_prefix(sub_id), ENVELOPE_TEXT.encode(), cursor)) == [
        "EVENT", sub_id, json.loads(ENVELOPE_TEXT), cursor,
    ]  # fmt: skip
    assert decoded(live_frame(sub_id, cursor)) == ["LIVE", sub_id, cursor]
    assert decoded(closed_frame(sub_id, text)) == ["CLOSED", sub_id, text]
    assert decoded(notice_frame(text)) == ["NOTICE", text]
    assert decoded(challenge_frame(text)) == ["CHALLENGE", text]
    assert decoded(ok_frame(sub_id or None, bool(cursor % 2), text or None)) == [
        "OK", sub_id or None, bool(cursor % 2), text or None,
    ]  # fmt: skip


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_websocket_frame_is_what_a_websocket_client_reads(size: int) -> None:
    from websockets.frames import Frame, Opcode

    payload = bytes(i % 251 for i in range(size))
    wire = websocket_frame(payload)
    chunks = [wire]

    def read_exact(n: int) -> Any:
        data = chunks[0][:n]
        chunks[0] = chunks[0][n:]
        return data
        yield  # a generator, as websockets' parser wants

    parser = Frame.parse(read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    assert (frame.opcode, frame.fin, frame.rsv1, frame.data) == (Opcode.TEXT, True, False, payload)
    assert chunks == [b""]  # nothing before or after the one frame
    assert websocket_payload(wire) == payload


# --- fuzz: nothing but RejectedEvent, and decoded frames re-encode faithfully --------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from((*VERBS, "need.*", NEED, "s", "filters", "after", "kinds", "ids")),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(
        st.text() | st.sampled_from(("filters", "after", *Filter.__struct_fields__)), inner,
        max_size=5,
    ),
    max_leaves=30,
)  # fmt: skip

filter_dicts = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.lists(values, max_size=3) for name, values in field_values.items()},
        "since": st.integers(0, 2**40) | st.none(),
        "until": st.integers(0, 2**40) | st.none(),
        "limit": st.integers(1, MAX_LIMIT) | st.none(),
        "need": st.sampled_from((NEED, OTHER_NEED)) | st.none(),
    },
)
sub_ids = st.from_regex(r"\A[A-Za-z0-9_.:-]{1,64}\Z")
well_formed_frames = st.one_of(
    st.tuples(
        st.just("SUB"),
        sub_ids,
        st.fixed_dictionaries(
            {"filters": st.lists(filter_dicts, min_size=1, max_size=MAX_FILTERS)},
            optional={"after": st.integers(0, 2**53) | st.none()},
        ),
    ),
    st.tuples(st.just("UNSUB"), sub_ids),
    st.tuples(st.just("AUTH"), st.text(max_size=512)),
    st.tuples(st.just("EVENT"), json_values),
).map(list)
# Frame-shaped noise: a verb (or not) followed by a few values, some of them nearly right.
frame_like = st.lists(
    st.sampled_from((*VERBS, "REQ", "sub")) | json_values, min_size=0, max_size=5
) | st.tuples(
    st.sampled_from(("SUB", "UNSUB")),
    sub_ids | json_values,
    st.fixed_dictionaries(
        {}, optional={"filters": st.lists(filter_dicts | json_values, max_size=3),
                      "after": json_values},
    ) | json_values,
).map(list)  # fmt: skip


def decode_or_reject(data: bytes | str) -> Any:
    """Decode; a refusal must be a ``RejectedEvent`` with a stable reason, nothing else."""
    try:
        frame = decode_client_frame(data, max_bytes=BIG)
    except RejectedEvent as exc:
        assert exc.reason == "too-large" or exc.reason.startswith("invalid:frame:")
        sub_id = sub_id_of(data)
        assert sub_id is None or (isinstance(sub_id, str) and len(sub_id) <= 64)
        return None
    assert isinstance(frame, Sub | Unsub | Auth | Publish)
    # Any decoded frame re-encodes to something that decodes to the same value.
    again = decode_client_frame(msgspec.json.encode(frame), max_bytes=BIG)
    assert again == frame
    return frame


@settings(max_examples=500)
@given(st.binary())
def test_fuzz_bytes(data: bytes) -> None:
    decode_or_reject(data)


# Any code point, lone surrogates included (a Python str may hold them; a websocket never does).
any_text = st.text(st.characters(exclude_categories=()))


@settings(max_examples=500)
@given(any_text)
def test_fuzz_text(text: str) -> None:
    decode_or_reject(text)
    decode_or_reject(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed_frames, st.data())
def test_fuzz_mutated_frames(value: list[Any], data: st.DataObject) -> None:
    """Nearly right frames: a valid frame with a few of its bytes replaced or inserted."""
    raw = bytearray(json.dumps(value, ensure_ascii=False).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        cut = data.draw(st.integers(0, 2))
        raw[at : at + cut] = data.draw(st.binary(min_size=0, max_size=4))
    decode_or_reject(bytes(raw))


@given(
    st.sampled_from(VERBS),
    st.integers(1, 20_000),
    st.sampled_from((("[", "", "]"), ('{"a":', "0", "}"))),
)
def test_fuzz_deep_nesting(verb: str, depth: int, shape: tuple[str, str, str]) -> None:
    opener, inner, closer = shape
    nested = opener * depth + inner + closer * depth
    for frame in (nested, f'["{verb}",{nested}]', f'["{verb}","s",{nested}]'):
        decode_or_reject(frame)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(json_values | frame_like)
def test_fuzz_json(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        decode_or_reject(text)
        decode_or_reject(text.encode("utf-8"))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed_frames)
def test_well_formed_frames_decode(value: list[Any]) -> None:
    frame = decode_or_reject(json.dumps(value))
    assert frame is not None
    if isinstance(frame, Publish):  # the envelope's bytes are kept exactly as sent
        assert msgspec.json.decode(frame.envelope) == value[1]
    else:
        assert frame == decode_or_reject(msgspec.json.encode(value))
    if isinstance(frame, Sub):
        request = value[2]
        assert frame.request.after == request.get("after")
        assert frame.request.filters == tuple(flt(**f) for f in request["filters"])


@given(st.binary(), st.integers(0, 64))
def test_fuzz_size_limit(data: bytes, max_bytes: int) -> None:
    try:
        decode_client_frame(data, max_bytes=max_bytes)
    except RejectedEvent as exc:
        assert (exc.reason == "too-large") is (len(data) > max_bytes)
    else:
        assert len(data) <= max_bytes
