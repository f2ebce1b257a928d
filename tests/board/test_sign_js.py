"""The board's signer (node/board/sign.js), run under Node, writes the bytes Python writes.

Every event vector of protocol/vectors/events.json is re-signed in JavaScript from its seed and
fields; the head text, signature and id must be identical. Tokens are checked the same way
against ``make_token``, and a body with non-ASCII text against ``sign_event``.
"""

from __future__ import annotations

import json
from pathlib import Path

from protocol.crypto import SigningKey
from protocol.envelope import event_id, sign_event
from protocol.tokens import make_token
from tests.board.node_js import run_board_js

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "protocol" / "vectors" / "events.json"

RUNNER = """
import { signEvent, eventId, makeToken, publicKey, boxPublicKey } from "./sign.js";
const hex = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
let input = "";
for await (const chunk of process.stdin) input += chunk;
const cases = JSON.parse(input);
const out = { events: [], tokens: [], keys: [] };
for (const c of cases.events) {
  const h = JSON.parse(c.head);
  const env = signEvent(hex(c.seed), { ...h, body: c.body });
  out.events.push({ ...env, id: eventId(env.head) });
}
for (const t of cases.tokens) out.tokens.push(makeToken(hex(t.seed), t));
for (const k of cases.keys) out.keys.push([publicKey(hex(k)), boxPublicKey(hex(k))]);
process.stdout.write(JSON.stringify(out));
"""


def run_js(tmp_path: Path, cases: dict[str, object]) -> dict[str, list[object]]:
    """Run sign.js under Node with the vendored noble copies as its packages."""
    result: dict[str, list[object]] = run_board_js(
        tmp_path, RUNNER, cases, noble=("curves", "hashes"), files=("sign.js",)
    )
    return result


def test_js_signer_matches_python_byte_for_byte(tmp_path: Path) -> None:
    # One vector writes its head freely (any formatting is valid); the board writes compact heads.
    vectors = [
        v
        for v in json.loads(VECTORS.read_text())["events"]
        if v["head"] == json.dumps(json.loads(v["head"]), separators=(",", ":"))
    ]
    assert len(vectors) >= 5
    extra_seed = bytes(range(32, 64))
    extra = sign_event(
        SigningKey.from_seed(extra_seed),
        pod=SigningKey.from_seed(extra_seed).public_b64,
        scope="pod",
        seq=3,
        prev=vectors[0]["id"],
        ts=1700000000123,
        kind="need.posted",
        body='{"title":"Lebensmittel für Oma — 食料品 🍞","category":"groceries","urgency":"high"}',
    )
    events = [{"seed": v["seed"], "head": v["head"], "body": v["body"]} for v in vectors]
    events.append({"seed": extra_seed.hex(), "head": extra.head, "body": extra.body})
    member, node = bytes([1]) * 32, bytes([2]) * 32
    node_key = SigningKey.from_seed(node).public_b64
    tokens = [
        {
            "seed": member.hex(),
            "purpose": purpose,
            "nodeKey": node_key,
            "nowMs": 1700000000000,
            "ttlMs": ttl,
            "nonce": nonce,
        }
        for purpose, ttl, nonce in (
            ("http", 300000, "AAECAwQFBgcICQoLDA0ODw"),
            ("stream", 120000, "O1DB1WiVoiZeijNOU71h2g93"),
        )
    ]
    out = run_js(tmp_path, {"events": events, "tokens": tokens, "keys": [member.hex()]})

    expected = [*vectors, {"head": extra.head, "sig": extra.sig, "body": extra.body}]
    for want, got in zip(expected, out["events"], strict=True):
        assert isinstance(got, dict)
        assert got["head"] == want["head"]
        assert got["sig"] == want["sig"]
        assert got["body"] == want["body"]
        assert got["id"] == event_id(want["head"])
    for spec, got in zip(tokens, out["tokens"], strict=True):
        assert got == make_token(
            SigningKey.from_seed(member),
            purpose=str(spec["purpose"]),
            node_key=node_key,
            now_ms=1700000000000,
            ttl_ms=int(str(spec["ttlMs"])),
            nonce=str(spec["nonce"]),
        )
    assert out["keys"][0] == [
        SigningKey.from_seed(member).public_b64,
        _box_public(member),
    ]


def _box_public(secret: bytes) -> str:
    from nacl.public import PrivateKey

    from protocol.codec import b64e

    return b64e(bytes(PrivateKey(secret).public_key))
