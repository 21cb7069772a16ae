"""A property-based fuzz of the whole schema, through the app, as anonymous, as a user and as an admin.

hypothesis-graphql generates queries and mutations from the committed SDL (``graphql/schema.graphql``, which
``test_schema`` keeps equal to the code), with the scalar values of ``tests/fuzz_strategies.py``. Every
answer must hold, whatever the input:
- no 5xx, and no ``INTERNAL_SERVER_ERROR``;
- the answer fits the document (``tests/response_shape.py``): data of the selection's shape and types, or
  errors each with a documented ``extensions.code``;
- nothing logged at ERROR, no traceback: a client's mistake is not the server's bug;
- a mutation whose only field failed wrote nothing.

Runs are bounded and reproducible: a fixed number of examples, derandomized, no example database; the
whole file takes about a minute. ``TASKQL_FUZZ_EXAMPLES=2000`` runs that many per test with a random seed
instead, keeping failures in ``.hypothesis/`` to replay them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis_graphql import Mode, from_schema, mutations, queries
from redis.asyncio import Redis

from auth.tokens import TokenConfig
from core.settings import Settings
from graphql import (
    DocumentNode,
    FieldNode,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    parse,
    print_ast,
    validate,
)
from tests.fixed_world import ALICE, ROOT, access_token, rebuild, snapshot
from tests.fuzz_strategies import (
    JSON_VALUES,
    SCALARS,
    as_subscription,
    subscription_schema,
    with_variables,
    world_cursors,
)
from tests.response_shape import shape_problems
from tests.services import Services

SDL = (Path(__file__).resolve().parent.parent / "graphql" / "schema.graphql").read_text()
SCHEMA = build_schema(SDL)
VIEWERS = {"anonymous": None, "user": ALICE, "admin": ROOT}

_EXAMPLES = int(os.environ.get("TASKQL_FUZZ_EXAMPLES") or 0)


def bounded(examples: int) -> settings:
    """CI's settings: ``examples`` fixed examples; or, with TASKQL_FUZZ_EXAMPLES, a longer random run."""
    return settings(
        max_examples=_EXAMPLES or examples,
        deadline=None,  # one example is a few HTTP requests against real servers: timing varies
        derandomize=not _EXAMPLES,
        database=settings().database if _EXAMPLES else None,
        # The world is rebuilt at the start of every example (``FuzzWorld.rebuild``), so examples sharing
        # the function-scoped fixtures see the same state.
        suppress_health_check=[HealthCheck.function_scoped_fixture],
        print_blob=True,
    )


@dataclass
class FuzzWorld:
    http: httpx.AsyncClient
    connection: asyncpg.Connection
    redis: Redis
    tokens: TokenConfig
    caplog: pytest.LogCaptureFixture

    async def rebuild(self) -> None:
        await rebuild(self.connection, self.redis)

    async def answer(self, viewer: str, document: str, variables: dict[str, Any] | None = None) -> Any:
        """Send ``document`` as ``viewer``; assert the answer shows no failure of the server; its body."""
        person = VIEWERS[viewer]
        # Minted for each request (it costs microseconds): a long run never outlives a token.
        headers = {"authorization": f"Bearer {access_token(self.tokens, person)}"} if person else {}
        payload: dict[str, Any] = {"query": document}
        if variables is not None:
            payload["variables"] = variables
        generated = currently_in_test_context()  # False in the plain tests that share this helper
        if generated:
            note(f"{viewer}: {document}\nvariables: {variables!r}")
        self.caplog.clear()
        with self.caplog.at_level(logging.INFO):
            # Python's JSON, which writes NaN and Infinity as JavaScript does: the server must cope.
            content = json.dumps(payload).encode()
            headers["content-type"] = "application/json"
            response = await self.http.post("/graphql", content=content, headers=headers)
        assert response.status_code < 500, response.text
        body = response.json()
        problems = shape_problems(SCHEMA, parse(document), body, variables=variables)
        assert not problems, (problems, body)
        codes = [error["extensions"]["code"] for error in body.get("errors") or []]
        assert "INTERNAL_SERVER_ERROR" not in codes, body
        # Shown by --hypothesis-show-statistics: how far generated input gets.
        if generated:
            event("answer", " ".join(sorted(set(codes))) or "data, no error")
        logged = [
            record.getMessage()
            for record in self.caplog.records
            if record.exc_info or record.levelno >= logging.ERROR
        ]
        assert not logged, logged
        return body


@pytest.fixture
async def world(
    http: httpx.AsyncClient, database: Services, settings: Settings, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[FuzzWorld]:
    connection = await asyncpg.connect(database.dsn)
    redis = Redis.from_url(database.redis_url)
    fuzz = FuzzWorld(http, connection, redis, TokenConfig.of(settings), caplog)
    await fuzz.rebuild()
    try:
        yield fuzz
    finally:
        await redis.aclose()
        await connection.close()


def operation_of(document: DocumentNode) -> OperationDefinitionNode:
    [operation] = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    return operation


def wrote_nothing(document: DocumentNode, body: dict[str, Any]) -> bool:
    """Whether the answer says nothing may have been written: a query; or nothing executed (errors without
    a path: the document or its variables were refused); or the operation's single field failed itself
    (not a field below it, which fails after the write)."""
    operation = operation_of(document)
    if operation.operation is OperationType.QUERY:
        return True
    errors = body.get("errors") or []
    if body.get("data") is None and errors and all("path" not in error for error in errors):
        return True
    fields = [
        node.alias.value if node.alias else node.name.value
        for node in operation.selection_set.selections
        if isinstance(node, FieldNode)
    ]
    return len(fields) == 1 and any(error.get("path") == fields for error in errors)


async def check_operation(world: FuzzWorld, viewer: str, document: str, variables: Any = None) -> None:
    """A generated operation is answered within the schema, from the same world every time; a query, or a
    mutation whose one field failed, wrote nothing."""
    await world.rebuild()
    before = await snapshot(world.connection)
    body = await world.answer(viewer, document, variables)
    if wrote_nothing(parse(document), body):
        assert await snapshot(world.connection) == before, body


def test_every_custom_scalar_of_the_schema_has_a_strategy() -> None:
    custom = {
        name
        for name, type_ in SCHEMA.type_map.items()
        if type_.__class__.__name__ == "GraphQLScalarType" and not name.startswith("__")
    } - {"Int", "Float", "String", "Boolean", "ID"}
    assert custom <= SCALARS.keys()


async def test_the_cursors_the_fuzz_takes_for_valid_are_accepted(world: FuzzWorld) -> None:
    """The valid branch of the cursor strategy stays valid if the cursors' encoding changes."""
    for scope, cursor in world_cursors():
        field, direction, digest = scope.split(":", 2)
        if field == "USER_CREATED_AT":
            document = f'{{ users(first: 2, after: "{cursor}") {{ totalCount }} }}'
        else:
            search = ', filter: {search: "plan"}' if digest else ""
            order = f"orderBy: {{field: {field}, direction: {direction.upper()}}}"
            document = f'{{ tasks(first: 2, after: "{cursor}"{search}, {order}) {{ totalCount }} }}'
        body = await world.answer("admin", document)
        assert "errors" not in body, (scope, body)


@pytest.mark.parametrize("viewer", VIEWERS)
@bounded(examples=80)
@given(document=queries(SCHEMA, custom_scalars=SCALARS))
async def test_generated_queries_are_answered_within_the_schema(
    world: FuzzWorld, viewer: str, document: str
) -> None:
    await world.answer(viewer, document)


@pytest.mark.parametrize("viewer", VIEWERS)
@bounded(examples=80)
@given(document=mutations(SCHEMA, custom_scalars=SCALARS))
async def test_generated_mutations_are_answered_within_the_schema_and_failures_write_nothing(
    world: FuzzWorld, viewer: str, document: str
) -> None:
    await check_operation(world, viewer, document)


@pytest.mark.parametrize("viewer", ["user", "admin"])
@bounded(examples=80)
@given(
    document=from_schema(SCHEMA, custom_scalars=SCALARS),
    corruption=st.none() | st.tuples(st.integers(min_value=0, max_value=20), JSON_VALUES),
)
async def test_generated_operations_with_json_variables_are_answered_within_the_schema(
    world: FuzzWorld, viewer: str, document: str, corruption: tuple[int, Any] | None
) -> None:
    """As clients send them: arguments as variables, sometimes one of them replaced by any JSON value."""
    lifted, variables = with_variables(SCHEMA, parse(document))
    if corruption is not None and variables:
        number, value = corruption
        variables[sorted(variables)[number % len(variables)]] = value
    await check_operation(world, viewer, print_ast(lifted), variables)


@bounded(examples=60)
@given(document=from_schema(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE))
async def test_generated_invalid_operations_are_refused_before_anything_runs(
    world: FuzzWorld, document: str
) -> None:
    assert validate(SCHEMA, parse(document)), "the generator produced a valid document"
    body = await world.answer("user", document)
    assert body.get("data") is None, body
    assert {error["extensions"]["code"] for error in body["errors"]} <= {
        "GRAPHQL_VALIDATION_FAILED",
        "BAD_USER_INPUT",
    }, body


@pytest.mark.parametrize("viewer", ["anonymous", "user"])
@bounded(examples=25)
@given(document=queries(subscription_schema(SCHEMA), custom_scalars=SCALARS))
async def test_generated_subscriptions_sent_over_http_are_refused_with_a_code(
    world: FuzzWorld, viewer: str, document: str
) -> None:
    """Subscriptions are served over WebSocket only; over HTTP they are a client's mistake, said so."""
    body = await world.answer(viewer, print_ast(as_subscription(parse(document))))
    assert body.get("data") is None, body
    assert body["errors"], body
