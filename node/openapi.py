"""``/schema/openapi.json``: Litestar's generated document, plus what signatures cannot say.

Litestar builds the schema from the handlers' signatures. Three things are not in them, and
this room adds them when the document is first asked for (from the routes themselves, not
from a hand-kept list):

* the ``Kith`` security scheme (``Authorization: Kith <token>``, DESIGN §6), on every route
  that reads a token — optional where a token only widens what one sees, required where a
  handler says ``opt={"token": "required"}``;
* the error answers, all ``Problem`` (``node.http``): 401 where a token is read, 404 on routes
  with path parameters, 413 on routes that take a body, and Litestar's own 400 (which it
  documents in its old ``{status_code, detail}`` shape) as the ``Problem`` it now is;
* the request body of ``POST /v1/events``, which the handler reads raw (one envelope or
  ``{"events": [...]}``) so that envelopes reach the verifier as the bytes that were signed.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.routes import HTTPRoute

from node.http import Problem
from protocol.envelope import Envelope

__all__ = ["SCHEME", "KithSchema", "document"]

#: The security scheme's name in the document, and the token's scheme in the header.
SCHEME = "Kith"
_REF = "#/components/schemas/{name}"
_BODY_METHODS = frozenset({"post", "put", "patch"})
_ERRORS = {
    "400": "Not a valid request (bad JSON, a bad parameter): `reason` says which.",
    "401": "A token that does not hold (malformed, expired, for another node, not a member's),"
    " or none where one is needed.",
    "404": "No such thing here, or not one this reader may see (the same answer, to reveal"
    " nothing).",
    "413": "The request body is larger than the node takes (`limits.request_bytes` in"
    " /.well-known/kith).",
}


class KithSchema(JsonRenderPlugin):
    """``/schema/openapi.json``: the generated document, completed by ``document`` once."""

    def __init__(self, *, max_batch: int) -> None:
        super().__init__()
        self.max_batch = max_batch
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The completed document (built on the first request, then kept)."""
        if self._rendered is None:
            done = document(copy.deepcopy(openapi_schema), request.app, max_batch=self.max_batch)
            self._rendered = self.render_json(request, done)
        return self._rendered


def document(schema: dict[str, Any], app: Litestar, *, max_batch: int) -> dict[str, Any]:
    """Add the token scheme, the ``Problem`` answers and the events body to ``schema``."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _, defs = msgspec.json.schema_components([Problem, Envelope], ref_template=_REF)
    schemas["Problem"] = defs["Problem"]
    schemas.setdefault("Envelope", defs["Envelope"])
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Authorization: Kith <token>`: a token signed by a member's key for"
        " this node (docs/protocol.md, tokens). Without one, a route answers what anyone"
        " may read.",
    }
    paths: dict[str, Any] = schema.get("paths", {})
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or (route.path_format or "/") not in paths:
            continue
        item = paths[route.path_format or "/"]
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = item.get(method.lower())
                if operation is None or handler.handler_name == "options_handler":
                    continue
                token = handler.opt.get("token") or (
                    "optional" if "reader" in handler.parsed_fn_signature.parameters else None
                )
                _complete(operation, method.lower(), token, bool(route.path_parameters))
    events = paths.get("/v1/events", {}).get("post")
    if events is not None:
        events["requestBody"] = _events_body(max_batch)
        events["responses"]["400"] = _problem("400")  # a body that is not JSON
    return schema


def _complete(operation: dict[str, Any], method: str, token: str | None, has_path: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for answer in responses.values():
        _drop_empty_alternative(answer)
    wanted = {"400"} & set(responses)  # Litestar's own 400, re-described as a Problem
    if token is not None:
        operation["security"] = [{SCHEME: []}] if token == "required" else [{}, {SCHEME: []}]
        wanted.add("401")
    if has_path:
        wanted.add("404")
    if method in _BODY_METHODS:
        wanted.add("413")
    for status in sorted(wanted):
        responses[status] = _problem(status)


def _problem(status: str) -> dict[str, Any]:
    return {
        "description": _ERRORS[status],
        "content": {"application/json": {"schema": {"$ref": _REF.format(name="Problem")}}},
    }


def _drop_empty_alternative(answer: dict[str, Any]) -> None:
    """``X | Response[Problem]`` comes out as ``oneOf: [X, {}]``: say ``X``."""
    for media in (answer.get("content") or {}).values():
        alternatives = (media.get("schema") or {}).get("oneOf")
        if alternatives and {} in alternatives:
            kept = [alt for alt in alternatives if alt != {}]
            media["schema"] = kept[0] if len(kept) == 1 else {"oneOf": kept}


def _events_body(max_batch: int) -> dict[str, Any]:
    envelope = {"$ref": _REF.format(name="Envelope")}
    batch = {
        "type": "object",
        "properties": {"events": {"type": "array", "items": envelope, "maxItems": max_batch}},
        "required": ["events"],
        "title": "Batch",
    }
    return {
        "required": True,
        "description": 'One envelope, or `{"events": [...]}` with up to the node\'s'
        " `limits.batch_events`; each answered in order in `results`.",
        "content": {"application/json": {"schema": {"oneOf": [envelope, batch]}}},
    }
