"""``/schema/openapi.json`` of a real node serving HTTP: the token scheme, the events body and
the ``Problem`` answers that Litestar's generator cannot see in the signatures."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.node.conftest import Served

PROBLEM = {"$ref": "#/components/schemas/Problem"}
ENVELOPE = {"$ref": "#/components/schemas/Envelope"}


@pytest.fixture
def schema(served: Served) -> dict[str, Any]:
    response = httpx.get(served.url + "/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def answer_schema(schema: dict[str, Any], method: str, path: str, status: str) -> Any:
    return schema["paths"][path][method]["responses"][status]["content"]["application/json"][
        "schema"
    ]


def test_the_kith_token_scheme_is_declared_and_applied(schema: dict[str, Any]) -> None:
    assert schema["components"]["securitySchemes"]["Kith"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Authorization: Kith <token>`: a token signed by a member's key for"
        " this node (docs/protocol.md, tokens). Without one, a route answers what anyone"
        " may read.",
    }
    paths = schema["paths"]
    # Members only: the token is required.
    assert paths["/v1/timebank"]["get"]["security"] == [{"Kith": []}]
    assert paths["/v1/invites/redeem"]["post"]["security"] == [{"Kith": []}]
    # A token widens what one sees: optional (the empty requirement is "none").
    assert paths["/v1/needs"]["get"]["security"] == [{}, {"Kith": []}]
    assert paths["/v1/events/{event_id}"]["get"]["security"] == [{}, {"Kith": []}]
    # Public routes read no token.
    for path in ("/healthz", "/metrics", "/.well-known/kith"):
        assert "security" not in paths[path]["get"], path


def test_post_events_documents_its_body_and_its_answers(
    schema: dict[str, Any], served: Served
) -> None:
    post = schema["paths"]["/v1/events"]["post"]
    body = post["requestBody"]
    assert body["required"] is True
    one, batch = body["content"]["application/json"]["schema"]["oneOf"]
    assert one == ENVELOPE
    max_batch = httpx.get(served.url + "/.well-known/kith").json()["limits"]["batch_events"]
    assert batch["properties"]["events"] == {
        "type": "array",
        "items": ENVELOPE,
        "maxItems": max_batch,
    }
    assert batch["required"] == ["events"]
    envelope = schema["components"]["schemas"]["Envelope"]
    assert sorted(envelope["required"]) == ["body", "head", "sig"]
    assert answer_schema(schema, "post", "/v1/events", "200") == {
        "$ref": "#/components/schemas/PostResults"
    }
    results = schema["components"]["schemas"]["PostResults"]["properties"]["results"]
    assert results["items"] == {"$ref": "#/components/schemas/Result"}
    for status in ("400", "413"):
        assert answer_schema(schema, "post", "/v1/events", status) == PROBLEM


def test_401_404_413_and_400_answers_are_problems(schema: dict[str, Any]) -> None:
    assert schema["components"]["schemas"]["Problem"]["required"] == ["reason", "message"]
    assert answer_schema(schema, "get", "/v1/timebank", "401") == PROBLEM
    assert answer_schema(schema, "get", "/v1/needs", "401") == PROBLEM
    assert answer_schema(schema, "get", "/v1/events/{event_id}", "404") == PROBLEM
    assert answer_schema(schema, "get", "/v1/needs/{need_id}", "404") == PROBLEM
    assert answer_schema(schema, "post", "/v1/erasures", "413") == PROBLEM
    assert answer_schema(schema, "get", "/v1/needs", "400") == PROBLEM
    assert "404" not in schema["paths"]["/v1/needs"]["get"]["responses"]  # no path parameter
    assert "401" not in schema["paths"]["/healthz"]["get"]["responses"]
    # Litestar's own error shape is gone from the document, as from the answers.
    assert '"status_code"' not in json.dumps(schema)


def test_a_route_that_may_answer_a_problem_documents_its_success_plainly(
    schema: dict[str, Any],
) -> None:
    assert answer_schema(schema, "get", "/v1/timebank", "200") == {
        "$ref": "#/components/schemas/TimebankOut"
    }
