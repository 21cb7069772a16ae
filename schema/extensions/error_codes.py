"""Give every error a stable ``extensions.code``; mask and log the unexpected ones.

Codes come from where an error arose, never from its wording:
- ``AppError`` raised by a resolver: its message and code (``UNAUTHENTICATED``, ``NOT_FOUND``, ...).
- Syntax errors: ``GRAPHQL_PARSE_FAILED``.
- Validation: a literal value that does not fit its type (``ValuesOfCorrectTypeRule``: an unknown enum
  value, a string where an Int belongs, a missing input field) is ``BAD_USER_INPUT``; every other rule
  (unknown field, unused variable, ...) is ``GRAPHQL_VALIDATION_FAILED``.
- Variables that don't coerce to their declared type (reported by graphql-core before execution, without a
  path, as "Variable '$name' got invalid value ..."): ``BAD_USER_INPUT``.
- Anything else is a bug: the client gets ``INTERNAL_SERVER_ERROR`` and the request id, nothing more; the
  log gets the traceback, once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from core.errors import AppError
from graphql import GraphQLError, GraphQLSyntaxError, ValuesOfCorrectTypeRule
from resolvers.context import Context

logger = logging.getLogger("taskql.errors")

MASKED_MESSAGE = "Internal server error."
VARIABLE_COERCION_PREFIX = "Variable '$"


class InputValuesRule(ValuesOfCorrectTypeRule):
    """graphql-core's rule for literal values, whose errors are the client's input, not its document."""

    def report_error(self, error: GraphQLError) -> None:
        error.extensions = {**(error.extensions or {}), "code": "BAD_USER_INPUT"}
        super().report_error(error)


def coded(
    error: GraphQLError, *, context: object = None, operation: str | None = None, validation: bool = False
) -> GraphQLError:
    """``error`` with its ``extensions.code``; an unexpected one is masked here and logged in full."""
    original = error.original_error
    if isinstance(original, AppError):
        return _with(error, original.message, original.extensions)
    if isinstance(error, GraphQLSyntaxError):
        return _with(error, error.message, {"code": "GRAPHQL_PARSE_FAILED"})
    if is_coded(error):  # tagged by InputValuesRule
        return _with(error, error.message, dict(error.extensions or {}))
    if validation:
        return _with(error, error.message, {"code": "GRAPHQL_VALIDATION_FAILED"})
    if error.path is None and error.message.startswith(VARIABLE_COERCION_PREFIX):
        return _with(error, error.message, {"code": "BAD_USER_INPUT"})
    request_id = context.origin.request_id if isinstance(context, Context) else None
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
        # Runs before the validation cache's hook (this extension comes first), so the rule set, and with
        # it the cache key, is the same on every request.
        self.execution_context.validation_rules = tuple(
            InputValuesRule if rule is ValuesOfCorrectTypeRule else rule
            for rule in self.execution_context.validation_rules
        )
        yield
        self._validation_errors = frozenset(map(id, self.execution_context.pre_execution_errors or ()))

    def on_operation(self) -> Iterator[None]:
        self._validation_errors = frozenset()
        yield
        self._code(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each result a subscription sends (over WebSocket), before it goes: the same codes, masking and
        logging as an HTTP answer. (The last one is the operation's result too: coded already, it is
        neither coded nor logged again.)"""
        self._code(result)
        yield

    def _code(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [
                coded(
                    error,
                    context=self.execution_context.context,
                    operation=self.execution_context.operation_name,
                    validation=id(error) in self._validation_errors,
                )
                for error in errors
            ]
