"""``/healthz``: the process answers. ``/readyz``: can this instance serve?

- ``ready`` (200): PostgreSQL answers at the head migration (or at a newer one this code does not know,
  written by the next release during a rolling deploy), and Redis answers.
- ``degraded`` (200): PostgreSQL is fine but Redis is not: requests are served, uncached (and without APQ
  lookups) until Redis is back. Still ready: taking the instance out would not bring Redis back.
- ``unavailable`` (503): PostgreSQL does not answer in time, or its schema is behind this code's head (run
  ``python -m taskql migrate``).

Cheap enough to probe every second: the migration scripts are read once per process
(``taskql.data.migrations`` caches
them: parsing them costs milliseconds of CPU); a probe is the revision read on a pooled connection
and one PING, run in parallel, each bounded by ``CHECK_TIMEOUT_SECONDS`` (under a one-second probe
timeout); and probes that arrive together share one check. A PostgreSQL check that times out while every
pooled connection is in use says so (``pool_in_use``): saturation, not an outage.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

from taskql.data.migrations import head_revision, revision_of, state_of
from taskql.redis.client import RedisGuard
from taskql.state import StateKey

CHECK_TIMEOUT_SECONDS = 0.8


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@dataclass(eq=False)
class Readiness:
    """What ``/readyz`` checks, born in the lifespan; probes that arrive together share one check."""

    engine: AsyncEngine
    redis: Redis
    guard: RedisGuard
    _pending: asyncio.Future[tuple[str, dict[str, Any]]] | None = None

    async def check(self) -> tuple[str, dict[str, Any]]:
        """One check at a time: probes that arrive while it runs get its answer."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._check_all())
            self._pending.add_done_callback(self._done)
        return await asyncio.shield(self._pending)

    def _done(self, _: object) -> None:
        self._pending = None

    async def _check_all(self) -> tuple[str, dict[str, Any]]:
        checks = dict(
            await asyncio.gather(_bounded("postgres", self._postgres()), _bounded("redis", self._redis()))
        )
        checks["redis"]["circuit"] = "closed" if self.guard.available else "open"
        if not checks["postgres"]["ok"]:
            pool: Any = self.engine.pool
            if "error" in checks["postgres"] and hasattr(pool, "checkedout"):
                checks["postgres"]["pool_in_use"] = pool.checkedout()
            return "unavailable", checks
        return ("ready" if checks["redis"]["ok"] else "degraded"), checks

    async def _postgres(self) -> dict[str, Any]:
        async with self.engine.connect() as connection:
            revision = await revision_of(connection)
        state = state_of(revision)
        return {"ok": state != "behind", "revision": revision, "head": head_revision(), "schema": state}

    async def _redis(self) -> dict[str, Any]:
        return {"ok": bool(await self.redis.ping())}


READINESS = StateKey[Readiness]("taskql.readiness")


async def _bounded(name: str, check: Any) -> tuple[str, dict[str, Any]]:
    try:
        return name, await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
    except Exception as error:
        return name, {"ok": False, "error": type(error).__name__}


async def readyz(request: Request) -> JSONResponse:
    status, checks = await READINESS.of(request.scope).check()
    return JSONResponse({"status": status, "checks": checks}, 503 if status == "unavailable" else 200)
