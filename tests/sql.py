"""Capture the SQL statements the app sends to PostgreSQL during a block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette


@dataclass
class Statements:
    executed: list[tuple[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.executed)

    def matching(self, text: str) -> list[tuple[str, Any]]:
        return [(sql, params) for sql, params in self.executed if text in sql]


@contextlib.contextmanager
def captured(app: Starlette) -> Iterator[Statements]:
    engine: AsyncEngine = app.state.resources.engine
    statements = Statements()

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        statements.executed.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
