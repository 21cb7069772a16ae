"""Give every error a stable ``extensions.code``; mask and log the unexpected ones.

- ``AppError`` raised by a resolver: its message and code (``UNAUTHENTICATED``, ``NOT_FOUND``, ...).
- Syntax errors: ``GRAPHQL_PARSE_FAILED``. Validation errors: ``GRAPHQL_VALIDATION_FAILED``, except a
  literal value of the wrong type (e.g. an unknown enum value), which is ``BAD_USER_INPUT``.
- Variables that don't coerce (wrong type, unknown enum value, a date without timezone): ``BAD_USER_INPUT``.
- Anything else is a bug: the client gets ``INTERNAL_SERVER_ERROR`` and the request id, nothing more; the
  log gets the traceback, once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from core.errors import AppError
from graphql import GraphQLError, GraphQLSyntaxError

logger = logging.getLogger("taskql.errors")

MASKED_MESSAGE = "Internal server error."
# graphql-core's messages for values that don't fit their input type (ValuesOfCorrectTypeRule, and the
# coercion of variables). They mean the client sent bad input, not a malformed document.
BAD_VALUE = re.compile(
    r"^(Expected value of type |Variable '\$|Value '.*' does not exist in '\w+' enum"
    r"|Field '\w+\.\w+' of required type '.+' was not provided|Field '\w+' is not defined by type '\w+')"
)


def coded(
    error: GraphQLError, *, context: Any = None, operation: str | None = None, validation: bool = False
) -> GraphQLError:
    """``error`` with its ``extensions.code``; an unexpected one is masked here and logged in full."""
    original = error.original_error
    if isinstance(original, AppError):
        return _with(error, original.message, original.extensions)
    if isinstance(error, GraphQLSyntaxError):
        return _with(error, error.message, {"code": "GRAPHQL_PARSE_FAILED"})
    # Values that don't fit their type, in variables or literals: reported before execution (no path).
    if error.path is None and BAD_VALUE.match(error.message):
        return _with(error, error.message, {"code": "BAD_USER_INPUT"})
    if validation:
        return _with(error, error.message, {"code": "GRAPHQL_VALIDATION_FAILED"})
    request_id = getattr(context, "request_id", None)
    logger.error(
        "unexpected error in %s (request %s): %s",
        operation or "anonymous operation",
        request_id,
        error.message,
        exc_info=original or error,
    )
    return _with(error, MASKED_MESSAGE, {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})


def is_coded(error: GraphQLError) -> bool:
    return bool(error.extensions and "code" in error.extensions)


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class ErrorCodes(SchemaExtension):
    _validation_errors: frozenset[int] = frozenset()

    def on_validate(self) -> Iterator[None]:
        yield
        self._validation_errors = frozenset(map(id, self.execution_context.pre_execution_errors or ()))

    def on_operation(self) -> Iterator[None]:
        self._validation_errors = frozenset()
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [
                coded(
                    error,
                    context=self.execution_context.context,
                    operation=self.execution_context.operation_name,
                    validation=id(error) in self._validation_errors,
                )
                for error in result.errors
            ]
