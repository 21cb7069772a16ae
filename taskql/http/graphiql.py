"""GraphiQL with its assets served by taskql itself: it works offline, and no third-party CDN sees who
opens the API's IDE. The page is Strawberry's own, with its unpkg addresses pointed here."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from strawberry.http.ides import get_graphql_ide_html

ASSETS = Path(__file__).resolve().parents[1] / "static" / "graphiql"
PREFIX = "/graphiql/"
UNPKG = "https://unpkg.com/"
# unpkg path in Strawberry's page → file here (same bytes: the page's SRI hashes still apply).
LOCAL_COPIES = {
    "graphiql@3.8.3/graphiql.min.js": "graphiql-3.8.3.min.js",
    "graphiql@3.8.3/graphiql.min.css": "graphiql-3.8.3.min.css",
    "react@18.2.0/umd/react.production.min.js": "react-18.2.0.production.min.js",
    "react-dom@18.2.0/umd/react-dom.production.min.js": "react-dom-18.2.0.production.min.js",
    "@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": "plugin-explorer-1.0.2.umd.js",
    "@graphiql/plugin-explorer@1.0.2/dist/style.css": "plugin-explorer-1.0.2.css",
    "js-cookie@3.0.5/dist/js.cookie.min.js": "js-cookie-3.0.5.min.js",
}
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@cache
def page() -> str:
    html = get_graphql_ide_html(graphql_ide="graphiql")
    for remote, local in LOCAL_COPIES.items():
        html = html.replace(UNPKG + remote, PREFIX + local)
    return html


@cache
def _asset(name: str) -> tuple[bytes, bool] | None:
    """The file's bytes and whether they are gzipped; None for anything not in the list."""
    if name not in LOCAL_COPIES.values():
        return None
    plain = ASSETS / name
    if plain.exists():
        return plain.read_bytes(), False
    return (ASSETS / f"{name}.gz").read_bytes(), True


async def graphiql_asset(request: Request) -> Response:
    name = request.path_params["name"]
    found = _asset(name)
    if found is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    body, gzipped = found
    # Versioned names: cache for a year.
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
    if gzipped:
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
        else:
            body = gzip.decompress(body)
    return Response(body, media_type=MEDIA_TYPES[Path(name).suffix], headers=headers)
