"""graphql-core's executor as taskql runs it: every subscription event with its own memo of subfields.

graphql-core 3.3 executes each event of a subscription with a shallow copy of the subscription's executor,
and the copy shares ``_relevant_sub_fields``: a memo keyed by the identity of a field list that each event
builds anew, and that keeps the list alive. Every event so added an entry per nested object field (about
3 kB for ``taskEvents { task { ... } }``) that stayed as long as the subscription. GraphQL.js memoizes per
execution context, which each event gets afresh; so does this.
"""

from __future__ import annotations

from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class TaskqlExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def build_per_event_executor(self, payload: Any) -> TaskqlExecutionContext:
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, TaskqlExecutionContext)
        executor._relevant_sub_fields = {}  # the event's own: it goes with the event
        return executor
