"""Every private attribute of Strawberry that taskql touches, in one place, for one version of Strawberry.

Importing this module checks that the installed Strawberry is the one these functions were written for
(``pinned``): any other version stops the process at startup, with what to do, rather than answering wrongly.
Planned completion also extends Strawberry's executor (``ExecutionContext``) and reads its resolver
definitions the way Strawberry calls them: both are internals, reached through here for the same check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.resolvers import is_default_resolver
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.execution import ExecutionContext as StrawberryExecution
from strawberry.types.fields.resolver import INFO_PARAMSPEC, SELF_PARAMSPEC

from graphql import GraphQLField, GraphQLResolveInfo, GraphQLSchema
from schema.planning import pinned

WRITTEN_FOR = "0.341.2"
pinned.require("strawberry-graphql", WRITTEN_FOR, __name__)

# The private names read here; no other module of ours may touch them (tests/test_compat.py).
PRIVATE_NAMES = frozenset({"_schema", "_raw_info", "_field", "_provided_operation_name"})

# Strawberry's graphql-core executor, which planned completion extends (schema.planning.execution).
ExecutionContext = StrawberryGraphQLCoreExecutionContext


def graphql_schema_of(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema Strawberry built (its resolvers are the ones that run)."""
    return schema._schema


def raw_info(info: strawberry.Info[Any, Any]) -> GraphQLResolveInfo[Any]:
    """graphql-core's resolve info under Strawberry's ``Info``."""
    return info._raw_info


def provided_operation_name(execution: StrawberryExecution) -> str | None:
    """The ``operationName`` the client sent (``execution.operation_name`` is Strawberry's guess when it sent
    none: the document's first operation)."""
    return execution._provided_operation_name


def plain_attribute(field: GraphQLField, definition: Any) -> str | None:
    """The Python attribute a field's value is, when Strawberry's own resolver would only read it."""
    if (
        is_default_resolver(field.resolve)  # type: ignore[arg-type]
        and getattr(definition, "is_basic_field", False)
        and getattr(definition, "default_resolver", None) is getattr
    ):
        name: str = definition.python_name
        return name
    return None


def direct_call(definition: Any) -> Callable[[Any, GraphQLResolveInfo[Any]], Any] | None:
    """A sync resolver of the shape ``(self)`` or ``(self, info)``, with no arguments, field extensions or
    permissions, as a function of the source and graphql-core's resolve info: called as Strawberry calls it,
    without its per-call wrapping (argument parsing and extension chains it has nothing to do with)."""
    resolver = getattr(definition, "base_resolver", None)
    if (
        resolver is None
        or resolver.is_async
        or resolver.arguments
        or definition.extensions
        or getattr(definition, "permission_classes", None)
        or {spec for spec, parameter in resolver.reserved_parameters.items() if parameter is not None}
        - {SELF_PARAMSPEC, INFO_PARAMSPEC}
    ):
        return None
    function = resolver.wrapped_func
    info_parameter = resolver.info_parameter
    if info_parameter is None:
        return lambda source, _raw: function(source)
    name = info_parameter.name
    return lambda source, raw: function(source, **{name: strawberry.Info(_raw_info=raw, _field=definition)})


def resolver_function(definition: Any) -> Callable[..., Any] | None:
    """The function a field's resolver was written as (what its decorators marked), if it has one."""
    resolver = getattr(definition, "base_resolver", None)
    return None if resolver is None else resolver.wrapped_func


def is_async(definition: Any) -> bool:
    """Whether the field's resolver is an ``async def``: it always returns an awaitable."""
    resolver = getattr(definition, "base_resolver", None)
    return bool(resolver is not None and resolver.is_async)
