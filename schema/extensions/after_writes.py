"""After an operation's writes committed, and before its answer goes out: invalidate what they changed and
tell subscribers (the app's ``Hooks.after_writes``). An extension, so that every transport runs it: HTTP,
and operations sent over WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator

from strawberry.extensions import SchemaExtension

from schema.info import context_of


class AfterWrites(SchemaExtension):
    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = context_of(self.execution_context)
        settle = context.hooks.after_writes
        if settle is not None and context.writes.written:
            await settle(context)
