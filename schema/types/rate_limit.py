from __future__ import annotations

from datetime import datetime

import strawberry

from core.budget import Charge


@strawberry.type(
    description="The points budget of the viewer (of the client address, for a caller without a token), "
    "as GitHub's API reports it. Every operation costs points, estimated before it runs (see the README)."
)
class RateLimit:
    cost: int = strawberry.field(
        description="Points this operation was charged (0 when it selects only rateLimit and __typename)."
    )
    limit: int = strawberry.field(description="Points per window.")
    used: int = strawberry.field(description="Points spent in the current window, this operation's included.")
    remaining: int = strawberry.field(description="Points left in the current window.")
    reset_at: datetime = strawberry.field(description="When the window ends and every point is back.")

    @classmethod
    def from_charge(cls, charge: Charge) -> RateLimit:
        assert charge.used is not None
        assert charge.reset_at is not None
        return cls(
            cost=charge.cost,
            limit=charge.limit,
            used=charge.used,
            remaining=max(charge.limit - charge.used, 0),
            reset_at=charge.reset_at,
        )
