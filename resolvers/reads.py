"""Reads on a plain connection (no ORM session): rows straight into records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncEngine


async def fetch(engine: AsyncEngine, statement: Executable) -> Sequence[Sequence[Any]]:
    async with engine.connect() as connection:
        return (await connection.execute(statement)).all()


async def scalar(engine: AsyncEngine, statement: Executable) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(statement)).scalar_one()
