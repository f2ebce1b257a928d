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
    """``kith export``: every event the node may read, as JSON lines; or, with ``--format
    csv|ics|valueflows``, the pod's read models for coordinators (``node/exports``)."""
    if args.format != "jsonl":
        return _export_read_models(args)
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


def _export_read_models(args: argparse.Namespace) -> int:
    """``kith export --format csv|ics|valueflows``: render (``node/exports``), then write one
    file (or stdout), or the CSV tables into a zip or a directory."""
    from node import projections
    from node.datadir import DataDir
    from node.exports.build import render
    from node.exports.tables import TABLES
    from node.store.sqlite import SQLiteStore

    data = DataDir(args.dir)
    config = data.config()
    if args.format == "csv" and args.out == "-":
        raise KithError(
            f"a CSV export is {len(TABLES)} files ({', '.join(TABLES)}): give --out FILE.zip"
            " or --out DIRECTORY"
        )

    async def run() -> Any:
        store = SQLiteStore(data.db_path, extra_schema=projections.SCHEMA)
        await store.open()
        try:
            return await render(
                store,
                fmt=args.format,
                pod=config.pod,
                name=config.name,
                reader_key=config.node_key,
                now_ms=int(time.time() * 1000),
            )
        finally:
            await store.close()

    rendered = asyncio.run(run())
    if args.format != "csv":
        (body,) = rendered.files.values()
        _write_one(args.out, body)
        print(f"exported {rendered.summary}", file=sys.stderr)
        return 0
    if args.out.endswith(".zip"):
        import zipfile

        with _private_file(args.out) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as z:
            for name, body in rendered.files.items():
                z.writestr(name, body)
    else:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, body in rendered.files.items():
            with _private_file(str(folder / name)) as fh:
                fh.write(body)
    print(f"exported {rendered.summary} to {args.out}", file=sys.stderr)
    return 0


def _write_one(out: str, body: bytes) -> None:
    if out == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    with _private_file(out) as fh:
        fh.write(body)


def cmd_import(args: argparse.Namespace) -> int:
    """``kith import``: ingest a JSON-lines export, in batches — into the pod of ``--dir``, or,
    when ``--dir`` holds no pod yet, restoring the export's pod there (D50)."""
    from node.datadir import DataDir
    from node.restore import export_pod, other_pod_message

    data = DataDir(args.dir)
    path = Path(args.file)
    if not path.exists():
        raise KithError(f"{path} does not exist")
    exported = export_pod(path)
    if not data.exists():
        return _restore(args, data, path, exported)
    if args.node_key or args.root_key:
        raise KithError(
            f"{data.path} already holds a pod: --node-key and --root-key are for restoring"
            " into a new directory (leave them out to import into this pod)"
        )
    config = data.config()
    if exported is not None and exported.pod != config.pod and exported.pod_events:
        # Another pod's public and peers events are welcome (a peer's roster, say); its pod
        # events are not, and an export full of them is a restore into the wrong place.
        raise KithError(
            other_pod_message(
                path, exported.pod, config.pod, data.path, pod_events=exported.pod_events
            )
        )
    tally = asyncio.run(_ingest_file(data, path, quiet=args.quiet))
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items()))
    print(f"imported {path}: {summary or 'nothing'}")
    return 0 if not any(k.startswith("invalid") for k in tally) else 1


async def _ingest_file(data: Any, path: Path, *, quiet: bool, after: Any = None) -> dict[str, int]:
    """Ingest every line of ``path`` into the node of ``data`` (as an import); then run
    ``after(node)`` while the node is still open."""
    from tqdm import tqdm

    from node.app import Node
    from protocol.validate import IMPORT

    node = Node(data)
    await node.start()
    tally: dict[str, int] = {}
    try:
        with (
            path.open("rb") as fh,
            tqdm(
                total=path.stat().st_size, unit="B", unit_scale=True, disable=quiet, desc="import"
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
        if after is not None:
            await after(node)
    finally:
        await node.stop()
    return tally


def _not_a_node_key(path: str, pod: str) -> KithError:
    return KithError(
        f"{path} is not a node key of pod {pod}: give that pod's node.key,"
        " or --root-key ROOT.key to attest a new one"
    )


def _restore(args: argparse.Namespace, data: Any, path: Path, exported: Any) -> int:
    """``kith import FILE --dir NEW-DIR``: a new data directory for the export's pod, its
    events imported, and a node key the pod's roster attests (D50)."""
    import shutil

    from node.datadir import Config, new_key_file, read_key_file, write_key_file

    if exported is None:
        data.config()  # not a whole pod's export: only a pod's directory can take it (raises)
    if not (args.node_key or args.root_key):
        raise KithError(
            f"{data.path} holds no pod yet: to restore pod {exported.pod} from {path} there,"
            " give the old node's key (--node-key OLD-DIR/node.key) or the pod's root key"
            " (--root-key ROOT.key, which attests a new node key)"
        )
    if data.path.exists() and any(data.path.iterdir()):
        raise KithError(f"{data.path} is not empty and holds no pod: restore into a new directory")
    if args.node_key:
        node_key = read_key_file(Path(args.node_key))
        root_key = None
        if node_key.public not in exported.node_keys:
            raise _not_a_node_key(args.node_key, exported.pod)
    else:
        root_key = read_key_file(Path(args.root_key))
        node_key = new_key_file()
    made = not data.path.exists()
    data.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        write_key_file(data.node_key_path, node_key)
        data.write_config(
            Config(
                pod=exported.pod,
                node_key=node_key.public,
                name=exported.name,
                roster_scope=exported.roster_scope,
            )
        )

        async def attest(node: Any) -> None:
            from node.signing import Signer

            roster = node.ingest.roster.pods.get(exported.pod)
            if root_key is None:
                if roster is None or not (
                    node_key.public in roster.node_keys and roster.is_active(node_key.public)
                ):
                    raise _not_a_node_key(args.node_key, exported.pod)
                return
            result = await Signer(pod=exported.pod, ingest=node.ingest).post(
                root_key.signing_key(), "node.key", {"key": node_key.public}, scope="public"
            )
            if not result.ok:
                raise KithError(
                    f"{args.root_key} could not attest a new node key ({result.reason}): give"
                    f" the current root key of pod {exported.pod}, or --node-key"
                    " OLD-DIR/node.key"
                )

        tally = asyncio.run(_ingest_file(data, path, quiet=args.quiet, after=attest))
    except BaseException:
        # A failed restore leaves nothing behind: the directory is made again on the next try.
        if made:
            shutil.rmtree(data.path, ignore_errors=True)
        else:
            for child in data.path.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items()))
    print(f"Restored pod {exported.name!r} ({exported.pod}) into {data.path}: {summary}")
    if root_key is not None:
        print(f"  new node key: {node_key.public} (attested by the root key)")
    print(f"Start the node with: kith serve --dir {data.path}")
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
    from node.exports import FORMATS

    p = add_command(
        sub,
        "export",
        "write every event as JSON lines (a restore), or the pod's needs, offers, claims and"
        " hours for coordinators: CSV tables, iCalendar or ValueFlows JSON-LD",
        cmd_export,
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="jsonl: every event, for `kith import` (default); csv: needs.csv, offers.csv,"
        " claims.csv, hours.csv (in a .zip or a directory); ics: the pod's calendar;"
        " valueflows: JSON-LD (Agents, Intents, Commitments, EconomicEvents)",
    )
    p.add_argument(
        "--out",
        default="-",
        help="file (default stdout); for csv a FILE.zip or a directory",
    )
    p = add_command(
        sub,
        "import",
        "ingest events from a JSON-lines export; into a new --dir, restore the export's pod",
        cmd_import,
    )
    p.add_argument("file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument(
        "--node-key", help="restoring: the old node's node.key (kept with your backups)"
    )
    keys.add_argument(
        "--root-key", help="restoring: the pod's root key, which attests a new node key"
    )
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
