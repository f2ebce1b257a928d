"""``kith export --format valueflows``: the pod in the ValueFlows vocabulary, as JSON-LD.

ValueFlows (https://www.valueflo.ws) describes economic flows between agents; mutual aid is
a gift economy of services, so Kith maps onto it directly:

- **Agents**: the pod (``Organization``) and its people (``Person``, with the display name the
  node has), each identified by ``urn:kith:key:<key>`` (the pod: ``urn:kith:pod:<pod id>``);
- **Intents**: a need is an intent with a ``receiver`` (the person asking), an offer one with
  a ``provider``; both ``deliverService``, with the need's estimate as ``effortQuantity``;
- **Commitments**: an accepted claim — the helper (``provider``) to the asker (``receiver``),
  ``satisfies`` the need's intent;
- **EconomicEvents**: a fulfilment (``fulfills`` the commitment) and each confirmed hours
  entry, with ``resourceQuantity`` in hours (``om2:hour``).

The JSON-LD context is ``valueflows.context.jsonld`` beside this module, embedded in every
document so that a JSON-LD processor expands it without fetching anything; every term maps to
a ``vf:`` or ``om2:`` IRI (``tests/node/test_exports.py`` expands a document and checks).
Categories are ``urn:kith:category:<category>`` IRIs. Pending hours (not yet confirmed by
the other side) are not economic events yet and are left out.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from node.exports.snapshot import Snapshot
from node.exports.tables import iso

__all__ = ["CONTEXT", "valueflows_document"]

_SERVICE = "vf:deliverService"
_HOUR = "om2:hour"


@cache
def _context() -> dict[str, Any]:
    text = resources.files("node.exports").joinpath("valueflows.context.jsonld").read_text()
    context: dict[str, Any] = json.loads(text)["@context"]
    return context


#: The JSON-LD context every document carries (``valueflows.context.jsonld``).
CONTEXT = _context()


def _agent(key: str) -> str:
    return f"urn:kith:key:{key}"


def _event(event_id: str, suffix: str = "") -> str:
    return f"urn:kith:event:{event_id}{suffix}"


def _hours(minutes: int) -> dict[str, Any]:
    return {"hasUnit": _HOUR, "hasNumericalValue": round(minutes / 60, 4)}


def _drop_none(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if v is not None}


def valueflows_document(snap: Snapshot) -> dict[str, Any]:
    """The JSON-LD document of ``snap``: ``{"@context": …, "@graph": [Agents, Intents,
    Commitments, EconomicEvents]}``."""
    pod = f"urn:kith:pod:{snap.pod}"
    people: set[str] = set(snap.names)
    graph: list[dict[str, Any]] = []
    for n in snap.needs:
        people.add(n.author)
        graph.append(
            _drop_none(
                {
                    "@id": _event(n.id),
                    "@type": "Intent",
                    "action": _SERVICE,
                    "receiver": _agent(n.author),
                    "name": n.title,
                    "note": n.details,
                    "resourceClassifiedAs": _category(n.category),
                    "effortQuantity": _hours(n.minutes_estimate) if n.minutes_estimate else None,
                    "hasBeginning": iso(n.window.start) if n.window else None,
                    "hasEnd": iso(n.window.end) if n.window else None,
                    "finished": n.status in ("fulfilled", "withdrawn", "expired"),
                    "inScopeOf": pod,
                }
            )
        )
        if n.accepted_claim is not None and n.helper is not None:
            people.add(n.helper)
            graph.append(
                {
                    "@id": _event(n.accepted_claim),
                    "@type": "Commitment",
                    "action": _SERVICE,
                    "provider": _agent(n.helper),
                    "receiver": _agent(n.author),
                    "satisfies": _event(n.id),
                    "finished": n.fulfilment is not None,
                    "inScopeOf": pod,
                }
            )
            if n.fulfilment is not None:
                f = n.fulfilment
                graph.append(
                    _drop_none(
                        {
                            "@id": _event(f.id),
                            "@type": "EconomicEvent",
                            "action": _SERVICE,
                            "provider": _agent(f.person),
                            "receiver": _agent(n.author),
                            "fulfills": _event(n.accepted_claim),
                            "resourceQuantity": _hours(f.minutes) if f.minutes else None,
                            "hasPointInTime": iso(f.ts),
                            "inScopeOf": pod,
                        }
                    )
                )
    for o in snap.offers:
        people.add(o.author)
        graph.append(
            _drop_none(
                {
                    "@id": _event(o.id),
                    "@type": "Intent",
                    "action": _SERVICE,
                    "provider": _agent(o.author),
                    "name": o.title,
                    "note": o.details,
                    "resourceClassifiedAs": _category(o.category),
                    "finished": o.status != "open",
                    "inScopeOf": pod,
                }
            )
        )
    for h in snap.hours:
        if h.status != "confirmed":
            continue
        people.update((h.giver, h.receiver))
        graph.append(
            {
                "@id": _event(h.id),
                "@type": "EconomicEvent",
                "action": _SERVICE,
                "provider": _agent(h.giver),
                "receiver": _agent(h.receiver),
                "resourceQuantity": _hours(h.minutes),
                "hasPointInTime": iso(h.ts),
                "inScopeOf": pod,
            }
        )
    agents: list[dict[str, Any]] = [{"@id": pod, "@type": "Organization", "name": snap.name}]
    for key in sorted(people):
        agent: dict[str, Any] = {"@id": _agent(key), "@type": "Person"}
        if snap.name_of(key):
            agent["name"] = snap.name_of(key)
        agents.append(agent)
    return {"@context": CONTEXT, "@graph": agents + graph}


def _category(category: str | None) -> str | None:
    return f"urn:kith:category:{category}" if category else None
