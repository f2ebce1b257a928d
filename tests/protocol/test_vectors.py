"""The test vectors in protocol/vectors/ (docs/protocol.md §18), checked against the code."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

import protocol
from protocol.codec import b64d
from protocol.crypto import SigningKey, sha256_b64, verify
from protocol.envelope import (
    Envelope,
    Event,
    build_head,
    check_body,
    decode_envelope,
    encode_envelope,
    parse_event,
    verify_event,
)
from protocol.kinds import KNOWN_KINDS, validate_body
from protocol.logs import LogKey, LogState
from protocol.reasons import ALL_REASONS, base_reason
from protocol.validate import CLIENT, Authorization, Outcome, from_peer, validate

VECTORS = Path(protocol.__file__).parent / "vectors"
GENERATOR = Path(__file__).resolve().parents[2] / "bench" / "make_vectors.py"
L = 2**252 + 27742317777372353535851937790883648493


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data


EVENTS = load("events.json")["events"]
INVALID = load("invalid.json")
ED25519 = load("ed25519.json")["cases"]


class Ledger:
    """An empty node that authorizes every author."""

    def __init__(self) -> None:
        self.heads: dict[LogKey, LogState] = {}
        self.ids: set[str] = set()

    def known(self, event_id: str) -> bool:
        return event_id in self.ids

    def log_state(self, log: LogKey) -> LogState | None:
        return self.heads.get(log)

    def authorize(self, event: Event) -> Authorization:
        return Authorization.YES


# --- events.json ----------------------------------------------------------------------------


@pytest.mark.parametrize("vector", EVENTS, ids=[v["name"] for v in EVENTS])
def test_event_vector(vector: dict[str, Any]) -> None:
    key = SigningKey(bytes.fromhex(vector["seed"]))
    head_bytes = vector["head"].encode("utf-8")
    assert key.public_b64 == vector["public_key"]
    assert key.sign(head_bytes) == b64d(vector["sig"], 64)  # Ed25519 is deterministic
    assert sha256_b64(head_bytes) == vector["id"]
    env = Envelope(head=vector["head"], sig=vector["sig"], body=vector["body"])
    event = parse_event(decode_envelope(encode_envelope(env)))
    assert event.id == vector["id"]
    assert event.head.author == vector["public_key"]
    assert verify_event(event)
    body = check_body(event)
    if vector["body"] is None:
        assert body is None
        assert (event.head.body_hash, event.head.body_size) == (None, 0)
    else:
        assert body == json.loads(vector["body"])
        assert event.head.body_size == len(vector["body"].encode("utf-8"))
        if event.head.kind in KNOWN_KINDS:
            validate_body(event.head.kind, body)


def test_event_vectors_cover_the_documented_cases() -> None:
    heads = {v["name"]: v["head"] for v in EVENTS}
    bodies = {v["name"]: v["body"] for v in EVENTS}
    assert any(body is None for body in bodies.values())
    assert any(body is not None and not body.isascii() for body in bodies.values())
    # A head written by hand: the signature covers these bytes, not a canonical form.
    formatted = parse_event(Envelope(heads["need-withdrawn-formatted-head"], "A" * 86, None))
    head = formatted.head
    compact = build_head(
        pod=head.pod,
        author=head.author,
        scope=head.scope,
        seq=head.seq,
        prev=head.prev,
        ts=head.ts,
        kind=head.kind,
        body_text=bodies["need-withdrawn-formatted-head"],
    )
    assert compact != heads["need-withdrawn-formatted-head"]
    assert json.loads(compact) == json.loads(heads["need-withdrawn-formatted-head"])


def test_event_vectors_are_logs_in_order() -> None:
    """Every event is accepted in file order by a node of the first event's pod."""
    ledger = Ledger()
    home = parse_event(Envelope(EVENTS[0]["head"], EVENTS[0]["sig"], None)).head.pod
    for vector in EVENTS:
        env = Envelope(head=vector["head"], sig=vector["sig"], body=vector["body"])
        event = parse_event(env)
        verdict = validate(env, CLIENT, ledger, now_ms=event.head.ts, home_pod=home)
        assert (verdict.outcome, verdict.reason) == (Outcome.ACCEPT, None), vector["name"]
        ledger.ids.add(event.id)
        ledger.heads[LogKey(*event.log)] = LogState(event.head.seq, event.id, event.head.ts)


# --- invalid.json ---------------------------------------------------------------------------


def _wire(envelope: Any) -> bytes:
    if isinstance(envelope, str):  # the exact raw text
        return envelope.encode("utf-8", "surrogatepass")
    return json.dumps(envelope).encode("utf-8")


@pytest.mark.parametrize("case", INVALID["cases"], ids=[c["name"] for c in INVALID["cases"]])
def test_invalid_vector(case: dict[str, Any]) -> None:
    source = CLIENT if case["source"] == "client" else from_peer(INVALID["peer_pod"])
    verdict = validate(
        _wire(case["envelope"]),
        source,
        Ledger(),
        now_ms=INVALID["now_ms"],
        home_pod=INVALID["home_pod"],
    )
    assert verdict.outcome is Outcome.REJECT
    assert verdict.reason == case["reason"]


def test_invalid_vectors_cover_every_ledger_free_reason() -> None:
    named = {case["name"] for case in INVALID["cases"]}
    assert len(named) == len(INVALID["cases"])
    found = {case["reason"] for case in INVALID["cases"]}
    assert {base_reason(reason) for reason in found} == {"invalid", "too-large", "out-of-scope"}
    assert found >= {
        "invalid:envelope:json",
        "invalid:envelope:json:duplicate-key",
        "invalid:envelope:not-object",
        "invalid:envelope:missing:head",
        "invalid:envelope:missing:body",
        "invalid:envelope:unknown-field",
        "invalid:envelope:field:head",
        "invalid:envelope:field:body",
        "invalid:head:json",
        "invalid:head:json:duplicate-key",
        "invalid:head:not-object",
        "invalid:head:unknown-field",
        "invalid:head:prev",
        "invalid:head:body_size",
        *(f"invalid:head:missing:{f}" for f in ("v", "pod", "author", "scope", "seq")),
        *(f"invalid:head:missing:{f}" for f in ("prev", "ts", "kind", "body_hash", "body_size")),
        *(f"invalid:head:field:{f}" for f in ("v", "pod", "author", "scope", "seq")),
        *(f"invalid:head:field:{f}" for f in ("prev", "ts", "kind", "body_hash", "body_size")),
        "invalid:sig:encoding",
        "invalid:sig",
        "invalid:ts:skew",
        "invalid:body:unexpected",
        "invalid:body:hash",
        "invalid:body:json:duplicate-key",
        "invalid:body:json:int-range",
        "invalid:body:json:number",
        "invalid:body:json:surrogate",
        "invalid:body:json:bom",
        "invalid:body:json:malformed",
        "invalid:body:not-object",
        "too-large",
        "out-of-scope",
    }
    assert all(base_reason(reason) in ALL_REASONS for reason in found)


# --- ed25519.json ---------------------------------------------------------------------------

SMALL_ORDER = {
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # non-canonical
}


@pytest.mark.parametrize("case", ED25519, ids=[f"case-{c['number']}" for c in ED25519])
def test_ed25519_vector(case: dict[str, Any]) -> None:
    public = bytes.fromhex(case["pub_key"])
    signature = bytes.fromhex(case["signature"])
    assert verify(public, signature, bytes.fromhex(case["message"])) is case["expected"]
    if int.from_bytes(signature[32:], "little") >= L:  # S >= L
        assert case["expected"] is False
    if case["pub_key"] in SMALL_ORDER or signature[:32].hex() in SMALL_ORDER:
        assert case["expected"] is False


def test_ed25519_vectors_are_the_twelve_speccheck_cases() -> None:
    assert [case["number"] for case in ED25519] == list(range(12))
    # libsodium: strict (S < L, no small-order A or R, canonical encodings) and cofactorless.
    assert [case["number"] for case in ED25519 if case["expected"]] == [3]
    big_s = [
        c["number"]
        for c in ED25519
        if int.from_bytes(bytes.fromhex(c["signature"])[32:], "little") >= L
    ]
    assert big_s == [6, 7]
    small = [
        c["number"]
        for c in ED25519
        if c["pub_key"] in SMALL_ORDER or c["signature"][:64] in SMALL_ORDER
    ]
    assert small == [0, 1, 2, 8, 9, 10, 11]


# --- the generator --------------------------------------------------------------------------


def test_the_generator_reproduces_the_files() -> None:
    spec = importlib.util.spec_from_file_location("make_vectors", GENERATOR)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    for name in ("events.json", "invalid.json", "ed25519.json"):
        assert generator.render(name) == (VECTORS / name).read_text(encoding="utf-8"), name
