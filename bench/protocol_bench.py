"""Protocol hot-path benchmark: full validation rate against raw Ed25519 verify rate.

Pre-signs 20,000 realistic events (mixed kinds with small JSON bodies, several authors and
logs, chained seq/prev) as encoded envelope bytes, then measures

(a) the raw rate of ``protocol.crypto.verify`` on the same (public key, sig, head bytes), and
(b) the rate of a full ``protocol.validate.validate`` (decode_envelope → parse_event →
    check_source → verify → check_body → check_chain → validate_body) against an in-memory
    ledger whose log heads advance as events are appended.

The ratio (b)/(a) says how much of the per-event budget goes to everything but the
signature check; the target is ≥ 0.85. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from dataclasses import dataclass, field

from protocol.codec import b64d
from protocol.crypto import SigningKey, sha256_b64, verify
from protocol.envelope import Event, Scope, encode_envelope, sign_event
from protocol.logs import LogKey, LogState
from protocol.validate import CLIENT, Authorization, Outcome, validate

TARGET_RATIO = 0.85
BASE_TS = 1_760_000_000_000


@dataclass
class MemoryLedger:
    """The node's knowledge as validation sees it: ids, log heads, everyone authorized."""

    ids: set[str] = field(default_factory=set)
    heads: dict[LogKey, LogState] = field(default_factory=dict)

    def known(self, event_id: str) -> bool:
        return event_id in self.ids

    def log_state(self, log: LogKey) -> LogState | None:
        return self.heads.get(log)

    def authorize(self, event: Event) -> Authorization:
        return Authorization.YES

    def append(self, event: Event) -> None:
        self.ids.add(event.id)
        self.heads[LogKey(*event.log)] = LogState(event.head.seq, event.id, event.head.ts)


def _body(kind: str, rng: random.Random, ids: list[str], keys: list[str]) -> dict[str, object]:
    ref = rng.choice(ids) if ids else sha256_b64(b"seed")
    if kind == "need.posted":
        return {
            "title": rng.choice(["Soup for two", "Lift to the clinic", "Fix a leaking tap"]),
            "category": rng.choice(["food", "ride", "repair"]),
            "urgency": rng.choice(["low", "normal", "high"]),
            "area": "Elm St",
            "minutes_estimate": rng.randint(15, 180),
        }
    if kind == "offer.posted":
        start = BASE_TS + rng.randint(0, 10**8)
        return {
            "title": "Cooking on weekends",
            "category": "food",
            "windows": [{"start": start, "end": start + 3_600_000}],
            "capacity": rng.randint(1, 5),
        }
    if kind == "claim.made":
        return {"need": ref, "note": "I can come by after 5 — Ana"}
    if kind == "hours.logged":
        giver, receiver = rng.sample(keys, 2)
        return {"giver": giver, "receiver": receiver, "minutes": rng.randint(10, 240), "need": ref}
    if kind == "vote.cast":
        return {"proposal": ref, "option": rng.randint(0, 3)}
    return {"name": "Ana", "pronouns": "she/her", "about": "Bakes bread on Saturdays 🍞"}


def make_events(count: int, authors: int = 8, seed: int = 7) -> list[bytes]:
    """Sign ``count`` chained events of mixed kinds as wire envelopes (deterministic)."""
    rng = random.Random(seed)
    root = SigningKey.from_seed(bytes([1]) * 32)
    pod = root.public_b64
    signers = [SigningKey.from_seed(bytes([i + 2]) * 32) for i in range(authors)]
    keys = [k.public_b64 for k in signers]
    kinds = ["need.posted", "offer.posted", "claim.made", "hours.logged", "vote.cast", "profile.set"]
    scopes: tuple[Scope, ...] = ("pod", "peers", "public")
    heads: dict[tuple[str, str], tuple[int, str]] = {}
    ids: list[str] = []
    out: list[bytes] = []
    for i in range(count):
        key = rng.choice(signers)
        scope = rng.choice(scopes)
        seq, prev = heads.get((key.public_b64, scope), (0, None))
        kind = rng.choice(kinds)
        env = sign_event(
            key,
            pod=pod,
            scope=scope,
            seq=seq + 1,
            prev=prev,
            ts=BASE_TS + i * 10,
            kind=kind,
            body=_body(kind, rng, ids[-50:], keys),
        )
        event_id = sha256_b64(env.head.encode())
        heads[(key.public_b64, scope)] = (seq + 1, event_id)
        ids.append(event_id)
        out.append(encode_envelope(env))
    return out


def bench(count: int, rounds: int) -> float:
    print(f"signing {count} events ...", flush=True)
    wire = make_events(count)
    root_pod = SigningKey.from_seed(bytes([1]) * 32).public_b64
    now_ms = BASE_TS + count * 5  # every ts within the client skew window
    tuples = []
    import msgspec  # the bench may peek into the envelopes it made

    for data in wire:
        env = msgspec.json.decode(data)
        head_bytes = env["head"].encode()
        author = msgspec.json.decode(head_bytes)["author"]
        tuples.append((b64d(author), b64d(env["sig"]), head_bytes))

    best_verify = best_validate = 0.0
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        start = time.perf_counter()
        for pub, sig, msg in tuples:
            if not verify(pub, sig, msg):
                raise SystemExit("a pre-signed event failed to verify")
        best_verify = max(best_verify, count / (time.perf_counter() - start))
        gc.enable()

        ledger = MemoryLedger()
        gc.collect()
        gc.disable()
        start = time.perf_counter()
        for data in wire:
            verdict = validate(data, CLIENT, ledger, now_ms=now_ms, home_pod=root_pod)
            if verdict.outcome is not Outcome.ACCEPT:
                raise SystemExit(f"event not accepted: {verdict.reason} {verdict.message}")
            ledger.append(verdict.event)  # type: ignore[arg-type]
        best_validate = max(best_validate, count / (time.perf_counter() - start))
        gc.enable()

    ratio = best_validate / best_verify
    print(f"(a) raw Ed25519 verify      : {best_verify:10,.0f} /s")
    print(f"(b) full validate           : {best_validate:10,.0f} events/s")
    print(f"    ratio (b)/(a)           : {ratio:10.3f}  (target ≥ {TARGET_RATIO})")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ratio = bench(args.events, args.rounds)
    sys.exit(0 if ratio >= TARGET_RATIO else 1)


if __name__ == "__main__":
    main()
