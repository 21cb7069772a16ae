"""The Redis client, with short timeouts: a slow Redis must not hold requests hostage."""

from __future__ import annotations

from redis.asyncio import Redis

from core.settings import Settings


def create_redis(settings: Settings) -> Redis:
    assert settings.redis_url, "the Redis URL is resolved before the client is made"
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_socket_timeout_seconds,
        health_check_interval=30,
        decode_responses=False,
    )
