"""Telemetry of ``python -m taskql serve`` as deployed: metrics added up over two workers and on their own
port, and a console trace, JSON logs and no secret in either, read from the process's own output."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import ROOT, TEST_SECRET, environment, free_port, stop, wait_ready
from tests.services import Services
from tests.ws_client import Subscriber

FAMILIES = (
    "taskql_graphql_requests",
    "taskql_graphql_request_duration_seconds",
    "taskql_graphql_errors",
    "taskql_response_cache_requests",
    "taskql_apq_requests",
    "taskql_websocket_connections",
    "taskql_subscriptions_active",
    "taskql_events_delivered",
    "taskql_rate_limited",
    "taskql_db_pool_connections",
    "taskql_db_pool_connections_max",
    "taskql_db_read_pool_connections",
    "taskql_redis_available",
)
POOL_CAPACITY = 20  # DB_POOL_SIZE + DB_MAX_OVERFLOW, the defaults


@dataclass
class Served:
    base: str
    metrics_port: int
    output: Path
    errors: Path
    process: subprocess.Popen[str] = field(repr=False)

    def post(self, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        # A new connection each time: the workers share the listening socket and take turns.
        with httpx.Client(base_url=self.base, timeout=30) as client:
            return client.post("/graphql", json=body, headers=headers)


@contextlib.contextmanager
def serving(folder: Path, database: Services, *args: str, **settings: str) -> Iterator[Served]:
    """``serve`` on the test's PostgreSQL and Redis, its stdout and stderr kept apart in files."""
    port, metrics_port = free_port(), free_port()
    env = environment(
        DATABASE_URL=database.database_url,
        REDIS_URL=database.redis_url,
        JWT_SECRET=TEST_SECRET,
        METRICS_PORT=str(metrics_port),
        PROMETHEUS_MULTIPROC_DIR=str(folder / "metrics"),
        **settings,
    )
    output, errors = folder / "stdout.txt", folder / "stderr.txt"
    with output.open("w") as out, errors.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskql", "serve", "--port", str(port), *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=err,
            text=True,
        )
        try:
            wait_ready(process, port)
            yield Served(f"http://127.0.0.1:{port}", metrics_port, output, errors, process)
        finally:
            stop(process)


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def apq(document: str | None, digest: str) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    if document is not None:
        body["query"] = document
    return body


def scrape(url: str, token: str | None = None) -> dict[str, list[Any]]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def total(samples: list[Any], suffix: str = "_total", **labels: str) -> float:
    return sum(
        float(sample.value)
        for sample in samples
        if sample.name.endswith(suffix) and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def scrape_sampled(url: str, requests: int, timeout: float = 5) -> dict[str, list[Any]]:
    """A scrape once every worker's metrics loop (every second) has added this workload's ``requests`` and
    sampled the read pools' gauges with its connections."""
    deadline = time.monotonic() + timeout
    while True:
        families = scrape(url)
        used = families.get("taskql_db_read_pool_connections", [])
        counted = total(families.get("taskql_graphql_requests", []))
        if (any(sample.value > 0 for sample in used) and counted >= requests) or time.monotonic() > deadline:
            return families
        time.sleep(0.2)


def both_started(served: Served, timeout: float = 60) -> None:
    """Ready means one worker is; wait for the second one's lifespan (its pool is counted then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        families = scrape(f"http://127.0.0.1:{served.metrics_port}/metrics")
        if total(families.get("taskql_db_pool_connections_max", []), "") == 2 * POOL_CAPACITY:
            return
        time.sleep(0.2)
    raise TimeoutError("the second worker did not start")


CREATE = "mutation CreateTask($input: CreateTaskInput!) { createTask(input: $input) { id } }"
PAGE = (ROOT / "graphql" / "queries" / "TaskPage.graphql").read_text()
REGISTER = (ROOT / "graphql" / "queries" / "Register.graphql").read_text()


async def test_metrics_add_up_over_the_workers_and_show_every_family_after_a_mixed_workload(
    database: Services, tmp_path: Path
) -> None:
    with serving(tmp_path, database, "--workers", "2", APQ_REGISTRATIONS_PER_MINUTE="1") as served:
        both_started(served)
        posts = 0

        def post(body: dict[str, Any], token: str | None = None) -> httpx.Response:
            nonlocal posts
            posts += 1
            return served.post(body, token)

        variables = {"input": {"email": "m@example.com", "password": "a metrics passphrase", "name": "M"}}
        token = post({"query": REGISTER, "variables": variables}).json()["data"]["register"]["accessToken"]
        for title in ("a", "b"):
            assert (
                "errors"
                not in post({"query": CREATE, "variables": {"input": {"title": title}}}, token).json()
            )
        page = {"query": PAGE, "variables": {"first": 10}}
        assert post(page, token).headers["x-cache"] == "MISS"
        assert post(page, token).headers["x-cache"] == "HIT"
        adhoc = "query Adhoc { me { id } }"
        missed = post(apq(None, sha(adhoc)), token).json()
        assert missed["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert "errors" not in post(apq(adhoc, sha(adhoc)), token).json()  # registered
        assert "errors" not in post(apq(None, sha(adhoc)), token).json()  # found
        other = "query Other { me { email } }"
        assert "errors" not in post(apq(other, sha(other)), token).json()  # runs; over the limit: not kept
        invalid = post({"query": "{ nope }"}, token).json()
        assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

        ws = served.base.replace("http://", "ws://") + "/graphql"
        subscriber = await Subscriber.open(ws, {"authorization": f"Bearer {token}"})
        try:
            await subscriber.subscribe()
            await subscriber.silent_for(0.5)  # subscribed
            post({"query": CREATE, "variables": {"input": {"title": "live"}}}, token)
            assert (await subscriber.event())["kind"] == "CREATED"
            families = scrape_sampled(f"http://127.0.0.1:{served.metrics_port}/metrics", posts)
            on_api_port = scrape(f"{served.base}/metrics")  # development: open on the API port too
        finally:
            await subscriber.close()

    empty = [name for name in FAMILIES if not any(sample.value > 0 for sample in families.get(name, []))]
    assert empty == [], f"families without a non-zero sample: {empty}"
    requests = families["taskql_graphql_requests"]
    assert total(requests) == posts, "every worker's requests are counted, once"
    assert total(requests, operation="TaskPage", outcome="ok") == 2
    assert total(requests, operation="other") == 3  # Adhoc (twice) and Other are not trusted documents
    # Unnamed ({ nope }) or unknown (a hash not found): one label for both.
    assert total(requests, operation="anonymous", outcome="client_error") == 2
    assert total(families["taskql_graphql_request_duration_seconds"], "_count") == posts
    assert total(families["taskql_response_cache_requests"], result="hit") == 1
    apq_results = families["taskql_apq_requests"]
    assert [total(apq_results, result=r) for r in ("hit", "miss", "registered")] == [1, 1, 1]
    assert total(families["taskql_rate_limited"], limit="apq_registrations") == 1
    errors = families["taskql_graphql_errors"]
    assert (
        total(errors, code="PERSISTED_QUERY_NOT_FOUND")
        == total(errors, code="GRAPHQL_VALIDATION_FAILED")
        == 1
    )
    assert total(families["taskql_events_delivered"]) == 1
    assert total(families["taskql_websocket_connections"], "") == 1
    assert total(families["taskql_subscriptions_active"], "") == 1
    assert total(families["taskql_db_pool_connections_max"], "") == 2 * POOL_CAPACITY, "both workers live"
    assert total(families["taskql_redis_available"], "") == 1
    assert total(on_api_port["taskql_graphql_requests"]) == posts


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object in ``text``, whether one per line or pretty-printed over several."""
    decoder, found, position = json.JSONDecoder(), [], 0
    while (start := text.find("{", position)) != -1:
        try:
            value, position = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


LOGIN = (ROOT / "graphql" / "queries" / "Login.graphql").read_text()
REFRESH = (ROOT / "graphql" / "queries" / "RefreshToken.graphql").read_text()
WITH_OWNERS = (ROOT / "graphql" / "queries" / "TasksWithOwners.graphql").read_text()
PASSWORD = "a console trace passphrase"


async def test_serve_with_the_console_exporter_traces_a_query_logs_json_and_never_a_secret(
    database: Services, tmp_path: Path
) -> None:
    with serving(
        tmp_path,
        database,
        OTEL_TRACES_EXPORTER="console",
        OTEL_BSP_SCHEDULE_DELAY="100",
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
    ) as served:
        credentials = {"email": "t@example.com", "password": PASSWORD}
        served.post({"query": REGISTER, "variables": {"input": {**credentials, "name": "T"}}})
        login = served.post({"query": LOGIN, "variables": {"input": credentials}}).json()["data"]["login"]
        token, refresh = login["accessToken"], login["refreshToken"]
        served.post({"query": CREATE, "variables": {"input": {"title": "traced"}}}, token)
        renewed = served.post({"query": REFRESH, "variables": {"token": refresh}}).json()["data"]
        token = renewed["refreshToken"]["accessToken"]
        secrets = [PASSWORD, token, refresh, renewed["refreshToken"]["refreshToken"], login["accessToken"]]

        ws = served.base.replace("http://", "ws://") + "/graphql"
        subscriber = await Subscriber.open(ws, {"authorization": f"Bearer {token}"})
        await subscriber.close()

        response = served.post({"query": WITH_OWNERS, "variables": {"first": 5}}, token)
        assert response.json()["data"]["tasks"]["edges"][0]["node"]["title"] == "traced"
        trace_id, request_id = response.headers["x-trace-id"], response.headers["x-request-id"]
    stdout, stderr = served.output.read_text(), served.errors.read_text()

    spans = [span for span in json_objects(stdout) if "context" in span]
    trace = {
        span["context"]["span_id"]: span for span in spans if span["context"]["trace_id"] == f"0x{trace_id}"
    }

    def lineage(span: dict[str, Any]) -> list[str]:
        names, parent = [], span["parent_id"]
        while parent in trace:
            names.append(trace[parent]["name"])
            parent = trace[parent]["parent_id"]
        return names

    names = [span["name"] for span in trace.values()]
    assert {"POST /graphql", "query TasksWithOwners", "Query.tasks", "dataloader stats"} <= set(names), names
    sql = [span for span in trace.values() if span["attributes"].get("db.system") == "postgresql"]
    assert len([span for span in sql if "query TasksWithOwners" in lineage(span)]) >= 2
    assert all(lineage(span)[-1] == "POST /graphql" and span["attributes"]["db.statement"] for span in sql)

    lines = [line for line in stderr.splitlines() if line.strip()]
    logs = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(logs) > 10
    (access,) = [entry for entry in logs if entry.get("request_id") == request_id]
    assert access["logger"] == "taskql.access"
    assert access["trace_id"] == trace_id
    assert (access["operation"], access["status"], access["cache"]) == ("TasksWithOwners", 200, "MISS")
    assert access["viewer_id"]
    assert access["duration_ms"] > 0
    # Not even a piece: the websockets library logs frames cut in the middle, a token's end included.
    pieces = [PASSWORD] + [secret[-12:] for secret in secrets[1:]]
    leaked = [piece for piece in pieces if piece in stdout or piece in stderr]
    assert leaked == [], "a password or a piece of a token reached the output"
    assert any(
        "connection_init" not in entry["message"] and "< TEXT '[REDACTED]'" in entry["message"]
        for entry in logs
    )
