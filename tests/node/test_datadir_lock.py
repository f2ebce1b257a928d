"""One process writes a data directory (docs/decisions.md D17)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node.app import Node
from node.cli import main
from node.datadir import DataDir
from protocol.reasons import KithError


def test_a_second_writer_on_one_data_directory_is_refused(tmp_path: Path) -> None:
    assert main(["init", "--dir", str(tmp_path / "pod"), "--name", "Lock test"]) == 0
    asyncio.run(_two_writers(tmp_path))


async def _two_writers(tmp_path: Path) -> None:
    first = Node(DataDir(tmp_path / "pod"))
    await first.start()
    try:
        second = Node(DataDir(tmp_path / "pod"))
        with pytest.raises(KithError, match="in use by another kith process"):
            await second.start()
    finally:
        await first.stop()
    again = Node(DataDir(tmp_path / "pod"))  # released on stop
    await again.start()
    await again.stop()
