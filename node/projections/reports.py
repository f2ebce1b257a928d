"""Whom each report is about: the side table that keeps a report from the person it names.

``may_read`` lets a report (``report.filed``, and the ``report.resolved`` that closes it) be
read by the pod's coordinators and its author — never by the person reported, even when that
person is a coordinator (docs/moderation.md). Who that is lives in the report's body (``about``)
or behind it (the author of the ``event`` it names), and a body can be erased; so the keys a
report is about are recorded here when it is projected, and the read paths look them up by
commit cursor (``about_by_cursor``, with the report's author) and hand them to ``may_read``.

Keys only, never text. A report that names no one gets the marker row ``''``, so that "about no
one" differs from "not recorded" (a report stored without its body): ``may_read`` shows an
unrecorded report to its author only. The table is not reset with the other projections: a
rebuild re-applies every event, and ``INSERT OR IGNORE`` keeps what an erased body once said.

>>> conn = sqlite3.connect(":memory:")
>>> _ = conn.executescript(SCHEMA + "CREATE TABLE events (cursor INTEGER, id TEXT, author TEXT);")
>>> _ = conn.execute("INSERT INTO events VALUES (7, 'R1', 'ADA')")
>>> apply(conn, ProjectionInput(
...     id="R1", pod="P", author="ADA", person="ADA", role="member", scope="pod", seq=1, ts=1,
...     kind="report.filed", body=ReportFiled(text="...", about="BO"),
... ))
>>> about_by_cursor(conn, [7])
{7: ('ADA', frozenset({'BO'}))}
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from node.projections.facts import ProjectionInput
from protocol.kinds import ReportFiled, ReportResolved

__all__ = ["NO_ONE", "SCHEMA", "about_by_cursor", "apply"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS pj_report_about (
    report TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (report, key)
) WITHOUT ROWID;
"""

#: The key recorded for a report that names no one.
NO_ONE = ""

#: Cursors per statement in ``about_by_cursor`` (well under SQLite's parameter limit).
_PER_QUERY = 500


def apply(conn: sqlite3.Connection, ev: ProjectionInput) -> None:
    """Record whom a projected report (or a report's resolution) is about.

    A report is about its ``about`` key and the author of the ``event`` it names (looked up in
    the store, where a client's report of an event it read already is). A resolution is about
    whoever the report it closes is about. Nothing else is touched.
    """
    keys: set[str] = {NO_ONE}
    if isinstance(ev.body, ReportFiled):
        if ev.body.about is not None:
            keys.add(ev.body.about)
        if ev.body.event is not None:
            named = conn.execute("SELECT author FROM events WHERE id = ?", (ev.body.event,))
            row = named.fetchone()
            if row is not None:
                keys.add(row[0])
    elif isinstance(ev.body, ReportResolved):
        rows = conn.execute("SELECT key FROM pj_report_about WHERE report = ?", (ev.body.report,))
        keys.update(key for (key,) in rows)
    else:
        return
    conn.executemany(
        "INSERT OR IGNORE INTO pj_report_about (report, key) VALUES (?, ?)",
        [(ev.id, key) for key in sorted(keys)],
    )


def about_by_cursor(
    conn: sqlite3.Connection, cursors: Sequence[int]
) -> dict[int, tuple[str, frozenset[str]]]:
    """Each stored report's author key and the keys it is about, by commit cursor; absent when
    not recorded."""
    found: dict[int, tuple[str, set[str]]] = {}
    for start in range(0, len(cursors), _PER_QUERY):
        chunk = cursors[start : start + _PER_QUERY]
        rows = conn.execute(
            "SELECT e.cursor, e.author, a.key FROM events e"
            " JOIN pj_report_about a ON a.report = e.id"
            f" WHERE e.cursor IN ({', '.join('?' * len(chunk))})",
            tuple(chunk),
        )
        for cursor, author, key in rows:
            found.setdefault(cursor, (author, set()))[1].add(key)
    return {
        cursor: (author, frozenset(k for k in keys if k != NO_ONE))
        for cursor, (author, keys) in found.items()
    }
