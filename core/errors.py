"""Errors a client can act on. Each carries a stable ``extensions.code`` (Apollo's convention)."""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """An expected failure whose message is safe to show to the client."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class Unauthenticated(AppError):
    code = "UNAUTHENTICATED"


class EmailNotVerified(AppError):
    """The account's address is not verified yet and REQUIRE_VERIFIED_EMAIL is set: follow the mail's link."""

    code = "EMAIL_NOT_VERIFIED"


class Forbidden(AppError):
    code = "FORBIDDEN"


class NotFound(AppError):
    """Also used for objects the viewer may not see: they must be indistinguishable from missing ones."""

    code = "NOT_FOUND"

    @classmethod
    def for_id(cls, type_name: str, global_id: str) -> NotFound:
        return cls(f"No {type_name} with id {global_id!r}.", id=global_id)


class BadUserInput(AppError):
    """Invalid input. ``field`` names the offending argument or input field (dotted path)."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None, **extensions: Any) -> None:
        if field is not None:
            extensions["field"] = field
        super().__init__(message, **extensions)
        self.field = field


class ServiceUnavailable(AppError):
    """A server taskql depends on (PostgreSQL) cannot be reached: nothing was read or written that the
    client should rely on, and the same request may succeed in a moment."""

    code = "SERVICE_UNAVAILABLE"


class QueryTooComplex(AppError):
    """The operation's estimated cost is over the limit (``extensions.cost``, ``extensions.maxCost``)."""

    code = "QUERY_TOO_COMPLEX"


class RateLimited(AppError):
    """The client spent its budget (points, or login/refresh attempts): retry in ``retryAfter`` seconds."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int, **extensions: Any) -> None:
        super().__init__(message, retryAfter=retry_after, **extensions)
        self.retry_after = retry_after
