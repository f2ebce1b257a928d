"""The pod board (issue 13): the page at ``/`` and its files under ``/board/``, and a
self-contained ``/schema`` page.

The board is plain HTML and ES modules from ``node/board/`` (no build step, D44); everything it
runs is served from here, so a pod on a LAN without internet works. Each file is sent
gzip-compressed when the browser takes it (compressed once, in memory; the bytes decoded are the
file in git), with an ETag, so a reload revalidates to ``304`` (D46). Only these routes
compress: the API and the streams are untouched. The OpenAPI page lists the
routes from the generated schema in plain HTML, with no scripts, instead of litestar's UIs,
which load theirs from CDNs.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath
from litestar.status_codes import HTTP_304_NOT_MODIFIED
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
}
#: Every file is revalidated on each load (a node upgrade shows on the next one); unchanged
#: files answer ``304 Not Modified`` from their ETag, so a warm load moves almost no bytes.
_CACHE = "no-cache"
#: Smaller files are sent as they are (gzip's header would eat the saving).
_MIN_GZIP = 512
#: Litestar adds ``; charset=utf-8`` to the ``text/`` ones.
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".md": "text/markdown",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    """One board file as served: its bytes from git, their gzip form (when smaller), the
    validators."""

    raw: bytes
    gzip: bytes | None
    etag: str  # the identity form's, quoted; the gzip form's adds ``-gz`` inside the quotes
    last_modified: str
    media_type: str


#: Each file read and compressed once, again only when it changes on disk (size or mtime).
_assets: dict[Path, tuple[tuple[int, int], Asset]] = {}
_ROOT = BOARD_DIR.resolve()


def board_asset(rel: str) -> Asset | None:
    """The file ``rel`` under ``node/board/``, or ``None`` if there is no such file there."""
    path = (_ROOT / rel.lstrip("/")).resolve()
    if not path.is_relative_to(_ROOT) or not path.is_file():
        return None
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _assets.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    raw = path.read_bytes()
    packed = gzip.compress(raw, 9, mtime=0) if len(raw) >= _MIN_GZIP else None
    asset = Asset(
        raw=raw,
        gzip=packed if packed is not None and len(packed) < len(raw) else None,
        etag='"' + hashlib.sha256(raw).hexdigest()[:32] + '"',
        last_modified=formatdate(st.st_mtime, usegmt=True),
        media_type=_TYPES.get(path.suffix, "application/octet-stream"),
    )
    _assets[path] = (stamp, asset)
    return asset


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``q=0`` refuses; ``*`` counts)."""
    named: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name:
            named[name.strip()] = q
    return named.get("gzip", named.get("x-gzip", named.get("*", 0.0))) > 0


def _serve(
    request: Request[Any, Any, Any], asset: Asset, headers: dict[str, str]
) -> Response[bytes]:
    """``asset`` compressed if the browser takes gzip; ``304`` if it already holds this version."""
    packed = (
        asset.gzip
        if asset.gzip is not None and accepts_gzip(request.headers.get("accept-encoding", ""))
        else None
    )
    etag = asset.etag[:-1] + '-gz"' if packed is not None else asset.etag
    out = {
        **headers,
        "cache-control": _CACHE,
        "etag": etag,
        "last-modified": asset.last_modified,
        "x-content-type-options": "nosniff",
    }
    if asset.gzip is not None:
        out["vary"] = "accept-encoding"
    held = request.headers.get("if-none-match")
    if held is not None:
        # Either form of the same bytes will do: the browser decodes what it stored.
        tags = {t.strip().removeprefix("W/") for t in held.split(",")}
        fresh = "*" in tags or bool(tags & {asset.etag, asset.etag[:-1] + '-gz"'})
    else:
        since = request.headers.get("if-modified-since")
        fresh = since is not None and _not_after(asset.last_modified, since)
    if fresh:
        return Response(b"", status_code=HTTP_304_NOT_MODIFIED, headers=out)
    if packed is not None:
        out["content-encoding"] = "gzip"
    return Response(packed or asset.raw, media_type=asset.media_type, headers=out)


def _not_after(modified: str, since: str) -> bool:
    try:
        return parsedate_to_datetime(modified) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False


@get("/", include_in_schema=False)
async def board_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The board: one page; the browser signs, the node only serves and checks."""
    asset = board_asset("index.html")
    if asset is None:  # pragma: no cover - the page ships with the node
        raise NotFoundException()
    return _serve(request, asset, _HEADERS)


@get("/board/{path:path}", include_in_schema=False, name="board")
async def board_files(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[bytes]:
    """The board's modules, styles, catalogues and vendored libraries, from ``node/board/``."""
    asset = board_asset(path)
    if asset is None:
        raise NotFoundException()
    return _serve(request, asset, {})


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
