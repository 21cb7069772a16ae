"""Object plans compiled to Python functions, kept across requests (used by ``schema.planning.execution``).

A plan completes one object type for one selection. It is generated as the source of one function per object
type: each selected field read (an attribute, or the field's resolver) and completed inline (a type check for
strings, booleans and ints, a dictionary lookup for enums, the leaf's own coercion otherwise), the response
built as a dict literal. A page of 50 tasks then costs a call per object, not several per field.

Every check graphql-core makes is still made; when one fails (a null in a non-null field, a value the leaf's
coercion refuses), the plan raises and graphql-core completes the object from scratch, reporting errors as it
always does. A field whose resolver returns an awaitable is left to graphql-core alone, after the plan's run.

Plans are shared by requests, keyed by the object type and the identities of the nodes of the field whose
value the object is (their selection sets decide what is selected on it). Those nodes belong to the parser
cache's documents, and a kept plan keeps them alive, so an identity is never reused while its plan is kept. A
document whose selections could depend on variables (a directive on a selection other than a literal
``@skip``/``@include``) builds its plans per request instead.
"""

from __future__ import annotations

import inspect
import keyword
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Any, NamedTuple, TypeVar

from graphql.execution.collect_fields import FragmentDetails
from graphql.pyutils import Path

from graphql import (
    BooleanValueNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLInt,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
    Node,
    OperationDefinitionNode,
    Undefined,
)

# A plan: (execution context, source object, its path or None) -> the completed object.
Plan = Callable[[Any, Any, Path | None], dict[str, Any]]
# A position of a plan's output: its type and its field's details (graphql-core's error handling needs both).
Position = tuple[Any, Any]
MAX_KEPT = 2048
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


PLANNED = "__taskql_planned__"
F = TypeVar("F", bound=Callable[..., Any])


def planned(variant: Callable[[Any, Any], Any]) -> Callable[[F], F]:
    """Give a resolver taking ``(self, info)`` a variant for plans, ``variant(source, context)``, for a
    resolver that reads nothing of ``info`` but its context: a plan then calls it without building a resolve
    info and Strawberry's ``Info`` for each row. The variant must return what the resolver would (it may
    return an awaitable, or raise: graphql-core then calls the resolver itself)."""

    def mark(resolver: F) -> F:
        setattr(resolver, PLANNED, variant)
        return resolver

    return mark


class Deferred(NamedTuple):
    """A field whose resolver is async, left out of a plan's synchronous run: graphql-core executes it once
    the object is complete (``schema.planning.execution``). ``ancestors`` are the positions between the
    plan's root object and the field's object, from the root down, one per step of the field's path."""

    parent: GraphQLObjectType
    response_name: str
    field_details_list: Any
    ancestors: tuple[Position, ...]


class Fallback(Exception):
    """This object must be completed by graphql-core's general path."""


def leaf_coercion(type_: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """The leaf's own coercion, for values the inline checks don't recognise; a refusal falls back."""
    coerce = type_.coerce_output_value

    def leaf(value: Any) -> Any:
        if value is None:
            raise Fallback
        coerced = coerce(value)
        if coerced is Undefined or coerced is None:
            raise Fallback
        return coerced

    return leaf


def enum_names(type_: GraphQLEnumType) -> tuple[type[Enum], dict[Any, str]] | None:
    """Strawberry's enums: each member of the Python enum, and the name the type's coercion gives it."""
    cls = getattr(type_, "wrapped_cls", None)
    if not (isinstance(cls, type) and issubclass(cls, Enum)):
        return None
    names: dict[Any, str] = {}
    for member in cls:
        try:
            name = type_.coerce_output_value(member)
        except Exception:  # noqa: S112  a member the schema can't name goes the slow way, and errors there
            continue
        if isinstance(name, str):
            names[member] = name
    return cls, names


def as_list(value: Any) -> Any:
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise Fallback
    return value


def drop_awaitable(value: Any) -> None:
    """A resolver returned an awaitable: the plan stays synchronous, and graphql-core executes the field
    again after the plan's run (a coroutine is closed unstarted; a future stays with whoever made it, a
    dataloader's in its cache)."""
    if inspect.iscoroutine(value):
        value.close()


class LRU(OrderedDict[Any, Any]):
    def __init__(self, maxsize: int = MAX_KEPT) -> None:
        super().__init__()
        self.maxsize = maxsize

    def keep(self, key: Any, value: Any) -> None:
        self[key] = value
        while len(self) > self.maxsize:
            self.popitem(last=False)


SHARED_PLANS: LRU = LRU()
_SHAREABLE: LRU = LRU()
_CODE: LRU = LRU()


def shareable(operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDetails]) -> bool:
    """Whether the operation's selections are the same whatever the variables. Remembered per operation
    (a node of the parser cache's document, kept alive with the answer so that its id stays unique)."""
    known = _SHAREABLE.get(id(operation))
    if known is not None and known[0] is operation:
        return bool(known[1])
    nodes: list[Node] = [operation, *(fragment.definition for fragment in fragments.values())]
    result = not any(next(_request_dependent_directives(node), None) for node in nodes)
    _SHAREABLE.keep(id(operation), (operation, result))
    return result


def _request_dependent_directives(node: Node) -> Iterator[Node]:
    if not isinstance(node, OperationDefinitionNode):  # an operation's own directives select nothing
        for directive in getattr(node, "directives", None) or ():
            literal = directive.name.value in {"skip", "include"} and all(
                isinstance(argument.value, BooleanValueNode) for argument in directive.arguments or ()
            )
            if not literal:
                yield directive
    for key in node.keys:
        if key in {"loc", "directives"}:
            continue
        child = getattr(node, key, None)
        for item in child if isinstance(child, (list, tuple)) else (child,):
            if isinstance(item, Node):
                yield from _request_dependent_directives(item)


class Module:
    """The source of one generated module: its lines, and the objects its functions refer to by name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {
            "Path": Path,
            "Fallback": Fallback,
            "as_list": as_list,
            "drop_awaitable": drop_awaitable,
        }
        self._count = 0

    def fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def bind(self, prefix: str, value: Any) -> str:
        name = self.fresh(prefix)
        self.names[name] = value
        return name

    def compile(self, entry: str) -> Plan:
        text = "\n".join(self.lines)
        code = _CODE.get(text)
        if code is None:
            code = compile(text, "<taskql plan>", "exec")
            _CODE.keep(text, code)
        namespace = dict(self.names)
        exec(code, namespace)  # noqa: S102  our own generated source, from the schema's names only
        plan: Plan = namespace[entry]
        return plan


def leaf_lines(module: Module, type_: GraphQLScalarType | GraphQLEnumType, var: str, pad: str) -> list[str]:
    """Lines that replace ``var`` (never None here) by its completed value."""
    leaf = module.bind("leaf", leaf_coercion(type_))
    if type_ is GraphQLString or type_ is GraphQLID:
        return [f"{pad}if type({var}) is not str: {var} = {leaf}({var})"]
    if type_ is GraphQLBoolean:
        return [f"{pad}if type({var}) is not bool: {var} = {leaf}({var})"]
    if type_ is GraphQLInt:
        in_range = f"{INT_MIN} <= {var} <= {INT_MAX}"
        return [f"{pad}if type({var}) is not int or not {in_range}: {var} = {leaf}({var})"]
    known = enum_names(type_) if isinstance(type_, GraphQLEnumType) else None
    if known is not None:
        cls, names = known
        found = module.fresh("name")
        return [
            f"{pad}{found} = {module.bind('names', names)}.get({var}) "
            f"if type({var}) is {module.bind('enum', cls)} else None",
            f"{pad}{var} = {leaf}({var}) if {found} is None else {found}",
        ]
    return [f"{pad}{var} = {leaf}({var})"]


def attribute(name: str) -> str | None:
    return name if name.isidentifier() and not keyword.iskeyword(name) else None
