"""Persisted queries: Apollo's APQ protocol over POST and GET, and trusted documents."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from core.settings import Settings
from taskql.policy.persisted import APQ_PREFIX, MANIFEST, build_manifest, manifest_text
from tests.conftest import client_for
from tests.factories import Account
from tests.graphql_client import operation
from tests.services import Services

ME = "query Me { me { id email } }"


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def apq(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def post(http: httpx.AsyncClient, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json=body, headers=headers)


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


async def test_an_unknown_hash_asks_for_the_query_then_the_hash_alone_works(
    http: httpx.AsyncClient, alice: Account
) -> None:
    first = await post(http, {"extensions": apq(sha(ME))}, alice.token)
    assert (first.status_code, first.json()["errors"][0]["message"]) == (200, "PersistedQueryNotFound")
    assert codes(first) == ["PERSISTED_QUERY_NOT_FOUND"]
    registered = await post(http, {"query": ME, "extensions": apq(sha(ME))}, alice.token)
    assert registered.json()["data"]["me"]["email"] == alice.email
    by_hash = await post(http, {"extensions": apq(sha(ME))}, alice.token)
    assert by_hash.json()["data"] == registered.json()["data"]


async def test_documents_are_shared_by_every_instance_through_redis(
    http: httpx.AsyncClient, alice: Account, settings: Settings
) -> None:
    await post(http, {"query": ME, "extensions": apq(sha(ME))}, alice.token)
    async with client_for(settings) as other_instance:
        response = await post(other_instance, {"extensions": apq(sha(ME))}, alice.token)
    assert response.json()["data"]["me"]["id"] == alice.id


async def test_a_hash_that_is_not_the_querys_is_refused(http: httpx.AsyncClient, alice: Account) -> None:
    response = await post(http, {"query": ME, "extensions": apq(sha(ME + " "))}, alice.token)
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "provided sha does not match query"
    assert (await post(http, {"extensions": apq(sha(ME + " "))}, alice.token)).json()["errors"]


@pytest.mark.parametrize(
    "persisted", [{"version": 2, "sha256Hash": "a" * 64}, {"version": 1, "sha256Hash": "XYZ"}, "yes"]
)
async def test_malformed_persisted_query_extensions_are_refused(
    http: httpx.AsyncClient, persisted: object
) -> None:
    response = await post(http, {"extensions": {"persistedQuery": persisted}})
    assert response.status_code == 400
    assert codes(response)[0] in {"PERSISTED_QUERY_NOT_SUPPORTED", "BAD_REQUEST"}


async def test_only_documents_that_parse_and_validate_are_stored(
    http: httpx.AsyncClient, database: Services
) -> None:
    for document in ("{ me { ", "{ me { password } }"):
        await post(http, {"query": document, "extensions": apq(sha(document))})
    redis = Redis.from_url(database.redis_url)
    try:
        assert [key async for key in redis.scan_iter(match=APQ_PREFIX + "*")] == []
    finally:
        await redis.aclose()


async def test_queries_work_over_get_and_mutations_over_get_are_405(
    http: httpx.AsyncClient, alice: Account
) -> None:
    await post(http, {"query": ME, "extensions": apq(sha(ME))}, alice.token)
    params = {"extensions": json.dumps(apq(sha(ME))), "operationName": "Me"}
    response = await http.get("/graphql", params=params, headers={"authorization": f"Bearer {alice.token}"})
    assert response.json()["data"]["me"]["id"] == alice.id
    mutation = 'mutation { createTask(input: {title: "via GET"}) { id } }'
    refused = await http.get(
        "/graphql", params={"query": mutation}, headers={"authorization": f"Bearer {alice.token}"}
    )
    assert refused.status_code == 405


async def test_trusted_documents_are_known_by_hash_and_by_document_id(
    http: httpx.AsyncClient, alice: Account
) -> None:
    body = operation("Me")
    by_hash = await post(http, {"extensions": apq(sha(body))}, alice.token)
    assert by_hash.json()["data"]["me"]["id"] == alice.id
    by_id = await post(http, {"documentId": f"sha256:{sha(body)}"}, alice.token)
    assert by_id.json()["data"]["me"]["id"] == alice.id
    unknown = await post(http, {"documentId": f"sha256:{'0' * 64}"}, alice.token)
    assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_trusted_only_mode_executes_nothing_else(settings: Settings, alice: Account) -> None:
    async with client_for(settings.model_copy(update={"persisted_queries": "trusted-only"})) as http:
        adhoc = await post(http, {"query": ME}, alice.token)
        assert (adhoc.status_code, codes(adhoc)) == (400, ["PERSISTED_QUERY_NOT_ALLOWED"])
        registering = await post(http, {"query": ME, "extensions": apq(sha(ME))}, alice.token)
        assert codes(registering) == ["PERSISTED_QUERY_NOT_ALLOWED"]
        introspection = await post(http, {"query": "{ __schema { types { name } } }"})
        assert codes(introspection) == ["PERSISTED_QUERY_NOT_ALLOWED"]
        trusted = await post(http, {"documentId": f"sha256:{sha(operation('Me'))}"}, alice.token)
        assert trusted.json()["data"]["me"]["id"] == alice.id
        full_text = await post(
            http, {"query": operation("Me")}, alice.token
        )  # a manifest document, sent whole
        assert full_text.json()["data"]["me"]["id"] == alice.id
        graphiql = await http.get("/graphql", headers={"accept": "text/html"})
        assert graphiql.status_code == 404


async def test_registration_is_bounded_per_client_and_in_size(settings: Settings, alice: Account) -> None:
    settings = settings.model_copy(update={"apq_registrations_per_minute": 2, "apq_max_document_bytes": 300})
    documents = [f"query Q{i} {{ me {{ id }} }}" for i in range(3)] + [
        "query Big { me { id " + " " * 400 + "} }"
    ]
    async with client_for(settings) as http:
        for document in documents:  # every one executes, stored or not
            response = await post(http, {"query": document, "extensions": apq(sha(document))}, alice.token)
            assert response.json()["data"]["me"]["id"] == alice.id
        # Asked anonymously: the answers cached for Alice can't stand in for the stored documents.
        stored = [not codes(await post(http, {"extensions": apq(sha(document))})) for document in documents]
    assert stored == [True, True, False, False]


def test_the_committed_manifest_matches_graphql_queries() -> None:
    assert MANIFEST.read_text() == manifest_text(build_manifest()), "run `python -m taskql build-manifest`"
