"""Before execution: the operation's ``@cacheControl`` policy goes on the context, where the response cache
reads it."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from schema.analysis.analysed import AnalysedSchema
from schema.info import context_of


class CachePolicyExtension(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        schema, document, query = execution.schema, execution.graphql_document, execution.query
        if isinstance(schema, AnalysedSchema) and document is not None and query is not None:
            policy = schema.cache_policies.of(query, document, execution.operation_name)
            context_of(execution).caching.policy = policy
        yield
