"""What both references share to run: their settings, their pool and their command line, served by uvicorn
as ``python -m taskql serve`` serves taskql (one worker, httptools, uvloop when installed, log level
warning, no access log, keep-alive 5 s)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvicorn
from starlette.types import ASGIApp

from bench.references.viewer import TokenCheck


@dataclass(frozen=True, slots=True)
class ReferenceSettings:
    database_url: str
    tokens: TokenCheck
    pool_size: int = 20  # taskql's read pool: DB_POOL_SIZE + DB_MAX_OVERFLOW


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://``) or a plain one, as asyncpg takes it."""
    scheme, separator, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{separator}{rest}"


async def _keep_session(connection: Any) -> None:
    """Nothing to reset between single autocommit reads (taskql's read pools skip it too)."""


async def create_pool(settings: ReferenceSettings) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url),
        min_size=0,
        max_size=settings.pool_size,
        max_inactive_connection_lifetime=300,
        reset=_keep_session,
    )
    return pool


def uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools",
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=5,
    )


def main(
    name: str, create_app: Callable[[ReferenceSettings], ASGIApp], argv: list[str] | None = None
) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m bench.references.{name}", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--jwt-secret", required=True, help="taskql's JWT_SECRET")
    parser.add_argument("--jwt-issuer", default="taskql")
    parser.add_argument("--jwt-audience", default="taskql")
    options = parser.parse_args(argv)
    settings = ReferenceSettings(
        options.database_url, TokenCheck(options.jwt_secret, options.jwt_issuer, options.jwt_audience)
    )
    uvicorn.Server(uvicorn_config(create_app(settings), options.host, options.port)).run()
