"""The cache's auto-pipelined Redis connection (``taskql.redis.pipeline``), against the real Redis:
replies reach
their own callers however many share the connection, an error reply fails only its own caller, a caller
that gives up leaves no reply to anyone else, and a Redis that stops answering fails what is in flight."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskql.redis.pipeline import PipelinedRedis
from tests.services import Services


@pytest.fixture
async def pipe(services: Services) -> PipelinedRedis:
    return PipelinedRedis(services.redis_url, timeout=2.0)


async def test_concurrent_callers_each_get_their_own_replies_in_order(pipe: PipelinedRedis) -> None:
    async def caller(number: int) -> list[bytes]:
        words = [f"{number}-{part}-{secrets.token_hex(2)}" for part in range(number % 4 + 1)]
        replies = await pipe.pipeline(*(("ECHO", word) for word in words))
        assert replies == [word.encode() for word in words]
        return replies

    try:
        answered = await asyncio.gather(*(caller(number) for number in range(200)))
        assert sum(map(len, answered)) == sum(number % 4 + 1 for number in range(200))
        assert await pipe.pipeline() == []
    finally:
        pipe.close()


async def test_an_error_reply_fails_its_own_caller_only(pipe: PipelinedRedis) -> None:
    try:
        failing = pipe.pipeline(("ECHO", "before"), ("NOSUCHCOMMAND",), ("ECHO", "after"))
        others = pipe.pipeline(("ECHO", "mine"))
        results = await asyncio.gather(failing, others, return_exceptions=True)
        assert isinstance(results[0], ResponseError)
        assert results[1] == [b"mine"]
        assert await pipe.execute("ECHO", "next") == b"next"
    finally:
        pipe.close()


async def test_a_cancelled_callers_replies_are_dropped(pipe: PipelinedRedis) -> None:
    try:
        assert await pipe.execute("PING") == b"PONG"  # connected
        gone = asyncio.create_task(pipe.pipeline(("ECHO", "gone-1"), ("ECHO", "gone-2")))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # sent, not answered yet
        gone.cancel()
        assert await pipe.pipeline(("ECHO", "kept-1"), ("ECHO", "kept-2")) == [b"kept-1", b"kept-2"]
        assert gone.cancelled()
    finally:
        pipe.close()


async def test_a_redis_that_stops_answering_fails_what_is_in_flight_then_reconnects(
    services: Services,
) -> None:
    pipe = PipelinedRedis(services.redis_url, timeout=0.3)
    admin = Redis.from_url(services.redis_url)
    try:
        assert await pipe.execute("PING") == b"PONG"
        await admin.client_pause(1000, all=True)  # every client's commands wait
        waiting = [pipe.pipeline(("ECHO", "a"), ("ECHO", "b")), pipe.execute("ECHO", "c")]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(result, RedisTimeoutError) for result in results), results
    finally:
        await admin.client_unpause()
        await admin.aclose()
    try:
        assert await pipe.pipeline(("ECHO", "x"), ("ECHO", "y")) == [b"x", b"y"]
    finally:
        pipe.close()
