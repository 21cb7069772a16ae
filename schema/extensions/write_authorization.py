"""Writes are authorised by PostgreSQL, always: before a mutation executes, its viewer is read from the
database unless this request already did. The response cache's session state (``taskql.cache.store``) spares a
query the viewer's SQL, but Redis can be wrong for a while: restarted from an old snapshot, or left behind by
a crash between a logout's (or a demotion's) COMMIT and its invalidation. A query it answers is at worst
stale; a write it authorised would be done.

What a mutation is comes from the parsed document and the operation chosen in it (after validation, as it
executes), never from the request's bytes: a JSON escape, a persisted query's hash, a ``documentId`` or an
``operationName`` all spell one without the keyword. An extension, so that every transport runs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from auth.sessions import load_viewer
from core.errors import Unauthenticated
from resolvers.context import Context
from schema.info import context_of


async def confirm_viewer(context: Context) -> None:
    """Replace the viewer with the database's: a revoked session or a deactivated account leaves none (its
    fields then fail UNAUTHENTICATED with the reason), a changed role the new one (``@auth`` decides)."""
    who = context.who
    if who.viewer is None or who.from_database:
        return  # anonymous, a token already refused, or read from PostgreSQL by this request
    try:
        loaded = await load_viewer(context.reads.primary, who.viewer)
    except Unauthenticated as error:
        who.viewer, who.auth_error = None, error
    else:
        who.viewer = loaded.viewer
        context.loaders.forget_memberships()  # what a query of this request read before is older
        context.loaders.prime_viewer(loaded.user, loaded.roles)
    who.from_database = True


class WriteAuthorization(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        if execution.operation_type is OperationType.MUTATION:
            await confirm_viewer(context_of(execution))
        yield
