"""Rate limits in Redis, shared by every instance, on the ``limits`` library (its asyncio Redis storage on
redis-py, sharing the app's bounded connection pool; every call through the ``RedisGuard``, so a frozen
Redis costs one socket timeout, then nothing while the circuit is open).

**Points.** Every operation is charged its estimated cost (``schema.analysis.cost``) before it runs: a
viewer's budget is ``rate_limit_points`` per window, an anonymous caller's ``rate_limit_anonymous_points``
per client IP (the address uvicorn reports: behind a proxy listed in ``FORWARDED_ALLOW_IPS``, the
forwarded one).
Windows are fixed and aligned to the clock (every budget is whole again at each multiple of
``rate_limit_window_seconds``), so a single script call, limits' fixed-window increment, both charges and
tells what is left and when it comes back: one round trip, sent on the cache's auto-pipelined connection.
An operation that does not fit in what is left is refused (``RATE_LIMITED``, ``retryAfter``) and its
charge given back; one that costs more than a whole window is ``QUERY_TOO_COMPLEX``.

**Cache hits** cost ``rate_limit_cached_cost`` points (1), not charged on their way out: a hit stays one
Redis round trip. Each instance adds them up per client and sends the sums every ``HIT_FLUSH_SECONDS``
(after the answers). A budget found spent, by a charge or by those sums, is remembered by the instance
until its window ends: that client's hits and operations are then refused without asking Redis.

**Attempts.** ``login`` and ``refreshToken`` are counted per client IP and per account (the email; the user
a refresh token belongs to) in a moving window (limits' ``MovingWindowRateLimiter``): exact, and a refused
attempt is not counted. Every login field counts, so aliased logins in one document count one each. Emails
are hashed in the keys. A refresh refused for its account leaves its token unconsumed.

**Redis unavailable.** Attempts fail closed: a login or refresh is refused (``SERVICE_UNAVAILABLE``,
``reason: RATE_LIMITER_UNAVAILABLE``, ``retryAfter``) rather than let guessing run unlimited. Points fail
open: operations run uncounted (their ``extensions.cost`` says only ``requested``), since Redis being down
must not take reads down.

**HTTP.** Charged answers carry ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``
(seconds until the window ends): the three fields of the IETF httpapi draft (up to its -06), which clients
and proxies read today. Refusals carry ``Retry-After`` too; an operation refused whole for its points is a
``429`` (a ``SERVICE_UNAVAILABLE`` with no data is ``taskql.http.unavailable``'s ``503``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import ResponseError
from strawberry.types import ExecutionResult

from core.budget import Action, Charge
from core.errors import QueryTooComplex, RateLimited, ServiceUnavailable
from core.settings import Settings
from taskql.ops import metrics
from taskql.redis.client import RedisGuard, RedisUnavailable
from taskql.redis.pipeline import PipelinedRedis

KEY_PREFIX = "taskql:rl"
HIT_FLUSH_SECONDS = 0.1
MAX_REMEMBERED = 10_000
T = TypeVar("T")


def subject_of(user_id: uuid.UUID | str | None, client: str) -> str:
    """Whose budget: the viewer's, or the client address's when anonymous."""
    return f"user:{user_id}" if user_id else f"ip:{client}"


class RateLimits:
    """``core.budget.Budget`` on Redis."""

    def __init__(self, settings: Settings, guard: RedisGuard, pipe: PipelinedRedis | None = None) -> None:
        self.guard = guard
        self.pipe = pipe
        self.window = settings.rate_limit_window_seconds
        self.storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            # Typed as scalars only, but redis-py's bridge hands it to the client (limits' documented use).
            connection_pool=guard.redis.connection_pool,  # type: ignore[arg-type]
        )
        self._incr_script = self.storage.bridge.SCRIPT_INCR_EXPIRE
        self._incr_sha = hashlib.sha1(self._incr_script).hexdigest()  # noqa: S324 (Redis names it so)
        self.viewer_points = RateLimitItemPerSecond(settings.rate_limit_points, self.window)
        self.anonymous_points = RateLimitItemPerSecond(settings.rate_limit_anonymous_points, self.window)
        self.cached_cost = settings.rate_limit_cached_cost
        self.attempts = MovingWindowRateLimiter(self.storage)
        seconds = settings.auth_attempts_window_seconds
        self.attempt_limits: dict[tuple[Action, str], RateLimitItem] = {
            ("login", "ip"): RateLimitItemPerSecond(settings.login_attempts_per_ip, seconds),
            ("login", "account"): RateLimitItemPerSecond(settings.login_attempts_per_account, seconds),
            ("refresh", "ip"): RateLimitItemPerSecond(settings.refresh_attempts_per_ip, seconds),
            ("refresh", "account"): RateLimitItemPerSecond(settings.refresh_attempts_per_account, seconds),
            ("account_mail", "ip"): RateLimitItemPerSecond(settings.account_mails_per_ip, seconds),
            ("account_mail", "account"): RateLimitItemPerSecond(settings.account_mails_per_account, seconds),
        }
        self.unavailable_retry = max(1, math.ceil(guard.open_seconds))
        self._spent: dict[str, int] = {}  # subject -> the window in which its budget is spent
        self._hits: dict[str, int] = {}  # subject -> points of hits not sent yet
        self._flush: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    # Points

    def _window(self) -> tuple[int, float]:
        """The current window's number and the moment (epoch seconds) it ends."""
        number = int(time.time() // self.window)
        return number, float((number + 1) * self.window)

    def _points(self, subject: str) -> RateLimitItem:
        return self.viewer_points if subject.startswith("user:") else self.anonymous_points

    def _key(self, item: RateLimitItem, subject: str, window: int) -> str:
        return item.key_for("points", subject, str(window))

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        return await self.guard.call(lambda _: operation())

    async def _incr(self, key: str, amount: int) -> int:
        """Add ``amount`` to a fixed-window counter, what limits' ``storage.incr`` does (its script, its key),
        but on the auto-pipelined connection: a few µs of CPU instead of redis-py's hundred, and concurrent
        charges leave in one write."""
        if self.pipe is None:
            return await self._call(lambda: self.storage.incr(key, self.window, amount=amount))
        prefixed = self.storage.bridge.prefixed_key(key)
        return int(await self.guard.call(lambda _: self._pipelined_incr(prefixed, amount)))

    async def _pipelined_incr(self, key: str, amount: int) -> Any:
        assert self.pipe is not None
        try:
            return await self.pipe.execute("EVALSHA", self._incr_sha, 1, key, self.window, amount)
        except ResponseError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
            # A Redis that restarted (or flushed its scripts): EVAL runs it and caches it again.
            return await self.pipe.execute("EVAL", self._incr_script, 1, key, self.window, amount)

    async def charge(self, *, user_id: uuid.UUID | None, client: str, cost: int) -> Charge:
        subject = subject_of(user_id, client)
        item = self._points(subject)
        window, ends = self._window()
        if cost > item.amount:
            raise QueryTooComplex(
                f"This operation would cost {cost} points, more than the {item.amount} of a whole window: "
                "ask for smaller pages (first/last) or fewer nested lists.",
                cost=cost,
                maxCost=item.amount,
            )
        if self._spent.get(subject) == window:
            raise self._refusal(item, ends, cost)
        key = self._key(item, subject, window)
        try:
            used = await self._incr(key, cost)
        except RedisUnavailable:
            return Charge(cost=cost, limit=item.amount, used=None, reset_at=None)
        if used > item.amount:
            await self._give_back(key, cost)
            if used - cost >= item.amount:
                self._remember_spent(subject, window)
            raise self._refusal(item, ends, cost)
        if used >= item.amount:
            self._remember_spent(subject, window)
        return Charge(cost=cost, limit=item.amount, used=used, reset_at=datetime.fromtimestamp(ends, UTC))

    async def status(self, *, user_id: uuid.UUID | None, client: str) -> Charge:
        subject = subject_of(user_id, client)
        item = self._points(subject)
        window, ends = self._window()
        try:
            used = await self._call(lambda: self.storage.get(self._key(item, subject, window)))
        except RedisUnavailable:
            used = None
        reset_at = datetime.fromtimestamp(ends, UTC) if used is not None else None
        return Charge(cost=0, limit=item.amount, used=used, reset_at=reset_at)

    async def _give_back(self, key: str, cost: int) -> None:
        with contextlib.suppress(RedisUnavailable):  # if not, the window's end gives it back
            await self._incr(key, -cost)

    def _refusal(self, item: RateLimitItem, ends: float, cost: int) -> RateLimited:
        metrics.rate_limited("points")
        retry_after = max(1, math.ceil(ends - time.time()))
        return RateLimited(
            f"This operation costs {cost} points and fewer than that are left of the {item.amount} per "
            f"{self.window} s: retry in {retry_after} s, or spend fewer (smaller pages, cached queries).",
            retry_after=retry_after,
            cost=cost,
            limit=item.amount,
            resetAt=datetime.fromtimestamp(ends, UTC).isoformat().replace("+00:00", "Z"),
        )

    def _remember_spent(self, subject: str, window: int) -> None:
        if len(self._spent) >= MAX_REMEMBERED:
            self._spent = {s: w for s, w in self._spent.items() if w == window}
        self._spent[subject] = window

    def spent(self, subject: str) -> bool:
        """Whether this instance knows the budget of ``subject`` to be spent for the current window (no
        Redis: the cache's fast path asks this on every request)."""
        return bool(self._spent) and self._spent.get(subject) == self._window()[0]

    # Cache hits

    def charge_hit(self, subject: str) -> None:
        """Count a cache hit; sent to Redis with the others of the next ``HIT_FLUSH_SECONDS``."""
        if not self.cached_cost:
            return
        self._hits[subject] = self._hits.get(subject, 0) + self.cached_cost
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(HIT_FLUSH_SECONDS, self._send_hits)

    def _send_hits(self) -> None:
        self._flush = None
        hits, self._hits = self._hits, {}
        task = asyncio.ensure_future(self._charge_hits(list(hits.items())))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _charge_hits(self, hits: list[tuple[str, int]]) -> None:
        window, _ = self._window()
        items = [self._points(subject) for subject, _ in hits]
        try:  # sent together: on the pipelined connection, in one write
            counts = await asyncio.gather(
                *(
                    self._incr(self._key(item, subject, window), points)
                    for item, (subject, points) in zip(items, hits, strict=True)
                )
            )
        except RedisUnavailable:
            return  # hits during an outage are free, as operations are
        for item, (subject, _), used in zip(items, hits, counts, strict=True):
            if used >= item.amount:
                self._remember_spent(subject, window)

    async def close(self) -> None:
        """Send the hits counted so far (at shutdown)."""
        if self._flush is not None:
            self._flush.cancel()
            self._send_hits()
        await asyncio.gather(*self._sending, return_exceptions=True)

    # Attempts

    async def attempt(self, action: Action, *, client: str | None = None, account: str | None = None) -> None:
        for scope, identity in (("ip", client), ("account", account)):
            if identity is None:
                continue
            if scope == "account":
                identity = hashlib.sha256(identity.encode()).hexdigest()[:32]
            await self._attempt(action, scope, identity)

    async def _attempt(self, action: Action, scope: str, identity: str) -> None:
        item = self.attempt_limits[action, scope]
        try:
            if await self._call(lambda: self.attempts.hit(item, action, scope, identity)):
                return
            stats = await self._call(lambda: self.attempts.get_window_stats(item, action, scope, identity))
        except RedisUnavailable:
            raise ServiceUnavailable(
                f"{_ATTEMPTS[action]} cannot be counted right now, so none are accepted: retry in "
                f"{self.unavailable_retry} s.",
                retryAfter=self.unavailable_retry,
                reason="RATE_LIMITER_UNAVAILABLE",
            ) from None
        metrics.rate_limited(f"{action}_per_{scope}")  # login_per_account, refresh_per_ip, ...
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        who = "for this account" if scope == "account" else "from this address"
        raise RateLimited(
            f"Too many {_ATTEMPTS[action].lower()} {who}: at most {item.amount} per "
            f"{item.get_expiry()} s. Retry in {retry_after} s.",
            retry_after=retry_after,
            limit=item.amount,
            scope=scope.upper(),
        )


_ATTEMPTS: dict[Action, str] = {
    "login": "Login attempts",
    "refresh": "Token refreshes",
    "account_mail": "Account mails",
}


def response_headers(charge: Charge | None, result: ExecutionResult) -> tuple[int | None, dict[str, str]]:
    """The HTTP status (None: unchanged) and headers that tell a client where its budget stands."""
    headers: dict[str, str] = {}
    if charge is not None and charge.used is not None and charge.reset_at is not None:
        headers["RateLimit-Limit"] = str(charge.limit)
        headers["RateLimit-Remaining"] = str(charge.remaining)
        headers["RateLimit-Reset"] = str(_seconds_until(charge.reset_at))
    refusals = list(_refusals(result.errors or ()))
    if not refusals:
        return None, headers
    code, extensions = max(refusals, key=lambda refusal: refusal[1]["retryAfter"])
    headers["Retry-After"] = str(extensions["retryAfter"])
    if "limit" in extensions and "resetAt" in extensions:  # a points refusal: nothing was charged
        headers["RateLimit-Limit"] = str(extensions["limit"])
        headers["RateLimit-Remaining"] = "0"
        headers["RateLimit-Reset"] = str(extensions["retryAfter"])
    # A refusal of the whole operation is a 429; SERVICE_UNAVAILABLE's 503 is taskql.http.unavailable's.
    return (429 if code == "RATE_LIMITED" and result.data is None else None), headers


def _refusals(errors: Iterable[Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    for error in errors:
        extensions = error.extensions or {}
        code = extensions.get("code")
        if code in {"RATE_LIMITED", "SERVICE_UNAVAILABLE"} and "retryAfter" in extensions:
            yield code, extensions


def _seconds_until(moment: datetime) -> int:
    return max(0, math.ceil(moment.timestamp() - time.time()))


def split_cost(response: Any) -> tuple[Any, Any]:
    """A response as the cache keeps it, without its ``extensions.cost``, and that report (None if none)."""
    extensions = response.get("extensions") if isinstance(response, dict) else None
    if not extensions or "cost" not in extensions:
        return response, None
    answer = {name: value for name, value in response.items() if name != "extensions"}
    others = {name: value for name, value in extensions.items() if name != "cost"}
    if others:
        answer["extensions"] = others
    return answer, extensions["cost"]
