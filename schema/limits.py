"""Limits checked before execution: operation depth and aliases per document.

The rule classes are built once, here: a limiter extension that builds its rule class per request (as
Strawberry's do in ``__init__``) changes the validation cache key on every request and silently turns
the cache off. Cost estimates and rate limits are separate work (not here yet).
"""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

from graphql import ASTValidationRule

# Deep enough for every operation in graphql/queries (tasks → edges → node → owner → tasks → ... is 7);
# introspection fields are not counted, so GraphiQL's schema query passes.
MAX_DEPTH = 10
MAX_ALIASES = 30

LIMIT_RULES: tuple[type[ASTValidationRule], ...] = (
    depth_rule(MAX_DEPTH, None, None),
    aliases_rule(MAX_ALIASES),
)


class QueryLimits(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        self.execution_context.validation_rules = self.execution_context.validation_rules + LIMIT_RULES
        yield
