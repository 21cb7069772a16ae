"""Hypothesis strategies for the fuzz: scalar literals (valid and not), and operations with variables.

hypothesis-graphql builds the documents from the schema; what it cannot know is what this server's scalars
look like. ``SCALARS`` gives each one a mix of values that mean something here (the IDs of the fixed world,
its refresh tokens and emails, cursors in the server's own encoding) and values that do not (malformed
global IDs, an ID of the wrong type, tampered cursors, dates without a timezone or out of range, literals of
the wrong kind), so generated operations reach the resolvers and their input checks, not only the
validation of the document.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import hypothesis_graphql.nodes as ast
from hypothesis import strategies as st

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    ListTypeNode,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    TypeNode,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    value_from_ast_untyped,
    visit,
)
from resolvers.pagination import encode_cursor
from tests.fixed_world import BASE, KNOWN_IDS, PASSWORD, PEOPLE, TASKS


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Values a client could send as JSON (variables) or inside a cursor, including what JSON parsers accept
# beyond the standard (NaN, Infinity) and what PostgreSQL refuses in text (NUL).
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

# A global ID: one of the world's, of the wrong type, or malformed in every way decode_id must refuse.
GLOBAL_ID_TEXT = st.one_of(
    st.sampled_from(KNOWN_IDS),
    st.sampled_from(KNOWN_IDS).map(lambda global_id: global_id + "=="),  # padded
    st.builds(
        lambda type_name, key: _b64(f"{type_name}:{key}"),
        st.sampled_from(["Task", "User", "Node", "task", "", " Task", "Task\x00", "TaskEvent"]),
        st.uuids().map(str) | st.text(max_size=40),
    ),
    st.uuids().map(lambda key: f"Task:{key}"),  # not encoded
    st.binary(max_size=48).map(_b64),  # not UTF-8, no colon, ...
    st.text(max_size=60),
)
ID_LITERALS = st.one_of(
    st.sampled_from(KNOWN_IDS).map(ast.String),  # weighted towards objects that exist
    GLOBAL_ID_TEXT.map(ast.String),
    st.integers().map(ast.Int),  # an Int literal is a valid ID: it becomes a string
)

OFFSETS = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=-8)),
        timezone(timedelta(hours=14)),
    ]
)
SUPPORTED_DATETIMES = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 29), timezones=OFFSETS
).map(datetime.isoformat)
DATETIME_TEXT = st.one_of(
    SUPPORTED_DATETIMES,
    st.datetimes().map(datetime.isoformat),  # no timezone: refused
    st.sampled_from(
        [
            "2030-01-31T17:00:00Z",
            "1900-01-01T00:00:00+00:00",
            "9999-12-30T00:00:00Z",
            "9999-12-31T23:59:59-14:00",  # past the supported range once in UTC
            "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
            "1899-12-31T23:59:59Z",
            "2030-02-30T00:00:00Z",
            "2030-01-31",
            "2030-01-31T25:00:00Z",
            "2030-01-31T17:00:00.123456789Z",
            "+2030-01-31T17:00:00Z",
            "2030-01-31T17:00:00Z\x00",
            "",
        ]
    ),
    st.text(max_size=30),
)
DATETIME_MISFITS = st.one_of(
    DATETIME_TEXT.map(ast.String),
    st.integers().map(ast.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(ast.Float),
    st.booleans().map(ast.Boolean),
    st.just(ast.List([ast.String("2030-01-31T17:00:00Z")])),
    st.just(ast.Enum("NOW")),
)
# A supported date as often as all the rest, so that enough writes get through (a nested one_of would be
# flattened into equal shares).
DATETIME_LITERALS = st.booleans().flatmap(
    lambda supported: SUPPORTED_DATETIMES.map(ast.String) if supported else DATETIME_MISFITS
)

# Cursors in the server's encoding (base64url of [scope, value, id]), with scopes that exist and values
# that may not fit them: the keyset readers must refuse them as BAD_USER_INPUT, never as a database error.
SCOPES = st.sampled_from(
    [
        "CREATED_AT:desc:",
        "CREATED_AT:asc:",
        "UPDATED_AT:desc:",
        "DUE_AT:asc:",
        "PRIORITY:desc:",
        "TITLE:asc:",
        "USER_CREATED_AT:asc:",
        "RELEVANCE:desc:",
    ]
)


def world_cursors() -> list[tuple[str, str]]:
    """Real cursors of the fixed world's rows, in each order (with their scope): paging from them runs the
    keyset SQL, not only the cursor checks."""
    hours = {task.key: BASE + timedelta(hours=number) for number, task in enumerate(TASKS)}
    digest = hashlib.sha256(b"plan").hexdigest()[:12]
    cursors: list[tuple[str, str]] = []
    for task in TASKS:
        created = hours[task.key].isoformat()
        for scope, value in (
            ("CREATED_AT:desc:", created),
            ("CREATED_AT:asc:", created),
            ("UPDATED_AT:desc:", created),
            ("DUE_AT:asc:", task.due_at.isoformat() if task.due_at else None),
            ("PRIORITY:desc:", task.priority),
            ("TITLE:asc:", task.title),
            (f"RELEVANCE:desc:{digest}", 0.1),
        ):
            cursors.append((scope, encode_cursor(scope, value, task.key)))
    for number, person in enumerate(PEOPLE):
        created = (BASE + timedelta(minutes=number)).isoformat()
        cursors.append(("USER_CREATED_AT:asc:", encode_cursor("USER_CREATED_AT:asc:", created, person.key)))
    return cursors


CURSOR_VALUES = st.one_of(JSON_VALUES, DATETIME_TEXT, st.sampled_from(["LOW", "URGENT", "BOGUS"]))
CURSORS = st.one_of(
    st.sampled_from([cursor for _, cursor in world_cursors()]),
    st.builds(
        lambda scope, value, row: _b64(json.dumps([scope, value, row])),
        SCOPES,
        CURSOR_VALUES,
        st.uuids().map(str) | JSON_VALUES,
    ),
    st.builds(lambda payload: _b64(json.dumps(payload)), JSON_VALUES),
)
KNOWN_STRINGS = st.sampled_from(
    [
        *(person.refresh_token for person in PEOPLE),
        *(person.email for person in PEOPLE),
        PASSWORD,
        "new.person@example.com",
        "work",
        "secret",
        "plan",
        "depl back",
        *(task.title for task in TASKS),
        # At and past the limits: a title's 200 and a description's 10,000 characters (counted as
        # characters, not bytes), a search's 10 words.
        "t" * 200,
        "é" * 201,
        "d" * 10_001,
        " ".join(["word"] * 40),
        "%_\\",  # LIKE's wildcards and escape, in the user search
    ]
)
STRING_LITERALS = st.one_of(KNOWN_STRINGS, CURSORS, st.text(max_size=80)).map(ast.String)

# Page sizes that fit (1 to 100) come up more often than hypothesis-graphql's whole 32-bit range would.
INT_LITERALS = st.one_of(
    st.integers(min_value=0, max_value=101), st.integers(min_value=-(2**31), max_value=2**31 - 1)
).map(ast.Int)

SCALARS: dict[str, st.SearchStrategy[ValueNode]] = {
    "Int": INT_LITERALS,
    "ID": ID_LITERALS,
    "DateTime": DATETIME_LITERALS,
    "String": STRING_LITERALS,
}


def _type_node(type_: GraphQLInputType) -> TypeNode:
    if isinstance(type_, GraphQLNonNull):
        return NonNullTypeNode(type=_nullable_type_node(type_.of_type))
    return _nullable_type_node(type_)


def _nullable_type_node(type_: GraphQLInputType) -> NamedTypeNode | ListTypeNode:
    if isinstance(type_, GraphQLList):
        return ListTypeNode(type=_type_node(type_.of_type))
    assert not isinstance(type_, GraphQLNonNull)
    return NamedTypeNode(name=NameNode(value=type_.name))


class _ArgumentsToVariables(Visitor):
    """Replaces each field argument's literal by a variable of the argument's type, and keeps its value."""

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.definitions: list[VariableDefinitionNode] = []
        self.variables: dict[str, Any] = {}

    def enter_argument(self, node: ArgumentNode, *_: object) -> ArgumentNode | None:
        argument = self.type_info.get_argument()
        if argument is None or isinstance(node.value, VariableNode):
            return None
        name = f"v{len(self.definitions)}"
        variable = VariableNode(name=NameNode(value=name))
        self.definitions.append(VariableDefinitionNode(variable=variable, type=_type_node(argument.type)))
        self.variables[name] = value_from_ast_untyped(node.value)
        return ArgumentNode(name=node.name, value=variable)


def with_variables(schema: GraphQLSchema, document: DocumentNode) -> tuple[DocumentNode, dict[str, Any]]:
    """The same operation, with its arguments sent as JSON variables (as real clients send them): the
    server's variable coercion and the scalars' ``parse_value`` run instead of ``parse_literal``."""
    type_info = TypeInfo(schema)
    lifting = _ArgumentsToVariables(type_info)
    lifted: DocumentNode = visit(document, TypeInfoVisitor(type_info, lifting))
    [operation] = lifted.definitions
    assert isinstance(operation, OperationDefinitionNode)
    with_definitions = OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=tuple(lifting.definitions),
        directives=operation.directives,
        selection_set=operation.selection_set,
    )
    return DocumentNode(definitions=(with_definitions,)), lifting.variables


def subscription_schema(schema: GraphQLSchema) -> GraphQLSchema:
    """``schema`` with its Subscription type as the query root: hypothesis-graphql generates queries and
    mutations only, so subscriptions are generated as queries of this schema (``as_subscription``)."""
    assert schema.subscription_type is not None
    return GraphQLSchema(
        query=schema.subscription_type, types=list(schema.type_map.values()), directives=schema.directives
    )


def as_subscription(document: DocumentNode) -> DocumentNode:
    [operation] = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    subscription = OperationDefinitionNode(
        operation=OperationType.SUBSCRIPTION,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=operation.selection_set,
    )
    return DocumentNode(definitions=(subscription,))
