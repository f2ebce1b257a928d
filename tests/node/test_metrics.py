"""``GET /metrics`` of a real node serving HTTP on loopback, parsed as Prometheus would."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client import CONTENT_TYPE_LATEST

from node.datadir import read_key_file
from protocol.envelope import Envelope, encode_envelope
from tests.node.conftest import PodBuilder, Scrape, Served, event_id, now_ms, signing_key


def post(url: str, *envs: Envelope) -> list[dict[str, object]]:
    body = b'{"events":[' + b",".join(encode_envelope(e) for e in envs) + b"]}"
    response = httpx.post(url + "/v1/events", content=body)
    assert response.status_code == 200, response.text
    results: list[dict[str, object]] = response.json()["results"]
    return results


def builder(served: Served) -> PodBuilder:
    pod = PodBuilder("metrics", ts=now_ms())
    pod.root = read_key_file(served.data.root_key_path).signing_key()
    pod.node = read_key_file(served.data.node_key_path).signing_key()
    return pod


def test_a_scrape_counts_events_commits_and_requests_by_route(served: Served) -> None:
    pod = builder(served)
    ada = pod.key("ada")
    need = pod.need(ada, "Soup for Ada")
    good = post(served.url, pod.add(ada), need)
    assert [r["ok"] for r in good] == [True, True], good
    stranger = pod.need(signing_key("stranger"))
    bad = post(served.url, stranger)
    assert bad[0]["reason"] == "unauthorized"
    assert httpx.post(served.url + "/v1/events", content=b"[1,").status_code == 400
    assert httpx.get(served.url + f"/v1/events/{event_id(need)}").status_code == 404  # pod scope
    assert httpx.get(served.url + "/no/such/route").status_code == 404

    response = httpx.get(served.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    scrape = Scrape.parse(response.text)

    assert scrape.value("kith_events_total", outcome="accepted") == 2
    assert scrape.value("kith_events_total", outcome="unauthorized") == 1
    assert scrape.value("kith_cursor") == 4  # pod.created, node.key, Ada, her need
    # One write group per submission: Ada's two events, then the stranger's need (refused by
    # the writer, where authorization is decided against the roster).
    assert scrape.value("kith_commit_batch_events_count") == 2
    assert scrape.value("kith_commit_batch_events_sum") == 3
    assert scrape.value("kith_commit_batch_events_bucket", le="1.0") == 1
    assert scrape.value("kith_commit_seconds_count") == 2
    # Requests by route template and status, never by raw path.
    requests = scrape.labelled("kith_http_requests_total")
    assert requests == {
        (("method", "POST"), ("route", "/v1/events"), ("status", "200")): 2,
        (("method", "POST"), ("route", "/v1/events"), ("status", "400")): 1,
        (("method", "GET"), ("route", "/v1/events/{event_id}"), ("status", "404")): 1,
        (("method", "GET"), ("route", "unmatched"), ("status", "404")): 1,
    }
    store_bytes = scrape.value("kith_store_bytes")
    assert store_bytes is not None and store_bytes > 0
    assert scrape.value("kith_stream_subscriptions") == 0
    assert scrape.value("kith_federation_lag_max_events", direction="in") == 0
    # Process and platform collectors, on the node's own registry.
    assert (scrape.value("kith_process_resident_memory_bytes") or 0) > 0
    assert [s for s in scrape.samples if s.name == "python_info"]

    # The scrape itself is counted by the next one.
    again = Scrape.parse(httpx.get(served.url + "/metrics").text)
    assert again.value("kith_http_requests_total", method="GET", route="/metrics", status="200")


def test_no_label_holds_a_pod_id_key_or_event_id(served: Served) -> None:
    pod = builder(served)
    ada = pod.key("ada")
    need = pod.need(ada)
    post(served.url, pod.add(ada), need, pod.need(signing_key("stranger")))
    httpx.get(served.url + f"/v1/events/{event_id(need)}")
    httpx.get(served.url + f"/v1/logs/{pod.id}/{ada.public_b64}/pod")
    text = httpx.get(served.url + "/metrics").text
    scrape = Scrape.parse(text)
    secrets = {pod.id, pod.node.public_b64, ada.public_b64, event_id(need)}
    values = {value for sample in scrape.samples for value in sample.labels.values()}
    assert values, "labels were read"
    assert not [v for v in values if any(secret in v for secret in secrets)]
    assert not [secret for secret in secrets if secret in text]
    assert "/v1/logs/{pod}/{author}/{log_scope}" in values


def test_two_nodes_in_one_process_count_apart(serve: Callable[..., Served]) -> None:
    oak, elm = serve(name="oak"), serve(name="elm")
    httpx.get(oak.url + "/healthz")
    oak_scrape = Scrape.parse(httpx.get(oak.url + "/metrics").text)
    elm_scrape = Scrape.parse(httpx.get(elm.url + "/metrics").text)
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert oak_scrape.value("kith_http_requests_total", **healthz) == 1
    assert elm_scrape.value("kith_http_requests_total", **healthz) is None
