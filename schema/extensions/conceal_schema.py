"""What the schema tells clients about itself: introspection, and the names errors suggest.

With introspection off (production), a client learns the schema only from the documents it was given:
``__schema`` and ``__type`` are refused (``INTROSPECTION_DISABLED``), and no error suggests a name ("Cannot
query field 'titel' ... Did you mean 'title'?" would hand the schema out one guess at a time).
graphql-core 3.3 can leave suggestions out (``hide_suggestions``) but Strawberry passes no such option, so:
- validation: ``HideSuggestionsRule`` sets the flag on the validation context every rule of the run
  shares, before any rule visits the document;
- execution (variables that do not coerce, an unknown enum value or input field among them):
  ``concealed(executor)`` builds every execution with ``hide_suggestions=True``.
``__typename`` stays allowed: clients (Apollo's cache among them) ask for it everywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, TypeVar, cast

from strawberry.extensions import SchemaExtension

from graphql import ASTValidationRule, GraphQLError, NoSchemaIntrospectionCustomRule, ValidationContext
from schema.planning.graphql_core_compat import hide_suggestions

INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
Executor = TypeVar("Executor")


class IntrospectionRefusedRule(NoSchemaIntrospectionCustomRule):
    """graphql-core's rule, with a code of its own, a message that says where the schema is, and one error
    per document (graphql-core reports every field below ``__schema`` as well)."""

    reported = False

    def report_error(self, error: GraphQLError) -> None:
        if self.reported:
            return
        self.reported = True
        super().report_error(
            GraphQLError(
                "Introspection is disabled on this server: the schema is published as "
                "graphql/schema.graphql (set INTROSPECTION=true to enable it).",
                nodes=error.nodes,
                extensions={"code": INTROSPECTION_DISABLED},
            )
        )


class HideSuggestionsRule(ASTValidationRule):
    """Reports nothing: it turns suggestions off for every rule of this validation run (rules read the
    context's flag while visiting, and all of them are built before the visit starts)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        hide_suggestions(context)


# Built once: the validation cache keys on the rule classes (see schema/extensions/query_limits.py).
CONCEALING_RULES: tuple[type[ASTValidationRule], ...] = (IntrospectionRefusedRule, HideSuggestionsRule)


class ConcealSchema(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        self.execution_context.validation_rules = self.execution_context.validation_rules + CONCEALING_RULES
        yield


class _HideSuggestions:
    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)  # type: ignore[misc]


@functools.cache
def concealed(executor: type[Executor]) -> type[Executor]:
    """``executor``, building every execution with ``hide_suggestions`` (made once per class)."""
    return cast("type[Executor]", type(f"Concealed{executor.__name__}", (_HideSuggestions, executor), {}))
