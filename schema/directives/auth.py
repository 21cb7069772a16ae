"""The ``@auth(requires: Role! = USER)`` schema directive, and its enforcement.

The directive is declared on fields and object types in the schema code and printed in the SDL.
``enforce_auth_directives`` reads it back from the built schema and wraps each resolver it guards, so the
check comes from the directive itself, never from a hand-written line in a resolver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import strawberry
from strawberry.schema_directive import Location

from graphql import GraphQLField, GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema, default_field_resolver
from models import Role
from resolvers.context import Who

# Registers the enum with Strawberry (in place) so the directive's argument can be typed with it.
strawberry.enum(Role, description="What a user may do. ADMIN may do everything a USER may.")


@strawberry.schema_directive(
    locations=[Location.OBJECT, Location.FIELD_DEFINITION],
    name="auth",
    description="Requires a logged-in viewer holding at least the given role.",
)
class Auth:
    requires: Role = Role.USER


class AuthContext(Protocol):
    """What the guard reads of a context (``resolvers.context.Context``): who asks."""

    who: Who


Resolver = Callable[..., Any]


def _required_role(*directive_owners: Any) -> Role | None:
    roles = [
        directive.requires
        for owner in directive_owners
        for directive in getattr(owner, "directives", None) or ()
        if isinstance(directive, Auth)
    ]
    if not roles:
        return None
    return Role.ADMIN if Role.ADMIN in roles else Role.USER


def _guard(resolver: Resolver, required: Role) -> Resolver:
    existing: Role | None = getattr(resolver, "required_role", None)
    if existing is not None and existing.satisfies(required):
        return resolver  # already guarded at least as strictly: enforcing twice must not stack checks

    def guarded(source: Any, info: GraphQLResolveInfo[Any], **arguments: Any) -> Any:
        context: AuthContext = info.context
        context.who.require(required)
        return resolver(source, info, **arguments)

    guarded.required_role = required  # type: ignore[attr-defined]
    return guarded


def required_role(field: GraphQLField) -> Role | None:
    """The role the field's resolver checks, if it is guarded (for tests and the startup log)."""
    return getattr(field.resolve, "required_role", None)


def _guard_field(field: GraphQLField, required: Role) -> None:
    field.resolve = _guard(field.resolve or default_field_resolver, required)
    if field.subscribe is not None:
        field.subscribe = _guard(field.subscribe, required)


def enforce_auth_directives(schema: GraphQLSchema) -> dict[str, Role]:
    """Wrap every resolver that ``@auth`` guards (on the field or on its type). Returns what it guarded,
    as ``{"Type.field": role}``, for tests and for the startup log."""
    guarded: dict[str, Role] = {}
    for type_name, graphql_type in schema.type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        type_definition = (graphql_type.extensions or {}).get("strawberry-definition")
        for field_name, field in graphql_type.fields.items():
            field_definition = (field.extensions or {}).get("strawberry-definition")
            required = _required_role(type_definition, field_definition)
            if required is not None:
                _guard_field(field, required)
                guarded[f"{type_name}.{field_name}"] = required
    return guarded
