"""The viewer's budget, read without spending it (``rateLimit``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.budget import Charge
from core.errors import ServiceUnavailable

if TYPE_CHECKING:
    from resolvers.context import Context


async def rate_limit(ctx: Context) -> Charge | None:
    """What this operation was charged and what is left; None when no budget applies (rate limits off)."""
    charge, budget = ctx.points.charge, ctx.hooks.budget
    if charge is None and budget is not None:
        viewer = ctx.who.viewer
        charge = await budget.status(user_id=viewer.user_id if viewer else None, client=ctx.origin.client)
    if charge is not None and charge.used is None:
        raise ServiceUnavailable(
            "The budget cannot be read right now (operations run uncounted meanwhile).",
            retryAfter=1,
            reason="RATE_LIMITER_UNAVAILABLE",
        )
    return charge
