"""The ceiling of ``bench.http_load``: what one uvicorn worker serves when the application does nothing.

    python -m bench.ceiling --body FILE [--host 127.0.0.1] [--port 8100]

A plain Starlette app with one route, ``GET /``, that answers the bytes of FILE (read once, then served from
memory) as JSON. uvicorn runs it with the options of ``python -m taskql serve`` (taskql/cli/main.py), so the
difference between the two is taskql's own work: uvloop and httptools (the defaults with
uvicorn[standard]), proxy headers on, one worker, the log level taskql's LOG_LEVEL=WARNING gives it (no
access log), 20 s of graceful shutdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_app(body: bytes) -> Starlette:
    async def answer(_: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/", answer, methods=["GET"])])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--body", type=Path, required=True, help="The bytes to answer.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.body.read_bytes()),
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,  # as taskql's serve does above INFO
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
