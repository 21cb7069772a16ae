"""Tracing on (OTEL_TRACES_EXPORTER=console, the SDK configured from the environment as in production), with
an in-memory exporter added to the same provider so that the test can read the spans."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from core.settings import Settings
from taskql.app import TaskqlApp, create_app
from taskql.ops import telemetry
from tests.conftest import served
from tests.factories import Account, create_task, register
from tests.graphql_client import GraphQLClient, operation
from tests.sql import captured

INCOMING_TRACE = "0af7651916cd43dd8448eb211c80319c"
INCOMING_PARENT = "b7ad6b7169203331"


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    patch = pytest.MonkeyPatch()
    patch.setenv("OTEL_TRACES_EXPORTER", "console")
    memory = InMemorySpanExporter()
    telemetry.configure(span_processors=[SimpleSpanProcessor(memory)])
    yield memory
    telemetry.disable()
    patch.undo()


@pytest.fixture(scope="module")
async def traced_app(settings: Settings, exporter: InMemorySpanExporter) -> AsyncIterator[TaskqlApp]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def traced(traced_app: TaskqlApp, database: object) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=served(traced_app))
    async with httpx.AsyncClient(transport=transport, base_url="http://taskql.test") as http:
        yield GraphQLClient(http)


@pytest.fixture
async def owner(traced: GraphQLClient) -> Account:
    account = await register(traced, email="traced@example.com", name="Traced")
    for title in ("one", "two", "three"):
        await create_task(traced, account, title=title)
    return account


def trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return trace.format_trace_id(span.context.trace_id)


def ancestors(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[str]:
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    names, parent = [], span.parent
    while parent is not None and parent.span_id in by_id:
        names.append(by_id[parent.span_id].name)
        parent = by_id[parent.span_id].parent
    return names


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_a_tasks_query_is_one_trace_of_its_operation_resolvers_and_every_sql_statement(
    traced: GraphQLClient,
    traced_app: TaskqlApp,
    owner: Account,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter.clear()
    with captured(traced_app) as statements, caplog.at_level(logging.INFO, logger="taskql.access"):
        response = await traced.run("TasksWithOwners", {"first": 10}, token=owner.token)
    assert len(response.ok()["tasks"]["edges"]) == 3
    header = response.headers["x-trace-id"]
    spans = exporter.get_finished_spans()

    assert {trace_id(span) for span in spans} == {header}, "every span of the request is in its trace"
    (server,) = named(spans, "POST /graphql")
    assert server.kind is SpanKind.SERVER
    assert server.parent is None
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    (query,) = named(spans, "query TasksWithOwners")
    assert ancestors(query, spans) == ["POST /graphql"]
    assert query.attributes == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "TasksWithOwners",
    }
    (resolver,) = named(spans, "Query.tasks")
    assert ancestors(resolver, spans) == ["query TasksWithOwners", "POST /graphql"]
    # The list loads its owners' statistics before its rows complete (the owner is the viewer, loaded).
    (batch,) = named(spans, "dataloader stats")
    assert ancestors(batch, spans)[0] == "Query.tasks"

    sql = [span for span in spans if span.attributes and span.attributes.get("db.system") == "postgresql"]
    assert len(statements) >= 3
    assert sorted(str(span.attributes["db.statement"]) for span in sql if span.attributes) == sorted(
        statement for statement, _ in statements.executed
    ), "one span for each SQL statement the server sent, with its text"
    for span in sql:
        assert span.kind is SpanKind.CLIENT
        assert ancestors(span, spans)[-1] == "POST /graphql"
    # The viewer's session is read before the operation starts; the operation's own reads are its children.
    assert len([span for span in sql if "query TasksWithOwners" in ancestors(span, spans)]) == len(sql) - 1

    (line,) = [record for record in caplog.records if record.name == "taskql.access"]
    assert line.trace_id == header  # type: ignore[attr-defined]
    assert line.request_id == response.headers["x-request-id"]  # type: ignore[attr-defined]
    assert line.operation == "TasksWithOwners"  # type: ignore[attr-defined]


async def test_an_incoming_traceparent_is_continued_and_answered(
    traced: GraphQLClient, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    response = await traced.http.post(
        "/graphql",
        json={"query": "query Me { me { id } }"},
        headers={"traceparent": f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01"},
    )
    assert response.json()["data"] == {"me": None}
    assert response.headers["x-trace-id"] == INCOMING_TRACE
    assert response.headers["traceresponse"].startswith(f"00-{INCOMING_TRACE}-")
    (server,) = named(exporter.get_finished_spans(), "POST /graphql")
    assert trace_id(server) == INCOMING_TRACE
    assert server.parent is not None
    assert trace.format_span_id(server.parent.span_id) == INCOMING_PARENT
    assert server.parent.is_remote


async def test_a_cache_hit_of_the_express_lane_is_traced_with_its_redis_round_trip(
    traced: GraphQLClient, owner: Account, exporter: InMemorySpanExporter
) -> None:
    first = await traced.run("TasksWithOwners", {"first": 5}, token=owner.token)
    exporter.clear()
    hit = await traced.run("TasksWithOwners", {"first": 5}, token=owner.token)
    assert (first.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    spans = exporter.get_finished_spans()
    assert {trace_id(span) for span in spans} == {hit.headers["x-trace-id"]}
    assert sorted(span.name for span in spans) == ["POST /graphql", "redis pipeline"]


async def test_an_unexpected_error_fails_its_operation_span_and_a_client_error_does_not(
    traced: GraphQLClient, owner: Account, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resolvers import stats

    exporter.clear()
    refused = await traced.query(operation("TaskStats"))  # anonymous: UNAUTHENTICATED, the client's mistake
    assert refused.codes == ["UNAUTHENTICATED"]
    (client_side,) = named(exporter.get_finished_spans(), "query TaskStats")
    assert client_side.status.status_code is StatusCode.UNSET

    async def broken(*_: object, **__: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(stats, "task_stats", broken)
    exporter.clear()
    failed = await traced.query(operation("TaskStats"), token=owner.token)
    assert failed.codes == ["INTERNAL_SERVER_ERROR"]
    (server_side,) = named(exporter.get_finished_spans(), "query TaskStats")
    assert server_side.status.status_code is StatusCode.ERROR
    assert [event.name for event in server_side.events] == ["exception"]
