"""``kith export --format csv|ics|valueflows``: the pod's read models for coordinators.

``jsonl`` (``node/cli/data.py``) is the pod's events, exactly as signed — a restore. The other
formats are for people and other tools, built from the node's projections as a coordinator of
the pod reads them (``may_read``; ``node/access.py``): never sealed contents, never another
pod's pod-scope events.

- ``csv`` (``tables``): ``needs.csv``, ``offers.csv``, ``claims.csv`` and ``hours.csv``, for
  a spreadsheet, in a zip or a directory;
- ``ics`` (``node/calendar.py``): the pod's calendar, as a member's private feed shows it;
- ``valueflows`` (``valueflows``): JSON-LD in the ValueFlows vocabulary — Agents, Intents,
  Commitments and EconomicEvents.

``build.render`` makes one export: ``snapshot.read_snapshot`` reads needs, offers and hours in
one read, so that the tables agree, and the format's module renders them. This module stays
light: ``kith --help`` imports it for ``FORMATS``.
"""

from __future__ import annotations

__all__ = ["FORMATS"]

#: ``kith export --format`` values, in the order ``--help`` lists them.
FORMATS = ("jsonl", "csv", "ics", "valueflows")
