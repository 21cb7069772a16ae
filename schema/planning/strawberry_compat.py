"""Every private attribute of Strawberry that taskql touches, in one place, for one version of Strawberry.

Importing this module checks that the installed Strawberry is the one these functions were written for
(``pinned``): any other version stops the process at startup, with what to do, rather than answering wrongly.
Planned completion also extends Strawberry's executor (``ExecutionContext``) and reads its resolver
definitions the way Strawberry calls them: both are internals, reached through here for the same check.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import weakref
from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
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


# Each extension class's hooks, as context manager factories made once (a class's entry goes with the class).
_HOOKS: weakref.WeakKeyDictionary[type, dict[str, tuple[Callable[[Any], Any], bool] | None]] = (
    weakref.WeakKeyDictionary()
)
# A hook Strawberry wraps itself (a plain function or coroutine function).
_STRAWBERRYS: tuple[Callable[[Any], Any], bool] = (lambda extension: None, False)


def _hook_of(cls: type, name: str) -> tuple[Callable[[Any], Any], bool] | None:
    """The context manager factory of ``cls``'s hook ``name`` (called with the extension) and whether it is
    async; None when the class does not define the hook."""
    hooks = _HOOKS.setdefault(cls, {})
    if name not in hooks:
        function = getattr(cls, name)
        found: tuple[Any, bool] | None = None
        if function is not getattr(SchemaExtension, name):
            if inspect.isgeneratorfunction(function):
                found = contextlib.contextmanager(function), False
            elif inspect.isasyncgenfunction(function):
                found = contextlib.asynccontextmanager(function), True
            else:
                found = _STRAWBERRYS
        hooks[name] = found
    return hooks[name]


class _KnownHooks(ExtensionContextManagerBase):
    """Strawberry's hook runner, with each class's hooks wrapped once instead of on every request (Strawberry
    inspects and wraps every hook of every extension for each phase of each operation: some 40 wrappers per
    request). Entered and left exactly as Strawberry's: the same context managers, in the same order."""

    __slots__ = ()

    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        found = _hook_of(type(extension), self.HOOK_NAME)
        if found is None:
            return None
        if found is _STRAWBERRYS:
            return super().get_hook(extension)
        factory, is_async = found
        return WrappedHook(extension=extension, hook=functools.partial(factory, extension), is_async=is_async)


class _Operation(_KnownHooks, OperationContextManager):
    __slots__ = ()


class _Validation(_KnownHooks, ValidationContextManager):
    __slots__ = ()


class _Parsing(_KnownHooks, ParsingContextManager):
    __slots__ = ()


class _Executing(_KnownHooks, ExecutingContextManager):
    __slots__ = ()


class ExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's extensions runner (``Schema.create_extensions_runner``), hooks wrapped once per class."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)
