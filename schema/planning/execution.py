"""Planned completion: graphql-core's executor, with object values completed by compiled plans.

graphql-core completes every field of every row the same general way: a resolve info, a path, the field's
resolver, then a walk down the return type. For a page of 50 tasks that is some 600 fields, and most of the
time of a request. Here, an object type's selection is compiled once into a Python function (see
``schema.planning.plans``): each selected field read (an attribute for Strawberry's plain fields, the field's
own resolver otherwise) and completed inline (leaf checks, lists, nulls, nested objects' functions). Every row
then costs one call per object. Plans are kept across requests for documents seen before.

Semantics stay graphql-core's. A plan is only built for selections it fully understands (no arguments, no
abstract types, no ``@defer``, no resolver middleware); anything else, and any surprise while a plan runs (a
null in a non-null field, a resolver that raises, a value of the wrong type), hands the object back to
graphql-core, which completes it from scratch and reports errors as it always does. Reading again is safe:
queries only read, and the values are already loaded.

A field whose resolver is an ``async def`` is not called by the plan: it keeps the field's place in the
response, and once the plan has run, graphql-core's ``execute_field`` executes each such field (all started
before any is awaited, so their dataloaders batch), completing its value and handling its errors. A non-null
field's error nulls the nearest nullable position above it in the plan's output, where graphql-core would have
recorded it, or is raised from the plan's object when there is none. A field whose sync resolver returns an
awaitable (a dataloader's value not loaded yet) is treated the same way, after the fact: the awaitable is
dropped and graphql-core executes the field after the plan's run. A plan that falls back has awaited nothing
for these fields, so graphql-core's completion from scratch stays exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from graphql.pyutils import Path, gather_with_cancel

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
)
from schema.directives.auth import required_role
from schema.planning import graphql_core_compat, plans, strawberry_compat
from schema.planning.plans import Plan


def _direct(field: GraphQLField, definition: Any) -> Callable[[Any, Any], Any] | None:
    """A sync resolver of the shape ``(self, info)``, with no arguments, field extensions, permissions or
    ``@auth`` guard, as Strawberry would call it (``strawberry_compat.direct_call``)."""
    if required_role(field) is not None:
        return None
    return strawberry_compat.direct_call(definition)


def _planned_variant(field: GraphQLField, definition: Any) -> Callable[[Any, Any], Any] | None:
    """The resolver's variant for plans (``schema.planning.plans.planned``), when it is one ``_direct``
    would call."""
    if _direct(field, definition) is None:
        return None
    variant = getattr(strawberry_compat.resolver_function(definition), plans.PLANNED, None)
    return variant if callable(variant) else None


class GeneralExecutionContext(strawberry_compat.ExecutionContext):
    """Strawberry's executor: graphql-core completes every field itself (``PLANNED_COMPLETION=false``)."""

    def build_per_event_executor(self, payload: Any) -> GeneralExecutionContext:
        """Each subscription event gets its own memos. graphql-core copies the subscription's executor
        per event, memos included, and keys them by field lists each event builds anew: shared, they
        would grow by an entry per nested object per event for as long as the subscription lives."""
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, GeneralExecutionContext)
        executor.forget_memos()
        return executor

    def forget_memos(self) -> None:
        graphql_core_compat.forget_collected_subfields(self)


class PlannedExecutionContext(GeneralExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # This request's plans, by object type and field list (graphql-core's own memo key).
        self._plans: dict[tuple[str, int], tuple[Any, Plan | None]] = {}
        # The async fields the running plan left out (plans append to it: ``plans.Deferred``).
        self.deferred_fields: list[tuple[tuple[plans.Deferred, ...], Any, Path, dict[str, Any]]] = []
        manager = self.middleware_manager
        self._planning = not (manager is not None and manager.middlewares)
        self._shared = self._planning and plans.shareable(self.operation, self.fragments)

    def forget_memos(self) -> None:
        super().forget_memos()
        self._plans = {}

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
                # A plan's run is synchronous, so no other plan appends here meanwhile.
                deferred: list[tuple[tuple[plans.Deferred, ...], Any, Path, dict[str, Any]]] = []
                self.deferred_fields = deferred
                try:
                    completed = plan(self, result, path)
                except Exception:  # noqa: S110  graphql-core completes it again and reports any error
                    pass  # nothing was started for the deferred fields: forgetting them is enough
                else:
                    return self._complete_deferred(completed, path, deferred) if deferred else completed
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )

    async def _complete_deferred(
        self,
        completed: dict[str, Any],
        path: Path,
        deferred: list[tuple[tuple[plans.Deferred, ...], Any, Path, dict[str, Any]]],
    ) -> dict[str, Any]:
        """Execute a plan's async fields as graphql-core would (``execute_field``), all started before any
        is awaited (so that their dataloaders batch), each value put where the plan left its place."""
        runs = [
            self._execute_deferred(field, source, Path(object_path, field.response_name, field.parent.name),
                                   container, completed, path)
            for fields, source, object_path, container in deferred
            for field in fields
        ]  # fmt: skip
        if len(runs) == 1:
            await runs[0]
        else:
            await gather_with_cancel(*runs)
        return completed

    async def _execute_deferred(
        self,
        field: plans.Deferred,
        source: Any,
        field_path: Path,
        container: dict[str, Any],
        completed: dict[str, Any],
        path: Path,
    ) -> None:
        try:
            value = self.execute_field(field.parent, source, field.field_details_list, field_path, None)
            if self.is_awaitable(value):
                value = await value
        except Exception as error:  # a non-null field's error: graphql-core propagates it to a nullable one
            self._propagate(error, field, field_path, completed, path)
        else:
            container[field.response_name] = value

    def _propagate(
        self, error: Exception, field: plans.Deferred, field_path: Path, completed: dict[str, Any], path: Path
    ) -> None:
        """Null the nearest nullable position above the field in the plan's output and record the error
        there, as graphql-core's completion would; with none up to the plan's object, raise it from there."""
        steps: list[Path] = []
        step = field_path.prev
        for _ in field.ancestors:
            assert step is not None
            steps.append(step)
            step = step.prev
        assert step is path, "a deferred field's path runs through its plan's object"
        steps.reverse()
        for depth in range(len(steps) - 1, -1, -1):
            type_, field_details_list = field.ancestors[depth]
            if isinstance(type_, GraphQLNonNull):
                continue
            container: Any = completed
            for above in steps[:depth]:
                container = container[above.key]
                if container is None:  # nulled already, by another field's error: graphql-core cancelled this
                    return
            container[steps[depth].key] = None
            self.handle_field_error(error, type_, field_details_list, steps[depth])
            return
        raise error

    def _plan(self, return_type: GraphQLObjectType, field_details_list: Any) -> Plan | None:
        key = (return_type.name, id(field_details_list))
        known = self._plans.get(key)
        if known is not None:
            return known[1]
        plan = self._shared_plan(return_type, field_details_list)
        self._plans[key] = (field_details_list, plan)  # the list is kept alive, so its id stays unique
        return plan

    def _shared_plan(self, return_type: GraphQLObjectType, field_details_list: Any) -> Plan | None:
        if not self._shared:
            return _Compiler(self).compile(return_type, field_details_list)
        # The selected fields' nodes (the parser cache's, kept alive with the plan) decide their subfields:
        # the operation's selections do not depend on its variables (``plans.shareable``), so the subfields
        # need not be collected again to find the plan.
        nodes = [details.node for details in field_details_list]
        key = (return_type, tuple(map(id, nodes)))
        kept = plans.SHARED_PLANS.get(key)
        if kept is None:
            kept = (nodes, _Compiler(self).compile(return_type, field_details_list))
            plans.SHARED_PLANS.keep(key, kept)
        else:
            plans.SHARED_PLANS.move_to_end(key)
        return cast("Plan | None", kept[1])


class _Compiler:
    """Generates one module of plans: a function per object type of a selection, nested ones called by
    their parent's. Returns None for anything it does not fully understand (graphql-core then completes)."""

    def __init__(self, executor: PlannedExecutionContext) -> None:
        self._executor = executor
        self._module = plans.Module()
        self._building: set[tuple[str, int]] = set()

    def compile(self, return_type: GraphQLObjectType, field_details_list: Any) -> Plan | None:
        built = self._object(return_type, field_details_list, ())
        return None if built is None else self._module.compile(built[0])

    def _object(
        self, type_: GraphQLObjectType, field_details_list: Any, ancestors: tuple[plans.Position, ...]
    ) -> tuple[str, bool] | None:
        """The name of the function completing ``type_`` for this selection, and whether it needs a path.
        ``ancestors``: the positions from the plan's root object down to this one's."""
        key = (type_.name, id(field_details_list))
        if key in self._building:  # a recursive selection is left to graphql-core
            return None
        self._building.add(key)
        grouped, new_defer_usages, _ = self._executor.collect_subfields(type_, field_details_list)
        if new_defer_usages:
            return None
        body: list[str] = []
        entries: list[str] = []
        needs_path = False
        deferred: list[plans.Deferred] = []
        late = False  # whether a resolver's awaitable may leave a field to graphql-core (``_field``)
        for response_name, sub_fields in grouped.items():
            var = self._module.fresh("v")
            if self._deferrable(type_, sub_fields):
                deferred.append(plans.Deferred(type_, response_name, sub_fields, ancestors))
                body.append(f"    {var} = None")  # its place in the response, kept in order
            else:
                this = plans.Deferred(type_, response_name, sub_fields, ancestors)
                field = self._field(type_, response_name, sub_fields, var, ancestors, this)
                if field is None:
                    return None
                body += field[0]
                needs_path = needs_path or field[1]
                late = late or field[2]
            entries.append(f"{response_name!r}: {var}")
        name = self._module.fresh(f"complete_{type_.name}_")
        lines = [f"def {name}(ctx, source, path):"]
        if type_.is_type_of is not None:  # Strawberry's reads only the object, never the info
            lines.append(f"    if not {self._module.bind('is_type_of', type_.is_type_of)}(source, None):")
            lines.append("        raise Fallback")
        if late:
            lines.append("    late = []")
        lines += body
        if deferred or late:
            fields = self._module.bind("deferred", tuple(deferred))
            lines.append(f"    completed = {{{', '.join(entries)}}}")
            if late and deferred:
                lines.append(
                    f"    ctx.deferred_fields.append(({fields} + tuple(late), source, path, completed))"
                )
            elif late:
                lines.append(
                    "    if late: ctx.deferred_fields.append((tuple(late), source, path, completed))"
                )
            else:
                lines.append(f"    ctx.deferred_fields.append(({fields}, source, path, completed))")
            lines.append("    return completed")
            needs_path = True
        else:
            lines.append(f"    return {{{', '.join(entries)}}}")
        self._module.lines += lines
        return name, needs_path

    def _deferrable(self, parent: GraphQLObjectType, sub_fields: Any) -> bool:
        """A field whose resolver is async: graphql-core executes it after the plan's run, as it would."""
        field = parent.fields.get(sub_fields[0].node.name.value)
        if field is None or field.resolve is None:
            return False
        return strawberry_compat.is_async((field.extensions or {}).get("strawberry-definition"))

    def _field(
        self,
        parent: GraphQLObjectType,
        response_name: str,
        sub_fields: Any,
        var: str,
        ancestors: tuple[plans.Position, ...],
        late: plans.Deferred,
    ) -> tuple[list[str], bool, bool] | None:
        """Lines that set ``var`` to the completed value of one field, whether they need the path, and
        whether the field may be left to graphql-core: a resolver that returns an awaitable (a dataloader's
        value not loaded yet) has it dropped, and the field is executed after the plan's run as an async
        field is (``late``, appended to the object's ``late`` list), instead of the whole object falling
        back. Queries only read, so calling the resolver again is safe."""
        node = sub_fields[0].node
        name = node.name.value
        if name == "__typename":
            return [f"    {var} = {parent.name!r}"], False, False
        field = parent.fields.get(name)
        if field is None or node.arguments or field.args or field.resolve is None:
            return None
        definition: Any = (field.extensions or {}).get("strawberry-definition")
        attribute = strawberry_compat.plain_attribute(field, definition)
        plain = attribute is not None and plans.attribute(attribute)
        module = self._module
        variant = _planned_variant(field, definition) if not plain else None
        if plain:
            path = f"Path(path, {response_name!r}, {parent.name!r})"
            lines = [f"    {var} = source.{plain}"]
        elif variant is not None:
            path = f"Path(path, {response_name!r}, {parent.name!r})"
            lines = [f"    {var} = {module.bind('planned', variant)}(source, ctx.context_value)"]
        else:
            path = module.fresh("path")
            resolve = module.bind("resolve", _direct(field, definition) or field.resolve)
            info = (
                f"ctx.build_resolve_info({module.bind('field', field)}, "
                f"{module.bind('nodes', [details.node for details in sub_fields])}, "
                f"{module.bind('parent', parent)}, {path})"
            )
            lines = [
                f"    {path} = Path(path, {response_name!r}, {parent.name!r})",
                f"    {var} = {resolve}(source, {info})",
            ]
        position = (*ancestors, (field.type, sub_fields))
        completed = self._value(field.type, sub_fields, var, path, "        ", position)
        if completed is None:
            return None
        if plain:
            return lines + [line[4:] for line in completed[0]], completed[1], False
        lines += [
            f"    if ctx.is_awaitable({var}):",
            f"        drop_awaitable({var})",
            f"        late.append({module.bind('late', late)})",
            f"        {var} = None",  # its place in the response, filled once graphql-core executed it
            "    else:",
            *(completed[0] or ["        pass"]),
        ]
        return lines, True, True

    def _value(
        self,
        type_: GraphQLOutputType,
        sub_fields: Any,
        var: str,
        path: str,
        pad: str,
        ancestors: tuple[plans.Position, ...],
    ) -> tuple[list[str], bool] | None:
        """Lines that complete ``var`` in place (``path`` is an expression for its path; ``ancestors`` end
        with ``var``'s position)."""
        if isinstance(type_, GraphQLNonNull):
            inner = self._present(type_.of_type, sub_fields, var, path, pad, ancestors)
            if inner is None:
                return None
            return [f"{pad}if {var} is None: raise Fallback", *inner[0]], inner[1]
        inner = self._present(type_, sub_fields, var, path, pad + "    ", ancestors)
        if inner is None:
            return None
        return [f"{pad}if {var} is not None:", *inner[0]] if inner[0] else [], inner[1]

    def _present(
        self,
        type_: GraphQLOutputType,
        sub_fields: Any,
        var: str,
        path: str,
        pad: str,
        ancestors: tuple[plans.Position, ...],
    ) -> tuple[list[str], bool] | None:
        """Lines that complete ``var``, known not to be None."""
        module = self._module
        if isinstance(type_, (GraphQLScalarType, GraphQLEnumType)):
            return plans.leaf_lines(module, type_, var, pad), False
        if isinstance(type_, GraphQLObjectType):
            built = self._object(type_, sub_fields, ancestors)
            if built is None:
                return None
            plan, needs_path = built
            return [f"{pad}{var} = {plan}(ctx, {var}, {path if needs_path else None})"], needs_path
        if isinstance(type_, GraphQLList):
            item = module.fresh("item")
            item_position = (*ancestors, (type_.of_type, sub_fields))
            completed = self._value(type_.of_type, sub_fields, "x", "path", "    ", item_position)
            if completed is None:
                return None
            lines, needs_path = completed
            module.lines += [f"def {item}(ctx, x, path):", *lines, "    return x"]
            each = f"{item}(ctx, x, Path({path}, i, None))" if needs_path else f"{item}(ctx, x, None)"
            source = f"({var} if type({var}) is list else as_list({var}))"
            loop = f"for i, x in enumerate({source})" if needs_path else f"for x in {source}"
            return [f"{pad}{var} = [{each} {loop}]"], needs_path
        return None  # interfaces and unions: graphql-core resolves the concrete type
