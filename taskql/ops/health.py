"""``/healthz``: the process answers. ``/readyz``: can this instance serve?

- ``ready`` (200): PostgreSQL answers at the head migration (or at a newer one this code does not know,
  written by the next release during a rolling deploy), and Redis answers.
- ``degraded`` (200): PostgreSQL is fine but Redis is not: requests are served, uncached (and without APQ
  lookups) until Redis is back. Still ready: taking the instance out would not bring Redis back.
- ``unavailable`` (503): PostgreSQL does not answer in time, or its schema is behind this code's head (run
  ``python -m taskql migrate``).

Cheap enough to probe every second: the migration scripts are read once per process
(``taskql.data.migrations``
caches them: parsing them costs milliseconds of CPU); a probe is the revision read on a pooled connection
and one PING, run in parallel, each bounded by ``CHECK_TIMEOUT_SECONDS`` (under a one-second probe
timeout); and probes that arrive together share one check. A PostgreSQL check that times out while every
pooled connection is in use says so (``pool_in_use``): saturation, not an outage.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from taskql.data.migrations import head_revision, revision_of, state_of

if TYPE_CHECKING:
    from taskql.app import Resources

CHECK_TIMEOUT_SECONDS = 0.8
_in_flight: dict[int, asyncio.Future[tuple[str, dict[str, Any]]]] = {}


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


async def readiness(resources: Resources) -> tuple[str, dict[str, Any]]:
    checks = dict(
        await asyncio.gather(_check("postgres", _postgres, resources), _check("redis", _redis, resources))
    )
    checks["redis"]["circuit"] = "closed" if resources.guard.available else "open"
    if not checks["postgres"]["ok"]:
        pool: Any = resources.engine.pool
        if "error" in checks["postgres"] and hasattr(pool, "checkedout"):
            checks["postgres"]["pool_in_use"] = pool.checkedout()
        return "unavailable", checks
    return ("ready" if checks["redis"]["ok"] else "degraded"), checks


async def _shared_readiness(resources: Resources) -> tuple[str, dict[str, Any]]:
    """One check at a time per app: probes that arrive while it runs get its answer."""
    key = id(resources)
    pending = _in_flight.get(key)
    if pending is None:
        pending = _in_flight[key] = asyncio.ensure_future(readiness(resources))
        pending.add_done_callback(lambda _: _in_flight.pop(key, None))
    return await asyncio.shield(pending)


async def readyz(request: Request) -> JSONResponse:
    status, checks = await _shared_readiness(request.app.state.resources)
    return JSONResponse({"status": status, "checks": checks}, 503 if status == "unavailable" else 200)
