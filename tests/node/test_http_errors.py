"""Every HTTP error has one shape, ``{"reason", "message"}`` — Litestar's own answers too —
through a real node serving HTTP on loopback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
from litestar import get

from tests.node.conftest import Served

MARKER = "Ada-Lovelace-42-Elm-Street"
SCHEMA_HINT = "GET /schema lists this node's routes and what each takes"


def problem(response: httpx.Response, status: int) -> dict[str, str]:
    """The body of an error answer, checked to be a ``Problem`` and nothing more."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, str] = response.json()
    assert sorted(body) == ["message", "reason"], body
    assert MARKER not in response.text
    return body


def test_an_unknown_route_is_404_not_found(served: Served) -> None:
    body = problem(httpx.get(served.url + f"/v2/{MARKER}"), 404)
    assert body == {"reason": "not-found", "message": f"nothing here: {SCHEMA_HINT}"}


def test_a_route_of_ours_says_its_own_404(served: Served) -> None:
    body = problem(httpx.get(served.url + "/v1/events/" + "A" * 43), 404)
    assert body == {"reason": "not-found", "message": "no such event"}


def test_a_wrong_method_is_405_and_names_the_allowed_ones(served: Served) -> None:
    response = httpx.delete(served.url + "/v1/events")
    body = problem(response, 405)
    assert body["reason"] == "method-not-allowed"
    assert body["message"].startswith("DELETE is not allowed here; this route answers ")
    assert {"GET", "POST"} <= set(response.headers["allow"].split(", "))


def test_malformed_json_in_a_typed_body_is_400_invalid_request(served: Served) -> None:
    body = problem(
        httpx.post(served.url + "/v1/federation/sync", content=b"{" + MARKER.encode()), 400
    )
    assert body["reason"] == "invalid:request"
    assert body["message"].startswith("JSON is malformed: ")
    assert body["message"].endswith(SCHEMA_HINT)


def test_a_body_that_is_not_a_json_object_is_400_from_our_route(served: Served) -> None:
    body = problem(httpx.post(served.url + "/v1/events", content=b"[1,"), 400)
    assert body == {"reason": "invalid:request", "message": "the request body is not a JSON object"}


def test_a_bad_parameter_is_400_and_named_without_its_value(served: Served) -> None:
    body = problem(httpx.get(served.url + "/v1/needs", params={"limit": MARKER}), 400)
    assert body == {
        "reason": "invalid:parameter",
        "message": f"`limit` (query) is not a valid value here: {SCHEMA_HINT}",
    }
    body = problem(httpx.get(served.url + "/v1/needs", params={"status": MARKER}), 400)
    assert body["message"].startswith("`status` (query) is not one of the allowed values")


def test_a_bad_token_is_401_with_its_reason_and_the_scheme(served: Served) -> None:
    response = httpx.get(served.url + "/v1/events", headers={"authorization": f"Bearer {MARKER}"})
    body = problem(response, 401)
    assert body == {
        "reason": "invalid:token:format",
        "message": "the Authorization header is not a Kith token:"
        " send 'Authorization: Kith <token>'",
    }
    assert response.headers["www-authenticate"] == "Kith"


def test_a_sync_without_the_node_key_is_403(served: Served) -> None:
    response = httpx.post(served.url + "/v1/federation/sync", json={"url": "wss://x/v1/federation"})
    assert problem(response, 403) == {
        "reason": "unauthorized",
        "message": "only the node's key may sync",
    }


def test_a_body_over_the_limit_is_413_too_large(serve: Callable[..., Served]) -> None:
    served = serve(max_request_bytes=4096)
    body = problem(httpx.post(served.url + "/v1/events", content=b" " * 5000), 413)
    assert body == {
        "reason": "too-large",
        "message": "the request body is larger than this node takes (4096 bytes): send fewer"
        " events per request",
    }


@get("/test/boom")
async def boom() -> Any:
    """A route with a bug in it, whose exception quotes what someone posted."""
    raise RuntimeError(f"could not place {MARKER}")


class Records(logging.Handler):
    """The records of one logger (Litestar's logging config replaces the root's handlers, so
    pytest's ``caplog`` sees nothing a served node logs)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_internal_error_is_500_and_says_nothing_of_its_cause(
    serve: Callable[..., Served],
) -> None:
    served = serve(handlers=[boom])
    logger, records = logging.getLogger("kith.http"), Records()
    logger.addHandler(records)
    try:
        body = problem(httpx.get(served.url + "/test/boom"), 500)
    finally:
        logger.removeHandler(records)
    assert body == {
        "reason": "internal",
        "message": "the node failed to answer this request; try again, or tell its operator",
    }
    (record,) = records.records
    logged = record.getMessage()
    assert logged.startswith("internal error answering GET /test/boom: RuntimeError\n")
    assert "raise RuntimeError" in logged  # the stack, for the operator
    assert MARKER not in logged
