"""Planned completion: graphql-core's executor, with object values completed by plans built once per request.

graphql-core completes every field of every row the same general way: a resolve info, a path, the field's
resolver, then a walk down the return type. For a page of 50 tasks that is some 600 fields, and most of the
time of a request. Here, the first time a request completes an object type for a selection, a plan is built
for it: for each selected field, how to read it (an attribute read for Strawberry's plain fields, the field's
own resolver otherwise) and how to complete it (leaf coercion, lists, nulls, nested plans). Every row after
that runs the plan: plain dictionaries, no resolve info for plain fields.

Semantics stay graphql-core's. A plan is only built for selections it fully understands (no arguments, no
abstract types, no ``@defer``, no resolver middleware); anything else, and any surprise while a plan runs (a
null in a non-null field, a resolver that raises or returns an awaitable, a value of the wrong type), hands
the object back to graphql-core, which completes it from scratch and reports errors as it always does.
Reading again is safe: queries only read, and the values are already loaded.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.fields.resolver import INFO_PARAMSPEC, SELF_PARAMSPEC
from strawberry.types.info import Info

from graphql import (
    GraphQLEnumType,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)

Completer = Callable[[Any, Path], Any]


class _Fallback(Exception):
    """This object must be completed by graphql-core's general path."""


def _fallback() -> Any:
    raise _Fallback


def _direct(field: Any, definition: Any) -> Callable[[Any, Any], Any] | None:
    """A sync resolver of the shape ``(self, info)``, with no arguments, field extensions, permissions or
    ``@auth`` guard: called as Strawberry would call it, without its per-call wrapping (argument parsing
    and extension chains it has nothing to do with)."""
    resolver = getattr(definition, "base_resolver", None)
    if (
        resolver is None
        or resolver.is_async
        or resolver.arguments
        or definition.extensions
        or getattr(definition, "permission_classes", None)
        or getattr(field.resolve, "required_role", None) is not None
        or {spec for spec, parameter in resolver.reserved_parameters.items() if parameter is not None}
        - {SELF_PARAMSPEC, INFO_PARAMSPEC}
    ):
        return None
    function = resolver.wrapped_func
    info_parameter = resolver.info_parameter
    if info_parameter is None:
        return lambda source, _raw: function(source)
    name = info_parameter.name
    return lambda source, raw: function(source, **{name: Info(_raw_info=raw, _field=definition)})


class PlannedExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[tuple[str, int], tuple[Any, Completer | None]] = {}
        manager = self.middleware_manager
        self._planning = not (manager is not None and manager.middlewares)

    def build_per_event_executor(self, payload: Any) -> PlannedExecutionContext:
        """Each subscription event gets its own memos. graphql-core copies the subscription's executor
        per event, memos included, and keys them by field lists each event builds anew: shared, they
        would grow by an entry per nested object per event for as long as the subscription lives."""
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, PlannedExecutionContext)
        executor._relevant_sub_fields = {}
        executor._plans = {}
        return executor

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        if self._planning and position_context is None:
            plan = self._plan(return_type, field_details_list)
            if plan is not None:
                try:
                    return plan(result, path)
                except Exception:  # noqa: S110  graphql-core completes it again and reports any error
                    pass
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _plan(self, return_type: GraphQLObjectType, field_details_list: Any) -> Completer | None:
        # Keyed like graphql-core's own subfield memo: the list is kept alive, so its id stays unique.
        key = (return_type.name, id(field_details_list))
        known = self._plans.get(key)
        if known is not None:
            return known[1]
        self._plans[key] = (field_details_list, None)  # a recursive selection plans to "no plan"
        plan = self._build_object_plan(return_type, field_details_list)
        self._plans[key] = (field_details_list, plan)
        return plan

    def _build_object_plan(self, return_type: GraphQLObjectType, field_details_list: Any) -> Completer | None:
        grouped, new_defer_usages, _ = self.collect_subfields(return_type, field_details_list)
        if new_defer_usages:
            return None
        steps: list[tuple[str, Callable[[Any, Path], Any]]] = []
        for response_name, sub_fields in grouped.items():
            step = self._field_step(return_type, response_name, sub_fields)
            if step is None:
                return None
            steps.append((response_name, step))
        is_type_of: Any = return_type.is_type_of  # Strawberry's reads only the object, never the info

        def complete(source: Any, path: Path) -> dict[str, Any]:
            if is_type_of is not None and not is_type_of(source, None):
                raise _Fallback
            return {name: step(source, path) for name, step in steps}

        return complete

    def _field_step(
        self, parent: GraphQLObjectType, response_name: str, sub_fields: Any
    ) -> Callable[[Any, Path], Any] | None:
        node = sub_fields[0].node
        name = node.name.value
        if name == "__typename":
            type_name = parent.name
            return lambda _source, _path: type_name
        field = parent.fields.get(name)
        if field is None or node.arguments or field.args or field.resolve is None:
            return None
        completer = self._completer(field.type, sub_fields)
        if completer is None:
            return None
        definition: Any = (field.extensions or {}).get("strawberry-definition")
        plain_field = getattr(field.resolve, "_is_default", False) and getattr(
            definition, "is_basic_field", False
        )
        if plain_field and getattr(definition, "default_resolver", None) is getattr:
            read = operator.attrgetter(definition.python_name)  # Strawberry's plain field: an attribute

            def plain(source: Any, path: Path) -> Any:
                return completer(read(source), path)

            return plain
        resolve = _direct(field, definition) or field.resolve
        nodes = [details.node for details in sub_fields]

        def resolved(source: Any, path: Path) -> Any:
            field_path = Path(path, response_name, parent.name)
            value = resolve(source, self.build_resolve_info(field, nodes, parent, field_path))
            if self.is_awaitable(value):
                if inspect.iscoroutine(value):
                    value.close()
                raise _Fallback
            return completer(value, field_path)

        return resolved

    def _completer(self, type_: GraphQLOutputType, sub_fields: Any) -> Completer | None:
        if isinstance(type_, GraphQLNonNull):
            required = self._completer(type_.of_type, sub_fields)
            if required is None:
                return None
            return lambda value, path: _fallback() if value is None else required(value, path)
        optional = self._nullable_completer(type_, sub_fields)
        if optional is None:
            return None
        return lambda value, path: None if value is None else optional(value, path)

    def _nullable_completer(self, type_: GraphQLOutputType, sub_fields: Any) -> Completer | None:
        if isinstance(type_, GraphQLList):
            item = self._completer(type_.of_type, sub_fields)
            if item is None:
                return None

            def complete_list(value: Any, path: Path) -> list[Any]:
                if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
                    raise _Fallback
                return [item(element, Path(path, index, None)) for index, element in enumerate(value)]

            return complete_list
        if isinstance(type_, (GraphQLScalarType, GraphQLEnumType)):
            coerce = type_.coerce_output_value
            text = type_ is GraphQLString or type_ is GraphQLID

            def complete_leaf(value: Any, _path: Path) -> Any:
                if text and type(value) is str:
                    return value
                coerced = coerce(value)
                if coerced is Undefined or coerced is None:
                    raise _Fallback
                return coerced

            return complete_leaf
        if isinstance(type_, GraphQLObjectType):
            key = (type_.name, id(sub_fields))
            if key in self._plans and self._plans[key][1] is None:
                return None  # being built: a recursive selection is left to graphql-core
            plan = self._plan(type_, sub_fields)
            if plan is None:
                return None
            return plan
        return None  # interfaces and unions: graphql-core resolves the concrete type
