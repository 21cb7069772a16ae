"""Statements compiled once to PostgreSQL's own text (``$1``, ``$2``, ...), for the raw asyncpg reads.

SQLAlchemy builds the SQL (one dialect, one place that quotes and casts); it is compiled here once per
statement, or once per *shape* of a statement whose parts vary (a listing's filters and order), and each
execution only fills the parameters. No SQLAlchemy runs on the hot path: no compiled-cache key, no result
processing, no greenlet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
NO_VALUES: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Sql:
    """The text of one statement and where its parameters come from: each ``$n`` is a named parameter,
    filled from the values of an execution, or a constant written into the statement when it was built."""

    text: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments, in ``$n`` order. A parameter with neither a value nor a constant is a
        bug in the caller: ``KeyError`` names it."""
        constants = self.constants
        return tuple(values[name] if name in values else constants[name] for name in self.names)


def compile_sql(statement: ClauseElement, *, constants: bool = True) -> Sql:
    """Compile ``statement`` for asyncpg. Parameters made with ``bindparam(name)`` and no value are filled
    per execution. With ``constants=False`` (statements compiled once per shape and reused for other
    values), any parameter that carries a value is refused: it would be frozen into every later execution."""
    compiled = statement.compile(dialect=_DIALECT)
    assert isinstance(compiled, SQLCompiler)
    if "POSTCOMPILE" in compiled.string:
        raise ValueError(
            "IN with a list parameter varies with its length: use = any(bindparam(...)) instead."
        )
    names = tuple(compiled.positiontup or ())
    fixed = {
        name: bind.value
        for name, bind in compiled.binds.items()
        if name in names and bind.value is not None and not bind.required
    }
    if fixed and not constants:
        raise ValueError(
            f"Parameters {sorted(fixed)} carry values, but this statement is reused for other values: "
            "make them bindparam(name) and pass their values per execution."
        )
    return Sql(text=compiled.string, names=names, constants=fixed)
