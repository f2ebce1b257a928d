"""Realistic demo data for ``kith demo``: members, needs, offers, claims, fulfilments, hours."""

from __future__ import annotations

import random
import time
from typing import Any

from node.app import Node
from node.datadir import KeyFile, new_key_file
from node.signing import Signer
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, Scope

DEMO_PEOPLE = ["Amara", "Bao", "Camila", "Deshawn", "Esi", "Farid", "Grace", "Hiroshi"]

NEEDS = [
    ("Ride to the clinic on Thursday", "ride", "high", 90),
    ("Groceries for a family of four", "groceries", "urgent", 60),
    ("Fix a leaking kitchen tap", "repair", "normal", 45),
    ("Someone to talk to this evening", "emotional_support", "high", 60),
    ("Help filling in a housing form", "translation", "normal", 30),
    ("Walk my dog while I recover", "pets", "low", 30),
    ("Childcare for two hours on Saturday", "childcare", "normal", 120),
    ("Hot meals for a neighbour after surgery", "food", "high", 90),
]
OFFERS = [
    ("I can drive weekday mornings", "ride", 2),
    ("Spanish/English translation", "translation", 3),
    ("Basic plumbing and repairs", "repair", 1),
    ("Cooking big batches on Sundays", "food", 4),
]


class _Signer:
    """The node's ``Signer`` for demo data and offline commands: a refused event raises."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._signer = Signer(pod=node.pod, ingest=node.ingest)

    def sign(self, key: SigningKey, kind: str, body: Any, *, scope: Scope = "pod") -> Envelope:
        """Sign ``body`` as the next event of ``key``'s log in ``scope``."""
        return self._signer.sign(key, kind, body, scope=scope)

    async def post(self, key: SigningKey, kind: str, body: Any, *, scope: Scope = "pod") -> str:
        """Sign and post; the new event's id."""
        result = await self._signer.post(key, kind, body, scope=scope)
        if not result.ok:
            raise RuntimeError(f"demo event {kind} refused: {result.reason} {result.message}")
        assert result.id is not None
        return result.id


async def add_member(node: Node, key: KeyFile, role: str = "member") -> str:
    """Sign ``member.added`` with the node key and ingest it."""
    signer = _Signer(node)
    return await signer.post(
        node.key,
        "member.added",
        {"key": key.public, "role": role, "box_key": key.box_public},
        scope="public",
    )


async def invite(node: Node, *, days: int = 7) -> str:
    """An invite the demo's visitor opens in a browser to join the pod (signed by the node key,
    joining at once); returns its code, for the link ``/#join/<code>``."""
    from node.projections.invites import code_hash, new_code

    code = new_code()
    expires_at = int(time.time() * 1000) + days * 86_400_000
    body = {"code_hash": code_hash(code), "expires_at": expires_at, "approve": "auto"}
    await _Signer(node).post(node.key, "invite.created", body)
    return code


async def populate(node: Node, seed: int = 7) -> dict[str, KeyFile]:
    """Fill a fresh pod with a believable week of mutual aid; returns the members' keys."""
    rng = random.Random(seed)
    signer = _Signer(node)
    people = {name: new_key_file() for name in DEMO_PEOPLE}
    for i, (name, key) in enumerate(people.items()):
        await add_member(node, key, "coordinator" if i == 0 else "member")
        await signer.post(key.signing_key(), "profile.set", {"name": name})
    names = list(people)
    need_ids: list[tuple[str, str]] = []
    for title, category, urgency, minutes in NEEDS:
        who = rng.choice(names[1:])
        body = {
            "title": title,
            "category": category,
            "urgency": urgency,
            "area": "Elm & 5th",
            "minutes_estimate": minutes,
        }
        # Demo needs and offers are public so a visitor sees them without a token; a real
        # pod posts needs in `pod` scope (the CLI's default).
        signing = people[who].signing_key()
        need_ids.append((await signer.post(signing, "need.posted", body, scope="public"), who))
    for title, category, capacity in OFFERS:
        who = rng.choice(names)
        await signer.post(
            people[who].signing_key(),
            "offer.posted",
            {"title": title, "category": category, "capacity": capacity},
            scope="public",
        )
    # Half the needs get a helper; some of those are done and their hours logged.
    for index, (need, asker) in enumerate(need_ids[:5]):
        helper = rng.choice([n for n in names if n != asker])
        claim = await signer.post(
            people[helper].signing_key(), "claim.made", {"need": need, "note": "I can do this"}
        )
        await signer.post(
            people[asker].signing_key(), "claim.accepted", {"claim": claim, "need": need}
        )
        if index < 3:
            minutes = rng.choice([30, 45, 60, 90])
            await signer.post(
                people[helper].signing_key(),
                "fulfilment.recorded",
                {"need": need, "claim": claim, "minutes": minutes},
            )
            entry = await signer.post(
                people[helper].signing_key(),
                "hours.logged",
                {
                    "giver": people[helper].public,
                    "receiver": people[asker].public,
                    "minutes": minutes,
                    "need": need,
                },
            )
            if index < 2:
                await signer.post(people[asker].signing_key(), "hours.confirmed", {"entry": entry})
    return people
