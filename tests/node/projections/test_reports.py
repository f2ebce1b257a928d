"""Whom a report is about, as ``node/projections/reports.py`` records it."""

from __future__ import annotations

import sqlite3

import msgspec

from node.projections.facts import ProjectionInput
from node.projections.reports import SCHEMA, about_by_cursor, apply
from protocol.kinds import NeedPosted, ReportFiled, ReportResolved

EVENTS = "CREATE TABLE events (cursor INTEGER PRIMARY KEY, id TEXT UNIQUE, author TEXT);"


def db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA + EVENTS)
    return conn


def put(conn: sqlite3.Connection, cursor: int, event_id: str, author: str, body: object) -> None:
    conn.execute("INSERT INTO events VALUES (?, ?, ?)", (cursor, event_id, author))
    kind = {ReportFiled: "report.filed", ReportResolved: "report.resolved"}.get(
        type(body), "need.posted"
    )
    apply(
        conn,
        ProjectionInput(
            id=event_id,
            pod="P",
            author=author,
            person=author,
            role="member",
            scope="pod",
            seq=cursor,
            ts=cursor,
            kind=kind,
            body=body if isinstance(body, msgspec.Struct) else None,
        ),
    )


def test_a_report_is_about_its_key_and_the_author_of_the_event_it_names() -> None:
    conn = db()
    put(conn, 1, "N1", "CY", NeedPosted(title="Soup", category="food", urgency="low"))
    put(conn, 2, "R1", "ADA", ReportFiled(text="t", about="BO", event="N1"))
    put(conn, 3, "R2", "ADA", ReportFiled(text="t", event="UNSEEN"))  # not stored here
    put(conn, 4, "R3", "ADA", ReportFiled(text="t"))
    put(conn, 5, "S1", "CORA", ReportResolved(report="R1"))
    put(conn, 6, "S2", "CORA", ReportResolved(report="NOPE"))
    put(conn, 7, "R4", "ADA", None)  # stored without its body: not recorded
    assert about_by_cursor(conn, [1, 2, 3, 4, 5, 6, 7]) == {
        2: ("ADA", frozenset({"BO", "CY"})),
        3: ("ADA", frozenset()),
        4: ("ADA", frozenset()),
        5: ("CORA", frozenset({"BO", "CY"})),  # a resolution is about whom its report is
        6: ("CORA", frozenset()),
    }


def test_applying_twice_changes_nothing_and_many_cursors_are_read_in_chunks() -> None:
    conn = db()
    for cursor in range(1, 1201):
        put(conn, cursor, f"R{cursor}", "ADA", ReportFiled(text="t", about="BO"))
    apply(
        conn,
        ProjectionInput(
            id="R1", pod="P", author="ADA", person="ADA", role="member", scope="pod", seq=1,
            ts=1, kind="report.filed", body=ReportFiled(text="t", about="BO"),
        ),
    )  # fmt: skip
    found = about_by_cursor(conn, list(range(1, 1201)))
    assert len(found) == 1200 and set(found.values()) == {("ADA", frozenset({"BO"}))}
