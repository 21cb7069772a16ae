"""The response cache: hits without SQL, exact invalidation by every kind of write, per-viewer entries."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from core.settings import Settings
from taskql.app import TaskqlApp
from taskql.cache.store import flush
from taskql.ops.release import source_digest
from tests.conftest import client_for
from tests.factories import Account, create_task, promote_to_admin, register
from tests.graphql_client import GraphQLClient, operation
from tests.services import Services
from tests.sql import captured

MY_TASKS = "query MyTitles { tasks(first: 50) { edges { node { id title status } } } }"
STATS = "query Stats { taskStats { total overdue } }"


async def cache_of(gql: GraphQLClient, document: str, token: str | None, **variables: object) -> str:
    response = await gql.query(document, variables or None, token=token)
    response.ok()
    return response.headers["x-cache"]


def titles(data: dict[str, object]) -> list[str]:
    edges = data["tasks"]["edges"]  # type: ignore[index]
    return [edge["node"]["title"] for edge in edges]


async def test_a_repeated_query_is_a_hit_that_runs_no_sql(
    app: TaskqlApp, gql: GraphQLClient, alice: Account
) -> None:
    await create_task(gql, alice, title="one")
    first = await gql.query(MY_TASKS, token=alice.token)
    with captured(app) as statements:
        second = await gql.query(MY_TASKS, token=alice.token)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.body == {"data": first.data}  # the answer, without the miss's own cost report
    assert len(statements) == 0, statements.executed


async def test_answers_are_still_kept_after_redis_forgets_its_scripts(
    gql: GraphQLClient, alice: Account, services: Services
) -> None:
    redis = Redis.from_url(services.redis_url)
    try:
        await redis.script_flush()  # as after a Redis restart: the store script is sent again by its text
    finally:
        await redis.aclose()
    assert await cache_of(gql, MY_TASKS + " # after flush", alice.token) == "MISS"
    assert await cache_of(gql, MY_TASKS + " # after flush", alice.token) == "HIT"


async def test_an_uncached_query_with_a_session_redis_vouches_for_skips_the_viewer_sql(
    app: TaskqlApp, gql: GraphQLClient, alice: Account
) -> None:
    await gql.query(MY_TASKS, token=alice.token)  # the session is now known to Redis
    with captured(app) as statements:
        response = await gql.query(STATS, token=alice.token)
    assert response.headers["x-cache"] == "MISS"
    assert not statements.matching("auth_sessions"), statements.executed


@pytest.mark.parametrize("change", ["create", "update", "delete"])
async def test_every_task_write_is_seen_by_the_next_read(
    gql: GraphQLClient, alice: Account, change: str
) -> None:
    task = await create_task(gql, alice, title="before")
    before = (await gql.query(MY_TASKS, token=alice.token)).ok()
    assert await cache_of(gql, MY_TASKS, alice.token) == "HIT"
    if change == "create":
        await create_task(gql, alice, title="after")
        expected = ["after", "before"]
    elif change == "update":
        (await gql.run("UpdateTask", {"id": task["id"], "input": {"title": "after"}}, token=alice.token)).ok()
        expected = ["after"]
    else:
        (await gql.run("DeleteTask", {"id": task["id"]}, token=alice.token)).ok()
        expected = []
    after = await gql.query(MY_TASKS, token=alice.token)
    assert titles(before) == ["before"]
    assert (after.headers["x-cache"], titles(after.ok())) == ("MISS", expected)


async def test_statistics_follow_writes(gql: GraphQLClient, alice: Account) -> None:
    assert (await gql.query(STATS, token=alice.token)).ok()["taskStats"]["total"] == 0
    await create_task(gql, alice)
    assert (await gql.query(STATS, token=alice.token)).ok()["taskStats"]["total"] == 1


async def test_a_task_moved_to_another_owner_leaves_one_list_and_enters_the_other(
    gql: GraphQLClient, alice: Account, bob: Account, admin: Account
) -> None:
    task = await create_task(gql, alice, title="moving")
    assert titles((await gql.query(MY_TASKS, token=alice.token)).ok()) == ["moving"]
    assert titles((await gql.query(MY_TASKS, token=bob.token)).ok()) == []
    moved = await gql.run("UpdateTask", {"id": task["id"], "input": {"ownerId": bob.id}}, token=admin.token)
    moved.ok()
    assert titles((await gql.query(MY_TASKS, token=alice.token)).ok()) == []
    assert titles((await gql.query(MY_TASKS, token=bob.token)).ok()) == ["moving"]


async def test_the_same_query_by_two_users_gets_two_answers(
    gql: GraphQLClient, alice: Account, bob: Account
) -> None:
    await create_task(gql, alice, title="alice's")
    await create_task(gql, bob, title="bob's")
    for _ in range(2):  # the second round is answered from the cache
        assert titles((await gql.query(MY_TASKS, token=alice.token)).ok()) == ["alice's"]
        assert titles((await gql.query(MY_TASKS, token=bob.token)).ok()) == ["bob's"]
    assert await cache_of(gql, MY_TASKS, bob.token) == "HIT"


async def test_an_admin_sees_a_users_write_at_once(
    gql: GraphQLClient, alice: Account, admin: Account
) -> None:
    assert titles((await gql.query(MY_TASKS, token=admin.token)).ok()) == []
    await create_task(gql, alice, title="new")
    assert titles((await gql.query(MY_TASKS, token=admin.token)).ok()) == ["new"]


async def test_errors_are_never_cached(gql: GraphQLClient, alice: Account) -> None:
    document = 'query { task(id: "VGFzazowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA") { id } }'
    for _ in range(2):
        response = await gql.query(document, token=alice.token)
        assert (response.codes, response.headers["x-cache"]) == (["NOT_FOUND"], "MISS")


async def test_mutations_are_never_cached(gql: GraphQLClient, alice: Account) -> None:
    for title in ("a", "b"):
        await create_task(gql, alice, title=title)
    assert sorted(titles((await gql.query(MY_TASKS, token=alice.token)).ok())) == ["a", "b"]


async def test_a_logged_out_session_is_refused_even_for_a_cached_answer(
    gql: GraphQLClient, alice: Account
) -> None:
    assert await cache_of(gql, MY_TASKS, alice.token) == "MISS"
    assert await cache_of(gql, MY_TASKS, alice.token) == "HIT"
    (await gql.run("Logout", {"refreshToken": alice.refresh_token}, token=alice.token)).ok()
    response = await gql.query(MY_TASKS, token=alice.token)
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.errors[0]["extensions"]["reason"] == "SESSION_REVOKED"


async def test_a_deactivated_account_gets_no_cached_answer(
    gql: GraphQLClient, alice: Account, admin: Account
) -> None:
    await gql.query(MY_TASKS, token=alice.token)
    assert await cache_of(gql, MY_TASKS, alice.token) == "HIT"
    (await gql.run("SetUserActive", {"userId": alice.id, "active": False}, token=admin.token)).ok()
    response = await gql.query(MY_TASKS, token=alice.token)
    assert response.codes == ["UNAUTHENTICATED"]


async def test_a_demoted_admin_loses_the_cached_admin_answer(
    gql: GraphQLClient, alice: Account, admin: Account, database: Services
) -> None:
    other = await register(gql, email="second-admin@example.com")
    await promote_to_admin(database.dsn, other)
    await create_task(gql, alice, title="alice's")
    assert titles((await gql.query(MY_TASKS, token=other.token)).ok()) == ["alice's"]
    assert await cache_of(gql, MY_TASKS, other.token) == "HIT"
    (await gql.run("SetUserRole", {"userId": other.id, "role": "USER"}, token=admin.token)).ok()
    assert titles((await gql.query(MY_TASKS, token=other.token)).ok()) == []


async def test_a_write_outside_graphql_is_seen_after_flush_cache(
    gql: GraphQLClient, alice: Account, database: Services
) -> None:
    await create_task(gql, alice, title="before")
    await gql.query(MY_TASKS, token=alice.token)
    connection = await asyncpg.connect(database.dsn)
    try:
        await connection.execute("UPDATE tasks SET title = 'fixed by hand'")
    finally:
        await connection.close()
    await flush(database.redis_url)
    assert titles((await gql.query(MY_TASKS, token=alice.token)).ok()) == ["fixed by hand"]


async def test_overdue_counts_are_not_kept_past_the_next_due_date(
    gql: GraphQLClient, alice: Account, database: Services
) -> None:
    due = datetime.now(UTC) + timedelta(seconds=2)
    await create_task(gql, alice, dueAt=due.isoformat())
    assert (await gql.query(STATS, token=alice.token)).ok()["taskStats"]["overdue"] == 0
    redis = Redis.from_url(database.redis_url)
    try:
        ttls = [await redis.ttl(key) async for key in redis.scan_iter(match="taskql:c:r:*")]
    finally:
        await redis.aclose()
    assert ttls
    assert all(0 <= ttl <= 2 for ttl in ttls), ttls
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.2)
    assert (await gql.query(STATS, token=alice.token)).ok()["taskStats"]["overdue"] == 1


async def test_get_answers_carry_an_etag_and_revalidate_with_304(
    http: httpx.AsyncClient, alice: Account
) -> None:
    headers = {"authorization": f"Bearer {alice.token}"}
    params = {"query": MY_TASKS}
    miss = await http.get("/graphql", params=params, headers=headers)
    hit = await http.get("/graphql", params=params, headers=headers)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    for response in (miss, hit):
        assert response.headers["cache-control"] == "private, no-cache"
    assert miss.headers["etag"] == hit.headers["etag"]
    revalidated = await http.get(
        "/graphql", params=params, headers={**headers, "if-none-match": hit.headers["etag"]}
    )
    assert (revalidated.status_code, revalidated.content) == (304, b"")


async def test_a_persisted_query_hash_is_answered_from_the_cache(
    http: httpx.AsyncClient, alice: Account
) -> None:
    document = operation("Me")
    extensions = {
        "persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(document.encode()).hexdigest()}
    }
    params = {"extensions": json.dumps(extensions), "operationName": "Me"}
    headers = {"authorization": f"Bearer {alice.token}"}
    first = await http.get("/graphql", params=params, headers=headers)
    second = await http.get("/graphql", params=params, headers=headers)
    assert first.json()["data"]["me"]["id"] == alice.id
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.json() == {"data": first.json()["data"]}


async def test_the_cache_can_be_turned_off(settings: Settings, alice: Account) -> None:
    async with client_for(settings.model_copy(update={"response_cache": False})) as http:
        gql = GraphQLClient(http)
        for _ in range(2):
            response = await gql.query(MY_TASKS, token=alice.token)
            response.ok()
            assert "x-cache" not in response.headers


async def test_an_invalid_token_is_refused_whatever_the_cache_holds(
    gql: GraphQLClient, alice: Account
) -> None:
    await gql.query(MY_TASKS, token=alice.token)
    forged = alice.token[:-4] + ("AAAA" if not alice.token.endswith("AAAA") else "BBBB")
    assert (await gql.query(MY_TASKS, token=forged)).codes == ["UNAUTHENTICATED"]
    assert (await gql.query(MY_TASKS)).codes == ["UNAUTHENTICATED"]


async def test_cancelled_requests_never_hand_an_answer_to_another_user(
    gql: GraphQLClient, alice: Account, bob: Account
) -> None:
    await create_task(gql, alice, title="alice's")
    await create_task(gql, bob, title="bob's")
    for account in (alice, bob):  # cached
        await gql.query(MY_TASKS, token=account.token)
    expected = {alice.token: ["alice's"], bob.token: ["bob's"]}
    answers: list[tuple[str, list[str]]] = []

    async def read(token: str) -> None:
        response = await gql.query(MY_TASKS, token=token)
        answers.append((token, titles(response.ok())))

    for round_number in range(20):
        readers = [asyncio.create_task(read(account.token)) for account in (alice, bob) * 10]
        await asyncio.sleep(0)
        for number, reader in enumerate(readers):
            if (number + round_number) % 3 == 0:
                reader.cancel()  # mid-flight: its Redis reply arrives for nobody
        await asyncio.gather(*readers, return_exceptions=True)
    assert len(answers) > 200
    assert all(got == expected[token] for token, got in answers)


async def test_a_body_too_large_to_look_up_still_reaches_the_view_whole(
    settings: Settings, alice: Account
) -> None:
    padded = MY_TASKS + " " * (2 << 20)  # 2 MiB: past what the cache buffers (MAX_BODY_BYTES must allow it)

    async def chunks() -> AsyncIterator[bytes]:
        body = json.dumps({"query": padded}).encode()
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    async with client_for(settings.model_copy(update={"max_body_bytes": 4 << 20})) as http:
        response = await http.post(
            "/graphql",
            content=chunks(),
            headers={"authorization": f"Bearer {alice.token}", "content-type": "application/json"},
        )
    assert response.status_code == 200
    assert response.json()["data"] == {"tasks": {"edges": []}}


def test_a_release_that_changes_any_source_file_keys_its_answers_apart(tmp_path: Path) -> None:
    for release in ("old", "new"):
        (tmp_path / release / "schema").mkdir(parents=True)
        (tmp_path / release / "schema" / "task.py").write_text("TITLE = 'a'\n")
    (tmp_path / "new" / "schema" / "task.py").write_text("TITLE = 'b'\n")
    old, new = (source_digest(tmp_path / release, ("schema",)) for release in ("old", "new"))
    assert old != new
    assert source_digest(tmp_path / "old", ("schema",)) == old  # the same release: shared entries
