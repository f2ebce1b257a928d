"""Body schemas: a valid body for every kind, a table of invalid ones, and the kind families."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codec import b64e
from protocol.kinds import (
    BODY_TYPES,
    COORDINATOR_READ_KINDS,
    KEY_PATTERN,
    KNOWN_KINDS,
    LEDGER_KINDS,
    REDACTABLE_KINDS,
    ROSTER_KINDS,
    Body,
    HoursLogged,
    NeedPosted,
    NodeKey,
    OfferPosted,
    TimeWindow,
    is_redactable,
    kind_matches,
    shown_category,
    validate_body,
)
from protocol.reasons import RejectedEvent

KEY_A = b64e(bytes(range(32)))
KEY_B = b64e(bytes(range(1, 33)))
ID_1 = b64e(b"\x11" * 32)
ID_2 = b64e(b"\x22" * 32)
SEALED = {
    "alg": "x25519-hkdf-sha256-chacha20poly1305",
    "epk": KEY_A,
    "nonce": "AAAAAAAAAAAAAAAA",
    "ct": "c2VjcmV0",
    "to": [{"key": KEY_B, "wrapped": "d3JhcHBlZA"}],
}
WINDOW = {"start": 1_700_000_000_000, "end": 1_700_000_360_000}

#: The smallest valid body of every kind.
MINIMAL: dict[str, dict[str, Any]] = {
    "pod.created": {"name": "Elm Street"},
    "pod.root_rotated": {"new_key": KEY_B},
    "node.key": {"key": KEY_A},
    "member.added": {"key": KEY_A, "role": "member", "box_key": KEY_B},
    "member.removed": {"key": KEY_A, "effective": {"pod": 12}},
    "member.key_added": {"member": KEY_A, "key": KEY_B},
    "member.key_revoked": {"key": KEY_B, "valid_through": {}},
    "member.blocked": {"key": KEY_A, "effective": {"peers": 1}},
    "member.unblocked": {"key": KEY_A, "effective": {"peers": 4}, "reason": "resolved"},
    "profile.set": {},
    "need.posted": {"title": "Soup for two", "category": "food", "urgency": "normal"},
    "need.updated": {"need": ID_1, "urgency": "urgent"},
    "need.withdrawn": {"need": ID_1},
    "offer.posted": {"title": "Bike rides", "category": "ride"},
    "offer.withdrawn": {"offer": ID_1},
    "claim.made": {"need": ID_1},
    "claim.withdrawn": {"claim": ID_1},
    "claim.accepted": {"claim": ID_1, "need": ID_2},
    "fulfilment.recorded": {"need": ID_1},
    "hours.logged": {"giver": KEY_A, "receiver": KEY_B, "minutes": 90},
    "hours.confirmed": {"entry": ID_1},
    "proposal.opened": {
        "title": "Share the crates",
        "options": ["by need", "equal"],
        "closes_at": 0,
    },
    "vote.cast": {"proposal": ID_1, "option": 0},
    "gathering.scheduled": {"title": "Grief circle", "kind": "healing_circle", "window": WINDOW},
    "gathering.cancelled": {"gathering": ID_1},
    "gathering.rsvp": {"gathering": ID_1, "answer": "maybe"},
    "overflow.referred": {
        "need": ID_2,
        "summary": {"category": "groceries", "urgency": "high"},
        "hops_left": 2,
        "expires_at": 1_700_000_000_000,
    },
    "overflow.offered": {"referral": ID_1},
    "overflow.assigned": {"referral": ID_1, "to_pod": KEY_B},
    "overflow.fulfilled": {"referral": ID_1},
    "overflow.returned": {"referral": ID_1},
    "clearing.recorded": {"peer_pod": KEY_B, "minutes": -120},
    "report.filed": {"text": "Repeated unwanted messages"},
    "report.resolved": {"report": ID_1},
    "block.advised": {"key": KEY_A, "reason": "harassment"},
    "event.redacted": {"target": ID_1},
    "erasure.confirmed": {"redaction": ID_2, "target": ID_1},
    "invite.created": {"code_hash": ID_2, "expires_at": 1_700_000_000_000, "approve": "auto"},
    "invite.revoked": {"invite": ID_1},
}

#: Every optional field filled in, at its limits where that is interesting.
FULL: dict[str, dict[str, Any]] = {
    "member.added": {"key": KEY_A, "role": "coordinator", "box_key": KEY_B, "invite": ID_1},
    "member.removed": {"key": KEY_A, "effective": {"pod": 1, "peers": 2, "public": 3}},
    "member.key_revoked": {"key": KEY_B, "valid_through": {"pod": 0, "public": 9}},
    "profile.set": {
        "name": "Ada",
        "pronouns": "she/her",
        "languages": ["es", "pt-BR", "zh-Hant-TW", "en", "a" * 7 + "-1" * 14, "tlh", "fr", "de"],
        "contact": SEALED,
        "about": "x" * 500,
    },
    "need.posted": {
        "title": "t" * 120,
        "details": "d" * 2000,
        "category": "emotional_support",
        "urgency": "urgent",
        "window": WINDOW,
        "area": "a" * 64,
        "minutes_estimate": 10080,
        "personal": SEALED,
        "referral": ID_1,
    },
    "need.updated": {
        "need": ID_1,
        "title": "New title",
        "details": "",
        "category": "other",
        "urgency": "low",
        "window": WINDOW,
        "area": "Riverside",
        "minutes_estimate": 1,
    },
    "need.withdrawn": {"need": ID_1, "reason": "r" * 200},
    "offer.posted": {
        "title": "Fix bikes",
        "details": "Saturdays",
        "category": "repair",
        "windows": [WINDOW] * 16,
        "capacity": 100,
        "area": "North",
    },
    "claim.made": {"need": ID_1, "offer": ID_2, "note": "n" * 500},
    "fulfilment.recorded": {"need": ID_1, "claim": ID_2, "minutes": 1440, "note": "done"},
    "hours.logged": {"giver": KEY_A, "receiver": KEY_B, "minutes": 1, "need": ID_1, "note": ""},
    "proposal.opened": {
        "title": "Pick one",
        "options": [str(i) for i in range(10)],
        "closes_at": 2**53,
        "details": "why",
    },
    "vote.cast": {"proposal": ID_1, "option": 9},
    "gathering.scheduled": {
        "title": "Seed swap",
        "kind": "skill_share",
        "window": WINDOW,
        "place_sealed": SEALED,
        "capacity": 10_000,
        "details": "d" * 2000,
    },
    "gathering.cancelled": {"gathering": ID_1, "reason": "r" * 200},
    "overflow.referred": {
        "need": ID_2,
        "summary": {
            "category": "pets",
            "urgency": "low",
            "area": "a" * 64,
            "window": WINDOW,
            "minutes_estimate": 10080,
        },
        "hops_left": 8,
        "expires_at": 0,
        "parent": ID_1,
        "path": [KEY_A, KEY_B],
    },
    "overflow.offered": {"referral": ID_1, "note": "we can"},
    "overflow.assigned": {"referral": ID_1, "to_pod": KEY_B, "offer": ID_2, "details": SEALED},
    "overflow.fulfilled": {"referral": ID_1, "minutes": 10080},
    "overflow.returned": {"referral": ID_1, "reason": "no driver"},
    "clearing.recorded": {"peer_pod": KEY_B, "minutes": 100_000, "referral": ID_1},
    "claim.accepted": {"claim": ID_1, "need": ID_2, "personal": SEALED},
    "report.filed": {"text": "t" * 2000, "about": KEY_A, "event": ID_1, "sealed": SEALED},
    "report.resolved": {"report": ID_1, "note": "n" * 500, "action": ID_2},
    "block.advised": {"key": KEY_A, "reason": "other", "blocked": ID_1},
    "member.blocked": {
        "key": KEY_A,
        "effective": {"pod": 3},
        "reason": "threats",
        "advisory": ID_2,
    },
}

VALID = [(kind, body) for kind, body in MINIMAL.items()] + [
    (kind, body) for kind, body in FULL.items()
]


def test_every_kind_has_a_valid_example() -> None:
    assert set(MINIMAL) == KNOWN_KINDS == set(BODY_TYPES)
    assert set(FULL) <= KNOWN_KINDS


@pytest.mark.parametrize(("kind", "body"), VALID, ids=[k for k, _ in VALID])
def test_valid_bodies(kind: str, body: dict[str, Any]) -> None:
    typed = validate_body(kind, body)
    assert isinstance(typed, BODY_TYPES[kind])
    # Encoding the typed body and checking it again gives the same body (defaults omitted).
    again = validate_body(kind, msgspec.json.decode(msgspec.json.encode(typed)))
    assert again == typed


@pytest.mark.parametrize(("kind", "body"), VALID, ids=[k for k, _ in VALID])
def test_unknown_fields_are_ignored(kind: str, body: dict[str, Any]) -> None:
    extra = {**body, "x_future": {"nested": [1, 2.5, None]}, "flag": True}
    if kind in CLOSED_KINDS:
        with pytest.raises(RejectedEvent) as info:
            validate_body(kind, extra)
        assert info.value.reason == "invalid:body:field:$"  # names made up by the sender
    else:
        assert validate_body(kind, extra) == validate_body(kind, body)


#: Kinds that cross to other pods carrying a summary of a person's need, or a neighbour's
#: block advice: closed.
CLOSED_KINDS = frozenset({"overflow.referred", "block.advised"})


def test_defaults() -> None:
    offer = validate_body("offer.posted", MINIMAL["offer.posted"])
    assert isinstance(offer, OfferPosted)
    assert offer == OfferPosted(title="Bike rides", category="ride")
    assert offer.windows == () and offer.capacity == 1 and offer.area is None
    full = validate_body("offer.posted", FULL["offer.posted"])
    assert isinstance(full, OfferPosted)
    assert full.windows[0] == TimeWindow(**WINDOW)


@pytest.mark.parametrize("body", [{}, [], "x", 1, None, {"a": 1}])
def test_unknown_kind_is_kept_unchecked(body: object) -> None:
    assert validate_body("chat.sent", body) is None


def with_(kind: str, **changes: Any) -> dict[str, Any]:
    return {**MINIMAL[kind], **changes}


def without(kind: str, field: str) -> dict[str, Any]:
    return {k: v for k, v in {**MINIMAL[kind], **FULL.get(kind, {})}.items() if k != field}


NEED = "need.posted"
INVALID: list[tuple[str, object, str]] = [
    # not an object
    (NEED, [], "not-object"),
    (NEED, None, "not-object"),
    (NEED, "soup", "not-object"),
    ("event.redacted", 7, "not-object"),
    # missing
    (NEED, without(NEED, "title"), "missing:title"),
    (NEED, without(NEED, "category"), "missing:category"),
    ("member.added", without("member.added", "box_key"), "missing:box_key"),
    ("member.removed", without("member.removed", "effective"), "missing:effective"),
    # a roster event is public: a removal's or block's reason is a word, never a sentence
    (
        "member.blocked",
        {"key": KEY_A, "effective": {"pod": 1}, "reason": "shouted at Ana at the pantry"},
        "field:reason",
    ),
    (NEED, with_(NEED, window={"start": 1}), "missing:window.end"),
    (
        "offer.posted",
        with_("offer.posted", windows=[WINDOW, {"end": 3}]),
        "missing:windows.1.start",
    ),
    (
        "profile.set",
        {"contact": {k: v for k, v in SEALED.items() if k != "ct"}},
        "missing:contact.ct",
    ),
    # wrong type
    (NEED, with_(NEED, title=5), "field:title"),
    (NEED, with_(NEED, window=[1, 2]), "field:window"),
    ("pod.created", {"name": None}, "field:name"),
    ("offer.posted", with_("offer.posted", windows={"start": 1, "end": 2}), "field:windows"),
    ("proposal.opened", with_("proposal.opened", options=["a", 2]), "field:options.1"),
    # float or bool where an int is due
    ("vote.cast", with_("vote.cast", option=1.0), "field:option"),
    ("vote.cast", with_("vote.cast", option=True), "field:option"),
    ("hours.logged", with_("hours.logged", minutes=1.5), "field:minutes"),
    (NEED, with_(NEED, window={"start": False, "end": 3}), "field:window.start"),
    ("member.removed", with_("member.removed", effective={"pod": 2.0}), "field:effective"),
    ("offer.posted", with_("offer.posted", capacity=True), "field:capacity"),
    # time windows
    (NEED, with_(NEED, window={"start": 5, "end": 5}), "field:window"),
    (NEED, with_(NEED, window={"start": 6, "end": 5}), "field:window"),
    (NEED, with_(NEED, window={"start": -1, "end": 5}), "field:window.start"),
    (
        "offer.posted",
        with_("offer.posted", windows=[WINDOW, {"start": 9, "end": 1}]),
        "field:windows.1",
    ),
    ("offer.posted", with_("offer.posted", windows=[WINDOW] * 17), "field:windows"),
    # lengths and ranges
    (NEED, with_(NEED, title=""), "field:title"),
    (NEED, with_(NEED, title="t" * 121), "field:title"),
    (NEED, with_(NEED, details="d" * 2001), "field:details"),
    (NEED, with_(NEED, area="a" * 65), "field:area"),
    (NEED, with_(NEED, minutes_estimate=10081), "field:minutes_estimate"),
    (NEED, with_(NEED, minutes_estimate=0), "field:minutes_estimate"),
    ("pod.created", {"name": ""}, "field:name"),
    ("pod.created", {"name": "n" * 81}, "field:name"),
    ("profile.set", {"pronouns": "p" * 41}, "field:pronouns"),
    ("profile.set", {"about": "a" * 501}, "field:about"),
    ("profile.set", {"languages": ["es"] * 9}, "field:languages"),
    ("profile.set", {"languages": "es"}, "field:languages"),
    ("profile.set", {"languages": ["es", ""]}, "field:languages.1"),
    ("profile.set", {"languages": ["e"]}, "field:languages.0"),
    ("profile.set", {"languages": ["español"]}, "field:languages.0"),
    ("profile.set", {"languages": ["es-"]}, "field:languages.0"),
    ("profile.set", {"languages": ["es\n"]}, "field:languages.0"),
    ("profile.set", {"languages": ["es-419", "a" * 8 + "-1" * 14]}, "field:languages.1"),
    ("profile.set", {"languages": [3]}, "field:languages.0"),
    ("claim.made", with_("claim.made", note="n" * 501), "field:note"),
    ("need.withdrawn", with_("need.withdrawn", reason="r" * 201), "field:reason"),
    ("hours.logged", with_("hours.logged", minutes=0), "field:minutes"),
    ("hours.logged", with_("hours.logged", minutes=1441), "field:minutes"),
    ("fulfilment.recorded", with_("fulfilment.recorded", minutes=1441), "field:minutes"),
    ("offer.posted", with_("offer.posted", capacity=0), "field:capacity"),
    ("offer.posted", with_("offer.posted", capacity=101), "field:capacity"),
    ("vote.cast", with_("vote.cast", option=10), "field:option"),
    ("gathering.scheduled", {**MINIMAL["gathering.scheduled"], "kind": "party"}, "field:kind"),
    (
        "gathering.scheduled",
        with_("gathering.scheduled", window={"start": 5, "end": 5}),
        "field:window",
    ),
    ("gathering.scheduled", with_("gathering.scheduled", capacity=0), "field:capacity"),
    ("gathering.scheduled", with_("gathering.scheduled", place=""), "field:place"),
    (
        "gathering.scheduled",
        with_("gathering.scheduled", place="Hall", place_sealed=SEALED),
        "field:place_sealed",
    ),
    ("gathering.scheduled", without("gathering.scheduled", "window"), "missing:window"),
    ("gathering.cancelled", {"gathering": "nope"}, "field:gathering"),
    ("gathering.rsvp", with_("gathering.rsvp", answer="perhaps"), "field:answer"),
    ("gathering.rsvp", without("gathering.rsvp", "answer"), "missing:answer"),
    ("vote.cast", with_("vote.cast", option=-1), "field:option"),
    ("overflow.referred", with_("overflow.referred", hops_left=9), "field:hops_left"),
    ("overflow.referred", with_("overflow.referred", hops_left=-1), "field:hops_left"),
    ("overflow.referred", with_("overflow.referred", summary="Ride for Amara"), "field:summary"),
    ("overflow.referred", without("overflow.referred", "summary"), "missing:summary"),
    ("overflow.referred", without("overflow.referred", "need"), "missing:need"),
    (
        "overflow.referred",
        with_("overflow.referred", summary={"category": "ride", "urgency": "high", "title": "x"}),
        "field:summary.title",
    ),
    (
        "overflow.referred",
        with_("overflow.referred", summary={"category": "ride", "urgency": "high", "notes": 1}),
        "field:summary",  # not a schema word: never repeated
    ),
    ("overflow.referred", with_("overflow.referred", details=SEALED), "field:details"),
    ("overflow.referred", with_("overflow.referred", path=[KEY_A]), "field:path"),
    ("overflow.referred", with_("overflow.referred", parent=ID_1), "field:path"),
    (
        "overflow.referred",
        with_("overflow.referred", parent=ID_1, path=[KEY_A, KEY_A]),
        "field:path",
    ),
    (
        "overflow.referred",
        with_("overflow.referred", parent=ID_1, path=[KEY_A] * 9),
        "field:path",
    ),
    ("overflow.fulfilled", with_("overflow.fulfilled", minutes=0), "field:minutes"),
    ("overflow.referred", with_("overflow.referred", expires_at=-1), "field:expires_at"),
    ("proposal.opened", with_("proposal.opened", closes_at=2**53 + 1), "field:closes_at"),
    ("proposal.opened", with_("proposal.opened", options=["only"]), "field:options"),
    ("proposal.opened", with_("proposal.opened", options=list("abcdefghijk")), "field:options"),
    ("proposal.opened", with_("proposal.opened", options=["a", ""]), "field:options.1"),
    ("report.filed", {"text": ""}, "field:text"),
    ("report.filed", {"text": "t" * 2001}, "field:text"),
    ("block.advised", {"key": KEY_A, "reason": "she shouted at me"}, "field:reason"),
    ("block.advised", {"key": KEY_A, "reason": "spam", "name": "Ada"}, "field:name"),
    ("report.resolved", {"report": ID_1, "note": "n" * 501}, "field:note"),
    ("invite.created", with_("invite.created", approve="always"), "field:approve"),
    ("invite.created", with_("invite.created", code_hash="short"), "field:code_hash"),
    ("invite.created", with_("invite.created", expires_at=-1), "field:expires_at"),
    ("invite.created", {"code_hash": ID_2, "approve": "auto"}, "missing:expires_at"),
    ("invite.revoked", {"invite": "nope"}, "field:invite"),
    ("member.added", with_("member.added", invite="nope"), "field:invite"),
    ("clearing.recorded", with_("clearing.recorded", minutes=100_001), "field:minutes"),
    ("clearing.recorded", with_("clearing.recorded", minutes=-100_001), "field:minutes"),
    # seq maps
    ("member.removed", with_("member.removed", effective={}), "field:effective"),
    ("member.blocked", with_("member.blocked", effective={}), "field:effective"),
    ("member.removed", with_("member.removed", effective={"pod": 0}), "field:effective"),
    (
        "member.key_revoked",
        with_("member.key_revoked", valid_through={"pod": -1}),
        "field:valid_through",
    ),
    ("member.blocked", with_("member.blocked", effective={"galaxy": 1}), "field:effective"),
    # bad keys and ids
    ("node.key", {"key": KEY_A + "A"}, "field:key"),
    ("node.key", {"key": KEY_A[:-1]}, "field:key"),
    ("node.key", {"key": KEY_A[:-1] + "B"}, "field:key"),  # spare bits set: not canonical
    ("node.key", {"key": KEY_A[:-1] + "="}, "field:key"),
    ("node.key", {"key": KEY_A.replace(KEY_A[0], "+")}, "field:key"),
    ("event.redacted", {"target": "not-an-id"}, "field:target"),
    ("erasure.confirmed", {"redaction": ID_1, "target": "x"}, "field:target"),
    ("erasure.confirmed", {"target": ID_1}, "missing:redaction"),
    ("claim.accepted", with_("claim.accepted", need=ID_1 + "=="), "field:need"),
    # bad enums
    (NEED, with_(NEED, category="Food"), "field:category"),
    (NEED, with_(NEED, urgency="asap"), "field:urgency"),
    ("member.added", with_("member.added", role="root"), "field:role"),
    ("need.updated", with_("need.updated", category="bike repair"), "field:category"),
    ("need.updated", with_("need.updated", category="x" * 33), "field:category"),
    # sealed values are strict
    (NEED, with_(NEED, personal={**SEALED, "alg": "rot13"}), "field:personal.alg"),
    (NEED, with_(NEED, personal={**SEALED, "plain": "5 Elm St"}), "field:personal"),
    (NEED, with_(NEED, personal={**SEALED, "to": []}), "field:personal.to"),
    (NEED, with_(NEED, personal="5 Elm St"), "field:personal"),
    # cross-field rules
    ("member.key_added", {"member": KEY_A, "key": KEY_A}, "field:key"),
    ("hours.logged", with_("hours.logged", receiver=KEY_A), "field:receiver"),
    ("proposal.opened", with_("proposal.opened", options=["yes", "no", "yes"]), "field:options"),
    ("clearing.recorded", with_("clearing.recorded", minutes=0), "field:minutes"),
    ("need.updated", {"need": ID_1}, "no-change"),
    ("need.updated", {"need": ID_1, "title": None, "window": None}, "no-change"),
    # not JSON (a non-string key), still refused cleanly
    (NEED, {1: "x"}, "field:$"),
]

DETAIL = re.compile(
    r"^invalid:body:(not-object|no-change|(missing|field):[a-z_]+(\.[a-z0-9_]+)*|field:\$)$"
)


@pytest.mark.parametrize(
    ("kind", "body", "detail"), INVALID, ids=[f"{k}-{d}" for k, _, d in INVALID]
)
def test_invalid_bodies(kind: str, body: object, detail: str) -> None:
    with pytest.raises(RejectedEvent) as info:
        validate_body(kind, body)
    assert info.value.reason == f"invalid:body:{detail}"
    assert DETAIL.match(info.value.reason)
    assert info.value.message.startswith(f"`{kind}` body: ")
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("vote.cast", with_("vote.cast", option=1.5), "`option`: expected `int`, got `float`"),
        (NEED, with_(NEED, title="t" * 121), "`title`: expected `str` of length <= 120"),
        (NEED, with_(NEED, window={"start": 2, "end": 1}), "`window`: `end` must be after `start`"),
        (NEED, [], "the body must be a JSON object"),
        (NEED, without(NEED, "urgency"), "required field `urgency` is missing"),
        ("need.updated", {"need": ID_1}, "a need update must change at least one field"),
        (
            "gathering.scheduled",
            with_("gathering.scheduled", place="Hall", place_sealed=SEALED),
            "`place_sealed`: give `place` or `place_sealed`, not both",
        ),
        (
            "overflow.referred",
            with_("overflow.referred", summary={"category": "ride", "urgency": "low", "area": 1}),
            "`summary.area`: expected `str | null`, got `int`",
        ),
        (
            "overflow.referred",
            with_("overflow.referred", title="Ride for Amara"),
            "`title` is not allowed here",
        ),
    ],
)
def test_messages_name_fields_and_constraints(kind: str, body: object, message: str) -> None:
    with pytest.raises(RejectedEvent) as info:
        validate_body(kind, body)
    assert info.value.message == f"`{kind}` body: {message}"


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (NEED, with_(NEED, category="SECRET-dialysis")),
        (NEED, with_(NEED, urgency="SECRET-dialysis")),
        (NEED, with_(NEED, personal={**SEALED, "SECRET-dialysis": 1})),
        (NEED, with_(NEED, personal={**SEALED, "alg": "SECRET-dialysis"})),
        (NEED, with_(NEED, title="SECRET-dialysis" * 20)),
        ("node.key", {"key": "SECRET-dialysis"}),
        ("overflow.referred", with_("overflow.referred", SECRET_dialysis=1)),
        (
            "overflow.referred",
            with_("overflow.referred", summary={"category": "ride", "urgency": "low", "SECRET": 1}),
        ),
        ("member.blocked", with_("member.blocked", effective={"SECRET-dialysis": 1})),
    ],
)
def test_messages_never_echo_the_body(kind: str, body: object) -> None:
    with pytest.raises(RejectedEvent) as info:
        validate_body(kind, body)
    assert "SECRET" not in info.value.message
    assert "SECRET" not in info.value.reason
    assert "SECRET" not in str(info.value)


def test_rules_hold_for_direct_construction() -> None:
    with pytest.raises(ValueError, match="after"):
        TimeWindow(start=3, end=3)
    with pytest.raises(ValueError, match="giver"):
        HoursLogged(giver=KEY_A, receiver=KEY_A, minutes=5)


def test_bodies_are_frozen_documented_and_open() -> None:
    for kind, body_type in BODY_TYPES.items():
        assert issubclass(body_type, Body)
        assert body_type.__doc__ and len(body_type.__doc__) > 20, kind
        config = body_type.__struct_config__
        assert config.frozen and config.forbid_unknown_fields == (kind in CLOSED_KINDS), kind
        with pytest.raises(TypeError):
            body_type(None)  # kw_only: fields are never positional
    node = validate_body("node.key", {"key": KEY_A})
    assert isinstance(node, NodeKey)
    with pytest.raises(AttributeError):
        node.key = KEY_B  # type: ignore[misc]


def test_key_pattern_is_canonical_base64url_of_32_bytes() -> None:
    pattern = re.compile(KEY_PATTERN)
    for i in range(256):
        assert pattern.match(b64e(bytes([i]) * 32))
    assert pattern.match(ID_1) and not pattern.match(ID_1[:-1] + "R")


# --- property: only RejectedEvent ever escapes -------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
kinds = st.sampled_from([*sorted(KNOWN_KINDS), "chat.sent", "need.future"])


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[str, object]:
    """A valid body with some fields replaced, dropped or added: reaches the nested types."""
    kind = draw(st.sampled_from(sorted(MINIMAL)))
    body = dict(draw(st.sampled_from([MINIMAL[kind], FULL.get(kind, MINIMAL[kind])])))
    for field in draw(st.lists(st.sampled_from([*body, "window", "windows", "extra"]), max_size=3)):
        if draw(st.booleans()):
            body[field] = draw(json_values | st.just(WINDOW) | st.just([WINDOW, {"start": 2}]))
        else:
            body.pop(field, None)
    return kind, body


def check_only_rejected(kind: str, body: object) -> None:
    try:
        result = validate_body(kind, body)
    except RejectedEvent as exc:
        assert kind in KNOWN_KINDS
        assert DETAIL.match(exc.reason), exc.reason
    else:
        assert result is None or isinstance(result, BODY_TYPES[kind])
        assert (result is None) == (kind not in KNOWN_KINDS)


@given(kinds, json_values)
def test_only_rejected_event_escapes(kind: str, body: object) -> None:
    check_only_rejected(kind, body)


@given(near_valid())
def test_only_rejected_event_escapes_near_valid(case: tuple[str, object]) -> None:
    check_only_rejected(*case)


# --- kind families ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "kind", "matches"),
    [
        ("need.posted", "need.posted", True),
        ("need.posted", "need.updated", False),
        ("need.*", "need.posted", True),
        ("need.*", "need.withdrawn", True),
        ("need.*", "need.some.future", True),
        ("need.*", "need", False),
        ("need.*", "needs.posted", False),
        ("need.*", "offer.posted", False),
        ("*", "anything.at_all", True),
        ("*", "", True),
        ("need*", "need.posted", False),
        ("*.posted", "need.posted", False),
        ("", "need.posted", False),
    ],
)
def test_kind_matches(pattern: str, kind: str, matches: bool) -> None:
    assert kind_matches(pattern, kind) is matches


def test_kind_families() -> None:
    assert set(ROSTER_KINDS) == {
        "pod.created",
        "pod.root_rotated",
        "node.key",
        "member.added",
        "member.removed",
        "member.key_added",
        "member.key_revoked",
        "member.blocked",
        "member.unblocked",
    }
    assert set(REDACTABLE_KINDS) == {
        "need.posted",
        "need.updated",
        "offer.posted",
        "profile.set",
        "report.filed",
        "report.resolved",
        "gathering.scheduled",
    }
    assert set(LEDGER_KINDS) == {
        "hours.logged",
        "hours.confirmed",
        "claim.made",
        "claim.withdrawn",
        "claim.accepted",
        "fulfilment.recorded",
    }
    assert set(COORDINATOR_READ_KINDS) == {"report.filed", "report.resolved"}
    assert not REDACTABLE_KINDS & (LEDGER_KINDS | ROSTER_KINDS)
    assert all(isinstance(s, frozenset) for s in (ROSTER_KINDS, REDACTABLE_KINDS, LEDGER_KINDS))


@pytest.mark.parametrize(
    ("kind", "redactable"),
    [
        ("need.posted", True),
        ("offer.withdrawn", False),  # would silently re-open the offer
        ("need.withdrawn", False),
        ("need.updated", True),
        ("profile.set", True),
        ("report.filed", True),
        ("need.reopened", True),  # a newer kind of a redactable family: every node agrees
        ("hours.logged", False),
        ("claim.made", False),
        ("vote.cast", False),
        ("gathering.scheduled", True),
        ("gathering.cancelled", False),  # would silently re-open the gathering
        ("gathering.rsvp", False),
        ("member.added", False),
        ("event.redacted", False),
        ("erasure.confirmed", False),  # a receipt: two ids, nothing personal to erase
        ("profile.cleared", False),
    ],
)
def test_is_redactable(kind: str, redactable: bool) -> None:
    assert is_redactable(kind) is redactable
    assert (kind in REDACTABLE_KINDS) == (redactable and kind in KNOWN_KINDS)


def test_a_category_added_later_is_accepted_and_shown_as_other() -> None:
    """Old nodes must keep, project and relay a need whose category they do not know."""
    need = validate_body(NEED, with_(NEED, category="bike_repair"))
    assert isinstance(need, NeedPosted)
    assert need.category == "bike_repair"
    assert shown_category(need.category) == "other"
    for known in ("peer_support", "navigation", "advocacy", "health_accompaniment"):
        assert shown_category(known) == known
