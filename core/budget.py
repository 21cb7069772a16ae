"""A client's budget as the layers that spend it see it: points charged per operation, and login/refresh
attempts. The app implements it on Redis (``taskql.policy.rate_limits``); the schema and the resolvers
only call it
through the context, so they know nothing of Redis or HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

# account_mail: a mail asked for (password reset, verification, export): each sends mail to someone.
Action = Literal["login", "refresh", "account_mail"]


@dataclass(frozen=True, slots=True)
class Charge:
    """What one operation was charged, and where its client's budget stands after it."""

    cost: int  # the operation's estimated cost, charged in full before it ran
    limit: int  # points per window for this client
    # Points spent in the current window, this operation included; None when they could not be counted
    # (Redis unavailable: queries run uncounted rather than not at all).
    used: int | None
    reset_at: datetime | None  # when the window ends and ``used`` starts again from 0

    @property
    def remaining(self) -> int | None:
        return None if self.used is None else max(self.limit - self.used, 0)


class Budget(Protocol):
    async def charge(self, *, user_id: uuid.UUID | None, client: str, cost: int) -> Charge:
        """Spend ``cost`` points of the viewer's budget (the client address's, when anonymous); raises
        ``RateLimited`` when they are not there (nothing is spent then)."""
        ...

    async def status(self, *, user_id: uuid.UUID | None, client: str) -> Charge:
        """Where the budget stands, spending nothing (``cost`` 0)."""
        ...

    async def attempt(self, action: Action, *, client: str | None = None, account: str | None = None) -> None:
        """Count one ``action`` attempt for the client address and for the account; raises ``RateLimited``
        past the limit, ``ServiceUnavailable`` when attempts cannot be counted (they fail closed)."""
        ...
