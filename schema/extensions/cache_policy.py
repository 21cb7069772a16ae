"""Before execution: the operation's ``@cacheControl`` policy goes on the context, where the response cache
reads it."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from schema.analysis.cache_policies import CachePolicies


class CachePolicyExtension(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        policies: CachePolicies | None = getattr(execution.schema, "cache_policies", None)
        document, query = execution.graphql_document, execution.query
        if policies is not None and document is not None and query is not None:
            execution.context.cache_policy = policies.of(query, document, execution.operation_name)
        yield
