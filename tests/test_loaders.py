"""The dataloaders' cache: values primed in bulk (a page's rows) answer later loads exactly as
``DataLoader.prime`` would, without a future per row."""

from __future__ import annotations

from aiodataloader import DataLoader

from resolvers.loaders import PrimedCache
from taskql.app import TaskqlApp
from tests.factories import Account, create_task, register
from tests.graphql_client import GraphQLClient
from tests.sql import captured


def loader(answers: dict[str, str]) -> tuple[DataLoader[str, str], PrimedCache, list[list[str]]]:
    """A loader on a ``PrimedCache`` whose batches answer from ``answers`` and are recorded."""
    batches: list[list[str]] = []

    async def batch(keys: list[str]) -> list[str]:
        batches.append(list(keys))
        return [answers[key] for key in keys]

    cache = PrimedCache()
    return DataLoader(batch, cache_map=cache), cache, batches


async def test_a_primed_value_answers_without_a_batch() -> None:
    users, cache, batches = loader({"b": "from the batch"})
    cache.prime_all({"a": "primed"})
    assert await users.load("a") == "primed"
    assert await users.load("b") == "from the batch"
    assert batches == [["b"]]
    assert users.load("a") is users.load("a")  # one future per key, as before


async def test_priming_never_replaces_what_is_there() -> None:
    users, cache, batches = loader({"a": "loaded"})
    assert await users.load("a") == "loaded"
    cache.prime_all({"a": "primed later", "b": "first"})
    cache.prime_all({"b": "second"})
    users.prime("b", "by DataLoader.prime")
    assert await users.load("a") == "loaded"
    assert await users.load("b") == "first"
    assert batches == [["a"]]


async def test_clearing_drops_primed_values() -> None:
    users, cache, batches = loader({"a": "fresh a", "b": "fresh b"})
    cache.prime_all({"a": "stale a", "b": "stale b"})
    users.clear("a")
    assert await users.load("a") == "fresh a"
    users.clear_all()
    assert await users.load("b") == "fresh b"
    assert batches == [["a"], ["b"]]
    users.clear("a").prime("a", "written")  # what a mutation does after a write
    assert await users.load("a") == "written"


USERS_AND_THEIR_TASKS = """
query {
  users(first: 20) {
    edges { node { name tasks(first: 2) { edges { node { title owner { name } } } } } }
  }
}
"""


async def test_a_listed_user_is_not_read_again_as_an_owner(
    app: TaskqlApp, gql: GraphQLClient, admin: Account
) -> None:
    owners = [await register(gql, name=f"Owner {i}") for i in range(3)]
    for owner in owners:
        await create_task(gql, owner, title=f"{owner.email}'s task")
    with captured(app) as statements:
        data = (await gql.query(USERS_AND_THEIR_TASKS, token=admin.token)).ok()
    names = {edge["node"]["name"]: edge["node"]["tasks"]["edges"] for edge in data["users"]["edges"]}
    for index in range(3):
        (task,) = names[f"Owner {index}"]
        assert task["node"]["owner"]["name"] == f"Owner {index}"
    # Each User.tasks checks that its user is visible and each task's owner is loaded: all of them were on
    # the page of users, so none is read by id again.
    by_id = [sql for sql, _ in statements.executed if "FROM users" in sql and "ANY" in sql]
    assert by_id == [], [sql for sql, _ in statements.executed]
