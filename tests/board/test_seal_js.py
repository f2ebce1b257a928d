"""The board's sealer (node/board/seal.js), run under Node, writes and reads what Python does.

The worked example of docs/protocol.md §14 is rebuilt byte for byte from injected random bytes;
Python's protocol/sealed.py opens what JavaScript sealed, and JavaScript opens what Python
sealed; a field that is not ours, altered, bound to another place or malformed opens to null.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from protocol.codec import b64e
from protocol.sealed import (
    SealedField,
    box_keypair_from_seed,
    field_aad,
    open_sealed,
    seal,
)
from tests.board.node_js import run_board_js

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_MD = ROOT / "docs" / "protocol.md"

ALICE = box_keypair_from_seed(bytes([0x44]) * 32)
BOB = box_keypair_from_seed(bytes([0x55]) * 32)
MALLORY = box_keypair_from_seed(bytes([0x77]) * 32)
AAD = "need.posted/personal"
TEXT = '{"address":"Calle Mayor 3, 2º izq.","phone":"+34 600 000 000","notes":"timbre 🔔"}'

RUNNER = """
import { seal, open, fieldAad } from "./seal.js";
const hex = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
let input = "";
for await (const chunk of process.stdin) input += chunk;
const cases = JSON.parse(input);
const out = { sealed: [], opened: [], errors: [], aad: fieldAad("need.posted", "personal") };
for (const c of cases.seal) {
  const queue = (c.rng || []).map(hex);
  const rng = c.rng ? (n) => queue.shift() : undefined;
  out.sealed.push(JSON.stringify(seal(c.text, c.to, c.aad, rng)));
}
for (const c of cases.open) out.opened.push(open(c.sealed, hex(c.secret), c.key, c.aad));
for (const c of cases.bad) {
  try { seal("x", c.to); out.errors.push(null); } catch (e) { out.errors.push(String(e.message)); }
}
process.stdout.write(JSON.stringify(out));
"""


def run_js(tmp_path: Path, cases: dict[str, object]) -> dict[str, Any]:
    """Run seal.js under Node with the vendored noble copies as its packages."""
    result: dict[str, Any] = run_board_js(
        tmp_path, RUNNER, cases, noble=("curves", "hashes", "ciphers"), files=("sign.js", "seal.js")
    )
    return result


def queue_rng(*chunks: bytes) -> Callable[[int], bytes]:
    pending = list(chunks)
    return lambda size: pending.pop(0)


def doc_example() -> str:
    """The sealed JSON of §14's example, as the document prints it (line breaks removed)."""
    text = PROTOCOL_MD.read_text()
    section = text[text.index("## 14. Sealed fields") : text.index("## 15.")]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None
    return "".join(line.strip() for line in block.group(1).splitlines())


VECTOR_RNG = (bytes([0x11]) * 32, bytes([0x22]) * 12, bytes([0x33]) * 32)


def test_seal_js_matches_python_and_the_spec(tmp_path: Path) -> None:
    keys = [b64e(ALICE[1]), b64e(BOB[1])]
    rng_hex = [b.hex() for b in VECTOR_RNG]
    py_sealed = seal(TEXT.encode(), [ALICE[1], BOB[1]], aad=field_aad("need.posted", "personal"))
    tampered = msgspec.to_builtins(py_sealed)
    tampered["ct"] = b64e(bytes(16)) if tampered["ct"][0] != "A" else b64e(b"\x01" * 16)
    extra = {**msgspec.to_builtins(py_sealed), "from": "someone"}
    py_obj = msgspec.to_builtins(py_sealed)
    cases = {
        "seal": [
            {"text": '{"street":"12 Elm Street"}', "to": keys, "aad": "", "rng": rng_hex},
            {"text": TEXT, "to": keys, "aad": AAD, "rng": rng_hex},
            {"text": TEXT, "to": keys, "aad": AAD},  # real randomness
        ],
        "open": [
            {"sealed": py_obj, "secret": ALICE[0].hex(), "key": keys[0], "aad": AAD},
            {"sealed": py_obj, "secret": BOB[0].hex(), "key": None, "aad": AAD},
            {"sealed": py_obj, "secret": ALICE[0].hex(), "key": keys[0], "aad": "x/y"},
            {"sealed": py_obj, "secret": MALLORY[0].hex(), "key": b64e(MALLORY[1]), "aad": AAD},
            {"sealed": tampered, "secret": ALICE[0].hex(), "key": keys[0], "aad": AAD},
            {"sealed": extra, "secret": ALICE[0].hex(), "key": keys[0], "aad": AAD},
            {"sealed": {"alg": "nope"}, "secret": ALICE[0].hex(), "key": keys[0], "aad": AAD},
            {"sealed": "text", "secret": ALICE[0].hex(), "key": keys[0], "aad": AAD},
        ],
        "bad": [
            {"to": []},
            {"to": [keys[0], keys[0]]},
            {"to": ["short"]},
            {"to": [b64e(bytes(32))]},  # small order: all-zero shared secret
        ],
    }
    out = run_js(tmp_path, cases)
    assert out["aad"] == AAD

    # §14's example, byte for byte, and the same as Python's with the same random bytes.
    spec_js, bound_js, random_js = (str(s) for s in out["sealed"])
    assert spec_js == doc_example()
    py_spec = seal(b'{"street":"12 Elm Street"}', [ALICE[1], BOB[1]], rng=queue_rng(*VECTOR_RNG))
    assert spec_js == msgspec.json.encode(py_spec).decode()
    py_bound = seal(TEXT.encode(), [ALICE[1], BOB[1]], aad=AAD.encode(), rng=queue_rng(*VECTOR_RNG))
    assert bound_js == msgspec.json.encode(py_bound).decode()

    # Python opens what JavaScript sealed (with fresh randomness), for each recipient only.
    field = msgspec.json.decode(random_js, type=SealedField)
    assert [r.key for r in field.to] == keys
    assert open_sealed(field, ALICE[0], aad=AAD.encode()).decode() == TEXT
    assert open_sealed(field, BOB[0], aad=AAD.encode()).decode() == TEXT
    assert field.nonce != b64e(VECTOR_RNG[1])

    # JavaScript opens what Python sealed; anything else is null, never an exception.
    assert out["opened"] == [TEXT, TEXT, None, None, None, None, None, None]

    errors = out["errors"]
    assert all(isinstance(e, str) for e in errors), errors
    assert "recipients" in str(errors[0])
    assert "twice" in str(errors[1])
    assert "small-order" in str(errors[3])
