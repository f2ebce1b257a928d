"""Validation in DESIGN §2's order (protocol/validate.py, docs/protocol.md §8-§10), and reasons."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import reasons
from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, Event, Scope, encode_envelope, parse_event, sign_event
from protocol.logs import Chain, LogKey, LogState
from protocol.reasons import (
    ALL_REASONS,
    InvalidJSON,
    InvalidToken,
    KithError,
    RejectedEvent,
    SealError,
    base_reason,
    invalid,
)
from protocol.validate import (
    CLIENT,
    CLIENT_CLOCK_SKEW_MS,
    IMPORT,
    Authorization,
    Outcome,
    Source,
    Verdict,
    check_chain,
    check_schema,
    check_signature,
    check_source,
    from_peer,
    validate,
)

ROOT = SigningKey.from_seed(bytes(range(32)))
MEMBER = SigningKey.from_seed(bytes(range(1, 33)))
NEIGHBOUR = SigningKey.from_seed(bytes(range(2, 34)))
HOME = ROOT.public_b64  # this node's pod
PEER_POD = NEIGHBOUR.public_b64  # the pod of the direct peer that relays "peer" events
OTHER_POD = b64e(bytes(32))
NOW = 1_700_000_000_000
PEER = from_peer(PEER_POD)
NEED = {"title": "Soup for two", "category": "food", "urgency": "high"}


class MemoryLedger:
    """What a node knows, in memory: stored ids, log heads and a roster (default: everyone)."""

    def __init__(self, roster: dict[str, Authorization] | None = None) -> None:
        self.events: dict[str, Event] = {}
        self.heads: dict[LogKey, LogState] = {}
        self.roster = roster or {}
        self.asked: list[str] = []

    def known(self, event_id: str) -> bool:
        self.asked.append("known")
        return event_id in self.events

    def log_state(self, log: LogKey) -> LogState | None:
        self.asked.append("log_state")
        return self.heads.get(log)

    def authorize(self, event: Event) -> Authorization:
        self.asked.append("authorize")
        return self.roster.get(event.head.author, Authorization.YES)

    def store(self, verdict: Verdict) -> None:
        """Keep an accepted event (or a proof); only an accepted one moves its log's head."""
        assert verdict.event is not None and verdict.ok
        event = verdict.event
        self.events[event.id] = event
        if verdict.outcome is Outcome.ACCEPT:
            self.heads[LogKey(*event.log)] = LogState(event.head.seq, event.id, event.head.ts)


def make(
    key: SigningKey = MEMBER,
    *,
    pod: str = HOME,
    scope: Scope = "pod",
    seq: int = 1,
    prev: str | None = None,
    ts: int = NOW,
    kind: str = "need.posted",
    body: Any = NEED,
) -> Envelope:
    return sign_event(key, pod=pod, scope=scope, seq=seq, prev=prev, ts=ts, kind=kind, body=body)


def check(
    env: Envelope | bytes | str,
    ledger: MemoryLedger | None = None,
    source: Source = CLIENT,
    now: int = NOW,
) -> Verdict:
    data = encode_envelope(env) if isinstance(env, Envelope) else env
    return validate(data, source, ledger or MemoryLedger(), now_ms=now, home_pod=HOME)


def chain_of(count: int, key: SigningKey = MEMBER, scope: Scope = "pod") -> list[Envelope]:
    """``count`` valid events of one log."""
    out: list[Envelope] = []
    for seq in range(1, count + 1):
        prev = parse_event(out[-1]).id if out else None
        out.append(make(key, scope=scope, seq=seq, prev=prev, ts=NOW + seq))
    return out


def stored(*envs: Envelope, ledger: MemoryLedger | None = None) -> MemoryLedger:
    ledger = ledger or MemoryLedger()
    for env in envs:
        verdict = check(env, ledger, source=IMPORT)
        ledger.store(verdict)
    return ledger


# --- sources and verdicts -------------------------------------------------------------------


def test_sources() -> None:
    assert CLIENT.is_client
    assert Source("client") == CLIENT
    assert not PEER.is_client
    assert Source("peer", PEER_POD) == PEER
    assert not IMPORT.is_client and IMPORT.origin == "import"
    assert CLIENT_CLOCK_SKEW_MS == 600_000


@pytest.mark.parametrize(
    ("outcome", "ok"),
    [
        (Outcome.ACCEPT, True),
        (Outcome.DUPLICATE, True),
        (Outcome.PROOF, True),  # a fork kept as proof is stored
        (Outcome.HOLD, False),
        (Outcome.REJECT, False),
    ],
)
def test_verdict_ok(outcome: Outcome, ok: bool) -> None:
    assert Verdict(id=None, outcome=outcome).ok is ok


# --- stage 3: source ------------------------------------------------------------------------

OUT = reasons.OUT_OF_SCOPE
SKEW = invalid("ts:skew")


@pytest.mark.parametrize(
    ("source", "scope", "pod", "ts", "reason"),
    [
        (CLIENT, "pod", HOME, NOW, None),
        (CLIENT, "peers", HOME, NOW, None),
        (CLIENT, "public", HOME, NOW, None),
        (CLIENT, "public", OTHER_POD, NOW, None),
        (CLIENT, "pod", OTHER_POD, NOW, OUT),
        (CLIENT, "peers", PEER_POD, NOW, OUT),
        (CLIENT, "public", HOME, NOW - CLIENT_CLOCK_SKEW_MS, None),  # ±10 min, inclusive
        (CLIENT, "public", HOME, NOW + CLIENT_CLOCK_SKEW_MS, None),
        (CLIENT, "public", HOME, NOW - CLIENT_CLOCK_SKEW_MS - 1, SKEW),
        (CLIENT, "pod", HOME, NOW + CLIENT_CLOCK_SKEW_MS + 1, SKEW),
        (CLIENT, "pod", OTHER_POD, 0, OUT),  # scope is checked before the clock
        (PEER, "pod", PEER_POD, NOW, OUT),  # pod scope never leaves its node
        (PEER, "pod", HOME, NOW, OUT),
        (PEER, "peers", PEER_POD, 0, None),  # relayed events may be old
        (PEER, "peers", HOME, NOW, OUT),  # a peer relays peers events of its own pod only
        (PEER, "peers", OTHER_POD, NOW, OUT),
        (PEER, "public", OTHER_POD, 0, None),
        (PEER, "public", HOME, NOW, None),
        (from_peer(None), "peers", PEER_POD, NOW, OUT),  # type: ignore[arg-type]
        (IMPORT, "pod", HOME, 0, None),
        (IMPORT, "pod", OTHER_POD, NOW, OUT),
        (IMPORT, "peers", OTHER_POD, 0, None),
        (IMPORT, "public", OTHER_POD, 0, None),
    ],
)
def test_check_source(source: Source, scope: Scope, pod: str, ts: int, reason: str | None) -> None:
    event = parse_event(make(pod=pod, scope=scope, ts=ts))
    if reason is None:
        check_source(event, source, now_ms=NOW, home_pod=HOME)
    else:
        with pytest.raises(RejectedEvent) as caught:
            check_source(event, source, now_ms=NOW, home_pod=HOME)
        assert caught.value.reason == reason


# --- stages 5, 7 and 9 on their own ---------------------------------------------------------


def test_check_signature() -> None:
    env = make()
    check_signature(parse_event(env))
    forged = Envelope(head=env.head, sig=make(ROOT).sig, body=env.body)
    with pytest.raises(RejectedEvent) as caught:
        check_signature(parse_event(forged))
    assert caught.value.reason == "invalid:sig"


def test_check_chain() -> None:
    first, second = chain_of(2)
    state = LogState(1, parse_event(first).id, NOW + 1)
    sibling = parse_event(make(seq=1, ts=NOW + 1, body={**NEED, "title": "Tea"}))
    assert check_chain(parse_event(second), state, CLIENT) is Chain.APPEND
    assert check_chain(parse_event(first), state, CLIENT) is Chain.DUPLICATE
    assert check_chain(parse_event(second), None, CLIENT) is Chain.GAP
    assert check_chain(sibling, state, PEER) is Chain.FORK
    assert check_chain(sibling, state, IMPORT) is Chain.FORK
    with pytest.raises(RejectedEvent) as caught:
        check_chain(sibling, state, CLIENT)
    assert caught.value.reason == reasons.FORK
    early = parse_event(make(seq=2, prev=state.id, ts=NOW))
    for source in (CLIENT, PEER):
        with pytest.raises(RejectedEvent) as caught:
            check_chain(early, state, source)
        assert caught.value.reason == "invalid:ts:before-prev"


def test_check_schema() -> None:
    event = parse_event(make())
    assert check_schema(event, NEED, CLIENT) is True
    assert check_schema(event, None, CLIENT) is True  # no body (or an erased one)
    assert check_schema(event, {"title": "no category"}, PEER) is False
    assert check_schema(event, {"title": "no category"}, IMPORT) is False
    with pytest.raises(RejectedEvent) as caught:
        check_schema(event, {"title": "no category"}, CLIENT)
    assert caught.value.reason.startswith("invalid:body:")
    unknown = parse_event(make(kind="future.kind", body={"anything": [1, 2]}))
    assert check_schema(unknown, {"anything": [1, 2]}, CLIENT) is True


# --- validate: the whole order --------------------------------------------------------------


def test_accepts_a_log_in_order() -> None:
    ledger = MemoryLedger()
    for seq, env in enumerate(chain_of(3), start=1):
        verdict = check(env, ledger)
        assert verdict.outcome is Outcome.ACCEPT and verdict.ok
        assert verdict.reason is None
        assert verdict.projectable
        assert verdict.body == NEED
        assert verdict.event is not None and verdict.event.head.seq == seq
        assert verdict.id == verdict.event.id
        assert verdict.head_state is None
        ledger.store(verdict)
    assert len(ledger.events) == 3


@pytest.mark.parametrize("as_type", [bytes, str, Envelope])
def test_accepts_every_input_type(as_type: type) -> None:
    env = make()
    data: Any = {bytes: encode_envelope(env), str: encode_envelope(env).decode(), Envelope: env}
    assert validate(data[as_type], CLIENT, MemoryLedger(), now_ms=NOW, home_pod=HOME).ok


def test_duplicate_id_is_answered_before_the_signature() -> None:
    env = make()
    ledger = stored(env)
    again = check(env, ledger)
    assert (again.outcome, again.reason, again.ok) == (Outcome.DUPLICATE, "duplicate", True)
    # Same head, another signature and body: still the same event, and nothing is checked.
    garbage = Envelope(head=env.head, sig=make(ROOT).sig, body='{"not": "the body"}')
    verdict = check(garbage, ledger)
    assert verdict.outcome is Outcome.DUPLICATE
    assert ledger.asked[-1] == "known"


def test_log_head_duplicate() -> None:
    """The log's head is this event, although the id lookup missed it (a racing writer)."""
    env = make()
    ledger = stored(env)
    ledger.events.clear()
    verdict = check(env, ledger)
    assert (verdict.outcome, verdict.reason) == (Outcome.DUPLICATE, "duplicate")


@pytest.mark.parametrize("source", [CLIENT, PEER, IMPORT])
def test_gap_is_held(source: Source) -> None:
    first, _, third = chain_of(3, scope="public")
    ledger = stored(first)
    ledger.asked.clear()
    verdict = check(third, ledger, source)
    assert (verdict.outcome, verdict.reason, verdict.ok) == (Outcome.HOLD, "gap", False)
    assert verdict.body == NEED and verdict.event is not None
    assert "authorize" not in ledger.asked


def test_fork_from_a_client_is_refused_with_the_log_head() -> None:
    first = make(ts=NOW + 1)
    ledger = stored(first)
    sibling = make(ts=NOW + 2, body={**NEED, "title": "Tea"})
    verdict = check(sibling, ledger)
    assert (verdict.outcome, verdict.reason, verdict.ok) == (Outcome.REJECT, "fork", False)
    assert verdict.head_state == LogState(1, parse_event(first).id, NOW + 1)
    assert verdict.id == parse_event(sibling).id


@pytest.mark.parametrize("source", [PEER, IMPORT])
def test_fork_from_a_peer_or_import_is_kept_as_proof(source: Source) -> None:
    first = make(scope="public", ts=NOW + 1)
    ledger = stored(first)
    sibling = make(scope="public", ts=NOW + 2, body={**NEED, "title": "Tea"})
    verdict = check(sibling, ledger, source)
    assert (verdict.outcome, verdict.reason, verdict.ok) == (Outcome.PROOF, "fork", True)
    assert verdict.head_state == LogState(1, parse_event(first).id, NOW + 1)
    assert not verdict.projectable
    ledger.store(verdict)
    assert ledger.heads[LogKey(HOME, MEMBER.public_b64, "public")].id == parse_event(first).id


def test_ts_before_prev_is_refused() -> None:
    first = make(ts=NOW + 5)
    ledger = stored(first)
    second = make(seq=2, prev=parse_event(first).id, ts=NOW + 4)
    verdict = check(second, ledger)
    assert (verdict.outcome, verdict.reason) == (Outcome.REJECT, "invalid:ts:before-prev")
    assert verdict.head_state is None


def test_unknown_author() -> None:
    roster = {MEMBER.public_b64: Authorization.UNKNOWN}
    public = make(scope="public")
    client = check(public, MemoryLedger(roster))
    assert (client.outcome, client.reason) == (Outcome.REJECT, "unauthorized")
    for source in (PEER, IMPORT):
        held = check(public, MemoryLedger(roster), source)
        assert (held.outcome, held.reason, held.ok) == (Outcome.HOLD, "unauthorized", False)
        assert held.body == NEED


@pytest.mark.parametrize("source", [CLIENT, PEER, IMPORT])
def test_unauthorized(source: Source) -> None:
    ledger = MemoryLedger({MEMBER.public_b64: Authorization.NO})
    verdict = check(make(scope="public"), ledger, source)
    assert (verdict.outcome, verdict.reason, verdict.ok) == (Outcome.REJECT, "unauthorized", False)


def test_blocked() -> None:
    roster = {MEMBER.public_b64: Authorization.BLOCKED}
    client = check(make(scope="public"), MemoryLedger(roster))
    assert (client.outcome, client.reason) == (Outcome.REJECT, "blocked")
    for source in (PEER, IMPORT):
        relayed = check(make(scope="public"), MemoryLedger(roster), source)
        assert (relayed.outcome, relayed.ok, relayed.projectable) == (Outcome.ACCEPT, True, False)


def test_ended_authority_is_refused_from_a_client_and_kept_unprojected_when_relayed() -> None:
    roster = {MEMBER.public_b64: Authorization.ENDED}
    client = check(make(scope="public"), MemoryLedger(roster))
    assert (client.outcome, client.reason) == (Outcome.REJECT, "unauthorized")
    assert client.message is not None and "removed" in client.message
    for source in (PEER, IMPORT):
        relayed = check(make(scope="public"), MemoryLedger(roster), source)
        assert (relayed.outcome, relayed.ok, relayed.projectable) == (Outcome.ACCEPT, True, False)


def test_schema_failure() -> None:
    bad = make(scope="public", body={"title": "Soup", "category": "Soup!", "urgency": "high"})
    client = check(bad)
    assert (client.outcome, client.reason) == (Outcome.REJECT, "invalid:body:field:category")
    for source in (PEER, IMPORT):
        relayed = check(bad, source=source)
        assert (relayed.outcome, relayed.ok, relayed.projectable) == (Outcome.ACCEPT, True, False)
        assert relayed.body == {"title": "Soup", "category": "Soup!", "urgency": "high"}


@pytest.mark.parametrize(
    "env",
    [
        make(kind="future.kind", body={"anything": [1.5, None]}),  # unknown kinds pass
        make(kind="presence.seen", body=None),  # no body
        Envelope(head=make().head, sig=make().sig, body=None),  # an erased body
    ],
)
def test_accepted_and_projectable(env: Envelope) -> None:
    verdict = check(env)
    assert (verdict.outcome, verdict.projectable) == (Outcome.ACCEPT, True)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "invalid:envelope:json"),
        (b"\xff\xfe", "invalid:envelope:json"),
        ("\ud800", "invalid:envelope:json"),
        (b"[]", "invalid:envelope:not-object"),
        (b'{"head":"{}","sig":"","body":null}', "invalid:head:missing:v"),
        (encode_envelope(Envelope(make().head, "", None)), "invalid:sig:encoding"),
        (b" " * 400_000, "too-large"),
    ],
)
def test_unreadable_events_have_no_id(data: bytes | str, reason: str) -> None:
    verdict = check(data)
    assert (verdict.outcome, verdict.reason, verdict.id, verdict.event) == (
        Outcome.REJECT,
        reason,
        None,
        None,
    )
    assert verdict.message


def test_refusals_after_the_id_is_known() -> None:
    env = make()
    forged = Envelope(head=env.head, sig=make(ROOT).sig, body=env.body)
    for data, reason in [
        (forged, "invalid:sig"),
        (Envelope(env.head, env.sig, '{"other":"body"}'), "invalid:body:hash"),
        (make(pod=OTHER_POD), "out-of-scope"),
        (make(ts=NOW - 3_600_000), "invalid:ts:skew"),
    ]:
        verdict = check(data)
        assert (verdict.outcome, verdict.reason) == (Outcome.REJECT, reason)
        assert verdict.id == parse_event(data).id


def test_nothing_is_held_before_the_signature_checks_out() -> None:
    """A gap, a fork or an unknown author with a bad signature is refused, never held."""
    first, _, third = chain_of(3)
    ledger = stored(first)
    ledger.roster[MEMBER.public_b64] = Authorization.UNKNOWN
    ledger.asked.clear()
    forged_gap = Envelope(third.head, first.sig, third.body)
    verdict = check(forged_gap, ledger, IMPORT)
    assert (verdict.outcome, verdict.reason) == (Outcome.REJECT, "invalid:sig")
    assert ledger.asked == ["known"]  # refused before the log or the roster is asked
    forged_new = make(scope="public")
    forged_new = Envelope(forged_new.head, first.sig, forged_new.body)
    assert check(forged_new, ledger, PEER).reason == "invalid:sig"


def test_check_order() -> None:
    """When several checks fail, the first in DESIGN order names the reason."""
    env = make(pod=OTHER_POD, ts=0)
    assert check(env).reason == "out-of-scope"  # source before the clock
    known = stored(make())
    forged = Envelope(make().head, "A" * 86, '{"x":1}')
    assert check(forged, known).reason == "duplicate"  # id lookup before signature and body
    ledger = MemoryLedger({MEMBER.public_b64: Authorization.NO})
    bad_body = Envelope(make().head, make().sig, '{"x":1}')
    assert check(bad_body, ledger).reason == "invalid:body:hash"  # body before authorization


# --- reasons ----------------------------------------------------------------------------------


def test_reasons() -> None:
    assert invalid("head:seq") == "invalid:head:seq"
    assert base_reason("invalid:head:seq") == "invalid"
    assert base_reason("fork") == "fork"
    assert {
        "duplicate",
        "invalid",
        "unauthorized",
        "fork",
        "gap",
        "too-large",
        "rate-limited",
        "blocked",
        "out-of-scope",
    } == ALL_REASONS


def test_error_hierarchy() -> None:
    error = RejectedEvent("gap", "held")
    assert (error.reason, error.message, str(error)) == ("gap", "held", "gap: held")
    bare = RejectedEvent("fork")
    assert (bare.reason, bare.message, str(bare)) == ("fork", "fork", "fork")
    assert isinstance(InvalidJSON(invalid("json:bom")), RejectedEvent)
    token = InvalidToken("invalid:token:expired", "too old")
    assert (token.reason, token.message, str(token)) == (
        "invalid:token:expired",
        "too old",
        "invalid:token:expired: too old",
    )
    assert InvalidToken("invalid:token:format").message == "invalid:token:format"
    assert str(InvalidToken("invalid:token:format")) == "invalid:token:format"
    for error_type in (RejectedEvent, InvalidJSON, InvalidToken, SealError):
        assert issubclass(error_type, KithError)


# --- properties -----------------------------------------------------------------------------


def _verdict_is_sane(verdict: Verdict) -> None:
    assert base_reason(verdict.reason or "") in ALL_REASONS | {""}
    assert verdict.ok == (verdict.outcome in (Outcome.ACCEPT, Outcome.DUPLICATE, Outcome.PROOF))


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    verdict = check(data)
    assert verdict.outcome is Outcome.REJECT
    _verdict_is_sane(verdict)


@given(st.text(max_size=300) | st.text(st.sampled_from('{}[]":,\\u0123 headsigbodynul\ud800')))
def test_arbitrary_text_never_raises(data: str) -> None:
    verdict = check(data)
    assert verdict.outcome is Outcome.REJECT
    _verdict_is_sane(verdict)


def _json_string(raw: bytes) -> bytes:
    """``raw`` as a JSON string literal, bytes kept as they are (so maybe not UTF-8)."""
    out = bytearray(b'"')
    for byte in raw:
        if byte in b'"\\':
            out += b"\\" + bytes([byte])
        elif byte < 0x20:
            out += f"\\u{byte:04x}".encode()
        else:
            out.append(byte)
    return bytes(out + b'"')


def _wire(head: bytes, sig: bytes, body: bytes | None) -> bytes:
    body_json = b"null" if body is None else _json_string(body)
    return (
        b'{"head":'
        + _json_string(head)
        + b',"sig":'
        + _json_string(sig)
        + b',"body":'
        + (body_json + b"}")
    )


BODIES = st.dictionaries(
    st.text(max_size=6),
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=12),
    max_size=4,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["head", "body", "sig"]),
    st.one_of(st.none(), BODIES),
    st.sampled_from(["pod", "peers", "public"]),
    st.data(),
)
def test_any_single_byte_change_is_refused(
    part: str, body: Any, scope: Scope, data: st.DataObject
) -> None:
    env = make(scope=scope, kind="test.event", body=body)
    parts = {
        "head": bytearray(env.head.encode()),
        "sig": bytearray(env.sig.encode()),
        "body": None if env.body is None else bytearray(env.body.encode()),
    }
    target = parts[part] if parts[part] is not None else parts["head"]
    assert target is not None
    index = data.draw(st.integers(min_value=0, max_value=len(target) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != target[index]))
    target[index] = value
    wire = _wire(
        bytes(parts["head"]),  # type: ignore[arg-type]
        bytes(parts["sig"]),  # type: ignore[arg-type]
        None if parts["body"] is None else bytes(parts["body"]),
    )
    verdict = check(wire)
    assert verdict.outcome is Outcome.REJECT, verdict
    _verdict_is_sane(verdict)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.none(), BODIES), st.data())
def test_any_single_byte_change_to_the_wire_is_never_another_event(
    body: Any, data: st.DataObject
) -> None:
    env = make(scope="public", kind="test.event", body=body)
    wire = bytearray(encode_envelope(env))
    index = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    wire[index] = data.draw(st.integers(min_value=0, max_value=255))
    verdict = check(bytes(wire))
    _verdict_is_sane(verdict)
    if verdict.outcome is not Outcome.REJECT:
        # Only a change the envelope reading absorbs (none in compact JSON, in practice).
        assert verdict.id == parse_event(env).id
        assert verdict.event is not None and verdict.event.body == env.body


def test_wire_helper_matches_the_encoder() -> None:
    env = make(kind="test.event", body={"quote": '"', "backslash": "\\", "newline": "\n"})
    wire = _wire(env.head.encode(), env.sig.encode(), env.body.encode())  # type: ignore[union-attr]
    assert json.loads(wire) == json.loads(encode_envelope(env))
    assert check(wire).outcome is Outcome.ACCEPT
