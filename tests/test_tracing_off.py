"""Tracing off (the default): nothing of it is installed, so it costs nothing on the request path."""

from __future__ import annotations

import httpx
import pytest

from core import tracing
from graphql import GraphQLObjectType
from schema.planning.strawberry_compat import graphql_schema_of
from taskql.app import TaskqlApp
from taskql.ops import telemetry
from taskql.ops.access_log import Observed


def test_tracing_is_off_unless_an_exporter_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, wanted in (("", False), ("none", False), ("console", True), ("otlp", True)):
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
        assert telemetry.requested() is wanted
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert telemetry.requested() is False


async def test_with_tracing_off_no_wrapper_extension_or_traced_resolver_is_installed(
    app: TaskqlApp, http: httpx.AsyncClient
) -> None:
    assert not telemetry.requested()
    assert not tracing.enabled()
    assert isinstance(app._express, Observed)
    schema = app.routes[1].app.schema  # type: ignore[attr-defined]
    assert not any("OperationSpans" in getattr(extension, "__name__", "") for extension in schema.extensions)
    for type_ in graphql_schema_of(schema).type_map.values():
        if isinstance(type_, GraphQLObjectType):
            assert not [
                name
                for name, field in type_.fields.items()
                if getattr(field.resolve, "__name__", "") == "traced"
            ]
    pipe = app.resources.pipe
    assert pipe.send == pipe._send
    response = await http.post("/graphql", json={"query": "{ me { id } }"})
    assert "x-trace-id" not in response.headers
    assert tracing.span("anything") is tracing.span("anything else")  # one shared no-op, no span object
