"""The typed ``Info`` every field receives, and the typed ``Context`` every extension reads."""

from typing import TypeAlias

import strawberry
from strawberry.types import ExecutionContext

from resolvers.context import Context

Info: TypeAlias = strawberry.Info[Context, None]


def context_of(execution: ExecutionContext) -> Context:
    """The operation's context, which the app builds for every operation (``GraphQLView.get_context``)."""
    context = execution.context
    if not isinstance(context, Context):
        raise TypeError(
            f"An operation ran with {type(context).__name__} as its context: taskql's schema needs a "
            "resolvers.context.Context (pass it as context_value)."
        )
    return context
