"""``/healthz``: the process answers. ``/readyz``: can this instance serve?

- ``ready`` (200): PostgreSQL answers at the head migration (or at a newer one this code does not know,
  written by the next release during a rolling deploy), and Redis answers.
- ``degraded`` (200): PostgreSQL is fine but Redis is not: requests are served, uncached (and without APQ
  lookups) until Redis is back.
- ``unavailable`` (503): PostgreSQL does not answer, or its schema is behind this code's head (run
  ``python -m taskql migrate``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from taskql.migrate import head_revision, revision_of, state_of

if TYPE_CHECKING:
    from taskql.app import Resources

CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _postgres(resources: Resources) -> dict[str, Any]:
    async with resources.engine.connect() as connection:
        revision = await revision_of(connection)
    state = state_of(revision)
    return {"ok": state != "behind", "revision": revision, "head": head_revision(), "schema": state}


async def _redis(resources: Resources) -> dict[str, Any]:
    return {"ok": bool(await resources.redis.ping())}


async def _check(name: str, check: Any, resources: Resources) -> tuple[str, dict[str, Any]]:
    try:
        return name, await asyncio.wait_for(check(resources), CHECK_TIMEOUT_SECONDS)
    except Exception as error:
        return name, {"ok": False, "error": type(error).__name__}


async def readyz(request: Request) -> JSONResponse:
    resources: Resources = request.app.state.resources
    checks = dict(
        await asyncio.gather(_check("postgres", _postgres, resources), _check("redis", _redis, resources))
    )
    checks["redis"]["circuit"] = "closed" if resources.guard.available else "open"
    if not checks["postgres"]["ok"]:
        return JSONResponse({"status": "unavailable", "checks": checks}, 503)
    status = "ready" if checks["redis"]["ok"] else "degraded"
    return JSONResponse({"status": status, "checks": checks}, 200)
