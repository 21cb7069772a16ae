"""Reads on a plain connection (no ORM session): rows straight into records.

Each read is one statement, so it runs in autocommit: the statement is its own transaction, exactly as
before, without the BEGIN and ROLLBACK round trips the driver would add around it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


Params = Mapping[str, Any] | None


async def _execute(connection: AsyncConnection, statement: Executable, params: Params) -> CursorResult[Any]:
    await connection.execution_options(**AUTOCOMMIT)
    return await connection.execute(statement, params)


async def fetch(engine: AsyncEngine, statement: Executable, params: Params = None) -> Sequence[Sequence[Any]]:
    async with engine.connect() as connection:
        return (await _execute(connection, statement, params)).all()


async def scalar(engine: AsyncEngine, statement: Executable) -> Any:
    async with engine.connect() as connection:
        return (await _execute(connection, statement, None)).scalar_one()
