"""Before an operation executes: where its reads go (the app's ``Hooks.route_reads``): a mutation's to the
primary, a query's or a subscription's to the replica when that is safe (``taskql.data.routing``). An
extension, so that every transport runs it: HTTP, and each operation sent over a WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from schema.info import context_of


class RouteReads(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = context_of(execution)
        route = context.hooks.route_reads
        if route is not None:
            await route(context, execution.operation_type is OperationType.MUTATION)
        yield
