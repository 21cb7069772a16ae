"""The PostgreSQL engine and session factory (SQLAlchemy async over asyncpg)."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.settings import Settings


def async_url(url: str) -> str:
    """Accept the usual ``postgresql://`` / ``postgres://`` URLs and select the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql", "postgresql+asyncpg"}:
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {parsed.drivername!r}.")


def create_engine(settings: Settings) -> AsyncEngine:
    assert settings.database_url, "the database URL is resolved before the engine is made"
    return create_async_engine(
        async_url(settings.database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No ping before each checkout: with asyncpg it costs three round trips (a third of a page's SQL
        # time). A connection the server dropped fails its first use instead, and SQLAlchemy then
        # discards the whole pool, so one request fails after a PostgreSQL restart, not every one.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "application_name": "taskql",
            },
            "timeout": 10,
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
