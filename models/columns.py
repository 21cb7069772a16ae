"""Column helpers shared by the tables."""

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import Column, DateTime, func
from sqlalchemy import Enum as SAEnum


def timestamp_column(*, nullable: bool = False, default_now: bool = True) -> Any:
    return Column(
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if default_now else None,
    )


def enum_column(enum: type[Enum], name: str, default: Enum) -> Any:
    return Column(
        SAEnum(enum, name=name, values_callable=lambda e: [m.value for m in e]),
        nullable=False,
        server_default=default.value,
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
