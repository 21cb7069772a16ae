"""The event hub's listener stops when asked, whenever that is: also while it is still connecting."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.settings import Settings
from taskql.cli.services import start_embedded_redis
from taskql.realtime.hub import STOP_SECONDS, EventHub
from taskql.redis.client import create_redis


# Over a Unix socket (the embedded Redis), a stop that lands a millisecond after start finds redis-py
# connecting, where it used to swallow the cancellation and leave the listener waiting for good.
@pytest.mark.parametrize("delay", [0, 0.0005, 0.001, 0.002, 0.005, 0.05])
async def test_a_hub_stopped_just_after_it_started_stops_within_its_bound(
    tmp_path: Path, delay: float
) -> None:
    url = start_embedded_redis(tmp_path)
    redis = create_redis(Settings(redis_url=url, database_url="postgresql://unused@localhost/unused"))
    hub = EventHub(redis, retention_seconds=60, max_queue=10)
    try:
        await hub.start()
        await asyncio.sleep(delay)
        started = time.monotonic()
        await asyncio.wait_for(hub.stop(), 10)  # a hang fails the test rather than the run
        assert time.monotonic() - started < 2 * STOP_SECONDS + 0.5
        assert hub._listener is not None
        assert hub._listener.done()
    finally:
        await redis.aclose()
