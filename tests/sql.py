"""Capture the SQL statements the app sends to PostgreSQL during a block: the writes' (SQLAlchemy engine
events) and the reads' (every statement of the raw asyncpg read pools, ``core.reader``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from taskql.app import TaskqlApp

ENGINE = "engine"  # the source of statements sent through SQLAlchemy (writes, ORM sessions)


@dataclass
class Statements:
    executed: list[tuple[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # for each statement: "engine", "primary" or "replica"

    def __len__(self) -> int:
        return len(self.executed)

    def matching(self, text: str) -> list[tuple[str, Any]]:
        return [(sql, params) for sql, params in self.executed if text in sql]

    def served_by(self, text: str) -> list[str]:
        """Which pool sent each statement containing ``text``, in order."""
        return [source for (sql, _), source in zip(self.executed, self.sources, strict=True) if text in sql]

    def add(self, source: str, sql: str, params: Any) -> None:
        self.executed.append((sql, params))
        self.sources.append(source)


@contextlib.contextmanager
def captured(app: TaskqlApp) -> Iterator[Statements]:
    resources = app.resources
    engine: AsyncEngine = resources.engine
    statements = Statements()

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        statements.add(ENGINE, statement, parameters)

    readers = resources.reads.readers
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    for reader in readers:
        reader.observers.append(statements.add)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        for reader in readers:
            reader.observers.remove(statements.add)
