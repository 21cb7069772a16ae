"""Does a GraphQL response fit the document it answers? A checker independent of the server's executor.

A response passes when:
- it is ``data``, ``errors`` and ``extensions`` only, and has data or errors;
- every error has a message and a documented ``extensions.code``, and its ``path`` (if any) leads to a null
  in ``data`` (the field that failed, or the nullable field its null propagated to);
- ``data`` has exactly the response keys the selection asks for, in order, on every object, each with a value
  of the field's type: no null where the schema says non-null, integers within 32 bits, enum values of the
  enum, custom scalars in their documented form (``SCALAR_CHECKS``), objects of the abstract type's possible
  types only.

A new custom scalar without an entry in ``SCALAR_CHECKS`` makes every response holding it fail: its form
has to be decided, not assumed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.ids import decode_id
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    get_operation_ast,
    is_abstract_type,
    value_from_ast_untyped,
)

# Every code the README documents, and the persisted-query, subscription and transport ones.
DOCUMENTED_CODES = frozenset(
    {
        "BAD_REQUEST",
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "NOT_FOUND",
        "BAD_USER_INPUT",
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "INTROSPECTION_DISABLED",
        "SERVICE_UNAVAILABLE",
        "INTERNAL_SERVER_ERROR",
        "PERSISTED_QUERY_NOT_FOUND",
        "PERSISTED_QUERY_NOT_ALLOWED",
        "CURSOR_EXPIRED",
    }
)
INT_RANGE = range(-(2**31), 2**31)
UTC_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def _is_utc_datetime(value: object) -> bool:
    if not isinstance(value, str) or not UTC_DATETIME.match(value):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo == UTC
    except ValueError:
        return False


SCALAR_CHECKS: dict[str, Callable[[object], bool]] = {
    "Int": lambda value: type(value) is int and value in INT_RANGE,
    "Float": lambda value: type(value) in (int, float) and math.isfinite(value),  # type: ignore[arg-type]
    "String": lambda value: isinstance(value, str),
    "ID": lambda value: isinstance(value, str),
    "Boolean": lambda value: isinstance(value, bool),
    "DateTime": _is_utc_datetime,
}

Path = tuple[str | int, ...]


def shape_problems(
    schema: GraphQLSchema,
    document: DocumentNode,
    body: object,
    *,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> list[str]:
    """What is wrong with ``body`` as the answer to ``document`` (an empty list: nothing)."""
    checker = _Checker(schema, document, dict(variables or {}))
    checker.check_body(body, operation_name)
    return checker.problems


@dataclass
class _Checker:
    schema: GraphQLSchema
    document: DocumentNode
    variables: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @property
    def fragments(self) -> dict[str, FragmentDefinitionNode]:
        return {
            definition.name.value: definition
            for definition in self.document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(f"at {list(path)}: {message}")

    def check_body(self, body: object, operation_name: str | None) -> None:
        if not isinstance(body, dict):
            self.problem((), f"the body is not a JSON object: {body!r}")
            return
        if extra := set(body) - {"data", "errors", "extensions"}:
            self.problem((), f"unexpected top-level keys {sorted(extra)}")
        errors = body.get("errors")
        if errors is not None:
            self.check_errors(errors)
        if "data" not in body or body["data"] is None:
            if not errors:
                self.problem((), "no data and no error")
            return
        operation = get_operation_ast(self.document, operation_name)
        if operation is None:
            self.problem((), "data for a document without a single operation")
            return
        root = {
            OperationType.QUERY: self.schema.query_type,
            OperationType.MUTATION: self.schema.mutation_type,
            OperationType.SUBSCRIPTION: self.schema.subscription_type,
        }[operation.operation]
        assert root is not None
        self.check_object((), root, [operation.selection_set], body["data"])
        for error in errors if isinstance(errors, list) else []:
            if isinstance(error, dict) and isinstance(error.get("path"), list):
                self.check_error_path(error["path"], body["data"])

    def check_errors(self, errors: object) -> None:
        if not isinstance(errors, list) or not errors:
            self.problem((), f"errors is not a non-empty list: {errors!r}")
            return
        for number, error in enumerate(errors):
            where: Path = ("errors", number)
            if not isinstance(error, dict) or not isinstance(error.get("message"), str):
                self.problem(where, f"an error without a message: {error!r}")
                continue
            code = (error.get("extensions") or {}).get("code")
            if code not in DOCUMENTED_CODES:
                self.problem(where, f"an error without a documented extensions.code: {error!r}")
            path = error.get("path")
            if path is not None and not (
                isinstance(path, list) and all(isinstance(key, str | int) for key in path)
            ):
                self.problem(where, f"a malformed path: {path!r}")

    def check_error_path(self, path: list[str | int], data: object) -> None:
        """The value at an error's path is null, or the null propagated to one of its ancestors."""
        node = data
        for depth, key in enumerate(path):
            if node is None:
                return
            try:
                node = node[key]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                self.problem(tuple(path), f"an error path that leaves the data at {path[:depth]}")
                return
        if node is not None:
            self.problem(tuple(path), f"an error at a field that has a value: {node!r}")

    def collect(
        self, runtime: GraphQLObjectType, selection_sets: Sequence[SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        """The response keys an object of ``runtime`` gets, in order, with their merged field nodes."""
        fields: dict[str, list[FieldNode]] = {}

        def visit(selection_set: SelectionSetNode) -> None:
            for selection in selection_set.selections:
                if not self.included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    if condition is None or self.applies(condition.name.value, runtime):
                        visit(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    fragment = self.fragments.get(selection.name.value)
                    if fragment and self.applies(fragment.type_condition.name.value, runtime):
                        visit(fragment.selection_set)

        for selection_set in selection_sets:
            visit(selection_set)
        return fields

    def included(self, node: SelectionNode) -> bool:
        """``@skip(if:)`` and ``@include(if:)``, with a literal or a variable."""
        for directive in node.directives or ():
            if directive.name.value not in ("skip", "include"):
                continue
            value = next(arg.value for arg in directive.arguments or () if arg.name.value == "if")
            condition = value_from_ast_untyped(value, self.variables)
            if bool(condition) == (directive.name.value == "skip"):
                return False
        return True

    def applies(self, type_name: str, runtime: GraphQLObjectType) -> bool:
        condition = self.schema.get_type(type_name)
        if condition is runtime:
            return True
        return is_abstract_type(condition) and self.schema.is_sub_type(condition, runtime)

    def check_object(
        self,
        path: Path,
        runtime: GraphQLObjectType,
        selection_sets: Sequence[SelectionSetNode],
        value: object,
    ) -> None:
        if not isinstance(value, dict):
            self.problem(path, f"{runtime.name} expected, got {value!r}")
            return
        expected = self.collect(runtime, selection_sets)
        if list(value) != list(expected):
            self.problem(path, f"keys {list(value)} where the selection asks for {list(expected)}")
            return
        for key, nodes in expected.items():
            name = nodes[0].name.value
            if name == "__typename":
                if value[key] != runtime.name:
                    self.problem((*path, key), f"__typename {value[key]!r} on a {runtime.name}")
                continue
            if name.startswith("__"):
                continue  # introspection: graphql-core's own
            definition = runtime.fields[name]
            subselections = [node.selection_set for node in nodes if node.selection_set]
            self.check_value((*path, key), definition.type, subselections, value[key])
            if name == "id" and isinstance(value[key], str):
                self.check_global_id((*path, key), runtime, value[key])

    def check_global_id(self, path: Path, runtime: GraphQLObjectType, global_id: str) -> None:
        """An object's ``id`` names that object's type (what ``node(id:)`` relies on)."""
        if "Node" not in {interface.name for interface in runtime.interfaces}:
            return
        try:
            type_name, _ = decode_id(global_id)
        except Exception:
            type_name = None
        if type_name != runtime.name:
            self.problem(path, f"the id {global_id!r} of a {runtime.name} does not decode to one")

    def check_value(
        self, path: Path, type_: GraphQLOutputType, selection_sets: list[SelectionSetNode], value: object
    ) -> None:
        if isinstance(type_, GraphQLNonNull):
            if value is None:
                self.problem(path, f"null for the non-null {type_}")
                return
            type_ = type_.of_type
        if value is None:
            return
        if isinstance(type_, GraphQLList):
            if not isinstance(value, list):
                self.problem(path, f"{type_} expected, got {value!r}")
                return
            for index, item in enumerate(value):
                self.check_value((*path, index), type_.of_type, selection_sets, item)
        elif isinstance(type_, GraphQLEnumType):
            if value not in type_.values:
                self.problem(path, f"{value!r} is not a value of {type_.name}")
        elif isinstance(type_, GraphQLScalarType):
            check = SCALAR_CHECKS.get(type_.name)
            if check is None:
                self.problem(path, f"no check for the scalar {type_.name}: add one to SCALAR_CHECKS")
            elif not check(value):
                self.problem(path, f"{value!r} is not a {type_.name}")
        elif isinstance(type_, GraphQLObjectType):
            self.check_object(path, type_, selection_sets, value)
        else:
            self.check_abstract(path, type_, selection_sets, value)

    def check_abstract(
        self, path: Path, type_: Any, selection_sets: list[SelectionSetNode], value: object
    ) -> None:
        """An interface or union value fits one of its possible types (told apart by the keys it has)."""
        if not isinstance(value, dict):
            self.problem(path, f"{type_.name} expected, got {value!r}")
            return
        candidates = self.schema.get_possible_types(type_)
        if isinstance(value.get("__typename"), str):
            candidates = [candidate for candidate in candidates if candidate.name == value["__typename"]]
        findings: list[list[str]] = []
        for candidate in candidates:
            if list(self.collect(candidate, selection_sets)) != list(value):
                continue
            trial = _Checker(self.schema, self.document, self.variables)
            trial.check_object(path, candidate, selection_sets, value)
            if not trial.problems:
                return
            findings.append(trial.problems)
        if findings:
            self.problems.extend(findings[0])
        else:
            self.problem(path, f"{value!r} fits none of the possible types of {type_.name}")
