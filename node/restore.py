"""Restoring a pod from its ``kith export`` into a new data directory (docs/decisions.md D50).

An export holds the pod's events, not its keys or its node's settings. Its first line is the
pod's genesis, ``pod.created``, signed by the root key whose public key *is* the pod id, so
the export says which pod it is of. A restore makes a data directory for that pod (the pod id
and name from ``pod.created``, the roster's scope from its member events) and then imports the
events as ``kith import`` always did. The restored node needs a node key the pod's roster
attests: either the old one (its ``node.key`` file, kept beside the export), or a new one that
the pod's root key attests with a ``node.key`` event — what the root key is kept offline for.

    >>> from pathlib import Path
    >>> export_pod(Path("no-such-export.jsonl"))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    protocol.reasons.KithError: cannot read no-such-export.jsonl: No such file or directory
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from protocol.envelope import Event, check_body, decode_envelope, parse_event
from protocol.reasons import KithError, RejectedEvent


class ExportedPod(msgspec.Struct, frozen=True, kw_only=True):
    """What an export says of its pod: its id, name and where it keeps its roster."""

    pod: str
    name: str
    roster_scope: Literal["public", "peers"]
    #: The node keys its root attested (``node.key`` events), oldest first.
    node_keys: tuple[str, ...] = ()
    #: How many of its events are in ``pod`` scope (only its own pod's node may hold them).
    pod_events: int = 0


def export_pod(path: Path) -> ExportedPod | None:
    """The pod an export is of, from its first event (``pod.created``), its first member
    event of that pod (whose scope is where the pod keeps its roster; ``public`` if none) and
    its ``node.key`` events, and how many of its events are in ``pod`` scope.
    ``None`` for a file of events that does not start with a pod's genesis (a hand-made
    batch, say), which only an existing pod's directory can take."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise KithError(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        first = fh.readline().strip()
        genesis = _event(first, path)
        if genesis is None or genesis.head.kind != "pod.created":
            return None
        pod = genesis.head.pod
        body = _body(genesis)
        name = str(body.get("name", "")) if body else ""
        scope: Literal["public", "peers"] | None = None
        node_keys: list[str] = []
        pod_events = 0
        for line in fh:
            event = _event(line.strip(), path)
            if event is None or event.head.pod != pod:
                continue
            pod_events += event.head.scope == "pod"
            if scope is None and event.head.kind.startswith("member."):
                scope = "peers" if event.head.scope == "peers" else "public"
            elif event.head.kind == "node.key":
                attested = _body(event)
                if attested is not None and isinstance(attested.get("key"), str):
                    node_keys.append(str(attested["key"]))
    return ExportedPod(
        pod=pod,
        name=name,
        roster_scope=scope or "public",
        node_keys=tuple(node_keys),
        pod_events=pod_events,
    )


def _event(line: bytes, path: Path) -> Event | None:
    if not line:
        return None
    try:
        return parse_event(decode_envelope(line))
    except RejectedEvent:
        return None


def _body(event: Event) -> dict[str, object] | None:
    try:
        value = check_body(event)
    except RejectedEvent:
        return None
    return value if isinstance(value, dict) else None


def other_pod_message(
    path: Path, exported: str, here: str, datadir: Path, *, pod_events: int
) -> str:
    """The error for an export of one pod imported into another pod's data directory."""
    return (
        f"{path} is an export of pod {exported}; {datadir} holds pod {here}, which cannot"
        f" take its {pod_events} pod events. To restore that pod, import into a new directory:"
        f" `kith import {path} --dir NEW-DIR --node-key OLD-DIR/node.key`"
        " (or --root-key ROOT.key for a new node key)"
    )
