"""Duties: the events a node signs on its own once a commit (or the clock) makes them due.

Two rooms have duties — overflow (``node.overflow.Duties``: the local need of an assigned
referral, its fulfilment, the clearing) and erasure (``node.erasure.ErasureDuties``: receipts and
retention). Each says *what* is due, decided from what is stored, so that a restart or a
repeated wake-up never signs twice; this room is the *when* they share:

* a listener on the ingestor's commits wakes the loop when a commit may leave a duty to do;
* one task waits for a wake-up and signs every duty due then, one at a time, under a lock, so
  two wake-ups never decide the same duty twice;
* an optional second task wakes the loop every ``period_s`` (duties a clock makes due);
* ``stop`` removes the listener and cancels both tasks, a duty in progress between two
  signatures.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from node.ingest import Committed, Ingestor
from node.signing import Signer
from node.store.base import Store
from protocol.crypto import SigningKey
from protocol.envelope import Scope

__all__ = ["DutyLoop", "Todo"]


@dataclass(frozen=True)
class Todo:
    """One event a duty room owes: what to sign, and in which scope."""

    kind: str
    body: dict[str, Any]
    scope: Scope


class DutyLoop(abc.ABC):
    """The wake-up, loop and life cycle of a room whose node signs events on its own.

    A subclass names itself (``name``: its tasks are ``kith-<name>``, its log ``kith.<name>``),
    says which commits may leave a duty (``wakes``) and what is due now (``todos``).
    """

    #: The room's name, in its task names and its log.
    name: ClassVar[str]

    def __init__(
        self,
        *,
        pod: str,
        key: SigningKey,
        ingest: Ingestor,
        store: Store,
        period_s: float | None = None,
    ) -> None:
        self.pod = pod
        self.key = key
        self.ingest = ingest
        self.store = store
        self.signer = Signer(pod=pod, ingest=ingest)
        self._period_s = period_s
        self._log = logging.getLogger(f"kith.{self.name}")
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        #: Events the node signed on its own, by kind (metrics; never personal data).
        self.signed: dict[str, int] = {}

    @abc.abstractmethod
    def wakes(self, committed: list[Committed]) -> bool:
        """Whether these committed events may leave a duty to do."""

    @abc.abstractmethod
    async def todos(self) -> list[Todo]:
        """Every duty due now, decided from what is stored (called under the loop's lock)."""

    def count_signed(self, kind: str) -> None:
        """Count one event of ``kind`` the node signed (metrics)."""
        self.signed[kind] = self.signed.get(kind, 0) + 1

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Listen to commits, do what is due now (a restart picks up where it stopped), and,
        with a ``period_s``, look again every ``period_s``."""
        self.ingest.listeners.append(self._on_commit)
        self._tasks = [asyncio.create_task(self._loop(), name=f"kith-{self.name}")]
        if self._period_s is not None:
            self._tasks.append(asyncio.create_task(self._tick(), name=f"kith-{self.name}-tick"))
        self._wake.set()

    async def stop(self) -> None:
        """Stop listening; a duty in progress is cancelled between two signatures."""
        with contextlib.suppress(ValueError):
            self.ingest.listeners.remove(self._on_commit)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def _on_commit(self, committed: list[Committed]) -> None:
        if self.wakes(committed):
            self._wake.set()

    async def _tick(self) -> None:
        assert self._period_s is not None
        while True:
            await asyncio.sleep(self._period_s)
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.run_due()
            except Exception:  # pragma: no cover - never let one bad duty stop the others
                self._log.exception("%s duty failed", self.name)

    async def run_due(self) -> int:
        """Sign every duty due now; returns how many events were signed."""
        async with self._lock:
            todos = await self.todos()
            done = 0
            for todo in todos:
                result = await self.signer.post(self.key, todo.kind, todo.body, scope=todo.scope)
                if result.ok:
                    done += 1
                    self.count_signed(todo.kind)
                else:
                    self._log.warning("%s duty %s refused: %s", self.name, todo.kind, result.reason)
            return done
