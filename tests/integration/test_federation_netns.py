"""Federation under partitions (issue 6, test c): five real nodes in network namespaces.

Five `kith serve` processes, each its own pod in its own lab host, joined in a ring
h0–h1–h2–h3–h4–h0 with a chord h0–h2: public events travel several hops and arrive by several
paths (so they must be deduplicated), and some pairs are not neighbours (so they must never see
each other's `peers` events). Every member posts `public`, `peers` and `pod` needs to its own
node over the management path while a seeded random schedule cuts and heals links (at most two
at once, so the lab is sometimes partitioned; a quarter of the cuts silent, stalling connections
rather than aborting them). Then everything is healed and, within a bounded time:

- every pair holds the same public events; neighbours hold exactly each other's `peers` events,
  other pairs none; no node holds another pod's `pod` events; no node holds an event twice;
- every link is live again with no lag; nothing is held back, forked or rejected; each event of
  another pod was received as new exactly once;
- the same projection hash over the events both may hold: each node's public events — and for
  neighbours also both pods' `peers` events — in its own commit order, `kith import`ed into a
  fresh offline node and hashed by `kith verify`.

The seed is printed and attached to any failure; KITH_CHAOS_SEED=<seed> replays its schedule
(the choices, not the timing).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest

from node.cli import main
from node.datadir import DataDir, read_key_file
from protocol.envelope import decode_envelope, encode_envelope, parse_event
from protocol.tokens import make_token
from tests.integration.conftest import Poster
from tests.integration.netns import KithHost, NetLab, require_netns

pytestmark = pytest.mark.netns

HOSTS = 5
LINKS = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4), (0, 2)]  # a ring plus a chord
CHAOS_S = 16.0  # posting everywhere while links are cut and healed
FLIP_EVERY_S = (0.5, 2.0)  # between two cut-or-heal steps
MAX_CUT = 2  # links cut at once (two can partition the lab)
SILENT = 0.25  # the share of cuts that leave connections to stall instead of aborting them
POST_EVERY_S = 0.02
CONVERGE_S = 60.0
#: Rejection reasons a peer may legitimately report in this test: none. Every node sends only
#: what its peer may hold, in causal order, so even a duplicate counts as accepted.
EXPECTED_REJECTIONS: frozenset[str] = frozenset()

T = TypeVar("T")


class _Wire(msgspec.Struct):
    id: str
    cursor: int
    envelope: msgspec.Raw


class _Page(msgspec.Struct):
    events: list[_Wire]
    next: int | None


_page = msgspec.json.Decoder(_Page)


@dataclass(frozen=True)
class Held:
    """One stored event as a node serves it: where it belongs and its exact envelope."""

    id: str
    pod: str
    scope: str
    envelope: bytes


@dataclass
class Site:
    """One lab host's node, its pod, and its member's posters and posted event ids by scope."""

    host: KithHost
    pod: str
    posted: dict[str, list[str]] = field(
        default_factory=lambda: {"public": [], "peers": [], "pod": []}
    )
    posters: dict[str, Poster] = field(default_factory=dict)


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls concurrently (each mostly waits on a `kith` subprocess); their results."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]


def cli(*args: str) -> str:
    """Run the real `kith` command in this process (its own entry point, without the
    second of interpreter start-up a subprocess costs); what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert code == 0, f"kith {' '.join(args)} failed ({code}): {err.getvalue()}"
    return out.getvalue()


def fed_url(host: KithHost, dialler: int) -> str:
    """The federation URL of ``host`` as lab host ``dialler`` reaches it."""
    return host.url_from(dialler).replace("http://", "ws://", 1) + "/v1/federation"


def node_token(host: KithHost) -> str:
    key = read_key_file(host.dir / "node.key").signing_key()
    return make_token(key, purpose="http", node_key=key.public_b64, now_ms=int(time.time() * 1000))


def held(http: httpx.Client, host: KithHost) -> list[Held]:
    """Every event the node holds (as its node key reads them), in its commit order."""
    out: list[Held] = []
    after = 0
    headers = {"authorization": "Kith " + node_token(host)}
    while True:
        r = http.get(
            host.url + "/v1/events", params={"after": after, "limit": 10_000}, headers=headers
        )
        r.raise_for_status()
        page = _page.decode(r.content)
        for w in page.events:
            head = parse_event(decode_envelope(bytes(w.envelope))).head
            out.append(Held(w.id, head.pod, head.scope, bytes(w.envelope)))
        if page.next is None:
            return out
        after = page.next


def info(http: httpx.Client, host: KithHost) -> dict[str, Any]:
    r = http.get(host.url + "/.well-known/kith")
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def neighbours(i: int) -> set[int]:
    return {b if a == i else a for a, b in LINKS if i in (a, b)}


def init_and_start(host: KithHost) -> None:
    host.init(f"Pod {host.index}")
    host.start(wait=False)


def add_member(site: Site, key_path: Path) -> None:
    """A new member of the site's pod (`kith key new`, `kith member add`), posting in three logs."""
    cli("key", "new", "--out", str(key_path))
    host = site.host
    cli("member", "add", "--key-file", str(key_path), "--dir", str(host.dir), "--url", host.url)
    key = read_key_file(key_path).signing_key()
    for scope in ("public", "peers", "pod"):
        site.posters[scope] = Poster(host.url, key, site.pod, scope)


def post_need(http: httpx.Client, poster: Poster, title: str) -> str:
    env = poster.sign("need.posted", {"title": title, "category": "food", "urgency": "normal"})
    r = http.post(poster.url + "/v1/events", content=encode_envelope(env))
    r.raise_for_status()
    (result,) = r.json()["results"]
    assert result["ok"] and result.get("reason") is None, result
    return str(result["id"])


def scratch_hash(data: Path, envelopes: list[bytes]) -> str:
    """The projection hash of exactly these events: `kith import` them into a fresh node
    (offline), then `kith verify` it."""
    cli("init", "--dir", str(data), "--name", data.name, "--port", "8470")
    dump = data.with_name(data.name + ".jsonl")
    dump.write_bytes(b"".join(e + b"\n" for e in envelopes))
    done = cli("import", "--dir", str(data), "--quiet", str(dump))
    assert done.strip().endswith(f"stored: {len(envelopes)}"), done
    report = cli("verify", "--dir", str(data))
    assert report.strip().endswith("OK"), report
    (line,) = [x for x in report.splitlines() if x.startswith("projection hash:")]
    return line.split()[-1]


def test_five_nodes_converge_after_random_cuts_and_heals(tmp_path: Path) -> None:
    require_netns()
    seed = int(os.environ.get("KITH_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"chaos seed {seed}")
    try:
        chaos_and_convergence(tmp_path, seed)
    except BaseException as failure:
        failure.add_note(f"chaos seed {seed}: KITH_CHAOS_SEED={seed} replays its schedule")
        raise


def chaos_and_convergence(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    schedule: list[str] = []  # what the chaos did, for the failure message
    scratch = tmp_path / "scratch"  # offline nodes that recompute projections
    scratch.mkdir()
    t0 = time.monotonic()

    with NetLab(HOSTS) as lab, httpx.Client(trust_env=False, timeout=30) as http:
        for a, b in LINKS:
            lab.link(a, b)
        hosts = [KithHost(lab, i, tmp_path / f"n{i}") for i in range(HOSTS)]
        at_once(*(partial(init_and_start, h) for h in hosts))
        pods = [DataDir(h.dir).config().pod for h in hosts]
        sites = [Site(h, p) for h, p in zip(hosts, pods, strict=True)]
        for h in hosts:
            h.wait_ready()
        # Both sides list each other, each by the address it reaches the other at; the
        # running nodes pick the allowlist up within a second and dial.
        for i, h in enumerate(hosts):
            for j in sorted(neighbours(i)):
                url = fed_url(hosts[j], i)
                cli("peer", "add", url, "--pod", pods[j], "--insecure", "--dir", str(h.dir))
        for i, site in enumerate(sites):
            add_member(site, tmp_path / f"m{i}.key")

        def status() -> str:
            """Every node's federation status, and what the chaos did (for failures)."""
            lines = [f"chaos seed {seed}"]
            for i, h in enumerate(hosts):
                try:
                    fed = info(http, h)["federation"]
                except httpx.HTTPError as exc:
                    lines.append(f"h{i}: {exc!r}")
                    continue
                lines.append(f"h{i} {pods[i][:8]} counters={fed['counters']}")
                for p in fed["peers"]:
                    lines.append(f"  → h{pods.index(p['pod'])}: {json.dumps(p, sort_keys=True)}")
            return "\n".join([*lines, "schedule: " + "; ".join(schedule)])

        def all_live() -> bool:
            for i, h in enumerate(hosts):
                peers = info(http, h)["federation"]["peers"]
                if len(peers) != len(neighbours(i)) or any(p["state"] != "live" for p in peers):
                    return False
            return True

        wait_until(all_live, 30, "every link live before the chaos", status)
        schedule.append(f"set up in {time.monotonic() - t0:.1f}s")

        # -- chaos: post everywhere while links go down and come back
        started = time.monotonic()
        next_flip = started + rng.uniform(*FLIP_EVERY_S)
        count = 0
        while (now := time.monotonic()) < started + CHAOS_S:
            if now >= next_flip:
                cut = [link for link in LINKS if lab.is_cut(*link)]
                whole = [link for link in LINKS if not lab.is_cut(*link)]
                if cut and (len(cut) >= MAX_CUT or rng.random() < 0.5):
                    link = rng.choice(cut)
                    lab.heal(*link)
                    schedule.append(f"{now - started:.1f}s heal {link}")
                else:
                    link = rng.choice(whole)
                    silent = rng.random() < SILENT
                    aborted = lab.cut(*link, silent=silent)
                    how = "silently" if silent else f"{aborted} connections aborted"
                    schedule.append(f"{now - started:.1f}s cut {link} ({how})")
                next_flip = time.monotonic() + rng.uniform(*FLIP_EVERY_S)
            site = sites[count % HOSTS]
            scope = rng.choice(("public", "public", "peers", "peers", "pod"))
            site.posted[scope].append(post_need(http, site.posters[scope], f"{scope} {count}"))
            count += 1
            time.sleep(POST_EVERY_S)
        for link in LINKS:
            lab.heal(*link)
        schedule.append(f"{time.monotonic() - started:.1f}s healed all, {count} events posted")

        # -- convergence
        views: list[list[Held]] = []

        def converged() -> bool:
            views[:] = [held(http, h) for h in hosts]
            return not problems(sites, views)

        healed = time.monotonic()
        wait_until(
            converged,
            CONVERGE_S,
            "convergence",
            lambda: "\n".join(problems(sites, views)[:20]) + "\n" + status(),
        )
        schedule.append(f"converged {time.monotonic() - healed:.1f}s after healing")

        for i, view in enumerate(views):
            assert len({e.id for e in view}) == len(view), f"h{i} holds an event twice\n{status()}"

        # No link is left down, and none still has anything to send.
        def settled() -> bool:
            for i, h in enumerate(hosts):
                peers = info(http, h)["federation"]["peers"]
                if len(peers) != len(neighbours(i)):
                    return False
                if any(p["state"] != "live" or p["lag"] != {"in": 0, "out": 0} for p in peers):
                    return False
            return True

        wait_until(settled, 30, "every link live again, without lag", status)
        # Nothing held back, forked or refused on any link; every event a node holds of another
        # pod was received (stored as new) exactly once, over one of its links.
        for i, (h, view) in enumerate(zip(hosts, views, strict=True)):
            doc = info(http, h)
            assert doc["held_events"] == 0, f"h{i} still holds back events\n{status()}"
            assert doc["forked_logs"] == 0, f"h{i} saw a fork\n{status()}"
            peers = doc["federation"]["peers"]
            for p in peers:
                unexpected = set(p["rejected"]) - EXPECTED_REJECTIONS
                assert not unexpected, f"h{i} rejected {p['rejected']} from a peer\n{status()}"
                assert p["forks"] == 0, status()
            relayed = sum(1 for e in view if e.pod != pods[i])
            received = sum(p["received"] for p in peers)
            assert received == relayed, f"h{i} received {received} of {relayed}\n{status()}"
        for h in hosts:
            h.stop()  # the scratch nodes below get the machine to themselves

        # -- the same projection over the events both may hold, through real `kith import`:
        # every node's public events, and for neighbours also both pods' `peers` events, each
        # in the holder's own commit order, imported into a fresh offline node.
        def shared(i: int, also: tuple[str, ...] = ()) -> list[bytes]:
            keep = [
                e for e in views[i] if e.scope == "public" or (e.scope == "peers" and e.pod in also)
            ]
            return [e.envelope for e in keep]

        public = [scratch_hash(scratch / f"public-h{i}", shared(i)) for i in range(HOSTS)]
        assert len(set(public)) == 1, f"public projection hashes differ: {public}\n{status()}"
        for a, b in LINKS:
            both = (pods[a], pods[b])
            at = [scratch_hash(scratch / f"h{a}h{b}-h{i}", shared(i, both)) for i in (a, b)]
            assert at[0] == at[1], f"h{a} and h{b}: projection hashes differ {at}\n{status()}"
            assert at[0] != public[0]  # their peers needs are in it
        schedule.append(f"done in {time.monotonic() - t0:.1f}s")
        print(f"seed {seed}: {count} events posted, hash {public[0]}", *schedule, sep="\n  ")


def problems(sites: list[Site], views: list[list[Held]]) -> list[str]:
    """Why these views are not (yet) what every node should hold; empty once converged."""
    if not views:
        return ["nothing read yet"]
    out: list[str] = []
    pods = [site.pod for site in sites]
    public = [{e.id for e in v if e.scope == "public"} for v in views]
    posted_public = {i for site in sites for i in site.posted["public"]}
    for i, ids in enumerate(public):
        if missing := posted_public - ids:
            out.append(f"h{i} lacks {len(missing)} posted public events")
        if ids != public[0]:
            out.append(f"h{i} and h0 hold different public events ({len(ids ^ public[0])})")
    for i, view in enumerate(views):
        for j, site in enumerate(sites):
            peers = {e.id for e in view if e.scope == "peers" and e.pod == pods[j]}
            pod = {e.id for e in view if e.scope == "pod" and e.pod == pods[j]}
            if i == j or j in neighbours(i):
                if peers != set(site.posted["peers"]):
                    out.append(
                        f"h{i} holds {len(peers)} of pod {j}'s {len(site.posted['peers'])} peers"
                        f" events ({len(peers - set(site.posted['peers']))} unknown)"
                    )
            elif peers:
                out.append(f"h{i} holds {len(peers)} peers events of pod {j}, not a neighbour")
            if i == j and pod != set(site.posted["pod"]):
                out.append(f"h{i} holds {len(pod)} of its own {len(site.posted['pod'])} pod events")
            if i != j and pod:
                out.append(f"h{i} holds {len(pod)} pod events of pod {j}")
        scopes = {e.scope for e in view} - {"public", "peers", "pod"}
        if scopes:
            out.append(f"h{i} holds events of unknown scopes {scopes}")
    return out


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, explain: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{explain()}")
        time.sleep(0.25)
