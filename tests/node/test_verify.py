"""``verify_store`` finds tampering in a copy of a real database, and ``--rebuild`` repairs
read models to what the log says (including erasures and fork proofs)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from node.app import Node
from node.cli import main
from node.datadir import DataDir
from node.demo import _Signer, populate
from node.store.sqlite import envelope_prefix
from node.verify import Report, verify_store
from protocol.envelope import sign_event
from protocol.validate import CLIENT, IMPORT


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> DataDir:
    """A pod with demo data, one erased need and one fork kept as proof (built once)."""
    path = tmp_path_factory.mktemp("verify") / "pod"
    assert main(["init", "--dir", str(path), "--name", "Elm"]) == 0
    data = DataDir(path)

    async def fill() -> None:
        node = Node(data)
        await node.start()
        try:
            people = await populate(node)
            signer = _Signer(node)
            amara = people["Amara"].signing_key()
            need = await signer.post(
                amara, "need.posted", {"title": "private", "category": "food", "urgency": "low"}
            )
            await signer.post(amara, "event.redacted", {"target": need})
            # A redaction by someone who may not erase it: stored, powerless.
            bao = people["Bao"].signing_key()
            kept = await signer.post(
                amara, "need.posted", {"title": "kept", "category": "food", "urgency": "low"}
            )
            await signer.post(bao, "event.redacted", {"target": kept})
            # A rival of Amara's first pod event, as an import would bring it: kept as proof.
            first = signer.sign(amara, "profile.set", {"name": "x"})
            head = msgspec.json.decode(first.head)
            rival = sign_event(
                amara,
                pod=node.pod,
                scope="pod",
                seq=1,
                prev=None,
                ts=head["ts"],
                kind="profile.set",
                body={"name": "rival"},
            )
            [result] = await node.ingest.submit([rival], IMPORT)
            assert (result.ok, result.reason) == (True, "fork")
            [ok] = await node.ingest.submit(
                [signer.sign(amara, "profile.set", {"name": "A"})], CLIENT
            )
            assert ok.ok
        finally:
            await node.stop()

    asyncio.run(fill())
    return data


@pytest.fixture
def copy(pristine: DataDir, tmp_path: Path) -> DataDir:
    """A fresh copy of the pristine data directory to tamper with."""
    target = tmp_path / "copy"
    shutil.copytree(pristine.path, target)
    return DataDir(target)


def run_verify(data: DataDir, *, rebuild: bool = False) -> Report:
    async def go() -> Report:
        node = Node(data)
        await node.start()
        try:
            return await verify_store(node, rebuild=rebuild)
        finally:
            await node.stop()

    return asyncio.run(go())


def tamper(data: DataDir, fn: Callable[[sqlite3.Connection], None]) -> None:
    """Edit the copy's database by hand, with the append-only triggers dropped."""
    conn = sqlite3.connect(data.db_path, isolation_level=None)
    try:
        triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for (trigger,) in triggers.fetchall():
            conn.execute(f"DROP TRIGGER {trigger}")
        fn(conn)
    finally:
        conn.close()


def test_pristine_store_verifies(copy: DataDir) -> None:
    report = run_verify(copy)
    assert report.ok
    assert report.events > 40
    assert (report.bad_signatures, report.bad_bodies, report.broken_chains) == (0, 0, 0)
    assert report.erased_bodies == 1
    assert report.problems == []
    assert report.lines()[-1] == "OK"
    assert f"events checked:   {report.events}" in report.lines()


def test_rebuild_gives_the_same_hash_with_erasures_and_proofs(copy: DataDir) -> None:
    report = run_verify(copy, rebuild=True)
    assert report.ok
    assert report.hash_after == report.hash_before
    assert any(line.endswith("(same)") for line in report.lines())


def _swap_sig(conn: sqlite3.Connection) -> str:
    rows = conn.execute(
        "SELECT id, prefix FROM events WHERE kind = 'need.posted' ORDER BY cursor LIMIT 2"
    ).fetchall()
    (victim, prefix), (_, other_prefix) = rows
    head = msgspec.json.decode(prefix + b"null}")["head"]
    other_sig = msgspec.json.decode(other_prefix + b"null}")["sig"]
    conn.execute(
        "UPDATE events SET prefix = ? WHERE id = ?", (envelope_prefix(head, other_sig), victim)
    )
    victim_id: str = victim
    return victim_id


def test_a_bad_signature_is_found(copy: DataDir, capsys: pytest.CaptureFixture[str]) -> None:
    victims: list[str] = []
    tamper(copy, lambda conn: victims.append(_swap_sig(conn)))
    report = run_verify(copy)
    assert not report.ok
    assert report.bad_signatures == 1
    assert report.problems == [f"bad signature: {victims[0]}"]
    assert report.lines()[-1] == "PROBLEMS FOUND"
    capsys.readouterr()
    assert main(["verify", "--dir", str(copy.path)]) == 1
    out = capsys.readouterr().out
    assert f"bad signature: {victims[0]}" in out and out.strip().endswith("PROBLEMS FOUND")


def test_a_changed_body_is_found(copy: DataDir) -> None:
    victims: list[str] = []

    def change(conn: sqlite3.Connection) -> None:
        # Bodies live beside the head (a ``bodies`` table, or a ``body`` column of ``events``).
        inline = any(col[1] == "body" for col in conn.execute("PRAGMA table_info(events)"))
        table = "events" if inline else "bodies"
        (victim, body) = conn.execute(
            f"SELECT b.id, b.body FROM {table} b JOIN events e ON e.id = b.id"
            " WHERE e.kind = 'offer.posted' ORDER BY e.cursor LIMIT 1"
        ).fetchone()
        original = msgspec.json.decode(body)
        text = original.replace('"title":"', '"title":"Fake ', 1)
        assert text != original
        conn.execute(
            f"UPDATE {table} SET body = ? WHERE id = ?", (msgspec.json.encode(text), victim)
        )
        victims.append(victim)

    tamper(copy, change)
    report = run_verify(copy)
    assert not report.ok
    assert (report.bad_bodies, report.bad_signatures) == (1, 0)
    assert report.problems == [f"bad body (invalid:body:hash): {victims[0]}"]


def test_a_missing_event_breaks_its_chain(copy: DataDir) -> None:
    def delete(conn: sqlite3.Connection) -> None:
        # The second event of some member's pod log.
        (victim,) = conn.execute(
            "SELECT id FROM events WHERE scope = 'pod' AND seq = 2 AND placement = 0"
            " ORDER BY cursor LIMIT 1"
        ).fetchone()
        conn.execute("DELETE FROM events WHERE id = ?", (victim,))

    tamper(copy, delete)
    report = run_verify(copy)
    assert not report.ok
    assert report.broken_chains == 1
    assert report.problems[0].startswith("chain broken at pod seq 3: ")


def test_tampered_read_models_are_repaired_by_rebuild(copy: DataDir) -> None:
    tamper(copy, lambda conn: conn.execute("UPDATE pj_needs SET status = 'fulfilled'"))
    before = run_verify(copy)
    assert before.ok  # the log itself is fine; verify alone does not look at read models
    report = run_verify(copy, rebuild=True)
    assert not report.ok
    assert report.hash_after != report.hash_before
    assert any("DIFFERENT (read models repaired)" in line for line in report.lines())
    again = run_verify(copy, rebuild=True)
    assert again.ok and again.hash_before == report.hash_after
    pristine_hash = run_verify(copy).hash_before
    assert pristine_hash == report.hash_after


def test_report_lists_at_most_twenty_problems() -> None:
    report = Report(
        events=30, bad_signatures=30, problems=[f"bad signature: {i}" for i in range(30)]
    )
    lines = report.lines()
    assert sum(line.startswith("bad signature: ") for line in lines) == 20
    assert lines[-1] == "PROBLEMS FOUND"
