"""What an operation costs, estimated before it runs from what it selects and the page sizes it asks for.

The rule is GitHub's (its GraphQL API's rate limit): every connection is assumed to return a full page, so
its page size multiplies the cost of what its edges select. Here:

- a field that runs one of taskql's resolvers (a page of a list, a row, a count, statistics) costs 1;
  a field that only reads what its parent already holds (``title``, ``edges``, ``node``, ``pageInfo``...)
  costs 0, and so do ``__typename``, introspection, and a resolver marked ``FREE_FIELD`` (one that only
  decides whether to show what its parent holds);
- a mutation field costs ``MUTATION_FIELD_COST`` (a transaction, cache invalidation, an event);
- below a connection (``tasks``, ``users``: fields with ``first``/``last`` that return ``edges``), what its
  ``edges`` select counts once per row of a full page: ``first``, else ``last``, else the default page size
  (20), at most 100; arguments and ``@skip``/``@include`` are read with the request's variables (and the
  operation's variable defaults), as the executor will read them;
- fields selected twice under one response key count once (the executor merges them); below an interface
  (``node``), the costliest of its object types counts;
- an operation costs at least 1, except one that selects only ``rateLimit`` (and ``__typename``): reading
  the budget spends none of it.

So ``tasks(first: 50) { totalCount edges { node { owner { name taskStats { total } } } } }`` costs
1 (tasks) + 1 (totalCount) + 50 * (1 (owner) + 1 (taskStats)) = 102.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    GroupedFieldSet,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from graphql import (
    ArgumentNode,
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    Visitor,
    get_named_type,
    get_operation_ast,
    is_abstract_type,
    is_object_type,
    visit,
)

MUTATION_FIELD_COST = 10
FREE_ROOT_FIELDS = frozenset({"rateLimit", "__typename"})
# A field's metadata key: its resolver only decides whether to show what its parent holds (User.email to
# whom it may see it), so it costs what a plain attribute does, 0.
FREE_FIELD = "taskql.free"
SIZED_FIELDS = frozenset({"edges"})  # what a connection's page size multiplies
PAGE_ARGUMENTS = ("first", "last")
# Arguments whose variables can change a cost: page sizes, and @skip/@include conditions.
COST_ARGUMENTS = frozenset({*PAGE_ARGUMENTS, "if"})
ABSENT = ("absent",)  # a variable not sent (its default applies), unlike one sent as null


@dataclass(frozen=True, slots=True)
class _FieldCost:
    weight: int
    connection: bool


@dataclass(frozen=True, slots=True)
class _Walk:
    """One operation with its variables, as the executor will see it."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDetails]
    variables: VariableValues
    operation: OperationDefinitionNode


class CostModel:
    """The field costs of one schema, read once, and the costs of the operations seen (bounded LRUs)."""

    def __init__(
        self, schema: GraphQLSchema, *, default_page_size: int, max_page_size: int, maxsize: int = 1024
    ) -> None:
        self.schema = schema
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.maxsize = maxsize
        self._fields = _field_costs(schema)
        self._relevant: OrderedDict[tuple[str, str | None], tuple[str, ...]] = OrderedDict()
        self._costs: OrderedDict[tuple[Any, ...], int] = OrderedDict()

    def of(
        self,
        query: str,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> int:
        """The cost of the operation ``operation_name`` of a validated ``document`` (the text ``query``)."""
        variables = variables or {}
        relevant = _remembered(self._relevant, (query, operation_name))
        if relevant is None:
            relevant = _cost_variables(document)
            _remember(self._relevant, (query, operation_name), relevant, self.maxsize)
        key = (
            query,
            operation_name,
            *(_frozen(variables[n]) if n in variables else ABSENT for n in relevant),
        )
        cost: int | None = _remembered(self._costs, key)
        if cost is None:
            cost = self._compute(document, operation_name, variables)
            _remember(self._costs, key, cost, self.maxsize)
        return cost

    def _compute(self, document: DocumentNode, operation_name: str | None, raw: Mapping[str, Any]) -> int:
        operation = get_operation_ast(document, operation_name)
        root = self.schema.get_root_type(operation.operation) if operation else None
        if operation is None or root is None:
            return 1
        variables = get_variable_values(self.schema, operation.variable_definitions or (), dict(raw))
        if isinstance(variables, list):  # the executor refuses them: nothing will run
            return 1
        fragments = {
            node.name.value: FragmentDetails(node)
            for node in document.definitions
            if isinstance(node, FragmentDefinitionNode)
        }
        walk = _Walk(self.schema, fragments, variables, operation)
        grouped = collect_fields(self.schema, fragments, variables, root, operation).grouped_field_set
        if all(details[0].node.name.value in FREE_ROOT_FIELDS for details in grouped.values()):
            return 0
        return max(1, self._selection(walk, root, grouped, 1, None))

    def _selection(
        self,
        walk: _Walk,
        parent: GraphQLObjectType,
        grouped: GroupedFieldSet,
        multiplier: int,
        page_size: int | None,
    ) -> int:
        total = 0
        for details in grouped.values():
            name = details[0].node.name.value
            if name.startswith("__"):
                continue
            inner = multiplier * page_size if page_size is not None and name in SIZED_FIELDS else multiplier
            total += self._field(walk, parent, details, inner)
        return total

    def _field(
        self, walk: _Walk, parent: GraphQLObjectType, details: FieldDetailsList, multiplier: int
    ) -> int:
        node = details[0].node
        definition = parent.fields[node.name.value]
        cost = self._fields.get((parent.name, node.name.value), _FieldCost(0, False))
        own = cost.weight * multiplier
        named = get_named_type(definition.type)
        if node.selection_set is None or not (is_object_type(named) or is_abstract_type(named)):
            return own
        page_size = self._page_size(walk, definition, details) if cost.connection else None
        runtime_types: list[GraphQLObjectType] = (
            list(self.schema.get_possible_types(named)) if is_abstract_type(named) else [named]  # type: ignore[list-item]
        )
        below = 0
        for runtime_type in runtime_types:
            grouped = collect_subfields(
                walk.schema, walk.fragments, walk.variables, walk.operation, runtime_type, details
            ).grouped_field_set
            below = max(below, self._selection(walk, runtime_type, grouped, multiplier, page_size))
        return own + below

    def _page_size(self, walk: _Walk, definition: GraphQLField, details: FieldDetailsList) -> int:
        arguments = get_argument_values(
            definition, details[0].node, walk.variables, details[0].fragment_variable_values
        )
        size = next(
            (arguments[name] for name in PAGE_ARGUMENTS if isinstance(arguments.get(name), int)),
            self.default_page_size,
        )
        return min(max(size, 0), self.max_page_size)


def _field_costs(schema: GraphQLSchema) -> dict[tuple[str, str], _FieldCost]:
    mutation = schema.get_root_type(OperationType.MUTATION)
    costs: dict[tuple[str, str], _FieldCost] = {}
    for named in schema.type_map.values():
        if not is_object_type(named) or named.name.startswith("__"):
            continue
        assert isinstance(named, GraphQLObjectType)
        for name, field in named.fields.items():
            definition = (field.extensions or {}).get("strawberry-definition")
            resolves = getattr(definition, "base_resolver", None) is not None
            free = bool((getattr(definition, "metadata", None) or {}).get(FREE_FIELD))
            if named is mutation:
                weight = MUTATION_FIELD_COST
            elif named is schema.query_type and name in FREE_ROOT_FIELDS:
                weight = 0
            else:
                weight = 1 if resolves and not free else 0
            costs[named.name, name] = _FieldCost(weight, _is_connection(field))
    return costs


def _is_connection(field: GraphQLField) -> bool:
    named = get_named_type(field.type)
    return (
        is_object_type(named)
        and {"edges", "pageInfo"} <= set(getattr(named, "fields", {}))
        and any(name in field.args for name in PAGE_ARGUMENTS)
    )


def _cost_variables(document: DocumentNode) -> tuple[str, ...]:
    """The variables a cost can depend on: those given to page sizes and to @skip/@include."""
    names: set[str] = set()

    class Collect(Visitor):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
            if node.name.value in COST_ARGUMENTS and isinstance(node.value, VariableNode):
                names.add(node.value.name.value)

    visit(document, Collect())
    return tuple(sorted(names))


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a variable's value (page sizes and conditions are ints and booleans; anything
    else the executor refuses, but it must not break the key)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    return json.dumps(value, sort_keys=True, default=str)


def _remembered(cache: OrderedDict[Any, Any], key: Any) -> Any:
    found = cache.get(key)
    if found is not None:
        cache.move_to_end(key)
    return found


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, maxsize: int) -> None:
    cache[key] = value
    if len(cache) > maxsize:
        cache.popitem(last=False)
