"""Regenerate the protocol test vectors in ``protocol/vectors/`` (deterministic).

    .venv/bin/python bench/make_vectors.py          # rewrite the files
    .venv/bin/python bench/make_vectors.py --check  # exit 1 if a file is out of date

Ed25519 signing is deterministic and every key comes from a fixed seed, so the output is the
same on every run and machine. ``tests/protocol/test_vectors.py`` checks the files against the
reference code (and that this script still reproduces them).

- ``events.json``: valid events — seed, public key, exact head text, signature, id, body text.
- ``invalid.json``: envelopes that must be refused, each with its source and exact reason.
- ``ed25519.json``: the twelve "Taming the many EdDSAs" cases (novifinancial/ed25519-speccheck,
  ``cases.txt``) with what ``protocol.crypto.verify`` (libsodium) answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol.codec import b64d, b64e
from protocol.crypto import SigningKey, sha256_b64, verify
from protocol.envelope import MAX_BODY_BYTES, MAX_HEAD_BYTES, build_head

VECTORS = Path(__file__).resolve().parent.parent / "protocol" / "vectors"

#: The group order of Ed25519's base point.
L = 2**252 + 27742317777372353535851937790883648493

ROOT_SEED = bytes(range(1, 33))
MEMBER_SEED = bytes(range(33, 65))
OTHER_SEED = bytes(range(65, 97))
NODE_SEED = bytes(range(97, 129))
ROOT = SigningKey(ROOT_SEED)
MEMBER = SigningKey(MEMBER_SEED)
OTHER = SigningKey(OTHER_SEED)
NODE = SigningKey(NODE_SEED)
HOME_POD = ROOT.public_b64
#: The pod of the direct peer that relays the "peer" cases.
PEER_POD = OTHER.public_b64
T0 = 1_700_000_000_000
#: The node's clock for the invalid cases.
NOW_MS = T0 + 60_000
BOX_KEY = b64e(bytes(range(129, 161)))


def _body_text(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _signed(key: SigningKey, head: str, body: str | None) -> dict[str, Any]:
    return {"head": head, "sig": b64e(key.sign(head.encode("utf-8"))), "body": body}


def _event(
    name: str,
    note: str,
    key: SigningKey,
    head: str,
    body: str | None,
) -> dict[str, Any]:
    env = _signed(key, head, body)
    return {
        "name": name,
        "note": note,
        "seed": key.seed.hex(),
        "public_key": key.public_b64,
        "head": head,
        "sig": env["sig"],
        "id": sha256_b64(head.encode("utf-8")),
        "body": body,
    }


def build_events() -> dict[str, Any]:
    """Valid events: the root's public roster log, then a member's logs."""
    events: list[dict[str, Any]] = []
    heads: dict[tuple[str, str], str] = {}  # (author, scope) -> id of the log's last event

    def add(
        name: str,
        note: str,
        key: SigningKey,
        scope: Any,
        ts: int,
        kind: str,
        body: Any,
        head: str | None = None,
    ) -> str:
        prev = heads.get((key.public_b64, scope))
        seq = 1 + sum(1 for e in events if (e["public_key"], e["scope"]) == (key.public_b64, scope))
        text = None if body is None else _body_text(body)
        if head is None:
            head = build_head(
                pod=HOME_POD,
                author=key.public_b64,
                scope=scope,
                seq=seq,
                prev=prev,
                ts=ts,
                kind=kind,
                body_text=text,
            )
        events.append({**_event(name, note, key, head, text), "scope": scope})
        heads[(key.public_b64, scope)] = events[-1]["id"]
        return str(events[-1]["id"])

    add(
        "pod-created",
        "genesis: the root key signs seq 1 of its public log; pod = root key",
        ROOT,
        "public",
        T0,
        "pod.created",
        {"name": "Elm Street"},
    )
    add(
        "node-key",
        "seq 2 of the same log: prev is the id of seq 1",
        ROOT,
        "public",
        T0 + 1_000,
        "node.key",
        {"key": NODE.public_b64},
    )
    add(
        "member-added",
        "the root adds a member (keys and roles only)",
        ROOT,
        "public",
        T0 + 2_000,
        "member.added",
        {"key": MEMBER.public_b64, "role": "member", "box_key": BOX_KEY},
    )
    need_id = add(
        "need-posted-unicode",
        "non-ASCII body text: body_size counts its UTF-8 bytes, body_hash hashes them",
        MEMBER,
        "pod",
        T0 + 3_000,
        "need.posted",
        {
            "title": "Suppe für zwei 🍲",
            "category": "food",
            "urgency": "high",
            "area": "Ulmenstraße",
            "minutes_estimate": 30,
        },
    )
    withdrawn = {"need": need_id, "reason": "neighbour helped"}
    text = _body_text(withdrawn).encode("utf-8")
    formatted = (
        "{\n"
        '  "kind": "need.withdrawn",\n'
        '  "v": 1,\n'
        f'  "seq": 2, "prev": "{need_id}",\n'
        f'  "author": "{MEMBER.public_b64}", "pod": "{HOME_POD}", "scope": "pod",\n'
        f'  "ts": {T0 + 4_000},\n'
        f'  "body_hash": "{sha256_b64(text)}", "body_size": {len(text)}\n'
        "}"
    )
    add(
        "need-withdrawn-formatted-head",
        "head text with newlines, spaces and another key order: the signature and the id are "
        "over these exact bytes; never re-serialise a head",
        MEMBER,
        "pod",
        T0 + 4_000,
        "need.withdrawn",
        withdrawn,
        head=formatted,
    )
    add(
        "no-body",
        "an event without a body (an unknown kind, stored and forwarded): "
        "body null, body_hash null, body_size 0",
        MEMBER,
        "public",
        T0 + 5_000,
        "presence.seen",
        None,
    )
    for event in events:
        del event["scope"]
    return {
        "description": (
            "Valid Kith events. seed: the Ed25519 seed (hex); public_key: base64url; head: the "
            "exact head text, whose UTF-8 bytes are signed (sig) and hashed (id = base64url of "
            "SHA-256); body: the exact body text or null. The envelope is "
            '{"head": head, "sig": sig, "body": body}. The events of one log are in order.'
        ),
        "events": events,
    }


class _Raw(str):
    """A value written into a head exactly as given (e.g. ``1e0``)."""


def _head_text(**fields: Any) -> str:
    """Compact head text from fields given in order (values already JSON-ready)."""
    return (
        "{"
        + ",".join(
            f'"{k}":{v if isinstance(v, _Raw) else json.dumps(v)}' for k, v in fields.items()
        )
        + "}"
    )


def _fields(key: SigningKey = MEMBER, body: str | None = '{"a":1}', **over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "v": 1,
        "pod": HOME_POD,
        "author": key.public_b64,
        "scope": "public",
        "seq": 1,
        "prev": None,
        "ts": T0,
        "kind": "test.event",
        "body_hash": None if body is None else sha256_b64(body.encode("utf-8")),
        "body_size": 0 if body is None else len(body.encode("utf-8")),
    }
    fields.update(over)
    return fields


def build_invalid() -> dict[str, Any]:
    """Envelopes every node must refuse, with the exact reason."""
    cases: list[dict[str, Any]] = []

    def case(name: str, envelope: Any, reason: str, source: str = "client") -> None:
        cases.append({"name": name, "envelope": envelope, "source": source, "reason": reason})

    def head_case(name: str, head: str, reason: str, body: str | None = '{"a":1}') -> None:
        case(name, _signed(MEMBER, head, body), reason)

    good_body = '{"a":1}'
    good = _head_text(**_fields())
    good_env = _signed(MEMBER, good, good_body)
    sig = good_env["sig"]

    # --- the envelope ----------------------------------------------------------------------
    case("envelope-not-json", '{"head": ', "invalid:envelope:json")
    case("envelope-trailing-data", json.dumps(good_env) + " x", "invalid:envelope:json")
    case("envelope-bom", "\ufeff" + json.dumps(good_env), "invalid:envelope:json")
    case("envelope-nan", '{"head": NaN, "sig": "", "body": null}', "invalid:envelope:json")
    case(
        "envelope-lone-surrogate",
        '{"head": ' + json.dumps(good) + f', "sig": "{sig}", "body": "\\ud800"}}',
        "invalid:envelope:json",
    )
    case("envelope-not-object", "[]", "invalid:envelope:not-object")
    case("envelope-missing-body", {"head": good, "sig": sig}, "invalid:envelope:missing:body")
    case("envelope-missing-head", {"sig": sig, "body": None}, "invalid:envelope:missing:head")
    case(
        "envelope-unknown-member",
        {**good_env, "id": sha256_b64(good.encode())},
        "invalid:envelope:unknown-field",
    )
    case(
        "envelope-head-not-string",
        {**good_env, "head": json.loads(good)},
        "invalid:envelope:field:head",
    )
    case("envelope-body-not-string", {**good_env, "body": {"a": 1}}, "invalid:envelope:field:body")
    case(
        "envelope-duplicate-body",
        json.dumps(good_env)[:-1] + ', "body": null}',
        "invalid:envelope:json:duplicate-key",
    )
    case(
        "envelope-duplicate-head-escaped",
        json.dumps(good_env)[:-1] + ', "h\\u0065ad": ' + json.dumps(good) + "}",
        "invalid:envelope:json:duplicate-key",
    )

    # --- the head: strict JSON -------------------------------------------------------------
    head_case("head-not-json", good[:-1], "invalid:head:json")
    head_case("head-bom", "\ufeff" + good, "invalid:head:json")
    head_case("head-trailing-data", good + "{}", "invalid:head:json")
    head_case(
        "head-lone-surrogate", good.replace('"test.event"', '"test.\\ud800"'), "invalid:head:json"
    )
    head_case("head-not-object", "[" + good + "]", "invalid:head:not-object")
    head_case("head-duplicate-key", good[:-1] + ',"seq":1}', "invalid:head:json:duplicate-key")
    head_case(
        "head-duplicate-key-escaped",
        good[:-1] + ',"\\u0073eq":1}',
        "invalid:head:json:duplicate-key",
    )
    head_case(
        "head-duplicate-key-same-value",
        good.replace('"v":1,', '"v":1,"v":1,'),
        "invalid:head:json:duplicate-key",
    )

    # --- the head: fields ------------------------------------------------------------------
    for field in _fields():
        fields = _fields()
        del fields[field]
        head_case(f"head-missing-{field}", _head_text(**fields), f"invalid:head:missing:{field}")
    head_case("head-unknown-field", _head_text(**_fields(), id="x"), "invalid:head:unknown-field")
    bad_values: list[tuple[str, str, Any]] = [
        ("v-2", "v", 2),
        ("v-string", "v", "1"),
        ("seq-zero", "seq", 0),
        ("seq-negative", "seq", -1),
        ("seq-float", "seq", 1.0),
        ("seq-bool", "seq", True),
        ("seq-beyond-2^53", "seq", 2**53 + 1),
        ("ts-negative", "ts", -1),
        ("ts-float", "ts", T0 + 0.5),
        ("ts-exponent", "ts", _Raw("17e11")),
        ("ts-beyond-2^53", "ts", 2**53 + 1),
        ("pod-short", "pod", HOME_POD[:-1]),
        ("pod-padded", "pod", HOME_POD + "="),
        ("pod-standard-alphabet", "pod", "+" + HOME_POD[1:]),
        ("pod-spare-bits", "pod", HOME_POD[:-1] + "B"),
        ("pod-trailing-newline", "pod", HOME_POD + "\n"),
        ("author-spare-bits", "author", MEMBER.public_b64[:-1] + "B"),
        ("scope-unknown", "scope", "world"),
        ("kind-uppercase", "kind", "Test.event"),
        ("kind-one-part", "kind", "test"),
        ("kind-trailing-dot", "kind", "test.event."),
        ("kind-too-long", "kind", "a." + "b" * 63),
        ("body_hash-spare-bits", "body_hash", sha256_b64(b"x")[:-1] + "B"),
        ("body_size-beyond-limit", "body_size", MAX_BODY_BYTES + 1),
        ("body_size-negative", "body_size", -1),
    ]
    for name, field, value in bad_values:
        head_case(
            f"head-{name}", _head_text(**_fields(**{field: value})), f"invalid:head:field:{field}"
        )
    prev_id = sha256_b64(b"an earlier event")
    head_case(
        "head-prev-non-canonical",
        _head_text(**_fields(seq=2, prev=prev_id[:-1] + "B")),
        "invalid:head:field:prev",
    )
    head_case("head-prev-on-seq-1", _head_text(**_fields(prev=prev_id)), "invalid:head:prev")
    head_case("head-no-prev-on-seq-2", _head_text(**_fields(seq=2)), "invalid:head:prev")
    head_case(
        "head-body_hash-without-size", _head_text(**_fields(body_size=0)), "invalid:head:body_size"
    )
    head_case(
        "head-size-without-body_hash",
        _head_text(**_fields(body=None, body_size=7)),
        "invalid:head:body_size",
        body=None,
    )
    head_case(
        "head-too-large",
        _head_text(**_fields()) + " " * (MAX_HEAD_BYTES - len(good) + 1),
        "too-large",
    )

    # --- the signature ---------------------------------------------------------------------
    case("sig-short", {**good_env, "sig": sig[:-2]}, "invalid:sig:encoding")
    case("sig-padded", {**good_env, "sig": sig + "=="}, "invalid:sig:encoding")
    case("sig-standard-alphabet", {**good_env, "sig": "+" + sig[1:]}, "invalid:sig:encoding")
    case("sig-spare-bits", {**good_env, "sig": sig[:-1] + "B"}, "invalid:sig:encoding")
    case(
        "sig-by-another-key", {**good_env, "sig": _signed(OTHER, good, None)["sig"]}, "invalid:sig"
    )
    case("sig-over-reformatted-head", {**good_env, "head": good.replace(",", ", ")}, "invalid:sig")
    raw = b64d(sig)
    s_plus_l = (int.from_bytes(raw[32:], "little") + L).to_bytes(32, "little")
    case("sig-s-plus-l", {**good_env, "sig": b64e(raw[:32] + s_plus_l)}, "invalid:sig")

    # --- the source (this node: home pod HOME_POD, clock NOW_MS) ----------------------------
    other_pod = _head_text(**_fields(pod=PEER_POD, scope="pod"))
    case("client-pod-scope-other-pod", _signed(MEMBER, other_pod, good_body), "out-of-scope")
    other_peers = _head_text(**_fields(pod=PEER_POD, scope="peers"))
    case("client-peers-scope-other-pod", _signed(MEMBER, other_peers, good_body), "out-of-scope")
    for name, ts in (
        ("client-ts-too-old", NOW_MS - 600_001),
        ("client-ts-ahead", NOW_MS + 600_001),
    ):
        case(name, _signed(MEMBER, _head_text(**_fields(ts=ts)), good_body), "invalid:ts:skew")
    pod_scope = _head_text(**_fields(scope="pod"))
    case("peer-pod-scope", _signed(MEMBER, pod_scope, good_body), "out-of-scope", "peer")
    home_peers = _head_text(**_fields(scope="peers"))
    case(
        "peer-peers-scope-not-its-pod",
        _signed(MEMBER, home_peers, good_body),
        "out-of-scope",
        "peer",
    )

    # --- the body --------------------------------------------------------------------------
    def body_case(name: str, body: str, reason: str, **over: Any) -> None:
        case(name, _signed(MEMBER, _head_text(**_fields(body=body, **over)), body), reason)

    case(
        "body-unexpected",
        _signed(MEMBER, _head_text(**_fields(body=None)), good_body),
        "invalid:body:unexpected",
    )
    case("body-hash-mismatch", {**good_env, "body": '{"a":2}'}, "invalid:body:hash")
    case("body-size-mismatch", {**good_env, "body": '{"a": 1}'}, "invalid:body:hash")
    body_case("body-duplicate-key", '{"a":1,"a":1}', "invalid:body:json:duplicate-key")
    body_case(
        "body-duplicate-key-nested",
        '{"a":[{"b":1,"\\u0062":2}]}',
        "invalid:body:json:duplicate-key",
    )
    body_case("body-int-beyond-2^53", '{"a":9007199254740993}', "invalid:body:json:int-range")
    body_case("body-nan", '{"a":NaN}', "invalid:body:json:number")
    body_case("body-infinity", '{"a":-Infinity}', "invalid:body:json:number")
    body_case("body-number-overflow", '{"a":1e400}', "invalid:body:json:number")
    body_case("body-lone-surrogate", '{"a":"\\udc00"}', "invalid:body:json:surrogate")
    body_case("body-bom", '\ufeff{"a":1}', "invalid:body:json:bom")
    body_case("body-trailing-data", '{"a":1} 1', "invalid:body:json:malformed")
    body_case("body-not-json", "{a:1}", "invalid:body:json:malformed")
    body_case("body-not-object", "[1]", "invalid:body:not-object")
    big = '{"a":"' + "x" * (MAX_BODY_BYTES - 7) + '"}'
    case(
        "body-too-large",
        _signed(
            MEMBER,
            _head_text(
                **_fields(body=None, body_hash=sha256_b64(big.encode()), body_size=MAX_BODY_BYTES)
            ),
            big,
        ),
        "too-large",
    )
    body_case(
        "body-schema-client",
        '{"category":"food","urgency":"high"}',
        "invalid:body:missing:title",
        kind="need.posted",
    )
    return {
        "description": (
            "Envelopes a node must refuse. envelope: the JSON object to send, or (a string) the "
            "exact raw wire text. Check as a node whose home pod is home_pod and whose clock "
            "reads now_ms; source 'client' is the node's own client, 'peer' the direct peer "
            "node serving peer_pod. The node's ledger is empty and accepts every author. "
            "reason: the exact expected reason (the first failing check in DESIGN order)."
        ),
        "home_pod": HOME_POD,
        "peer_pod": PEER_POD,
        "now_ms": NOW_MS,
        "cases": cases,
    }


#: novifinancial/ed25519-speccheck cases.txt (the paper's cases 0-11): message, key, signature.
SPECCHECK: list[tuple[str, str, str, str]] = [
    (
        "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
        "0000000000000000000000000000000000000000000000000000000000000000",
        "S = 0, small-order A and small-order R: verifies under both equations, but A and R are "
        "of small order — refused",
    ),
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43"
        "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        "0 < S < L, small-order A, mixed-order R: verifies under both equations, but the public "
        "key is of small order — refused",
    ),
    (
        "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"
        "8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
        "0 < S < L, mixed-order A, small-order R: verifies under both equations, but R is of "
        "small order — refused",
    ),
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f"
        "87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
        "0 < S < L, mixed-order A and R, satisfying the cofactorless equation SB = R + kA: the one "
        "case every strict verifier accepts (mixed order is not rejected, only small order)",
    ),
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed512"
        "5ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
        "0 < S < L, mixed-order A and R, satisfying only the cofactored equation 8SB = 8R + 8kA: "
        "libsodium checks the cofactorless equation — refused",
    ),
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7"
        "e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
        "0 < S < L, mixed-order A, R of order L, satisfying only the cofactored equation (and "
        "failing it when 8k is pre-reduced mod L) — refused",
    ),
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e"
        "547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
        "S > L (S - L would verify): a malleated copy of a valid signature; S must be reduced, "
        "S < L — refused",
    ),
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa1942"
        "7e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
        "S >> L (the top bits of S set): only implementations that reduce S mod L accept it — "
        "refused",
    ),
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
        "mixed-order A, small-order R with a non-canonical encoding (y = p - 1 with the sign bit "
        "set for x = 0); accepted by implementations that reduce R before hashing — refused",
    ),
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "ca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
        "the same non-canonical small-order R, accepted by implementations that hash R as "
        "received — refused",
    ),
    (
        "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc"
        "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        "small-order public key A with a non-canonical encoding (y = p - 1, sign bit set for "
        "x = 0); accepted by implementations that reduce A before hashing — refused",
    ),
    (
        "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dc"
        "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        "the same non-canonical small-order A, accepted by implementations that hash A as "
        "received — refused",
    ),
]


def build_ed25519() -> dict[str, Any]:
    """The speccheck cases with libsodium's answer (through ``protocol.crypto.verify``)."""
    cases = []
    for number, (message, pub_key, signature, note) in enumerate(SPECCHECK):
        expected = verify(bytes.fromhex(pub_key), bytes.fromhex(signature), bytes.fromhex(message))
        cases.append(
            {
                "number": number,
                "message": message,
                "pub_key": pub_key,
                "signature": signature,
                "expected": expected,
                "note": note,
            }
        )
    return {
        "description": (
            "Ed25519 edge cases from Chalkias, Garillot, Nikolaenko: 'Taming the many EdDSAs' "
            "(SSR 2020), as published in novifinancial/ed25519-speccheck (cases.txt). All "
            "values hex. expected: what Kith's strict verification (libsodium "
            "crypto_sign_open: S < L, canonical A and R, small-order A and R refused, "
            "cofactorless equation) answers."
        ),
        "source": "https://github.com/novifinancial/ed25519-speccheck",
        "cases": cases,
    }


FILES: dict[str, Callable[[], dict[str, Any]]] = {
    "events.json": build_events,
    "invalid.json": build_invalid,
    "ed25519.json": build_ed25519,
}


def render(name: str) -> str:
    """The exact text of one vector file."""
    # invalid.json holds a BOM and control characters: keep it ASCII so they stay visible.
    return json.dumps(FILES[name](), indent=2, ensure_ascii=name != "events.json") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date files")
    args = parser.parse_args()
    stale = []
    for name in FILES:
        path = VECTORS / name
        text = render(name)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if args.check else "written"
    print(f"{verb}: {', '.join(stale) or 'none'}")
    sys.exit(1 if args.check and stale else 0)


if __name__ == "__main__":
    main()
