"""Builders for projection tests: people, ids and events, all realistic (valid keys and ids)."""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

from node.projections.facts import Fact, ProjectionInput, fact_of
from protocol.codec import b64e


def key(name: str) -> str:
    """A canonical base64url 32-byte key or event id, named for readability."""
    return b64e(hashlib.sha256(name.encode()).digest())


POD = key("pod:elm-street")
OTHER_POD = key("pod:oak-lane")


class Signer(msgspec.Struct, frozen=True):
    """Who signs an event: a device key, the person it belongs to, and their role."""

    author: str
    person: str
    role: Literal["root", "node", "coordinator", "member"] = "member"


ALICE = Signer(key("alice"), key("alice"))
BOB = Signer(key("bob"), key("bob"))
BOB_PHONE = Signer(key("bob:phone"), key("bob"))  # a linked device key of Bob's
CAROL = Signer(key("carol"), key("carol"), "coordinator")
DAVE = Signer(key("dave"), key("dave"))
ROOT = Signer(key("root"), key("root"), "root")
NODE = Signer(key("node"), key("node"), "node")


def event(
    name: str,
    kind: str,
    body: msgspec.Struct | None,
    by: Signer,
    ts: int,
    *,
    pod: str = POD,
) -> ProjectionInput:
    """An accepted event whose id is ``key(name)``."""
    return ProjectionInput(
        id=key(name),
        pod=pod,
        author=by.author,
        person=by.person,
        role=by.role,
        scope="pod",
        seq=1,
        ts=ts,
        kind=kind,
        body=body,
    )


def facts(*events: ProjectionInput) -> list[Fact]:
    """The facts of projected events."""
    out = []
    for ev in events:
        fact = fact_of(ev)
        assert fact is not None
        out.append(fact)
    return out
