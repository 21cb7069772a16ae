"""The ``@cacheControl`` policy of a query, worked out from its document alone, before execution, once per
document (``schema.directives.cache_control`` has the rules). Mutations and subscriptions are never cached."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from core.cache_tags import Policy
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
    is_leaf_type,
)
from schema.directives.cache_control import CacheControlScope, hint_of


class CachePolicies:
    """The hints of one schema, read once, and the policies of the documents seen (bounded LRU)."""

    def __init__(self, schema: GraphQLSchema, maxsize: int = 1024) -> None:
        self.schema = schema
        self.maxsize = maxsize
        self._seen: OrderedDict[tuple[str, str | None], Policy | None] = OrderedDict()

    def of(self, query: str, document: DocumentNode, operation_name: str | None) -> Policy | None:
        """The policy of a query operation; None for mutations, subscriptions and unknown operations."""
        key = (query, operation_name)
        if key in self._seen:
            self._seen.move_to_end(key)
            return self._seen[key]
        policy = self._compute(document, operation_name)
        self._seen[key] = policy
        if len(self._seen) > self.maxsize:
            self._seen.popitem(last=False)
        return policy

    def _compute(self, document: DocumentNode, operation_name: str | None) -> Policy | None:
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        fragments = {
            node.name.value: node for node in document.definitions if isinstance(node, FragmentDefinitionNode)
        }
        walk = _Walk(self.schema, fragments)
        walk.visit(operation.selection_set, self.schema.query_type, None)
        return Policy(max_age=walk.max_age if walk.max_age is not None else 0, public=not walk.private)


class _Walk:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.schema, self.fragments = schema, fragments
        self.max_age: int | None = None
        self.private = False
        self._spread: set[str] = set()

    def restrict(self, max_age: int) -> None:
        self.max_age = max_age if self.max_age is None else min(self.max_age, max_age)

    def visit(self, selections: SelectionSetNode, parent: Any, parent_age: int | None) -> None:
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                self.field(selection, parent, parent_age)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                self.visit(selection.selection_set, target, parent_age)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in self._spread:
                self._spread.add(selection.name.value)  # each fragment once: its fields are the same
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    self.visit(fragment.selection_set, target, parent_age)

    def field(self, node: FieldNode, parent: Any, parent_age: int | None) -> None:
        name = node.name.value
        if name == "__typename":
            return
        fields: dict[str, GraphQLField] = getattr(parent, "fields", {})
        field = fields.get(name)
        if field is None:  # introspection (__schema, __type) and anything validation would refuse
            self.restrict(0)
            return
        named: GraphQLNamedType = get_named_type(field.type)
        age = self._age(field, named, parent_age)
        self.restrict(age)
        if node.selection_set is not None:
            self.visit(node.selection_set, named, age)

    def _age(self, field: GraphQLField, named: GraphQLNamedType, parent_age: int | None) -> int:
        field_hint = hint_of((field.extensions or {}).get("strawberry-definition"))
        type_hint = hint_of((named.extensions or {}).get("strawberry-definition"))
        for hint in (field_hint, type_hint):
            if hint is not None and hint.scope is CacheControlScope.PRIVATE:
                self.private = True
        if field_hint is not None and field_hint.inherit_max_age is True:
            return parent_age or 0
        for hint in (field_hint, type_hint):
            if hint is not None and isinstance(hint.max_age, int):
                return hint.max_age
        if (type_hint is not None and type_hint.inherit_max_age is True) or is_leaf_type(named):
            return parent_age or 0
        return 0
