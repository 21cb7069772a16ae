"""``/metrics`` on the API port: who may read it, and labels that stay bounded whatever clients send."""

from __future__ import annotations

import secrets
from contextlib import AbstractAsyncContextManager as AsyncContextManager

import httpx
import pytest
from prometheus_client import REGISTRY, Histogram
from pydantic import SecretStr

from core.settings import Settings
from taskql.ops import metrics
from tests.conftest import client_for

TOKEN = secrets.token_urlsafe(24)


def sample(name: str, **labels: str) -> float:
    metrics.flush()  # requests are tallied, and reach the families once a second or before a scrape
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_are_open_in_development_without_a_token(http: httpx.AsyncClient) -> None:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "taskql_graphql_requests_total" in response.text


def production(settings: Settings, **overrides: object) -> AsyncContextManager[httpx.AsyncClient]:
    """A client of an app with production's settings (and ``overrides``)."""
    return client_for(settings.model_copy(update={"environment": "production", **overrides}))


async def test_metrics_are_not_served_on_the_api_port_in_production_without_a_token(
    settings: Settings,
) -> None:
    async with production(settings) as http:
        assert (await http.get("/metrics")).status_code == 404


async def test_with_a_token_metrics_need_it_as_a_bearer_token(settings: Settings) -> None:
    async with production(settings, metrics_token=SecretStr(TOKEN)) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401
        right = await http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200
        assert "taskql_db_pool_connections_max" in right.text


async def test_operation_names_that_are_not_trusted_documents_share_one_label(
    http: httpx.AsyncClient,
) -> None:
    before = sample("taskql_graphql_requests_total", operation="other", outcome="ok")
    for number in range(5):
        await http.post("/graphql", json={"query": f"query Made{number}Up {{ me {{ id }} }}"})
    assert sample("taskql_graphql_requests_total", operation="other", outcome="ok") == before + 5
    assert "Made0Up" not in (await http.get("/metrics")).text


async def test_a_trusted_operation_is_labelled_with_its_name_and_timed(http: httpx.AsyncClient) -> None:
    me = open("graphql/queries/Me.graphql").read()  # noqa: SIM115, ASYNC230
    before = sample("taskql_graphql_request_duration_seconds_count", operation="Me")
    await http.post("/graphql", json={"query": me})
    assert sample("taskql_graphql_request_duration_seconds_count", operation="Me") == before + 1


def test_flushed_tallies_are_the_samples_histogram_observe_would_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tally adds whole buckets to the histogram's own values: the same samples as observing each."""
    label = "FlushCheck"  # a name no other test uses, made a trusted operation's for this test
    monkeypatch.setattr(metrics, "known_operations", lambda: frozenset({label}))
    seconds = [0.0, 0.0004, 0.0005, 0.00051, 0.003, 0.003, 0.7, 9.99, 10.0, 10.5, 120.0]
    hits_before = sample("taskql_response_cache_requests_total", result="hit")
    for value in seconds:
        metrics.observe_request(label, 200, (), "HIT", value)
    metrics.observe_request(label, 400, ("BAD_USER_INPUT",), None, 0.002)
    metrics.flush()
    reference = Histogram("reference", "-", ["operation"], buckets=metrics.LATENCY_BUCKETS, registry=None)
    for value in [*seconds, 0.002]:
        reference.labels(label).observe(value)

    def samples(histogram: Histogram, prefix: str) -> dict[tuple[str, str | None], float]:
        return {
            (s.name.removeprefix(prefix), s.labels.get("le")): s.value
            for family in histogram.collect()
            for s in family.samples
            if s.labels.get("operation") == label and not s.name.endswith("_created")
        }

    assert samples(metrics.LATENCY, "taskql_graphql_request_duration_seconds") == samples(
        reference, "reference"
    )
    assert sample("taskql_graphql_requests_total", operation=label, outcome="ok") == len(seconds)
    assert sample("taskql_graphql_requests_total", operation=label, outcome="client_error") == 1
    assert sample("taskql_response_cache_requests_total", result="hit") == hits_before + len(seconds)
