"""What the app plugs into every operation, typed below the layers that call it: the schema's extensions
call the app (``taskql``) through these without importing it. (The client's budget is ``core.budget``.)

Generic in the context they are given (``resolvers.context.Context``), which ``core`` cannot name.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

ContextT = TypeVar("ContextT", contravariant=True)


class AfterWrites(Protocol[ContextT]):
    """After an operation's writes committed, before its answer goes out: publish what they recorded (the
    cache tags they changed, their events, their session and role changes)."""

    async def __call__(self, context: ContextT, /) -> None: ...


class RouteReads(Protocol[ContextT]):
    """Before an operation executes: send its reads to the primary (``writes``: a mutation), or to a replica
    when nothing its answer depends on was just written."""

    async def __call__(self, context: ContextT, writes: bool, /) -> None: ...
