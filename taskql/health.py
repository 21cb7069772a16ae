"""``/healthz``: the process answers. ``/readyz``: PostgreSQL and Redis answer and migrations are at head."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from taskql.migrate import head_revision

if TYPE_CHECKING:
    from taskql.app import Resources

CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _postgres(resources: Resources) -> dict[str, Any]:
    async with resources.engine.connect() as connection:
        revision = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    head = head_revision()
    return {"ok": revision == head, "revision": revision, "head": head}


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
    ready = all(check["ok"] for check in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )
