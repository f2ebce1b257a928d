"""``kith export``, ``import``, ``verify``, ``backup`` and ``migrate``: the pod's database."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from node.cli.options import Subcommands, add_command
from protocol.reasons import KithError


def cmd_export(args: argparse.Namespace) -> int:
    """``kith export``: every event the node may read, as JSON lines."""
    from functools import partial

    from node import projections
    from node.access import EventFacts, Reader, may_read, needs_about, report_parties
    from node.datadir import DataDir
    from node.projections.reports import about_by_cursor
    from node.store.sqlite import SQLiteStore

    data = DataDir(args.dir)
    config = data.config()
    operator = Reader(person=config.node_key, role="node", pod=config.pod)
    out = _private_file(args.out) if args.out and args.out != "-" else sys.stdout.buffer

    async def run() -> int:
        store = SQLiteStore(data.db_path, extra_schema=projections.SCHEMA)
        await store.open()
        count = 0
        try:
            async for batch in store.scan():
                cursors = needs_about(operator, batch)
                raw = await store.read(partial(about_by_cursor, cursors=cursors))
                about = report_parties(raw, lambda key: None)  # the node reads as itself
                for e in batch:
                    facts = EventFacts(e.pod, e.author, e.scope, e.kind, about.get(e.cursor))
                    if may_read(operator, facts):
                        out.write(e.envelope + b"\n")
                        count += 1
        finally:
            await store.close()
        return count

    count = asyncio.run(run())
    if out is not sys.stdout.buffer:
        out.close()
    print(f"exported {count} events", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``kith import``: ingest a JSON-lines export, in batches."""
    from tqdm import tqdm

    from node.app import Node
    from node.datadir import DataDir
    from protocol.validate import IMPORT

    data = DataDir(args.dir)
    path = Path(args.file)
    if not path.exists():
        raise KithError(f"{path} does not exist")
    total = path.stat().st_size

    async def run() -> dict[str, int]:
        node = Node(data)
        await node.start()
        tally: dict[str, int] = {}
        try:
            with (
                path.open("rb") as fh,
                tqdm(
                    total=total, unit="B", unit_scale=True, disable=args.quiet, desc="import"
                ) as bar,
            ):
                batch: list[bytes] = []
                for line in fh:
                    bar.update(len(line))
                    if line.strip():
                        batch.append(line.strip())
                    if len(batch) >= 1000:
                        _tally(tally, await node.ingest.submit(batch, IMPORT))
                        batch = []
                if batch:
                    _tally(tally, await node.ingest.submit(batch, IMPORT))
        finally:
            await node.stop()
        return tally

    tally = asyncio.run(run())
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items()))
    print(f"imported {path}: {summary or 'nothing'}")
    return 0 if not any(k.startswith("invalid") for k in tally) else 1


def _tally(tally: dict[str, int], results: Sequence[Any]) -> None:
    for r in results:
        key = "stored" if r.ok and r.reason is None else (r.reason or "stored")
        tally[key] = tally.get(key, 0) + 1


def cmd_verify(args: argparse.Namespace) -> int:
    """``kith verify``: re-check every signature, hash and chain."""
    from node.app import Node
    from node.datadir import DataDir
    from node.verify import verify_store

    data = DataDir(args.dir)

    async def run() -> int:
        node = Node(data)
        await node.start()
        try:
            report = await verify_store(node, rebuild=args.rebuild)
        finally:
            await node.stop()
        for line in report.lines():
            print(line)
        return 0 if report.ok else 1

    return asyncio.run(run())


def _private_file(path: str, *, exclusive: bool = False) -> BinaryIO:
    """Open ``path`` for writing, readable by its owner only (mode 0600, whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
    return os.fdopen(fd, "wb")


def cmd_backup(args: argparse.Namespace) -> int:
    """``kith backup``: a consistent copy of the database, even while the node runs."""
    from node.datadir import DataDir
    from node.store.sqlite import SQLiteStore

    data = DataDir(args.dir)
    data.config()
    target = Path(args.out)
    if target.exists():
        raise KithError(f"{target} exists; choose a new file name")

    # Created empty with mode 0600 first: SQLite writes into it and keeps the mode. A backup
    # holds every member's events; nobody else on the machine may read it.
    _private_file(str(target), exclusive=True).close()

    async def run() -> None:
        store = SQLiteStore(data.db_path)
        await store.open()
        try:
            await store.backup(str(target))
        finally:
            await store.close()

    started = time.monotonic()
    asyncio.run(run())
    took = time.monotonic() - started
    print(f"backup written to {target} ({target.stat().st_size} bytes, {took:.1f}s)")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """``kith migrate``: bring the database up to this kith's schema."""
    from node.app import Node
    from node.datadir import DataDir

    data = DataDir(args.dir)
    data.config()

    async def run() -> tuple[int, int]:
        # Through Node.start, like `import` and `verify`: it takes the data directory's
        # lock (D17), so a running node is refused rather than migrated under its feet.
        node = Node(data)
        await node.start()
        try:
            return node.store.opened_version, node.store.schema_version
        finally:
            await node.stop()

    before, after = asyncio.run(run())
    if before == after:
        print(f"{data.db_path}: schema version {after}, already current")
    elif before == 0:
        print(f"{data.db_path}: created at schema version {after}")
    else:
        print(f"{data.db_path}: migrated from schema version {before} to {after}")
    return 0


def register(sub: Subcommands) -> None:
    """Add ``export``, ``import``, ``verify``, ``backup`` and ``migrate`` to ``kith``."""
    p = add_command(sub, "export", "write every event as JSON lines", cmd_export)
    p.add_argument("--format", choices=["jsonl"], default="jsonl")
    p.add_argument("--out", default="-", help="file (default stdout)")
    p = add_command(sub, "import", "ingest events from a JSON-lines export", cmd_import)
    p.add_argument("file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = add_command(sub, "verify", "re-check every signature, hash and chain", cmd_verify)
    p.add_argument(
        "--rebuild", action="store_true", help="also rebuild the read models from the log"
    )
    p = add_command(
        sub, "backup", "write a consistent copy of the database while the node runs", cmd_backup
    )
    p.add_argument("out", help="the new backup file")
    add_command(
        sub,
        "migrate",
        "bring the database up to this kith's schema (the node must be stopped);"
        " prints the schema version",
        cmd_migrate,
    )
