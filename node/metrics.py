"""``GET /metrics``: one node's Prometheus metrics, on a registry of its own.

Each ``Node`` owns a ``NodeMetrics``: a ``prometheus_client.CollectorRegistry`` (never the
process-global one: tests, ``kith demo`` and benchmarks run several nodes in one process, and
each must count only its own) holding

* what the node already counts, read at scrape time (no second bookkeeping): events by outcome
  (``accepted``, ``duplicate`` or the rejection's reason), federation happenings, peer links by
  state and their lag, duties' signed events, overflow refusals, stream connections and
  subscriptions, the held events and the store's size on disk;
* what only a metric keeps: group-commit sizes and latencies (the ingestor reports each write
  group), HTTP requests by route template and status;
* the process and platform collectors (CPU, memory, open files, Python version).

Labels never carry a pod id, a key, an address, a name or a raw path — only route templates,
reasons, kinds and states (D52): who federates with whom, and who asked for what, stay private.

    >>> from prometheus_client.parser import text_string_to_metric_families
    >>> metrics = HttpMetrics()
    >>> metrics.observe("GET", "/v1/events/{event_id}", 404)
    >>> [s.labels for f in text_string_to_metric_families(metrics.render().decode())
    ...  for s in f.samples if s.name == "kith_http_requests_total"]
    [{'method': 'GET', 'route': '/v1/events/{event_id}', 'status': '404'}]
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from node.duties import DutyLoop
    from node.fanout import Fanout
    from node.federation import Federation
    from node.ingest import Ingestor
    from node.overflow import Duties

__all__ = ["CONTENT_TYPE_LATEST", "MEDIA_TYPE", "HttpMetrics", "NodeCollector", "NodeMetrics"]

#: ``CONTENT_TYPE_LATEST`` without its charset, which Litestar appends to every ``text/``
#: media type: the answer then carries ``CONTENT_TYPE_LATEST`` exactly.
MEDIA_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")

#: The HTTP methods counted by name; any other (a client may send any token) is ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The ``route`` label of a request no route matched (404, or a 405 before routing).
UNMATCHED = "unmatched"
#: Write groups hold 1 to ``node.ingest.MAX_GROUP`` (4096) events.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 4096)
#: A commit is an fsync or two: milliseconds on a disk, up to seconds on a busy SD card.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HttpMetrics:
    """A registry with the HTTP request counter: what every node has, even before it runs."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "kith_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str | None, status: int) -> None:
        """Count one answered request; ``route`` is its template (``None``: none matched)."""
        self.http_requests.labels(
            route=route or UNMATCHED,
            method=method if method in METHODS else "other",
            status=str(status),
        ).inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


class NodeMetrics(HttpMetrics):
    """Every metric of one node, on its own registry.

    ``cursor`` is set by the scrape (reading it needs the store, which is async); the rest is
    observed as it happens or read from the node's rooms when scraped.
    """

    def __init__(self, rooms: NodeCollector) -> None:
        super().__init__()
        self.cursor = Gauge("kith_cursor", "Last committed cursor.", registry=self.registry)
        self.commit_batch = Histogram(
            "kith_commit_batch_events",
            "Events per group commit (one transaction of the single writer).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "kith_commit_seconds",
            "Time to write and commit one group, in seconds.",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        rooms.ingest.group_observers.append(self.observe_group)
        self.registry.register(rooms)
        ProcessCollector(namespace="kith", registry=self.registry)
        PlatformCollector(registry=self.registry)

    def observe_group(self, events: int, seconds: float) -> None:
        """The ingestor committed one group of ``events`` in ``seconds``."""
        self.commit_batch.observe(events)
        self.commit_seconds.observe(seconds)


@dataclass(frozen=True, eq=False)
class NodeCollector(Collector):
    """The node's rooms whose counts a scrape reads (``NodeMetrics`` registers it)."""

    ingest: Ingestor
    federation: Federation
    fanout: Fanout
    overflow: Duties
    duties: tuple[DutyLoop, ...]
    stream_connections: dict[str, int]
    db_path: Path

    def collect(self) -> Iterator[Metric]:
        """The metric families, as the rooms count them now."""
        yield _counter(
            "kith_events",
            "Events handled, by outcome (accepted, duplicate or the rejection's reason).",
            "outcome",
            self.ingest.counters,
        )
        held = GaugeMetricFamily(
            "kith_held_events", "Events waiting for a missing prev or roster event."
        )
        held.add_metric([], self.ingest.held_count())
        yield held
        yield from self._federation()
        for duty in self.duties:
            yield _counter(
                f"kith_{duty.name}_signed",
                f"Events the node signed on its own for its {duty.name} duties, by kind.",
                "kind",
                duty.signed,
            )
        yield _counter(
            "kith_overflow_refused",
            "Overflow moves refused, by reason.",
            "reason",
            self.overflow.refused,
        )
        streams = GaugeMetricFamily("kith_stream_connections", "Open client streams.")
        streams.add_metric([], sum(self.stream_connections.values()))
        yield streams
        subs = GaugeMetricFamily("kith_stream_subscriptions", "Live stream subscriptions.")
        subs.add_metric([], len(self.fanout))
        yield subs
        size = GaugeMetricFamily(
            "kith_store_bytes", "The database on disk, in bytes (with its write-ahead log)."
        )
        size.add_metric([], _store_bytes(self.db_path))
        yield size

    def _federation(self) -> Iterator[Metric]:
        yield _counter(
            "kith_federation",
            "Federation happenings (refusals, floods, session ends).",
            "what",
            self.federation.counters,
        )
        statuses = list(self.federation.statuses.values())
        # Counted by state and summed over peers, never labelled by peer (D52).
        peers = GaugeMetricFamily("kith_federation_peers", "Peer links by state.", labels=["state"])
        for state, count in sorted(collections.Counter(s.state for s in statuses).items()):
            peers.add_metric([state], count)
        yield peers
        lag_in = [max(0, s.their_cursor - s.received_upto) for s in statuses]
        our = self.federation.committed
        lag_out = [max(0, our - s.covered_upto) for s in statuses if s.state == "live"]
        worst = GaugeMetricFamily(
            "kith_federation_lag_max_events",
            "The largest lag over peers, in events: in (theirs we lack), out (ours a live"
            " peer lacks).",
            labels=["direction"],
        )
        lagging = GaugeMetricFamily(
            "kith_federation_lagging_peers",
            "Peers with any lag, by direction.",
            labels=["direction"],
        )
        for direction, lags in (("in", lag_in), ("out", lag_out)):
            worst.add_metric([direction], max(lags, default=0))
            lagging.add_metric([direction], sum(1 for lag in lags if lag > 0))
        yield worst
        yield lagging


def _counter(name: str, documentation: str, label: str, counts: dict[str, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


def _store_bytes(db_path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += db_path.with_name(db_path.name + suffix).stat().st_size
    return total
