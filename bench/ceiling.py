"""The ceiling of ``bench.http_load``: what one uvicorn worker serves when the application does nothing.

    python -m bench.ceiling --body FILE [--host 127.0.0.1] [--port 8100]
    python -m bench.ceiling --body NAME=FILE [--body NAME=FILE ...]

A plain Starlette app that answers ``GET /`` with the bytes of FILE (read once, then served from memory) as
JSON; with ``NAME=FILE``, ``GET /NAME`` (``bench.documents``: one per document). uvicorn runs it with the
options of ``python -m taskql serve`` (taskql/cli/main.py), so the difference between the two is taskql's
own work: uvloop and httptools (the defaults with uvicorn[standard]), proxy headers on, one worker, the log
level taskql's LOG_LEVEL=WARNING gives it (no access log), 20 s of graceful shutdown.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_app(bodies: dict[str, bytes]) -> Starlette:
    """``GET /NAME`` answers ``bodies[NAME]`` (``GET /``: the one named "")."""

    def answer(body: bytes) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(_: Request) -> Response:
            return Response(body, media_type="application/json")

        return endpoint

    return Starlette(
        routes=[Route(f"/{name}", answer(body), methods=["GET"]) for name, body in bodies.items()]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--body", action="append", required=True, help="FILE, or NAME=FILE: the bytes to answer (at /NAME)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(
        create_app({name: Path(path).read_bytes() for name, _, path in map(_named, args.body)}),
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,  # as taskql's serve does above INFO
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


def _named(value: str) -> tuple[str, str, str]:
    name, sep, path = value.partition("=")
    return (name, sep, path) if sep else ("", "", value)


if __name__ == "__main__":
    main()
