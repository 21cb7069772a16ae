"""Logs: one JSON object per line in production, one access line per request with what it did, the trace
id on every line of a traced request, and never a password or a token."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from core.settings import Settings
from taskql.ops.logs import ConsoleFormatter, JsonLinesFormatter, TraceContext, redact
from tests.factories import PASSWORD, Account
from tests.graphql_client import GraphQLClient

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged (DEBUG and up) while the test runs, as the production handler writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    handler.addFilter(TraceContext())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: [REDACTED]"),
        ('{"refreshToken": "k2Jd9-x_0"}', '{"refreshToken": "[REDACTED]"}'),
        ('login(input: {email: "a@b.c", password: "hunter2 two"})', 'password: "[REDACTED] two"'),
        ("token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "token=[REDACTED]"),
        ("saw eyJhbGciOiJIUzI1NiJ9.eyJzdW... in a frame", "saw [REDACTED]"),
        (
            """< TEXT '{"type": "connection_init", "payload": {"au...Xo8"}}' [411 bytes]""",
            "< TEXT '[REDACTED]'",
        ),
    ],
)
def test_passwords_and_tokens_are_redacted_from_any_line(text: str, kept: str) -> None:
    assert kept in redact(text)
    assert "hunter2" not in redact(text)


def test_a_line_names_no_credential_it_does_not_carry() -> None:
    line = "POST /graphql 200 query TaskPage 3.1 ms cache=HIT viewer=9c0e request=ab12"
    assert redact(line) == line


def test_a_json_line_carries_time_level_logger_message_and_a_redacted_traceback(
    json_lines: io.StringIO,
) -> None:
    try:
        raise ValueError("refused Bearer s3cr3t-token")
    except ValueError:
        logging.getLogger("taskql.test").exception("it failed with password=%s", "hunter2")
    (entry,) = entries(json_lines)
    assert {"time", "level", "logger", "message", "exc_info"} <= set(entry)
    assert (entry["level"], entry["logger"]) == ("ERROR", "taskql.test")
    assert entry["message"] == "it failed with password=[REDACTED]"
    assert "s3cr3t" not in str(entry["exc_info"])
    assert "ValueError" in str(entry["exc_info"])


def test_logs_are_json_in_production_and_readable_in_development(settings: Settings) -> None:
    assert settings.log_format_resolved == "console"
    production = settings.model_copy(update={"environment": "production"})
    assert production.log_format_resolved == "json"
    assert production.model_copy(update={"log_format": "console"}).log_format_resolved == "console"
    record = logging.LogRecord("taskql.x", logging.INFO, __file__, 1, "hello", None, None)
    record.trace_id = TRACE
    assert ConsoleFormatter().format(record).endswith(f"taskql.x: hello trace={TRACE}")


async def test_each_request_has_one_access_line_with_what_it_did_and_no_secret(
    gql: GraphQLClient, alice: Account, json_lines: io.StringIO
) -> None:
    login = await gql.run("Login", {"input": {"email": alice.email, "password": PASSWORD}})
    tokens = login.ok()["login"]
    refreshed = await gql.run("RefreshToken", {"token": tokens["refreshToken"]})
    renewed = refreshed.ok()["refreshToken"]
    headers = {
        "authorization": f"Bearer {renewed['accessToken']}",
        "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
    }
    page = await gql.http.post(
        "/graphql", json={"query": "query Mine { tasks(first: 1) { edges { cursor } } }"}, headers=headers
    )
    assert page.status_code == 200
    again = await gql.http.post(
        "/graphql", json={"query": "query Mine { tasks(first: 1) { edges { cursor } } }"}, headers=headers
    )
    assert again.headers["x-cache"] == "HIT"

    access = [entry for entry in entries(json_lines) if entry["logger"] == "taskql.access"]
    assert [entry["operation"] for entry in access] == ["Login", "RefreshToken", "Mine", "Mine"]
    mine, hit = access[2], access[3]
    assert mine["request_id"] == page.headers["x-request-id"]
    assert hit["request_id"] == again.headers["x-request-id"]
    assert mine["trace_id"] == hit["trace_id"] == TRACE  # the caller's trace, tracing off here
    assert mine["viewer_id"] == hit["viewer_id"]
    assert mine["viewer_id"]
    assert (mine["cache"], hit["cache"], mine["status"], mine["operation_type"]) == (
        "MISS",
        "HIT",
        200,
        "query",
    )
    assert mine["errors"] == []
    # The operation's estimated cost (schema/analysis/cost.py): `tasks` runs a resolver (1); a cursor is
    # a plain field (0). What it was charged is the same figure, reported to the client.
    assert mine["cost"] == page.json()["extensions"]["cost"]["requested"] == 1
    assert hit["cost"] is None  # a hit runs nothing: nothing was estimated
    assert mine["duration_ms"] > 0

    written = json_lines.getvalue()
    for secret in (
        PASSWORD,
        tokens["accessToken"],
        tokens["refreshToken"],
        renewed["accessToken"],
        renewed["refreshToken"],
    ):
        assert secret not in written


async def test_an_error_is_in_the_access_line_by_its_code(
    gql: GraphQLClient, json_lines: io.StringIO
) -> None:
    await gql.query("query Broken { nope }")
    (line,) = [entry for entry in entries(json_lines) if entry["logger"] == "taskql.access"]
    assert (line["operation"], line["errors"]) == ("Broken", ["GRAPHQL_VALIDATION_FAILED"])
