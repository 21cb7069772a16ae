"""After an operation's writes committed, and before its answer goes out: invalidate what they changed and
tell subscribers (the app's ``Context.after_writes``). An extension, so that every transport runs it: HTTP,
and operations sent over WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator

from strawberry.extensions import SchemaExtension


class AfterWrites(SchemaExtension):
    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        settle = getattr(context, "after_writes", None)
        if settle is not None and context.written:
            await settle(context)
