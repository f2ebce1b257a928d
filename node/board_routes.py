"""The pod board (issue 13): the page at ``/`` and its files under ``/board/``, and a
self-contained ``/schema`` page.

The board is plain HTML and ES modules from ``node/board/`` (no build step, D44); everything it
runs is served from here, so a pod on a LAN without internet works. The OpenAPI page lists the
routes from the generated schema in plain HTML, with no scripts, instead of litestar's UIs,
which load theirs from CDNs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, get
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.response import File
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

#: The board's files: index.html, its modules, styles, catalogues and vendored libraries.
BOARD_DIR = Path(__file__).parent / "board"


def _import_map_hash(page: str) -> str:
    """The CSP source for the page's one inline script, its import map (browsers take import
    maps only inline); any other inline script stays refused."""
    found = re.search(r'<script type="importmap">(.*?)</script>', page, re.DOTALL)
    if found is None:
        return ""
    digest = hashlib.sha256(found.group(1).encode("utf-8")).digest()
    return f" 'sha256-{base64.b64encode(digest).decode('ascii')}'"


#: The page's policy: nothing but this node's own files, no inline code but the import map.
_CSP = (
    "default-src 'self'; "
    f"script-src 'self'{_import_map_hash((BOARD_DIR / 'index.html').read_text('utf-8'))}; "
    "style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'"
)
_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@get("/", include_in_schema=False)
async def board_page() -> File:
    """The board: one page; the browser signs, the node only serves and checks."""
    return File(
        BOARD_DIR / "index.html",
        content_disposition_type="inline",
        media_type=MediaType.HTML,
        headers=_HEADERS,
    )


board_files = create_static_files_router(
    path="/board",
    directories=[BOARD_DIR],
    include_in_schema=False,
    name="board",
    # No cache header: the browser revalidates each file, so a node upgrade shows on next load.
)

BOARD_ROUTES: list[ControllerRouterHandler] = [board_page, board_files]


class SchemaPage(OpenAPIRenderPlugin):
    """``/schema``: the routes and their summaries as plain HTML, linking ``openapi.json``.

    Litestar's Swagger, ReDoc, Scalar, RapiDoc and Stoplight pages load their scripts from
    CDNs; this one loads nothing, so it works on a LAN without internet.
    """

    def __init__(self) -> None:
        super().__init__(path="/", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page for ``openapi_schema``; every text from the schema is escaped."""
        info = openapi_schema.get("info", {})
        title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
        rows = []
        for path, item in sorted(openapi_schema.get("paths", {}).items()):
            for method, operation in item.items():
                if not isinstance(operation, dict):
                    continue
                summary = html.escape(str(operation.get("summary", "")))
                rows.append(
                    f"<tr><td><code>{html.escape(method.upper())}</code></td>"
                    f"<td><code>{html.escape(path)}</code></td><td>{summary}</td></tr>"
                )
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title></head><body><main><h1>{title}</h1>"
            f'<p>The full schema: <a href="{html.escape(self.get_openapi_json_route(request))}">'
            "openapi.json</a>. The protocol: <code>docs/protocol.md</code>.</p>"
            "<table><thead><tr><th>method</th><th>route</th><th>what</th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table></main></body></html>"
        )
        return page.encode("utf-8")
