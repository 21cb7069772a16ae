"""Limits checked before anything executes: tokens, depth, aliases and directives of a document, the cost of
its operation, and the client's budget.

- Tokens: graphql-core's parser stops at ``max_tokens`` (comments counted), passed through Strawberry's
  ``parse_options``, which its ``ParserCache`` hands to ``parse``. The error is the parser's:
  ``GRAPHQL_PARSE_FAILED``, "Document contains more than N tokens".
- Depth, aliases, directives: validation rules, so they run (and are cached) with the others. Their errors
  are ``GRAPHQL_VALIDATION_FAILED`` with ``extensions.limit`` (``depth``, ``aliases``, ``directives``) and
  ``extensions.max``.
- Cost (``schema.analysis.cost``): ``QUERY_TOO_COMPLEX`` above ``max_cost``, with ``extensions.cost`` and
  ``extensions.maxCost``. Then the cost is charged to the client's budget (``Hooks.budget``), which may
  answer ``RATE_LIMITED``. Both before any resolver runs. The charge is reported in the response's
  ``extensions.cost``: ``{requested, limit, remaining, resetAt}``.

The rule classes are built once per set of limits (``limit_rules``): a limiter that builds its rule class
per request (as Strawberry's extensions do in ``__init__``) changes the validation cache key on every request
and silently turns the cache off.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.types.graphql import OperationType

from core.budget import Charge
from core.errors import QueryTooComplex
from core.settings import Settings
from graphql import (
    ASTValidationRule,
    GraphQLError,
    Node,
    OperationDefinitionNode,
    ValidationContext,
    ValidationRule,
    Visitor,
    visit,
)
from schema.analysis.analysed import AnalysedSchema
from schema.info import context_of

_DEFAULTS = Settings.model_fields
# Deep enough for every operation in graphql/queries (tasks → edges → node → owner → tasks → ... is 7);
# introspection fields are not counted, so GraphiQL's schema query passes.
MAX_DEPTH: int = _DEFAULTS["max_query_depth"].default
MAX_ALIASES: int = _DEFAULTS["max_query_aliases"].default
MAX_TOKENS: int = _DEFAULTS["max_query_tokens"].default
MAX_DIRECTIVES: int = _DEFAULTS["max_query_directives"].default
MAX_COST: int = _DEFAULTS["max_query_cost"].default


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = MAX_DEPTH
    max_aliases: int = MAX_ALIASES
    max_tokens: int = MAX_TOKENS
    max_directives: int = MAX_DIRECTIVES
    max_cost: int = MAX_COST

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_query_aliases,
            max_tokens=settings.max_query_tokens,
            max_directives=settings.max_query_directives,
            max_cost=settings.max_query_cost,
        )


def _tagged(rule: type[ASTValidationRule], limit: str, maximum: int) -> type[ASTValidationRule]:
    """``rule``, its errors tagged with the limit they are about. Strawberry's rules report from
    ``__init__`` through the context, so the context's ``report_error`` is wrapped while they run."""

    class Tagged(rule):  # type: ignore[valid-type,misc]
        def __init__(self, context: ValidationContext) -> None:
            report = context.report_error

            def tagged(error: GraphQLError) -> None:
                error.extensions = {"code": "GRAPHQL_VALIDATION_FAILED", "limit": limit, "max": maximum}
                report(error)

            context.report_error = tagged  # type: ignore[method-assign]
            try:
                super().__init__(context)
            finally:
                del context.report_error

    Tagged.__name__ = Tagged.__qualname__ = f"{limit.capitalize()}Limit"
    return Tagged


def _directives_in(node: Node) -> int:
    count = 0

    class Count(Visitor):
        def enter_directive(self, *_: Any) -> None:
            nonlocal count
            count += 1

    visit(node, Count())
    return count


def directives_rule(maximum: int) -> type[ASTValidationRule]:
    """At most ``maximum`` directives in an operation and the fragments it uses (each fragment once)."""

    class DirectivesLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            fragments = self.context.get_recursively_referenced_fragments(node)
            count = _directives_in(node) + sum(map(_directives_in, fragments))
            if count > maximum:
                self.report_error(
                    GraphQLError(
                        f"{count} directives found in the operation. Allowed: {maximum}.",
                        node,
                        extensions={
                            "code": "GRAPHQL_VALIDATION_FAILED",
                            "limit": "directives",
                            "max": maximum,
                        },
                    )
                )

    return DirectivesLimit


@functools.cache
def limit_rules(limits: Limits) -> tuple[type[ASTValidationRule], ...]:
    """The validation rules of ``limits``, the same classes every time they are asked for."""
    return (
        _tagged(depth_rule(limits.max_depth, None, None), "depth", limits.max_depth),
        _tagged(aliases_rule(limits.max_aliases), "aliases", limits.max_aliases),
        directives_rule(limits.max_directives),
    )


class QueryLimits(SchemaExtension):
    """Per request: the token limit and the rules before validation; the cost, checked and charged, between
    validation and execution."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.rules = limit_rules(limits)
        self.cost: int | None = None
        self.charge: Charge | None = None

    @classmethod
    def factory(cls, limits: Limits) -> Callable[[], QueryLimits]:
        return lambda: cls(limits)

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        execution.parse_options["max_tokens"] = self.limits.max_tokens
        execution.validation_rules = execution.validation_rules + self.rules
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        schema, document, query = execution.schema, execution.graphql_document, execution.query
        if isinstance(schema, AnalysedSchema) and document is not None and query is not None:
            self.cost = schema.costs.of(query, document, execution.operation_name, execution.variables)
            context_of(execution).points.cost = self.cost  # the access log's, refused or not
            await self._admit(self.cost)
        yield

    async def _admit(self, cost: int) -> None:
        """Refuse an operation over the limit, or over the client's budget (raised here, before execution,
        both become the operation's only error)."""
        if cost > self.limits.max_cost:
            raise QueryTooComplex(
                f"This operation would cost {cost} points, more than the {self.limits.max_cost} that one "
                "operation may cost: ask for smaller pages (first/last) or fewer nested lists.",
                cost=cost,
                maxCost=self.limits.max_cost,
            )
        context = context_of(self.execution_context)
        budget = context.hooks.budget
        if budget is None or cost == 0:
            return
        viewer = context.who.viewer
        self.charge = context.points.charge = await budget.charge(
            user_id=viewer.user_id if viewer is not None else None, client=context.origin.client, cost=cost
        )

    def get_results(self) -> dict[str, Any]:
        # Free operations (rateLimit, __typename) and subscriptions (every event would repeat it) go without.
        if not self.cost or self.execution_context.operation_type is OperationType.SUBSCRIPTION:
            return {}
        report: dict[str, Any] = {"requested": self.cost}
        charge = self.charge
        if charge is not None and charge.used is not None:  # None: not counted (Redis unavailable)
            report.update(
                limit=charge.limit,
                remaining=charge.remaining,
                resetAt=charge.reset_at.isoformat().replace("+00:00", "Z") if charge.reset_at else None,
            )
        return {"cost": report}
