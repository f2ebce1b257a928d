"""Protocol hot path: full validation rate against the raw Ed25519 verify rate.

    .venv/bin/python bench/protocol_bench.py [--events N] [--rounds R]     (or: make bench)

Pre-signs N (default 20,000) realistic events — mixed kinds with small JSON bodies, several
authors and logs, chained seq/prev — as encoded envelope bytes, then measures

(a) the rate of ``protocol.crypto.verify`` on the same (public key, sig, head bytes) tuples;
(b) the rate of ``protocol.validate.validate`` on the envelope bytes — decode_envelope,
    parse_event, check_source, verify_event, check_body, check_chain and validate_body —
    against an in-memory ledger whose log heads advance as the events are appended.

The ratio (b)/(a) is the share of the per-event time that is the signature check itself;
the target is at least 0.85. Like ``timeit``, the timed loops run with the garbage collector
off; (a) and (b) alternate, and the best of R rounds of each counts.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable

from protocol.codec import b64d
from protocol.crypto import SigningKey, sha256_b64, verify
from protocol.envelope import (
    Event,
    Scope,
    decode_envelope,
    encode_envelope,
    parse_event,
    sign_event,
)
from protocol.logs import LogKey, LogState
from protocol.validate import CLIENT, Authorization, Outcome, validate

TARGET_RATIO = 0.85
BASE_TS = 1_760_000_000_000
KINDS = ("need.posted", "offer.posted", "claim.made", "hours.logged", "vote.cast", "profile.set")
SCOPES: tuple[Scope, ...] = ("pod", "peers", "public")


class MemoryLedger:
    """What validation asks of a node, in memory: ids, log heads, a roster admitting all."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.heads: dict[tuple[str, str, str], LogState] = {}

    def known(self, event_id: str) -> bool:
        return event_id in self.ids

    def log_state(self, log: LogKey) -> LogState | None:
        return self.heads.get(log)

    def authorize(self, event: Event) -> Authorization:
        return Authorization.YES

    def append(self, event: Event) -> None:
        head = event.head
        self.ids.add(event.id)
        self.heads[event.log] = LogState(head.seq, event.id, head.ts)


def _body(kind: str, rng: random.Random, ids: list[str], keys: list[str]) -> dict[str, object]:
    ref = rng.choice(ids) if ids else sha256_b64(b"first")
    if kind == "need.posted":
        return {
            "title": rng.choice(["Soup for two", "Lift to the clinic", "Fix a leaking tap"]),
            "category": rng.choice(["food", "ride", "repair"]),
            "urgency": rng.choice(["low", "normal", "high"]),
            "area": "Elm Street",
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


def make_events(count: int, authors: int = 8, seed: int = 7) -> tuple[str, list[bytes]]:
    """The home pod and ``count`` chained events of mixed kinds as wire envelopes."""
    rng = random.Random(seed)
    pod = SigningKey.from_seed(bytes([1]) * 32).public_b64
    signers = [SigningKey.from_seed(bytes([i + 2]) * 32) for i in range(authors)]
    keys = [k.public_b64 for k in signers]
    heads: dict[tuple[str, str], tuple[int, str]] = {}
    ids: list[str] = []
    wire: list[bytes] = []
    for i in range(count):
        key = rng.choice(signers)
        scope = rng.choice(SCOPES)
        kind = rng.choice(KINDS)
        seq, prev = heads.get((key.public_b64, scope), (0, None))
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
        wire.append(encode_envelope(env))
    return pod, wire


def best_times(rounds: int, *runs: Callable[[], None]) -> list[float]:
    """The fastest of ``rounds`` timings of each run; runs alternate, the collector is off.

    Alternating keeps a change in machine load from favouring one side of the ratio.
    """
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for index, run in enumerate(runs):
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                run()
                best[index] = min(best[index], time.perf_counter() - start)
            finally:
                gc.enable()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    print(f"signing {args.events:,} events ...", flush=True)
    pod, wire = make_events(args.events)
    now_ms = BASE_TS + args.events * 5  # every event's ts is within the client clock skew
    tuples = []
    for data in wire:
        event = parse_event(decode_envelope(data))
        tuples.append((b64d(event.head.author), event.sig, event.head_bytes))

    def verify_all() -> None:
        for public_key, sig, head_bytes in tuples:
            if not verify(public_key, sig, head_bytes):
                raise SystemExit("a pre-signed event failed to verify")

    def validate_all() -> None:
        ledger = MemoryLedger()
        for data in wire:
            verdict = validate(data, CLIENT, ledger, now_ms=now_ms, home_pod=pod)
            if verdict.outcome is not Outcome.ACCEPT or verdict.event is None:
                raise SystemExit(f"not accepted: {verdict.reason} {verdict.message}")
            ledger.append(verdict.event)

    verify_time, validate_time = best_times(args.rounds, verify_all, validate_all)
    verify_rate, validate_rate = args.events / verify_time, args.events / validate_time
    ratio = validate_rate / verify_rate
    print(f"(a) raw Ed25519 verify : {verify_rate:9,.0f} /s   {1e6 / verify_rate:6.1f} µs")
    print(f"(b) full validate      : {validate_rate:9,.0f} /s   {1e6 / validate_rate:6.1f} µs")
    status = "ok" if ratio >= TARGET_RATIO else "below target"
    print(f"    ratio (b)/(a)      : {ratio:9.3f}  (target ≥ {TARGET_RATIO}: {status})")


if __name__ == "__main__":
    main()
