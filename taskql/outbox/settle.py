"""After a request's writes commit and before its answer: their side effects are published, or deferred."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from resolvers.context import Context
from resolvers.writes import Written
from taskql.cache.store import ResponseCache
from taskql.data.routing import ReadRouting
from taskql.outbox.relay import Outbox
from taskql.redis.client import RedisUnavailable

logger = logging.getLogger("taskql.outbox.settle")


@dataclass(frozen=True, slots=True)
class AfterWrites:
    """The context's ``after_writes``: once a write is acknowledged, no instance serves an answer computed
    before it, and its events are on their way to every subscriber."""

    reads: ReadRouting
    outbox: Outbox
    cache: ResponseCache | None  # None when RESPONSE_CACHE is off

    async def __call__(self, context: Context) -> None:
        # Runs to the end even if the request is cancelled: the writes are committed.
        await asyncio.shield(self._settle(list(context.writes.written), list(context.writes.changed)))

    async def _settle(self, written: list[Written], changed: list[str]) -> None:
        await self.reads.mark(changed)  # before the bump: see taskql.data.routing
        try:
            await self.outbox.publish_now(written)
        except RedisUnavailable:
            # Not lost: the outbox relay publishes them once Redis answers; until then this instance serves
            # no hit (the epoch is replaced first, as after any invalidation that could not be delivered).
            if self.cache is not None:
                self.cache.undelivered()
            logger.warning(
                "%d writes' side effects deferred to the outbox relay: Redis unavailable", len(written)
            )
