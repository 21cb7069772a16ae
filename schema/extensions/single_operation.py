"""Which operation of a document runs: the GraphQL spec's GetOperation, which Strawberry does not quite keep.

Given no ``operationName``, Strawberry runs a document's first operation, however many it holds; the spec
(and graphql-core) refuse to guess: a document of several operations needs a name. This extension restores
the rule before anything executes, as a request error (``OPERATION_RESOLUTION_FAILURE``, Apollo's name).
It must come after ``ValidationCache``, which sets the validation errors its hook finds.
"""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from graphql import GraphQLError, OperationDefinitionNode
from schema.planning.strawberry_compat import provided_operation_name

MANY_OPERATIONS = "Must provide operation name if query contains multiple operations."


class SingleOperation(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if (
            document is not None
            # What the client sent: ``operation_name`` is Strawberry's guess when it sent none.
            and provided_operation_name(context) is None
            and sum(isinstance(node, OperationDefinitionNode) for node in document.definitions) > 1
        ):
            error = GraphQLError(MANY_OPERATIONS, extensions={"code": "OPERATION_RESOLUTION_FAILURE"})
            context.pre_execution_errors = [*(context.pre_execution_errors or []), error]
        yield
